//! Statements over the Postgres protocol: parsing, session statements,
//! planning through the service layer and streaming rows.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, Stream, StreamExt, stream};
use mesh_service::{Mesh, Statement};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use crate::metrics::{Metrics, QueryTimer};

use super::statements::Local;
use super::*;

/// A parsed statement: a session statement answered here, or a query
/// planned (at Parse) for its schema and parameter types. A query is
/// planned again when it runs, so a policy change between Parse and
/// Execute is honoured.
#[derive(Clone)]
pub struct PgStatement {
    pub(super) ast: SqlStatement,
    pub(super) kind: Kind,
}

#[derive(Clone)]
pub(super) enum Kind {
    /// `SET`, `SHOW`, `BEGIN`, … with the columns it answers.
    Session(SchemaRef),
    Query {
        schema: SchemaRef,
        params: Vec<Option<DataType>>,
    },
    /// Savepoints, cursors, `search_path` (see `statements`).
    Local {
        local: Local,
        fields: Arc<Vec<FieldInfo>>,
        params: Vec<Option<DataType>>,
    },
}

pub(super) fn hooks() -> [Arc<dyn QueryHook>; 2] {
    [Arc::new(SetShowHook), Arc::new(TransactionStatementHook)]
}

/// Refuses a statement too deeply nested to parse safely (54001).
pub(super) fn mesh_query_complexity(sql: &str) -> PgWireResult<()> {
    mesh_service::check_complexity(sql).map_err(service_error)
}

pub struct PgParser {
    pub(super) mesh: Arc<Mesh>,
    pub(super) sql: PostgresCompatibilityParser,
}

impl PgParser {
    pub(super) fn parse(&self, sql: &str) -> PgWireResult<Vec<SqlStatement>> {
        // Before any parser recurses into it.
        mesh_query_complexity(sql)?;
        let sql = super::rewrite::alias_user_functions(sql);
        let sql = super::rewrite::qualify_catalog_regclass(&sql);
        let mut statements = self.sql.parse(&sql).map_err(|e| {
            user_error(
                "42601",
                mesh_service::query::syntax_sentence(&e),
                Some("the server speaks PostgreSQL's SQL as DataFusion plans it".into()),
            )
        })?;
        for statement in &mut statements {
            super::rewrite::like_escapes(statement);
            if super::rewrite::case_subqueries(statement) {
                *statement = self.sql.rewrite(statement.clone());
            }
        }
        Ok(statements)
    }

    /// Plans `ast` as the session's principal.
    async fn prepare(
        &self,
        session: &Session,
        ast: &SqlStatement,
    ) -> PgWireResult<mesh_service::Planned> {
        self.plan(session, ast).await.map_err(service_error)
    }

    pub(super) async fn plan(
        &self,
        session: &Session,
        ast: &SqlStatement,
    ) -> mesh_service::Result<mesh_service::Planned> {
        let sql = ast.to_string();
        let mut parsed = ast.clone();
        super::describe::describe_functions(&mut parsed);
        super::rewrite::catalog_functions(&mut parsed, &session.catalog.search_path());
        super::rewrite::aggregate_catalog_subqueries(&mut parsed);
        self.mesh
            .prepare(
                &session.caller,
                Statement {
                    sql: &sql,
                    parsed: Some(datafusion::sql::parser::Statement::Statement(Box::new(
                        parsed,
                    ))),
                    setup: Some(&session.catalog),
                    strings: Default::default(),
                },
            )
            .await
    }
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parse(sql)?;
        if statements.is_empty() {
            return Ok(None);
        }
        let ast = statements.remove(0);
        let session = session(client)?;
        if let Some(local) = super::statements::local(&ast) {
            let local = local?;
            if !matches!(local, Local::EndTransaction) {
                let params = match &local {
                    Local::Declare { query, .. } => self
                        .prepare(&session, &SqlStatement::Query(query.clone()))
                        .await?
                        .parameter_types()
                        .map_err(service_error)?,
                    _ => Vec::new(),
                };
                let fields = super::statements::local_fields(&local, &session).await;
                return Ok(Some(PgStatement {
                    ast,
                    kind: Kind::Local {
                        local,
                        fields,
                        params,
                    },
                }));
            }
        }
        for hook in hooks() {
            if let Some(plan) = hook
                .handle_extended_parse_query(&ast, &session.settings, client)
                .await
            {
                let schema = Arc::new(plan?.schema().as_arrow().clone());
                return Ok(Some(PgStatement {
                    ast,
                    kind: Kind::Session(schema),
                }));
            }
        }
        let planned = self.prepare(&session, &ast).await?;
        let params = planned.parameter_types().map_err(service_error)?;
        Ok(Some(PgStatement {
            ast,
            kind: Kind::Query {
                schema: planned.schema(),
                params,
            },
        }))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        match &stmt.kind {
            Kind::Session(_) => Ok(vec![]),
            Kind::Query { params, .. } | Kind::Local { params, .. } => params
                .iter()
                .map(|p| p.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
                .collect(),
        }
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let schema = match &stmt.kind {
            Kind::Session(schema) | Kind::Query { schema, .. } => schema,
            Kind::Local { fields, .. } => return Ok(fields.as_ref().clone()),
        };
        arrow_schema_to_pg_fields(schema, format.unwrap_or(&Format::UnifiedText), None)
    }
}

pub struct PgService {
    pub(super) mesh: Arc<Mesh>,
    pub(super) parser: Arc<PgParser>,
    pub(super) metrics: Arc<Metrics>,
}

impl PgService {
    /// Runs a planned query and streams its rows in `format`; the session's
    /// cancel signal (a cancel request, or `statement_timeout`) stops it.
    pub(super) async fn run<C>(
        &self,
        client: &C,
        session: &Session,
        ast: &SqlStatement,
        params: Option<ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ?Sized,
    {
        let (stream, interrupt, timer) = self.start(client, session, ast, params).await?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_schema_to_pg_fields(
            &stream.schema,
            format,
            Some(options),
        )?);
        let rows = rows(stream, fields.clone(), interrupt, timer);
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }

    /// Plans and starts a query as the session's caller, with the
    /// session's cancel signal (a cancel request, or `statement_timeout`)
    /// armed; the stream's batches are read by the caller.
    pub(super) async fn start<C>(
        &self,
        client: &C,
        session: &Session,
        ast: &SqlStatement,
        params: Option<ParamValues>,
    ) -> PgWireResult<(mesh_service::QueryStream, Interrupt, QueryTimer)>
    where
        C: ClientInfo + ?Sized,
    {
        let timeout = client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(std::time::Duration::from_millis);
        let interrupt = session.start();
        if let Some(after) = timeout {
            let (token, timed_out) = (interrupt.token.clone(), interrupt.timed_out.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(after) => {
                        timed_out.store(true, Ordering::SeqCst);
                        token.cancel();
                    }
                    _ = token.cancelled() => {}
                }
            });
        }
        let mut timer = self.metrics.query("postgres");
        let work = async {
            let planned = self.parser.plan(session, ast).await?;
            let planned = planned
                .with_stop(interrupt.stop.clone())
                .with_timeout(timeout);
            self.mesh.execute(planned, params).await
        };
        let stream = tokio::select! {
            result = work => match result {
                Ok(stream) => stream,
                Err(e) => {
                    timer.finish(Err(&e));
                    return Err(service_error(e));
                }
            },
            _ = interrupt.token.cancelled() => return Err(interrupt.error()),
        };
        Ok((stream, interrupt, timer))
    }
}

/// The rows of `stream`, encoded for the wire, until it ends or `token`
/// is interrupted.
pub(super) fn rows(
    stream: mesh_service::QueryStream,
    fields: Arc<Vec<FieldInfo>>,
    interrupt: Interrupt,
    timer: QueryTimer,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    stream::unfold(Some((stream, interrupt, timer)), move |state| {
        let fields = fields.clone();
        async move {
            let (mut stream, interrupt, mut timer) = state?;
            let next = tokio::select! {
                next = stream.next() => Some(next),
                _ = interrupt.token.cancelled() => None,
            };
            let Some(next) = next else {
                let rows: Vec<PgWireResult<DataRow>> = vec![Err(interrupt.error())];
                return Some((stream::iter(rows), None));
            };
            match next {
                None => {
                    timer.finish(Ok(()));
                    None
                }
                Some(Ok(batch)) => {
                    let rows: Vec<PgWireResult<DataRow>> =
                        encode_recordbatch(fields, batch).collect();
                    Some((stream::iter(rows), Some((stream, interrupt, timer))))
                }
                Some(Err(e)) => {
                    timer.finish(Err(&e));
                    Some((stream::iter(vec![Err(service_error(e))]), None))
                }
            }
        }
    })
    .flatten()
}

#[async_trait]
impl SimpleQueryHandler for PgService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        let statements = self.parser.parse(query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        'statements: for ast in statements {
            if let Some(local) = super::statements::local(&ast)
                && let Some(response) = self.answer(client, &session, local?, None).await?
            {
                responses.push(response);
                continue;
            }
            for hook in hooks() {
                if let Some(result) = hook
                    .handle_simple_query(&ast, &session.settings, client)
                    .await
                {
                    responses.push(result?);
                    continue 'statements;
                }
            }
            responses.push(
                self.run(client, &session, &ast, None, &Format::UnifiedText)
                    .await?,
            );
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgService {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        let statement = &portal.statement.statement;
        match &statement.kind {
            Kind::Local { local, params, .. } => {
                let inferred: Vec<Option<&DataType>> = params.iter().map(Option::as_ref).collect();
                let values = deserialize_parameters_with_server_types(portal, &inferred, &[])?;
                let values = match &values {
                    ParamValues::List(v) if v.is_empty() => None,
                    _ => Some(values),
                };
                let response = self
                    .answer(client, &session, local.clone(), values)
                    .await?
                    .unwrap_or(Response::EmptyQuery);
                // A cursor is also a portal of its name: psycopg describes
                // it at the protocol level before fetching with SQL.
                match local {
                    Local::Declare { name, .. } => {
                        let fetch = Local::Fetch {
                            name: name.clone(),
                            count: None,
                        };
                        let fields = super::statements::local_fields(&fetch, &session).await;
                        let statement = PgStatement {
                            ast: statement.ast.clone(),
                            kind: Kind::Local {
                                local: fetch,
                                fields,
                                params: Vec::new(),
                            },
                        };
                        let stored = StoredStatement::new(name.clone(), statement, Vec::new());
                        client
                            .portal_store()
                            .put_portal(Arc::new(Portal::new_cursor(
                                name.clone(),
                                Arc::new(stored),
                            )));
                    }
                    Local::Close(Some(name)) => client.portal_store().rm_portal(name),
                    _ => {}
                }
                Ok(response)
            }
            Kind::Session(_) => {
                if let Some(Ok(local @ Local::EndTransaction)) =
                    super::statements::local(&statement.ast)
                {
                    self.answer(client, &session, local, None).await?;
                }
                let plan = datafusion::logical_expr::LogicalPlan::EmptyRelation(
                    datafusion::logical_expr::EmptyRelation {
                        produce_one_row: false,
                        schema: Arc::new(datafusion::common::DFSchema::empty()),
                    },
                );
                let none = ParamValues::List(vec![]);
                for hook in hooks() {
                    if let Some(result) = hook
                        .handle_extended_query(
                            &statement.ast,
                            &plan,
                            &none,
                            &session.settings,
                            client,
                        )
                        .await
                    {
                        return result;
                    }
                }
                Ok(Response::EmptyQuery)
            }
            Kind::Query { params, .. } => {
                let inferred: Vec<Option<&DataType>> = params.iter().map(Option::as_ref).collect();
                let values = deserialize_parameters_with_server_types(portal, &inferred, &[])?;
                let values = match &values {
                    ParamValues::List(v) if v.is_empty() => None,
                    _ => Some(values),
                };
                self.run(
                    client,
                    &session,
                    &statement.ast,
                    values,
                    &portal.result_column_format,
                )
                .await
            }
        }
    }
}
