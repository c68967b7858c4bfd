//! Delta tables on a real S3-compatible server (the test command's
//! s3s-fs, `MESH_TEST_S3_ENDPOINT`): staged files stay invisible until
//! committed, a commit of a version another writer already committed is
//! refused by the server's conditional PUT, and an unpublished run's files
//! are removed by their prefix. Without a server (plain `cargo test`) the
//! tests say so and pass; `scripts/test` always provides one and sets
//! `MESH_TEST_REQUIRE_S3=1`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use mesh_spec::ColumnType;
use mesh_storage::s3::{S3Settings, configure};
use mesh_storage::{
    Layout, StagedWriter, TableColumn, commit_overwrite, ensure_table, open, plain_files,
    remove_run_files, run_dir, table_url,
};

/// A fresh prefix on the test server, or None without one.
fn location(test: &str) -> Option<url::Url> {
    let Ok(endpoint) = std::env::var("MESH_TEST_S3_ENDPOINT") else {
        assert!(
            std::env::var("MESH_TEST_REQUIRE_S3").as_deref() != Ok("1"),
            "MESH_TEST_REQUIRE_S3=1 but MESH_TEST_S3_ENDPOINT is unset: run scripts/test"
        );
        eprintln!("no S3 server (MESH_TEST_S3_ENDPOINT): skipped");
        return None;
    };
    configure(S3Settings {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        path_style: true,
        allow_http: true,
    });
    let id = uuid::Uuid::new_v4().simple().to_string();
    Some(table_url(&format!("s3://mesh/st{}/{test}", &id[..8])).unwrap())
}

fn columns() -> Vec<TableColumn> {
    vec![TableColumn {
        name: "id".into(),
        ty: ColumnType::BigInt,
        nullable: false,
    }]
}

fn batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap()
}

async fn stage(location: &url::Url, run: &str, ids: &[i64]) -> Vec<deltalake::kernel::Add> {
    let table = ensure_table(location, "t", &columns()).await.unwrap();
    let b = batch(ids);
    let mut writer = StagedWriter::new(&table, run, b.schema(), Layout::default());
    writer.write(&b).await.unwrap();
    writer.finish().await.unwrap()
}

/// Objects under `location` whose key contains `part`.
async fn objects(location: &url::Url, part: &str) -> usize {
    let table = open(location, None).await.unwrap();
    let store = table.log_store().object_store(None);
    let all: Vec<_> = store.list(None).try_collect().await.unwrap();
    all.iter()
        .filter(|o| o.location.as_ref().contains(part))
        .count()
}

#[tokio::test]
async fn staged_files_are_invisible_until_committed_and_removed_by_prefix() {
    let Some(location) = location("staged") else {
        return;
    };
    let adds = stage(&location, "run-a", &[1, 2, 3]).await;
    let table = open(&location, None).await.unwrap();
    assert!(
        plain_files(&table).unwrap().unwrap().files.is_empty(),
        "staged, not yet part of any version"
    );
    let table = ensure_table(&location, "t", &columns()).await.unwrap();
    let v1 = commit_overwrite(&table, adds, "run-a", "1.0.0")
        .await
        .unwrap();
    let read = open(&location, Some(v1)).await.unwrap();
    let files = plain_files(&read).unwrap().unwrap().files;
    assert!(!files.is_empty() && files.iter().all(|f| f.contains(&run_dir("run-a"))));

    stage(&location, "run-dropped", &[9]).await;
    assert!(objects(&location, &run_dir("run-dropped")).await >= 1);
    assert!(remove_run_files(&location, "run-dropped").await.unwrap() >= 1);
    assert_eq!(objects(&location, &run_dir("run-dropped")).await, 0);
    assert!(
        objects(&location, &run_dir("run-a")).await >= 1,
        "others untouched"
    );
}

#[tokio::test]
async fn a_version_is_committed_once_whatever_the_writers() {
    let Some(location) = location("race") else {
        return;
    };
    let first = stage(&location, "run-one", &[1]).await;
    let second = stage(&location, "run-two", &[2]).await;
    // Both writers loaded the table at the same version.
    let one = ensure_table(&location, "t", &columns()).await.unwrap();
    let two = ensure_table(&location, "t", &columns()).await.unwrap();
    assert_eq!(one.version(), two.version());
    let v = commit_overwrite(&one, first, "run-one", "1.0.0")
        .await
        .unwrap();
    // The second commit finds the version taken: the server refused to
    // overwrite the commit file, so delta-rs commits the next version
    // instead of losing the first; the log keeps both, in order.
    let w = commit_overwrite(&two, second, "run-two", "1.0.0").await;
    eprintln!("the second writer's commit: {w:?}");
    match w {
        Ok(w) => assert_eq!(w, v + 1, "never the same version twice"),
        Err(e) => assert!(
            e.to_string().to_lowercase().contains("conflict")
                || e.to_string().to_lowercase().contains("exists"),
            "{e}"
        ),
    }
    // The server itself refuses to replace a commit file.
    let store = one.log_store().object_store(None);
    let commit = object_store::path::Path::from(format!("_delta_log/{v:020}.json"));
    let again = store
        .put_opts(
            &commit,
            object_store::PutPayload::from_static(b"{}"),
            object_store::PutMode::Create.into(),
        )
        .await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
    let table = open(&location, Some(v)).await.unwrap();
    let files = plain_files(&table).unwrap().unwrap().files;
    assert!(
        files.iter().all(|f| f.contains(&run_dir("run-one"))),
        "{files:?}"
    );
}
