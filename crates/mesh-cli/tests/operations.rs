//! Operations end to end through the real binary: runs that skip what is
//! up to date, schedules (validated, fired by the scheduler), leases
//! between processes, and run observability.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{edit, fails, init, json, ok};
use serde_json::Value;

/// A consumer of `example/greetings` in `example/counts`.
fn add_counts(dir: &Path, schedule: &str) {
    let consumer = dir.join("example/counts");
    std::fs::create_dir_all(&consumer).unwrap();
    std::fs::write(
        consumer.join("product.yaml"),
        format!(
            "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: example\nname: counts\nversion: 1.0.0\nowner: t@x\n\
             inputs:\n  - {{name: g, product: example/greetings}}\n\
             transform: {{query: \"SELECT language, count(*) AS n FROM g GROUP BY language\"}}\n\
             outputs:\n  - name: counts\n    columns:\n      - {{name: language, type: string, description: Language}}\n      - {{name: n, type: bigint, nullable: false, description: Greetings}}\n\
             description: {{purpose: Greetings per language.}}\nslo: {{freshness: 1d}}\n{schedule}"
        ),
    )
    .unwrap();
}

/// The status of each product's run in `mesh run --format json` output.
fn statuses(runs: &Value) -> Vec<(String, String)> {
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["product"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn run(dir: &Path, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["run", "--format", "json"];
    all.extend_from_slice(args);
    statuses(&json(dir, &all))
}

fn pair(p: &str, s: &str) -> (String, String) {
    (p.to_string(), s.to_string())
}

/// Data versions of an output, newest first.
fn versions(dir: &Path, product: &str) -> usize {
    json(dir, &["catalog", "history", product, "--format", "json"])
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn unchanged_runs_are_up_to_date_and_any_change_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    add_counts(&dir, "");
    ok(&dir, &["deploy"]);
    let built = [
        pair("example/greetings", "succeeded"),
        pair("example/counts", "succeeded"),
    ];
    assert_eq!(run(&dir, &[]), built);
    // Nothing changed: nothing is published, and the run says why.
    let unchanged = [
        pair("example/greetings", "up-to-date"),
        pair("example/counts", "up-to-date"),
    ];
    assert_eq!(run(&dir, &[]), unchanged);
    assert_eq!(versions(&dir, "example/greetings"), 1);
    assert_eq!(versions(&dir, "example/counts"), 1);
    let table = ok(&dir, &["runs", "--limit", "1"]);
    assert!(table.contains("nothing it reads changed"), "{table}");

    // A changed source file runs the product, and its new data version
    // runs the consumer.
    std::fs::write(
        dir.join("example/greetings/data/greetings.csv"),
        "id,language,text\n1,en,Hello\n2,fr,Salut\n",
    )
    .unwrap();
    assert_eq!(run(&dir, &[]), built);
    assert_eq!(versions(&dir, "example/greetings"), 2);

    // Changed SQL runs that product only.
    edit(
        &dir,
        "example/counts/product.yaml",
        "count(*) AS n",
        "count(id) AS n",
    );
    ok(&dir, &["deploy"]);
    assert_eq!(
        run(&dir, &[]),
        [
            pair("example/greetings", "up-to-date"),
            pair("example/counts", "succeeded"),
        ]
    );
    // `--force` publishes anyway; `--backfill` too, recorded as such.
    assert_eq!(
        run(&dir, &["--force", "example/greetings"]),
        [built[0].clone()]
    );
    let backfill = json(
        &dir,
        &["run", "--backfill", "example/greetings", "--format", "json"],
    );
    assert_eq!(backfill[0]["cause"], "backfill");
    assert_eq!(backfill[0]["status"], "succeeded");
    assert_eq!(versions(&dir, "example/greetings"), 4);

    // Filters and one run's timeline.
    let failed = json(
        &dir,
        &[
            "runs",
            "--status",
            "up-to-date",
            "--product",
            "example/counts",
            "--format",
            "json",
        ],
    );
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    let err = fails(&dir, &["runs", "--status", "sideways"]);
    assert!(err.contains("`sideways` is not a run status"), "{err}");
    let id = backfill[0]["id"].as_str().unwrap();
    let shown = ok(&dir, &["runs", "show", id]);
    for step in ["read", "transform", "checks", "commit"] {
        assert!(shown.contains(step), "{shown}");
    }
    assert!(shown.contains("cause     backfill (attempt 1)"), "{shown}");
    let err = fails(
        &dir,
        &["runs", "show", "01a00000-0000-7000-8000-000000000000"],
    );
    assert!(
        err.contains("run `01a00000-0000-7000-8000-000000000000` does not exist"),
        "{err}"
    );
}

#[test]
fn failed_runs_say_why_in_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    std::fs::write(
        dir.join("example/greetings/data/greetings.csv"),
        "id,language,text\n1,xx,Hello\n",
    )
    .unwrap();
    common::mesh(&dir, &["run"]);
    let table = ok(&dir, &["runs", "--status", "failed"]);
    assert!(table.contains("blocking quality checks failed"), "{table}");
}

#[test]
fn cron_patterns_and_time_zones_are_validated_where_they_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let file = "example/greetings/product.yaml";
    edit(
        &dir,
        file,
        "slo: {freshness: 7d}",
        "slo: {freshness: 7d}\nschedule:\n  cron: \"0 25 * * *\"\n  timezone: Mars/Olympus\n",
    );
    let err = fails(&dir, &["validate"]);
    assert!(err.contains("`0 25 * * *` is not a cron pattern"), "{err}");
    assert!(err.contains("product.yaml:38:9"), "{err}");
    assert!(err.contains("`Mars/Olympus` is not a time zone"), "{err}");
    assert!(err.contains("product.yaml:39:13"), "{err}");
    edit(&dir, file, "0 25 * * *", "30 2 * * *");
    edit(&dir, file, "Mars/Olympus", "Europe/Berlin");
    ok(&dir, &["validate"]);
}
