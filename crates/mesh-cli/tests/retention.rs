//! Retention and `mesh vacuum` through the real binary: expired versions
//! lose their files and are refused by time travel with the rule; kept
//! versions answer exactly as before.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::contacts::*;
use common::{edit, fails, json, ok};

fn count_at(dir: &Path, version: i64) -> String {
    ok(
        dir,
        &[
            "query",
            &format!("SELECT count(*) AS n, min(email) AS first FROM hr.employees@{version}"),
            "--format",
            "csv",
        ],
    )
}

fn files_under(dir: &Path) -> usize {
    common::table_files(&dir.join(".mesh/tables/hr/employees/employees")).len()
}

#[test]
fn vacuum_expires_what_retention_does_not_keep_and_kept_versions_answer_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    retain_employees(&dir, "{keep_releases: 2}");
    ok(&dir, &["deploy"]);
    let csv = dir.join("hr/employees/data/employees.csv");
    let mut versions = Vec::new();
    for i in 0..4 {
        let mut text = std::fs::read_to_string(&csv).unwrap();
        text.push_str(&format!("{},new{i}@acme.example,ops\n", 10 + i));
        std::fs::write(&csv, text).unwrap();
        ok(&dir, &["run", "hr/employees"]);
        let show = json(
            &dir,
            &["catalog", "show", "hr/employees", "--format", "json"],
        );
        versions.push(show["outputs"][0]["data_version"].as_i64().unwrap());
    }
    let before: Vec<String> = versions.iter().map(|v| count_at(&dir, *v)).collect();
    let files = files_under(&dir);

    // A dry run says what would go, and changes nothing.
    let plan = json(
        &dir,
        &["vacuum", "hr/employees", "--dry-run", "--format", "json"],
    );
    let o = &plan[0];
    assert_eq!(o["output"], "hr.employees");
    assert_eq!(o["retention"], "{keep_releases: 2}");
    assert_eq!(o["kept"], serde_json::json!([versions[3], versions[2]]));
    assert_eq!(o["expired"], serde_json::json!([versions[1], versions[0]]));
    assert_eq!(o["files_removed"], 2, "{plan}");
    assert!(o["bytes_freed"].as_u64().unwrap() > 0, "{plan}");
    assert_eq!(files_under(&dir), files);
    assert_eq!(count_at(&dir, versions[0]), before[0]);

    let done = json(&dir, &["vacuum", "hr/employees", "--format", "json"]);
    assert_eq!(done[0]["expired"], o["expired"]);
    assert_eq!(done[0]["bytes_freed"], o["bytes_freed"]);
    assert_eq!(files_under(&dir), files - 2);
    // Kept versions answer exactly as before.
    assert_eq!(count_at(&dir, versions[3]), before[3]);
    assert_eq!(count_at(&dir, versions[2]), before[2]);
    // An expired one is refused with the rule, never read as empty.
    let err = fails(
        &dir,
        &[
            "query",
            &format!("SELECT count(*) FROM hr.employees@{}", versions[0]),
        ],
    );
    assert!(
        err.contains("removed by retention ({keep_releases: 2})"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "readable versions: {}, {}",
            versions[2], versions[3]
        )),
        "{err}"
    );
    // Nothing more to do: a second vacuum removes nothing.
    let again = json(&dir, &["vacuum", "--format", "json"]);
    let employees = again
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["output"] == "hr.employees")
        .unwrap();
    assert_eq!(employees["files_removed"], 0, "{again}");
    assert_eq!(employees["expired"], serde_json::json!([]));

    // The catalog page says what is stored and what retention keeps.
    let show = json(
        &dir,
        &["catalog", "show", "hr/employees", "--format", "json"],
    );
    let storage = &show["outputs"][0]["storage"];
    let newest = serde_json::json!([versions[3], versions[2]]);
    assert_eq!(storage["files"], 2, "{storage}");
    assert_eq!(storage["bytes"], employees["bytes_after"], "{storage}");
    assert!(storage["current_bytes"].as_u64().unwrap() > 0, "{storage}");
    assert!(storage["current_bytes"].as_u64() < storage["bytes"].as_u64());
    assert_eq!(storage["retention"], "{keep_releases: 2}");
    assert_eq!(storage["readable_versions"], newest);
    assert_eq!(storage["kept_by_retention"], newest);
    let page = ok(&dir, &["catalog", "show", "hr/employees"]);
    assert!(
        page.contains(&format!(
            "retention {{keep_releases: 2}} keeps versions [{}, {}]",
            versions[3], versions[2]
        )),
        "{page}"
    );
}

#[test]
fn a_retention_that_keeps_nothing_is_refused_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    retain_employees(&dir, "{keep_releases: 0}");
    let err = fails(&dir, &["validate"]);
    assert!(
        err.contains("retention.keep_releases must be at least 1"),
        "{err}"
    );
    assert!(err.contains("hr/employees/product.yaml:"), "{err}");
}

/// Appends one employee to the CSV, so the next run publishes new data.
fn hire(dir: &Path, i: usize) {
    let csv = dir.join("hr/employees/data/employees.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str(&format!("{},hire{i}@acme.example,ops\n", 100 + i));
    std::fs::write(&csv, text).unwrap();
}

#[test]
fn vacuum_never_removes_what_an_older_major_or_its_consumer_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    let employees = "hr/employees/product.yaml";
    retain_employees(&dir, "{keep_releases: 1}");
    ok(&dir, &["deploy"]);
    for i in 0..3 {
        hire(&dir, i);
        ok(&dir, &["run"]);
    }
    // Major 2; ops/contacts still requires ^1 and reads the line.
    edit(&dir, employees, "version: 1.0.0", "version: 2.0.0");
    edit(
        &dir,
        employees,
        "description: Department}",
        "description: Department code}",
    );
    ok(&dir, &["deploy"]);
    let line = "SELECT count(*) AS n FROM hr.employees_v1";
    let contacts_before = contacts(&dir);
    let line_before = ok(&dir, &["query", line, "--format", "csv"]);
    for i in 3..5 {
        hire(&dir, i);
        ok(&dir, &["run", "hr/employees"]);
    }

    let report = json(&dir, &["vacuum", "--format", "json"]);
    let row = |name: &str| {
        report
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["output"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {report}"))
            .clone()
    };
    // The line keeps its current version, expires its older ones.
    let v1 = row("hr.employees_v1");
    assert_eq!(v1["kept"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(v1["expired"].as_array().unwrap().len(), 2, "{report}");
    let head = row("hr.employees");
    assert_eq!(head["kept"].as_array().unwrap().len(), 1, "{report}");
    // What the line serves, and its consumer's next run, are unchanged.
    assert_eq!(ok(&dir, &["query", line, "--format", "csv"]), line_before);
    ok(&dir, &["run", "ops/contacts", "--force"]);
    assert_eq!(contacts(&dir), contacts_before);
    assert!(
        ok(
            &dir,
            &[
                "query",
                "SELECT count(*) AS n FROM hr.employees",
                "--format",
                "csv"
            ]
        )
        .contains("\n8\n")
    );
}

#[test]
fn vacuum_beside_concurrent_runs_leaves_every_kept_version_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    retain_employees(&dir, "{keep_releases: 2}");
    ok(&dir, &["deploy"]);
    ok(&dir, &["run", "hr/employees"]);
    let runner = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            for _ in 0..6 {
                ok(&dir, &["run", "hr/employees", "--force"]);
            }
        })
    };
    for _ in 0..6 {
        ok(&dir, &["vacuum", "hr/employees"]);
    }
    runner.join().unwrap();
    // Whatever interleaving happened, every version retention keeps reads
    // in full, and a last vacuum leaves exactly the two newest.
    let plan = json(
        &dir,
        &["vacuum", "hr/employees", "--dry-run", "--format", "json"],
    );
    for v in plan[0]["kept"].as_array().unwrap() {
        let n = ok(
            &dir,
            &[
                "query",
                &format!("SELECT count(*) AS n FROM hr.employees@{v}"),
                "--format",
                "csv",
            ],
        );
        assert_eq!(n, "n\n3\n", "version {v}");
    }
    let done = json(&dir, &["vacuum", "hr/employees", "--format", "json"]);
    assert_eq!(done[0]["kept"].as_array().unwrap().len(), 2, "{done}");
    let expired = json(&dir, &["vacuum", "hr/employees", "--format", "json"]);
    assert_eq!(expired[0]["files_removed"], 0, "{expired}");
    assert_eq!(
        files_under(&dir),
        2,
        "only the two kept versions' files remain"
    );
}
