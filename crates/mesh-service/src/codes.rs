//! The one error table: what kind of failure an error is, and how each
//! protocol says it (HTTP status and problem type, Postgres SQLSTATE,
//! gRPC status for Flight SQL). Every adapter renders errors from here,
//! so a missing product or a division by zero reads the same everywhere.

use crate::error::ServiceError;
use mesh_query::QueryError;

/// The gRPC status codes Flight SQL answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    FailedPrecondition,
    ResourceExhausted,
    DeadlineExceeded,
    Cancelled,
    Aborted,
    Unavailable,
    DataLoss,
    Internal,
}

/// Every kind of failure a caller can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Unauthenticated,
    /// The caller may not do this (an operation).
    Forbidden,
    /// The policy refuses a read.
    AccessDenied,
    /// A product, output, version or release that does not exist (or that
    /// the caller may not see).
    NotFound,
    /// A table name the session does not hold.
    UnknownTable,
    UnknownColumn,
    /// SQL that does not parse or plan.
    InvalidSql,
    /// DDL, DML or a session statement: queries are read-only.
    ReadOnly,
    /// A version suffix that is not one.
    BadName,
    DivisionByZero,
    /// A value that does not convert (a failed cast).
    InvalidValue,
    NumericOverflow,
    /// Any other error computing on the caller's values.
    DataException,
    /// A statement nested too deeply to plan safely.
    TooComplex,
    /// The statement needs more memory than its limit.
    OutOfMemory,
    /// The statement was cancelled.
    Cancelled,
    /// The statement ran past its timeout.
    Timeout,
    Retired,
    /// Bad input to a command or endpoint.
    Usage,
    /// A descriptor or project that does not validate.
    Invalid,
    Conflict,
    /// The policies do not load: nothing is served until they do.
    PolicyBroken,
    /// A published version's data is gone or unreadable.
    DataMissing,
    Internal,
}

/// How one kind of error is said on each protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codes {
    pub http: u16,
    /// The RFC 9457 problem type's last segment.
    pub problem: &'static str,
    pub sqlstate: &'static str,
    pub grpc: GrpcCode,
}

const fn c(http: u16, problem: &'static str, sqlstate: &'static str, grpc: GrpcCode) -> Codes {
    Codes {
        http,
        problem,
        sqlstate,
        grpc,
    }
}

impl ErrorKind {
    /// The table.
    pub fn codes(self) -> Codes {
        use ErrorKind as K;
        use GrpcCode as G;
        match self {
            K::Unauthenticated => c(401, "unauthenticated", "28P01", G::Unauthenticated),
            K::Forbidden => c(403, "forbidden", "42501", G::PermissionDenied),
            K::AccessDenied => c(403, "access-denied", "42501", G::PermissionDenied),
            K::NotFound => c(404, "not-found", "42P01", G::NotFound),
            K::UnknownTable => c(404, "not-found", "42P01", G::NotFound),
            K::UnknownColumn => c(400, "unknown-column", "42703", G::InvalidArgument),
            K::InvalidSql => c(400, "bad-request", "42000", G::InvalidArgument),
            K::ReadOnly => c(400, "read-only", "25006", G::InvalidArgument),
            K::BadName => c(400, "bad-request", "42602", G::InvalidArgument),
            K::DivisionByZero => c(400, "data-exception", "22012", G::InvalidArgument),
            K::InvalidValue => c(400, "data-exception", "22018", G::InvalidArgument),
            K::NumericOverflow => c(400, "data-exception", "22003", G::InvalidArgument),
            K::DataException => c(400, "data-exception", "22000", G::InvalidArgument),
            K::TooComplex => c(400, "statement-too-complex", "54001", G::InvalidArgument),
            K::OutOfMemory => c(507, "out-of-memory", "53200", G::ResourceExhausted),
            K::Cancelled => c(408, "cancelled", "57014", G::Cancelled),
            K::Timeout => c(408, "statement-timeout", "57014", G::DeadlineExceeded),
            K::Retired => c(410, "retired", "55000", G::FailedPrecondition),
            K::Usage => c(400, "bad-request", "22023", G::InvalidArgument),
            K::Invalid => c(422, "invalid", "42000", G::InvalidArgument),
            K::Conflict => c(409, "conflict", "55006", G::Aborted),
            K::PolicyBroken => c(503, "policy-error", "58000", G::Unavailable),
            K::DataMissing => c(500, "data-missing", "XX001", G::DataLoss),
            K::Internal => c(500, "internal", "XX000", G::Internal),
        }
    }
}

impl ServiceError {
    /// The kind of this error (see [`ErrorKind::codes`]).
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            ServiceError::Unauthenticated => K::Unauthenticated,
            ServiceError::Forbidden { .. } => K::Forbidden,
            ServiceError::ProductNotFound { .. }
            | ServiceError::Catalog(mesh_catalog::CatalogError::NotFound { .. }) => K::NotFound,
            ServiceError::Query(q) => query_kind(q),
            ServiceError::Data { kind, .. } => *kind,
            ServiceError::Timeout { .. } => K::Timeout,
            ServiceError::Usage(_) => K::Usage,
            ServiceError::Invalid { .. }
            | ServiceError::Lifecycle { .. }
            | ServiceError::ContractGate { .. } => K::Invalid,
            ServiceError::StillRead { .. }
            | ServiceError::Catalog(mesh_catalog::CatalogError::RunBusy { .. }) => K::Conflict,
            ServiceError::Policy(_) => K::PolicyBroken,
            _ => K::Internal,
        }
    }

    /// The codes of this error on every protocol.
    pub fn codes(&self) -> Codes {
        self.kind().codes()
    }
}

fn query_kind(q: &QueryError) -> ErrorKind {
    use ErrorKind as K;
    match q {
        QueryError::AccessDenied { .. } => K::AccessDenied,
        QueryError::UnknownTable { .. }
        | QueryError::VersionNotPublished { .. }
        | QueryError::ReleaseNotFound { .. } => K::NotFound,
        QueryError::Retired { .. } | QueryError::VersionExpired { .. } => K::Retired,
        QueryError::MissingData { .. } => K::DataMissing,
        QueryError::BadVersionSuffix { .. } => K::BadName,
        QueryError::TooComplex { .. } => K::TooComplex,
        QueryError::Plan { message, .. } => plan_kind(message),
        QueryError::DataFusion(e) => datafusion_kind(e),
        QueryError::Catalog(_) | QueryError::Storage(_) => K::Internal,
    }
}

fn plan_kind(message: &str) -> ErrorKind {
    if message.contains("DDL not supported")
        || message.contains("DML not supported")
        || message.contains("Statement not supported")
    {
        ErrorKind::ReadOnly
    } else if message.contains("No field named") {
        ErrorKind::UnknownColumn
    } else if message.contains("recursion limit") {
        ErrorKind::TooComplex
    } else {
        ErrorKind::InvalidSql
    }
}

/// The kind of an error DataFusion raised planning or running a
/// statement: the caller's SQL and values, or a failure of ours.
pub fn datafusion_kind(e: &datafusion::error::DataFusionError) -> ErrorKind {
    use datafusion::arrow::error::ArrowError as A;
    use datafusion::error::DataFusionError as D;
    match e.find_root() {
        D::ArrowError(a, _) => match a.as_ref() {
            A::DivideByZero => ErrorKind::DivisionByZero,
            A::CastError(_) | A::ParseError(_) | A::InvalidArgumentError(_) => {
                ErrorKind::InvalidValue
            }
            A::ArithmeticOverflow(_) => ErrorKind::NumericOverflow,
            A::ComputeError(_) => ErrorKind::DataException,
            _ => ErrorKind::Internal,
        },
        D::ResourcesExhausted(_) => ErrorKind::OutOfMemory,
        D::SQL(..) | D::Plan(_) | D::SchemaError(..) => plan_kind(&e.to_string()),
        D::NotImplemented(_) => ErrorKind::InvalidSql,
        D::Execution(m) => {
            let m = m.to_lowercase();
            if m.contains("divide by zero") || m.contains("division by zero") {
                ErrorKind::DivisionByZero
            } else if m.contains("cast") || m.contains("parse") {
                ErrorKind::InvalidValue
            } else if m.contains("overflow") {
                ErrorKind::NumericOverflow
            } else {
                ErrorKind::DataException
            }
        }
        _ => ErrorKind::Internal,
    }
}
