//! Decimal `+`, `-` and `*` without a per-value overflow check when the
//! values of a batch prove that none can overflow.
//!
//! Arrow computes `Decimal128` arithmetic with a checked 128-bit operation
//! per value, behind a fallible closure per value. Money columns
//! (`decimal(15,2)`) hold values far below that range, so the checks never
//! fire, yet they were a fifth of TPC-H Q1's time
//! (`l_extendedprice * (1 - l_discount) * (1 + l_tax)`). Here the
//! optimizer rule [`DecimalArithmetic`] replaces such an operation in a
//! projection or an aggregate by a call of [`DecimalOp`], which, batch by
//! batch:
//!
//! 1. bounds the magnitude of each operand's values (one pass, no branch);
//! 2. when the bounds prove that no result can leave `i128` (with the
//!    operands rescaled as Arrow rescales them), computes every value with
//!    plain, branch-free integer arithmetic;
//! 3. otherwise calls Arrow's own checked kernel, so a batch that could
//!    overflow behaves exactly as before: the same values, the same error.
//!
//! The answer is the same in every case: same values, same type, same
//! nulls; the result type is DataFusion's own for the operator, and the
//! expression keeps its name, so no schema changes. Filters and join
//! conditions keep Arrow's operator (their expressions feed file pruning
//! and interval analysis).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::compute::{binary, unary};
use datafusion::arrow::datatypes::{DataType, Decimal128Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue, internal_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr_common::datum::apply;

/// The optimizer rule: decimal `+`, `-`, `*` in projections and aggregates
/// become [`DecimalOp`] calls.
#[derive(Debug, Default)]
pub struct DecimalArithmetic;

impl OptimizerRule for DecimalArithmetic {
    fn name(&self) -> &str {
        "mesh_decimal_arithmetic"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let input_schema = match &plan {
            LogicalPlan::Projection(p) => p.input.schema().clone(),
            LogicalPlan::Aggregate(a) => a.input.schema().clone(),
            _ => return Ok(Transformed::no(plan)),
        };
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let name = names.save(&expr);
            let rewritten = expr.transform_up(|e| Ok(decimal_call(e, &input_schema)))?;
            Ok(Transformed::new_transformed(
                name.restore(rewritten.data),
                rewritten.transformed,
            ))
        })
    }
}

/// `e` as a [`DecimalOp`] call when it is `+`, `-` or `*` of two
/// `Decimal128` operands, not both literals (those are folded already).
fn decimal_call(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
        return Transformed::no(e);
    };
    let udf = match op {
        Operator::Plus => &*ADD,
        Operator::Minus => &*SUB,
        Operator::Multiply => &*MUL,
        _ => return Transformed::no(e),
    };
    let both_literals = matches!(
        (left.as_ref(), right.as_ref()),
        (Expr::Literal(..), Expr::Literal(..))
    );
    let decimal = |x: &Expr| matches!(x.get_type(schema), Ok(DataType::Decimal128(..)));
    if both_literals || !decimal(left) || !decimal(right) {
        return Transformed::no(e);
    }
    let args = vec![left.as_ref().clone(), right.as_ref().clone()];
    Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
        udf.clone(),
        args,
    )))
}

static ADD: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| DecimalOp::udf(Operator::Plus));
static SUB: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| DecimalOp::udf(Operator::Minus));
static MUL: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| DecimalOp::udf(Operator::Multiply));

/// One of `+`, `-`, `*` on two `Decimal128` values, as a scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DecimalOp {
    op: Operator,
    name: &'static str,
    signature: Signature,
}

impl DecimalOp {
    fn udf(op: Operator) -> Arc<ScalarUDF> {
        let name = match op {
            Operator::Plus => "decimal_add",
            Operator::Minus => "decimal_sub",
            _ => "decimal_mul",
        };
        Arc::new(ScalarUDF::new_from_impl(DecimalOp {
            op,
            name,
            signature: Signature::any(2, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for DecimalOp {
    fn name(&self) -> &str {
        self.name
    }

    /// The operator's own name (`a * b`), so that a column named after the
    /// expression keeps its name.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        match args {
            [l, r] => Ok(format!(
                "{} {} {}",
                l.schema_name(),
                self.op,
                r.schema_name()
            )),
            _ => internal_err!("{} takes two arguments", self.name),
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [l, r] => BinaryTypeCoercer::new(l, &self.op, r).get_result_type(),
            _ => internal_err!("{} takes two arguments", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [l, r] = args.args.as_slice() else {
            return internal_err!("{} takes two arguments", self.name);
        };
        if let Some(fast) = unchecked(self.op, l, r, args.return_type())? {
            return Ok(ColumnarValue::Array(fast));
        }
        // Arrow's checked kernels, as the operator itself runs them.
        match self.op {
            Operator::Plus => apply(l, r, numeric::add),
            Operator::Minus => apply(l, r, numeric::sub),
            _ => apply(l, r, numeric::mul),
        }
    }
}

/// One operand: a column of values, or one value for every row.
enum Operand<'a> {
    Array(&'a Decimal128Array),
    Scalar(i128),
}

impl Operand<'_> {
    /// An upper bound of the magnitude of every value (null slots
    /// included: they are computed too, and their result discarded).
    fn bound(&self) -> u128 {
        let bits = match self {
            Operand::Array(a) => a.values().iter().fold(0, |m, v| m | v.unsigned_abs()),
            Operand::Scalar(v) => v.unsigned_abs(),
        };
        match bits.leading_zeros() {
            0 => u128::MAX,
            n => (1 << (128 - n)) - 1,
        }
    }
}

fn operand(v: &ColumnarValue) -> Option<(Operand<'_>, u8, i8)> {
    match v {
        ColumnarValue::Array(a) => match a.data_type() {
            DataType::Decimal128(p, s) => {
                Some((Operand::Array(a.as_primitive::<Decimal128Type>()), *p, *s))
            }
            _ => None,
        },
        ColumnarValue::Scalar(ScalarValue::Decimal128(Some(v), p, s)) => {
            Some((Operand::Scalar(*v), *p, *s))
        }
        _ => None,
    }
}

/// The result computed without checks, or None when the values do not
/// prove that no result can overflow (or the shape is not one this path
/// serves: two scalars, a null scalar, scales Arrow would reject).
fn unchecked(
    op: Operator,
    l: &ColumnarValue,
    r: &ColumnarValue,
    ty: &DataType,
) -> Result<Option<ArrayRef>> {
    let (Some((lv, p1, s1)), Some((rv, p2, s2))) = (operand(l), operand(r)) else {
        return Ok(None);
    };
    const MAX: u128 = i128::MAX as u128;
    // The result's precision and scale, and each operand's multiplier, as
    // Arrow's decimal kernels compute them.
    let (precision, scale, lm, rm) = match op {
        Operator::Multiply => {
            let scale = s1.saturating_add(s2);
            if scale > 38 {
                return Ok(None);
            }
            (p1.saturating_add(p2 + 1).min(38), scale, 1i128, 1i128)
        }
        _ => {
            let scale = s1.max(s2);
            let whole = (p1 as i8 - s1).max(p2 as i8 - s2);
            let precision = (scale.saturating_add(whole) as u8)
                .saturating_add(1)
                .min(38);
            let (Ok(ld), Ok(rd)) = (u32::try_from(scale - s1), u32::try_from(scale - s2)) else {
                return Ok(None);
            };
            match (10i128.checked_pow(ld), 10i128.checked_pow(rd)) {
                (Some(lm), Some(rm)) => (precision, scale, lm, rm),
                _ => return Ok(None),
            }
        }
    };
    if *ty != DataType::Decimal128(precision, scale) {
        return Ok(None);
    }
    let (lb, rb) = (lv.bound(), rv.bound());
    let safe = match op {
        Operator::Multiply => lb.checked_mul(rb).is_some_and(|m| m <= MAX),
        _ => lb
            .checked_mul(lm as u128)
            .zip(rb.checked_mul(rm as u128))
            .and_then(|(a, b)| a.checked_add(b))
            .is_some_and(|m| m <= MAX),
    };
    if !safe {
        return Ok(None);
    }
    // No value can overflow: wrapping operations are exact here, and
    // compile to plain integer arithmetic.
    let f = move |a: i128, b: i128| -> i128 {
        match op {
            Operator::Multiply => a.wrapping_mul(b),
            Operator::Plus => a.wrapping_mul(lm).wrapping_add(b.wrapping_mul(rm)),
            _ => a.wrapping_mul(lm).wrapping_sub(b.wrapping_mul(rm)),
        }
    };
    let out: Decimal128Array = match (lv, rv) {
        (Operand::Array(a), Operand::Array(b)) => binary(a, b, f)?,
        (Operand::Array(a), Operand::Scalar(b)) => unary(a, |x| f(x, b)),
        (Operand::Scalar(a), Operand::Array(b)) => unary(b, |y| f(a, y)),
        (Operand::Scalar(_), Operand::Scalar(_)) => return Ok(None),
    };
    Ok(Some(Arc::new(
        out.with_precision_and_scale(precision, scale)?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Datum;

    /// A deterministic spread of values: small, large, negative, nulls.
    fn column(seed: u64, n: usize, magnitude: i128, nulls: bool) -> Decimal128Array {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if nulls && x >> 60 == 0 {
                    None
                } else {
                    Some(((x >> 11) as i128 % magnitude) * if x & 1 == 0 { 1 } else { -1 })
                }
            })
            .collect()
    }

    fn arrow_op(op: Operator, l: &dyn Datum, r: &dyn Datum) -> Result<ArrayRef, String> {
        match op {
            Operator::Plus => numeric::add(l, r),
            Operator::Minus => numeric::sub(l, r),
            _ => numeric::mul(l, r),
        }
        .map_err(|e| e.to_string())
    }

    fn ours(
        op: Operator,
        l: ColumnarValue,
        r: ColumnarValue,
        ty: DataType,
    ) -> Result<ArrayRef, String> {
        let udf = DecimalOp::udf(op);
        let fields = [&l, &r].map(|v| {
            Arc::new(datafusion::arrow::datatypes::Field::new(
                "x",
                v.data_type(),
                true,
            ))
        });
        let out = udf
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![l, r],
                arg_fields: fields.to_vec(),
                number_rows: 300,
                return_field: Arc::new(datafusion::arrow::datatypes::Field::new("r", ty, true)),
                config_options: Default::default(),
            })
            .map_err(|e| e.to_string())?;
        match out {
            ColumnarValue::Array(a) => Ok(a),
            ColumnarValue::Scalar(_) => Err("scalar".into()),
        }
    }

    /// The same values and nulls, or the same Arrow error (which DataFusion
    /// wraps).
    fn same(got: Result<ArrayRef, String>, expected: Result<ArrayRef, String>, what: &str) {
        match (got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g.to_data(), e.to_data(), "{what}"),
            (Err(g), Err(e)) => assert!(g.contains(&e), "{what}: {g} against {e}"),
            (g, e) => panic!("{what}: {g:?} against {e:?}"),
        }
    }

    #[test]
    fn every_shape_gives_arrows_answer_or_arrows_error() {
        let shapes: [(u8, i8, i128); 4] = [
            (15, 2, 10i128.pow(13)),
            (20, 0, 10i128.pow(19)),
            (38, 10, 10i128.pow(37)),
            (38, 0, i128::MAX),
        ];
        for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
            for (i, &(p1, s1, m1)) in shapes.iter().enumerate() {
                for (j, &(p2, s2, m2)) in shapes.iter().enumerate() {
                    let a = column(i as u64 + 1, 300, m1, true)
                        .with_precision_and_scale(p1, s1)
                        .unwrap();
                    let b = column(j as u64 + 7, 300, m2, j % 2 == 0)
                        .with_precision_and_scale(p2, s2)
                        .unwrap();
                    let Ok(ty) =
                        BinaryTypeCoercer::new(a.data_type(), &op, b.data_type()).get_result_type()
                    else {
                        continue;
                    };
                    let expected = arrow_op(op, &a, &b);
                    let got = ours(
                        op,
                        ColumnarValue::Array(Arc::new(a.clone())),
                        ColumnarValue::Array(Arc::new(b.clone())),
                        ty.clone(),
                    );
                    same(got, expected, &format!("{p1},{s1} {op} {p2},{s2}"));
                    // A literal on either side.
                    let lit = ScalarValue::Decimal128(Some(b.value(1)), p2, s2);
                    let expected = arrow_op(op, &a, &lit.to_scalar().unwrap());
                    let got = ours(
                        op,
                        ColumnarValue::Array(Arc::new(a.clone())),
                        ColumnarValue::Scalar(lit.clone()),
                        ty.clone(),
                    );
                    same(got, expected, "array and literal");
                    let lit = ScalarValue::Decimal128(Some(a.value(1)), p1, s1);
                    let expected = arrow_op(op, &lit.to_scalar().unwrap(), &b);
                    let got = ours(
                        op,
                        ColumnarValue::Scalar(lit),
                        ColumnarValue::Array(Arc::new(b)),
                        ty,
                    );
                    same(got, expected, "literal and array");
                }
            }
        }
    }

    #[test]
    fn an_overflow_is_arrows_error() {
        let a = Decimal128Array::from(vec![i128::MAX / 2, 1])
            .with_precision_and_scale(38, 0)
            .unwrap();
        let b = Decimal128Array::from(vec![3, 1])
            .with_precision_and_scale(38, 0)
            .unwrap();
        let ty = DataType::Decimal128(38, 0);
        let got = ours(
            Operator::Multiply,
            ColumnarValue::Array(Arc::new(a.clone())),
            ColumnarValue::Array(Arc::new(b.clone())),
            ty,
        );
        let expected = arrow_op(Operator::Multiply, &a, &b);
        assert!(expected.is_err());
        same(got, expected, "overflow");
    }

    /// A session with and without the rule, over a table of money.
    async fn plan_both(sql: &str) -> [(String, String, Vec<String>); 2] {
        use datafusion::arrow::datatypes::{Field, Schema};
        use datafusion::arrow::record_batch::RecordBatch;
        use datafusion::datasource::MemTable;
        use datafusion::execution::SessionStateBuilder;
        use datafusion::prelude::SessionContext;
        let money = || {
            column(9, 50, 10i128.pow(7), true)
                .with_precision_and_scale(15, 2)
                .unwrap()
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Decimal128(15, 2), true),
            Field::new("b", DataType::Decimal128(15, 2), true),
        ]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(money()), Arc::new(money())])
                .unwrap();
        let mut out = Vec::new();
        for with_rule in [true, false] {
            let mut builder = SessionStateBuilder::new().with_default_features();
            if with_rule {
                builder = builder.with_optimizer_rule(Arc::new(DecimalArithmetic));
            }
            let ctx = SessionContext::new_with_state(builder.build());
            let table = MemTable::try_new(schema.clone(), vec![vec![batch.clone()]]).unwrap();
            ctx.register_table("t", Arc::new(table)).unwrap();
            let df = ctx.sql(sql).await.unwrap();
            let plan = df.clone().into_optimized_plan().unwrap();
            let names = plan
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>();
            let rows = datafusion::arrow::util::pretty::pretty_format_batches(
                &df.collect().await.unwrap(),
            )
            .unwrap()
            .to_string();
            out.push((plan.display_indent().to_string(), rows, names));
        }
        out.try_into().unwrap()
    }

    #[tokio::test]
    async fn the_rule_keeps_names_and_answers() {
        let sql = "SELECT a * (1 - b), sum(a * (1 - b) * (1 + b)) AS charge, sum(a - b) \
                   FROM t GROUP BY a * (1 - b) ORDER BY 1";
        let [
            (with, rows_with, names_with),
            (without, rows_without, names_without),
        ] = plan_both(sql).await;
        assert!(
            with.contains("decimal_mul")
                && with.contains("decimal_sub")
                && with.contains("decimal_add"),
            "{with}"
        );
        assert!(!without.contains("decimal_"), "{without}");
        assert_eq!(names_with, names_without);
        assert_eq!(rows_with, rows_without);
        // Filters keep Arrow's operator (their expressions feed pruning).
        let [(with, ..), _] = plan_both("SELECT a FROM t WHERE a * b > 1").await;
        assert!(!with.contains("decimal_"), "{with}");
    }

    #[test]
    fn money_takes_the_unchecked_path() {
        let a = column(3, 100, 10i128.pow(13), true)
            .with_precision_and_scale(15, 2)
            .unwrap();
        let b = column(4, 100, 10i128.pow(13), false)
            .with_precision_and_scale(15, 2)
            .unwrap();
        let ty = DataType::Decimal128(31, 4);
        let out = unchecked(
            Operator::Multiply,
            &ColumnarValue::Array(Arc::new(a)),
            &ColumnarValue::Array(Arc::new(b)),
            &ty,
        )
        .unwrap();
        assert!(out.is_some());
    }
}
