//! What access decisions read from the catalog, kept while it stands
//! still.
//!
//! Every statement decides access: which products the caller sees, and
//! for each table it reads the principal, the owning teams, the grants
//! and the recorded classifications. Read from the catalog each time,
//! that is a dozen round trips per statement. A [`Snapshot`] holds them
//! for one pair of catalog generations (deployment and access, both moved
//! by triggers on every change, in any process), so a statement asks the
//! catalog one question (the generations) while nothing changed. What
//! moves a generation (a revoked grant, a removed role, a deploy) counts
//! from the next statement on.
//!
//! Parts read per name (principals, grants, classifications) are loaded
//! on first use within a snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use mesh_catalog::{CatalogStore, ColumnClass, Grant, Principal, ProductRecord};
use mesh_spec::{ProductDescriptor, ProductRef};

use crate::error::Result;
use crate::mesh::Mesh;

/// The deployed products, parsed.
pub(crate) type Deployed = Arc<Vec<(ProductRecord, ProductDescriptor)>>;

pub(crate) struct Snapshot {
    /// Deployment and access generations this snapshot was read at.
    generations: (i64, i64),
    pub deployed: Deployed,
    /// Their column lineage, with each column's derived classification,
    /// built on first use (a statement that reads no table never needs
    /// it) and shared by the process per deployment generation.
    lineage: tokio::sync::OnceCell<Arc<crate::lineage::LineageGraph>>,
    lineage_cache: Arc<crate::lineage::LineageCache>,
    /// Domain → the teams owning it, sorted.
    owners: BTreeMap<String, Vec<String>>,
    principals: Mutex<HashMap<String, Option<Principal>>>,
    grants: Mutex<HashMap<String, Arc<Vec<Grant>>>>,
    classes: Mutex<HashMap<String, Arc<Vec<ColumnClass>>>>,
    catalog: Arc<dyn CatalogStore>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generations", &self.generations)
            .finish_non_exhaustive()
    }
}

/// The last snapshot a process read.
pub(crate) type SnapshotCache = Mutex<Option<Arc<Snapshot>>>;

impl Snapshot {
    /// A snapshot of nothing deployed, for a statement that names no
    /// table: it decides nothing, so it reads nothing.
    pub(crate) fn empty(mesh: &Mesh) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            generations: (-1, -1),
            deployed: Arc::default(),
            lineage: Default::default(),
            lineage_cache: mesh.lineage_cache.clone(),
            owners: BTreeMap::new(),
            principals: Default::default(),
            grants: Default::default(),
            classes: Default::default(),
            catalog: mesh.catalog.clone(),
        })
    }

    /// The deployed record of `product`.
    pub fn record(&self, product: &ProductRef) -> Option<&ProductRecord> {
        self.deployed
            .iter()
            .map(|(r, _)| r)
            .find(|r| &r.product == product)
    }

    /// The teams owning `domain`.
    pub fn owner_teams(&self, domain: &str) -> &[String] {
        self.owners.get(domain).map_or(&[], Vec::as_slice)
    }

    /// Domain → owning teams.
    pub fn owners(&self) -> &BTreeMap<String, Vec<String>> {
        &self.owners
    }

    /// A principal by name; `None` for a name the catalog does not know.
    pub async fn principal(&self, name: &str) -> Result<Option<Principal>> {
        loaded(&self.principals, name, || self.catalog.principal(name)).await
    }

    /// Every grant given to `principal` (live or not; see `Grant::is_live`).
    pub async fn grants(&self, principal: &str) -> Result<Arc<Vec<Grant>>> {
        loaded(&self.grants, principal, || async {
            self.catalog.grants(Some(principal)).await.map(Arc::new)
        })
        .await
    }

    /// The column lineage of the deployed products.
    pub async fn lineage(&self) -> Result<Arc<crate::lineage::LineageGraph>> {
        let graph = self
            .lineage
            .get_or_try_init(|| async {
                crate::lineage::load(
                    &self.catalog,
                    &self.lineage_cache,
                    self.generations.0,
                    &self.deployed,
                )
                .await
            })
            .await?;
        Ok(graph.clone())
    }

    /// The recorded classifications of a product family.
    pub async fn classes(&self, family: &str) -> Result<Arc<Vec<ColumnClass>>> {
        loaded(&self.classes, family, || async {
            self.catalog.classes(family).await.map(Arc::new)
        })
        .await
    }
}

/// The entry of `key` in `map`, loaded on first use.
async fn loaded<T, F>(
    map: &Mutex<HashMap<String, T>>,
    key: &str,
    load: impl FnOnce() -> F,
) -> Result<T>
where
    T: Clone,
    F: std::future::Future<Output = mesh_catalog::Result<T>>,
{
    if let Some(found) = map.lock().ok().and_then(|m| m.get(key).cloned()) {
        return Ok(found);
    }
    let found = load().await?;
    if let Ok(mut m) = map.lock() {
        m.insert(key.to_string(), found.clone());
    }
    Ok(found)
}

impl Mesh {
    /// The catalog as access decisions read it, current as of this call.
    pub(crate) async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        let generations = self.catalog.generations().await?;
        self.snapshot_at(generations).await
    }

    /// [`Mesh::snapshot`] for generations just read.
    pub(crate) async fn snapshot_at(
        &self,
        generations: mesh_catalog::Generations,
    ) -> Result<Arc<Snapshot>> {
        let generations = (generations.deployment, generations.access);
        if let Some(s) = self
            .snapshot_cache
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|s| s.generations == generations)
        {
            return Ok(s);
        }
        let deployed = self.deployed_shared(generations.0).await?;
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.catalog.teams().await? {
            for d in t.domains {
                owners.entry(d).or_default().push(t.name.clone());
            }
        }
        for teams in owners.values_mut() {
            teams.sort();
        }
        let snapshot = Arc::new(Snapshot {
            generations,
            deployed,
            lineage: Default::default(),
            lineage_cache: self.lineage_cache.clone(),
            owners,
            principals: Default::default(),
            grants: Default::default(),
            classes: Default::default(),
            catalog: self.catalog.clone(),
        });
        if let Ok(mut c) = self.snapshot_cache.lock() {
            *c = Some(snapshot.clone());
        }
        Ok(snapshot)
    }
}
