//! Filter conjuncts in the order that evaluates least.
//!
//! DataFusion evaluates `a AND b` by evaluating `a` on every row and then
//! `b` only on the rows `a` kept, when `a` kept few of them. It keeps the
//! conjuncts in the order the statement wrote them, so TPC-H Q12 compared
//! six million ship modes as strings before the date range that keeps a
//! seventh of the rows. The rule [`ConjunctOrder`] sorts each filter's
//! conjuncts, stably, by what a conjunct costs and how much it tends to
//! keep:
//!
//! 1. a column equal to a constant (not a string);
//! 2. other comparisons of a column with a constant, `BETWEEN`, and null
//!    tests (not strings);
//! 3. comparisons of two such columns;
//! 4. everything on strings, `IN` lists, `LIKE`;
//! 5. the rest (`OR`, `NOT`).
//!
//! Only filters whose every conjunct cannot fail are reordered: moving a
//! division or a cast ahead of the condition that guards it could raise an
//! error the written order did not. The rows a filter keeps do not depend
//! on the order of its conjuncts.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Filter, LogicalPlan, Operator};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The optimizer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct ConjunctOrder;

impl OptimizerRule for ConjunctOrder {
    fn name(&self) -> &str {
        "mesh_conjunct_order"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(filter) = plan else {
            return Ok(Transformed::no(plan));
        };
        let schema = filter.input.schema().clone();
        let conjuncts = split_conjunction_owned(filter.predicate.clone());
        if conjuncts.len() < 2 || !conjuncts.iter().all(cannot_fail) {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        }
        let ranks: Vec<u8> = conjuncts.iter().map(|c| rank(c, &schema)).collect();
        if ranks.windows(2).all(|w| w[0] <= w[1]) {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        }
        let mut ranked: Vec<(u8, Expr)> = ranks.into_iter().zip(conjuncts).collect();
        ranked.sort_by_key(|(r, _)| *r);
        let predicate =
            conjunction(ranked.into_iter().map(|(_, e)| e)).unwrap_or(filter.predicate.clone());
        Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
            predicate,
            filter.input,
        )?)))
    }
}

/// Whether evaluating `e` can raise an error: only columns, constants,
/// comparisons, boolean logic, null tests, `IN` lists, `BETWEEN` and
/// `LIKE` are known not to.
fn cannot_fail(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            (is_comparison(op)
                || matches!(
                    op,
                    Operator::And
                        | Operator::Or
                        | Operator::IsDistinctFrom
                        | Operator::IsNotDistinctFrom
                ))
                && cannot_fail(left)
                && cannot_fail(right)
        }
        Expr::Not(inner)
        | Expr::IsNull(inner)
        | Expr::IsNotNull(inner)
        | Expr::IsTrue(inner)
        | Expr::IsFalse(inner)
        | Expr::IsNotTrue(inner)
        | Expr::IsNotFalse(inner) => cannot_fail(inner),
        Expr::InList(list) => cannot_fail(&list.expr) && list.list.iter().all(cannot_fail),
        Expr::Between(b) => cannot_fail(&b.expr) && cannot_fail(&b.low) && cannot_fail(&b.high),
        Expr::Like(like) => {
            like.escape_char.is_none() && cannot_fail(&like.expr) && cannot_fail(&like.pattern)
        }
        _ => false,
    }
}

/// The place of a conjunct: lower runs first.
fn rank(e: &Expr, schema: &DFSchema) -> u8 {
    let cheap = |e: &Expr| e.get_type(schema).is_ok_and(|t| !is_string(&t));
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(op) => {
            let constant = matches!(
                (&**left, &**right),
                (Expr::Column(_), Expr::Literal(..)) | (Expr::Literal(..), Expr::Column(_))
            );
            let columns = matches!((&**left, &**right), (Expr::Column(_), Expr::Column(_)));
            match (cheap(left) && cheap(right), constant, columns, op) {
                (true, true, _, Operator::Eq) => 0,
                (true, true, _, _) => 1,
                (true, _, true, _) => 2,
                _ => 3,
            }
        }
        Expr::Between(b) if matches!(&*b.expr, Expr::Column(_)) && cheap(&b.expr) => 1,
        Expr::IsNull(inner) | Expr::IsNotNull(inner) if matches!(&**inner, Expr::Column(_)) => 1,
        Expr::InList(_) | Expr::Like(_) | Expr::BinaryExpr(_) | Expr::Between(_) => 3,
        _ => 4,
    }
}

/// `=`, `<>`, `<`, `<=`, `>`, `>=`.
pub(crate) fn is_comparison(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => true,
        DataType::Dictionary(_, value) => is_string(value),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::testing::answer;

    fn context(with_rule: bool) -> SessionContext {
        let mut builder = SessionStateBuilder::new().with_default_features();
        if with_rule {
            builder = builder.with_optimizer_rule(Arc::new(ConjunctOrder));
        }
        let ctx = SessionContext::new_with_state(builder.build());
        let schema = Arc::new(Schema::new(vec![
            Field::new("mode", DataType::Utf8, true),
            Field::new("shipped", DataType::Date32, false),
            Field::new("received", DataType::Date32, false),
            Field::new("qty", DataType::Int64, true),
        ]));
        let n = 1000;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter(
                    (0..n).map(|i| (i % 13 != 0).then(|| ["MAIL", "SHIP", "AIR"][i % 3])),
                )),
                Arc::new(Date32Array::from_iter_values(
                    (0..n as i32).map(|i| 8000 + i),
                )),
                Arc::new(Date32Array::from_iter_values(
                    (0..n as i32).map(|i| 8000 + i + i % 7 - 3),
                )),
                Arc::new(Int64Array::from_iter(
                    (0..n as i64).map(|i| (i % 11 != 0).then_some(i % 50)),
                )),
            ],
        )
        .unwrap();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        ctx
    }

    async fn filter_of(ctx: &SessionContext, sql: &str) -> String {
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        let text = plan.display_indent().to_string();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Filter: ").map(str::to_string))
            .unwrap_or_default()
    }

    const Q12: &str = "SELECT mode, count(*), sum(qty) FROM t \
        WHERE mode IN ('MAIL', 'SHIP') AND shipped < received AND qty = 9 \
          AND received >= DATE '1992-01-01' AND received < DATE '1992-06-01' \
        GROUP BY mode ORDER BY mode";

    #[tokio::test]
    async fn cheap_selective_conjuncts_go_first_and_answers_stay() {
        let with = context(true);
        let filter = filter_of(&with, Q12).await;
        let at = |needle: &str| filter.find(needle).unwrap_or_else(|| panic!("{filter}"));
        assert!(at("t.qty = ") < at("t.received >= "), "{filter}");
        assert!(
            at("t.received < ") < at("t.shipped < t.received"),
            "{filter}"
        );
        assert!(at("t.shipped < t.received") < at("t.mode"), "{filter}");
        let without = context(false);
        assert_ne!(filter, filter_of(&without, Q12).await);
        let expected = answer(&without, Q12).await;
        assert!(expected.contains("MAIL"), "{expected}");
        assert_eq!(answer(&with, Q12).await, expected);
    }

    #[tokio::test]
    async fn a_filter_that_can_fail_keeps_its_order() {
        // The division must not move ahead of the test that guards it.
        let sql = "SELECT count(*) FROM t WHERE mode = 'AIR' AND qty <> 0 AND 100 / qty > 3";
        let with = context(true);
        let without = context(false);
        let filter = filter_of(&with, sql).await;
        assert!(filter.contains(") / t.qty"), "{filter}");
        assert_eq!(filter, filter_of(&without, sql).await);
    }

    #[tokio::test]
    async fn nulls_and_ors_answer_as_written() {
        let sql = "SELECT count(*), sum(qty) FROM t \
            WHERE (mode = 'MAIL' OR qty IS NULL) AND mode IS NOT NULL AND qty BETWEEN 3 AND 30";
        assert_eq!(
            answer(&context(true), sql).await,
            answer(&context(false), sql).await
        );
    }
}
