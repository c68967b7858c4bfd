//! Versioned tables: Delta Lake on an object store, addressed by URL.
//!
//! This crate owns the physical side of a product output: creating its
//! Delta table, writing files that stay invisible until committed, the
//! overwrite commit that publishes a run, the compaction commit that
//! rewrites a release's small files without changing data, opening a table at a version for
//! time travel, and removing the files of runs that never published.
//!
//! Invariant: the files of run `R` live under `r-<R>/` inside the table, so
//! files of an unpublished run can be removed without reading the log, and
//! files of every committed version stay for time travel.

pub mod aws_files;
pub mod compact;
pub mod copy;
pub mod error;
pub mod files;
pub mod s3;
pub mod table;

pub use compact::{
    COMPACTS_KEY, CompactionCommit, LiveFile, commit_compaction, commits_after, live_files,
};
pub use error::StorageError;
pub use files::{DataFile, data_files, delete_files, version_files};
pub use table::*;
