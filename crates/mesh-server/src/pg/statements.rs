//! Session statements the server answers itself, as drivers and BI
//! tools send them: savepoints (no-ops, as everything here is read-only),
//! server-side cursors (`DECLARE`, `FETCH`, `CLOSE`; psycopg named
//! cursors, SQLAlchemy `stream_results`), `search_path` and `COPY … TO
//! STDOUT` (`copy`).
//!
//! A cursor's query is planned and run by the same governed path as any
//! statement; `FETCH` only takes rows from its stream, so a client reads
//! a large result in pieces without the server holding it.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{
    CloseCursor, DeclareType, Expr, FetchDirection, Query, Set, Statement as SqlStatement, Value,
};
use datafusion_postgres::pgwire;
use futures::{StreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::{Type, results::DataRowEncoder};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;

use super::connection::Session;
use super::query::PgService;
use super::user_error;

/// A statement the server answers for the session, without planning.
#[derive(Debug, Clone)]
pub(super) enum Local {
    Savepoint,
    Release,
    /// `ROLLBACK TO SAVEPOINT`: the transaction goes on.
    RollbackTo,
    /// `COMMIT` or `ROLLBACK`: cursors declared without hold close.
    EndTransaction,
    Declare {
        name: String,
        hold: bool,
        query: Box<Query>,
    },
    /// `FETCH`: at most `count` rows (`None`: all that are left).
    Fetch {
        name: String,
        count: Option<usize>,
    },
    Close(Option<String>),
    SetSearchPath(Vec<String>),
    ShowSearchPath,
    /// `SHOW` of a setting the server has one value for.
    ShowFixed(String, String),
    /// `COPY … TO STDOUT`.
    Copy(super::copy::CopyOut),
}

/// An open cursor: the rows of its query not fetched yet.
pub(super) struct Cursor {
    response: QueryResponse,
    hold: bool,
}

/// A connection's open cursors, by name.
pub(super) type Cursors = tokio::sync::Mutex<HashMap<String, Cursor>>;

/// What `ast` is, if the server answers it itself. `Err` for a form
/// that is refused (a backward fetch).
pub(super) fn local(ast: &SqlStatement) -> Option<PgWireResult<Local>> {
    Some(Ok(match ast {
        SqlStatement::Savepoint { .. } => Local::Savepoint,
        SqlStatement::ReleaseSavepoint { .. } => Local::Release,
        SqlStatement::Rollback {
            savepoint: Some(_), ..
        } => Local::RollbackTo,
        SqlStatement::Commit { .. } | SqlStatement::Rollback { .. } => Local::EndTransaction,
        SqlStatement::Declare { stmts } => {
            let [declare] = stmts.as_slice() else {
                return Some(Err(syntax("declare one cursor per statement")));
            };
            let (Some(DeclareType::Cursor), Some(name), Some(query)) = (
                declare.declare_type.as_ref(),
                declare.names.first(),
                declare.for_query.clone(),
            ) else {
                return Some(Err(syntax(
                    "only DECLARE name CURSOR FOR query is supported",
                )));
            };
            Local::Declare {
                name: name.value.clone(),
                hold: declare.hold.unwrap_or(false),
                query,
            }
        }
        SqlStatement::Fetch {
            name, direction, ..
        } => Local::Fetch {
            name: name.value.clone(),
            count: match fetch_count(direction) {
                Ok(count) => count,
                Err(e) => return Some(Err(e)),
            },
        },
        SqlStatement::Close { cursor } => Local::Close(match cursor {
            CloseCursor::All => None,
            CloseCursor::Specific { name } => Some(name.value.clone()),
        }),
        SqlStatement::Set(Set::SingleAssignment {
            variable, values, ..
        }) if is_search_path(&variable.to_string()) => {
            Local::SetSearchPath(values.iter().flat_map(schema_names).collect::<Vec<_>>())
        }
        SqlStatement::Copy { .. } => match super::copy::parse(ast)? {
            Ok(copy) => Local::Copy(copy),
            Err(e) => return Some(Err(e)),
        },
        SqlStatement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join("_");
            if is_search_path(&name) {
                Local::ShowSearchPath
            } else {
                let value = super::functions::fixed_setting(&name)?;
                Local::ShowFixed(name.to_ascii_lowercase(), value)
            }
        }
        _ => return None,
    }))
}

fn is_search_path(name: &str) -> bool {
    name.eq_ignore_ascii_case("search_path")
}

/// The schema names of one `SET search_path` value (`sales`, `'sales,
/// public'`, `"$user"`).
fn schema_names(v: &Expr) -> Vec<String> {
    let text = match v {
        Expr::Identifier(i) => i.value.clone(),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    super::catalog::parse_search_path(&text)
}

fn syntax(message: &str) -> PgWireError {
    user_error("42601", message.to_string(), None)
}

/// Rows a `FETCH` direction asks for; only forward fetches are served.
fn fetch_count(direction: &FetchDirection) -> PgWireResult<Option<usize>> {
    let number = |v: &datafusion::sql::sqlparser::ast::ValueWithSpan| match &v.value {
        Value::Number(n, _) => n
            .parse::<usize>()
            .map_err(|_| syntax("FETCH takes a row count of 0 or more")),
        _ => Err(syntax("FETCH takes a row count of 0 or more")),
    };
    match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Ok(Some(1)),
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
            number(limit).map(Some)
        }
        FetchDirection::All | FetchDirection::ForwardAll => Ok(None),
        _ => Err(user_error(
            "55000",
            "cursors here scan forward only: FETCH NEXT, FETCH n, FETCH FORWARD n or FETCH ALL"
                .into(),
            Some("declare the cursor again to read from the start".into()),
        )),
    }
}

/// The columns a statement answers with, for Describe.
pub(super) async fn local_fields(local: &Local, session: &Session) -> Arc<Vec<FieldInfo>> {
    match local {
        Local::Fetch { name, .. } => match session.cursors.lock().await.get(name) {
            Some(c) => c.response.row_schema(),
            None => Arc::new(Vec::new()),
        },
        Local::ShowSearchPath => setting_fields("search_path"),
        Local::ShowFixed(name, _) => setting_fields(name),
        _ => Arc::new(Vec::new()),
    }
}

fn setting_fields(name: &str) -> Arc<Vec<FieldInfo>> {
    Arc::new(vec![FieldInfo::new(
        name.into(),
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )])
}

/// A one-row, one-column answer.
fn one_value(name: &str, value: String) -> PgWireResult<Response> {
    let fields = setting_fields(name);
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(Response::Query(QueryResponse::new(
        fields,
        stream::iter(vec![Ok(row)]),
    )))
}

impl PgService {
    /// Answers a session statement; `None` when the transaction hook
    /// answers it (after cursors are closed).
    pub(super) async fn answer<C>(
        &self,
        client: &C,
        session: &Session,
        local: Local,
        params: Option<ParamValues>,
    ) -> PgWireResult<Option<Response>>
    where
        C: ClientInfo + Send + Sync + ?Sized,
    {
        let status = client.transaction_status();
        if status == TransactionStatus::Error
            && !matches!(local, Local::RollbackTo | Local::EndTransaction)
        {
            return Err(user_error(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block"
                    .into(),
                Some("ROLLBACK, or ROLLBACK TO the last savepoint".into()),
            ));
        }
        Ok(Some(match local {
            Local::Savepoint => Response::Execution(Tag::new("SAVEPOINT")),
            Local::Release => Response::Execution(Tag::new("RELEASE")),
            // Nothing was written, so there is nothing to undo; after a
            // failed statement the transaction is usable again.
            Local::RollbackTo if status == TransactionStatus::Error => {
                Response::TransactionEnd(Tag::new("ROLLBACK"))
            }
            Local::RollbackTo => Response::Execution(Tag::new("ROLLBACK")),
            Local::EndTransaction => {
                session.cursors.lock().await.retain(|_, cursor| cursor.hold);
                return Ok(None);
            }
            Local::Declare { name, hold, query } => {
                if !hold && status != TransactionStatus::Transaction {
                    return Err(user_error(
                        "25P01",
                        "DECLARE CURSOR can only be used in transaction blocks".into(),
                        Some("BEGIN first, or declare it WITH HOLD".into()),
                    ));
                }
                if session.cursors.lock().await.contains_key(&name) {
                    return Err(user_error(
                        "42P03",
                        format!("cursor \"{name}\" already exists"),
                        Some(format!("CLOSE \"{name}\" first")),
                    ));
                }
                let response = match self
                    .run(
                        client,
                        session,
                        &SqlStatement::Query(query),
                        params,
                        &Format::UnifiedText,
                    )
                    .await?
                {
                    Response::Query(response) => response,
                    _ => return Err(syntax("a cursor's query must return rows")),
                };
                session
                    .cursors
                    .lock()
                    .await
                    .insert(name, Cursor { response, hold });
                Response::Execution(Tag::new("DECLARE CURSOR"))
            }
            Local::Fetch { name, count } => {
                let mut cursors = session.cursors.lock().await;
                let Some(cursor) = cursors.get_mut(&name) else {
                    return Err(user_error(
                        "34000",
                        format!("cursor \"{name}\" does not exist"),
                        None,
                    ));
                };
                let fields = cursor.response.row_schema();
                let rows = cursor.response.data_rows();
                let mut taken = Vec::new();
                while count.is_none_or(|n| taken.len() < n) {
                    match rows.next().await {
                        Some(row) => taken.push(row?),
                        None => break,
                    }
                }
                let mut response =
                    QueryResponse::new(fields, stream::iter(taken.into_iter().map(Ok)));
                response.set_command_tag("FETCH");
                Response::Query(response)
            }
            Local::Close(name) => {
                let mut cursors = session.cursors.lock().await;
                match name {
                    None => cursors.clear(),
                    Some(name) => {
                        if cursors.remove(&name).is_none() {
                            return Err(user_error(
                                "34000",
                                format!("cursor \"{name}\" does not exist"),
                                None,
                            ));
                        }
                    }
                }
                Response::Execution(Tag::new("CLOSE CURSOR"))
            }
            Local::SetSearchPath(path) => {
                session.catalog.set_search_path(path);
                Response::Execution(Tag::new("SET"))
            }
            Local::ShowSearchPath => one_value("search_path", session.catalog.search_path_text())?,
            Local::ShowFixed(name, value) => one_value(&name, value)?,
            Local::Copy(copy) => self.copy(client, session, copy, params).await?,
        }))
    }
}
