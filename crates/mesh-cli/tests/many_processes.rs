//! Many `mesh` processes on one mesh, as on several machines: two
//! checkouts of one project in different directories share one catalog
//! and one storage root. On SQLite the catalog is a shared file; with
//! `MESH_TEST_CATALOG=postgres` (scripts/test) it is a PostgreSQL database,
//! and with `MESH_TEST_STORAGE=s3` the tables are on the S3 server; the
//! environment names them and overrides mesh.yaml. The Delta log is read
//! where the storage keeps it (the S3 server's directory).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{greetings, json, mesh, ok};
use serde_json::Value;

/// Copies a project's files (not its `.mesh` state) from `from` to `to`.
fn copy_project(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".mesh" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_project(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Two checkouts, `a` and `b`, of the example mesh, naming one shared
/// catalog and storage root; deployed from `a`.
fn two_checkouts(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let shared = tmp.join("shared");
    let a = tmp.join("mesh");
    ok(
        tmp,
        &[
            "init",
            a.to_str().unwrap(),
            "--catalog",
            &format!("sqlite://{}", shared.join("catalog.db").display()),
            "--storage",
            &format!("file://{}", shared.join("tables").display()),
        ],
    );
    let b = tmp.join("elsewhere/mesh");
    copy_project(&a, &b);
    ok(&a, &["deploy"]);
    // On S3 (`MESH_TEST_STORAGE=s3`), the table as the server stores it.
    let tables = match common::storage_url(&a) {
        Some(url) => PathBuf::from(std::env::var("MESH_TEST_S3_DIR").unwrap())
            .join("root")
            .join(url.strip_prefix("s3://").unwrap()),
        None => shared.join("tables"),
    };
    (a, b, tables.join("example/greetings/greetings"))
}

/// Every publication the catalog records for example.greetings: Delta
/// version → the run that published it.
fn catalog_publications(dir: &Path) -> BTreeMap<i64, String> {
    let runs = json(
        dir,
        &[
            "runs",
            "--product",
            "example/greetings",
            "--limit",
            "100000",
            "--format",
            "json",
        ],
    );
    let mut out = BTreeMap::new();
    for run in runs.as_array().unwrap() {
        for p in run["publications"].as_array().into_iter().flatten() {
            let version = p["table_version"].as_i64().unwrap();
            let id = p["run_id"].as_str().unwrap().to_string();
            assert!(
                out.insert(version, id).is_none(),
                "version {version} published twice"
            );
        }
    }
    out
}

/// Every data commit in the Delta log: version → the run it names.
fn delta_writes(table: &Path) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(table.join("_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        let Some(version) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let info: Value = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v.get("commitInfo").cloned())
            .unwrap();
        if info["operation"] == "WRITE" {
            out.insert(version, info["meshwork.runId"].as_str().unwrap().into());
        }
    }
    out
}

/// Two processes, each running one product fifty times from its own
/// checkout: a run that finds the product busy waits, naming who holds
/// it, then publishes; every run publishes its own Delta version, and the
/// catalog and the Delta log name the same versions and runs.
#[test]
fn two_processes_run_one_product_fifty_times_each() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, table) = two_checkouts(tmp.path());
    let worker = |dir: PathBuf| {
        std::thread::spawn(move || {
            let mut waited = 0;
            for _ in 0..50 {
                let out = mesh(&dir, &["run", "--force", "example/greetings"]);
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "{err}");
                if err.contains("waiting: example/greetings is being run by") {
                    waited += 1;
                }
            }
            waited
        })
    };
    let (one, two) = (worker(a.clone()), worker(b.clone()));
    let (one, two) = (one.join().unwrap(), two.join().unwrap());
    eprintln!("runs that waited for the other process: {one} and {two}");
    let catalog = catalog_publications(&b);
    assert_eq!(catalog.len(), 100);
    assert_eq!(catalog, delta_writes(&table), "catalog and Delta log agree");
    assert_eq!(greetings(&a), 4);
    assert_eq!(greetings(&b), 4);
}

/// A `mesh run` killed with SIGKILL at a point that moves through the
/// run (staging, the Delta commit, the catalog update) fifty times, from
/// either checkout: each time the next run from the other one repairs
/// what it left and publishes, and in the end the catalog and the Delta
/// log name the same versions.
#[test]
fn runs_killed_anywhere_are_repaired_by_the_next_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, table) = two_checkouts(tmp.path());
    ok(&a, &["run"]);
    let mut mid_commit = 0;
    for trial in 0..50u64 {
        let (killed, next) = if trial % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let mut child = common::command(killed)
            .args(["run", "--force", "example/greetings"])
            .env("MESH_USER", common::USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread over a run's life: 20 ms steps through 0–980 ms.
        std::thread::sleep(Duration::from_millis((trial * 20) % 1000));
        std::process::Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        let before = delta_writes(&table).len();
        if !status.success() && before > catalog_publications(next).len() {
            // Killed between the Delta commit and the catalog update.
            mid_commit += 1;
        }
        ok(next, &["run", "--force", "example/greetings"]);
        assert_eq!(greetings(next), 4, "trial {trial}");
        assert_eq!(
            catalog_publications(next),
            delta_writes(&table),
            "trial {trial}: catalog and Delta log agree"
        );
    }
    eprintln!("{mid_commit} kills landed between the Delta commit and the catalog");
}

/// A deploy from one checkout is seen by the other's running server at
/// its next statement, and a run from either is read by both.
#[test]
fn a_deploy_in_one_process_is_seen_by_the_others_next_statement() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, _) = two_checkouts(tmp.path());
    ok(&a, &["run"]);
    let server = common::serve::Served::start(&b, &[]);
    let token = common::serve::token(&b, common::USER);
    let pg = server.pg.clone().unwrap();
    let ask = |sql: &str| common::clients::psql_ok(&pg, common::USER, &token, &["-c", sql]);
    assert_eq!(ask("SELECT count(*) FROM example.greetings").trim(), "4");
    // A new product, deployed and run from the other checkout.
    let product = a.join("example/echo");
    std::fs::create_dir_all(&product).unwrap();
    std::fs::write(
        product.join("product.yaml"),
        "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: example\nname: echo\nversion: 1.0.0\n\
         owner: team@example.org\ndescription:\n  purpose: Greetings again, for the many-process test.\n\
         slo: {freshness: 7d}\ninputs:\n  - {name: greetings, product: example/greetings}\n\
         transform:\n  query: SELECT id, text FROM greetings\noutputs:\n  - name: echo\n    columns:\n\
         \x20     - {name: id, type: bigint, nullable: false, description: Greeting id}\n\
         \x20     - {name: text, type: string, description: The greeting}\n",
    )
    .unwrap();
    ok(&a, &["deploy"]);
    ok(&a, &["run", "example/echo"]);
    assert_eq!(ask("SELECT count(*) FROM example.echo").trim(), "4");
    server.stop();
}

/// A run left `running` by a process on another machine (its holder is
/// not a process of this host): a run of the product waits, naming that
/// holder, while its lease lasts; once it expires, the waiting run takes
/// it over, marks it abandoned, removes the files it staged, and
/// publishes.
#[test]
fn a_run_left_by_another_machine_is_recovered_once_its_lease_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, table) = two_checkouts(tmp.path());
    ok(&a, &["run"]);
    let sqlite = tmp.path().join("shared/catalog.db");
    let dead = "01a00000-0000-7000-8000-00000000dead";
    let staged = table.join(format!("r-{dead}"));
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(staged.join("part-00000.parquet"), b"half a file").unwrap();
    let expires = chrono::Utc::now().timestamp_millis() + 3_000;
    common::catalog_sql(
        &a,
        &sqlite,
        &format!(
            "INSERT INTO runs (id, domain, name, version, status, started_at, cause, attempt) \
             VALUES ('{dead}', 'example', 'greetings', '1.0.0', 'running', '{}', 'manual', 1); \
             INSERT INTO run_leases (run_id, domain, name, holder, lease_until) \
             VALUES ('{dead}', 'example', 'greetings', 'build-agent-7:4242:99', {expires});",
            chrono::Utc::now().to_rfc3339()
        ),
    );
    let out = mesh(&b, &["run", "--force", "example/greetings"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("waiting: example/greetings is being run by build-agent-7:4242:99"),
        "{err}"
    );
    assert!(
        !staged.join("part-00000.parquet").exists(),
        "the dead run's staged files are removed"
    );
    let runs = json(&a, &["runs", "--format", "json"]);
    let left = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == dead)
        .unwrap();
    assert_eq!(left["status"], "abandoned", "{left}");
    let closed = chrono::DateTime::parse_from_rfc3339(left["finished_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(closed >= expires, "taken over only after the lease expired");
    assert_eq!(greetings(&a), 4);
    assert_eq!(catalog_publications(&a), delta_writes(&table));
}
