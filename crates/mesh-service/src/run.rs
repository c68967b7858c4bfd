//! Building products on demand (`mesh run`): in dependency order, each
//! run under its product's lease, skipping what is up to date unless
//! forced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mesh_catalog::{ProductRecord, RunRecord, RunStatus, matching_line};
use mesh_pipeline::{Observer, Runner};
use mesh_spec::{Diagnostic, ProductDescriptor, ProductRef};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// How `Mesh::run` builds.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Publish even when nothing a product reads changed.
    pub force: bool,
    /// Recorded as the runs' cause: `manual` or `backfill`.
    pub cause: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            force: false,
            cause: "manual".into(),
        }
    }
}

/// What each deployed product reads: an input pinned to an older major
/// reads that major's line.
pub(crate) fn read_edges(
    deployed: &[(ProductRecord, ProductDescriptor)],
) -> BTreeMap<ProductRef, BTreeSet<ProductRef>> {
    let records: Vec<ProductRecord> = deployed.iter().map(|(r, _)| r.clone()).collect();
    deployed
        .iter()
        .map(|(r, p)| {
            let reads = p
                .inputs
                .iter()
                .filter_map(|i| match &i.kind {
                    mesh_spec::InputKind::Product {
                        product, version, ..
                    } => Some(
                        matching_line(&records, &product.value, version.as_ref().map(|v| &v.value))
                            .map_or_else(|| product.value.clone(), |l| l.product.clone()),
                    ),
                    mesh_spec::InputKind::Source(_) => None,
                })
                .collect();
            (r.product.clone(), reads)
        })
        .collect()
}

impl Mesh {
    /// Builds products in dependency order; all deployed products if
    /// `selection` is empty. A product another process is running is
    /// waited for; runs its dead holders left are recovered first.
    pub async fn run(
        &self,
        selection: &[String],
        options: &RunOptions,
        observer: &dyn Observer,
    ) -> Result<(Vec<RunRecord>, Vec<RunRecord>)> {
        let runner = self.runner();
        let recovered = mesh_pipeline::recover::recover(&self.catalog, &runner.holder).await?;
        let deployed = self.deployed().await?;
        let known: Vec<ProductRef> = deployed.iter().map(|(r, _)| r.product.clone()).collect();
        let wanted: BTreeSet<ProductRef> = if selection.is_empty() {
            known.iter().cloned().collect()
        } else {
            selection
                .iter()
                .map(|s| self.resolve(s, &known))
                .collect::<Result<_>>()?
        };
        let edges = read_edges(&deployed);
        let order = mesh_spec::graph::build_order(&edges).map_err(|c| ServiceError::Invalid {
            diagnostics: vec![Diagnostic::error(
                "dependency-cycle",
                format!("dependency cycle: {c}"),
            )],
        })?;
        let by_ref: BTreeMap<ProductRef, &(ProductRecord, ProductDescriptor)> =
            deployed.iter().map(|d| (d.0.product.clone(), d)).collect();
        // Each run's OpenLineage events, told before the caller's observer.
        let graph = self.lineage_graph().await?;
        let contexts = deployed
            .iter()
            .filter(|(r, _)| wanted.contains(&r.product))
            .map(|(r, p)| {
                (
                    r.product.to_string(),
                    crate::openlineage::RunContext {
                        descriptor: Arc::new(p.clone()),
                        graph: graph.clone(),
                    },
                )
            })
            .collect();
        let lineage_observer = crate::openlineage::LineageObserver {
            inner: observer,
            emitter: &self.openlineage,
            contexts,
        };
        let observer: &dyn Observer = &lineage_observer;
        let mut failed: BTreeSet<ProductRef> = BTreeSet::new();
        let mut runs = Vec::new();
        for r in order.iter().filter(|r| wanted.contains(*r)) {
            let Some((record, p)) = by_ref.get(r).map(|d| (&d.0, &d.1)) else {
                continue;
            };
            if record.status == "retired" {
                continue; // no longer built
            }
            let blocked: Vec<String> = edges
                .get(r)
                .into_iter()
                .flatten()
                .filter(|u| failed.contains(*u))
                .map(ToString::to_string)
                .collect();
            if !blocked.is_empty() {
                let mut run = RunRecord::begin(r.clone(), record.version.clone(), &options.cause);
                run.status = RunStatus::Skipped;
                run.finished_at = Some(run.started_at);
                run.duration_ms = Some(0);
                run.error = Some(format!("skipped: upstream {} failed", blocked.join(", ")));
                self.catalog
                    .start_run(&run, &runner.holder, runner.lease_until())
                    .await?;
                self.catalog.finish_run(&run).await?;
                observer.finished(&run);
                failed.insert(r.clone());
                runs.push(run);
                continue;
            }
            let run = self
                .run_waiting(&runner, p, record, options, observer)
                .await?;
            if !matches!(run.status, RunStatus::Succeeded | RunStatus::UpToDate) {
                failed.insert(r.clone());
            }
            runs.push(run);
        }
        Ok((runs, recovered))
    }

    /// Runs one product, waiting while another process runs it (and
    /// recovering its run if that process dies meanwhile).
    async fn run_waiting(
        &self,
        runner: &Runner,
        p: &ProductDescriptor,
        record: &ProductRecord,
        options: &RunOptions,
        observer: &dyn Observer,
    ) -> Result<RunRecord> {
        let request = mesh_pipeline::runner::RunRequest {
            cause: options.cause.clone(),
            attempt: 1,
            force: options.force,
        };
        let mut told = false;
        loop {
            match runner.run(p, record, &request, observer).await {
                Err(mesh_pipeline::PipelineError::Catalog(
                    mesh_catalog::CatalogError::RunBusy { holder, run_id, .. },
                )) => {
                    if !told {
                        observer.waiting(&record.product.to_string(), &run_id, &holder);
                        told = true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    mesh_pipeline::recover::recover(&self.catalog, &runner.holder).await?;
                }
                other => return Ok(other?),
            }
        }
    }
}
