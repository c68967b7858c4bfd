//! Building one product: read inputs, transform, stage, check, publish.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{cast, ident};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use mesh_catalog::{
    CatalogStore, CheckResult, ProductRecord, Publication, RunId, RunRecord, RunStatus,
};
use mesh_query::schema::{arrow_schema, arrow_type};
use mesh_query::source::{csv_header_mismatch, register_source};
use mesh_query::{At, Resolver, transform_context};
use mesh_spec::sql::load_sql;
use mesh_spec::validate::source_files;
use mesh_spec::{InputKind, Output, ProductDescriptor};
use mesh_storage::{
    StagedWriter, TableColumn, commit_overwrite, ensure_table, remove_run_files, table_url,
};

use crate::check::{checks_for, run_checks};
use crate::error::{PipelineError, Result};

/// Reports progress while products build.
pub trait Observer: Send + Sync {
    fn started(&self, _product: &str) {}
    fn rows(&self, _product: &str, _rows: u64) {}
    fn finished(&self, _run: &RunRecord) {}
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

/// One output staged and checked, waiting to be published.
struct Staged {
    output: Output,
    location: url::Url,
    table: deltalake::DeltaTable,
    adds: Vec<deltalake::kernel::Add>,
    rows: u64,
}

/// Builds products against a catalog.
pub struct Runner {
    pub catalog: Arc<dyn CatalogStore>,
    pub runtime: Arc<RuntimeEnv>,
}

impl Runner {
    pub fn new(catalog: Arc<dyn CatalogStore>) -> Self {
        Runner {
            catalog,
            runtime: Arc::new(RuntimeEnv::default()),
        }
    }

    /// Builds one deployed product; the run is recorded whatever happens.
    pub async fn run(
        &self,
        p: &ProductDescriptor,
        record: &ProductRecord,
        observer: &dyn Observer,
    ) -> Result<RunRecord> {
        let started = Instant::now();
        let mut run = RunRecord {
            id: RunId::new(),
            product: p.product_ref(),
            version: p.version.value.to_string(),
            status: RunStatus::Running,
            started_at: Utc::now(),
            finished_at: None,
            duration_ms: None,
            rows_written: None,
            checks_passed: 0,
            checks_failed: 0,
            checks_warned: 0,
            error: None,
            checks: Vec::new(),
            publications: Vec::new(),
        };
        self.catalog.start_run(&run).await?;
        observer.started(&run.product.to_string());
        let outcome = self.build(p, record, &mut run, observer).await;
        run.finished_at = Some(Utc::now());
        run.duration_ms = Some(started.elapsed().as_millis() as i64);
        match outcome {
            Ok(()) => {}
            Err(e) => {
                run.status = RunStatus::Failed;
                run.error = Some(e.to_string());
            }
        }
        self.catalog.finish_run(&run).await?;
        observer.finished(&run);
        Ok(run)
    }

    async fn build(
        &self,
        p: &ProductDescriptor,
        record: &ProductRecord,
        run: &mut RunRecord,
        observer: &dyn Observer,
    ) -> Result<()> {
        let ctx = transform_context(Some(self.runtime.clone()));
        self.register_inputs(&ctx, p).await?;
        let mut staged = Vec::new();
        let mut failed = false;
        let result = async {
            for output in &p.outputs {
                let s = self
                    .stage(&ctx, p, record, output, &run.id, observer)
                    .await?;
                let results = self.audit(&s).await?;
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
        for s in staged {
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
            });
        }
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
                    let mut upstream =
                        self.catalog.product(&product.value).await?.ok_or_else(|| {
                            PipelineError::UpstreamMissing {
                                input: name.into(),
                                upstream: product.value.to_string(),
                            }
                        })?;
                    // A requirement the newest major does not meet reads the
                    // older major kept alive for it (the catalog is read
                    // again only then).
                    let mut output_name = output.as_ref().map(|o| o.to_string());
                    if let Some(req) = version
                        && !semver::Version::parse(&upstream.version)
                            .is_ok_and(|v| req.value.matches(&v))
                    {
                        let all = self.catalog.products().await?;
                        if let Some(line) =
                            mesh_catalog::matching_line(&all, &product.value, Some(&req.value))
                        {
                            output_name = output_name.map(|o| mesh_catalog::line_output(&o, line));
                            upstream = line.clone();
                        }
                    }
                    let out = match &output_name {
                        Some(o) => upstream.outputs.iter().find(|x| x.output.as_str() == o),
                        None => upstream.outputs.first(),
                    }
                    .ok_or_else(|| PipelineError::UpstreamMissing {
                        input: name.into(),
                        upstream: product.value.to_string(),
                    })?;
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
        let df = df.select(exprs).map_err(sql_err)?;
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
        let streams = df
            .execute_stream_partitioned()
            .await
            .map_err(|e| run_time_error(&oname, &sql_file, e))?;
        let product = p.product_ref().to_string();
        let mut tasks = Vec::with_capacity(streams.len());
        for mut stream in streams {
            let mut writer = StagedWriter::new(&table, &run_id.0, schema.clone());
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
