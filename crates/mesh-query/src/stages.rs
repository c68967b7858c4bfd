//! Filters in stages: once a filter's first conjuncts keep few rows, the
//! rest are evaluated on those rows alone.
//!
//! DataFusion evaluates a filter `a AND b AND c` as one expression over
//! whole batches. When `a` keeps at most a fifth of a batch it evaluates
//! `b` on the rows `a` kept, and then scatters the answer back to a
//! full-length mask bit by bit, then again for `c`, so every later
//! conjunct pays for the whole batch twice (the copy of the kept rows,
//! and the scatter). TPC-H Q6 spent 13% of its time in that scatter.
//!
//! The rule [`FilterStages`] runs last among the physical optimizer's
//! rules. For a filter of two or more conjuncts (in the order
//! [`crate::conjuncts`] left them) it finds the shortest leading run
//! that keeps at most [`STAGE_SELECTIVITY`] of the input rows by the
//! input's statistics, and splits the filter there into two: the first
//! keeps only the columns the rest and the output need, and the second
//! evaluates the rest on the rows that survived, in full batches. It
//! repeats on the second.
//!
//! The answer is the same: a row passes both stages exactly when it
//! passes every conjunct. No conjunct moves ahead of another, and each
//! one after the split is evaluated on a subset of the rows it was
//! evaluated on before, so a conjunct that can fail fails on no row it
//! would not have failed on. A filter whose input has no statistics (a
//! governed table, whose [`crate::barrier::BarrierExec`] reports none)
//! is left as it is: its selectivity is unknown.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::{collect_columns, conjunction, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};

use crate::estimates::RowEstimates;

/// A leading run of conjuncts that keeps at most this share of its
/// input's rows becomes a stage of its own: the share below which
/// DataFusion itself evaluates later conjuncts on the kept rows only.
pub const STAGE_SELECTIVITY: f64 = 0.2;

/// The physical optimizer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct FilterStages;

impl PhysicalOptimizerRule for FilterStages {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match stage(filter)? {
                Some(staged) => Transformed::yes(staged),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "mesh_filter_stages"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `filter` split into stages, or `None` to keep it whole.
fn stage(filter: &FilterExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let mut estimates = RowEstimates::default();
    let conjuncts: Vec<Arc<dyn PhysicalExpr>> = split_conjunction(filter.predicate())
        .into_iter()
        .cloned()
        .collect();
    if conjuncts.len() < 2 {
        return Ok(None);
    }
    let input = filter.input();
    let Some(rows) = estimates.rows(input.clone()) else {
        return Ok(None);
    };
    if rows == 0 {
        return Ok(None);
    }
    for split in 1..conjuncts.len() {
        let lead = conjunction(conjuncts[..split].iter().cloned());
        // Unknown selectivity counts as keeping every row.
        let probe = FilterExecBuilder::new(lead.clone(), input.clone())
            .with_default_selectivity(100)
            .build()?;
        let Some(kept) = estimates.rows(Arc::new(probe)) else {
            continue;
        };
        if kept as f64 <= STAGE_SELECTIVITY * rows as f64 {
            let rest = conjunction(conjuncts[split..].iter().cloned());
            let staged = split_at(filter, lead, rest)?;
            let more = stage(&staged)?;
            return Ok(Some(more.unwrap_or_else(|| Arc::new(staged))));
        }
    }
    Ok(None)
}

/// `filter` as `lead` over its input, keeping only the columns `rest`
/// and the output read, under `rest` with the filter's projection.
fn split_at(
    filter: &FilterExec,
    lead: Arc<dyn PhysicalExpr>,
    rest: Arc<dyn PhysicalExpr>,
) -> Result<FilterExec> {
    let input = filter.input();
    let width = input.schema().fields().len();
    let output: Vec<usize> = match filter.projection() {
        Some(p) => p.to_vec(),
        None => (0..width).collect(),
    };
    let keep: Vec<usize> = output
        .iter()
        .copied()
        .chain(collect_columns(&rest).iter().map(Column::index))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Where each kept input column lands in the first stage's output.
    let at = |i: usize| keep.binary_search(&i).unwrap_or(i);
    let rest = rest
        .transform(|e| {
            Ok(match e.downcast_ref::<Column>() {
                Some(c) => Transformed::yes(
                    Arc::new(Column::new(c.name(), at(c.index()))) as Arc<dyn PhysicalExpr>
                ),
                None => Transformed::no(e),
            })
        })?
        .data;
    let first = FilterExecBuilder::new(lead, input.clone())
        .with_default_selectivity(filter.default_selectivity())
        .with_batch_size(filter.batch_size())
        .apply_projection((keep.len() < width).then(|| keep.clone()))?
        .build()?;
    let projection: Vec<usize> = output.iter().map(|&i| at(i)).collect();
    let identity = projection.iter().copied().eq(0..keep.len());
    FilterExecBuilder::new(rest, Arc::new(first))
        .with_default_selectivity(filter.default_selectivity())
        .with_batch_size(filter.batch_size())
        .with_fetch(filter.fetch())
        .apply_projection((!identity).then_some(projection))?
        .build()
}

#[cfg(test)]
mod tests;
