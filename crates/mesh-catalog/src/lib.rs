//! The catalog: where deployed products, their outputs, runs, check results
//! and publications are recorded, and how products are found.
//!
//! The store is the [`CatalogStore`] trait; [`SqlCatalog`] implements it
//! on SQLite (the embedded default) and PostgreSQL (shared by many
//! processes). Each backend has its migrations in `migrations/<backend>`;
//! the catalog tests check they build the same tables. [`copy`] moves a
//! whole catalog between backends. Search builds a tantivy index in
//! memory from catalog data.

pub mod caches;
pub mod classes;
pub mod copy;
pub mod error;
pub mod identity;
pub mod lines;
pub mod locations;
pub mod model;
pub mod retention;
pub mod runs;
pub mod search;
pub mod sql;
mod sql_classes;
mod sql_identity;
mod sql_runs;
pub mod store;

pub use caches::CacheStore;
pub use classes::{ClassificationStore, ColumnClass, StoredLineage};
pub use copy::{CatalogCopy, TableCopy};
pub use error::{CatalogError, Result};
pub use identity::{
    AccessRequest, AuditEntry, AuditFilter, AuditScope, Grant, IdentityStore, Principal, Team,
    TokenRecord,
};
pub use lines::{input_output, line_name, line_output, matching_line};
pub use model::*;
pub use retention::{Compaction, ExpiredVersion, RetentionStore};
pub use runs::{CurrentVersion, OPTIMIZE_CAUSE, RecordedHealth, RunFacts, RunFilter, RunStore};
pub use sql::{Dialect, SqlCatalog};
pub use store::CatalogStore;
