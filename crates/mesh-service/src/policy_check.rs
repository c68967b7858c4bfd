//! Whether the mesh's policies compile, without compiling them in every
//! process: a statement that names no table decides nothing, but a broken
//! policy still refuses it (governance fails closed).
//!
//! A process that compiles a set of policy files records their digest,
//! with this build's cache format, as known to compile: an empty file in
//! the state directory (`policies-compile/DIGEST-FORMAT`). A later process
//! whose files have that digest needs no compiler, and no catalog: the
//! catalog opens lazily, so `mesh query "SELECT 1"` never connects. Any
//! other files are compiled, so a broken edit is refused at once. The
//! record is a cache: a read-only state directory simply compiles every
//! time.

use std::sync::{Arc, OnceLock};

use mesh_policy::PolicySet;

use crate::error::Result;
use crate::mesh::Mesh;

/// The state directory's folder of policy digests known to compile.
const KIND: &str = "policies-compile";

impl Mesh {
    /// Fails exactly as [`Mesh::policies`] would, compiling the policies
    /// only when no process of this build has compiled these files.
    pub(crate) async fn check_policies(&self) -> Result<()> {
        let sources = mesh_policy::PolicySources::read(&self.root)?;
        let digest = sources.digest();
        // This process compiled them: nothing to look up.
        if self.compiled(&digest).is_some() {
            return Ok(());
        }
        let marker = self
            .config
            .state_dir
            .join(KIND)
            .join(format!("{digest}-{}", crate::deployed::FORMAT));
        if marker.is_file() {
            return Ok(());
        }
        self.policies_of(sources, digest)?;
        let recorded = marker
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&marker, b""));
        if let Err(e) = recorded {
            tracing::debug!("policy digest not recorded in {}: {e}", marker.display());
        }
        Ok(())
    }
}

/// The policies of a session that decides nothing: none. Built once.
pub(crate) fn no_policies() -> Result<Arc<PolicySet>> {
    static NONE: OnceLock<Arc<PolicySet>> = OnceLock::new();
    if let Some(set) = NONE.get() {
        return Ok(set.clone());
    }
    let set = Arc::new(PolicySet::from_sources(Vec::new(), Vec::new())?);
    Ok(NONE.get_or_init(|| set).clone())
}
