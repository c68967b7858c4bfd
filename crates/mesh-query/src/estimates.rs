//! Row estimates of physical plans, for the physical rules that decide by
//! them ([`crate::stages`], [`crate::broadcast`]).

use std::sync::Arc;

use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext};

/// Estimated output rows of plans, computed through one statistics
/// context so that shared subtrees are estimated once.
///
/// The context caches by node address, so every node estimated is kept
/// alive here while the estimates are in use: no address is reused.
#[derive(Default)]
pub(crate) struct RowEstimates {
    statistics: StatisticsContext,
    seen: Vec<Arc<dyn ExecutionPlan>>,
}

impl RowEstimates {
    /// The estimated rows of `plan`, or `None` when unknown. Statistics
    /// that cannot be computed are unknown: an estimate never fails a
    /// query.
    pub(crate) fn rows(&mut self, plan: Arc<dyn ExecutionPlan>) -> Option<usize> {
        self.seen.push(plan.clone());
        let s = self
            .statistics
            .compute(plan.as_ref(), &StatisticsArgs::new())
            .ok()?;
        s.num_rows.get_value().copied()
    }
}
