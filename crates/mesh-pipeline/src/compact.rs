//! Compaction (`mesh optimize`, docs/storage.md): rewriting the small
//! files of each output's current release into target-sized ones, as a
//! Delta version that changes no data.
//!
//! A compaction is a maintenance run (cause [`OPTIMIZE_CAUSE`]): it holds
//! the product's lease, so no build publishes while it rewrites, and a
//! process that dies during one is recovered like any run. The release
//! keeps its number; the catalog points it at the new files and records
//! the replaced ones, which stay on the store (readers that started
//! before still read them) until `mesh vacuum` removes them.
//!
//! Only the current release can be compacted: a Delta commit always
//! builds on the newest version, and older releases stay as written.

use std::collections::BTreeSet;

use chrono::Utc;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::ident;
use datafusion::prelude::ParquetReadOptions;
use deltalake::DeltaTable;
use futures::StreamExt;
use mesh_catalog::{
    CatalogStore, Compaction, OPTIMIZE_CAUSE, OutputRecord, ProductRecord, Publication, RunId,
    RunRecord, RunStatus,
};
use mesh_query::schema::arrow_schema;
use mesh_query::transform_context;
use mesh_spec::{Output, ProductDescriptor};
use mesh_storage::{
    LiveFile, StagedWriter, commit_compaction, commits_after, live_files, remove_run_files,
    table_url,
};
use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::runner::{Runner, layout_of};

/// The file size delta-rs rolls to when an output declares none.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 100 * 1024 * 1024;

/// What compacting one output's current release did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutputCompaction {
    /// `<domain>.<output>`.
    pub output: String,
    /// The release (data version) whose files were rewritten.
    pub release: i64,
    /// The Delta version that holds the rewritten files.
    pub delta_version: u64,
    pub files_before: usize,
    pub files_after: usize,
    /// Small files rewritten, and their bytes.
    pub files_rewritten: usize,
    pub bytes_rewritten: u64,
    /// Files written in their place, and their bytes.
    pub files_written: usize,
    pub bytes_written: u64,
    pub rows: u64,
}

/// What `mesh optimize` did to one product.
#[derive(Debug, Clone, Serialize)]
pub struct Optimized {
    pub product: String,
    /// The maintenance run, when there was anything to compact.
    pub run: Option<RunRecord>,
    pub outputs: Vec<OutputCompaction>,
}

/// The small files of an output's current release, when there are at
/// least `min_small` of them.
struct Candidate {
    output: Output,
    record: OutputRecord,
    publication: Publication,
    table: DeltaTable,
    live: Vec<LiveFile>,
    small: Vec<LiveFile>,
    target: u64,
}

impl Runner {
    /// Compacts the current release of each output of `p` that has at
    /// least `min_small` files under half its target size. Records a
    /// maintenance run only when there is something to compact; fails
    /// with the catalog's `RunBusy` while a build holds the product.
    pub async fn optimize(
        &self,
        p: &ProductDescriptor,
        record: &ProductRecord,
        min_small: usize,
    ) -> Result<Optimized> {
        let mut optimized = Optimized {
            product: record.product.to_string(),
            run: None,
            outputs: Vec::new(),
        };
        // A first look without the lease: most calls find nothing to do.
        if self
            .candidates(p, record, min_small, false)
            .await?
            .is_empty()
        {
            return Ok(optimized);
        }
        let mut run = RunRecord::begin(
            record.product.clone(),
            record.version.clone(),
            OPTIMIZE_CAUSE,
        );
        self.catalog
            .start_run(&run, &self.holder, self.lease_until())
            .await?;
        let _heartbeat = crate::lease::Heartbeat::start(
            self.catalog.clone(),
            run.id.clone(),
            self.holder.clone(),
            self.lease,
        );
        let outcome = async {
            // Under the lease, the releases are as they will stay.
            for c in self.candidates(p, record, min_small, true).await? {
                let name = format!("{}.{}", c.record.domain, c.record.output);
                let done = self.compact(c, &run.id, &record.version).await?;
                run.log.push(format!(
                    "{name}: release {} compacted from {} files to {} ({} small files, {} bytes, rewritten as {} files, {} bytes; {} rows); Delta version {}",
                    done.release,
                    done.files_before,
                    done.files_after,
                    done.files_rewritten,
                    done.bytes_rewritten,
                    done.files_written,
                    done.bytes_written,
                    done.rows,
                    done.delta_version
                ));
                optimized.outputs.push(done);
            }
            Ok::<_, PipelineError>(())
        }
        .await;
        run.finished_at = Some(Utc::now());
        run.duration_ms = Some((Utc::now() - run.started_at).num_milliseconds());
        run.status = match &outcome {
            Ok(()) if optimized.outputs.is_empty() => RunStatus::UpToDate,
            Ok(()) => RunStatus::Succeeded,
            Err(e) => {
                run.error = Some(e.to_string());
                RunStatus::Failed
            }
        };
        self.catalog.finish_run(&run).await?;
        outcome?;
        optimized.run = Some(run);
        Ok(optimized)
    }

    /// The outputs worth compacting: their current release has at least
    /// `min_small` small files. `leased`: this process holds the
    /// product's lease, so versions the Delta log holds beyond the
    /// release are compactions whose recording stopped half-way, recorded
    /// first. Without the lease it is only a look: a build may have
    /// committed and not yet recorded its release.
    async fn candidates(
        &self,
        p: &ProductDescriptor,
        record: &ProductRecord,
        min_small: usize,
        leased: bool,
    ) -> Result<Vec<Candidate>> {
        let mut found = Vec::new();
        for o in &record.outputs {
            let Some(output) = p.outputs.iter().find(|d| d.name.value == o.output) else {
                continue;
            };
            let Some((publication, table)) =
                adopt_compactions(self.catalog.as_ref(), o, leased).await?
            else {
                continue;
            };
            let live = live_files(&table).await?;
            let target = output
                .target_file_size
                .as_ref()
                .map_or(DEFAULT_TARGET_FILE_SIZE, |s| s.value);
            let small: Vec<LiveFile> = live
                .iter()
                .filter(|f| f.bytes < target / 2)
                .cloned()
                .collect();
            if small.len() >= min_small.max(2) {
                found.push(Candidate {
                    output: output.clone(),
                    record: o.clone(),
                    publication,
                    table,
                    live,
                    small,
                    target,
                });
            }
        }
        Ok(found)
    }

    /// Rewrites one output's small files, commits them, and points the
    /// release at them. Staged files are removed on any failure.
    async fn compact(
        &self,
        c: Candidate,
        run_id: &RunId,
        product_version: &str,
    ) -> Result<OutputCompaction> {
        let name = format!("{}.{}", c.record.domain, c.record.output);
        let location = table_url(&c.record.location)?;
        let rewritten = async {
            let adds = self.rewrite(&c, run_id).await?;
            let removes: Vec<String> = c.small.iter().map(|f| f.path.clone()).collect();
            let version = commit_compaction(
                &c.table,
                adds.clone(),
                &removes,
                &run_id.0,
                product_version,
                c.publication.table_version,
                c.target,
            )
            .await?;
            Ok::<_, PipelineError>((adds, version))
        }
        .await;
        let (adds, version) = match rewritten {
            Ok(done) => done,
            Err(e) => {
                remove_run_files(&location, &run_id.0).await?;
                return Err(e);
            }
        };
        let small: BTreeSet<&str> = c.small.iter().map(|f| f.path.as_str()).collect();
        let mut files: Vec<String> = c
            .live
            .iter()
            .filter(|f| !small.contains(f.path.as_str()))
            .map(|f| f.path.clone())
            .chain(adds.iter().map(|a| a.path.clone()))
            .collect();
        files.sort();
        self.catalog
            .record_compaction(&Compaction {
                domain: c.record.domain.clone(),
                output: c.record.output.clone(),
                table_version: c.publication.table_version,
                read_version: version as i64,
                files: files.clone(),
                superseded: c.small.iter().map(|f| f.path.clone()).collect(),
                run_id: run_id.clone(),
            })
            .await?;
        Ok(OutputCompaction {
            output: name,
            release: c.publication.table_version,
            delta_version: version,
            files_before: c.live.len(),
            files_after: files.len(),
            files_rewritten: c.small.len(),
            bytes_rewritten: c.small.iter().map(|f| f.bytes).sum(),
            files_written: adds.len(),
            bytes_written: adds.iter().map(|a| a.size.max(0) as u64).sum(),
            rows: c.small.iter().filter_map(|f| f.rows).sum(),
        })
    }

    /// Reads the small files in one stream (sorted again by the output's
    /// clustering columns) and writes them as target-sized files. The
    /// rows written must be the rows the log records for the files read.
    async fn rewrite(&self, c: &Candidate, run_id: &RunId) -> Result<Vec<deltalake::kernel::Add>> {
        let name = format!("{}.{}", c.record.domain, c.record.output);
        let ctx = transform_context(Some(self.runtime.clone()));
        let schema = arrow_schema(&c.output.columns);
        let root = c.table.table_url().clone();
        mesh_storage::s3::register_store(&self.runtime, &root)?;
        let urls: Vec<String> = c
            .small
            .iter()
            .map(|f| root.join(&f.path).map(|u| u.to_string()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| PipelineError::Internal(e.to_string()))?;
        let mut df = ctx
            .read_parquet(urls, ParquetReadOptions::default().schema(&schema))
            .await?;
        if !c.output.cluster_by.is_empty() {
            let order = c
                .output
                .cluster_by
                .iter()
                .map(|col| ident(col.as_str()).sort(true, true))
                .collect();
            df = df.sort(order)?;
        }
        let mut stream = df.execute_stream().await?;
        let mut writer =
            StagedWriter::new(&c.table, &run_id.0, schema.clone(), layout_of(&c.output));
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                .map_err(|e| PipelineError::Internal(e.to_string()))?;
            writer.write(&batch).await?;
        }
        let written = writer.rows();
        let adds = writer.finish().await?;
        let expected: Option<u64> = c.small.iter().map(|f| f.rows).sum();
        if let Some(expected) = expected
            && expected != written
        {
            return Err(PipelineError::Output {
                output: name,
                message: format!(
                    "compaction read {written} rows where the log records {expected}; nothing was committed"
                ),
            });
        }
        Ok(adds)
    }
}

/// The current release of an output, once every compaction of it the
/// Delta log holds is recorded in the catalog (when `leased`: only the
/// holder of the product's lease may), and its table at the newest
/// version. `None` before the first release. Fails when the lease is
/// held and the log holds a commit that is neither (a run that published
/// without recording it: `mesh run` recovers that first).
pub(crate) async fn adopt_compactions(
    catalog: &dyn CatalogStore,
    o: &OutputRecord,
    leased: bool,
) -> Result<Option<(Publication, DeltaTable)>> {
    let Some(mut current) = catalog.current_publication(&o.domain, &o.output).await? else {
        return Ok(None);
    };
    let table = mesh_storage::open(&table_url(&o.location)?, None).await?;
    let read = current.read_version.unwrap_or(current.table_version);
    if !leased {
        return Ok(Some((current, table)));
    }
    let commits = commits_after(&table, read as u64).await?;
    if commits.is_empty() {
        return Ok(Some((current, table)));
    }
    let name = format!("{}.{}", o.domain, o.output);
    let mut superseded = BTreeSet::new();
    let mut run_id = None;
    for c in &commits {
        match c {
            Some(c) if c.release == current.table_version => {
                superseded.extend(c.removed.iter().cloned());
                run_id = Some(c.run_id.clone());
            }
            _ => {
                return Err(PipelineError::Output {
                    output: name,
                    message: format!(
                        "its Delta log holds versions after {read} that the catalog does not record; a run may have stopped after committing: `mesh run {}` recovers it",
                        o.product
                    ),
                });
            }
        }
    }
    // The commits run up to the version `table` is loaded at.
    let newest = commits.len() as i64 + read;
    let files: Vec<String> = live_files(&table)
        .await?
        .into_iter()
        .map(|f| f.path)
        .collect();
    let compaction = Compaction {
        domain: o.domain.clone(),
        output: o.output.clone(),
        table_version: current.table_version,
        read_version: newest,
        superseded: superseded
            .into_iter()
            .filter(|s| !files.contains(s))
            .collect(),
        files: files.clone(),
        run_id: RunId(run_id.unwrap_or_default()),
    };
    catalog.record_compaction(&compaction).await?;
    current.files = Some(files);
    current.read_version = Some(newest);
    Ok(Some((current, table)))
}
