//! The one query path: plan a statement as a caller, run it, audit it.
//!
//! Every front end (CLI, REST, Postgres wire, Flight SQL) calls
//! [`Mesh::prepare`] and [`Mesh::execute`], or [`Mesh::query_stream`],
//! the two together; none plans, decides access or audits by itself.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use mesh_query::{QueryEngine, StringLayout};
use mesh_spec::ProductRef;

use crate::access::Caller;
use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// Rows of a query with their schema.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Things the reader should know, such as reading a deprecated product.
    pub warnings: Vec<String>,
}

impl Mesh {
    /// The access decisions of `caller`, made with today's policies.
    pub(crate) async fn guard_for(&self, caller: &Caller) -> Result<crate::access::PolicyGuard> {
        let snapshot = self.snapshot().await?;
        self.guard_over(caller, snapshot)
    }

    /// [`Mesh::guard_for`] over a snapshot just read.
    fn guard_over(
        &self,
        caller: &Caller,
        snapshot: Arc<crate::snapshot::Snapshot>,
    ) -> Result<crate::access::PolicyGuard> {
        Ok(crate::access::PolicyGuard::new(
            caller,
            self.policies()?,
            snapshot,
            None,
            self.descriptors.clone(),
        ))
    }

    /// The query engine over all published products, reading as `caller`.
    pub async fn engine(
        &self,
        caller: &Caller,
    ) -> Result<(QueryEngine, Arc<crate::access::PolicyGuard>)> {
        self.engine_for(caller, StringLayout::View, false).await
    }

    /// The engine for one statement. One that names no table (`SELECT 1`,
    /// `SELECT now()`) reads nothing, so it needs no catalog snapshot and
    /// no visible set: its session holds no table at all, and its guard
    /// decides nothing (so, like any statement that reads no product, it
    /// writes no audit entry). The policies are checked all
    /// the same (`check_policies`): a broken policy refuses every statement.
    async fn engine_for(
        &self,
        caller: &Caller,
        strings: StringLayout,
        tableless: bool,
    ) -> Result<(QueryEngine, Arc<crate::access::PolicyGuard>)> {
        if tableless {
            self.check_policies().await?;
            let guard = Arc::new(crate::access::PolicyGuard::new(
                caller,
                crate::policy_check::no_policies()?,
                crate::snapshot::Snapshot::empty(self),
                None,
                self.descriptors.clone(),
            ));
            let engine = QueryEngine::new(
                self.catalog.clone(),
                guard.clone(),
                strings,
                Some(&Default::default()),
                Some(self.limits.statement_pool()),
            )
            .await?;
            return Ok((engine, guard));
        }
        // One read of the catalog's generations; the rest is in memory
        // while nothing changed.
        let snapshot = self.snapshot().await?;
        let guard = Arc::new(self.guard_over(caller, snapshot.clone())?);
        // What the caller may not see does not exist in its session.
        let sight = self.sight(caller, &snapshot).await?;
        let visible: std::collections::BTreeSet<ProductRef> = sight
            .visible(&snapshot.deployed)
            .map(|(r, _)| r.product.clone())
            .collect();
        let engine = QueryEngine::new(
            self.catalog.clone(),
            guard.clone(),
            strings,
            Some(&visible),
            Some(self.limits.statement_pool()),
        )
        .await?;
        Ok((engine, guard))
    }

    /// Runs one read-only SQL statement as `caller` and collects its rows.
    pub async fn query(&self, caller: &Caller, sql: &str) -> Result<QueryResult> {
        let mut stream = self.query_stream(caller, sql).await?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch?);
        }
        Ok(QueryResult {
            schema: stream.schema.clone(),
            batches,
            warnings: std::mem::take(&mut stream.warnings),
        })
    }

    /// Runs one read-only SQL statement as `caller`; rows arrive as they
    /// are computed, so a large result never has to fit in memory. Every
    /// access decision made while planning is written to the audit log,
    /// denials included, before any row is returned.
    pub async fn query_stream(&self, caller: &Caller, sql: &str) -> Result<QueryStream> {
        let planned = self.prepare(caller, Statement::sql(sql)).await?;
        self.execute(planned, None).await
    }

    /// Plans one read-only statement as `caller`, without running it: its
    /// result schema and parameter types are known, and it can be run
    /// with [`Mesh::execute`]. A refused or failed plan is audited here.
    pub async fn prepare(&self, caller: &Caller, statement: Statement<'_>) -> Result<Planned> {
        check_complexity(statement.sql)?;
        let tableless = match &statement.parsed {
            Some(parsed) => mesh_query::names_no_table(parsed),
            None => mesh_query::sql_names_no_table(statement.sql),
        };
        let (engine, guard) = self
            .engine_for(caller, statement.strings, tableless)
            .await?;
        if let Some(setup) = statement.setup {
            setup
                .setup(engine.context(), caller)
                .map_err(execution_error)?;
        }
        let planned = match statement.parsed {
            Some(parsed) => engine.plan(parsed).await,
            None => engine.sql(statement.sql).await,
        };
        match planned {
            Ok(df) => Ok(Planned {
                stop: mesh_query::deadline::Stop::default(),
                timeout: None,
                engine,
                guard,
                df,
                sql: statement.sql.to_string(),
            }),
            Err(e) => {
                self.audit_query(&guard, statement.sql, &HashMap::new())
                    .await?;
                Err(e.into())
            }
        }
    }

    /// Runs a planned statement, binding `params` to its `$n` placeholders
    /// (values are bound into the plan, never spliced into SQL text).
    pub async fn execute(
        &self,
        planned: Planned,
        params: Option<ParamValues>,
    ) -> Result<QueryStream> {
        let Planned {
            engine,
            guard,
            df,
            sql,
            stop,
            timeout: shorter,
        } = planned;
        let params = match params {
            Some(values) => Some(coerce_params(values, &df)?),
            None => None,
        };
        let df = match params {
            Some(values) => df.with_param_values(values).map_err(|e| {
                ServiceError::Query(mesh_query::QueryError::Plan {
                    message: e.strip_backtrace(),
                    hint: Some("bind one value of the right type to each `$n` placeholder".into()),
                })
            })?,
            None => df,
        };
        let schema = Arc::new(df.schema().as_arrow().clone());
        let (state, plan) = df.into_parts();
        let optimized = state.optimize(&plan).map_err(execution_error)?;
        self.audit_query(&guard, &sql, &scanned_columns(&optimized))
            .await?;
        let physical = state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await
            .map_err(execution_error)?;
        let timeout = match (self.limits.statement_timeout, shorter) {
            (Some(limit), Some(session)) => Some(limit.min(session)),
            (limit, session) => limit.or(session),
        }
        .map(|t| (t, std::time::Instant::now() + t));
        // Checked inside the plan too: an operator that multiplies rows
        // can keep the timer below from ever firing, and the tasks
        // computing rows from stopping when the stream is dropped (see
        // `deadline`).
        let until = mesh_query::deadline::Until {
            deadline: timeout.map(|(_, at)| at),
            stop,
        };
        let physical = mesh_query::deadline::watch(physical, &until).map_err(execution_error)?;
        let stream =
            crate::compute::execute(physical, state.task_ctx()).map_err(execution_error)?;
        Ok(QueryStream {
            schema,
            warnings: engine.warnings(),
            stream,
            timeout: timeout.map(|(t, at)| (t, tokio::time::Instant::from_std(at))),
            done: false,
            stop: until.stop,
            _session: engine,
        })
    }

    async fn audit_query(
        &self,
        guard: &crate::access::PolicyGuard,
        sql: &str,
        read: &HashMap<String, Vec<String>>,
    ) -> Result<()> {
        let entries = crate::access::query_audit(guard.principal(), sql, &guard.decided(), read);
        self.catalog.append_audit(&entries).await?;
        Ok(())
    }
}

/// Refuses a statement nested too deeply to parse and plan safely
/// (`QueryError::TooComplex`). Front ends that parse a statement
/// themselves call it first; [`Mesh::prepare`] calls it for the others.
pub fn check_complexity(sql: &str) -> Result<()> {
    Ok(mesh_query::complexity::check(sql)?)
}

/// The columns each table scan of a plan reads, by `<domain>.<output>`
/// (version suffixes dropped).
fn scanned_columns(plan: &datafusion::logical_expr::LogicalPlan) -> HashMap<String, Vec<String>> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
            let table = scan.table_name.table();
            let base = mesh_query::split_version(table).map_or(table, |(b, _)| b);
            let name = match scan.table_name.schema() {
                Some(schema) => format!("{schema}.{base}"),
                None => base.to_string(),
            };
            let schema = scan.source.schema();
            let columns: Vec<String> = match &scan.projection {
                Some(p) => p.iter().map(|i| schema.field(*i).name().clone()).collect(),
                None => schema.fields().iter().map(|f| f.name().clone()).collect(),
            };
            let entry = out.entry(name).or_default();
            for c in columns {
                if !entry.contains(&c) {
                    entry.push(c);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

fn execution_error(e: datafusion::error::DataFusionError) -> ServiceError {
    match e {
        datafusion::error::DataFusionError::External(inner) => {
            match inner.downcast::<mesh_query::QueryError>() {
                Ok(q) => ServiceError::Query(*q),
                Err(other) => ServiceError::Execution(other.to_string()),
            }
        }
        other => match crate::codes::datafusion_kind(&other) {
            crate::codes::ErrorKind::Internal => ServiceError::Execution(other.strip_backtrace()),
            kind => ServiceError::Data {
                kind,
                message: other.strip_backtrace(),
            },
        },
    }
}

/// Casts positional values to the types their placeholders have in the
/// plan where they differ (a client's `Utf8` for a `Utf8View` column, an
/// `Int32` for an `Int64` one); a value that does not cast is the
/// client's error.
fn coerce_params(
    values: ParamValues,
    df: &datafusion::dataframe::DataFrame,
) -> Result<ParamValues> {
    let ParamValues::List(list) = values else {
        return Ok(values);
    };
    let types = df
        .logical_plan()
        .get_parameter_types()
        .map_err(execution_error)?;
    list.into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            if let Some(Some(wanted)) = types.get(&format!("${}", i + 1))
                && v.value.data_type() != *wanted
            {
                v.value = v.value.cast_to(wanted).map_err(|e| {
                    ServiceError::Query(mesh_query::QueryError::Plan {
                        message: format!(
                            "parameter ${}: cannot use {} as {wanted}: {}",
                            i + 1,
                            v.value,
                            e.strip_backtrace()
                        ),
                        hint: Some("bind a value of the placeholder's type".into()),
                    })
                })?;
            }
            Ok(v)
        })
        .collect::<Result<Vec<_>>>()
        .map(ParamValues::List)
}

/// A statement to plan: its SQL text, optionally already parsed by a
/// front end with its own dialect rules, and optionally a hook that adds
/// front-end objects (such as `pg_catalog`) to the session first.
pub struct Statement<'a> {
    pub sql: &'a str,
    pub parsed: Option<datafusion::sql::parser::Statement>,
    pub setup: Option<&'a dyn SessionSetup>,
    /// How its tables' strings are read: views by default; classic for
    /// rows sent as Arrow IPC, which then need no cast.
    pub strings: StringLayout,
}

impl<'a> Statement<'a> {
    pub fn sql(sql: &'a str) -> Self {
        Statement {
            sql,
            parsed: None,
            setup: None,
            strings: StringLayout::View,
        }
    }

    /// The statement's rows will be sent as Arrow IPC (Flight SQL, REST):
    /// strings are read in the layout they travel in.
    pub fn for_arrow_ipc(mut self) -> Self {
        self.strings = StringLayout::Classic;
        self
    }
}

/// Adds a front end's objects to the caller's session before planning.
/// It may add schemas and functions; the mesh's tables, and the policy
/// that guards them, stay as they are.
pub trait SessionSetup: Send + Sync {
    fn setup(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        caller: &Caller,
    ) -> datafusion::error::Result<()>;
}

/// A statement planned for one caller and not yet run.
pub struct Planned {
    engine: QueryEngine,
    guard: Arc<crate::access::PolicyGuard>,
    df: datafusion::dataframe::DataFrame,
    sql: String,
    /// Raised by the front end to end the statement (a cancel request).
    stop: mesh_query::deadline::Stop,
    /// A session's own timeout, when shorter than the server's.
    timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned").field("sql", &self.sql).finish()
    }
}

impl Planned {
    /// The statement ends (with an error) once `stop` is raised, even in
    /// the middle of computing a batch: for cancel requests.
    pub fn with_stop(mut self, stop: mesh_query::deadline::Stop) -> Self {
        self.stop = stop;
        self
    }

    /// The statement's timeout is at most `timeout` (a session's own
    /// `statement_timeout`); the server's limit still holds if shorter.
    pub fn with_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The columns the statement returns.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.df.schema().as_arrow().clone())
    }

    /// The types of `$1`, `$2`, …, in order; `None` where the plan does
    /// not fix one.
    pub fn parameter_types(&self) -> Result<Vec<Option<datafusion::arrow::datatypes::DataType>>> {
        let types = self
            .df
            .logical_plan()
            .get_parameter_types()
            .map_err(execution_error)?;
        let mut ordered: Vec<(usize, Option<datafusion::arrow::datatypes::DataType>)> = types
            .into_iter()
            .filter_map(|(name, ty)| Some((name.strip_prefix('$')?.parse().ok()?, ty)))
            .collect();
        ordered.sort_by_key(|(n, _)| *n);
        let count = ordered.last().map_or(0, |(n, _)| *n);
        let mut out = vec![None; count];
        for (n, ty) in ordered {
            if n >= 1 {
                out[n - 1] = ty;
            }
        }
        Ok(out)
    }
}

/// The rows of a query, batch by batch.
pub struct QueryStream {
    pub schema: SchemaRef,
    /// Things the reader should know, such as reading a deprecated product.
    pub warnings: Vec<String>,
    stream: datafusion::execution::SendableRecordBatchStream,
    /// The statement timeout and when it runs out.
    timeout: Option<(std::time::Duration, tokio::time::Instant)>,
    /// Ended early (timed out): no more rows.
    done: bool,
    /// Raised when the stream is dropped, read to its end or not, so the
    /// tasks computing it stop at their next batch.
    stop: mesh_query::deadline::Stop,
    /// The session the rows are computed in; tables a front end added to
    /// it (such as `pg_catalog`) may be read while rows stream.
    _session: QueryEngine,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream")
            .field("schema", &self.schema)
            .finish()
    }
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        self.stop.raise();
    }
}

impl QueryStream {
    /// The batches as a stream (the schema and warnings are read first).
    pub fn into_batches(self) -> impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static {
        futures::stream::unfold(self, |mut rows| async move {
            rows.next().await.map(|batch| (batch, rows))
        })
    }

    /// The next batch of rows, or `None` at the end. A statement that
    /// runs past its timeout ends with [`ServiceError::Timeout`].
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        use futures::StreamExt;
        if self.done {
            return None;
        }
        let item = match self.timeout {
            Some((limit, deadline)) => {
                match tokio::time::timeout_at(deadline, self.stream.next()).await {
                    Ok(item) => item,
                    Err(_) => {
                        self.done = true;
                        return Some(Err(ServiceError::Timeout { limit }));
                    }
                }
            }
            None => self.stream.next().await,
        };
        item.map(|r| {
            r.map_err(|e| match self.timeout {
                Some((limit, _)) if mesh_query::deadline::is_past_deadline(&e) => {
                    self.done = true;
                    ServiceError::Timeout { limit }
                }
                _ => execution_error(e),
            })
        })
    }
}

impl QueryResult {
    /// Column names and rows as display strings.
    pub fn to_strings(&self) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let headers = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for b in &self.batches {
            let formatters = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ServiceError::Execution(e.to_string()))?;
            for i in 0..b.num_rows() {
                rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
            }
        }
        Ok((headers, rows))
    }

    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}
