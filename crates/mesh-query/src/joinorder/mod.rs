//! Join order: inner joins are executed in the order that makes the
//! fewest intermediate rows, not in the order the statement lists them.
//!
//! DataFusion joins tables in the order they are written (it only picks
//! each join's build side). TPC-H Q5 lists `customer, orders, lineitem,
//! supplier, nation, region`, so its first joins carry every order of the
//! year through lineitem before the region filter removes four fifths of
//! them. The rule [`JoinOrder`] runs after filters are pushed down and,
//! for each tree of inner equi-joins over three to [`MAX_INPUTS`] inputs:
//!
//! 1. estimates what each input yields from its table's statistics
//!    ([`estimate`]); an input without statistics (a governed table, a
//!    subquery) leaves the tree as written;
//! 2. groups the join columns into classes of columns the joins make equal
//!    (`a = b` and `b = c` put `a`, `b`, `c` in one class), so a join the
//!    statement implies (`a = c`) is available too;
//! 3. finds, by dynamic programming over the subsets of inputs, the tree
//!    whose intermediate results are smallest in sum, never joining two
//!    sets that share no class (no cross products);
//! 4. rebuilds it with one key per class shared by the two sides, and
//!    restores the written column order with a projection.
//!
//! The answer is the same set of rows: every join column of a class is
//! equal in the result, as the written joins required, and null keys
//! never match. Every class's columns are equal inside every subtree by
//! induction (a leaf holds at most one column of a class, or the rule
//! leaves the tree alone), so one key per shared class suffices.

mod estimate;

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::logical_expr::{
    Expr, Join, JoinConstraint, JoinType, LogicalPlan, LogicalPlanBuilder,
};
use datafusion::optimizer::{ApplyOrder, Optimizer, OptimizerConfig, OptimizerRule};

use estimate::{Estimate, estimate};

/// Trees of more inputs keep their written order (the search is
/// exponential in the inputs).
pub const MAX_INPUTS: usize = 10;

/// The optimizer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct JoinOrder;

impl OptimizerRule for JoinOrder {
    fn name(&self) -> &str {
        "mesh_join_order"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        reorder(plan)
    }
}

/// DataFusion's optimizer rules with [`JoinOrder`] right after filters are
/// pushed down (so inputs carry their filters), before projections are
/// pushed between the joins.
pub fn rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = Optimizer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "push_down_filter")
        .map_or(rules.len(), |i| i + 1);
    rules.insert(at, Arc::new(JoinOrder));
    rules
}

fn reorder(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if let Some(better) = Tree::of(&plan).and_then(|t| t.best(&plan)).transpose()? {
        // Its inputs are table scans under filters: nothing below to order.
        return Ok(Transformed::yes(better));
    }
    plan.map_children(reorder)
}

/// A tree of inner equi-joins: its inputs, and its join columns in classes.
struct Tree {
    inputs: Vec<LogicalPlan>,
    estimates: Vec<Estimate>,
    /// Each class: the (input, column) pairs it holds, one per input.
    classes: Vec<Vec<(usize, Column)>>,
    /// The written tree, as nested input indices.
    written: Shape,
}

#[derive(Debug, PartialEq)]
enum Shape {
    Input(usize),
    Join(Box<Shape>, Box<Shape>),
}

/// A join whose inputs may be reordered with its neighbours.
fn reorderable(plan: &LogicalPlan) -> Option<&Join> {
    match plan {
        LogicalPlan::Join(join)
            if join.join_type == JoinType::Inner
                && join.join_constraint == JoinConstraint::On
                && join.null_equality == NullEquality::NullEqualsNothing
                && join.filter.is_none()
                && !join.on.is_empty() =>
        {
            Some(join)
        }
        _ => None,
    }
}

impl Tree {
    /// The tree rooted at `plan`, when it can be reordered at all.
    fn of(plan: &LogicalPlan) -> Option<Tree> {
        reorderable(plan)?;
        let mut inputs = Vec::new();
        let mut keys = Vec::new();
        let written = collect(plan, &mut inputs, &mut keys)?;
        if inputs.len() < 3 || inputs.len() > MAX_INPUTS {
            return None;
        }
        let estimates = inputs.iter().map(estimate).collect::<Option<Vec<_>>>()?;
        let owner = |c: &Column| -> Option<usize> {
            let mut found = inputs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.schema().has_column(c));
            let (i, _) = found.next()?;
            found.next().is_none().then_some(i)
        };
        let classes = equality_classes(&keys, owner)?;
        for class in &classes {
            // One column per input and one type per class, or no reordering.
            let mut seen = Vec::new();
            for (i, _) in class {
                if seen.contains(i) {
                    return None;
                }
                seen.push(*i);
            }
            let types: Vec<_> = class
                .iter()
                .map(|(i, c)| {
                    inputs[*i]
                        .schema()
                        .qualified_field_from_column(c)
                        .map(|(_, f)| f.data_type().clone())
                })
                .collect::<std::result::Result<_, _>>()
                .ok()?;
            if types.windows(2).any(|w| w[0] != w[1]) {
                return None;
            }
        }
        Some(Tree {
            inputs,
            estimates,
            classes,
            written,
        })
    }

    /// The cheapest tree, rebuilt with `original`'s columns in their
    /// order; `None` when it is the written one.
    fn best(&self, original: &LogicalPlan) -> Option<Result<LogicalPlan>> {
        let n = self.inputs.len();
        let full = (1usize << n) - 1;
        let domains: Vec<f64> = self
            .classes
            .iter()
            .map(|class| {
                class
                    .iter()
                    .map(|(i, c)| self.estimates[*i].domain(c))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        let rows: Vec<f64> = (0..=full).map(|set| self.rows(set, &domains)).collect();
        // best[set] = (cost, split) for connected sets.
        let mut best: Vec<Option<(f64, usize)>> = vec![None; full + 1];
        for i in 0..n {
            best[1 << i] = Some((0.0, 0));
        }
        for set in 1..=full {
            if set.count_ones() < 2 {
                continue;
            }
            // Each split once: the part holding the lowest input is `left`.
            let low = set & set.wrapping_neg();
            let mut left = (set - 1) & set;
            while left > 0 {
                let right = set & !left;
                if left & low != 0
                    && let (Some((lc, _)), Some((rc, _))) = (best[left], best[right])
                    && self.connected(left, right)
                {
                    let cost = lc + rc + rows[set];
                    if best[set].is_none_or(|(c, _)| cost < c) {
                        best[set] = Some((cost, left));
                    }
                }
                left = (left - 1) & set;
            }
        }
        let shape = self.shape(full, &best, &rows);
        if shape == self.written {
            return None;
        }
        Some(self.build(&shape).and_then(|plan| restore(plan, original)))
    }

    /// Estimated rows of joining the inputs in `set`: the product of their
    /// rows, divided for each class by the distinct values of all but the
    /// input with the fewest.
    fn rows(&self, set: usize, domains: &[f64]) -> f64 {
        let mut rows: f64 = (0..self.inputs.len())
            .filter(|i| set & (1 << i) != 0)
            .map(|i| self.estimates[i].rows)
            .product();
        for (class, domain) in self.classes.iter().zip(domains) {
            let mut distinct: Vec<f64> = class
                .iter()
                .filter(|(i, _)| set & (1 << i) != 0)
                .map(|(i, c)| self.estimates[*i].distinct(c).min(*domain))
                .collect();
            distinct.sort_by(|a, b| b.total_cmp(a));
            distinct.pop();
            rows /= distinct.iter().product::<f64>();
        }
        rows.max(1.0)
    }

    fn connected(&self, left: usize, right: usize) -> bool {
        self.classes.iter().any(|class| {
            class.iter().any(|(i, _)| left & (1 << i) != 0)
                && class.iter().any(|(i, _)| right & (1 << i) != 0)
        })
    }

    /// The chosen tree of `set`, the side with fewer rows first (DataFusion
    /// builds its hash table from the first).
    fn shape(&self, set: usize, best: &[Option<(f64, usize)>], rows: &[f64]) -> Shape {
        if set.count_ones() == 1 {
            return Shape::Input(set.trailing_zeros() as usize);
        }
        let left = best[set].map_or(0, |(_, split)| split);
        let right = set & !left;
        let (a, b) = if rows[right] < rows[left] {
            (right, left)
        } else {
            (left, right)
        };
        Shape::Join(
            Box::new(self.shape(a, best, rows)),
            Box::new(self.shape(b, best, rows)),
        )
    }

    fn build(&self, shape: &Shape) -> Result<LogicalPlan> {
        let (left, right) = match shape {
            Shape::Input(i) => return Ok(self.inputs[*i].clone()),
            Shape::Join(l, r) => (l, r),
        };
        let (l_set, r_set) = (left.set(), right.set());
        let mut on = Vec::new();
        for class in &self.classes {
            let l = class.iter().find(|(i, _)| l_set & (1 << i) != 0);
            let r = class.iter().find(|(i, _)| r_set & (1 << i) != 0);
            if let (Some((_, l)), Some((_, r))) = (l, r) {
                on.push((Expr::Column(l.clone()), Expr::Column(r.clone())));
            }
        }
        Ok(LogicalPlan::Join(Join::try_new(
            Arc::new(self.build(left)?),
            Arc::new(self.build(right)?),
            on,
            None,
            JoinType::Inner,
            JoinConstraint::On,
            NullEquality::NullEqualsNothing,
            false,
        )?))
    }
}

impl Shape {
    fn set(&self) -> usize {
        match self {
            Shape::Input(i) => 1 << i,
            Shape::Join(l, r) => l.set() | r.set(),
        }
    }
}

/// The key columns in classes of columns the keys make equal, each with
/// the input that yields it (`owner`), in the order the keys name them.
fn equality_classes(
    keys: &[(Column, Column)],
    owner: impl Fn(&Column) -> Option<usize>,
) -> Option<Vec<Vec<(usize, Column)>>> {
    let mut classes: Vec<Vec<(usize, Column)>> = Vec::new();
    for (a, b) in keys {
        let find = |c: &Column, classes: &[Vec<(usize, Column)>]| {
            classes.iter().position(|k| k.iter().any(|(_, x)| x == c))
        };
        let class = match (find(a, &classes), find(b, &classes)) {
            (Some(i), Some(j)) if i != j => {
                let merged = classes.remove(i.max(j));
                classes[i.min(j)].extend(merged);
                i.min(j)
            }
            (Some(i), _) | (_, Some(i)) => i,
            (None, None) => {
                classes.push(Vec::new());
                classes.len() - 1
            }
        };
        for c in [a, b] {
            if !classes[class].iter().any(|(_, x)| x == c) {
                classes[class].push((owner(c)?, c.clone()));
            }
        }
    }
    Some(classes)
}

/// Gathers the inputs and key pairs of the tree under `plan`.
fn collect(
    plan: &LogicalPlan,
    inputs: &mut Vec<LogicalPlan>,
    keys: &mut Vec<(Column, Column)>,
) -> Option<Shape> {
    let Some(join) = reorderable(plan) else {
        inputs.push(plan.clone());
        return Some(Shape::Input(inputs.len() - 1));
    };
    for (l, r) in &join.on {
        match (l, r) {
            (Expr::Column(l), Expr::Column(r)) => keys.push((l.clone(), r.clone())),
            _ => return None,
        }
    }
    let left = collect(&join.left, inputs, keys)?;
    let right = collect(&join.right, inputs, keys)?;
    Some(Shape::Join(Box::new(left), Box::new(right)))
}

/// `plan` with `original`'s columns, in their order.
fn restore(plan: LogicalPlan, original: &LogicalPlan) -> Result<LogicalPlan> {
    if plan.schema().columns() == original.schema().columns() {
        return Ok(plan);
    }
    LogicalPlanBuilder::from(plan)
        .project(original.schema().columns().into_iter().map(Expr::Column))?
        .build()
}

#[cfg(test)]
mod tests;
