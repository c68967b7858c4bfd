//! Compaction through the real binary (`mesh optimize`, and the runs' own
//! compaction): a release's small files become one, as a Delta version
//! that changes no data; every kept release answers exactly as before,
//! under concurrent runs and after a process killed mid-way.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{USER, edit, init, json, ok};

/// Six `UNION ALL` branches, one partition each: every run writes six
/// small files. `seed.csv` moves the numbers, so each run's data differs.
const SHARDS: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: ops
name: shards
version: 1.0.0
owner: ops@acme.example
description:
  purpose: Numbers written by six writers, for compaction tests.
slo: {freshness: 7d}
inputs:
  - name: seed
    source:
      format: csv
      path: data/seed.csv
      columns:
        - {name: k, type: bigint, nullable: false}
transform:
  query: |
    SELECT CAST(g.value + s.k AS BIGINT) AS id, concat('a-', CAST(g.value AS VARCHAR)) AS label FROM seed s CROSS JOIN generate_series(1, 20000) AS g
    UNION ALL SELECT CAST(g.value + s.k AS BIGINT), concat('b-', CAST(g.value AS VARCHAR)) FROM seed s CROSS JOIN generate_series(20001, 40000) AS g
    UNION ALL SELECT CAST(g.value + s.k AS BIGINT), concat('c-', CAST(g.value AS VARCHAR)) FROM seed s CROSS JOIN generate_series(40001, 60000) AS g
    UNION ALL SELECT CAST(g.value + s.k AS BIGINT), concat('d-', CAST(g.value AS VARCHAR)) FROM seed s CROSS JOIN generate_series(60001, 80000) AS g
    UNION ALL SELECT CAST(g.value + s.k AS BIGINT), concat('e-', CAST(g.value AS VARCHAR)) FROM seed s CROSS JOIN generate_series(80001, 100000) AS g
    UNION ALL SELECT CAST(g.value + s.k AS BIGINT), concat('f-', CAST(g.value AS VARCHAR)) FROM seed s CROSS JOIN generate_series(100001, 120000) AS g
outputs:
  - name: shards
    columns:
      - {name: id, type: bigint, nullable: false, description: A number}
      - {name: label, type: string, description: Which writer and its count}
"#;

fn project(tmp: &Path, mesh_yaml_extra: &str) -> PathBuf {
    let dir = init(tmp);
    let product = dir.join("ops/shards");
    std::fs::create_dir_all(product.join("data")).unwrap();
    std::fs::write(product.join("product.yaml"), SHARDS).unwrap();
    seed(&dir, 0);
    if !mesh_yaml_extra.is_empty() {
        let path = dir.join("mesh.yaml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(mesh_yaml_extra);
        std::fs::write(path, text).unwrap();
    }
    ok(&dir, &["deploy"]);
    dir
}

fn seed(dir: &Path, k: i64) {
    std::fs::write(dir.join("ops/shards/data/seed.csv"), format!("k\n{k}\n")).unwrap();
}

fn table(dir: &Path) -> PathBuf {
    dir.join(".mesh/tables/ops/shards/shards")
}

/// What a version holds, in one line: rows, sums and extremes.
fn answer(dir: &Path, at: Option<i64>) -> String {
    let name = at.map_or("ops.shards".to_string(), |v| format!("ops.shards@{v}"));
    ok(
        dir,
        &[
            "query",
            &format!(
                "SELECT count(*) AS n, sum(id) AS s, min(label) AS lo, max(label) AS hi, count(DISTINCT label) AS d FROM {name}"
            ),
            "--format",
            "csv",
        ],
    )
}

fn data_version(dir: &Path) -> i64 {
    json(dir, &["catalog", "show", "ops/shards", "--format", "json"])["outputs"][0]["data_version"]
        .as_i64()
        .unwrap()
}

/// The files the current release reads, from the catalog page.
fn current_files(dir: &Path) -> u64 {
    let show = json(dir, &["catalog", "show", "ops/shards", "--format", "json"]);
    let storage = &show["outputs"][0]["storage"];
    storage["current_files"]
        .as_u64()
        .unwrap_or_else(|| panic!("no current_files in {storage}"))
}

/// The newest commit of the table's Delta log, as text.
fn newest_commit(dir: &Path) -> String {
    let log = table(dir).join("_delta_log");
    let mut commits: Vec<PathBuf> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    commits.sort();
    std::fs::read_to_string(commits.last().unwrap()).unwrap()
}

#[test]
fn optimize_rewrites_small_files_and_every_release_answers_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path(), "compaction: {auto: false}\n");
    ok(&dir, &["run"]);
    let first = data_version(&dir);
    seed(&dir, 1_000_000);
    ok(&dir, &["run"]);
    let second = data_version(&dir);
    // Six writers, at least one file each (more on more cores).
    let written = current_files(&dir);
    assert!(written >= 6, "{written} files");
    let before = [
        answer(&dir, None),
        answer(&dir, Some(first)),
        answer(&dir, Some(second)),
    ];
    let on_disk = common::table_files(&table(&dir)).len();
    assert_eq!(on_disk as u64, 2 * written);

    let report = json(&dir, &["optimize", "ops/shards", "--format", "json"]);
    let o = &report[0]["outputs"][0];
    assert_eq!(o["output"], "ops.shards", "{report}");
    assert_eq!(o["release"], second, "{report}");
    assert_eq!(o["files_before"], written, "{report}");
    assert_eq!(o["files_after"], 1, "{report}");
    assert_eq!(o["files_rewritten"], written, "{report}");
    assert_eq!(o["rows"], 120_000, "{report}");
    assert_eq!(report[0]["run"]["cause"], "optimize", "{report}");

    // The release keeps its number and its data; earlier ones too.
    assert_eq!(data_version(&dir), second);
    assert_eq!(current_files(&dir), 1);
    let after = [
        answer(&dir, None),
        answer(&dir, Some(first)),
        answer(&dir, Some(second)),
    ];
    assert_eq!(after, before);
    // For every Delta reader it is an OPTIMIZE that changes no data.
    let commit = newest_commit(&dir);
    assert!(commit.contains("\"operation\":\"OPTIMIZE\""), "{commit}");
    assert!(commit.contains("\"dataChange\":false"), "{commit}");
    assert!(!commit.contains("\"dataChange\":true"), "{commit}");

    // The replaced files stay until vacuum, which removes only them.
    assert_eq!(
        common::table_files(&table(&dir)).len() as u64,
        2 * written + 1
    );
    let vacuum = json(&dir, &["vacuum", "ops/shards", "--format", "json"]);
    assert_eq!(vacuum[0]["files_removed"], written, "{vacuum}");
    assert_eq!(vacuum[0]["expired"], serde_json::json!([]), "{vacuum}");
    assert_eq!(common::table_files(&table(&dir)).len() as u64, written + 1);
    let vacuumed = [
        answer(&dir, None),
        answer(&dir, Some(first)),
        answer(&dir, Some(second)),
    ];
    assert_eq!(vacuumed, before);

    // Nothing left to do; the page's last run is still the build.
    let again = ok(&dir, &["optimize", "ops/shards"]);
    assert!(again.contains("Nothing to compact"), "{again}");
    let runs = json(
        &dir,
        &["runs", "--product", "ops/shards", "--format", "json"],
    );
    let causes: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["optimize", "manual", "manual"], "{runs}");
    let show = json(&dir, &["catalog", "show", "ops/shards", "--format", "json"]);
    assert_ne!(show["last_run"]["id"], report[0]["run"]["id"], "{show}");

    // The next run replaces the compacted file like any other.
    seed(&dir, 2_000_000);
    ok(&dir, &["run"]);
    assert_eq!(current_files(&dir), written);
    assert_eq!(answer(&dir, Some(second)), before[2]);
}

#[test]
fn a_run_that_leaves_many_small_files_compacts_its_release() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path(), "compaction: {min_small_files: 4}\n");
    ok(&dir, &["run"]);
    let release = data_version(&dir);
    assert_eq!(current_files(&dir), 1);
    let runs = json(
        &dir,
        &["runs", "--product", "ops/shards", "--format", "json"],
    );
    assert_eq!(runs[0]["cause"], "optimize", "{runs}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    assert_eq!(runs[1]["cause"], "manual", "{runs}");
    assert_eq!(data_version(&dir), release);
    let n = answer(&dir, None);
    assert!(n.contains("120000,"), "{n}");

    // Fewer small files than the threshold: left as written.
    edit(
        &dir,
        "mesh.yaml",
        "min_small_files: 4",
        "min_small_files: 500",
    );
    seed(&dir, 5);
    ok(&dir, &["run"]);
    assert!(current_files(&dir) >= 6);
}

#[test]
fn a_bad_compaction_setting_is_refused_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let path = dir.join("mesh.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("compaction: {min_small_files: 1}\n");
    std::fs::write(path, text).unwrap();
    let err = common::fails(&dir, &["validate"]);
    assert!(
        err.contains("would rewrite a single file into itself"),
        "{err}"
    );
    assert!(err.contains("mesh.yaml:"), "{err}");
}

fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    common::command(dir)
        .args(args)
        .env("MESH_USER", USER)
        .env_remove("MESH_SERVER")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn compaction_beside_concurrent_runs_and_after_kills_keeps_every_release() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path(), "compaction: {auto: false}\n");
    ok(&dir, &["run"]);
    let expected = answer(&dir, None);

    // Runs and compactions race: a compaction either finds the product
    // free and compacts, or is refused because a run holds it.
    let mut children = Vec::new();
    for _ in 0..3 {
        children.push((false, spawn(&dir, &["run", "--force"])));
        children.push((true, spawn(&dir, &["optimize"])));
    }
    for (optimizing, child) in children {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || (optimizing && err.contains("is being run")),
            "optimize={optimizing}: {err}"
        );
    }
    let releases = json(
        &dir,
        &["catalog", "history", "ops/shards", "--format", "json"],
    );
    for r in releases.as_array().unwrap() {
        let v = r["outputs"][0]["data_version"]
            .as_i64()
            .unwrap_or_else(|| panic!("no version in {r}"));
        assert_eq!(answer(&dir, Some(v)), expected, "release {v}");
    }

    // A compaction killed at any point leaves a state the next command
    // finishes or undoes; the data never changes.
    for delay in [0u64, 50, 100, 150, 200, 300, 400, 500, 700, 900] {
        ok(&dir, &["run", "--force"]);
        let mut child = spawn(&dir, &["optimize", "ops/shards"]);
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        ok(&dir, &["optimize", "ops/shards"]);
        assert_eq!(answer(&dir, None), expected, "killed after {delay} ms");
        assert_eq!(current_files(&dir), 1, "killed after {delay} ms");
    }
    // Nothing is left running; the kills did stop compactions, which
    // the next command closed.
    let runs = json(
        &dir,
        &["runs", "--product", "ops/shards", "--format", "json"],
    );
    let runs = runs.as_array().unwrap();
    assert!(runs.iter().all(|r| r["status"] != "running"), "{runs:?}");
    let closed = runs
        .iter()
        .filter(|r| r["cause"] == "optimize")
        .filter(|r| {
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("the process stopped"))
        })
        .count();
    assert!(closed >= 1, "no kill landed during a compaction: {runs:?}");
    ok(&dir, &["vacuum"]);
    assert_eq!(answer(&dir, None), expected);
}

#[test]
fn the_scheduler_compacts_and_vacuums_in_its_maintenance_window() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(
        tmp.path(),
        "compaction: {auto: false}\nretention: {keep_releases: 1}\n",
    );
    let mut releases = Vec::new();
    for k in 0..3 {
        seed(&dir, k * 1_000_000);
        ok(&dir, &["run"]);
        releases.push(data_version(&dir));
    }
    let written = current_files(&dir);
    let expected = answer(&dir, None);
    assert_eq!(common::table_files(&table(&dir)).len() as u64, 3 * written);
    edit(
        &dir,
        "mesh.yaml",
        "compaction: {auto: false}",
        "compaction: {min_small_files: 2}\nscheduler: {tick: 100ms, maintenance: 1s}",
    );
    let mut scheduler = spawn(&dir, &["scheduler"]);
    // Bounded: the first window opens at the scheduler's first tick.
    let mut files = usize::MAX;
    for _ in 0..120 {
        files = common::table_files(&table(&dir)).len();
        if files == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    assert_eq!(files, 1, "compacted and vacuumed to one file");
    assert_eq!(answer(&dir, None), expected);
    assert_eq!(data_version(&dir), releases[2]);
    let runs = json(
        &dir,
        &["runs", "--product", "ops/shards", "--format", "json"],
    );
    assert_eq!(runs[0]["cause"], "optimize", "{runs}");
    let err = common::fails(
        &dir,
        &[
            "query",
            &format!("SELECT count(*) FROM ops.shards@{}", releases[0]),
        ],
    );
    assert!(err.contains("removed by retention"), "{err}");
}
