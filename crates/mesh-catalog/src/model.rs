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
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Skipped,
    /// The process died during the run (recorded by earlier versions;
    /// now `abandoned`).
    Interrupted,
    /// The process holding the run died or lost its lease; a later process
    /// closed the run and removed what it staged.
    Abandoned,
    /// Nothing the run reads changed since the last publication: nothing
    /// was published.
    UpToDate,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Abandoned => "abandoned",
            RunStatus::UpToDate => "up-to-date",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "skipped" => RunStatus::Skipped,
            "interrupted" => RunStatus::Interrupted,
            "abandoned" => RunStatus::Abandoned,
            "up-to-date" => RunStatus::UpToDate,
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
    /// The Delta version holding `files`, when a compaction rewrote them
    /// after publication (`table_version` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_version: Option<i64>,
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
    /// Why the run started: `manual`, `cron`, `upstream`, `retry` or `backfill`.
    pub cause: String,
    /// 1 for a first attempt, then one more per retry.
    pub attempt: i64,
    /// The fingerprint of what the run read (definition, upstream data
    /// versions, source files), when it got that far.
    pub inputs: Option<serde_json::Value>,
    /// What the run did, step by step.
    pub steps: Vec<RunStep>,
    /// What the run reported along the way.
    pub log: Vec<String>,
}

impl RunRecord {
    /// A run of `product` at `version` starting now.
    pub fn begin(product: ProductRef, version: String, cause: &str) -> Self {
        RunRecord {
            id: RunId::new(),
            product,
            version,
            status: RunStatus::Running,
            started_at: Utc::now(),
            finished_at: None,
            duration_ms: None,
            rows_written: None,
            checks_passed: 0,
            checks_failed: 0,
            checks_warned: 0,
            error: None,
            checks: Vec::new(),
            publications: Vec::new(),
            cause: cause.to_string(),
            attempt: 1,
            inputs: None,
            steps: Vec::new(),
            log: Vec::new(),
        }
    }
}

/// One step of a run: `read`, `transform`, `checks` or `commit`, with its
/// timing (milliseconds from the run's start) and what went through it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStep {
    pub step: String,
    /// The output the step worked on, for per-output steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub start_ms: i64,
    pub duration_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_in: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The lease of a run in progress: which process holds it, until when
/// (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLease {
    pub run_id: RunId,
    pub product: ProductRef,
    pub holder: String,
    pub lease_until: i64,
}

/// A run the scheduler owes a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRun {
    pub product: ProductRef,
    pub cause: String,
    /// Not before this time (milliseconds since the epoch).
    pub due_at: i64,
    pub attempt: i64,
    pub queued_at: i64,
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
