//! `mesh migrate` through the real binary: the demo mesh moves, with its
//! whole history, from its embedded catalog and tables to PostgreSQL (the
//! test command's server; a second SQLite file without one) and a new
//! storage root, even when interrupted; every answer, release, run and
//! audit entry is the same afterwards.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{demo, fails, json, ok};
use serde_json::Value;

/// What a user can observe of the mesh: answers (now and time-travelled),
/// releases, runs and the audit log.
fn observe(dir: &Path) -> Vec<Value> {
    let q = |sql: &str| json(dir, &["query", sql, "--format", "json"]);
    vec![
        q("SELECT count(*) AS n, sum(amount) AS s FROM sales.order_lines"),
        q("SELECT count(*) AS n FROM sales.orders@1"),
        q("SELECT * FROM customers.customer_360 ORDER BY 1 LIMIT 5"),
        json(
            dir,
            &["catalog", "history", "sales/orders", "--format", "json"],
        ),
        json(dir, &["runs", "--limit", "1000", "--format", "json"]),
        json(dir, &["principal", "list", "--format", "json"]),
    ]
}

/// The audit log's entries, without the reads that observing made.
fn audit(dir: &Path) -> Vec<Value> {
    json(dir, &["audit", "--limit", "100000", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] != "query" && e["action"] != "mesh.migrate")
        .cloned()
        .collect()
}

#[test]
fn a_mesh_moves_with_its_history_even_when_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo(tmp.path(), 300);
    ok(&dir, &["run", "--force", "sales/orders"]);
    let before = observe(&dir);
    let audit_before = audit(&dir);
    let target = common::fresh_postgres_database()
        .unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("moved/catalog.db").display()));
    let tables = tmp.path().join("shared-tables");
    let storage = format!("file://{}", tables.display());
    let args = ["migrate", "--catalog", &target, "--storage", &storage];

    // Killed part-way, several times: each later attempt goes on.
    let settings = std::fs::read_to_string(dir.join("mesh.yaml")).unwrap();
    for delay in [30u64, 120, 250, 400, 600, 900] {
        let mut child = common::command(&dir)
            .args(args)
            .env("MESH_USER", common::USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!("migrate killed after {delay} ms: {status}");
        if status.success() {
            break;
        }
    }
    // Stopped after the catalog's copy committed and before mesh.yaml was
    // written: the next attempt verifies the copy and finishes.
    std::fs::write(dir.join("mesh.yaml"), &settings).unwrap();
    let out = ok(&dir, &args);
    assert!(out.contains("already there; verified"), "{out}");
    let yaml = std::fs::read_to_string(dir.join("mesh.yaml")).unwrap();
    assert!(yaml.contains(&format!("catalog: {target}")), "{yaml}");
    assert!(yaml.contains(&format!("storage: {storage}")), "{yaml}");

    // The old tables are gone from view: the mesh reads the new root.
    std::fs::rename(dir.join(".mesh"), tmp.path().join("old-state")).unwrap();
    assert_eq!(observe(&dir), before);
    assert_eq!(audit(&dir), audit_before);
    let moved = json(
        &dir,
        &["audit", "--action", "mesh.migrate", "--format", "json"],
    );
    assert_eq!(moved.as_array().unwrap().len(), 1, "{moved}");
    // Runs go on in the new place.
    ok(&dir, &["run", "--force", "sales/orders"]);
    assert!(tables.join("sales/orders/orders/_delta_log").exists());
    // Moving to where it already is, and by someone not an admin, are refused.
    let again = fails(&dir, &args);
    assert!(again.contains("already uses"), "{again}");
    let out = common::mesh_as(&dir, "eve", &["migrate", "--catalog", "sqlite://x.db"]);
    assert!(!out.status.success());
}

#[test]
fn a_password_is_never_written_to_mesh_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    let err = fails(
        &dir,
        &[
            "migrate",
            "--catalog",
            "postgres://mesh:hunter2@127.0.0.1:1/mesh",
        ],
    );
    assert!(err.contains("PGPASSWORD"), "{err}");
    assert!(
        !std::fs::read_to_string(dir.join("mesh.yaml"))
            .unwrap()
            .contains("hunter2")
    );
}

/// To PostgreSQL and S3 at once (the test command's servers; skipped
/// without them unless they are required): the tables move into the
/// bucket, named with the `s3:` settings the project gained, and the
/// mesh answers from there.
#[test]
fn a_mesh_moves_to_postgres_and_s3() {
    let Ok(endpoint) = std::env::var("MESH_TEST_S3_ENDPOINT") else {
        assert!(std::env::var("MESH_TEST_REQUIRE_S3").as_deref() != Ok("1"));
        return;
    };
    let Some(catalog) = common::fresh_postgres_database() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    ok(&dir, &["run", "--force"]);
    let before = ok(
        &dir,
        &[
            "query",
            "SELECT count(*) AS n FROM example.greetings@1",
            "--format",
            "csv",
        ],
    );
    let yaml = dir.join("mesh.yaml");
    let mut text = std::fs::read_to_string(&yaml).unwrap();
    text.push_str(&format!(
        "s3: {{endpoint: {endpoint}, region: us-east-1, path_style: true}}\n"
    ));
    std::fs::write(&yaml, text).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("m{:06x}", (nanos ^ std::process::id()) & 0xff_ffff);
    let storage = format!("s3://mesh/{prefix}");
    let out = ok(
        &dir,
        &["migrate", "--catalog", &catalog, "--storage", &storage],
    );
    assert!(out.contains("copied and verified"), "{out}");
    std::fs::rename(dir.join(".mesh"), tmp.path().join("old-state")).unwrap();
    assert_eq!(
        ok(
            &dir,
            &[
                "query",
                "SELECT count(*) AS n FROM example.greetings@1",
                "--format",
                "csv"
            ]
        ),
        before
    );
    let on_server = std::path::PathBuf::from(std::env::var("MESH_TEST_S3_DIR").unwrap())
        .join("root/mesh")
        .join(&prefix)
        .join("example/greetings/greetings/_delta_log");
    assert!(on_server.is_dir(), "{}", on_server.display());
    ok(&dir, &["run", "--force"]);
}

/// A target catalog that cannot be reached stops the migration before
/// anything is copied: no new storage root, mesh.yaml unchanged.
#[test]
fn an_unreachable_target_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let settings = std::fs::read_to_string(dir.join("mesh.yaml")).unwrap();
    let tables = tmp.path().join("new-tables");
    let err = fails(
        &dir,
        &[
            "migrate",
            "--catalog",
            "postgres://mesh@127.0.0.1:1/nowhere",
            "--storage",
            &format!("file://{}", tables.display()),
        ],
    );
    assert!(err.contains("cannot open the catalog"), "{err}");
    assert!(!tables.exists(), "no file copied");
    assert_eq!(
        std::fs::read_to_string(dir.join("mesh.yaml")).unwrap(),
        settings
    );
}
