//! SQL over data products, with DataFusion.
//!
//! This crate owns the one query path: [`QueryEngine`] and its catalog
//! provider map SQL names (`<domain>.<output>`, `"<output>@<N>"`, global
//! `mesh://` addresses) to published Delta versions. Every front end (CLI,
//! servers) plans through it, so policy can later be applied in one place.
//! It also owns the Arrow mapping of contract types and the planning checks
//! of transform SQL.

pub mod barrier;
pub mod broadcast;
pub mod complexity;
pub mod conjuncts;
pub mod deadline;
pub mod decimal;
pub mod described;
pub mod encode;
pub mod error;
mod estimates;
pub mod guard;
pub mod joinorder;
pub mod lineage;
pub mod memory;
pub mod plan;
pub mod provider;
pub mod rowgroups;
pub mod sample;
pub mod schema;
pub mod session;
pub mod source;
pub mod stages;
pub mod tableless;
#[cfg(test)]
mod testing;
pub mod usage;

pub use error::{QueryError, Result};
pub use guard::{AccessGuard, Read};
pub use provider::{At, MeshCatalog, Resolver, StringLayout, split_version};
pub use session::{QueryEngine, transform_context};
pub use tableless::{names_no_table, sql_names_no_table};
