//! Data contracts: what changed between two versions of a product's
//! contract, and how each change is graded for its consumers.
//!
//! A contract is the promise an output makes to the products and people
//! that read it: its columns and their types, nullability and
//! classification, its primary key, its quality checks and the product's
//! SLO. Grades take the reader's side: a change is `breaking` when a
//! consumer that relied on the old promise can fail or silently get
//! different data, `compatible` when every old reader keeps working, and
//! `cosmetic` when only documentation changed. Every grade is decided in
//! [`rules::grade`], which `docs/contracts.md` reproduces as a table.

pub mod diff;
pub mod odcs;
pub mod rules;
pub mod types;

pub use diff::{Change, ChangeKind, diff_products};
pub use rules::{Grade, VersionError, grade, version_gate};
