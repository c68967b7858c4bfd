//! Delta tables in temporary directories: staged writes, overwrite commits,
//! finding a run's commit, removing a run's files, and plain file lists.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use mesh_spec::ColumnType;
use mesh_storage::{
    Layout, StagedWriter, TableColumn, commit_overwrite, ensure_table, find_run_commit, open,
    plain_files, remove_run_files, run_dir, table_url,
};

fn columns() -> Vec<TableColumn> {
    vec![
        TableColumn {
            name: "id".into(),
            ty: ColumnType::BigInt,
            nullable: false,
        },
        TableColumn {
            name: "label".into(),
            ty: ColumnType::String,
            nullable: true,
        },
    ]
}

fn batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Utf8, true),
    ]));
    let labels: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(labels)),
        ],
    )
    .unwrap()
}

/// Stages `ids` as run `run` and publishes them; returns the new version.
async fn publish(location: &url::Url, run: &str, ids: &[i64]) -> u64 {
    let table = ensure_table(location, "t", &columns()).await.unwrap();
    let b = batch(ids);
    let mut writer = StagedWriter::new(&table, run, b.schema(), Layout::default());
    writer.write(&b).await.unwrap();
    let adds = writer.finish().await.unwrap();
    assert!(adds.iter().all(|a| a.path.starts_with(&run_dir(run))));
    commit_overwrite(&table, adds, run, "1.0.0").await.unwrap()
}

#[tokio::test]
async fn runs_publish_versions_that_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let location = table_url(dir.path().join("t").to_str().unwrap()).unwrap();
    let v1 = publish(&location, "run-a", &[1, 2, 3]).await;
    let v2 = publish(&location, "run-b", &[4]).await;
    assert_eq!(v2, v1 + 1);

    // Each version lists exactly its own run's files.
    for (version, run) in [(v1, "run-a"), (v2, "run-b")] {
        let table = open(&location, Some(version)).await.unwrap();
        let plain = plain_files(&table).unwrap().expect("a plain table");
        assert!(!plain.files.is_empty());
        assert!(
            plain.files.iter().all(|f| f.contains(&run_dir(run))),
            "{plain:?}"
        );
        assert_eq!(plain.schema.field(0).name(), "id");
    }

    assert_eq!(
        find_run_commit(&location, "run-b", None).await.unwrap(),
        Some(v2)
    );
    assert_eq!(
        find_run_commit(&location, "run-never", None).await.unwrap(),
        None
    );
    let err = open(&location, Some(v2 + 5)).await.unwrap_err();
    assert!(err.to_string().contains(&format!("{}", v2 + 5)), "{err}");
}

#[tokio::test]
async fn an_unpublished_run_is_removed_by_its_prefix_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let location = table_url(path.to_str().unwrap()).unwrap();
    publish(&location, "kept", &[1]).await;
    let table = ensure_table(&location, "t", &columns()).await.unwrap();
    let b = batch(&[7, 8]);
    let mut writer = StagedWriter::new(&table, "dropped", b.schema(), Layout::default());
    writer.write(&b).await.unwrap();
    writer.finish().await.unwrap();
    assert!(path.join(run_dir("dropped")).exists());

    let removed = remove_run_files(&location, "dropped").await.unwrap();
    assert!(removed >= 1);
    assert!(!path.join(run_dir("dropped")).exists());
    assert!(
        path.join(run_dir("kept")).exists(),
        "other runs are untouched"
    );
}

#[tokio::test]
async fn partitioned_tables_are_not_read_as_plain_files() {
    // Partition values live in the log, not the files: a plain Parquet
    // scan would lose them, so such tables must go through the Delta reader.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    std::fs::create_dir_all(&path).unwrap();
    let location = table_url(path.to_str().unwrap()).unwrap();
    let table = deltalake::DeltaTable::try_from_url(location.clone())
        .await
        .unwrap()
        .create()
        .with_columns(vec![
            deltalake::kernel::StructField::new(
                "id",
                deltalake::kernel::DataType::Primitive(deltalake::kernel::PrimitiveType::Long),
                false,
            ),
            deltalake::kernel::StructField::new(
                "label",
                deltalake::kernel::DataType::Primitive(deltalake::kernel::PrimitiveType::String),
                true,
            ),
        ])
        .with_partition_columns(["label"])
        .await
        .unwrap();
    assert!(plain_files(&table).unwrap().is_none());
}
