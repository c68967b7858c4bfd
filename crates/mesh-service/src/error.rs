//! Service errors: one model every adapter renders.

use mesh_spec::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Project(#[from] mesh_spec::ProjectError),
    #[error("{} error(s) in the project; run `mesh validate` for details", .diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid { diagnostics: Vec<Diagnostic> },
    #[error("product `{product}` is not deployed{}", .hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    ProductNotFound {
        product: String,
        hint: Option<String>,
    },
    #[error("cannot use the state directory {path}: {source}")]
    State {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{product}` is still read by {}", .readers.join(", "))]
    StillRead {
        product: String,
        readers: Vec<String>,
    },
    /// A lifecycle change the command cannot make.
    #[error("cannot {action} `{product}`: {reason}")]
    Lifecycle {
        action: &'static str,
        product: String,
        reason: String,
        hint: String,
    },
    /// The caller may not do this.
    #[error("`{principal}` is not allowed: {reason}")]
    Forbidden { principal: String, reason: String },
    /// No valid credentials. Says nothing about why, on purpose.
    #[error("authentication failed: the token is unknown, wrong, revoked or expired")]
    Unauthenticated,
    /// A command-line value that makes no sense.
    #[error("{0}")]
    Usage(String),
    /// The mesh's policies do not load; nothing is served or deployed
    /// until they do (a broken policy never allows everything).
    #[error("policy error: {0}")]
    Policy(#[from] mesh_policy::PolicyError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists; choose an empty or new directory")]
    Exists { path: String },
    #[error(transparent)]
    Catalog(#[from] mesh_catalog::CatalogError),
    #[error(transparent)]
    Query(#[from] mesh_query::QueryError),
    #[error(transparent)]
    Pipeline(#[from] mesh_pipeline::PipelineError),
    #[error(transparent)]
    Storage(#[from] mesh_storage::StorageError),
    #[error("query failed: {0}")]
    Execution(String),
    /// The statement ran past its timeout.
    #[error("the statement ran past its timeout of {}", mesh_spec::format_duration(*.limit))]
    Timeout { limit: std::time::Duration },
    /// An error computing on the caller's values (a division by zero, a
    /// failed cast): the caller's, not the server's.
    #[error("query failed: {message}")]
    Data {
        kind: crate::codes::ErrorKind,
        message: String,
    },
    #[error("the contract gate refused the deploy:\n{}", .refusals.join("\n"))]
    ContractGate {
        refusals: Vec<String>,
        /// Whether `--allow-breaking` would let it through.
        overridable: bool,
    },
}

impl ServiceError {
    /// A hint for the user, when the error has one.
    pub fn hint(&self) -> Option<String> {
        match self {
            ServiceError::Query(
                mesh_query::QueryError::Plan { hint, .. }
                | mesh_query::QueryError::UnknownTable { hint, .. },
            ) => hint.clone(),
            ServiceError::Query(mesh_query::QueryError::TooComplex { .. }) => Some(
                "split the expression; a long list of alternatives reads better as `IN (…)`".into(),
            ),
            ServiceError::ContractGate { overridable, .. } => Some(if *overridable {
                "bump the major version as shown (consumers pinned to the old major keep working), or deploy with --allow-breaking to record an override".into()
            } else {
                "a version can only go forwards; raise it above the deployed one".into()
            }),
            ServiceError::StillRead { .. } => Some(
                "move those consumers to another product or major (their `version:` requirement), deploy, then retire".into(),
            ),
            ServiceError::Lifecycle { hint, .. } => Some(hint.clone()),
            ServiceError::Policy(_) => Some(
                "fix the policy file; `mesh policy test` checks every policy and runs their tests"
                    .into(),
            ),
            ServiceError::Timeout { .. } => Some(
                "narrow the statement (a filter, a LIMIT), or ask for a longer `limits.statement_timeout`".into(),
            ),
            ServiceError::State { .. } => {
                Some("check the permissions and free space of the state directory".into())
            }
            _ => None,
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
