//! The data product descriptor (`product.yaml`), as typed values.
//!
//! Every value that a later check may point at keeps its [`Span`], so a
//! diagnostic can say `file:line:col`. The schema of the file is documented
//! in `docs/descriptor.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::column_type::ColumnType;
use crate::diagnostic::SourceFile;
use crate::name::{ColumnName, DomainName, InputName, OutputName, ProductName, ProductRef};
use crate::yaml::Span;

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Lifecycle of a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Draft,
    Active,
    Deprecated,
    Retired,
}

impl Status {
    pub const NAMES: &'static [&'static str] = &["draft", "active", "deprecated", "retired"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => Status::Draft,
            "active" => Status::Active,
            "deprecated" => Status::Deprecated,
            "retired" => Status::Retired,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Active => "active",
            Status::Deprecated => "deprecated",
            Status::Retired => "retired",
        }
    }
}

/// Data classification of a column; drives masking in the policy layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    Public,
    Internal,
    Confidential,
    Pii,
}

impl Classification {
    pub const NAMES: &'static [&'static str] = &["public", "internal", "confidential", "pii"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "public" => Classification::Public,
            "internal" => Classification::Internal,
            "confidential" => Classification::Confidential,
            "pii" => Classification::Pii,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Pii => "pii",
        }
    }
}

/// Human documentation of a product.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Description {
    pub purpose: Option<String>,
    pub usage: Option<String>,
    pub limitations: Option<String>,
}

/// A declared column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: Spanned<ColumnName>,
    pub ty: Spanned<ColumnType>,
    pub nullable: bool,
    pub description: Option<String>,
    pub classification: Option<Classification>,
    /// The column's name in the previous contract version, when it was renamed.
    pub renamed_from: Option<Spanned<ColumnName>>,
    /// Classified upstream columns whose classification this column does
    /// not inherit through lineage, each with the owner's reason
    /// (docs/lineage.md).
    pub declassify: Vec<Declassify>,
}

/// `declassify: {from: hr.employees.email, reason: …}` on a column: the
/// classification of `from` (a column anywhere upstream, as
/// `<domain>.<output>.<column>`) does not follow into this one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Declassify {
    pub from: Spanned<String>,
    pub reason: Spanned<String>,
    pub span: Span,
}

/// File formats a source input can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SourceFormat {
    Csv,
    Parquet,
    Json,
}

impl SourceFormat {
    pub const NAMES: &'static [&'static str] = &["csv", "parquet", "json"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "csv" => SourceFormat::Csv,
            "parquet" => SourceFormat::Parquet,
            "json" | "ndjson" => SourceFormat::Json,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Parquet => "parquet",
            SourceFormat::Json => "json",
        }
    }

    /// The file extension of this format.
    pub fn extension(&self) -> &'static str {
        self.as_str()
    }
}

/// Raw files the domain owns.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    pub format: SourceFormat,
    /// A path or glob, relative to the product's directory.
    pub path: Spanned<String>,
    /// Declared schema. When absent, the schema is inferred from the files.
    pub columns: Option<Vec<Column>>,
    /// CSV only: the field delimiter.
    pub delimiter: u8,
    /// CSV only: whether the first line is a header.
    pub header: bool,
}

/// What an input reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum InputKind {
    Source(Source),
    Product {
        product: Spanned<ProductRef>,
        /// Which output; may be left out when the product has one output.
        output: Option<Spanned<OutputName>>,
        /// A semver requirement on the upstream contract, e.g. `^2`.
        version: Option<Spanned<semver::VersionReq>>,
    },
}

/// An input of a product, visible to its SQL as a table named `name`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Input {
    pub name: Spanned<InputName>,
    pub kind: InputKind,
    pub span: Span,
}

/// Where the SQL of a transform comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Sql {
    /// A file, relative to the product's directory.
    File(Spanned<String>),
    /// SQL written inline in the descriptor.
    Inline(Spanned<String>),
}

/// Severity of a quality check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckSeverity {
    /// A failure blocks the publish.
    Error,
    /// A failure is recorded but does not block.
    Warn,
}

/// A literal bound in a check.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Literal {
    /// The literal as SQL text.
    pub fn to_sql(&self) -> String {
        match self {
            Literal::Int(i) => i.to_string(),
            Literal::Float(f) => format!("{f:?}"),
            Literal::Str(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x}"),
            Literal::Str(s) => f.write_str(s),
        }
    }
}

/// What a quality check asserts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CheckKind {
    /// No two rows share the same values of these columns.
    Unique { columns: Vec<Spanned<ColumnName>> },
    /// These columns hold no nulls.
    NotNull { columns: Vec<Spanned<ColumnName>> },
    /// Every non-null value is within bounds (inclusive).
    Range {
        column: Spanned<ColumnName>,
        min: Option<Literal>,
        max: Option<Literal>,
    },
    /// Every non-null value is one of these.
    AcceptedValues {
        column: Spanned<ColumnName>,
        values: Vec<Literal>,
    },
    /// The row count is within bounds.
    RowCount { min: Option<u64>, max: Option<u64> },
    /// A SQL query over the output returning one number, which must equal `must_be`.
    Sql {
        query: Spanned<String>,
        must_be: f64,
    },
}

impl CheckKind {
    /// The name used in the descriptor's `check:` field.
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckKind::Unique { .. } => "unique",
            CheckKind::NotNull { .. } => "not_null",
            CheckKind::Range { .. } => "range",
            CheckKind::AcceptedValues { .. } => "accepted_values",
            CheckKind::RowCount { .. } => "row_count",
            CheckKind::Sql { .. } => "sql",
        }
    }
}

/// Check keywords, for "did you mean" hints.
pub const CHECK_NAMES: &[&str] = &[
    "unique",
    "not_null",
    "range",
    "accepted_values",
    "row_count",
    "sql",
];

/// A quality check on an output, run on staged data before publishing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualityCheck {
    /// A stable name: given, or derived from the kind and columns.
    pub name: String,
    pub kind: CheckKind,
    pub severity: CheckSeverity,
    pub span: Span,
}

/// An output port: a contract-bound table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Output {
    pub name: Spanned<OutputName>,
    pub description: Option<String>,
    pub primary_key: Vec<Spanned<ColumnName>>,
    pub columns: Vec<Column>,
    pub quality: Vec<QualityCheck>,
    /// The SQL that builds this output; defaults to the product's transform.
    pub sql: Option<Sql>,
    /// Columns each release is sorted by, so the statistics of its files,
    /// row groups and pages prune reads (docs/storage.md).
    pub cluster_by: Vec<Spanned<ColumnName>>,
    /// The size each data file is rolled at, in bytes.
    pub target_file_size: Option<Spanned<u64>>,
    pub span: Span,
    /// For an output of an older major's line (`orders_v1`): the name its
    /// descriptor gives it (`orders`), which its SQL checks use.
    pub original_name: Option<OutputName>,
}

impl Output {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.as_str() == name)
    }
}

/// Service level objectives.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Slo {
    /// Maximum age of the latest published version: past it, the
    /// product is failing its promise.
    pub freshness: Option<Spanned<Duration>>,
    /// Age past which the product is degraded (`freshness: {warn, fail}`);
    /// three quarters of `freshness` when not written.
    pub freshness_warn: Option<Duration>,
    /// The quality objective, when declared.
    pub quality: Option<QualitySlo>,
}

/// The share of quality checks that must pass over a window of runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualitySlo {
    pub min_pass_rate: f64,
    pub window: Duration,
}

impl QualitySlo {
    /// What a product without a declared quality objective is held to.
    pub const DEFAULT: QualitySlo = QualitySlo {
        min_pass_rate: 0.95,
        window: Duration::from_secs(7 * 86_400),
    };
}

impl Slo {
    /// The freshness windows (warn, fail), when a freshness SLO is declared.
    pub fn freshness_windows(&self) -> Option<(Duration, Duration)> {
        let fail = self.freshness.as_ref()?.value;
        Some((self.freshness_warn.unwrap_or(fail * 3 / 4), fail))
    }
}

/// When the product is rebuilt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    pub cron: Option<Spanned<String>>,
    /// The IANA time zone the cron pattern is read in; UTC when absent.
    pub timezone: Option<Spanned<String>>,
    pub on_upstream_change: bool,
    /// How many times a failed scheduled run is retried (the scheduler's
    /// default when absent).
    pub retries: Option<u64>,
}

impl Schedule {
    /// The cron pattern in its time zone; `None` without a cron pattern
    /// (or one that did not validate, which parsing already reported).
    pub fn cron(&self) -> Option<crate::schedule::Cron> {
        let cron = self.cron.as_ref()?;
        crate::schedule::Cron::parse(
            &cron.value,
            self.timezone.as_ref().map(|t| t.value.as_str()),
        )
        .ok()
    }
}

/// Which old data versions of each output stay readable
/// (docs/storage.md). A version is kept while any rule keeps it; the
/// current one always is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retention {
    /// The newest releases kept.
    pub keep_releases: Option<u64>,
    /// Releases published within this many days are kept.
    pub keep_days: Option<u64>,
}

impl Retention {
    /// The mesh-wide default when `mesh.yaml` declares none.
    pub const DEFAULT: Retention = Retention {
        keep_releases: Some(10),
        keep_days: Some(30),
    };
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.keep_releases {
            parts.push(format!("keep_releases: {n}"));
        }
        if let Some(d) = self.keep_days {
            parts.push(format!("keep_days: {d}"));
        }
        write!(f, "{{{}}}", parts.join(", "))
    }
}

/// Who may see and be granted the product.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Access {
    pub visibility: String,
    pub approvers: Vec<String>,
    pub max_grant: Option<Spanned<Duration>>,
}

/// A parsed `product.yaml`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProductDescriptor {
    /// The descriptor file, for diagnostics. Not encoded: whoever decodes
    /// a descriptor has its text (see `decode_parsed`).
    #[serde(skip, default = "no_file")]
    pub file: Arc<SourceFile>,
    /// The product's directory; relative paths resolve against it.
    #[serde(skip)]
    pub dir: PathBuf,
    pub domain: Spanned<DomainName>,
    pub name: Spanned<ProductName>,
    pub version: Spanned<semver::Version>,
    pub status: Status,
    /// When a deprecated product stops being served.
    pub sunset: Option<Spanned<chrono::NaiveDate>>,
    pub owner: Spanned<String>,
    pub description: Description,
    pub tags: Vec<String>,
    pub inputs: Vec<Input>,
    pub transform: Option<Sql>,
    pub outputs: Vec<Output>,
    pub slo: Option<Slo>,
    pub schedule: Option<Schedule>,
    pub access: Option<Access>,
    /// Replaces the mesh's default retention for the product's outputs.
    pub retention: Option<Spanned<Retention>>,
}

fn no_file() -> Arc<SourceFile> {
    SourceFile::new(PathBuf::new(), "")
}

impl ProductDescriptor {
    pub fn product_ref(&self) -> ProductRef {
        ProductRef::new(self.domain.value.clone(), self.name.value.clone())
    }

    pub fn output(&self, name: &str) -> Option<&Output> {
        self.outputs.iter().find(|o| o.name.as_str() == name)
    }

    /// The SQL of an output: its own, or the product's transform.
    pub fn sql_for<'a>(&'a self, output: &'a Output) -> Option<&'a Sql> {
        output.sql.as_ref().or(self.transform.as_ref())
    }

    /// Products this one reads.
    pub fn upstream(&self) -> impl Iterator<Item = &Spanned<ProductRef>> {
        self.inputs.iter().filter_map(|i| match &i.kind {
            InputKind::Product { product, .. } => Some(product),
            InputKind::Source(_) => None,
        })
    }
}

/// Parses durations such as `30m`, `6h`, `2d`, `90d`, `1w`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    if unit == "ms" {
        return Some(Duration::from_millis(n));
    }
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

/// Formats a duration the way descriptors write it.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    for (unit, secs) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= secs && s.is_multiple_of(secs) {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}
