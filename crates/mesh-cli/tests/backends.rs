//! Choosing where the catalog and the tables live, by URL, through the
//! real binary: `mesh init --catalog --storage` writes them, the
//! environment overrides mesh.yaml, and a URL this build cannot use is
//! refused where it is written.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use common::{USER, fails, greetings, ok};

fn mesh_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(cargo_bin("mesh"));
    c.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("MESH_USER", USER)
        .env_remove("MESH_SERVER")
        .env_remove("MESH_CATALOG_URL")
        .env_remove("MESH_STORAGE_URL");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = mesh_with(dir, args, env);
    assert!(
        out.status.success(),
        "mesh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn init_writes_the_backends_and_the_mesh_uses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let tables = tmp.path().join("shared-tables");
    let storage = format!("file://{}", tables.display());
    let dir = tmp.path().join("mesh");
    ok_with(
        tmp.path(),
        &[
            "init",
            dir.to_str().unwrap(),
            "--catalog",
            "sqlite://state/catalog.db",
            "--storage",
            &storage,
        ],
        &[],
    );
    let yaml = std::fs::read_to_string(dir.join("mesh.yaml")).unwrap();
    assert!(
        yaml.contains("catalog: sqlite://state/catalog.db"),
        "{yaml}"
    );
    assert!(yaml.contains(&format!("storage: {storage}")), "{yaml}");
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    assert!(dir.join("state/catalog.db").is_file());
    assert!(!dir.join(".mesh/catalog.db").exists());
    assert!(
        tables
            .join("example/greetings/greetings/_delta_log")
            .is_dir()
    );
    assert_eq!(greetings(&dir), 4);
}

#[test]
fn the_environment_overrides_mesh_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    // Another catalog and storage root, named only in the environment.
    let other = tmp.path().join("other");
    let env = [
        (
            "MESH_CATALOG_URL",
            format!("sqlite://{}", other.join("catalog.db").display()),
        ),
        (
            "MESH_STORAGE_URL",
            format!("file://{}", other.join("tables").display()),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let listed = ok_with(&dir, &["catalog", "list", "--format", "json"], &env);
    assert_eq!(listed.trim(), "[]", "a new catalog holds nothing: {listed}");
    ok_with(&dir, &["deploy"], &env);
    ok_with(&dir, &["run"], &env);
    assert!(other.join("catalog.db").is_file());
    assert!(
        other
            .join("tables/example/greetings/greetings/_delta_log")
            .is_dir()
    );
    // mesh.yaml's own backends are untouched and still answer.
    assert_eq!(greetings(&dir), 4);
}

#[test]
fn a_url_this_build_cannot_use_is_refused_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    let out = mesh_with(
        tmp.path(),
        &[
            "init",
            dir.to_str().unwrap(),
            "--catalog",
            "mysql://db/mesh",
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("write sqlite://PATH"), "{err}");
    assert!(!dir.join("mesh.yaml").exists(), "nothing half-written");

    let dir = common::init(tmp.path());
    let path = dir.join("mesh.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("storage: file://relative/tables\n");
    std::fs::write(&path, text).unwrap();
    let err = fails(&dir, &["validate"]);
    assert!(err.contains("is not absolute"), "{err}");
    assert!(err.contains("mesh.yaml:"), "{err}");

    let dir2 = tmp.path().join("env");
    ok_with(tmp.path(), &["init", dir2.to_str().unwrap()], &[]);
    let out = mesh_with(
        &dir2,
        &["catalog", "list"],
        &[("MESH_CATALOG_URL", "mysql://x")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MESH_CATALOG_URL"), "{err}");
    assert!(err.contains("write sqlite://PATH"), "{err}");
}

/// Tables on the test command's S3 server, named in mesh.yaml with the
/// server's endpoint (`s3:`); credentials come from the environment
/// only. Skipped without a server unless `MESH_TEST_REQUIRE_S3=1`.
#[test]
fn an_s3_storage_root_is_named_in_mesh_yaml() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    let prefix = fresh_prefix('y');
    let storage = format!("s3://mesh/{prefix}");
    ok_with(
        tmp.path(),
        &["init", dir.to_str().unwrap(), "--storage", &storage],
        &[],
    );
    let path = dir.join("mesh.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "s3: {{endpoint: {endpoint}, region: us-east-1, path_style: true}}\n"
    ));
    std::fs::write(&path, text).unwrap();
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    ok(&dir, &["run", "--force"]);
    assert_eq!(greetings(&dir), 4);
    let at = |sql: &str| ok(&dir, &["query", sql, "--format", "csv"]);
    assert_eq!(
        at("SELECT count(*) AS n FROM example.greetings@1"),
        "n\n4\n"
    );
    assert!(!dir.join(".mesh/tables").exists(), "nothing on local disk");
    let on_server = std::path::PathBuf::from(std::env::var("MESH_TEST_S3_DIR").unwrap())
        .join("root/mesh")
        .join(&prefix)
        .join("example/greetings/greetings/_delta_log");
    assert!(on_server.is_dir(), "{}", on_server.display());
    // A bad endpoint is refused where it is written.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&endpoint, "ftp://somewhere");
    std::fs::write(&path, text).unwrap();
    let err = fails(&dir, &["validate"]);
    assert!(err.contains("ftp://somewhere"), "{err}");
    assert!(err.contains("mesh.yaml:"), "{err}");
}

/// With no keys in the environment, S3 credentials and the region come
/// from the AWS shared files of the profile `AWS_PROFILE` names, as the
/// AWS CLI reads them; a wrong key or a missing profile fails loudly.
#[test]
fn s3_credentials_come_from_the_aws_shared_files() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[ci]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n[stale]\naws_access_key_id = {key}\naws_secret_access_key = not-the-secret\n"
        ),
    )
    .unwrap();
    std::fs::write(
        home.join(".aws/config"),
        "[profile ci]\nregion = us-east-1\n",
    )
    .unwrap();
    let mesh = |dir: &Path, args: &[&str], profile: &str| {
        let mut c = Command::new(cargo_bin("mesh"));
        c.args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("MESH_USER", USER)
            .env("HOME", &home)
            .env("AWS_PROFILE", profile);
        for k in [
            "MESH_SERVER",
            "MESH_CATALOG_URL",
            "MESH_STORAGE_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CONFIG_FILE",
        ] {
            c.env_remove(k);
        }
        c.output().unwrap()
    };
    let dir = tmp.path().join("mesh");
    let prefix = fresh_prefix('c');
    let storage = format!("s3://mesh/{prefix}");
    ok_with(
        tmp.path(),
        &["init", dir.to_str().unwrap(), "--storage", &storage],
        &[],
    );
    // No region in mesh.yaml: it comes from the profile.
    let path = dir.join("mesh.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("s3: {{endpoint: {endpoint}, path_style: true}}\n"));
    std::fs::write(&path, text).unwrap();
    let ok_as = |args: &[&str], profile: &str| {
        let out = mesh(&dir, args, profile);
        assert!(
            out.status.success(),
            "mesh {args:?} as {profile} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok_as(&["deploy"], "ci");
    ok_as(&["run"], "ci");
    let count = || {
        ok_as(
            &[
                "query",
                "SELECT count(*) AS n FROM example.greetings",
                "--format",
                "csv",
            ],
            "ci",
        )
    };
    let before = count();
    assert_eq!(before, "n\n4\n");
    let on_server = std::path::PathBuf::from(std::env::var("MESH_TEST_S3_DIR").unwrap())
        .join("root/mesh")
        .join(&prefix)
        .join("example/greetings/greetings/_delta_log");
    assert!(on_server.is_dir(), "{}", on_server.display());

    // A profile whose secret the server refuses cannot write or read.
    let out = mesh(&dir, &["run", "--force"], "stale");
    assert!(!out.status.success(), "a wrong secret was accepted");
    let out = mesh(
        &dir,
        &["query", "SELECT count(*) FROM example.greetings"],
        "stale",
    );
    assert!(!out.status.success(), "a wrong secret could read");
    // A profile that is not there is named.
    let out = mesh(&dir, &["run", "--force"], "missing");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("AWS_PROFILE is `missing`"), "{err}");
    // The failures left the product as it was.
    assert_eq!(count(), before);
}

/// The catalog opens at a command's first statement: a query naming no
/// table, once its policies are known to compile, never connects (it
/// runs with the catalog's server down, and creates no SQLite file),
/// while anything that reads the catalog fails naming it, and a broken
/// policy still refuses the query.
#[test]
fn a_statement_naming_no_table_needs_no_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    ok_with(tmp.path(), &["init", dir.to_str().unwrap()], &[]);
    // The first statement compiles the policies and records their digest.
    ok_with(&dir, &["query", "SELECT 1"], &[]);
    // Nothing listens on port 1 of loopback.
    let down = [("MESH_CATALOG_URL", "postgres://mesh@127.0.0.1:1/mesh")];
    let out = ok_with(
        &dir,
        &["query", "SELECT 1 AS one", "--format", "csv"],
        &down,
    );
    assert_eq!(out, "one\n1\n");
    let listed = mesh_with(&dir, &["catalog", "list"], &down);
    assert!(!listed.status.success());
    let err = String::from_utf8_lossy(&listed.stderr);
    assert!(err.contains("postgres://mesh@127.0.0.1:1/mesh"), "{err}");
    // A SQLite catalog is not even created by such a statement.
    std::fs::remove_file(dir.join(".mesh/catalog.db")).unwrap();
    // SQLite removes these when its last connection closes, unless it
    // could not.
    for f in ["catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(dir.join(".mesh").join(f));
    }
    ok_with(&dir, &["query", "SELECT 1"], &[]);
    assert!(!dir.join(".mesh/catalog.db").exists());
    // Governance fails closed all the same: other files are compiled.
    common::edit(
        &dir,
        "policies/access.rego",
        "default allow := false",
        "default allow := ",
    );
    let refused = mesh_with(&dir, &["query", "SELECT 1"], &[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("access.rego:"), "{err}");
}

/// Long-running processes reach the catalog at start: `mesh scheduler`
/// and `mesh serve` with the catalog's server down exit by themselves,
/// naming it, instead of running without it.
#[test]
fn servers_fail_at_start_when_the_catalog_is_out_of_reach() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    ok_with(tmp.path(), &["init", dir.to_str().unwrap()], &[]);
    let url = "postgres://mesh@127.0.0.1:1/mesh";
    for args in [
        &["scheduler"][..],
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--pg",
            "off",
            "--flight",
            "off",
        ][..],
    ] {
        let mut child = Command::new(cargo_bin("mesh"))
            .args(args)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .env("MESH_USER", USER)
            .env("MESH_CATALOG_URL", url)
            .env_remove("MESH_SERVER")
            .env_remove("MESH_STORAGE_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The pool retries an unreachable server for 30 s; give it 90.
        let mut status = None;
        for _ in 0..900 {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let Some(status) = status else {
            let _ = child.kill();
            panic!("mesh {args:?} kept running without its catalog");
        };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!status.success(), "{err}");
        assert!(err.contains(url), "mesh {args:?}: {err}");
    }
}

/// The test command's S3 server, or `None` when there is none and the
/// run does not require one (`MESH_TEST_REQUIRE_S3=1` makes it a failure).
fn s3_endpoint() -> Option<String> {
    let endpoint = std::env::var("MESH_TEST_S3_ENDPOINT").ok();
    assert!(
        endpoint.is_some() || std::env::var("MESH_TEST_REQUIRE_S3").as_deref() != Ok("1"),
        "MESH_TEST_REQUIRE_S3=1 but MESH_TEST_S3_ENDPOINT is unset: run scripts/test"
    );
    endpoint
}

/// A short prefix of its own in the bucket, starting with `letter`.
fn fresh_prefix(letter: char) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{letter}{:06x}", (nanos ^ std::process::id()) & 0xff_ffff)
}
