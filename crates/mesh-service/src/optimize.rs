//! `mesh optimize` and the runs' own compaction (docs/storage.md): the
//! runner every build and compaction of this mesh goes through,
//! compacting the current releases of deployed products, and the
//! scheduler's storage maintenance.

use mesh_pipeline::Runner;
pub use mesh_pipeline::{Optimized, OutputCompaction};

use crate::error::Result;
use crate::mesh::Mesh;

/// `mesh optimize` compacts a release with at least this many small
/// files: two small files already make one read fewer.
const EXPLICIT_MIN_SMALL_FILES: usize = 2;

impl Mesh {
    /// A runner with this mesh's settings: after a run publishes, it
    /// compacts a release left with many small files (`compaction:`).
    pub fn runner(&self) -> Runner {
        let mut runner = Runner::new(self.catalog.clone());
        let c = self.config.compaction;
        runner.auto_compact = c.auto.then_some(c.min_small_files);
        runner
    }

    /// Compacts the current release of every output of `product` (every
    /// deployed product when `None`) that has two or more files under
    /// half its target size. Runs a dead process left are recovered
    /// first. Fails with `RunBusy` while a build holds the product.
    pub async fn optimize(&self, product: Option<&str>) -> Result<Vec<Optimized>> {
        let wanted = match product {
            Some(name) => Some(self.resolve_deployed(name).await?),
            None => None,
        };
        let runner = self.runner();
        mesh_pipeline::recover::recover(&self.catalog, &runner.holder).await?;
        let generation = self.catalog.deployment_generation().await?;
        let deployed = self.deployed_shared(generation).await?;
        let mut report = Vec::new();
        for (record, descriptor) in deployed.iter() {
            if wanted.as_ref().is_some_and(|w| w != &record.product) || record.status == "retired" {
                continue;
            }
            report.push(
                runner
                    .optimize(descriptor, record, EXPLICIT_MIN_SMALL_FILES)
                    .await?,
            );
        }
        Ok(report)
    }

    /// Storage maintenance, as the scheduler does it every
    /// `scheduler.maintenance`: compacts releases with at least
    /// `compaction.min_small_files` small files (unless compaction is
    /// off), then applies every product's retention. A product a run
    /// holds is left for the next time. Returns what it did, for the log.
    pub async fn maintain(&self) -> Result<Maintained> {
        let mut done = Maintained::default();
        let c = self.config.compaction;
        if c.auto {
            let runner = self.runner();
            let generation = self.catalog.deployment_generation().await?;
            let deployed = self.deployed_shared(generation).await?;
            for (record, descriptor) in deployed.iter().filter(|(r, _)| r.status != "retired") {
                match runner.optimize(descriptor, record, c.min_small_files).await {
                    Ok(o) => done.compacted += o.outputs.len(),
                    Err(mesh_pipeline::PipelineError::Catalog(
                        mesh_catalog::CatalogError::RunBusy { .. },
                    )) => done.busy += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        for v in self.vacuum(None, false).await? {
            done.expired += v.expired.len();
            done.files_removed += v.files_removed;
            done.bytes_freed += v.bytes_freed;
        }
        Ok(done)
    }
}

/// What one round of storage maintenance did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Outputs whose current release was compacted.
    pub compacted: usize,
    /// Products a run held, so not compacted this time.
    pub busy: usize,
    /// Data versions retention expired.
    pub expired: usize,
    pub files_removed: usize,
    pub bytes_freed: u64,
}
