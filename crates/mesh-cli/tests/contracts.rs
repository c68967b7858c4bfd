//! The contract gate end to end: `mesh plan` and `mesh deploy` on a
//! project where `example/counts` reads only `language` of
//! `example/greetings` (id, language, text).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{edit, fails, init, json, ok};
use serde_json::Value;

const COUNTS: &str = "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: example\nname: counts\nversion: 1.0.0\nowner: t@x\n\
inputs:\n  - {name: g, product: example/greetings, version: ^1}\n\
transform: {query: \"SELECT language, count(*) AS n FROM g GROUP BY language\"}\n\
outputs:\n  - name: counts\n    columns:\n      - {name: language, type: string, description: The language}\n      - {name: n, type: bigint, nullable: false, description: The n}\n\
description: {purpose: A test product.}\nslo: {freshness: 1d}\n";

fn project(tmp: &Path) -> PathBuf {
    let dir = init(tmp);
    let counts = dir.join("example/counts");
    std::fs::create_dir_all(&counts).unwrap();
    std::fs::write(counts.join("product.yaml"), COUNTS).unwrap();
    ok(&dir, &["deploy"]);
    dir
}

/// Drops the `text` column of greetings (its SQL and its contract).
fn drop_text(dir: &Path) {
    edit(
        dir,
        "example/greetings/transform.sql",
        "SELECT id, language, text",
        "SELECT id, language",
    );
    edit(
        dir,
        "example/greetings/product.yaml",
        "      - {name: text, type: string, description: The greeting}\n",
        "",
    );
    edit(
        dir,
        "example/greetings/product.yaml",
        "      - {check: not_null, column: text}\n",
        "",
    );
}

/// Drops the `language` column of greetings (its SQL, contract and check).
fn drop_language(dir: &Path) {
    edit(
        dir,
        "example/greetings/transform.sql",
        "SELECT id, language, text",
        "SELECT id, text",
    );
    edit(
        dir,
        "example/greetings/product.yaml",
        "      - {name: language, type: string, description: ISO 639-1 code}\n",
        "",
    );
    edit(
        dir,
        "example/greetings/product.yaml",
        "      - {check: accepted_values, column: language, values: [en, fr, de, es]}\n",
        "",
    );
}

fn greetings_plan(dir: &Path) -> Value {
    let plans = json(dir, &["plan", "--format", "json"]);
    plans
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["product"] == "example/greetings")
        .unwrap()
        .clone()
}

fn change<'a>(plan: &'a Value, code: &str) -> &'a Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["change"] == code)
        .unwrap_or_else(|| panic!("no {code} in {plan:#}"))
}

#[test]
fn dropping_a_column_no_consumer_reads_breaks_nobody() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    drop_text(&dir);
    let plan = greetings_plan(&dir);
    assert_eq!(plan["grade"], "breaking");
    let removed = change(&plan, "column_removed");
    assert_eq!(removed["column"], "text");
    assert_eq!(removed["unused"], true, "counts reads only `language`");
    assert!(removed.get("breaks").is_none());
    // The table form says the same.
    let text = ok(&dir, &["plan"]);
    assert!(text.contains("column `text` removed"), "{text}");
    assert!(text.contains("read by no consumer"), "{text}");
}

#[test]
fn a_breaking_change_names_the_consumer_output_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    edit(
        &dir,
        "example/greetings/product.yaml",
        "values: [en, fr, de, es]",
        "values: [en, fr, de, es, it]",
    );
    let plan = greetings_plan(&dir);
    let loosened = change(&plan, "check_loosened");
    assert_eq!(loosened["grade"], "breaking");
    assert_eq!(
        loosened["breaks"],
        serde_json::json!([{
            "consumer": "example/counts",
            "consumer_output": "counts",
            "input": "g",
            "column": "language"
        }])
    );
    assert_eq!(
        plan["version_error"]
            .as_str()
            .map(|e| e.contains("next major is 2.0.0")),
        Some(true)
    );
}

#[test]
fn deploy_refuses_breaking_changes_without_a_major_bump() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let before = json(
        &dir,
        &["catalog", "show", "example/greetings", "--format", "json"],
    );
    drop_text(&dir);
    edit(
        &dir,
        "example/greetings/product.yaml",
        "values: [en, fr, de, es]",
        "values: [en, fr, de, es, it]",
    );
    let err = fails(&dir, &["deploy"]);
    assert!(
        err.contains("the contract gate refused the deploy"),
        "{err}"
    );
    assert!(err.contains("next major is 2.0.0"), "{err}");
    assert!(
        err.contains("column `text` removed (read by no consumer)"),
        "{err}"
    );
    assert!(err.contains("breaks example/counts:counts"), "{err}");
    assert!(err.contains("--allow-breaking"), "{err}");
    let after = json(
        &dir,
        &["catalog", "show", "example/greetings", "--format", "json"],
    );
    assert_eq!(
        before["outputs"], after["outputs"],
        "a refused deploy changes nothing"
    );
    assert_eq!(before["deployed_at"], after["deployed_at"]);

    // A new major goes through; major 1 stays alive for counts (^1).
    edit(
        &dir,
        "example/greetings/product.yaml",
        "version: 1.0.0",
        "version: 2.0.0",
    );
    let out = ok(&dir, &["deploy"]);
    assert!(out.contains("created   example/greetings_v1"), "{out}");
    let show = json(
        &dir,
        &["catalog", "show", "example/greetings", "--format", "json"],
    );
    assert_eq!(show["version"], "2.0.0");
    assert!(show["contract_overrides"].as_array().unwrap().is_empty());
}

#[test]
fn allow_breaking_records_who_overrode_the_gate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    edit(
        &dir,
        "example/greetings/product.yaml",
        "values: [en, fr, de, es]",
        "values: [en, fr, de, es, it]",
    );
    let out = common::command(&dir)
        .args(["deploy", "--allow-breaking"])
        .env("MESH_USER", "ada")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("override  example/greetings"));
    let show = json(
        &dir,
        &["catalog", "show", "example/greetings", "--format", "json"],
    );
    let o = &show["contract_overrides"][0];
    assert_eq!(o["by"], "ada");
    assert_eq!(o["from_version"], "1.0.0");
    assert_eq!(o["consumers"], serde_json::json!(["example/counts:counts"]));
    assert!(o["at"].is_string());
    assert!(
        o["changes"][0]
            .as_str()
            .unwrap()
            .contains("accepted_values_language")
    );
}

#[test]
fn versions_never_go_backwards() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    edit(&dir, "example/counts/product.yaml", ", version: ^1}", "}");
    edit(
        &dir,
        "example/greetings/product.yaml",
        "version: 1.0.0",
        "version: 0.9.0",
    );
    for args in [&["deploy"][..], &["deploy", "--allow-breaking"]] {
        let err = fails(&dir, args);
        assert!(
            err.contains("version 0.9.0 goes backwards from the deployed 1.0.0"),
            "{err}"
        );
        assert!(err.contains("can only go forwards"), "{err}");
    }
}

#[test]
fn a_malformed_version_points_at_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    edit(
        &dir,
        "example/greetings/product.yaml",
        "version: 1.0.0",
        "version: 1.0",
    );
    for args in [&["validate"][..], &["plan"], &["deploy"]] {
        let err = fails(&dir, args);
        assert!(err.contains("product.yaml:"), "{err}");
        assert!(err.contains("`1.0` is not a semantic version"), "{err}");
        assert!(err.to_lowercase().contains("version"), "{err}");
    }
}

#[test]
fn plan_still_shows_whom_a_change_breaks_when_the_consumer_no_longer_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    // Drop `language`, which counts reads; counts itself is not updated.
    drop_language(&dir);
    let out = common::mesh(&dir, &["plan", "--format", "json"]);
    assert!(!out.status.success(), "the consumer's SQL no longer plans");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("example/counts") || err.contains("counts/product.yaml"),
        "{err}"
    );
    let plans: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = plans
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["product"] == "example/greetings")
        .unwrap();
    let removed = change(plan, "column_removed");
    assert_eq!(removed["column"], "language");
    assert_eq!(removed["breaks"][0]["consumer"], "example/counts");
}

#[test]
fn odcs_export_and_import_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let file = tmp.path().join("greetings.odcs.yaml");
    ok(
        &dir,
        &[
            "contract",
            "export",
            "example/greetings",
            "--format",
            "odcs",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("apiVersion: v3.1.0"), "{text}");
    assert!(text.contains("kind: DataContract"), "{text}");
    let skeleton = ok(&dir, &["contract", "import", file.to_str().unwrap()]);
    assert!(skeleton.contains("domain: example"), "{skeleton}");
    assert!(skeleton.contains("primary_key: [id]"), "{skeleton}");
    assert!(
        skeleton.contains(
            "{check: accepted_values, column: language, values: [\"en\", \"fr\", \"de\", \"es\"]"
        ),
        "{skeleton}"
    );
    // --out never overwrites.
    let out = tmp.path().join("product.yaml");
    std::fs::write(&out, "keep me").unwrap();
    let err = fails(
        &dir,
        &[
            "contract",
            "import",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
}

#[test]
fn an_odcs_file_that_breaks_the_schema_points_inside_the_document() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.odcs.yaml");
    std::fs::write(
        &file,
        "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: integer\n        required: maybe\n",
    )
    .unwrap();
    let err = fails(tmp.path(), &["contract", "import", file.to_str().unwrap()]);
    assert!(err.contains("/schema/0/properties/0/required"), "{err}");
    assert!(err.contains("bad.odcs.yaml:11:19"), "{err}");
}

#[test]
fn a_version_range_no_version_satisfies_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    edit(
        &dir,
        "example/counts/product.yaml",
        "version: ^1}",
        "version: ^2}",
    );
    let err = fails(&dir, &["validate"]);
    assert!(
        err.contains("input `g` requires `example/greetings` ^2, but its version is 1.0.0"),
        "{err}"
    );
    assert!(err.contains("counts/product.yaml:8:52"), "{err}");
}

#[test]
fn deprecated_products_warn_their_consumers_and_refuse_new_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    edit(
        &dir,
        "example/greetings/product.yaml",
        "status: active ",
        "status: deprecated\nsunset: 2027-03-31 ",
    );
    let out = common::mesh(&dir, &["validate"]);
    assert!(
        out.status.success(),
        "a deprecation warns, it does not fail"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "reads `example/greetings`, which is deprecated and will be retired on 2027-03-31"
        ),
        "{err}"
    );
    ok(&dir, &["deploy"]);

    // A consumer that did not read it before may not start now.
    let more = dir.join("example/more");
    std::fs::create_dir_all(&more).unwrap();
    std::fs::write(
        more.join("product.yaml"),
        COUNTS
            .replace("name: counts", "name: more")
            .replace("- name: counts", "- name: more"),
    )
    .unwrap();
    let err = fails(&dir, &["deploy"]);
    assert!(
        err.contains("`example/more` would start reading `example/greetings`, which is deprecated"),
        "{err}"
    );
    assert!(
        json(&dir, &["catalog", "list", "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "more"),
        "the refused deploy wrote nothing"
    );
}

#[test]
fn reading_a_retired_product_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    edit(
        &dir,
        "example/greetings/product.yaml",
        "status: active ",
        "status: retired ",
    );
    let err = fails(&dir, &["validate"]);
    assert!(
        err.contains("input `g` reads `example/greetings`, which is retired and no longer served"),
        "{err}"
    );
}

#[test]
fn catalog_show_usage_lists_the_readers_of_each_column() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let usage = json(
        &dir,
        &[
            "catalog",
            "show",
            "example/greetings",
            "--usage",
            "--format",
            "json",
        ],
    );
    let readers: Vec<(String, Vec<String>)> = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["column"].as_str().unwrap().to_string(),
                r["read_by"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        readers,
        [
            ("id".to_string(), vec![]),
            (
                "language".to_string(),
                vec!["example/counts:counts".to_string()]
            ),
            ("text".to_string(), vec![]),
        ]
    );
    assert!(
        ok(&dir, &["catalog", "show", "example/greetings", "--usage"])
            .contains("(no consumer reads it)")
    );
}

#[test]
fn queries_warn_on_deprecated_products_and_refuse_retired_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    ok(&dir, &["run"]);
    edit(
        &dir,
        "example/greetings/product.yaml",
        "status: active ",
        "status: deprecated ",
    );
    ok(&dir, &["deploy"]);
    let out = common::mesh(
        &dir,
        &["query", "SELECT count(*) AS n FROM example.greetings"],
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "warning: `example.greetings` belongs to `example/greetings`, which is deprecated"
        ),
        "{err}"
    );

    // Retiring it is breaking (counts still reads it), so it takes an
    // override; then it is no longer served.
    edit(
        &dir,
        "example/greetings/product.yaml",
        "status: deprecated ",
        "status: retired ",
    );
    let err = fails(&dir, &["deploy"]);
    assert!(
        err.contains("input `g` reads `example/greetings`, which is retired"),
        "{err}"
    );
    std::fs::remove_dir_all(dir.join("example/counts")).unwrap();
    let err = fails(&dir, &["deploy"]);
    assert!(
        err.contains("status deprecated → retired (breaks example/counts:counts)"),
        "{err}"
    );
    ok(&dir, &["deploy", "--allow-breaking"]);
    let err = fails(&dir, &["query", "SELECT * FROM example.greetings"]);
    assert!(
        err.contains("`example.greetings` belongs to `example/greetings`, which is retired and no longer served"),
        "{err}"
    );
    let err = fails(
        &dir,
        &[
            "query",
            "SELECT * FROM \"mesh://example/greetings/greetings\"",
        ],
    );
    assert!(err.contains("retired"), "{err}");
    let tables = json(
        &dir,
        &[
            "query",
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'example'",
            "--format",
            "json",
        ],
    );
    assert!(
        tables
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["table_name"] != "greetings"),
        "retired outputs are not listed: {tables}"
    );
}

#[test]
fn a_new_major_lives_next_to_the_old_one_for_pinned_consumers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    ok(&dir, &["run"]);
    // 2.0.0 drops `language`, which counts (pinned ^1) reads.
    edit(
        &dir,
        "example/greetings/product.yaml",
        "version: 1.0.0",
        "version: 2.0.0",
    );
    drop_language(&dir);
    // counts keeps reading major 1, so nothing it reads breaks.
    let plan = greetings_plan(&dir);
    assert_eq!(change(&plan, "column_removed")["unused"], true);
    assert_eq!(plan["keeps_alive"], "example/greetings_v1");
    let out = ok(&dir, &["deploy"]);
    assert!(out.contains("created   example/greetings_v1"), "{out}");
    ok(&dir, &["run"]);

    // Both majors are queryable: the latest as greetings, major 1 pinned.
    let v2 = json(
        &dir,
        &[
            "query",
            "SELECT * FROM example.greetings ORDER BY id",
            "--format",
            "json",
        ],
    );
    assert!(v2[0].get("language").is_none(), "{v2}");
    assert_eq!(v2.as_array().unwrap().len(), 4);
    let v1 = json(
        &dir,
        &[
            "query",
            "SELECT * FROM example.greetings_v1 ORDER BY id",
            "--format",
            "json",
        ],
    );
    assert_eq!(v1[0]["language"], "en");
    // Major 1 has releases of its own.
    let history = json(
        &dir,
        &[
            "catalog",
            "history",
            "example/greetings_v1",
            "--format",
            "json",
        ],
    );
    assert!(!history.as_array().unwrap().is_empty());
    // counts was rebuilt from major 1.
    let counts = json(
        &dir,
        &[
            "query",
            "SELECT count(*) AS n FROM example.counts",
            "--format",
            "json",
        ],
    );
    assert_eq!(counts[0]["n"], 4);
    let show = json(
        &dir,
        &["catalog", "show", "example/greetings", "--format", "json"],
    );
    assert_eq!(show["older_majors"][0]["product"], "example/greetings_v1");
    assert_eq!(
        show["older_majors"][0]["consumers"],
        serde_json::json!(["example/counts"])
    );
    let line = json(
        &dir,
        &[
            "catalog",
            "show",
            "example/greetings_v1",
            "--format",
            "json",
        ],
    );
    assert_eq!(line["major_of"], "example/greetings");
    assert_eq!(line["version"], "1.0.0");

    // Major 1 cannot be retired while counts reads it.
    let err = fails(&dir, &["retire", "example/greetings_v1"]);
    assert!(
        err.contains("`example/greetings_v1` is still read by example/counts"),
        "{err}"
    );
    // The newest major is deprecated in its descriptor, not by command.
    let err = fails(&dir, &["deprecate", "example/greetings"]);
    assert!(err.contains("it is the newest major"), "{err}");
    assert!(err.contains("set `status: deprecated`"), "{err}");
    // Major 1 is deprecated with a sunset: readers are warned, new ones refused.
    let out = ok(
        &dir,
        &[
            "deprecate",
            "example/greetings_v1",
            "--sunset",
            "2027-01-31",
        ],
    );
    assert!(
        out.contains("deprecated example/greetings_v1 (sunset 2027-01-31)"),
        "{out}"
    );
    let query = common::mesh(
        &dir,
        &["query", "SELECT count(*) FROM example.greetings_v1"],
    );
    assert!(query.status.success());
    let warning = String::from_utf8_lossy(&query.stderr);
    assert!(warning.contains("which is deprecated"), "{warning}");
    let validate = common::mesh(&dir, &["validate"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    assert!(
        said.contains(
            "input `g` reads `example/greetings_v1`, which is deprecated and will be retired on 2027-01-31"
        ),
        "{said}"
    );
    let late = dir.join("example/late");
    std::fs::create_dir_all(&late).unwrap();
    std::fs::write(
        late.join("product.yaml"),
        COUNTS
            .replace("name: counts", "name: late")
            .replace("- name: counts", "- name: late"),
    )
    .unwrap();
    let err = fails(&dir, &["deploy"]);
    assert!(
        err.contains(
            "`example/late` would start reading `example/greetings_v1`, which is deprecated"
        ),
        "{err}"
    );
    std::fs::remove_dir_all(&late).unwrap();
    let show = json(
        &dir,
        &[
            "catalog",
            "show",
            "example/greetings_v1",
            "--format",
            "json",
        ],
    );
    assert_eq!(show["status"], "deprecated");

    // Move counts to major 2, then retire major 1.
    edit(
        &dir,
        "example/counts/product.yaml",
        "version: ^1}",
        "version: ^2}",
    );
    edit(
        &dir,
        "example/counts/product.yaml",
        "SELECT language, count(*) AS n FROM g GROUP BY language",
        "SELECT text AS language, count(*) AS n FROM g GROUP BY text",
    );
    ok(&dir, &["deploy"]);
    assert!(
        ok(&dir, &["retire", "example/greetings_v1"]).contains("retired   example/greetings_v1")
    );
    let err = fails(&dir, &["query", "SELECT * FROM example.greetings_v1"]);
    assert!(
        err.contains("which is retired and no longer served"),
        "{err}"
    );
    // A consumer pinned to the retired major is refused.
    edit(
        &dir,
        "example/counts/product.yaml",
        "version: ^2}",
        "version: ^1}",
    );
    let err = fails(&dir, &["validate"]);
    assert!(
        err.contains(
            "input `g` reads `example/greetings_v1`, which is retired and no longer served"
        ),
        "{err}"
    );
    // Retired products are no longer built.
    edit(
        &dir,
        "example/counts/product.yaml",
        "version: ^1}",
        "version: ^2}",
    );
    ok(&dir, &["run"]);
    let runs = json(&dir, &["runs", "--format", "json"]);
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .take(2)
            .all(|r| r["product"] != "example/greetings_v1"),
        "{runs}"
    );
}

const PROFILES: &str = "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: example\nname: profiles\nversion: 1.0.0\nowner: t@x\n\
inputs:\n  - {name: g, product: example/greetings, version: ^1}\n\
transform: {query: \"SELECT id, named_struct('language', language, 'len', character_length(text)) AS info, make_array(language, text) AS words FROM g\"}\n\
outputs:\n  - name: profiles\n    columns:\n      - {name: id, type: bigint, nullable: false, description: The id}\n      - {name: info, type: \"struct<language string, len bigint>\", description: The info}\n      - {name: words, type: list<string>, description: The words}\n\
description: {purpose: A test product.}\nslo: {freshness: 1d}\n";

const LENGTHS: &str = "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: example\nname: lengths\nversion: 1.0.0\nowner: t@x\n\
inputs:\n  - {name: p, product: example/profiles, version: ^1}\n\
transform: {query: \"SELECT id, info['len'] AS len FROM p\"}\n\
outputs:\n  - name: lengths\n    columns:\n      - {name: id, type: bigint, nullable: false, description: The id}\n      - {name: len, type: bigint, description: The len}\n\
description: {purpose: A test product.}\nslo: {freshness: 1d}\n";

#[test]
fn struct_and_list_columns_are_published_queried_and_gated_field_by_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    for (name, text) in [("profiles", PROFILES), ("lengths", LENGTHS)] {
        let p = dir.join("example").join(name);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("product.yaml"), text).unwrap();
    }
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);

    // The nested values come back typed: fields by name, list elements.
    let rows = json(
        &dir,
        &[
            "query",
            "SELECT info['language'] AS language, info['len'] AS len, words[2] AS text, words \
             FROM example.profiles WHERE id = 1",
            "--format",
            "json",
        ],
    );
    assert_eq!(rows[0]["language"], "en", "{rows:#}");
    assert_eq!(rows[0]["len"], 5);
    assert_eq!(rows[0]["text"], "Hello");
    assert_eq!(rows[0]["words"], serde_json::json!(["en", "Hello"]));
    // CSV holds a nested value as its JSON text.
    let csv = ok(
        &dir,
        &[
            "query",
            "SELECT info FROM example.profiles WHERE id = 1",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        csv, "info\n\"{\"\"language\"\":\"\"en\"\",\"\"len\"\":5}\"\n",
        "{csv}"
    );
    // The consumer read through the struct.
    let lens = json(
        &dir,
        &[
            "query",
            "SELECT len FROM example.lengths WHERE id = 1",
            "--format",
            "json",
        ],
    );
    assert_eq!(lens[0]["len"], 5);

    // A declared struct the SQL does not produce is refused at validate,
    // pointing at the type.
    edit(
        &dir,
        "example/profiles/product.yaml",
        "struct<language string, len bigint>",
        "struct<language string, len bigint, country string>",
    );
    let err = fails(&dir, &["validate"]);
    assert!(err.contains("column `info` is declared"), "{err}");
    assert!(err.contains("profiles/product.yaml:14:28"), "{err}");

    // Narrowing a field inside the struct: breaking, reported at
    // `info.len`, and the consumer that reads `info` breaks.
    edit(
        &dir,
        "example/profiles/product.yaml",
        "struct<language string, len bigint, country string>",
        "struct<language string, len int>",
    );
    edit(
        &dir,
        "example/profiles/product.yaml",
        "character_length(text)",
        "CAST(character_length(text) AS INT)",
    );
    let plans = json(&dir, &["plan", "--format", "json"]);
    let plan = plans
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["product"] == "example/profiles")
        .unwrap();
    let narrowed = change(plan, "type_narrowed");
    assert_eq!(narrowed["column"], "info");
    assert_eq!(narrowed["field"], "info.len");
    assert_eq!(narrowed["grade"], "breaking");
    assert_eq!(
        narrowed["breaks"],
        serde_json::json!([{
            "consumer": "example/lengths",
            "consumer_output": "lengths",
            "input": "p",
            "column": "info"
        }])
    );
    let err = fails(&dir, &["deploy"]);
    assert!(err.contains("field `info.len` type bigint → int"), "{err}");
    assert!(err.contains("example/lengths"), "{err}");

    // Adding a field is compatible: it deploys without a major bump.
    edit(
        &dir,
        "example/profiles/product.yaml",
        "struct<language string, len int>",
        "struct<language string, len bigint, short boolean>",
    );
    edit(
        &dir,
        "example/profiles/product.yaml",
        "CAST(character_length(text) AS INT)",
        "character_length(text), 'short', character_length(text) < 5",
    );
    edit(
        &dir,
        "example/profiles/product.yaml",
        "version: 1.0.0",
        "version: 1.1.0",
    );
    let text = ok(&dir, &["plan"]);
    assert!(
        text.contains("field `info.short` boolean (nullable) added"),
        "{text}"
    );
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let rows = json(
        &dir,
        &[
            "query",
            "SELECT info['short'] AS short FROM example.profiles WHERE id = 1",
            "--format",
            "json",
        ],
    );
    assert_eq!(rows[0]["short"], false);
}

#[test]
fn malformed_nested_types_and_checks_on_them_are_refused_with_a_location() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let p = dir.join("example/profiles");
    std::fs::create_dir_all(&p).unwrap();
    let bad_type = PROFILES.replace(
        "struct<language string, len bigint>",
        "struct<language string; len bigint>",
    );
    std::fs::write(p.join("product.yaml"), &bad_type).unwrap();
    let err = fails(&dir, &["validate"]);
    assert!(
        err.contains("unexpected `;` at character 23 of `struct<language string; len bigint>`"),
        "{err}"
    );
    assert!(err.contains("profiles/product.yaml:14:28"), "{err}");
    assert!(err.contains("struct<name T, other T not null>"), "{err}");

    let bad_check = PROFILES.replace(
        "      - {name: words, type: list<string>, description: The words}\n",
        "      - {name: words, type: list<string>, description: The words}\n    quality:\n      - {check: accepted_values, column: info, values: [a]}\n",
    );
    std::fs::write(p.join("product.yaml"), &bad_check).unwrap();
    let err = fails(&dir, &["validate"]);
    assert!(
        err.contains(
            "check `accepted_values` does not apply to struct<language string, len bigint> column `info`"
        ),
        "{err}"
    );
}

const IDS: &str = "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: example\nname: ids\nversion: 1.0.0\nowner: t@x\n\
inputs:\n  - {name: g, product: example/greetings}\n\
transform: {query: \"SELECT id FROM g\"}\n\
outputs:\n  - name: ids\n    columns:\n      - {name: id, type: int, nullable: false, description: The id}\n\
description: {purpose: A test product.}\nslo: {freshness: 1d}\n";

/// Widening a column is compatible for readers of the product, but a
/// consumer that declares the narrower type must widen its own contract:
/// the plan names it and what to change, and its next run refuses to
/// cast the wider values back.
#[test]
fn a_widened_column_names_the_consumers_that_declare_the_narrower_type() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    edit(
        &dir,
        "example/greetings/transform.sql",
        "SELECT id,",
        "SELECT CAST(id AS INT) AS id,",
    );
    edit(
        &dir,
        "example/greetings/product.yaml",
        "{name: id, type: bigint, nullable: false, description: Greeting id}",
        "{name: id, type: int, nullable: false, description: Greeting id}",
    );
    let ids = dir.join("example/ids");
    std::fs::create_dir_all(&ids).unwrap();
    std::fs::write(ids.join("product.yaml"), IDS).unwrap();
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);

    // Widen greetings.id back to bigint, as a compatible minor release.
    edit(
        &dir,
        "example/greetings/transform.sql",
        "SELECT CAST(id AS INT) AS id,",
        "SELECT id,",
    );
    edit(
        &dir,
        "example/greetings/product.yaml",
        "{name: id, type: int, nullable: false, description: Greeting id}",
        "{name: id, type: bigint, nullable: false, description: Greeting id}",
    );
    edit(
        &dir,
        "example/greetings/product.yaml",
        "version: 1.0.0",
        "version: 1.1.0",
    );
    // The plan is shown, and it exits non-zero: the consumer is invalid.
    let out = common::mesh(&dir, &["plan", "--format", "json"]);
    assert!(!out.status.success());
    let plans: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = plans
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["product"] == "example/greetings")
        .unwrap()
        .clone();
    let widened = change(&plan, "type_widened");
    assert_eq!(widened["grade"], "compatible");
    assert_eq!(
        widened["requires"],
        serde_json::json!([{
            "consumer": "example/ids",
            "consumer_output": "ids",
            "column": "id",
            "declared": "int",
            "produced": "bigint"
        }])
    );
    let human = String::from_utf8_lossy(&common::mesh(&dir, &["plan"]).stdout).to_string();
    assert!(
        human.contains("requires example/ids:ids to declare `id` as `bigint` (it declares `int`)"),
        "{human}"
    );
    // In its own project the consumer no longer validates.
    let err = fails(&dir, &["validate"]);
    assert!(
        err.contains("column `id` is declared `int`, but the SQL produces `bigint`"),
        "{err}"
    );

    // A consumer deployed from elsewhere keeps its stored SQL: its next run
    // refuses to cast the wider values back.
    std::fs::remove_dir_all(&ids).unwrap();
    ok(&dir, &["deploy"]);
    let out = common::mesh(&dir, &["run"]);
    assert!(!out.status.success());
    let runs = json(&dir, &["runs", "--format", "json"]);
    let failed = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["product"] == "example/ids")
        .unwrap();
    assert_eq!(failed["status"], "failed", "{runs:#}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("column `id` is declared `int`, but the SQL produces `bigint`"),
        "{failed}"
    );
}

/// The ODCS export, given a server over the published version's files,
/// passes `datacontract test`: its `physicalName` resolves, and its
/// schema and quality checks hold on the data Meshwork published.
#[test]
fn the_odcs_export_passes_datacontract_test_on_the_published_files() {
    let datacontract = std::env::var("MESH_TEST_DATACONTRACT").unwrap_or_else(|_| {
        panic!("MESH_TEST_DATACONTRACT is not set: run the tests with scripts/test, which installs datacontract-cli")
    });
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let exported = ok(
        &dir,
        &[
            "contract",
            "export",
            "example/greetings",
            "--format",
            "odcs",
        ],
    );
    assert!(exported.contains("physicalName: greetings"), "{exported}");
    let table = dir.join(".mesh/tables/example/greetings/greetings");
    let runs = common::run_dirs(&table);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let server = format!(
        "servers:\n  - server: local\n    type: local\n    format: parquet\n    path: {}/{}/*.parquet\nschema:\n",
        table.display(),
        runs[0]
    );
    let contract = tmp.path().join("greetings.odcs.yaml");
    std::fs::write(&contract, exported.replacen("schema:\n", &server, 1)).unwrap();
    let mut child = std::process::Command::new(&datacontract)
        .arg("test")
        .arg(&contract)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "datacontract test did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("passed"), "{report}");
    assert!(!report.contains("│ failed"), "{report}");
}
