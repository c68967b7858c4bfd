//! Column lineage across the mesh (docs/lineage.md): derived at deploy
//! from each output's plan, stored per deployed version, resolved into
//! one graph per deployment generation. Classifications follow the
//! graph's value-carrying edges: deploy refuses a column declared weaker
//! than its lineage, and reads mask by the derived classification.

pub(crate) mod check;
pub mod graph;
mod stored;
pub mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use mesh_catalog::StoredLineage;
use mesh_query::lineage::ProductLineage;
use mesh_spec::{ProductDescriptor, ProductRef};

pub use check::{class_diagnostics, declassify_audit, policy_columns};
pub use graph::{ClassSource, ColumnId, ColumnInfo, Dataset, LineageGraph, Link, Member};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::mesh::Mesh;
use crate::snapshot::Deployed;

/// The graph of the deployed products at one deployment generation.
pub(crate) type LineageCache = Mutex<Option<(i64, Arc<LineageGraph>)>>;

/// Nanoseconds this process spent resolving, storing and checking
/// lineage (deriving it from plans is counted by `mesh_query`).
static WORKING: AtomicU64 = AtomicU64::new(0);

/// Adds the time since `started` to the lineage work of this process.
pub(crate) fn count(started: Instant) {
    WORKING.fetch_add(
        u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// Everything this process spent on column lineage so far: deriving it
/// from plans, building graphs, storing it and checking classifications.
pub fn time_spent() -> Duration {
    mesh_query::lineage::derivation_time() + Duration::from_nanos(WORKING.load(Ordering::Relaxed))
}

/// Logs [`time_spent`] (debug level; `mesh-bench lineage` reads it).
pub(crate) fn report() {
    tracing::debug!(
        lineage_us = u64::try_from(time_spent().as_micros()).unwrap_or(u64::MAX),
        "column lineage work so far"
    );
}

/// The family and version a deployed record's lineage is stored under.
fn stored_key(r: &mesh_catalog::ProductRecord) -> (String, String) {
    (
        r.line_of.as_ref().unwrap_or(&r.product).to_string(),
        r.version.clone(),
    )
}

impl Mesh {
    /// The lineage graph of the deployed products, as of now.
    pub async fn lineage_graph(&self) -> Result<Arc<LineageGraph>> {
        let generation = self.catalog.deployment_generation().await?;
        let deployed = self.deployed_shared(generation).await?;
        self.lineage_graph_at(generation, &deployed).await
    }

    /// The lineage graph of the deployed products for a generation just
    /// read (see [`load`]).
    pub(crate) async fn lineage_graph_at(
        &self,
        generation: i64,
        deployed: &Deployed,
    ) -> Result<Arc<LineageGraph>> {
        load(&self.catalog, &self.lineage_cache, generation, deployed).await
    }

    /// Waits (at most `limit`) until the OpenLineage events of this
    /// process's runs were delivered or given up.
    pub async fn flush_openlineage(&self, limit: std::time::Duration) {
        self.openlineage.flush(limit).await;
    }

    /// Stores the lineage `validate` derived for the project's products,
    /// keyed as their deployed versions.
    pub(crate) async fn record_lineage(
        &self,
        products: &[ProductDescriptor],
        lineage: &BTreeMap<ProductRef, ProductLineage>,
    ) -> Result<()> {
        let rows: Vec<StoredLineage> = products
            .iter()
            .filter_map(|p| {
                let l = lineage.get(&p.product_ref())?;
                Some(StoredLineage {
                    family: p.product_ref().to_string(),
                    version: p.version.to_string(),
                    lineage: serde_json::to_string(l).ok()?,
                })
            })
            .collect();
        let started = Instant::now();
        self.catalog.record_lineage(&rows).await?;
        count(started);
        Ok(())
    }
}

/// A line's lineage keyed by its outputs' names in the family.
fn original_names(l: &ProductLineage, d: &ProductDescriptor) -> ProductLineage {
    l.iter()
        .map(|(name, o)| {
            let original = d
                .outputs
                .iter()
                .find(|x| x.name.as_str() == name)
                .and_then(|x| x.original_name.as_ref())
                .map_or_else(|| name.clone(), ToString::to_string);
            (original, o.clone())
        })
        .collect()
}

/// The graph of deployed (or about to be deployed) products.
pub(crate) fn build_graph<'a>(
    products: impl Iterator<
        Item = (
            &'a mesh_catalog::ProductRecord,
            &'a ProductDescriptor,
            Option<&'a ProductLineage>,
        ),
    >,
) -> LineageGraph {
    let members: Vec<Member<'a>> = products
        .map(|(r, d, lineage)| Member {
            product: r.product.clone(),
            line_of: r.line_of.clone(),
            version: semver::Version::parse(&r.version).unwrap_or(d.version.value.clone()),
            descriptor: d,
            lineage,
        })
        .collect();
    LineageGraph::build(&members)
}

/// The lineage graph of the deployed products for a generation just
/// read: kept by the process while the generation stands; otherwise
/// loaded from the catalog, where the first process to build it at this
/// generation stored it; otherwise built from each version's stored
/// lineage (a version deployed before lineage was stored has its lineage
/// derived from its stored SQL, and stored when the catalog takes it)
/// and stored for the next process.
pub(crate) async fn load(
    catalog: &Arc<dyn mesh_catalog::CatalogStore>,
    cache: &LineageCache,
    generation: i64,
    deployed: &Deployed,
) -> Result<Arc<LineageGraph>> {
    if let Some(found) = cache
        .lock()
        .ok()
        .and_then(|c| c.clone())
        .filter(|(g, _)| *g == generation)
    {
        return Ok(found.1);
    }
    let started = Instant::now();
    let stored = catalog
        .cached(stored::KIND, generation, stored::FORMAT)
        .await?
        .and_then(|bytes| LineageGraph::from_bytes(&bytes));
    let graph = match stored {
        Some(g) => Arc::new(g),
        None => {
            let by_product = lineage_of(catalog, deployed, |_| true).await?;
            let graph =
                Arc::new(build_graph(deployed.iter().map(|(r, d)| {
                    (r, d, by_product.get(&r.product).and_then(|l| l.as_deref()))
                })));
            // A cache: a catalog that is read-only here builds it again.
            if let Err(e) = catalog
                .store_cached(stored::KIND, generation, stored::FORMAT, &graph.to_bytes())
                .await
            {
                tracing::debug!("lineage graph not stored: {e}");
            }
            graph
        }
    };
    if let Ok(mut c) = cache.lock() {
        *c = Some((generation, graph.clone()));
    }
    count(started);
    Ok(graph)
}

/// Per product: the product's lineage.
pub(crate) type ByProduct = HashMap<ProductRef, Option<Arc<ProductLineage>>>;

/// The lineage of the deployed products `wanted` selects: as stored, or,
/// for a version deployed before lineage was stored, derived from its
/// stored SQL (`None` if that no longer plans) and stored back.
pub(crate) async fn lineage_of(
    catalog: &Arc<dyn mesh_catalog::CatalogStore>,
    deployed: &Deployed,
    wanted: impl Fn(&mesh_catalog::ProductRecord) -> bool,
) -> Result<ByProduct> {
    let keys: std::collections::HashSet<(String, String)> = deployed
        .iter()
        .filter(|(r, _)| wanted(r))
        .map(|(r, _)| stored_key(r))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let mut stored: HashMap<(String, String), ProductLineage> = catalog
        .current_lineage()
        .await?
        .into_iter()
        .filter(|s| keys.contains(&(s.family.clone(), s.version.clone())))
        .filter_map(|s| {
            let lineage = serde_json::from_str(&s.lineage).ok()?;
            Some(((s.family, s.version), lineage))
        })
        .collect();
    // The records upstream schemas are read from, copied only when a
    // version has to be derived (deployed before lineage was stored).
    let mut records: Option<Vec<mesh_catalog::ProductRecord>> = None;
    let mut by_product = HashMap::new();
    let mut backfill = Vec::new();
    for (r, d) in deployed.iter().filter(|(r, _)| wanted(r)) {
        let key = stored_key(r);
        let lineage = match stored.remove(&key) {
            Some(l) => Some(Arc::new(l)),
            None => {
                let records = records
                    .get_or_insert_with(|| deployed.iter().map(|(r, _)| r.clone()).collect());
                let upstream = crate::mesh::Upstream {
                    local: &[],
                    deployed: records,
                };
                let derived =
                    mesh_query::lineage::product_lineage(d, &upstream, Some(&r.sql_texts))
                        .await
                        .ok();
                if let Some(l) = &derived {
                    backfill.push(StoredLineage {
                        family: key.0,
                        version: key.1,
                        lineage: serde_json::to_string(&original_names(l, d)).unwrap_or_default(),
                    });
                }
                derived.map(Arc::new)
            }
        };
        by_product.insert(r.product.clone(), lineage);
    }
    if !backfill.is_empty() {
        // Derived from the deployed definitions; a catalog that is
        // read-only here only derives them again next time.
        if let Err(e) = catalog.record_lineage(&backfill).await {
            tracing::debug!("lineage of earlier deploys not stored: {e}");
        }
    }
    Ok(by_product)
}
