//! `mesh migrate`: moves a mesh to other backends (docs/deployment.md),
//! typically from the embedded SQLite file and local tables to a shared
//! PostgreSQL catalog and storage root, with its whole history.
//!
//! The steps, each safe to repeat, so an interrupted migration is
//! finished by running it again:
//! 1. the tables' files are copied to the new storage root, local or S3
//!    (each written whole, so no file is ever half there; files already
//!    present with the same size are kept);
//! 2. the catalog is copied in one transaction and verified row for row
//!    ([`mesh_catalog::SqlCatalog::copy_to`]; a finished copy is only
//!    verified);
//! 3. every copied file is checked against its source;
//! 4. mesh.yaml is pointed at the new backends.
//!
//! The migration is audited in the new catalog, in the copy's own
//! transaction.
//!
//! The old catalog and files are left as they were, for the operator to
//! remove once the new backends serve.

use std::path::Path;

use mesh_catalog::{AuditEntry, CatalogCopy, SqlCatalog};
use mesh_spec::backends::Backend;

use crate::access::Caller;
use crate::error::{Result, ServiceError};
use crate::mesh::{Mesh, catalog_url_of, storage_root_of};

/// What a migration did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Migration {
    /// The catalog URL mesh.yaml now names.
    pub catalog: String,
    /// The storage root mesh.yaml now names.
    pub storage: String,
    pub catalog_copy: CatalogCopy,
    /// Table files copied now, and those already there.
    pub files_copied: u64,
    pub files_present: u64,
    pub bytes_copied: u64,
}

fn invalid(message: String) -> ServiceError {
    ServiceError::Invalid {
        diagnostics: vec![mesh_spec::Diagnostic::error("migrate", message)],
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ServiceError + '_ {
    move |source| ServiceError::State {
        path: path.display().to_string(),
        source,
    }
}

/// Points mesh.yaml's `key:` at `value`, replacing a top-level setting or
/// adding one.
fn set_setting(text: &str, key: &str, value: &str) -> String {
    let line = format!("{key}: {value}");
    let prefix = format!("{key}:");
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if !found && l.starts_with(&prefix) {
                found = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        out.push(line);
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

impl Mesh {
    /// Moves this mesh to the catalog at `catalog` and, when given, the
    /// storage root `storage` (see the module's steps). Only a mesh-admin
    /// may.
    pub async fn migrate(
        &self,
        caller: &Caller,
        catalog: &str,
        storage: Option<&str>,
    ) -> Result<Migration> {
        self.require_admin(caller, "mesh.migrate", "migrate the mesh")
            .await?;
        for (backend, url) in [
            (Backend::Catalog, Some(catalog)),
            (Backend::Storage, storage),
        ] {
            if let Some(message) = url.and_then(|u| backend.written_problem(u)) {
                return Err(invalid(format!("--{}: {message}", backend.key())));
            }
        }
        let state_dir = &self.config.state_dir;
        let new_url = catalog_url_of(Some(catalog), &self.root, state_dir);
        if new_url == self.catalog_url {
            return Err(invalid(format!(
                "--catalog `{catalog}` is the catalog this mesh already uses"
            )));
        }
        let new_root = match storage {
            Some(s) => storage_root_of(Some(s), &self.root, state_dir),
            None => self.storage_root.clone(),
        };
        // Both catalogs answer before anything is written: a wrong target
        // URL or a missing database stops here, with nothing copied.
        let source = &self.sql_catalog;
        if let Some(path) = new_url.strip_prefix("sqlite://")
            && let Some(dir) = Path::new(path).parent()
        {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let target = SqlCatalog::connect_under(&new_url, &self.root, &new_root).await?;
        // 1. The files, before any catalog names them.
        let files = match new_root == self.storage_root {
            true => mesh_storage::copy::RootCopy::default(),
            false => mesh_storage::copy::copy_root(&self.storage_root, &new_root).await?,
        };
        // 2. The catalog, in one transaction, verified.
        let record = AuditEntry::new(
            &caller.name,
            "mesh.migrate",
            "done",
            format!("moved here with {} table files", files.objects),
            serde_json::json!({
                "from_storage": self.storage_root,
                "to_storage": new_root,
            }),
        );
        let catalog_copy = source.copy_to(&target, Some(&record)).await?;
        // 3. Every file the copy names is there, whole.
        if new_root != self.storage_root
            && let Some(missing) =
                mesh_storage::copy::missing_from(&self.storage_root, &new_root).await?
        {
            return Err(invalid(format!(
                "{missing} was not copied whole to {new_root}; run `mesh migrate` again"
            )));
        }
        // 4. The project names the new backends; the new catalog records it.
        let yaml = self.root.join(mesh_spec::project::PROJECT_FILE);
        let mut text = std::fs::read_to_string(&yaml).map_err(io(&yaml))?;
        text = set_setting(&text, "catalog", catalog);
        if let Some(s) = storage {
            text = set_setting(&text, "storage", s);
        }
        let partial = yaml.with_extension("yaml.mesh-partial");
        std::fs::write(&partial, &text).map_err(io(&partial))?;
        std::fs::rename(&partial, &yaml).map_err(io(&yaml))?;
        Ok(Migration {
            catalog: catalog.to_string(),
            storage: storage.map_or_else(|| self.storage_root.clone(), str::to_string),
            catalog_copy,
            files_copied: files.copied,
            files_present: files.present,
            bytes_copied: files.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::set_setting;

    #[test]
    fn settings_are_replaced_or_added() {
        let text = "apiVersion: meshwork/v1\nkind: Mesh\ncatalog: sqlite://a.db\n# catalog: old\n";
        let out = set_setting(text, "catalog", "postgres://h/db");
        assert_eq!(
            out,
            "apiVersion: meshwork/v1\nkind: Mesh\ncatalog: postgres://h/db\n# catalog: old\n"
        );
        let out = set_setting(&out, "storage", "file:///srv/tables");
        assert!(out.ends_with("# catalog: old\nstorage: file:///srv/tables\n"));
    }
}
