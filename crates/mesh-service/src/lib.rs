//! The use cases of Meshwork: init, validate, deploy, run, query and
//! discover. This is the one place that wires the spec, catalog, storage,
//! query and pipeline crates together; the CLI and servers are thin
//! adapters over [`Mesh`].

pub mod access;
mod classify;
pub mod codes;
pub mod compute;
pub mod contract;
pub mod demo;
mod deploy;
mod deployed;
pub mod discover;
pub mod error;
pub mod grants;
pub mod health;
mod history;
pub mod identity;
pub mod init;
mod lifecycle;
pub mod limits;
pub mod lineage;
pub mod mesh;
pub mod migrate;
pub mod notify;
pub mod openlineage;
mod operate;
pub mod optimize;
pub mod plan;
mod policy_check;
pub mod retention;
mod run;
pub mod scheduler;
mod snapshot;
pub mod statement;
mod throttle;

pub use access::Caller;
pub use datafusion::arrow;
pub use discover::VisibleTable;
pub use error::{Result, ServiceError};
pub use mesh::Mesh;
pub use mesh_catalog::{
    AccessRequest, AuditEntry, AuditFilter, AuditScope, CatalogError, Grant, RunRecord, RunStatus,
};
pub use mesh_pipeline::{Observer, Silent};
pub use mesh_query::deadline::Stop;
pub use mesh_query::{QueryError, StringLayout};
pub use run::RunOptions;
pub use statement::{Planned, QueryResult, QueryStream, SessionSetup, Statement, check_complexity};
/// The query layer's catalog types, for front ends that describe it
/// (the Postgres server's `pg_catalog`).
pub mod query {
    pub use mesh_query::provider::{CATALOG_NAME, DomainSchema};
    pub use mesh_query::schema::{DESCRIPTION, PRIMARY_KEY};
    pub use mesh_query::session::syntax_sentence;
}
pub use mesh_query::encode::{nested_as_json, to_wire, wire_schema};
pub use mesh_query::schema::contract_type;
