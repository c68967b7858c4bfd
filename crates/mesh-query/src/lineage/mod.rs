//! Column lineage, derived from the logical plan of each output's SQL
//! (docs/lineage.md).
//!
//! For every column an output produces, the input columns it depends on,
//! typed as in OpenLineage's column-lineage facet:
//!
//! - DIRECT: the value flows, as IDENTITY (copied), TRANSFORMATION
//!   (computed from) or AGGREGATION;
//! - INDIRECT: the column decides which rows or values there are, without
//!   flowing: JOIN, GROUP_BY, FILTER, SORT, WINDOW or CONDITIONAL.
//!
//! A DIRECT edge is *masking* when the flow provably cannot carry the
//! input's value (`count`, a comparison, a hash, a length): classifications
//! follow only DIRECT edges that do not mask. Nothing is declared and
//! nothing is executed: the plan is the one the SQL is checked with.

mod expr;
mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::logical_expr::LogicalPlan;
use mesh_spec::ProductDescriptor;
use mesh_spec::sql::SqlTexts;
use serde::{Deserialize, Serialize};

pub use expr::carries_value;

use crate::plan::UpstreamSchemas;

/// How an input column reaches an output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Subtype {
    // DIRECT, weakest first: composing two steps keeps the stronger.
    Identity,
    Transformation,
    Aggregation,
    // INDIRECT.
    Join,
    GroupBy,
    Filter,
    Sort,
    Window,
    Conditional,
}

/// OpenLineage's transformation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EdgeType {
    Direct,
    Indirect,
}

impl Subtype {
    pub fn edge_type(self) -> EdgeType {
        match self {
            Subtype::Identity | Subtype::Transformation | Subtype::Aggregation => EdgeType::Direct,
            _ => EdgeType::Indirect,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Subtype::Identity => "IDENTITY",
            Subtype::Transformation => "TRANSFORMATION",
            Subtype::Aggregation => "AGGREGATION",
            Subtype::Join => "JOIN",
            Subtype::GroupBy => "GROUP_BY",
            Subtype::Filter => "FILTER",
            Subtype::Sort => "SORT",
            Subtype::Window => "WINDOW",
            Subtype::Conditional => "CONDITIONAL",
        }
    }
}

impl EdgeType {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeType::Direct => "DIRECT",
            EdgeType::Indirect => "INDIRECT",
        }
    }
}

/// An input column: the input's `name` in the descriptor and the column,
/// a nested field as `column.field`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Source {
    pub input: String,
    pub column: String,
}

/// One dependency of an output column on an input column (ordered
/// DIRECT first, then by subtype, input and column).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Edge {
    #[serde(rename = "type")]
    pub edge_type: EdgeType,
    pub subtype: Subtype,
    pub input: String,
    pub column: String,
    /// The flow cannot carry the input's value (DIRECT edges only).
    #[serde(default)]
    pub masking: bool,
}

impl Edge {
    /// Whether the input column's value can reach the output column, so
    /// its classification follows.
    pub fn carries_value(&self) -> bool {
        self.edge_type == EdgeType::Direct && !self.masking
    }
}

/// Output column → its edges, sorted.
pub type OutputLineage = BTreeMap<String, Vec<Edge>>;

/// Output name → the lineage of its columns.
pub type ProductLineage = BTreeMap<String, OutputLineage>;

/// The lineage of every column the plan of one output produces, by the
/// plan's column names. Tables that are not in `inputs` (none in a
/// transform) contribute nothing.
pub fn plan_lineage(plan: &LogicalPlan, inputs: &BTreeSet<&str>) -> OutputLineage {
    let started = Instant::now();
    let out = derive(plan, inputs);
    DERIVING.fetch_add(
        u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    out
}

/// Nanoseconds this process spent in [`plan_lineage`].
static DERIVING: AtomicU64 = AtomicU64::new(0);

/// The time this process spent deriving lineage from plans (reported by
/// `mesh plan` and `mesh deploy` at debug level, for the benchmark).
pub fn derivation_time() -> Duration {
    Duration::from_nanos(DERIVING.load(Ordering::Relaxed))
}

fn derive(plan: &LogicalPlan, inputs: &BTreeSet<&str>) -> OutputLineage {
    let node = plan::node(plan, &plan::Cx::new(inputs));
    let mut out = OutputLineage::new();
    for (field, lineage) in plan.schema().fields().iter().zip(node.fields) {
        let mut edges: BTreeSet<Edge> = BTreeSet::new();
        for (source, step) in &lineage.direct {
            edges.insert(Edge {
                input: source.input.clone(),
                column: source.column.clone(),
                edge_type: EdgeType::Direct,
                subtype: step.subtype,
                masking: step.masking,
            });
        }
        for indirect in [&lineage.indirect, &node.rows] {
            for (source, subtypes) in indirect {
                for subtype in subtypes {
                    edges.insert(Edge {
                        input: source.input.clone(),
                        column: source.column.clone(),
                        edge_type: EdgeType::Indirect,
                        subtype: *subtype,
                        masking: false,
                    });
                }
            }
        }
        out.entry(field.name().clone()).or_default().extend(edges);
    }
    for edges in out.values_mut() {
        edges.sort();
        edges.dedup();
    }
    out
}

/// The column lineage of every output of `p`, planned against `upstream`
/// (`stored` holds deployed SQL texts; without it SQL files are read).
pub async fn product_lineage(
    p: &ProductDescriptor,
    upstream: &dyn UpstreamSchemas,
    stored: Option<&SqlTexts>,
) -> Result<ProductLineage, mesh_spec::Diagnostic> {
    let (_, planned) = crate::usage::plan_outputs(p, upstream, stored).await?;
    let inputs: BTreeSet<&str> = p.inputs.iter().map(|i| i.name.as_str()).collect();
    Ok(planned
        .into_iter()
        .map(|(output, df)| {
            (
                output.name.to_string(),
                plan_lineage(df.logical_plan(), &inputs),
            )
        })
        .collect())
}
