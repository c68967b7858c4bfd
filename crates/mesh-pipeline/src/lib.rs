//! Building products: runs in dependency order, write–audit–publish.
//!
//! A run reads its inputs (source files, or the published version of
//! upstream outputs), runs the transform SQL, writes the result as files no
//! reader sees, runs the quality checks on those files, and only if every
//! blocking check passes commits them as a new Delta version and records
//! the publication. A run that dies half-way is found by [`recover`].
//! [`compact`] rewrites a release's small files without changing its data.

pub mod check;
pub mod compact;
pub mod error;
pub mod fingerprint;
pub mod lease;
pub mod recover;
pub mod runner;

pub use compact::{Optimized, OutputCompaction};
pub use error::{PipelineError, Result};
pub use runner::{Observer, Runner, Silent};
