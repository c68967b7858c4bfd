//! Row-group units on a real Parquet file: a sorted file of eight row
//! groups is scanned as eight units dealt across the partitions, so the
//! neighbouring row groups a selective predicate keeps are read by
//! different partitions, and every answer is DataFusion's own.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use mesh_query::rowgroups::RowGroupTable;

const ROWS: i64 = 8000;
const GROUP: usize = 1000;

fn write_sorted_file(path: &std::path::Path) {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from_iter_values(0..ROWS))],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(GROUP))
        .build();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

async fn session(dir: &std::path::Path, row_groups: bool) -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_repartition_file_scans(!row_groups);
    let ctx = SessionContext::new_with_config(config);
    let url = ListingTableUrl::parse(format!("file://{}/t.parquet", dir.display())).unwrap();
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()));
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await
        .unwrap();
    let table = Arc::new(ListingTable::try_new(config).unwrap());
    let table = if row_groups {
        RowGroupTable::wrap(table)
    } else {
        table
    };
    ctx.register_table("t", table).unwrap();
    ctx
}

/// The file ranges of each partition of the plan's one Parquet scan.
fn scan_groups(plan: &Arc<dyn ExecutionPlan>) -> Vec<Vec<(i64, i64)>> {
    let mut found = None;
    let mut stack = vec![plan.clone()];
    while let Some(node) = stack.pop() {
        if let Some(exec) = node.downcast_ref::<DataSourceExec>()
            && let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>()
        {
            found = Some(
                config
                    .file_groups
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(|f| {
                                let r = f.range.as_ref().unwrap();
                                (r.start, r.end)
                            })
                            .collect()
                    })
                    .collect(),
            );
        }
        stack.extend(node.children().into_iter().cloned());
    }
    found.unwrap()
}

async fn answer(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn row_groups_are_dealt_across_partitions_and_answers_are_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    write_sorted_file(&tmp.path().join("t.parquet"));
    let ours = session(tmp.path(), true).await;
    let theirs = session(tmp.path(), false).await;

    // Row groups 2 and 3 hold the rows; DataFusion's byte ranges put both
    // in one partition, the units put them in two.
    let selective = "SELECT count(*) AS n, sum(id) AS s FROM t WHERE id >= 2000 AND id < 4000";
    let plan = ours
        .sql(selective)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let groups = scan_groups(&plan);
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(groups[0].len(), 4, "{groups:?}");
    assert_eq!(groups[1].len(), 4, "{groups:?}");
    // Dealt in file order: units 0, 2, 4, 6 and 1, 3, 5, 7.
    let mut all: Vec<(usize, (i64, i64))> = groups
        .iter()
        .enumerate()
        .flat_map(|(p, g)| g.iter().map(move |r| (p, *r)))
        .collect();
    all.sort_by_key(|(_, r)| r.0);
    let owners: Vec<usize> = all.iter().map(|(p, _)| *p).collect();
    assert_eq!(owners, vec![0, 1, 0, 1, 0, 1, 0, 1]);
    assert!(all.windows(2).all(|w| w[0].1.1 == w[1].1.0), "{all:?}");

    for sql in [
        selective,
        "SELECT count(*) AS n FROM t",
        "SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM t WHERE id % 7 = 3",
        "SELECT id FROM t WHERE id BETWEEN 3990 AND 4010 ORDER BY id",
    ] {
        assert_eq!(
            answer(&ours, sql).await,
            answer(&theirs, sql).await,
            "{sql}"
        );
    }
    assert!(
        answer(&ours, selective)
            .await
            .contains("| 2000 | 5999000 |")
    );
}

/// The footers' statistics, merged over the files, are what the table
/// reports to the planner (the join order reads them).
#[tokio::test]
async fn footer_statistics_count_every_file_and_bound_each_column() {
    use datafusion::common::ScalarValue;
    use datafusion::common::stats::Precision;
    let dir = tempfile::tempdir().unwrap();
    write_sorted_file(&dir.path().join("t.parquet"));
    write_sorted_file(&dir.path().join("u.parquet"));
    let urls: Vec<ListingTableUrl> = ["t", "u"]
        .iter()
        .map(|f| ListingTableUrl::parse(format!("file://{}/{f}.parquet", dir.path().display())))
        .collect::<Result<_, _>>()
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let runtime = SessionContext::new().runtime_env();
    let stats = mesh_query::rowgroups::footer_statistics(&runtime, &urls, &schema)
        .await
        .unwrap();
    assert_eq!(stats.num_rows, Precision::Exact(2 * ROWS as usize));
    let id = &stats.column_statistics[0];
    assert_eq!(id.min_value, Precision::Exact(ScalarValue::Int64(Some(0))));
    assert_eq!(
        id.max_value,
        Precision::Exact(ScalarValue::Int64(Some(ROWS - 1)))
    );
    // A file that is not there gives no statistics, not wrong ones.
    let missing =
        ListingTableUrl::parse(format!("file://{}/gone.parquet", dir.path().display())).unwrap();
    let urls = [urls[0].clone(), missing];
    assert!(
        mesh_query::rowgroups::footer_statistics(&runtime, &urls, &schema)
            .await
            .is_none()
    );
}
