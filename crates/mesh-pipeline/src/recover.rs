//! Closing runs that a dead process left open.
//!
//! A run still marked `running` whose lease is stale (its holder died, or
//! stopped extending it) is taken over, atomically, by the process that
//! finds it. It either committed every output before the process died
//! (then its publications are recorded now, exactly as the run would
//! have) or it did not (then it is marked `abandoned` and the files it
//! staged are removed; any version it did commit stays unpublished).

use std::sync::Arc;

use chrono::Utc;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use mesh_catalog::{CatalogStore, OPTIMIZE_CAUSE, OutputRecord, Publication, RunRecord, RunStatus};
use mesh_storage::{find_run_commit, remove_run_files, run_dir, table_url};

use crate::error::Result;

async fn row_count(location: &url::Url, version: u64) -> Result<i64> {
    let table = mesh_storage::open(location, Some(version)).await?;
    let ctx = datafusion::prelude::SessionContext::new();
    let provider = table
        .table_provider()
        .await
        .map_err(|e| crate::PipelineError::Internal(e.to_string()))?;
    ctx.register_table("t", provider)?;
    let batches = ctx.sql("SELECT count(*) FROM t").await?.collect().await?;
    Ok(batches
        .first()
        .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0)))
}

/// Closes every run left `running` by a process that died or lost its
/// lease; returns them as closed. `holder` is this process.
pub async fn recover(catalog: &Arc<dyn CatalogStore>, holder: &str) -> Result<Vec<RunRecord>> {
    let mut closed = Vec::new();
    let now = crate::lease::now_ms();
    let leases = catalog.leases().await?;
    for mut run in catalog.running_runs().await? {
        let lease = leases.iter().find(|l| l.run_id == run.id);
        if lease.is_some_and(|l| !crate::lease::is_stale(l, now)) {
            continue;
        }
        let until = now + crate::lease::DEFAULT_LEASE.as_millis() as i64;
        if !catalog
            .take_lease(&run, lease.map(|l| l.holder.as_str()), holder, until)
            .await?
        {
            continue;
        }
        let outputs = match catalog.product(&run.product).await? {
            Some(p) => p.outputs,
            None => Vec::new(),
        };
        if run.cause == OPTIMIZE_CAUSE {
            match recover_compaction(catalog.as_ref(), &mut run, &outputs).await {
                Ok(()) => {
                    catalog.finish_run(&run).await?;
                    closed.push(run);
                }
                // A build that published without recording it must be
                // recovered first; this run is looked at again later.
                Err(e) => tracing::warn!(run = %run.id, "compaction not recovered yet: {e}"),
            }
            continue;
        }
        let mut publications = Vec::new();
        for o in &outputs {
            let location = table_url(&o.location)?;
            let current = catalog.current_publication(&o.domain, &o.output).await?;
            let after = current.map(|p| p.table_version as u64);
            if let Some(version) = find_run_commit(&location, &run.id.0, after).await? {
                publications.push(Publication {
                    domain: o.domain.clone(),
                    output: o.output.clone(),
                    table_version: version as i64,
                    product_version: run.version.clone(),
                    run_id: run.id.clone(),
                    row_count: row_count(&location, version).await?,
                    published_at: Utc::now(),
                    // Readers of this version go through the Delta log.
                    files: None,
                    columns: None,
                    read_version: None,
                });
            }
        }
        let now = Utc::now();
        run.finished_at = Some(now);
        run.duration_ms = Some((now - run.started_at).num_milliseconds());
        if !outputs.is_empty() && publications.len() == outputs.len() {
            run.status = RunStatus::Succeeded;
            run.rows_written = Some(publications.iter().map(|p| p.row_count).sum());
            run.error =
                Some("the process stopped after publishing; recovered from the Delta log".into());
            run.publications = publications;
        } else {
            for o in &outputs {
                let location = table_url(&o.location)?;
                if !publications.iter().any(|p| p.output == o.output) {
                    remove_run_files(&location, &run.id.0).await?;
                }
            }
            run.status = RunStatus::Abandoned;
            run.error = Some("the process stopped during this run; nothing was published and its staged files were removed".into());
        }
        catalog.finish_run(&run).await?;
        closed.push(run);
    }
    Ok(closed)
}

/// Closes a compaction a dead process left: what it committed is
/// recorded (the release then reads the compacted files); what it only
/// staged is removed.
async fn recover_compaction(
    catalog: &dyn CatalogStore,
    run: &mut RunRecord,
    outputs: &[OutputRecord],
) -> Result<()> {
    let prefix = format!("{}/", run_dir(&run.id.0));
    let mut committed = 0;
    for o in outputs {
        let current = crate::compact::adopt_compactions(catalog, o, true).await?;
        let reads_run_files = current
            .and_then(|(p, _)| p.files)
            .is_some_and(|files| files.iter().any(|f| f.starts_with(&prefix)));
        if reads_run_files {
            committed += 1;
        } else {
            remove_run_files(&table_url(&o.location)?, &run.id.0).await?;
        }
    }
    let now = Utc::now();
    run.finished_at = Some(now);
    run.duration_ms = Some((now - run.started_at).num_milliseconds());
    if committed > 0 {
        run.status = RunStatus::Succeeded;
        run.error =
            Some("the process stopped after compacting; recovered from the Delta log".into());
    } else {
        run.status = RunStatus::Abandoned;
        run.error = Some(
            "the process stopped during this compaction; nothing was committed and its staged files were removed"
                .into(),
        );
    }
    Ok(())
}
