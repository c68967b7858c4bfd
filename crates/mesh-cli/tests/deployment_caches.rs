//! What the catalog keeps per deployment generation (parsed descriptors,
//! the lineage graph): the first process stores it, later processes
//! answer from it exactly as they would by deriving it again, and a
//! damaged or foreign entry is derived again rather than trusted.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::contacts::*;
use common::ok;

/// Runs `sql` on the project's catalog with Python's sqlite3; the rows
/// printed one per line, fields joined by `|`.
fn catalog_sql(dir: &Path, sql: &str) -> String {
    let script = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for row in db.execute(sys.argv[2]):
    print("|".join(str(v) for v in row))
db.commit()
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            dir.join(".mesh/catalog.db").to_str().unwrap(),
            sql,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

const ASKS: [&[&str]; 4] = [
    &["lineage", "ops/contacts", "--format", "json"],
    &[
        "lineage",
        "hr/employees",
        "--downstream",
        "--format",
        "json",
    ],
    &["catalog", "show", "hr/employees", "--format", "json"],
    &["catalog", "show", "ops/contacts", "--format", "json"],
];

/// An answer without what moves with the clock (a release's age).
fn steady(text: String) -> String {
    text.lines()
        .filter(|l| !l.contains("\"age_seconds\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn answers(dir: &Path) -> Vec<String> {
    let mut all: Vec<String> = ASKS.iter().map(|a| steady(ok(dir, a))).collect();
    all.push(contacts(dir));
    all
}

fn assert_same(got: &[String], want: &[String]) {
    for ((g, w), ask) in got.iter().zip(want).zip(ASKS.iter().map(|a| a.join(" "))) {
        assert_eq!(g, w, "{ask}");
    }
}

#[test]
fn what_the_catalog_keeps_per_generation_answers_as_deriving_it_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);

    // Derived by each process: nothing kept before it asks.
    let derived: Vec<String> = ASKS
        .iter()
        .map(|a| {
            catalog_sql(&dir, "DELETE FROM deployment_caches");
            steady(ok(&dir, a))
        })
        .chain([contacts(&dir)])
        .collect();
    assert!(derived[0].contains("sample_contact"), "{}", derived[0]);

    // The last process kept both, for the generation it read.
    let generation = catalog_sql(&dir, "SELECT n FROM deployment_generation");
    let kept = catalog_sql(
        &dir,
        "SELECT kind, generation FROM deployment_caches ORDER BY kind",
    );
    let g = generation.trim();
    assert_eq!(kept, format!("descriptors|{g}\nlineage-graph|{g}\n"));

    // Later processes answer from them, the same.
    assert_same(&answers(&dir), &derived);

    // Damaged, or written by another release: derived again, and kept
    // again only for a format this release reads.
    catalog_sql(&dir, "UPDATE deployment_caches SET content = x'00ff00ff'");
    assert_same(&answers(&dir), &derived);
    catalog_sql(
        &dir,
        "UPDATE deployment_caches SET format = 'another release'",
    );
    assert_same(&answers(&dir), &derived);
    let formats = catalog_sql(
        &dir,
        "SELECT count(*) FROM deployment_caches WHERE format <> 'another release'",
    );
    assert_eq!(formats.trim(), "2");

    // A deploy moves the generation: older entries are dropped as new
    // ones are kept, and answers follow the new definition.
    let contacts_yaml = "ops/contacts/product.yaml";
    common::edit(&dir, contacts_yaml, "version: 1.0.0", "version: 1.1.0");
    common::edit(
        &dir,
        contacts_yaml,
        "count(email) AS staff",
        "count(email) AS staff, max(id) AS newest",
    );
    common::edit(
        &dir,
        contacts_yaml,
        "description: Head count}",
        "description: Head count}\n      - {name: newest, type: bigint, description: Newest id}",
    );
    ok(&dir, &["deploy"]);
    let after = ok(&dir, ASKS[0]);
    assert!(after.contains("ops.contacts.newest"), "{after}");
    let generations = catalog_sql(
        &dir,
        "SELECT DISTINCT generation FROM deployment_caches WHERE kind = 'lineage-graph'",
    );
    assert_eq!(generations.lines().count(), 1, "{generations}");
    assert_ne!(generations.trim(), g);
}
