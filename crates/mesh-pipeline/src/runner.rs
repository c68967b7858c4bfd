//! Building one product: read inputs, transform, stage, check, publish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{cast, ident};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use mesh_catalog::{
    CatalogStore, CheckResult, OutputRecord, ProductRecord, Publication, RunId, RunRecord,
    RunStatus, RunStep,
};
use mesh_query::schema::{arrow_schema, arrow_type};
use mesh_query::source::{csv_header_mismatch, register_source};
use mesh_query::{At, Resolver, transform_context};
use mesh_spec::sql::load_sql;
use mesh_spec::validate::source_files;
use mesh_spec::{InputKind, Output, ProductDescriptor};
use mesh_storage::{
    Layout, StagedWriter, TableColumn, commit_overwrite, ensure_table, remove_run_files, table_url,
};

use crate::check::{checks_for, run_checks};

/// Rows per row group of a clustered output: about DuckDB's row group,
/// an eighth of the Parquet writer's default, so a selective predicate on
/// the clustering columns skips most of a file.
const CLUSTERED_ROW_GROUP_ROWS: usize = 128 * 1024;
use crate::error::{PipelineError, Result};

/// How an output's files are laid out, as it declares (docs/storage.md).
pub(crate) fn layout_of(output: &Output) -> Layout {
    Layout {
        target_file_size: output.target_file_size.as_ref().map(|s| s.value),
        row_group_rows: (!output.cluster_by.is_empty()).then_some(CLUSTERED_ROW_GROUP_ROWS),
    }
}

/// Reports progress while products build.
pub trait Observer: Send + Sync {
    fn started(&self, _product: &str) {}
    /// A run began (its record holds its id and start time).
    fn run_started(&self, _run: &RunRecord) {}
    fn rows(&self, _product: &str, _rows: u64) {}
    fn finished(&self, _run: &RunRecord) {}
    /// Another process is running `product` (run `run_id`); this one waits.
    fn waiting(&self, _product: &str, _run_id: &str, _holder: &str) {}
}

/// An observer that reports nothing.
pub struct Silent;
impl Observer for Silent {}

/// Names the part that failed while a transform ran: reading a source file
/// (bad bytes, corrupt Parquet, malformed JSON) or the SQL itself.
fn run_time_error(
    output: &str,
    sql_file: &str,
    e: datafusion::error::DataFusionError,
) -> PipelineError {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    let message = e.strip_backtrace();
    let reading = match e.find_root() {
        DataFusionError::ParquetError(_) | DataFusionError::IoError(_) => true,
        DataFusionError::ArrowError(a, _) => matches!(
            a.as_ref(),
            ArrowError::CsvError(_)
                | ArrowError::JsonError(_)
                | ArrowError::ParquetError(_)
                | ArrowError::IoError(..)
        ),
        _ => false,
    };
    if reading {
        PipelineError::InputRead {
            output: output.to_string(),
            message,
        }
    } else {
        PipelineError::SqlRuntime {
            output: output.to_string(),
            file: sql_file.to_string(),
            message,
        }
    }
}

/// A run-time error about a null in a non-nullable column, told with the
/// source file and row that hold it, when a source declares the column.
async fn located_null(p: &ProductDescriptor, e: PipelineError) -> PipelineError {
    const NULLS: &str = "is declared as non-nullable but contains null values";
    let message = match &e {
        PipelineError::SqlRuntime { message, .. } | PipelineError::InputRead { message, .. } => {
            message
        }
        _ => return e,
    };
    let Some(column) = message
        .split("Column '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .filter(|_| message.contains(NULLS))
    else {
        return e;
    };
    match mesh_query::source::locate_null(p, column).await {
        Some(found) => match e {
            PipelineError::SqlRuntime { output, file, .. } => PipelineError::SqlRuntime {
                output,
                file,
                message: found,
            },
            PipelineError::InputRead { output, .. } => PipelineError::InputRead {
                output,
                message: found,
            },
            other => other,
        },
        None => e,
    }
}

/// Test hook: `MESH_FAILPOINT=<name>` stops the process at that point
/// (announced on stderr) so a test can kill it there.
fn failpoint(name: &str) {
    if std::env::var("MESH_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name} reached");
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

/// The output an input reads: a requirement the newest major does not
/// meet reads the older major kept alive for it (the catalog is read
/// again only then).
pub(crate) async fn upstream_output(
    catalog: &dyn CatalogStore,
    input: &str,
    product: &mesh_spec::ProductRef,
    output: Option<String>,
    version: Option<&semver::VersionReq>,
) -> Result<OutputRecord> {
    let missing = || PipelineError::UpstreamMissing {
        input: input.into(),
        upstream: product.to_string(),
    };
    let upstream = catalog.product(product).await?.ok_or_else(missing)?;
    // The catalog is read whole only when the newest major does not meet
    // the requirement (an older line may).
    let meets = version
        .is_none_or(|req| semver::Version::parse(&upstream.version).is_ok_and(|v| req.matches(&v)));
    let all = if meets {
        vec![upstream]
    } else {
        catalog.products().await?
    };
    mesh_catalog::input_output(&all, product, output.as_deref(), version)
        .cloned()
        .ok_or_else(missing)
}

/// Rows the leaves of an executed plan produced: what it read.
fn rows_read(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> Option<u64> {
    let children = plan.children();
    if children.is_empty() {
        return plan
            .metrics()
            .and_then(|m| m.output_rows())
            .map(|n| n as u64);
    }
    let mut total = None;
    for c in children {
        if let Some(n) = rows_read(c.as_ref()) {
            total = Some(total.unwrap_or(0) + n);
        }
    }
    total
}

/// One output staged and checked, waiting to be published.
struct Staged {
    output: Output,
    location: url::Url,
    table: deltalake::DeltaTable,
    adds: Vec<deltalake::kernel::Add>,
    rows: u64,
    /// Rows the transform read from its inputs, from the plan's metrics.
    rows_in: Option<u64>,
}

/// Builds products against a catalog.
pub struct Runner {
    pub catalog: Arc<dyn CatalogStore>,
    pub runtime: Arc<RuntimeEnv>,
    /// This process, as the holder of the leases of its runs.
    pub holder: String,
    /// How long a run's lease lasts without a heartbeat.
    pub lease: Duration,
    /// After a run publishes, compact any release it left with at least
    /// this many small files (`compaction:` in mesh.yaml); never if `None`.
    pub auto_compact: Option<usize>,
}

/// Why and how a run is started.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// `manual`, `cron`, `upstream`, `retry` or `backfill`.
    pub cause: String,
    pub attempt: i64,
    /// Run even when nothing the product reads changed.
    pub force: bool,
}

impl RunRequest {
    pub fn manual(force: bool) -> Self {
        RunRequest {
            cause: "manual".into(),
            attempt: 1,
            force,
        }
    }
}

/// Milliseconds since `started`.
fn since(started: Instant) -> i64 {
    started.elapsed().as_millis() as i64
}

impl Runner {
    pub fn new(catalog: Arc<dyn CatalogStore>) -> Self {
        Runner {
            catalog,
            runtime: Arc::new(RuntimeEnv::default()),
            holder: crate::lease::this_process(),
            lease: crate::lease::DEFAULT_LEASE,
            auto_compact: None,
        }
    }

    /// A run of `p` for `request`, not yet recorded.
    pub fn begin(&self, p: &ProductDescriptor, request: &RunRequest) -> RunRecord {
        let mut run =
            RunRecord::begin(p.product_ref(), p.version.value.to_string(), &request.cause);
        run.attempt = request.attempt;
        run
    }

    /// The lease deadline of a run taken now.
    pub fn lease_until(&self) -> i64 {
        crate::lease::now_ms() + self.lease.as_millis() as i64
    }

    /// Builds one deployed product; the run is recorded whatever happens.
    /// Fails with the catalog's `RunBusy` while another process runs it.
    pub async fn run(
        &self,
        p: &ProductDescriptor,
        record: &ProductRecord,
        request: &RunRequest,
        observer: &dyn Observer,
    ) -> Result<RunRecord> {
        let run = self.begin(p, request);
        self.catalog
            .start_run(&run, &self.holder, self.lease_until())
            .await?;
        self.execute(p, record, run, request.force, observer).await
    }

    /// Builds a product whose run was started (its lease taken) already:
    /// publishes nothing when nothing it reads changed, unless `force`.
    pub async fn execute(
        &self,
        p: &ProductDescriptor,
        record: &ProductRecord,
        mut run: RunRecord,
        force: bool,
        observer: &dyn Observer,
    ) -> Result<RunRecord> {
        let started = Instant::now();
        let _heartbeat = crate::lease::Heartbeat::start(
            self.catalog.clone(),
            run.id.clone(),
            self.holder.clone(),
            self.lease,
        );
        observer.started(&run.product.to_string());
        observer.run_started(&run);
        let outcome = async {
            let fp = crate::fingerprint::fingerprint(self.catalog.as_ref(), p, record).await?;
            run.inputs = Some(fp.clone());
            if force {
                run.log.push("forced: runs whatever changed".into());
            } else if let Some(last) = crate::fingerprint::unchanged_since(
                self.catalog.as_ref(),
                &Resolver::new(self.catalog.clone(), self.runtime.clone()),
                record,
                &fp,
            )
            .await?
            {
                run.status = RunStatus::UpToDate;
                run.log.push(format!(
                    "nothing it reads changed since run {} ({}); nothing published",
                    last.id,
                    last.started_at.format("%Y-%m-%d %H:%M:%S")
                ));
                return Ok(());
            }
            self.build(p, record, &mut run, started, observer).await
        }
        .await;
        run.finished_at = Some(Utc::now());
        run.duration_ms = Some(since(started));
        if let Err(e) = outcome {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
        }
        self.catalog.finish_run(&run).await?;
        observer.finished(&run);
        // A release with fewer files than the threshold has fewer small
        // ones: most runs decide this without opening a table.
        if let Some(min_small) = self.auto_compact
            && run.status == RunStatus::Succeeded
            && run
                .publications
                .iter()
                .any(|p| p.files.as_ref().is_none_or(|f| f.len() >= min_small))
        {
            // A maintenance run of its own, once this run's lease is
            // released; one that fails is recorded and does not fail
            // the build, which published already.
            if let Err(e) = self.optimize(p, record, min_small).await {
                tracing::warn!(product = %run.product, "compaction after run {} did not finish: {e}", run.id);
            }
        }
        Ok(run)
    }

    async fn build(
        &self,
        p: &ProductDescriptor,
        record: &ProductRecord,
        run: &mut RunRecord,
        started: Instant,
        observer: &dyn Observer,
    ) -> Result<()> {
        let ctx = transform_context(Some(self.runtime.clone()));
        let at = since(started);
        self.register_inputs(&ctx, p).await?;
        run.steps.push(RunStep {
            step: "read".into(),
            output: None,
            start_ms: at,
            duration_ms: since(started) - at,
            rows_in: None,
            rows_out: None,
            bytes: None,
            detail: Some(format!("{} input(s) opened", p.inputs.len())),
        });
        let mut staged = Vec::new();
        let mut failed = false;
        let result = async {
            for output in &p.outputs {
                let at = since(started);
                let s = self
                    .stage(&ctx, p, record, output, &run.id, observer)
                    .await?;
                run.steps.push(RunStep {
                    step: "transform".into(),
                    output: Some(output.name.to_string()),
                    start_ms: at,
                    duration_ms: since(started) - at,
                    rows_in: s.rows_in.map(|n| n as i64),
                    rows_out: Some(s.rows as i64),
                    bytes: Some(s.adds.iter().map(|a| a.size).sum()),
                    detail: Some(format!("{} file(s) staged", s.adds.len())),
                });
                let at = since(started);
                let results = self.audit(&s).await?;
                let passed = results.iter().filter(|r| r.passed).count();
                run.steps.push(RunStep {
                    step: "checks".into(),
                    output: Some(output.name.to_string()),
                    start_ms: at,
                    duration_ms: since(started) - at,
                    rows_in: Some(s.rows as i64),
                    rows_out: None,
                    bytes: None,
                    detail: Some(
                        results
                            .iter()
                            .map(|r| {
                                let verdict = match (r.passed, r.severity.as_str()) {
                                    (true, _) => "passed",
                                    (false, "warn") => "warned",
                                    (false, _) => "failed",
                                };
                                // Not `observed`: it may count rows some
                                // readers may not see (history.rs redacts it).
                                format!("{} {verdict}", r.name)
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                    .filter(|_| !results.is_empty())
                    .or(Some(format!("{passed} check(s)"))),
                });
                for r in &results {
                    match (r.passed, r.severity.as_str()) {
                        (true, _) => run.checks_passed += 1,
                        (false, "warn") => run.checks_warned += 1,
                        (false, _) => {
                            run.checks_failed += 1;
                            failed = true;
                        }
                    }
                }
                run.checks.extend(results);
                staged.push(s);
            }
            Ok::<(), PipelineError>(())
        }
        .await;
        failpoint("after-stage");
        if result.is_err() || failed {
            for s in &staged {
                remove_run_files(&s.location, &run.id.0).await?;
            }
            result?;
            let names: Vec<String> = run
                .checks
                .iter()
                .filter(|c| !c.passed && c.severity != "warn")
                .map(|c| format!("{}.{}", c.output, c.name))
                .collect();
            run.error = Some(format!(
                "blocking quality checks failed: {}; nothing was published",
                names.join(", ")
            ));
            run.status = RunStatus::Failed;
            return Ok(());
        }
        let mut rows = 0;
        let at = since(started);
        let mut bytes = 0;
        for s in staged {
            bytes += s.adds.iter().map(|a| a.size).sum::<i64>();
            let files = s.adds.iter().map(|a| a.path.clone()).collect();
            let columns = s
                .output
                .columns
                .iter()
                .map(|c| mesh_catalog::ColumnRecord {
                    name: c.name.to_string(),
                    ty: c.ty.to_string(),
                    nullable: c.nullable,
                })
                .collect();
            let version = commit_overwrite(&s.table, s.adds, &run.id.0, &run.version).await?;
            rows += s.rows;
            run.publications.push(Publication {
                domain: p.domain.value.clone(),
                output: s.output.name.value.clone(),
                table_version: version as i64,
                product_version: run.version.clone(),
                run_id: run.id.clone(),
                row_count: s.rows as i64,
                published_at: Utc::now(),
                files: Some(files),
                columns: Some(columns),
                read_version: None,
            });
        }
        run.steps.push(RunStep {
            step: "commit".into(),
            output: None,
            start_ms: at,
            duration_ms: since(started) - at,
            rows_in: None,
            rows_out: Some(rows as i64),
            bytes: Some(bytes),
            detail: Some(
                run.publications
                    .iter()
                    .map(|p| format!("{}.{} version {}", p.domain, p.output, p.table_version))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        });
        failpoint("after-commit");
        run.rows_written = Some(rows as i64);
        run.status = RunStatus::Succeeded;
        Ok(())
    }

    async fn register_inputs(&self, ctx: &SessionContext, p: &ProductDescriptor) -> Result<()> {
        let resolver = Resolver::new(self.catalog.clone(), self.runtime.clone());
        for input in &p.inputs {
            let name = input.name.as_str();
            match &input.kind {
                InputKind::Source(source) => {
                    if !source.path.value.contains("://") {
                        let files = source_files(&p.dir, source).map_err(|detail| {
                            PipelineError::SourceUnreadable {
                                input: name.into(),
                                file: source.path.value.clone(),
                                detail,
                            }
                        })?;
                        if files.is_empty() {
                            return Err(PipelineError::SourceMissing {
                                input: name.into(),
                                pattern: mesh_spec::validate::source_location(&p.dir, source)
                                    .display()
                                    .to_string(),
                            });
                        }
                        for file in &files {
                            match csv_header_mismatch(file, source) {
                                Ok(None) => {}
                                Ok(Some(found)) => {
                                    let declared = source
                                        .columns
                                        .iter()
                                        .flatten()
                                        .map(|c| c.name.to_string())
                                        .collect::<Vec<_>>();
                                    return Err(PipelineError::SourceColumns {
                                        input: name.into(),
                                        file: file.display().to_string(),
                                        found: found.join(", "),
                                        declared: declared.join(", "),
                                    });
                                }
                                Err(e) => {
                                    return Err(PipelineError::SourceUnreadable {
                                        input: name.into(),
                                        file: file.display().to_string(),
                                        detail: e.to_string(),
                                    });
                                }
                            }
                        }
                    }
                    register_source(ctx, name, &p.dir, source).await?;
                }
                InputKind::Product {
                    product,
                    output,
                    version,
                } => {
                    let out = upstream_output(
                        self.catalog.as_ref(),
                        name,
                        &product.value,
                        output.as_ref().map(|o| o.to_string()),
                        version.as_ref().map(|v| &v.value),
                    )
                    .await?;
                    let out = &out;
                    if self
                        .catalog
                        .current_publication(&out.domain, &out.output)
                        .await?
                        .is_none()
                    {
                        return Err(PipelineError::UpstreamNotPublished {
                            input: name.into(),
                            upstream: format!("{}.{}", out.domain, out.output),
                        });
                    }
                    let (provider, _) = resolver.provider(out, At::Current).await?;
                    ctx.register_table(name, provider)?;
                }
            }
        }
        Ok(())
    }

    /// Runs the SQL of `output` and writes its result as invisible files.
    async fn stage(
        &self,
        ctx: &SessionContext,
        p: &ProductDescriptor,
        record: &ProductRecord,
        output: &Output,
        run_id: &RunId,
        observer: &dyn Observer,
    ) -> Result<Staged> {
        let oname = output.name.to_string();
        let sql = p.sql_for(output).ok_or_else(|| PipelineError::Output {
            output: oname.clone(),
            message: "no SQL".into(),
        })?;
        let sql = load_sql(p, sql, Some(&record.sql_texts)).map_err(|d| PipelineError::Output {
            output: oname.clone(),
            message: d.message,
        })?;
        let sql_err = |e: datafusion::error::DataFusionError| PipelineError::Sql {
            output: oname.clone(),
            message: e.strip_backtrace(),
        };
        let df = ctx.sql(&sql.text).await.map_err(sql_err)?;
        let produced = df.schema().clone();
        let mut exprs = Vec::with_capacity(output.columns.len());
        for c in &output.columns {
            let Ok(field) = produced.field_with_unqualified_name(c.name.as_str()) else {
                return Err(PipelineError::Output {
                    output: oname.clone(),
                    message: format!(
                        "the SQL does not produce declared column `{}`",
                        c.name.value
                    ),
                });
            };
            // Never cast back silently: an upstream that widened a column
            // (`int` to `bigint`) needs this contract widened too.
            if !mesh_query::schema::accepts(&c.ty.value, field.data_type()) {
                let found = mesh_query::schema::contract_type(field.data_type())
                    .map_or_else(|| field.data_type().to_string(), |t| t.to_string());
                return Err(PipelineError::Output {
                    output: oname.clone(),
                    message: format!(
                        "column `{}` is declared `{}`, but the SQL produces `{found}` (an input widened it?); declare it `{found}`, or CAST in the SQL, and deploy",
                        c.name.value, c.ty.value
                    ),
                });
            }
            exprs
                .push(cast(ident(c.name.as_str()), arrow_type(&c.ty.value)).alias(c.name.as_str()));
        }
        let mut df = df.select(exprs).map_err(sql_err)?;
        // A clustered output is written in one sorted stream, so files and
        // row groups cover disjoint ranges their statistics can prune.
        if !output.cluster_by.is_empty() {
            let order = output
                .cluster_by
                .iter()
                .map(|c| ident(c.as_str()).sort(true, true))
                .collect();
            df = df.sort(order).map_err(sql_err)?;
        }
        let layout = layout_of(output);
        let schema = arrow_schema(&output.columns);
        let location_str = record
            .outputs
            .iter()
            .find(|o| o.output == output.name.value)
            .map(|o| o.location.clone())
            .ok_or_else(|| PipelineError::Output {
                output: oname.clone(),
                message: "not deployed; run `mesh deploy`".into(),
            })?;
        let location = table_url(&location_str)?;
        let columns: Vec<TableColumn> = output
            .columns
            .iter()
            .map(|c| TableColumn {
                name: c.name.to_string(),
                ty: c.ty.value.clone(),
                nullable: c.nullable,
            })
            .collect();
        let table = ensure_table(&location, &oname, &columns).await?;
        let sql_file = sql.file.path.display().to_string();
        let task = df.task_ctx();
        let plan = df
            .create_physical_plan()
            .await
            .map_err(|e| run_time_error(&oname, &sql_file, e))?;
        let streams =
            datafusion::physical_plan::execute_stream_partitioned(plan.clone(), Arc::new(task))
                .map_err(|e| run_time_error(&oname, &sql_file, e))?;
        let product = p.product_ref().to_string();
        let mut tasks = Vec::with_capacity(streams.len());
        for mut stream in streams {
            let mut writer = StagedWriter::new(&table, &run_id.0, schema.clone(), layout);
            let schema = schema.clone();
            let oname = oname.clone();
            let sql_file = sql_file.clone();
            // One task per partition, so partitions decode, encode and write
            // in parallel on the runtime's threads.
            tasks.push(tokio::spawn(async move {
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(|e| run_time_error(&oname, &sql_file, e))?;
                    let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                        .map_err(|e| PipelineError::Output {
                            output: oname.clone(),
                            message: format!("result does not fit the contract: {e}"),
                        })?;
                    writer.write(&batch).await?;
                }
                let rows = writer.rows();
                Ok::<_, PipelineError>((writer.finish().await?, rows))
            }));
        }
        let mut adds = Vec::new();
        let mut rows = 0;
        let results = futures::future::join_all(tasks).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(Ok((a, n))) => {
                    adds.extend(a);
                    rows += n;
                }
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(join) => {
                    first_err = first_err.or(Some(PipelineError::Internal(format!(
                        "writing output `{oname}` stopped: {join}"
                    ))))
                }
            }
        }
        if let Some(e) = first_err {
            remove_run_files(&location, &run_id.0).await?;
            return Err(located_null(p, e).await);
        }
        observer.rows(&product, rows);
        Ok(Staged {
            output: output.clone(),
            location,
            table,
            adds,
            rows,
            rows_in: rows_read(plan.as_ref()),
        })
    }

    /// Runs the output's checks on its staged files.
    async fn audit(&self, s: &Staged) -> Result<Vec<CheckResult>> {
        let ctx = transform_context(Some(self.runtime.clone()));
        let name = s.output.name.as_str();
        let schema = arrow_schema(&s.output.columns);
        if s.adds.is_empty() {
            ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
        } else {
            mesh_storage::s3::register_store(&self.runtime, &s.location)?;
            let files: Vec<String> = s
                .adds
                .iter()
                .map(|a| s.location.join(&a.path).map(|u| u.to_string()))
                .collect::<Result<_, _>>()
                .map_err(|e| PipelineError::Internal(e.to_string()))?;
            let df = ctx
                .read_parquet(files, ParquetReadOptions::default().schema(&schema))
                .await?;
            ctx.register_table(name, df.into_view())?;
        }
        if let Some(original) = &s.output.original_name {
            // SQL checks name the output as its descriptor does.
            let table = ctx.table_provider(name).await?;
            ctx.register_table(original.as_str(), table)?;
        }
        run_checks(&ctx, name, &checks_for(&s.output)).await
    }
}
