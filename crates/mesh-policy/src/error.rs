//! Policy errors.

/// What went wrong loading or evaluating policies.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A policy file does not parse; `file:line:col` points at it.
    #[error("{file}:{line}:{col}: {message}")]
    Syntax {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A domain policy declares a package outside its own namespace.
    #[error(
        "{file}:{line}:1: domain policy declares `package {package}`, but policies of domain `{domain}` must be in `package mesh.domain.{domain}`"
    )]
    ForeignPackage {
        file: String,
        line: usize,
        package: String,
        domain: String,
    },
    /// Evaluation failed (a runtime error in a rule, or a bad result shape).
    #[error("policy evaluation failed: {0}")]
    Eval(String),
    #[error("invalid token: {0}")]
    Token(String),
}

pub type Result<T, E = PolicyError> = std::result::Result<T, E>;
