//! Records the catalog stores.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mesh_spec::{DomainName, OutputName, ProductRef};
use serde::{Deserialize, Serialize};

/// A run's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        RunId(uuid::Uuid::now_v7().to_string())
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A deployment's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(pub String);

/// The deployed definition of a product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductRecord {
    pub product: ProductRef,
    pub version: String,
    pub status: String,
    pub owner: String,
    /// Where the descriptor was deployed from.
    pub descriptor_path: String,
    /// The exact descriptor text.
    pub descriptor: String,
    /// The exact SQL texts it references, by relative path.
    pub sql_texts: BTreeMap<String, String>,
    pub deployed_at: DateTime<Utc>,
    pub deployed_by: String,
    pub outputs: Vec<OutputRecord>,
    /// For an older major kept alive (`sales/orders_v1`): the product it
    /// is a major of (`sales/orders`).
    pub line_of: Option<ProductRef>,
    /// The sunset date given by `mesh deprecate` to an older major (which
    /// has no descriptor of its own to carry it). `None` otherwise.
    pub sunset: Option<chrono::NaiveDate>,
}

impl ProductRecord {
    /// Whether two records define the same product (ignoring who deployed it and when).
    pub fn same_definition(&self, other: &ProductRecord) -> bool {
        self.product == other.product
            && self.descriptor == other.descriptor
            && self.descriptor_path == other.descriptor_path
            && self.sql_texts == other.sql_texts
            && self.outputs == other.outputs
            && self.line_of == other.line_of
    }
}

/// A column as the query layer needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
}

/// An output port and where its table lives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputRecord {
    pub domain: DomainName,
    pub output: OutputName,
    pub product: ProductRef,
    /// The table URL.
    pub location: String,
    pub columns: Vec<ColumnRecord>,
}

/// A breaking contract change deployed on purpose (`--allow-breaking`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractOverride {
    pub product: ProductRef,
    pub from_version: String,
    pub to_version: String,
    pub by: String,
    pub at: DateTime<Utc>,
    /// The breaking changes, as sentences.
    pub changes: Vec<String>,
    /// The consumer outputs they break, as `domain/product:output`.
    pub consumers: Vec<String>,
}

/// What a deployment changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployOutcome {
    pub deployment: Option<DeploymentId>,
    pub created: Vec<ProductRef>,
    pub updated: Vec<ProductRef>,
    pub unchanged: Vec<ProductRef>,
    /// Products deployed over the contract gate, with the override recorded.
    pub overridden: Vec<ProductRef>,
}

/// Status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Skipped,
    /// The process died during the run; found and closed by a later run.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "skipped" => RunStatus::Skipped,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
    }
}

/// The outcome of one quality check in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub output: String,
    pub name: String,
    pub kind: String,
    pub severity: String,
    pub passed: bool,
    /// What was measured, e.g. `3 duplicate keys`.
    pub observed: String,
    /// A few offending rows, as JSON objects.
    pub sample: Vec<serde_json::Value>,
}

/// A table version a run published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub domain: DomainName,
    pub output: OutputName,
    pub table_version: i64,
    pub product_version: String,
    pub run_id: RunId,
    pub row_count: i64,
    pub published_at: DateTime<Utc>,
    /// The version's data files, relative to the table root. With
    /// `columns`, lets readers scan the version without the Delta log.
    #[serde(skip)]
    pub files: Option<Vec<String>>,
    /// The contract columns the version was written with.
    #[serde(skip)]
    pub columns: Option<Vec<ColumnRecord>>,
}

/// A run of one product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub product: ProductRef,
    pub version: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub rows_written: Option<i64>,
    pub checks_passed: i64,
    pub checks_failed: i64,
    pub checks_warned: i64,
    pub error: Option<String>,
    pub checks: Vec<CheckResult>,
    pub publications: Vec<Publication>,
}

/// Counters that triggers move with every change, in any process, so a
/// process can keep what it built from the catalog while they stand
/// still: `deployment` for products and their outputs (migration 0008),
/// `activity` for runs, check results, publications and overrides
/// (0009), `access` for principals, roles, teams, grants and recorded
/// classifications (0011).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generations {
    pub deployment: i64,
    pub activity: i64,
    pub access: i64,
}
