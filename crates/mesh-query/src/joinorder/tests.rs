use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use super::*;
use crate::rowgroups::RowGroupTable;
use crate::testing::answer;

/// A table of Int64 columns (and `name` columns of strings) that reports
/// its true row count and bounds when `statistics` is set.
fn table(columns: &[(&str, Vec<i64>)], statistics: bool) -> Arc<dyn TableProvider> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, _)| {
            let ty = if name.ends_with("name") {
                DataType::Utf8
            } else {
                DataType::Int64
            };
            Field::new(*name, ty, false)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let arrays = columns
        .iter()
        .map(
            |(name, values)| -> Arc<dyn datafusion::arrow::array::Array> {
                if name.ends_with("name") {
                    Arc::new(StringArray::from_iter_values(
                        values.iter().map(|v| format!("n{v}")),
                    ))
                } else {
                    Arc::new(Int64Array::from(values.clone()))
                }
            },
        )
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let rows = batch.num_rows();
    let mem = Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap());
    let stats = statistics.then(|| Statistics {
        num_rows: Precision::Exact(rows),
        total_byte_size: Precision::Absent,
        column_statistics: columns
            .iter()
            .map(|(name, values)| {
                if name.ends_with("name") {
                    return ColumnStatistics::new_unknown();
                }
                let (min, max) = (values.iter().min().copied(), values.iter().max().copied());
                ColumnStatistics {
                    min_value: Precision::Exact(ScalarValue::Int64(min)),
                    max_value: Precision::Exact(ScalarValue::Int64(max)),
                    ..ColumnStatistics::new_unknown()
                }
            })
            .collect(),
    });
    RowGroupTable::with_statistics(mem, stats)
}

/// A small Q5-shaped schema: 5 regions, 25 nations, 100 suppliers, 1,500
/// customers, 15,000 orders over 7 years, 60,000 line items.
fn context(with_rule: bool, statistics: bool) -> SessionContext {
    let mut builder = SessionStateBuilder::new().with_default_features();
    if with_rule {
        builder = builder.with_optimizer_rules(rules());
    }
    let ctx = SessionContext::new_with_state(builder.build());
    let r = |n: i64| (0..n).collect::<Vec<_>>();
    let tables = [
        ("region", vec![("r_regionkey", r(5)), ("r_name", r(5))]),
        (
            "nation",
            vec![
                ("n_nationkey", r(25)),
                ("n_regionkey", r(25).iter().map(|k| k % 5).collect()),
                ("n_name", r(25)),
            ],
        ),
        (
            "supplier",
            vec![
                ("s_suppkey", r(100)),
                ("s_nationkey", r(100).iter().map(|k| k * 7 % 25).collect()),
            ],
        ),
        (
            "customer",
            vec![
                ("c_custkey", r(1500)),
                ("c_nationkey", r(1500).iter().map(|k| k * 11 % 25).collect()),
            ],
        ),
        (
            "orders",
            vec![
                ("o_orderkey", r(15_000)),
                (
                    "o_custkey",
                    r(15_000).iter().map(|k| k * 13 % 1500).collect(),
                ),
                ("o_year", r(15_000).iter().map(|k| 1992 + k % 7).collect()),
            ],
        ),
        (
            "lineitem",
            vec![
                ("l_orderkey", r(60_000).iter().map(|k| k / 4).collect()),
                (
                    "l_suppkey",
                    r(60_000).iter().map(|k| k * 17 % 100).collect(),
                ),
                ("l_price", r(60_000).iter().map(|k| k % 1000).collect()),
            ],
        ),
    ];
    for (name, columns) in tables {
        ctx.register_table(name, table(&columns, statistics))
            .unwrap();
    }
    ctx
}

const Q5: &str = "SELECT n_name, sum(l_price) AS revenue, count(*) AS lines \
    FROM customer, orders, lineitem, supplier, nation, region \
    WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey \
      AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey \
      AND n_regionkey = r_regionkey AND r_name = 'n2' \
      AND o_year >= 1994 AND o_year < 1995 \
    GROUP BY n_name ORDER BY revenue DESC, n_name";

async fn optimized(ctx: &SessionContext, sql: &str) -> String {
    let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
    plan.display_indent().to_string()
}

/// The tables of the joins in `plan`, deepest first.
fn scans(plan: &str) -> Vec<String> {
    let mut scans: Vec<(usize, String)> = plan
        .lines()
        .filter_map(|l| {
            let at = l.find("TableScan: ")?;
            let name = l[at + 11..].split([' ', ',']).next()?.to_string();
            Some((at, name))
        })
        .collect();
    scans.sort_by_key(|s| std::cmp::Reverse(s.0));
    scans.into_iter().map(|(_, n)| n).collect()
}

#[tokio::test]
async fn q5_joins_the_region_first_and_answers_the_same() {
    let with = context(true, true);
    let without = context(false, true);
    let plan = optimized(&with, Q5).await;
    let order = scans(&plan);
    // The selective dimensions are joined before lineitem is read, and
    // lineitem is joined before the suppliers.
    let at = |t: &str| order.iter().position(|n| n == t).unwrap();
    assert!(at("region") < at("lineitem"), "{plan}");
    assert!(at("customer") < at("lineitem"), "{plan}");
    assert!(at("orders") < at("lineitem"), "{plan}");
    // The implied `c_nationkey = n_nationkey` is used.
    assert!(
        plan.contains("customer.c_nationkey = nation.n_nationkey")
            || plan.contains("nation.n_nationkey = customer.c_nationkey"),
        "{plan}"
    );
    assert_ne!(plan, optimized(&without, Q5).await);
    let expected = answer(&without, Q5).await;
    assert!(expected.contains("| n2 "), "{expected}");
    assert_eq!(answer(&with, Q5).await, expected);
}

#[tokio::test]
async fn star_keeps_the_written_columns_in_order() {
    let sql = "SELECT * FROM lineitem, orders, customer \
        WHERE l_orderkey = o_orderkey AND o_custkey = c_custkey AND c_custkey < 3 \
        ORDER BY l_orderkey, l_suppkey, l_price";
    let with = context(true, true);
    let without = context(false, true);
    assert_ne!(optimized(&with, sql).await, optimized(&without, sql).await);
    assert_eq!(answer(&with, sql).await, answer(&without, sql).await);
}

#[tokio::test]
async fn tables_without_statistics_keep_the_written_order() {
    let with = context(true, false);
    let without = context(false, false);
    assert_eq!(optimized(&with, Q5).await, optimized(&without, Q5).await);
}

#[tokio::test]
async fn outer_joins_and_join_filters_are_left_alone() {
    let with = context(true, true);
    let without = context(false, true);
    for sql in [
        "SELECT count(*) FROM customer LEFT JOIN orders ON c_custkey = o_custkey \
           JOIN nation ON c_nationkey = n_nationkey JOIN region ON n_regionkey = r_regionkey",
        "SELECT count(*) FROM customer JOIN orders ON c_custkey = o_custkey AND o_year > c_nationkey \
           JOIN lineitem ON l_orderkey = o_orderkey",
    ] {
        assert_eq!(
            answer(&with, sql).await,
            answer(&without, sql).await,
            "{sql}"
        );
    }
    let outer = "SELECT count(*) FROM customer LEFT JOIN orders ON c_custkey = o_custkey \
        LEFT JOIN lineitem ON l_orderkey = o_orderkey";
    assert_eq!(
        optimized(&with, outer).await,
        optimized(&without, outer).await
    );
}

#[tokio::test]
async fn every_implied_equality_holds_in_the_answer() {
    // `a = b AND b = c` over three copies of one column: the rule may join
    // `a` to `c` directly; every row must still satisfy both.
    let sql = "SELECT count(*), sum(s.s_suppkey) FROM supplier s \
        JOIN customer c ON s.s_nationkey = c.c_nationkey \
        JOIN nation n ON c.c_nationkey = n.n_nationkey AND n.n_regionkey = 1";
    let with = context(true, true);
    let without = context(false, true);
    assert_eq!(answer(&with, sql).await, answer(&without, sql).await);
}
