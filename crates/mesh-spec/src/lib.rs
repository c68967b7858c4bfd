//! The contract language of Meshwork: data product descriptors, their typed
//! names, and every check that needs neither a SQL engine nor a catalog.
//!
//! This crate owns the shape of `mesh.yaml` and `product.yaml`, reading them
//! into typed values with source locations, and the diagnostics that point
//! back into them. It has no async code and no heavy dependencies, so it
//! builds and tests in seconds.

pub mod backends;
pub mod column_type;
pub mod decode;
pub mod descriptor;
pub mod diagnostic;
pub mod graph;
pub mod name;
pub mod product;
pub mod project;
pub mod schedule;
pub mod serve;
pub mod sql;
pub mod validate;
pub mod yaml;

pub use column_type::{ColumnType, StructField};
pub use descriptor::*;
pub use diagnostic::{Diagnostic, Level, SourceFile};
pub use name::{ColumnName, DomainName, InputName, OutputName, ProductName, ProductRef, SqlName};
pub use product::parse_product;
pub use project::{Project, ProjectConfig, ProjectError};
