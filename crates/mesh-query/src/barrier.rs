//! The security barrier between a policy and the caller's SQL.
//!
//! A read with masks or row filters is served by a [`SecureTable`]: a
//! table provider whose scan plans `TableScan ← Filter(row filters) ←
//! Projection(masks)` on its own, and hands the caller's plan one opaque
//! [`BarrierExec`] leaf. Nothing the caller writes is planned below it:
//!
//! - the caller's predicates stay above (the provider accepts none as
//!   exact), so no optimizer rule can merge one into the policy's filter
//!   or evaluate it on a row the filter hides, and an expression that
//!   fails (a cast, a division) fails only on rows the caller may see;
//! - the leaf has no children and reports no statistics, so `EXPLAIN` in
//!   every form (verbose statistics, `ANALYZE` metrics) shows nothing
//!   from below the masks and filters: the rows counted are the rows the
//!   caller receives.
//!
//! Pruning: a caller's predicate that cannot fail and whose result is not
//! observable below the barrier (a column without a mask compared with a
//! literal of the column's own type, `IS [NOT] NULL`) is also handed to
//! the inner scan, where the Parquet reader uses it to skip files and row
//! groups by their statistics. It is still evaluated above the barrier,
//! so it changes no answer. See docs/governance.md.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{TableType, provider_as_source};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    BinaryExpr, Expr, LogicalPlanBuilder, Operator, TableProviderFilterPushDown,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};

/// A table read through a policy's row filters and masks.
#[derive(Debug)]
pub struct SecureTable {
    inner: Arc<dyn TableProvider>,
    name: TableReference,
    /// The policy's row filters, over the stored columns.
    filters: Vec<Expr>,
    /// One expression per column: the column itself, or its mask, aliased
    /// to the column's name.
    columns: Vec<Expr>,
    /// Columns whose values the caller sees masked.
    masked: BTreeSet<String>,
    schema: SchemaRef,
}

impl SecureTable {
    /// `inner` read as `name`, keeping the rows every one of `filters`
    /// holds for, each column computed by its entry in `columns`.
    pub fn new(
        inner: Arc<dyn TableProvider>,
        name: TableReference,
        filters: Vec<Expr>,
        columns: Vec<Expr>,
        masked: BTreeSet<String>,
    ) -> Result<Self> {
        // The schema the caller sees is the planned one: a mask may make a
        // column nullable.
        let plan = Self::plan(&inner, &name, &filters, columns.clone(), Vec::new(), None)?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        Ok(SecureTable {
            inner,
            name,
            filters,
            columns,
            masked,
            schema,
        })
    }

    fn plan(
        inner: &Arc<dyn TableProvider>,
        name: &TableReference,
        filters: &[Expr],
        columns: Vec<Expr>,
        pruning: Vec<Expr>,
        limit: Option<usize>,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        let mut builder = LogicalPlanBuilder::scan_with_filters(
            name.clone(),
            provider_as_source(inner.clone()),
            None,
            pruning,
        )?;
        for f in filters {
            builder = builder.filter(f.clone())?;
        }
        builder = builder.project(columns)?;
        if let Some(n) = limit {
            builder = builder.limit(0, Some(n))?;
        }
        builder.build()
    }

    /// Whether evaluating `filter` below the barrier can neither fail nor
    /// be observed: an unmasked column against a literal of its own type.
    fn prunes_safely(&self, filter: &Expr) -> bool {
        let column_type = |c: &Column| {
            (!self.masked.contains(&c.name))
                .then(|| self.schema.field_with_name(&c.name).ok())
                .flatten()
                .map(|f| f.data_type().clone())
        };
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let comparison = crate::conjuncts::is_comparison(op);
                if matches!(op, Operator::And) {
                    return self.prunes_safely(left) && self.prunes_safely(right);
                }
                let pair = match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(v, _))
                    | (Expr::Literal(v, _), Expr::Column(c)) => Some((c, v)),
                    _ => None,
                };
                comparison
                    && pair.is_some_and(|(c, v)| {
                        !v.is_null() && column_type(c).is_some_and(|t| t == v.data_type())
                    })
            }
            Expr::IsNull(e) | Expr::IsNotNull(e) => match e.as_ref() {
                Expr::Column(c) => column_type(c).is_some(),
                _ => false,
            },
            _ => false,
        }
    }
}

/// `filter` with its columns unqualified, to name the inner scan's columns.
fn unqualified(filter: &Expr) -> Result<Expr> {
    filter
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) if c.relation.is_some() => {
                    Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                }
                other => Transformed::no(other),
            })
        })
        .map(|t| t.data)
}

#[async_trait]
impl TableProvider for SecureTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.prunes_safely(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let columns = match projection {
            Some(p) => p.iter().map(|i| self.columns[*i].clone()).collect(),
            None => self.columns.clone(),
        };
        // Only predicates `supports_filters_pushdown` accepted arrive here;
        // checked again so that no other path can put one below the barrier.
        let pruning = filters
            .iter()
            .filter(|f| self.prunes_safely(f))
            .map(unqualified)
            .collect::<Result<Vec<_>>>()?;
        let plan = Self::plan(
            &self.inner,
            &self.name,
            &self.filters,
            columns,
            pruning,
            limit,
        )?;
        let inner = state.create_physical_plan(&plan).await?;
        Ok(Arc::new(BarrierExec::new(inner, self.name.to_string())))
    }
}

/// The leaf the caller's plan sees in place of a policy-guarded read. It
/// runs the inner plan but shows none of it: no children, no statistics,
/// no metrics.
#[derive(Debug)]
pub struct BarrierExec {
    inner: Arc<dyn ExecutionPlan>,
    table: String,
    properties: Arc<PlanProperties>,
}

impl BarrierExec {
    fn new(inner: Arc<dyn ExecutionPlan>, table: String) -> Self {
        let properties = inner.properties().clone();
        BarrierExec {
            inner,
            table,
            properties,
        }
    }
}

impl DisplayAs for BarrierExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match t {
            DisplayFormatType::TreeRender => write!(f, "table={}", self.table),
            _ => write!(f, "PolicyBarrierExec: table={}", self.table),
        }
    }
}

impl ExecutionPlan for BarrierExec {
    fn name(&self) -> &str {
        "PolicyBarrierExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        // A recursive query runs the leaf again: start the inner plan anew.
        let inner =
            datafusion::physical_plan::execution_plan::reset_plan_states(self.inner.clone())?;
        Ok(Arc::new(BarrierExec::new(inner, self.table.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.inner.execute(partition, context)
    }
}
