//! How many rows a join input yields, and how many distinct values its
//! join columns hold, from the statistics its table reports.
//!
//! The figures are estimates for choosing an order, never shown to anyone.
//! An input whose table reports no statistics (a governed table, a
//! subquery) has no estimate, and the join it is in keeps its written
//! order.

use std::collections::HashMap;

use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

/// Selectivity of a predicate nothing is known about.
const UNKNOWN: f64 = 0.5;
/// Of an equality with a constant when the column's distinct values are
/// not known.
const EQUALS: f64 = 0.1;
/// Of a one-sided range when the column's bounds are not known.
const RANGE: f64 = 1.0 / 3.0;

/// What a join input is estimated to yield.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// Rows after the input's filters.
    pub rows: f64,
    /// Rows of the table before them.
    base_rows: f64,
    /// Each column's statistics, by the name the plan above sees.
    columns: HashMap<Column, ColumnFacts>,
    /// Columns a filter pins to one value.
    pinned: Vec<Column>,
}

#[derive(Debug, Clone, Default)]
struct ColumnFacts {
    min: Option<f64>,
    max: Option<f64>,
    distinct: Option<f64>,
    integer: bool,
}

impl Estimate {
    /// Distinct values `column` can take in the whole table: its recorded
    /// distinct count, else the width of an integer column's range, never
    /// more than the table's rows.
    pub fn domain(&self, column: &Column) -> f64 {
        let facts = self.columns.get(column);
        let mut d = self.base_rows;
        if let Some(f) = facts {
            if let Some(n) = f.distinct {
                d = d.min(n);
            }
            if let (true, Some(lo), Some(hi)) = (f.integer, f.min, f.max) {
                d = d.min(hi - lo + 1.0);
            }
        }
        d.max(1.0)
    }

    /// Distinct values of `column` among the rows the input yields.
    pub fn distinct(&self, column: &Column) -> f64 {
        if self.pinned.contains(column) {
            return 1.0;
        }
        self.domain(column).min(self.rows).max(1.0)
    }

    /// The fraction of rows whose `column` is one of `n` given values.
    fn values(&self, column: &Column, n: f64) -> f64 {
        let known = self.columns.get(column).is_some_and(|f| {
            f.distinct.is_some() || (f.integer && f.min.is_some() && f.max.is_some())
        });
        let each = if known {
            1.0 / self.domain(column)
        } else {
            EQUALS
        };
        (n * each).min(1.0)
    }
}

/// The estimate of `plan` as a join input: a table scan under filters,
/// aliases and column projections, or `None`.
pub fn estimate(plan: &LogicalPlan) -> Option<Estimate> {
    let mut predicates = Vec::new();
    let mut estimate = base(plan, &mut predicates)?;
    // A filter is often both above the scan and inside it (inexact
    // pushdown): count each predicate once.
    let mut seen: Vec<Expr> = Vec::new();
    for p in predicates {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    let mut selectivity = 1.0;
    for p in &seen {
        selectivity *= predicate(&mut estimate, p);
    }
    selectivity *= ranges(&estimate, &seen);
    estimate.rows = (estimate.base_rows * selectivity).max(1.0);
    Some(estimate)
}

/// The table's own estimate under `plan`, with the columns renamed as the
/// plan renames them; the predicates met on the way are pushed to
/// `predicates`, in the names of the plan above them.
fn base(plan: &LogicalPlan, predicates: &mut Vec<Expr>) -> Option<Estimate> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let statistics = provider.statistics()?;
            let rows = *statistics.num_rows.get_value()? as f64;
            let schema = provider.schema();
            let mut columns = HashMap::new();
            for (qualifier, field) in scan.projected_schema.iter() {
                let facts = schema
                    .index_of(field.name())
                    .ok()
                    .and_then(|i| statistics.column_statistics.get(i))
                    .map(|c| ColumnFacts {
                        min: number(&c.min_value),
                        max: number(&c.max_value),
                        distinct: c.distinct_count.get_value().map(|&d| d as f64),
                        integer: field.data_type().is_integer(),
                    })
                    .unwrap_or_default();
                columns.insert(Column::new(qualifier.cloned(), field.name()), facts);
            }
            predicates.extend(scan.filters.iter().cloned());
            Some(Estimate {
                rows,
                base_rows: rows.max(1.0),
                columns,
                pinned: Vec::new(),
            })
        }
        LogicalPlan::Filter(filter) => {
            let inner = base(&filter.input, predicates)?;
            predicates.extend(split_conjunction(&filter.predicate).into_iter().cloned());
            Some(inner)
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let mut inner_predicates = Vec::new();
            let inner = base(&alias.input, &mut inner_predicates)?;
            let rename = |c: &Column| Column::new(Some(alias.alias.clone()), &c.name);
            for p in inner_predicates {
                predicates.push(rename_columns(p, &rename)?);
            }
            Some(Estimate {
                columns: inner
                    .columns
                    .into_iter()
                    .map(|(c, f)| (rename(&c), f))
                    .collect(),
                ..inner
            })
        }
        LogicalPlan::Projection(projection) => {
            // Only a projection of plain columns keeps the estimate.
            if !projection.expr.iter().all(|e| matches!(e, Expr::Column(_))) {
                return None;
            }
            base(&projection.input, predicates)
        }
        _ => None,
    }
}

fn rename_columns(expr: Expr, rename: &impl Fn(&Column) -> Column) -> Option<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) => Ok(Transformed::yes(Expr::Column(rename(&c)))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .ok()
}

/// The fraction of rows `p` keeps; ranges on one column are left to
/// [`ranges`], which sees them together.
fn predicate(estimate: &mut Estimate, p: &Expr) -> f64 {
    match p {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => predicate(estimate, left) * predicate(estimate, right),
            Operator::Or => {
                let mut scratch = estimate.clone();
                let (a, b) = (
                    predicate(&mut scratch, left) * ranges(&scratch, &[(**left).clone()]),
                    predicate(&mut scratch, right) * ranges(&scratch, &[(**right).clone()]),
                );
                (a + b - a * b).min(1.0)
            }
            Operator::Eq => match column_and_constant(left, right) {
                Some((c, _)) => {
                    let s = estimate.values(c, 1.0);
                    estimate.pinned.push(c.clone());
                    s
                }
                None => UNKNOWN,
            },
            Operator::NotEq => 1.0 - EQUALS,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                if column_and_constant(left, right).is_some() {
                    1.0 // counted by `ranges`
                } else {
                    RANGE
                }
            }
            _ => UNKNOWN,
        },
        Expr::InList(list) if !list.negated => match &*list.expr {
            Expr::Column(c) => estimate.values(c, list.list.len() as f64),
            _ => (list.list.len() as f64 * EQUALS).min(1.0),
        },
        Expr::Between(between) if !between.negated => RANGE,
        Expr::IsNotNull(_) => 1.0,
        Expr::IsNull(_) => EQUALS,
        Expr::Not(inner) => 1.0 - predicate(&mut estimate.clone(), inner),
        Expr::Like(_) => EQUALS,
        _ => UNKNOWN,
    }
}

/// The fraction of rows the ranges among `predicates` keep, each column's
/// bounds taken together and measured against its recorded bounds.
fn ranges(estimate: &Estimate, predicates: &[Expr]) -> f64 {
    // Column -> (lower bound, upper bound) the predicates set.
    let mut bounds: HashMap<&Column, (Option<f64>, Option<f64>)> = HashMap::new();
    let mut opaque = 0;
    for p in predicates.iter().flat_map(|p| split_conjunction(p)) {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = p else {
            continue;
        };
        let Some((c, value)) = column_and_constant(left, right) else {
            continue;
        };
        // `constant < column` reads as `column > constant`.
        let op = if matches!(**left, Expr::Column(_)) {
            *op
        } else {
            match op.swap() {
                Some(op) => op,
                None => continue,
            }
        };
        let entry = bounds.entry(c).or_default();
        match (op, number_of(value)) {
            (Operator::Lt | Operator::LtEq, Some(v)) => {
                entry.1 = Some(entry.1.map_or(v, |u: f64| u.min(v)));
            }
            (Operator::Gt | Operator::GtEq, Some(v)) => {
                entry.0 = Some(entry.0.map_or(v, |l: f64| l.max(v)));
            }
            (Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq, None) => opaque += 1,
            _ => {}
        }
    }
    let mut selectivity = RANGE.powi(opaque);
    for (column, (lo, hi)) in bounds {
        if lo.is_none() && hi.is_none() {
            continue;
        }
        let facts = estimate.columns.get(column);
        let fraction = match facts.and_then(|f| Some((f.min?, f.max?))) {
            Some((min, max)) if max > min => {
                let lo = lo.unwrap_or(min).max(min);
                let hi = hi.unwrap_or(max).min(max);
                ((hi - lo) / (max - min)).clamp(0.0, 1.0)
            }
            _ => match (lo, hi) {
                (Some(_), Some(_)) => RANGE * RANGE,
                _ => RANGE,
            },
        };
        selectivity *= fraction;
    }
    selectivity
}

/// `(column, constant)` when one side is a column and the other a literal.
fn column_and_constant<'a>(
    left: &'a Expr,
    right: &'a Expr,
) -> Option<(&'a Column, &'a ScalarValue)> {
    match (left, right) {
        (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
            Some((c, v))
        }
        _ => None,
    }
}

fn number(p: &Precision<ScalarValue>) -> Option<f64> {
    p.get_value().and_then(number_of)
}

/// A value on a line: numbers, decimals, dates and timestamps.
fn number_of(v: &ScalarValue) -> Option<f64> {
    use ScalarValue as S;
    Some(match v {
        S::Int8(Some(x)) => *x as f64,
        S::Int16(Some(x)) => *x as f64,
        S::Int32(Some(x)) => *x as f64,
        S::Int64(Some(x)) => *x as f64,
        S::UInt8(Some(x)) => *x as f64,
        S::UInt16(Some(x)) => *x as f64,
        S::UInt32(Some(x)) => *x as f64,
        S::UInt64(Some(x)) => *x as f64,
        S::Float32(Some(x)) => *x as f64,
        S::Float64(Some(x)) => *x,
        S::Decimal128(Some(x), _, scale) => *x as f64 / 10f64.powi(i32::from(*scale)),
        S::Date32(Some(x)) => *x as f64,
        S::Date64(Some(x)) => *x as f64 / 86_400_000.0,
        S::TimestampSecond(Some(x), _) => *x as f64 / 86_400.0,
        S::TimestampMillisecond(Some(x), _) => *x as f64 / 86_400_000.0,
        S::TimestampMicrosecond(Some(x), _) => *x as f64 / 86_400_000_000.0,
        S::TimestampNanosecond(Some(x), _) => *x as f64 / 86_400_000_000_000.0,
        _ => return None,
    })
}
