use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use super::broadcast_pays;
use crate::testing::{answer, physical};

/// Two Parquet files: 20,000 orders (keys 0..20,000, five priorities)
/// and 80,000 items (keys 0..25,000, so some items and, for the outer
/// joins, some orders match nothing).
async fn files(dir: &std::path::Path) -> (String, String) {
    let orders = dir.join("orders.parquet").to_str().unwrap().to_string();
    let items = dir.join("items.parquet").to_str().unwrap().to_string();
    let writer = SessionContext::new();
    for sql in [
        format!(
            "COPY (SELECT value AS o_key, 'p' || (value % 5) AS o_pri \
             FROM generate_series(0, 19999)) TO '{orders}' STORED AS PARQUET"
        ),
        format!(
            "COPY (SELECT (value * 7) % 25000 + 1000 AS i_key, value % 50 AS i_qty \
             FROM generate_series(0, 79999)) TO '{items}' STORED AS PARQUET"
        ),
    ] {
        writer.sql(&sql).await.unwrap().collect().await.unwrap();
    }
    (orders, items)
}

/// A session on `partitions` target partitions whose own thresholds
/// never choose `CollectLeft`, with mesh's physical rules or without.
async fn session(files: &(String, String), partitions: usize, mesh: bool) -> SessionContext {
    let mut config = SessionConfig::new().with_target_partitions(partitions);
    config
        .options_mut()
        .optimizer
        .hash_join_single_partition_threshold = 0;
    config
        .options_mut()
        .optimizer
        .hash_join_single_partition_threshold_rows = 0;
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features();
    if mesh {
        builder = builder.with_physical_optimizer_rules(crate::session::physical_rules());
    }
    let ctx = SessionContext::new_with_state(builder.build());
    ctx.register_parquet("orders", &files.0, ParquetReadOptions::default())
        .await
        .unwrap();
    ctx.register_parquet("items", &files.1, ParquetReadOptions::default())
        .await
        .unwrap();
    ctx
}

fn joins(plan: &str) -> Vec<&str> {
    plan.lines()
        .filter(|l| l.contains("HashJoinExec"))
        .collect()
}

const INNER: &str = "SELECT o_pri, count(*) AS n, sum(i_qty) AS qty \
    FROM orders JOIN items ON o_key = i_key GROUP BY o_pri ORDER BY o_pri";

#[tokio::test]
async fn on_two_partitions_the_smaller_side_is_built_once_and_the_larger_is_not_repartitioned() {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path()).await;
    let mesh = session(&files, 2, true).await;
    let plain = session(&files, 2, false).await;

    let plan = physical(&mesh, INNER).await;
    let joins_of = joins(&plan);
    assert_eq!(joins_of.len(), 1, "{plan}");
    assert!(joins_of[0].contains("mode=CollectLeft"), "{plan}");
    // Only the aggregate's exchange is left: the items are not
    // repartitioned by the join key.
    assert!(!plan.contains("Hash([i_key"), "{plan}");
    assert!(!plan.contains("Hash([o_key"), "{plan}");

    let before = physical(&plain, INNER).await;
    assert!(joins(&before)[0].contains("mode=Partitioned"), "{before}");
    assert_eq!(answer(&mesh, INNER).await, answer(&plain, INNER).await);
}

#[tokio::test]
async fn outer_and_semi_joins_answer_the_same_broadcast() {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path()).await;
    let mesh = session(&files, 2, true).await;
    let plain = session(&files, 2, false).await;
    let mut partitioned = 0;
    for sql in [
        "SELECT count(*), count(o_key), count(i_key), sum(i_qty) \
         FROM orders LEFT JOIN items ON o_key = i_key",
        "SELECT count(*), count(o_key), count(i_key), sum(i_qty) \
         FROM orders RIGHT JOIN items ON o_key = i_key",
        "SELECT count(*), count(o_key), count(i_key), sum(i_qty) \
         FROM orders FULL JOIN items ON o_key = i_key",
        "SELECT count(*) FROM orders WHERE o_key IN (SELECT i_key FROM items)",
        "SELECT count(*) FROM orders WHERE o_key NOT IN (SELECT i_key FROM items)",
        "SELECT count(*) FROM items WHERE NOT EXISTS \
         (SELECT 1 FROM orders WHERE o_key = i_key)",
    ] {
        let plan = physical(&mesh, sql).await;
        assert!(
            joins(&plan).iter().all(|j| j.contains("mode=CollectLeft")),
            "{sql}\n{plan}"
        );
        assert_eq!(answer(&mesh, sql).await, answer(&plain, sql).await, "{sql}");
        let before = physical(&plain, sql).await;
        partitioned += usize::from(before.contains("mode=Partitioned"));
    }
    // DataFusion alone partitions every one of them.
    assert_eq!(partitioned, 6);
}

#[tokio::test]
async fn on_many_partitions_a_build_side_near_the_probe_sides_size_stays_partitioned() {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path()).await;
    // 20,000 × (8 − 2) > 80,000: a single-threaded build would cost more
    // than the repartition it saves.
    let mesh = session(&files, 8, true).await;
    let plan = physical(&mesh, INNER).await;
    assert!(joins(&plan)[0].contains("mode=Partitioned"), "{plan}");
    // 20,000 × (5 − 2) ≤ 80,000.
    let mesh = session(&files, 5, true).await;
    let plan = physical(&mesh, INNER).await;
    assert!(joins(&plan)[0].contains("mode=CollectLeft"), "{plan}");
}

#[test]
fn broadcast_pays_where_one_build_costs_less_than_the_repartition() {
    assert!(broadcast_pays(1_500_000, 6_000_000, 2));
    assert!(broadcast_pays(6_000_000, 1_500_000, 2));
    assert!(broadcast_pays(1_000, 14_000, 16));
    assert!(!broadcast_pays(1_001, 14_000, 16));
    assert!(broadcast_pays(usize::MAX, 0, 1));
    assert!(!broadcast_pays(usize::MAX, usize::MAX - 1, 4));
}
