//! Table layout through the real binary: a clustered output's releases
//! are sorted and cut into files and row groups whose statistics prune a
//! selective predicate, as the plan's metrics show, and planning splits
//! a filter at its selective range (mesh-query's stages.rs).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{fails, init, ok};

const EVENTS: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: ops
name: events
version: 1.0.0
owner: ops@acme.example
description:
  purpose: Numbered events, for layout tests.
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
    SELECT CAST(((g.value * 7919) % 600000) AS BIGINT) AS id,
           concat('event-', CAST(g.value AS VARCHAR), '-', repeat('x', 24)) AS label
    FROM seed CROSS JOIN generate_series(1, 600000) AS g
outputs:
  - name: events
    cluster_by: [id]
    target_file_size: 2MiB
    columns:
      - {name: id, type: bigint, nullable: false, description: Event number}
      - {name: label, type: string, description: Event label}
"#;

fn project(tmp: &Path, events: &str) -> std::path::PathBuf {
    let dir = init(tmp);
    let product = dir.join("ops/events");
    std::fs::create_dir_all(product.join("data")).unwrap();
    std::fs::write(product.join("product.yaml"), events).unwrap();
    std::fs::write(product.join("data/seed.csv"), "k\n1\n").unwrap();
    dir
}

/// `(total, matched)` of a pruning metric in EXPLAIN ANALYZE's text:
/// `name=9 total → 1 matched`.
fn pruning(plan: &str, name: &str) -> (u64, u64) {
    let rest = plan
        .split(&format!("{name}="))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {plan}"));
    let numbers: Vec<u64> = rest
        .split(',')
        .next()
        .unwrap()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn a_clustered_output_is_sorted_and_its_statistics_prune_a_selective_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path(), EVENTS);
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let files = common::table_files(&dir.join(".mesh/tables/ops/events/events"));
    assert!(files.len() >= 3, "{files:?}");

    let sql = "SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM ops.events WHERE id BETWEEN 1000 AND 1999";
    let answer = ok(&dir, &["query", sql, "--format", "csv"]);
    assert_eq!(answer, "n,lo,hi\n1000,1000,1999\n");
    let plan = ok(
        &dir,
        &[
            "query",
            &format!("EXPLAIN ANALYZE {sql}"),
            "--format",
            "csv",
        ],
    );
    // Files cover disjoint ranges of `id`: one is read of all of them;
    // within it, the page index skips most pages.
    let (files_total, files_read) = pruning(&plan, "files_ranges_pruned_statistics");
    assert!(files_total >= 3, "{plan}");
    assert_eq!(files_read, 1, "{plan}");
    let (pages_total, pages_read) = pruning(&plan, "page_index_pages_pruned");
    assert!(pages_read * 2 < pages_total, "{plan}");

    // Planning reads the statistics too: the selective range runs as a
    // filter stage of its own, and the string test only on what it kept.
    let staged = "SELECT count(*) AS n FROM ops.events \
        WHERE id BETWEEN 1000 AND 1999 AND label LIKE 'event-1%'";
    let plan = ok(
        &dir,
        &["query", &format!("EXPLAIN {staged}"), "--format", "csv"],
    );
    let filters: Vec<&str> = plan.lines().filter(|l| l.contains("FilterExec")).collect();
    assert_eq!(filters.len(), 2, "{plan}");
    assert!(
        filters[0].contains("label@") && !filters[0].contains("id@"),
        "{plan}"
    );
    assert!(
        filters[1].contains(">= 1000 AND id@") && !filters[1].contains("LIKE"),
        "{plan}"
    );
    let n = (1..=600_000u64)
        .filter(|g| (1000..=1999).contains(&(g * 7919 % 600_000)) && g.to_string().starts_with('1'))
        .count();
    let answer = ok(&dir, &["query", staged, "--format", "csv"]);
    assert_eq!(answer, format!("n\n{n}\n"));
}

#[test]
fn a_layout_on_an_unknown_or_unordered_column_is_refused_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(
        tmp.path(),
        &EVENTS.replace("cluster_by: [id]", "cluster_by: [idd]"),
    );
    let err = fails(&dir, &["validate"]);
    assert!(err.contains("idd"), "{err}");
    assert!(err.contains("did you mean `id`?"), "{err}");
    assert!(err.contains("ops/events/product.yaml:"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(
        tmp.path(),
        &EVENTS.replace("target_file_size: 2MiB", "target_file_size: 10KB"),
    );
    let err = fails(&dir, &["validate"]);
    assert!(
        err.contains("target_file_size `10KB` is below 1MiB"),
        "{err}"
    );
}
