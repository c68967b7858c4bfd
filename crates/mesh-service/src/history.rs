//! Run history, shown to each caller as its queries would show the data.
//!
//! A run record holds data: quality-check samples are rows of the
//! output, a check's `observed` counts rows the caller's row filters may
//! hide, and an error message may quote a value. Each caller sees them
//! only as a query by that caller would show them, under the policies of
//! today (so a policy change also protects runs recorded before it):
//!
//! - a reader without restriction sees everything;
//! - a reader with masks or row filters sees samples filtered and masked
//!   (or not at all where that cannot be done); under row filters, the
//!   counts in `observed` are withheld;
//! - a caller who may see the product but not read an output sees no
//!   sample and no count of it;
//! - an error message is shown only to those who read every output of the
//!   product without restriction.
//!
//! What a run did (status, times, rows written, which checks passed) is
//! the product's metadata, shown to everyone who may see the product.

use std::collections::HashMap;

use mesh_catalog::{OutputRecord, RunFilter, RunRecord, RunStatus};
use mesh_policy::Decision;
use mesh_query::{AccessGuard, Read};
use mesh_spec::ProductRef;

use crate::access::{Caller, PolicyGuard};
use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// What replaces a value the caller may not see.
pub const WITHHELD: &str = "withheld: it may hold data you may not read";

impl Mesh {
    /// Run history of the products `caller` may see, newest first.
    pub async fn runs(
        &self,
        caller: &Caller,
        product: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>> {
        let deployed = self.deployed().await?;
        let total = deployed.len();
        let visible: Vec<ProductRef> = self
            .visible_of(caller, deployed)
            .await?
            .into_iter()
            .map(|(r, _)| r.product)
            .collect();
        let product = match product {
            Some(name) => Some(self.resolve(name, &visible)?),
            None => None,
        };
        let status = match status {
            Some(s) => Some(
                RunStatus::parse(s)
                    .ok_or_else(|| {
                        ServiceError::Usage(format!(
                            "`{s}` is not a run status; use running, succeeded, failed, up-to-date, skipped or abandoned"
                        ))
                    })?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        let filter = RunFilter {
            product,
            status,
            builds_only: false,
        };
        // Seeing everything (an admin, a mesh without private products), the
        // catalog applies the limit; otherwise runs are filtered first.
        let runs = if visible.len() == total {
            self.catalog.runs(&filter, limit).await?
        } else {
            let mut runs = self.catalog.runs(&filter, i64::MAX).await?;
            runs.retain(|r| visible.contains(&r.product));
            runs.truncate(usize::try_from(limit).unwrap_or(0));
            runs
        };
        self.runs_as_seen_by(caller, runs).await
    }

    /// One run, as `caller` may see it; a run of a product the caller may
    /// not see is reported like one that does not exist.
    pub async fn run_detail(&self, caller: &Caller, id: &str) -> Result<RunRecord> {
        let not_found = || {
            ServiceError::Catalog(mesh_catalog::CatalogError::NotFound {
                what: "run",
                name: id.to_string(),
            })
        };
        let run = self
            .catalog
            .run(&mesh_catalog::RunId(id.to_string()))
            .await?
            .ok_or_else(not_found)?;
        let visible = self.visible_deployed(caller).await?;
        if !visible.iter().any(|(r, _)| r.product == run.product) {
            return Err(not_found());
        }
        self.runs_as_seen_by(caller, vec![run])
            .await?
            .pop()
            .ok_or_else(not_found)
    }

    /// `runs` as `caller` may see them (see the module's rules).
    pub(crate) async fn runs_as_seen_by(
        &self,
        caller: &Caller,
        mut runs: Vec<RunRecord>,
    ) -> Result<Vec<RunRecord>> {
        let holds_data = |r: &RunRecord| {
            r.error.is_some() || r.checks.iter().any(|c| !c.sample.is_empty() || !c.passed)
        };
        if !runs.iter().any(holds_data) {
            return Ok(runs);
        }
        let reader = RunReader::new(self, caller).await?;
        for run in runs.iter_mut().filter(|r| holds_data(r)) {
            reader.redact(run).await;
        }
        Ok(runs)
    }

    /// The error of a product's run as `caller` may see it.
    pub(crate) async fn run_error_as_seen_by(
        &self,
        caller: &Caller,
        product: &ProductRef,
        error: Option<String>,
    ) -> Result<Option<String>> {
        let Some(error) = error else {
            return Ok(None);
        };
        let reader = RunReader::new(self, caller).await?;
        Ok(Some(if reader.reads_all_unrestricted(product).await {
            error
        } else {
            WITHHELD.to_string()
        }))
    }
}

/// Decides, for one caller, how much of each run it may see.
struct RunReader {
    guard: PolicyGuard,
    outputs: HashMap<ProductRef, Vec<OutputRecord>>,
}

impl RunReader {
    async fn new(mesh: &Mesh, caller: &Caller) -> Result<Self> {
        let guard = mesh.guard_for(caller).await?;
        let mut outputs: HashMap<ProductRef, Vec<OutputRecord>> = HashMap::new();
        for o in mesh.catalog.outputs().await? {
            outputs.entry(o.product.clone()).or_default().push(o);
        }
        Ok(RunReader { guard, outputs })
    }

    /// The decision for `read` of `output`; a decision that cannot be
    /// made denies.
    async fn decide(&self, output: &OutputRecord, read: &Read) -> Decision {
        match self.guard.decide(output, read).await {
            Ok(d) => d,
            Err(e) => Decision {
                allowed: false,
                reason: e.to_string(),
                masks: Default::default(),
                row_filters: Vec::new(),
            },
        }
    }

    fn output(&self, product: &ProductRef, name: &str) -> Option<&OutputRecord> {
        self.outputs
            .get(product)?
            .iter()
            .find(|o| o.output.as_str() == name)
    }

    async fn reads_all_unrestricted(&self, product: &ProductRef) -> bool {
        let Some(outputs) = self.outputs.get(product) else {
            return false;
        };
        for o in outputs {
            if !self.decide(o, &Read::current(o)).await.is_unrestricted() {
                return false;
            }
        }
        true
    }

    async fn redact(&self, run: &mut RunRecord) {
        if run.error.is_some() && !self.reads_all_unrestricted(&run.product).await {
            run.error = Some(WITHHELD.to_string());
        }
        for check in &mut run.checks {
            let Some(output) = self.output(&run.product, &check.output) else {
                check.sample.clear();
                check.observed = WITHHELD.to_string();
                continue;
            };
            // The sample was taken from the run's version, with the
            // columns it names.
            let mut columns: Vec<String> = Vec::new();
            for row in &check.sample {
                for key in row.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !columns.contains(key) {
                        columns.push(key.clone());
                    }
                }
            }
            if columns.is_empty() {
                columns = Read::current(output).columns;
            }
            let read = Read {
                product_version: Some(run.version.clone()),
                columns,
            };
            let decision = self.decide(output, &read).await;
            if decision.is_unrestricted() {
                continue;
            }
            if !decision.allowed || !decision.row_filters.is_empty() {
                check.observed = WITHHELD.to_string();
            }
            let schema = mesh_query::schema::output_schema(output);
            check.sample = mesh_query::sample::secure_rows(&schema, &check.sample, &decision)
                .await
                .unwrap_or_default();
        }
    }
}
