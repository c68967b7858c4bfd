//! A statement's deadline and its end, checked inside the plan.
//!
//! The front ends wait for each batch with a timer, but a timer can only
//! fire when the statement yields, and a front end that gives up on a
//! statement (a cancel request, a client gone) only drops its stream:
//! the tasks computing it stop at their next yield. DataFusion's sources yield
//! cooperatively; an operator that makes many rows out of few (a cross or
//! nested-loop join, a join with many matches, `unnest`) can keep an
//! aggregation above it busy for minutes between two polls of a source,
//! and hold a worker thread, and its timer, the whole time. [`watch`] puts a
//! [`DeadlineExec`] above each such operator: it checks the clock and a
//! [`Stop`] flag on every batch that passes (a few nanoseconds) and ends
//! the statement with [`PastDeadline`] once the deadline has passed or the
//! flag is raised, wherever it is running.
//!
//! It wraps the plan that is executed, after optimization, so no rule
//! moves it and `EXPLAIN` does not show it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;

/// Raised when whoever reads a statement's rows gives up on them.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Ends the statement at the next batch any watched operator passes.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// When a statement must end: its deadline, if any, or when stopped.
#[derive(Debug, Clone)]
pub struct Until {
    pub deadline: Option<Instant>,
    pub stop: Stop,
}

impl Until {
    fn reached(&self) -> bool {
        self.stop.raised() || self.deadline.is_some_and(|at| Instant::now() >= at)
    }
}

/// The error a statement ends with once past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the statement ran past its deadline")]
pub struct PastDeadline;

/// Whether `e` is (or wraps) [`PastDeadline`].
pub fn is_past_deadline(e: &DataFusionError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<PastDeadline>() {
            return true;
        }
        if let Some(DataFusionError::Shared(inner)) = s.downcast_ref::<DataFusionError>()
            && is_past_deadline(inner)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Operators that can produce many batches per batch they read.
fn amplifies(plan: &dyn ExecutionPlan) -> bool {
    plan.children().len() >= 2 || plan.name() == "UnnestExec"
}

/// `plan` with a check of `until` above every operator that can produce
/// many rows from few.
pub fn watch(plan: Arc<dyn ExecutionPlan>, until: &Until) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if amplifies(node.as_ref()) {
            Ok(Transformed::yes(
                Arc::new(DeadlineExec::new(node, until.clone())) as Arc<dyn ExecutionPlan>,
            ))
        } else {
            Ok(Transformed::no(node))
        }
    })
    .map(|t| t.data)
}

/// Passes its input's batches through until the deadline or a stop,
/// then fails.
#[derive(Debug)]
pub struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    until: Until,
    properties: Arc<PlanProperties>,
}

impl DeadlineExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, until: Until) -> Self {
        let properties = input.properties().clone();
        DeadlineExec {
            input,
            until,
            properties,
        }
    }
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match t {
            DisplayFormatType::TreeRender => Ok(()),
            _ => write!(f, "DeadlineExec"),
        }
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.len() {
            1 => Ok(Arc::new(DeadlineExec::new(
                children.swap_remove(0),
                self.until.clone(),
            ))),
            n => Err(DataFusionError::Internal(format!(
                "DeadlineExec has one child, not {n}"
            ))),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(
                datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
            ),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let until = self.until.clone();
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let checked = input.map(move |batch| {
            if until.reached() {
                Err(DataFusionError::External(Box::new(PastDeadline)))
            } else {
                batch
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, checked)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn planned(sql: &str) -> (SessionContext, Arc<dyn ExecutionPlan>) {
        let ctx = SessionContext::new();
        let plan = ctx.sql(sql).await.unwrap();
        let plan = plan.create_physical_plan().await.unwrap();
        (ctx, plan)
    }

    const CROSS: &str = "SELECT a.value % 7 AS k, count(*) FROM generate_series(1, 100000) a \
                         CROSS JOIN generate_series(1, 100000) b GROUP BY 1";

    #[tokio::test]
    async fn a_join_that_multiplies_rows_stops_at_the_deadline() {
        let (ctx, plan) = planned(CROSS).await;
        // Already past: the first batch out of the join ends it.
        let until = Until {
            deadline: Some(Instant::now()),
            stop: Stop::default(),
        };
        let watched = watch(plan, &until).unwrap();
        let shown = datafusion::physical_plan::displayable(watched.as_ref())
            .indent(false)
            .to_string();
        assert!(shown.contains("DeadlineExec"), "{shown}");
        let e = datafusion::physical_plan::collect(watched, ctx.task_ctx())
            .await
            .unwrap_err();
        assert!(is_past_deadline(&e), "{e}");
    }

    #[tokio::test]
    async fn a_statement_within_its_deadline_is_unchanged() {
        let ctx = SessionContext::new();
        let sql = "SELECT count(*) AS n FROM generate_series(1, 100) a \
                   CROSS JOIN generate_series(1, 100) b";
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let until = Until {
            deadline: Some(Instant::now() + std::time::Duration::from_secs(3600)),
            stop: Stop::default(),
        };
        let batches =
            datafusion::physical_plan::collect(watch(plan, &until).unwrap(), ctx.task_ctx())
                .await
                .unwrap();
        let shown = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(shown.contains("10000"), "{shown}");
    }

    #[tokio::test]
    async fn a_stopped_statement_ends_at_the_next_batch() {
        let (ctx, plan) = planned(CROSS).await;
        let until = Until {
            deadline: None,
            stop: Stop::default(),
        };
        let watched = watch(plan, &until).unwrap();
        until.stop.raise();
        let e = datafusion::physical_plan::collect(watched, ctx.task_ctx())
            .await
            .unwrap_err();
        assert!(is_past_deadline(&e), "{e}");
    }
}
