//! Query errors: user errors (bad SQL, unknown names) apart from failures.

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "`{name}`: a version suffix is `@<N>`, a published data version such as `orders@3`, or `@<MAJOR.MINOR.PATCH>`, a release of a product version such as `orders@1.2.0`"
    )]
    BadVersionSuffix { name: String },
    #[error("`{name}` has no release of product version {version}; released versions: {}", if .released.is_empty() { "none yet (run the product with `mesh run`)".to_string() } else { .released.join(", ") })]
    ReleaseNotFound {
        name: String,
        version: String,
        released: Vec<String>,
    },
    #[error("`{name}` has no published version {version}; published versions: {}", fmt_versions(.published))]
    VersionNotPublished {
        name: String,
        version: u64,
        published: Vec<u64>,
    },
    /// Retention removed the files of the version asked for.
    #[error("`{name}` version {version} was removed by retention ({rule}) on {expired_at}; readable versions: {}", fmt_versions(.readable))]
    VersionExpired {
        name: String,
        version: u64,
        rule: String,
        expired_at: String,
        readable: Vec<u64>,
    },
    #[error("`{name}` belongs to `{product}`, which is retired and no longer served")]
    Retired { name: String, product: String },
    /// The access policy refuses the read.
    #[error("access denied to `{name}` (product `{product}`): {reason}")]
    AccessDenied {
        name: String,
        product: String,
        reason: String,
    },
    /// A table name that names no output the session serves.
    #[error("{message}")]
    UnknownTable {
        message: String,
        hint: Option<String>,
    },
    /// A statement nested too deeply to parse and plan safely.
    #[error(
        "the statement is too complex: its expressions nest about {depth} levels deep, more than the {limit} a statement may"
    )]
    TooComplex { depth: usize, limit: usize },
    #[error("{message}")]
    Plan {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// A file of a published version is gone or unreadable: never read
    /// as fewer rows.
    #[error(
        "`{name}` (product `{product}`), published version {version}: its data file `{file}` {problem}; the version cannot be read (restore the file, or publish a new version with `mesh run`)"
    )]
    MissingData {
        name: String,
        product: String,
        version: u64,
        file: String,
        problem: String,
    },
    #[error(transparent)]
    Catalog(#[from] mesh_catalog::CatalogError),
    #[error(transparent)]
    Storage(#[from] mesh_storage::StorageError),
}

fn fmt_versions(v: &[u64]) -> String {
    if v.is_empty() {
        return "none yet (run the product with `mesh run`)".into();
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;
