//! Whether the mesh's policies compile, without compiling them in every
//! process: a statement that names no table decides nothing, but a broken
//! policy still refuses it (governance fails closed).
//!
//! A process that compiles a set of policy files records their digest,
//! with this build's cache format, as known to compile (catalog kind
//! `policies-compile`); a later process whose files have that digest
//! needs no compiler. Any other files are compiled, so a broken edit is
//! refused at once. The record is a cache: a read-only catalog simply
//! compiles every time.

use crate::error::Result;
use crate::mesh::Mesh;

/// The catalog cache kind of policy digests known to compile.
const KIND: &str = "policies-compile";
/// Digests do not depend on deployments: one generation for all.
const GENERATION: i64 = 0;

impl Mesh {
    /// Fails exactly as [`Mesh::policies`] would, compiling the policies
    /// only when no process of this build has compiled these files.
    pub(crate) async fn check_policies(&self) -> Result<()> {
        let sources = mesh_policy::PolicySources::read(&self.root)?;
        let key = format!("{}/{}", sources.digest(), crate::deployed::FORMAT);
        if self
            .catalog
            .cached(KIND, GENERATION, &key)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            return Ok(());
        }
        self.policies()?;
        if let Err(e) = self.catalog.store_cached(KIND, GENERATION, &key, b"").await {
            tracing::debug!("policy digest not recorded: {e}");
        }
        Ok(())
    }
}
