//! Which columns of its inputs a product's SQL actually reads.
//!
//! The SQL of each output is planned against its inputs' declared schemas
//! and optimized; projection pushdown then leaves each input's scan with
//! exactly the columns the query needs, through joins, filters,
//! aggregates, `SELECT *`, CTEs and subqueries. Nothing is executed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use mesh_spec::sql::{SqlTexts, load_sql};
use mesh_spec::{Diagnostic, InputKind, Output, ProductDescriptor};

use crate::plan::{UpstreamSchemas, sql_diagnostic};
use crate::schema::arrow_schema;
use crate::session::transform_context;
use crate::source::register_source;

/// Input name → the columns of it that are read.
pub type InputUsage = BTreeMap<String, BTreeSet<String>>;

/// Output name → what its SQL reads from each input.
pub type ColumnUsage = BTreeMap<String, InputUsage>;

/// Registers every input as an empty table with its schema. Sources with
/// declared columns need no file access; others read their files' schema.
async fn register_for_analysis(
    ctx: &SessionContext,
    p: &ProductDescriptor,
    upstream: &dyn UpstreamSchemas,
) -> Result<(), Diagnostic> {
    for input in &p.inputs {
        let name = input.name.as_str();
        let schema = match &input.kind {
            InputKind::Source(source) => match &source.columns {
                Some(columns) => arrow_schema(columns),
                None => {
                    register_source(ctx, name, &p.dir, source)
                        .await
                        .map_err(|e| {
                            Diagnostic::error(
                                "source",
                                format!("input `{name}` cannot be read: {e}"),
                            )
                            .at(&p.file, source.path.span)
                        })?;
                    continue;
                }
            },
            InputKind::Product {
                product,
                output,
                version,
            } => upstream
                .schema(
                    &product.value,
                    output.as_ref().map(|o| o.as_str()),
                    version.as_ref().map(|v| &v.value),
                )
                .ok_or_else(|| {
                    Diagnostic::error(
                        "missing-product",
                        format!(
                            "input `{name}` reads `{}`, which is not known",
                            product.value
                        ),
                    )
                    .at(&p.file, product.span)
                })?,
        };
        let table = MemTable::try_new(schema, vec![vec![]])
            .map_err(|e| Diagnostic::error("internal", e.to_string()))?;
        ctx.register_table(name, Arc::new(table))
            .map_err(|e| Diagnostic::error("internal", e.to_string()))?;
    }
    Ok(())
}

/// The columns each input scan in `plan` reads, for the tables in `inputs`.
fn scanned_columns(plan: &LogicalPlan, inputs: &BTreeSet<&str>) -> InputUsage {
    let mut usage = InputUsage::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let table = scan.table_name.table();
            if inputs.contains(table) {
                let schema = scan.source.schema();
                let cols = usage.entry(table.to_string()).or_default();
                match &scan.projection {
                    Some(indices) => {
                        cols.extend(indices.iter().map(|i| schema.field(*i).name().clone()))
                    }
                    None => cols.extend(schema.fields().iter().map(|f| f.name().clone())),
                }
                for f in &scan.filters {
                    cols.extend(f.column_refs().into_iter().map(|c| c.name.clone()));
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    usage
}

/// What every output of `p` reads from each of its inputs.
///
/// `stored` holds deployed SQL texts; without it SQL files are read from disk.
pub async fn column_usage(
    p: &ProductDescriptor,
    upstream: &dyn UpstreamSchemas,
    stored: Option<&SqlTexts>,
) -> Result<ColumnUsage, Diagnostic> {
    let (ctx, planned) = plan_outputs(p, upstream, stored).await?;
    let inputs: BTreeSet<&str> = p.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut usage = ColumnUsage::new();
    for (output, df) in planned {
        let plan = df.logical_plan();
        // If the optimizer cannot handle the plan, every scanned column
        // counts as read: over-reporting a consumer is the safe mistake.
        let reads = match ctx.state().optimize(plan) {
            Ok(optimized) => scanned_columns(&optimized, &inputs),
            Err(_) => scanned_columns(plan, &inputs),
        };
        usage.insert(output.name.to_string(), reads);
    }
    Ok(usage)
}

/// Every output of `p` with its SQL planned against `upstream` (stored
/// SQL texts, or the files on disk), in the session it was planned in.
pub(crate) async fn plan_outputs<'p>(
    p: &'p ProductDescriptor,
    upstream: &dyn UpstreamSchemas,
    stored: Option<&SqlTexts>,
) -> Result<(SessionContext, Vec<(&'p Output, DataFrame)>), Diagnostic> {
    let ctx = transform_context(None);
    register_for_analysis(&ctx, p, upstream).await?;
    let mut planned = Vec::with_capacity(p.outputs.len());
    for output in &p.outputs {
        let Some(sql) = p.sql_for(output) else {
            continue;
        };
        let sql = load_sql(p, sql, stored)?;
        let what = format!("SQL of output `{}` does not plan", output.name.value);
        let df = ctx
            .sql(&sql.text)
            .await
            .map_err(|e| sql_diagnostic(&sql, &what, &e.strip_backtrace()))?;
        planned.push((output, df));
    }
    Ok((ctx, planned))
}

/// A declared column its SQL now produces in a type the contract does not
/// accept (an upstream widened it): what the consumer must change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Narrowed {
    pub output: String,
    pub column: String,
    pub declared: String,
    pub produced: String,
}

/// The declared columns of `p` whose SQL, planned against `upstream`,
/// produces a type the declaration does not accept.
pub async fn narrowed_columns(
    p: &ProductDescriptor,
    upstream: &dyn UpstreamSchemas,
    stored: Option<&SqlTexts>,
) -> Result<Vec<Narrowed>, Diagnostic> {
    let (_, planned) = plan_outputs(p, upstream, stored).await?;
    let mut out = Vec::new();
    for (output, df) in planned {
        let produced = df.schema().as_arrow();
        for c in &output.columns {
            let Ok(field) = produced.field_with_name(c.name.as_str()) else {
                continue;
            };
            if !crate::schema::accepts(&c.ty.value, field.data_type()) {
                out.push(Narrowed {
                    output: output.name.to_string(),
                    column: c.name.to_string(),
                    declared: c.ty.value.to_string(),
                    produced: crate::schema::contract_type(field.data_type())
                        .map_or_else(|| field.data_type().to_string(), |t| t.to_string()),
                });
            }
        }
    }
    Ok(out)
}
