//! Storage errors.

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid table location `{location}`: {detail}")]
    InvalidLocation { location: String, detail: String },
    #[error("Delta table at {location}: {source}")]
    Delta {
        location: String,
        #[source]
        source: deltalake::DeltaTableError,
    },
    #[error("object store at {location}: {source}")]
    ObjectStore {
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error("table at {location} has no version {version}; its newest version is {latest}")]
    VersionNotFound {
        location: String,
        version: i64,
        latest: i64,
    },
    #[error("S3 credentials: {detail}")]
    Credentials { detail: String },
    #[error("cannot write to {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
