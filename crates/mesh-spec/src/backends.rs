//! Where a mesh keeps its catalog and its tables, by URL (`catalog:` and
//! `storage:` in mesh.yaml, `MESH_CATALOG_URL` and `MESH_STORAGE_URL`
//! in the environment, which override them; docs/deployment.md).
//!
//! The embedded default is a SQLite file and local files. Credentials
//! never appear in these URLs' settings in mesh.yaml: an object store
//! reads the standard AWS environment and files.

/// The environment variable that overrides `catalog:`.
pub const CATALOG_ENV: &str = "MESH_CATALOG_URL";
/// The environment variable that overrides `storage:`.
pub const STORAGE_ENV: &str = "MESH_STORAGE_URL";

/// One of the two backends a mesh names by URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Catalog,
    Storage,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Catalog, Backend::Storage];

    /// Its key in mesh.yaml, and `mesh init`'s flag.
    pub fn key(self) -> &'static str {
        match self {
            Backend::Catalog => "catalog",
            Backend::Storage => "storage",
        }
    }

    /// The environment variable that overrides it.
    pub fn env(self) -> &'static str {
        match self {
            Backend::Catalog => CATALOG_ENV,
            Backend::Storage => STORAGE_ENV,
        }
    }

    /// Why `url` cannot be used for it, if it cannot.
    pub fn problem(self, url: &str) -> Option<String> {
        match self {
            Backend::Catalog => catalog_problem(url),
            Backend::Storage => storage_problem(url),
        }
    }

    /// Why `url` cannot be written in mesh.yaml, if it cannot: what
    /// [`Backend::problem`] refuses, and a password, which belongs in the
    /// environment (`PGPASSWORD`, `~/.pgpass`, or the whole URL in the
    /// override variable), never in a file that is committed.
    pub fn written_problem(self, url: &str) -> Option<String> {
        self.problem(url).or_else(|| {
            has_password(url).then(|| {
                format!(
                    "{} URL holds a password; mesh.yaml is committed with the project, so leave it out \
                     and set PGPASSWORD or ~/.pgpass (or the whole URL in {})",
                    self.key(),
                    self.env()
                )
            })
        })
    }
}

/// Whether `url` carries a password (`scheme://user:password@host…`).
fn has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Why a catalog URL cannot be used, if it cannot.
pub fn catalog_problem(url: &str) -> Option<String> {
    match url.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => None,
        Some(("sqlite", _)) => Some(format!(
            "catalog URL `{url}` names no file; write sqlite://PATH (relative to the project, or absolute)"
        )),
        Some(("postgres" | "postgresql", rest))
            if !rest.is_empty() && !rest.starts_with('/') && !rest.starts_with('?') =>
        {
            None
        }
        Some(("postgres" | "postgresql", _)) => Some(format!(
            "catalog URL `{url}` names no server; write postgres://USER@HOST:PORT/DATABASE"
        )),
        _ => Some(format!(
            "catalog URL `{url}` is not one this build reads; write sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
        )),
    }
}

/// Why a storage root cannot be used, if it cannot: a local path, or a
/// `file://` URL.
pub fn storage_problem(url: &str) -> Option<String> {
    match url.split_once("://") {
        None if !url.is_empty() => None,
        Some(("file", path)) if path.starts_with('/') => None,
        Some(("file", _)) => Some(format!(
            "storage URL `{url}` is not absolute; write file:///ABSOLUTE/PATH, or a path relative to the project"
        )),
        Some(("s3", rest)) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains('?') => {
            None
        }
        Some(("s3", _)) => Some(format!(
            "storage URL `{url}` names no bucket; write s3://BUCKET/PREFIX"
        )),
        Some(("s3a" | "gs" | "az" | "abfss", _)) => Some(format!(
            "storage URL `{url}`: this build stores tables on local disk or S3; write file:///PATH, s3://BUCKET/PREFIX or a path"
        )),
        _ => Some(format!(
            "storage URL `{url}` is not one this build writes; write file:///PATH, s3://BUCKET/PREFIX or a path"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{catalog_problem, storage_problem};

    #[test]
    fn known_schemes_pass_and_others_say_what_to_write() {
        assert_eq!(catalog_problem("sqlite://.mesh/catalog.db"), None);
        assert_eq!(catalog_problem("sqlite:///var/mesh/catalog.db"), None);
        assert!(
            catalog_problem("sqlite://")
                .unwrap()
                .contains("names no file")
        );
        assert!(
            catalog_problem("mysql://db/mesh")
                .unwrap()
                .contains("sqlite://PATH")
        );
        assert_eq!(
            catalog_problem("postgres://mesh@db.internal:5432/mesh"),
            None
        );
        assert_eq!(catalog_problem("postgresql://h/db?sslmode=require"), None);
        assert!(
            catalog_problem("postgres:///db")
                .unwrap()
                .contains("names no server")
        );
        let written = |url| super::Backend::Catalog.written_problem(url);
        assert!(
            written("postgres://mesh:s3cret@h/db")
                .unwrap()
                .contains("PGPASSWORD")
        );
        assert_eq!(written("postgres://mesh@h/db"), None);
        assert_eq!(written("postgres://h/db?user=a@b"), None);
        assert_eq!(storage_problem("tables"), None);
        assert_eq!(storage_problem("file:///srv/tables"), None);
        assert!(
            storage_problem("file://tables")
                .unwrap()
                .contains("not absolute")
        );
        assert_eq!(storage_problem("s3://bucket/p"), None);
        assert!(
            storage_problem("s3:///p")
                .unwrap()
                .contains("names no bucket")
        );
        assert!(
            storage_problem("gs://b/p")
                .unwrap()
                .contains("local disk or S3")
        );
        assert!(storage_problem("ftp://x").unwrap().contains("file:///PATH"));
    }
}
