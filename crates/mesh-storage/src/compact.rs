//! Compaction at the storage level (docs/storage.md): the live files of a
//! table with their sizes, the commit that swaps small files for larger
//! ones without changing data, and reading such commits back from the log
//! (to finish recording one whose process stopped).
//!
//! A compaction commit is a Delta `OPTIMIZE`: every `add` and `remove` has
//! `dataChange: false`, and its commit info names the run that wrote it
//! and the release (the data version) whose files it rewrote.

use deltalake::DeltaTable;
use deltalake::kernel::Add;
use deltalake::protocol::DeltaOperation;
use futures::TryStreamExt;

use crate::error::Result;
use crate::table::{RUN_ID_KEY, commit_metadata, commit_replacing, delta_err};

/// Commit metadata key holding the release (data version) a compaction
/// rewrote.
pub const COMPACTS_KEY: &str = "meshwork.compacts";

/// One file the newest version of a table reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Relative to the table root.
    pub path: String,
    pub bytes: u64,
    /// Rows, from the file's statistics in the log.
    pub rows: Option<u64>,
}

/// The files the table's loaded version reads, sorted by path.
pub async fn live_files(table: &DeltaTable) -> Result<Vec<LiveFile>> {
    let location = table.table_url().clone();
    let snapshot = table.snapshot().map_err(delta_err(&location))?;
    let mut files: Vec<LiveFile> = snapshot
        .snapshot()
        .file_views(&table.log_store(), None)
        .map_ok(|f| LiveFile {
            path: f.path().to_string(),
            bytes: f.size().max(0) as u64,
            rows: f.num_records().map(|n| n as u64),
        })
        .try_collect()
        .await
        .map_err(delta_err(&location))?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// What a compaction commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionCommit {
    pub version: u64,
    pub run_id: String,
    /// The release whose files it rewrote.
    pub release: i64,
    /// Files it added, relative to the table root.
    pub added: Vec<String>,
    /// Files it removed from the version readers read.
    pub removed: Vec<String>,
}

/// Commits a compaction of release `release`: `adds` replace the files
/// `removes` (paths relative to the table root) without changing data.
/// Fails, committing nothing, if another commit landed since `table` was
/// loaded. Returns the new table version.
pub async fn commit_compaction(
    table: &DeltaTable,
    adds: Vec<Add>,
    removes: &[String],
    run_id: &str,
    product_version: &str,
    release: i64,
    target_size: u64,
) -> Result<u64> {
    let mut metadata = commit_metadata(run_id, product_version);
    metadata.insert(COMPACTS_KEY.to_string(), serde_json::Value::from(release));
    let operation = DeltaOperation::Optimize {
        predicate: None,
        target_size: target_size as i64,
    };
    commit_replacing(
        table,
        adds,
        |path| removes.iter().any(|r| r == path),
        false,
        metadata,
        operation,
    )
    .await
}

/// The commits after version `after` up to the one `table` is loaded at,
/// each as a compaction commit, or `None` for a commit that is not one
/// (a run's publication, say).
pub async fn commits_after(
    table: &DeltaTable,
    after: u64,
) -> Result<Vec<Option<CompactionCommit>>> {
    let Some(latest) = table.version() else {
        return Ok(Vec::new());
    };
    let location = table.table_url().clone();
    let log_store = table.log_store();
    let mut commits = Vec::new();
    for version in after + 1..=latest {
        let bytes = log_store
            .read_commit_entry(version)
            .await
            .map_err(delta_err(&location))?
            .unwrap_or_default();
        commits.push(compaction_of(version, &bytes));
    }
    Ok(commits)
}

/// Reads one commit entry as a compaction, if it is one.
fn compaction_of(version: u64, bytes: &[u8]) -> Option<CompactionCommit> {
    let mut commit = CompactionCommit {
        version,
        run_id: String::new(),
        release: -1,
        added: Vec::new(),
        removed: Vec::new(),
    };
    for line in String::from_utf8_lossy(bytes).lines() {
        let Ok(action) = serde_json::from_str::<serde_json::Value>(line) else {
            return None;
        };
        let path = |kind: &str| action.get(kind)?.get("path")?.as_str().map(percent_decode);
        if let Some(info) = action.get("commitInfo") {
            commit.release = info.get(COMPACTS_KEY)?.as_i64()?;
            commit.run_id = info.get(RUN_ID_KEY)?.as_str()?.to_string();
        } else if let Some(p) = path("add") {
            commit.added.push(p);
        } else if let Some(p) = path("remove") {
            commit.removed.push(p);
        }
    }
    (commit.release >= 0).then_some(commit)
}

/// Paths in the log are URL-encoded; the catalog keeps them decoded, as
/// the snapshot's file views give them.
fn percent_decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::compaction_of;

    #[test]
    fn reads_a_compaction_commit_and_ignores_a_publication() {
        let log = br#"{"commitInfo":{"operation":"OPTIMIZE","meshwork.runId":"abc","meshwork.compacts":3}}
{"add":{"path":"r-abc/part-0.parquet","size":10,"dataChange":false}}
{"remove":{"path":"r-x/part-1.parquet","dataChange":false}}
"#;
        let c = compaction_of(4, log).unwrap();
        assert_eq!((c.version, c.run_id.as_str(), c.release), (4, "abc", 3));
        assert_eq!(c.added, ["r-abc/part-0.parquet"]);
        assert_eq!(c.removed, ["r-x/part-1.parquet"]);
        let publication = br#"{"commitInfo":{"operation":"WRITE","meshwork.runId":"abc"}}
{"add":{"path":"r-abc/part-0.parquet","size":10,"dataChange":true}}
"#;
        assert_eq!(compaction_of(5, publication), None);
    }
}
