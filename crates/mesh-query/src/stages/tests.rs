use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::testing::{answer, physical};

/// A Parquet file of 60,000 line items (dates over 2,557 days, 11
/// discounts, 50 quantities), read in a session with the rule and in
/// DataFusion's own.
async fn contexts(dir: &std::path::Path) -> (SessionContext, SessionContext) {
    let path = dir.join("lineitem.parquet");
    let path = path.to_str().unwrap();
    let writer = SessionContext::new();
    writer
        .sql(&format!(
            "COPY (SELECT value AS l_key, value % 2557 AS l_date, value % 11 AS l_disc, \
               value % 50 AS l_qty, value % 1000 AS l_price \
             FROM generate_series(0, 59999)) TO '{path}' STORED AS PARQUET"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    // A transform's session: it registers the rule as the query engine does.
    let with = crate::session::transform_context(None);
    let without = SessionContext::new();
    for ctx in [&with, &without] {
        ctx.register_parquet("lineitem", path, ParquetReadOptions::default())
            .await
            .unwrap();
    }
    (with, without)
}

/// The `FilterExec` lines of `plan`, outermost first.
fn filters(plan: &str) -> Vec<&str> {
    plan.lines().filter(|l| l.contains("FilterExec")).collect()
}

const Q6: &str = "SELECT sum(l_price * l_disc) AS revenue, count(*) AS n FROM lineitem \
    WHERE l_date >= 730 AND l_date < 1095 AND l_disc >= 5 AND l_disc <= 7 AND l_qty < 24";

#[tokio::test]
async fn a_selective_date_range_is_a_stage_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (with, without) = contexts(dir.path()).await;
    let plan = physical(&with, Q6).await;
    let stages = filters(&plan);
    assert_eq!(stages.len(), 2, "{plan}");
    // The outer stage holds the rest; the inner, the date range alone,
    // and it passes on only the columns the rest and the output read.
    assert!(
        stages[0].contains("l_disc@") && !stages[0].contains("l_date"),
        "{plan}"
    );
    assert!(
        stages[1].ends_with(
            "FilterExec: l_date@0 >= 730 AND l_date@0 < 1095, \
             projection=[l_disc@1, l_qty@2, l_price@3]"
        ),
        "{plan}"
    );
    assert_eq!(filters(&physical(&without, Q6).await).len(), 1);
    let expected = answer(&without, Q6).await;
    let n = (0..60_000i64)
        .filter(|v| (730..1095).contains(&(v % 2557)) && (5..=7).contains(&(v % 11)) && v % 50 < 24)
        .count();
    assert!(
        n > 0 && expected.contains(&format!("| {n} ")),
        "{n}\n{expected}"
    );
    assert_eq!(answer(&with, Q6).await, expected);
}

#[tokio::test]
async fn columns_come_out_in_the_written_order() {
    let dir = tempfile::tempdir().unwrap();
    let (with, without) = contexts(dir.path()).await;
    let sql = "SELECT l_qty, l_date, l_price, l_key FROM lineitem \
        WHERE l_date >= 100 AND l_date < 130 AND l_qty < 10 AND l_price > l_qty \
        ORDER BY l_key";
    assert_eq!(filters(&physical(&with, sql).await).len(), 2);
    assert_eq!(answer(&with, sql).await, answer(&without, sql).await);
}

#[tokio::test]
async fn unselective_or_unknown_leads_keep_one_filter() {
    let dir = tempfile::tempdir().unwrap();
    let (with, _) = contexts(dir.path()).await;
    for sql in [
        // Each lead keeps more than a fifth of the rows.
        "SELECT count(*) FROM lineitem WHERE l_qty < 40 AND l_disc >= 1 AND l_price > 10",
        // No bounds say what a computed value keeps.
        "SELECT count(*) FROM lineitem WHERE l_key % 7 = 3 AND l_disc >= 1",
        // One conjunct: nothing to split.
        "SELECT count(*) FROM lineitem WHERE l_date < 10",
    ] {
        let plan = physical(&with, sql).await;
        assert_eq!(filters(&plan).len(), 1, "{sql}\n{plan}");
    }
}

#[tokio::test]
async fn later_conjuncts_see_only_the_rows_the_stage_kept() {
    // The division fails on `l_date = 50`, a row the range removes.
    let dir = tempfile::tempdir().unwrap();
    let (with, without) = contexts(dir.path()).await;
    let sql = "SELECT count(*) FROM lineitem \
        WHERE l_date >= 1000 AND l_date < 1100 AND 100 / (l_date - 50) >= 0";
    assert_eq!(filters(&physical(&with, sql).await).len(), 2);
    assert_eq!(answer(&with, sql).await, answer(&without, sql).await);
}
