//! Catalog errors.

use mesh_spec::ProductRef;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot open the catalog at {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the catalog schema could not be migrated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("catalog query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the catalog holds a malformed value in {table}.{column}: {detail}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        detail: String,
    },
    #[error("product `{product}` is not deployed")]
    ProductNotFound { product: ProductRef },
    #[error(
        "unsupported catalog URL `{url}`; use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedUrl { url: String },
    /// A name that must be unique is taken.
    #[error("{what} `{name}` already exists")]
    Conflict { what: &'static str, name: String },
    /// A name that must exist does not.
    #[error("{what} `{name}` does not exist")]
    NotFound { what: &'static str, name: String },
    /// Another process is running the product.
    #[error("{product} is being run by {holder} (run {run_id})")]
    RunBusy {
        product: ProductRef,
        run_id: String,
        holder: String,
    },
    /// Copying a catalog to another backend failed or could not start.
    #[error("copying the catalog: {0}")]
    Copy(String),
    #[error("search index error: {0}")]
    Search(String),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
