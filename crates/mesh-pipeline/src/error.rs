//! Pipeline errors.

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("input `{input}`: no file matches `{pattern}`")]
    SourceMissing { input: String, pattern: String },
    #[error("input `{input}`: {file} has columns [{found}], but the source declares [{declared}]")]
    SourceColumns {
        input: String,
        file: String,
        found: String,
        declared: String,
    },
    #[error("input `{input}`: cannot read {file}: {detail}")]
    SourceUnreadable {
        input: String,
        file: String,
        detail: String,
    },
    #[error(
        "input `{input}` reads `{upstream}`, which has not published a version yet; run it first"
    )]
    UpstreamNotPublished { input: String, upstream: String },
    #[error("input `{input}` reads `{upstream}`, which is not deployed")]
    UpstreamMissing { input: String, upstream: String },
    #[error("output `{output}`: {message}")]
    Output { output: String, message: String },
    #[error("SQL of output `{output}` failed: {message}")]
    Sql { output: String, message: String },
    #[error("SQL of output `{output}` failed at run time ({file}): {message}")]
    SqlRuntime {
        output: String,
        file: String,
        message: String,
    },
    #[error("output `{output}`: reading its inputs failed: {message}")]
    InputRead { output: String, message: String },
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Catalog(#[from] mesh_catalog::CatalogError),
    #[error(transparent)]
    Storage(#[from] mesh_storage::StorageError),
    #[error(transparent)]
    Query(#[from] mesh_query::QueryError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
