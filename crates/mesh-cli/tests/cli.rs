//! End-to-end tests of the `mesh` binary on temporary projects.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{init, json, mesh, ok};
use serde_json::Value;

#[test]
fn init_validate_deploy_run_query() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    assert!(dir.join(".gitignore").exists());
    assert!(ok(&dir, &["validate"]).contains("1 products valid"));
    ok(&dir, &["deploy"]);
    assert!(
        ok(&dir, &["deploy"]).contains("Nothing to deploy"),
        "second deploy must be a no-op"
    );
    ok(&dir, &["run"]);
    let rows = json(
        &dir,
        &[
            "query",
            "SELECT id, text FROM example.greetings ORDER BY id",
            "--format",
            "json",
        ],
    );
    assert_eq!(rows[0]["text"], "Hello");
    assert_eq!(rows.as_array().unwrap().len(), 4);
    let by_address = json(
        &dir,
        &[
            "query",
            "SELECT count(*) AS n FROM \"mesh://example/greetings/greetings\"",
            "--format",
            "json",
        ],
    );
    assert_eq!(by_address[0]["n"], 4);
    let list = json(&dir, &["catalog", "list", "--format", "json"]);
    assert_eq!(list[0]["domain"], "example");
    assert_eq!(list[0]["owner"], "example-team@your.org");
    let runs = json(&dir, &["runs", "--format", "json"]);
    assert_eq!(runs[0]["status"], "succeeded");
    assert!(runs[0]["started_at"].is_string());
}

#[test]
fn time_travel_reads_older_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let csv = dir.join("example/greetings/data/greetings.csv");
    std::fs::write(&csv, "id,language,text\n1,en,Hello\n2,fr,Bonjour\n").unwrap();
    ok(&dir, &["run"]);
    let now = json(
        &dir,
        &[
            "query",
            "SELECT count(*) AS n FROM example.greetings",
            "--format",
            "json",
        ],
    );
    let then = json(
        &dir,
        &[
            "query",
            "SELECT count(*) AS n FROM example.\"greetings@1\"",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        (now[0]["n"].as_i64(), then[0]["n"].as_i64()),
        (Some(2), Some(4))
    );
    let out = mesh(&dir, &["query", "SELECT * FROM example.\"greetings@9\""]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no published version 9"));

    // Each successful run is a release: product version, data versions, rows, run.
    let history = json(
        &dir,
        &[
            "catalog",
            "history",
            "example/greetings",
            "--format",
            "json",
        ],
    );
    let releases = history.as_array().unwrap();
    assert_eq!(releases.len(), 2);
    let data: Vec<(i64, i64)> = releases
        .iter()
        .map(|r| {
            let o = &r["outputs"][0];
            (
                o["data_version"].as_i64().unwrap(),
                o["row_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(data, [(2, 2), (1, 4)], "newest first");
    assert_eq!(releases[0]["product_version"], "1.0.0");
    let runs = json(&dir, &["runs", "--format", "json"]);
    assert_eq!(releases[0]["run_id"], runs[0]["id"]);
    assert!(ok(&dir, &["catalog", "history", "example/greetings"]).contains("greetings@2"));
}

#[test]
fn validation_errors_point_at_the_file_and_exit_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let descriptor = dir.join("example/greetings/product.yaml");
    let text = std::fs::read_to_string(&descriptor)
        .unwrap()
        .replace("owner:", "ownr:");
    std::fs::write(&descriptor, text).unwrap();
    let out = mesh(&dir, &["validate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `ownr`"), "{err}");
    assert!(err.contains("did you mean `owner`?"), "{err}");
    assert!(err.contains("product.yaml:9:1"), "{err}");
    let out = mesh(&dir, &["deploy"]);
    assert!(
        !out.status.success(),
        "deploy must refuse an invalid project"
    );
    assert!(
        json(&dir, &["catalog", "list", "--format", "json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn sql_and_contract_mismatches_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    std::fs::write(
        dir.join("example/greetings/transform.sql"),
        "SELECT id, language FROM raw_greetings",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&mesh(&dir, &["validate"]).stderr).to_string();
    assert!(
        err.contains("declares column `text`, but its SQL does not produce it"),
        "{err}"
    );
    std::fs::write(
        dir.join("example/greetings/transform.sql"),
        "SELECT id, language, text FROM raw_greeting",
    )
    .unwrap();
    let out = mesh(&dir, &["validate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("raw_greeting"));
}

/// Errors in a product's SQL point at the line and column in its `.sql`
/// file and read as sentences: an unknown table names the declared inputs,
/// a syntax error says what was expected.
#[test]
fn sql_errors_point_into_the_sql_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let sql = dir.join("example/greetings/transform.sql");
    for (text, expected) in [
        (
            "SELECT id, language,\n  text\nFROM raw_greetings\nWHERE nope > 1\n",
            vec!["transform.sql:4:7", "No field named nope"],
        ),
        (
            "SELECT id, language, text\nFROM raw_greeting\n",
            vec![
                "transform.sql:2:6",
                "table `raw_greeting` is not an input of this product (did you mean `raw_greetings`?); its inputs are `raw_greetings`",
            ],
        ),
        (
            "SELECT id, language, text\nFROM raw_greetings\nWHERE id >>> 1\n",
            vec![
                "transform.sql:3:12",
                "syntax error at line 3, column 12: expected an expression, found `>`",
            ],
        ),
        (
            "SELECT id, language, upper(text, 3) AS text\nFROM raw_greetings\n",
            vec!["transform.sql:1:22", "Function 'upper' expects 1 arguments"],
        ),
    ] {
        std::fs::write(&sql, text).unwrap();
        let out = mesh(&dir, &["validate"]);
        assert!(!out.status.success());
        let report = String::from_utf8_lossy(&out.stderr);
        for e in expected {
            assert!(report.contains(e), "{e}:\n{report}");
        }
        assert!(!report.contains("ParserError"), "{report}");
    }
    // Inline SQL: the place inside the descriptor's `query:` block.
    common::edit(
        &dir,
        "example/greetings/product.yaml",
        "  sql: transform.sql",
        "  query: |\n    SELECT id, language,\n      text\n    FROM raw_greetings\n    WHERE nope > 1",
    );
    let report = String::from_utf8_lossy(&mesh(&dir, &["validate"]).stderr).to_string();
    let line = std::fs::read_to_string(dir.join("example/greetings/product.yaml"))
        .unwrap()
        .lines()
        .position(|l| l.contains("WHERE nope"))
        .unwrap()
        + 1;
    assert!(
        report.contains(&format!("product.yaml:{line}:11")),
        "line {line}:\n{report}"
    );
}

#[test]
fn a_failing_check_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    std::fs::write(
        dir.join("example/greetings/data/greetings.csv"),
        "id,language,text\n1,en,Hello\n1,xx,Dup\n",
    )
    .unwrap();
    let out = mesh(&dir, &["run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("primary_key_unique"), "{err}");
    assert!(err.contains("accepted_values_language"), "{err}");
    let rows = json(
        &dir,
        &[
            "query",
            "SELECT count(*) AS n FROM example.greetings",
            "--format",
            "json",
        ],
    );
    assert_eq!(rows[0]["n"], 4, "the failed run must not be visible");
    let runs = json(&dir, &["runs", "--format", "json"]);
    assert_eq!(runs[0]["status"], "failed");
    let failed: Vec<&Value> = runs[0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert!(
        failed
            .iter()
            .any(|c| !c["sample"].as_array().unwrap().is_empty()),
        "failed checks keep sample rows"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join(".mesh/tables/example/greetings/greetings"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("r-"))
        .collect();
    assert_eq!(leftovers.len(), 1, "only the published run's files remain");
}

/// Kills `mesh run` at a failpoint and checks the next run and query.
fn kill_at(failpoint: &str) -> (Value, Value, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    std::fs::write(
        dir.join("example/greetings/data/greetings.csv"),
        "id,language,text\n1,en,Hi\n",
    )
    .unwrap();
    let mut child = common::command(&dir)
        .arg("run")
        .env("MESH_FAILPOINT", failpoint)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    let marker = format!("failpoint {failpoint} reached");
    while !seen.contains(&marker) && Instant::now() < deadline {
        use std::io::Read;
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(seen.contains(&marker), "{seen}");
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let before = json(
        &dir,
        &[
            "query",
            "SELECT count(*) AS n FROM example.greetings",
            "--format",
            "json",
        ],
    );
    let out = mesh(&dir, &["run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = json(&dir, &["runs", "--format", "json"]);
    let after = json(
        &dir,
        &[
            "query",
            "SELECT count(*) AS n FROM example.greetings",
            "--format",
            "json",
        ],
    );
    (before, runs, after)
}

#[test]
fn killed_after_commit_is_recovered_from_the_delta_log() {
    let (before, runs, after) = kill_at("after-commit");
    assert_eq!(before[0]["n"], 4, "an unrecorded commit is not read");
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "succeeded", "succeeded"]);
    assert_eq!(after[0]["n"], 1);
}

#[test]
fn killed_while_staging_publishes_nothing() {
    let (before, runs, after) = kill_at("after-stage");
    assert_eq!(before[0]["n"], 4);
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "abandoned", "succeeded"]);
    assert_eq!(after[0]["n"], 1);
}

#[test]
fn demo_builds_seven_products() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    ok(
        tmp.path(),
        &["demo", dir.to_str().unwrap(), "--rows", "500"],
    );
    let list = json(&dir, &["catalog", "list", "--format", "json"]);
    assert_eq!(list.as_array().unwrap().len(), 7);
    let hits = json(&dir, &["catalog", "search", "carrier", "--format", "json"]);
    assert!(
        hits[0]["product"]
            .as_str()
            .unwrap()
            .starts_with("logistics/")
    );
    let show = json(
        &dir,
        &["catalog", "show", "customers/profiles", "--format", "json"],
    );
    assert_eq!(show["outputs"][0]["columns"][2]["classification"], "pii");
    assert_eq!(show["consumers"].as_array().unwrap().len(), 3);
}

#[test]
fn downstream_of_a_failed_product_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let consumer = dir.join("example/counts");
    std::fs::create_dir_all(&consumer).unwrap();
    std::fs::write(
        consumer.join("product.yaml"),
        "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: example\nname: counts\nversion: 1.0.0\nowner: t@x\n\
         inputs:\n  - {name: g, product: example/greetings}\n\
         transform: {query: \"SELECT language, count(*) AS n FROM g GROUP BY language\"}\n\
         outputs:\n  - name: counts\n    columns:\n      - {name: language, type: string, description: Language}\n      - {name: n, type: bigint, nullable: false, description: Greetings}\n\
         description: {purpose: Greetings per language.}\nslo: {freshness: 1d}\n",
    )
    .unwrap();
    ok(&dir, &["deploy"]);
    std::fs::write(
        dir.join("example/greetings/data/greetings.csv"),
        "id,language,text\n1,xx,Hello\n",
    )
    .unwrap();
    let out = mesh(&dir, &["run"]);
    assert!(!out.status.success());
    let runs = json(&dir, &["runs", "--format", "json"]);
    let status = |p: &str| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["product"] == p)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("example/greetings"), "failed");
    assert_eq!(status("example/counts"), "skipped");
}

#[test]
fn a_reader_that_stops_early_is_not_a_crash() {
    // `mesh query … | head -1`: stdout closes while mesh is still printing.
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let mut child = common::command(&dir)
        .args([
            "query",
            "SELECT * FROM generate_series(1, 200000)",
            "--format",
            "csv",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Read;
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    } // the pipe's read end is dropped here
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn query_output_streams_and_handles_empty_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let empty = "SELECT id, text FROM example.greetings WHERE id < 0";
    assert_eq!(ok(&dir, &["query", empty, "--format", "csv"]), "id,text\n");
    assert_eq!(ok(&dir, &["query", empty, "--format", "json"]), "[]\n");
    // Many batches, written as they arrive: every row, in order.
    let csv = ok(
        &dir,
        &[
            "query",
            "SELECT value FROM generate_series(1, 100000) ORDER BY value",
            "--format",
            "csv",
        ],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 100_001);
    assert_eq!(
        (lines[0], lines[1], lines[100_000]),
        ("value", "1", "100000")
    );
    let rows = json(
        &dir,
        &[
            "query",
            "SELECT value FROM generate_series(1, 20000)",
            "--format",
            "json",
        ],
    );
    assert_eq!(rows.as_array().unwrap().len(), 20_000);
}

/// `mesh completions SHELL` prints a script that completes every command;
/// bash loads it.
#[test]
fn completions_are_printed_for_each_shell() {
    let tmp = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "_mesh()"),
        ("zsh", "#compdef mesh"),
        ("fish", "complete -c mesh"),
    ] {
        let script = common::ok(tmp.path(), &["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["serve", "query", "deploy", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let bash = common::ok(tmp.path(), &["completions", "bash"]);
    let path = tmp.path().join("mesh.bash");
    std::fs::write(&path, bash).unwrap();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p mesh", path.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("-F _mesh mesh"),
        "{loaded:?}"
    );
    let err = common::fails(tmp.path(), &["completions", "tcsh"]);
    assert!(err.contains("possible values"), "{err}");
}

/// Without `MESH_USER` or `USER` (cron, containers), a command says who
/// it acts as instead of leaving a bare "not found".
#[test]
fn a_command_without_a_user_says_who_it_acts_as() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let out = common::command(&dir)
        .args(["query", "SELECT count(*) FROM example.greetings"])
        .env_remove("MESH_USER")
        .env_remove("USER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("acting as principal `unknown`"), "{err}");
    assert!(err.contains("set MESH_USER"), "{err}");
}

/// Search returns every match, and REST pages through them with a total
/// that counts them all.
#[test]
fn search_returns_every_match_paged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let example = dir.join("example/greetings");
    let descriptor = std::fs::read_to_string(example.join("product.yaml")).unwrap();
    for n in 1..25 {
        let copy = dir.join(format!("example/greetings_{n}"));
        std::fs::create_dir_all(copy.join("data")).unwrap();
        for file in ["transform.sql", "data/greetings.csv"] {
            std::fs::copy(example.join(file), copy.join(file)).unwrap();
        }
        let renamed = descriptor
            .replace("name: greetings ", &format!("name: greetings_{n} "))
            .replace("- name: greetings ", &format!("- name: greetings_{n} "));
        std::fs::write(copy.join("product.yaml"), renamed).unwrap();
    }
    ok(&dir, &["deploy"]);
    let hits = json(
        &dir,
        &["catalog", "search", "greetings", "--format", "json"],
    );
    assert_eq!(hits.as_array().unwrap().len(), 25, "{hits}");
    let admin = common::serve::token(&dir, common::USER);
    let served = common::serve::Served::start(&dir, &[]);
    let (status, _, body) = common::serve::curl(
        &served.base,
        "/api/v1/search?q=greetings&limit=10&offset=20",
        Some(&admin),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["total"], 25, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 5, "{page}");
}

/// One broken descriptor hides nothing: each of its problems is reported,
/// the SQL of sound products is still checked, and its consumers do not
/// claim it does not exist.
#[test]
fn validation_reports_every_problem_of_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::demo(tmp.path(), 20);
    common::edit(
        &dir,
        "sales/orders/product.yaml",
        "version: 1.0.0",
        "version: one",
    );
    common::edit(
        &dir,
        "sales/orders/product.yaml",
        "type: bigint, nullable: false, description: Who ordered",
        "type: bigintt, nullable: false, description: Who ordered",
    );
    common::edit(
        &dir,
        "logistics/shipments/transform.sql",
        "FROM raw_shipments",
        "FROM raw_shipment",
    );
    let out = mesh(&dir, &["validate"]);
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "`one` is not a semantic version",
        "sales/orders/product.yaml:5:10",
        "unknown type `bigintt`",
        "table `raw_shipment` is not an input of this product",
        "logistics/shipments/transform.sql:",
        "3 problem(s) found",
    ] {
        assert!(report.contains(expected), "{expected}:\n{report}");
    }
    assert!(!report.contains("does not exist"), "{report}");

    // A descriptor that is not even YAML, in a mesh where it was never
    // deployed: its consumers wait for it, they do not say it is missing.
    std::fs::remove_dir_all(dir.join(".mesh")).unwrap();
    common::edit(&dir, "sales/orders/product.yaml", "owner: ", "owner: [x");
    let out = mesh(&dir, &["validate"]);
    let report = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "invalid YAML",
        "table `raw_shipment` is not an input of this product",
        "2 problem(s) found",
    ] {
        assert!(report.contains(expected), "{expected}:\n{report}");
    }
    assert!(!report.contains("does not exist"), "{report}");
}

/// `WHERE col IS NOT NULL` proves the column non-null: the contract may
/// declare it `nullable: false` although the input may hold nulls, and a
/// run publishes only the rows that have it.
#[test]
fn is_not_null_in_the_sql_proves_a_column_non_null() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    common::edit(
        &dir,
        "example/greetings/product.yaml",
        "{name: language, type: string, description: ISO 639-1 code}",
        "{name: language, type: string, nullable: false, description: ISO 639-1 code}",
    );
    let err = String::from_utf8_lossy(&mesh(&dir, &["validate"]).stderr).to_string();
    assert!(
        err.contains(
            "column `language` is declared `nullable: false`, but the SQL can produce nulls"
        ),
        "{err}"
    );
    std::fs::write(
        dir.join("example/greetings/transform.sql"),
        "SELECT id, language, text\nFROM raw_greetings\nWHERE language IS NOT NULL\n",
    )
    .unwrap();
    ok(&dir, &["validate"]);
    std::fs::write(
        dir.join("example/greetings/data/greetings.csv"),
        "id,language,text\n1,en,Hi\n2,,Salut\n3,de,Hallo\n",
    )
    .unwrap();
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    assert_eq!(common::greetings(&dir), 2);
}
