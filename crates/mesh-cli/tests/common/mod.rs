//! Helpers shared by the end-to-end tests: run the real `mesh` binary.
#![allow(dead_code, clippy::unwrap_used)]

pub mod clients;
pub mod contacts;
pub mod receiver;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::cargo_bin;
use serde_json::Value;

/// The local user every command runs as.
pub const USER: &str = "tester";

/// `mesh` in `dir`, without colour, on the backends the test run chose:
/// with `MESH_TEST_CATALOG=postgres` every test's commands share one
/// fresh PostgreSQL database ([`catalog_url`]), with `MESH_TEST_STORAGE=s3`
/// one prefix on the S3 server ([`storage_url`]); otherwise each project
/// keeps its embedded SQLite file and local tables.
pub fn command(dir: &Path) -> Command {
    let mut c = Command::new(cargo_bin("mesh"));
    c.current_dir(dir).env("NO_COLOR", "1");
    match catalog_url(dir) {
        Some(url) => c.env("MESH_CATALOG_URL", url),
        None => c.env_remove("MESH_CATALOG_URL"),
    };
    match storage_url(dir) {
        Some(url) => c
            .env("MESH_STORAGE_URL", url)
            .env(
                "AWS_ENDPOINT_URL",
                std::env::var("MESH_TEST_S3_ENDPOINT").unwrap(),
            )
            .env("AWS_ALLOW_HTTP", "true"),
        None => c.env_remove("MESH_STORAGE_URL"),
    };
    c
}

/// The test that owns `dir`, by its temporary directory (the first
/// component under the system's temporary directory): the projects and
/// servers of one test share its catalog and storage, as processes on
/// several machines share one mesh, and tests never see each other's.
fn test_id(dir: &Path) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let temp = std::env::temp_dir();
    let owner = match dir.strip_prefix(&temp) {
        Ok(rest) => temp.join(rest.components().next().unwrap()),
        Err(_) => dir.to_path_buf(),
    };
    let mut h = DefaultHasher::new();
    owner.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The storage root of the test that owns `dir` when the run asks for S3
/// (`MESH_TEST_STORAGE=s3`, with the server of `MESH_TEST_S3_ENDPOINT`
/// that `scripts/test` starts): a prefix of its own in bucket `mesh`.
pub fn storage_url(dir: &Path) -> Option<String> {
    if std::env::var("MESH_TEST_STORAGE").as_deref() != Ok("s3") {
        return None;
    }
    assert!(
        std::env::var("MESH_TEST_S3_ENDPOINT").is_ok(),
        "MESH_TEST_STORAGE=s3 needs MESH_TEST_S3_ENDPOINT: run scripts/test"
    );
    // Short: s3s-fs keeps each object's metadata in a file named after
    // its whole key (base64), so keys must stay under about 164 bytes.
    Some(format!("s3://mesh/t{}", &test_id(dir)[..6]))
}

/// The PostgreSQL catalog of the test that owns `dir` (see [`test_id`]),
/// when the run asks for PostgreSQL (`MESH_TEST_CATALOG=postgres`, with
/// the server of `MESH_TEST_POSTGRES_URL` that `scripts/test` starts).
/// The database is created on first use.
pub fn catalog_url(dir: &Path) -> Option<String> {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static CREATED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    if std::env::var("MESH_TEST_CATALOG").as_deref() != Ok("postgres") {
        return None;
    }
    let server = std::env::var("MESH_TEST_POSTGRES_URL")
        .expect("MESH_TEST_CATALOG=postgres needs MESH_TEST_POSTGRES_URL: run scripts/test");
    let server = server.trim_end_matches('/');
    let name = format!("mesh_e2e_{}", test_id(dir));
    let mut created = CREATED.lock().unwrap();
    let created = created.get_or_insert_with(HashSet::new);
    if !created.contains(&name) {
        create_database(server, &name);
        created.insert(name.clone());
    }
    Some(format!("{server}/{name}"))
}

/// Creates database `name` on the test server (one that exists is fine).
fn create_database(server: &str, name: &str) {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg(format!("{server}/postgres"))
        .args(["-c", &format!("CREATE DATABASE {name}")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("already exists"),
        "creating {name}: {err}"
    );
}

/// A new, empty database on the test command's PostgreSQL server, if it
/// started one (required when `MESH_TEST_REQUIRE_POSTGRES=1`, as in CI).
pub fn fresh_postgres_database() -> Option<String> {
    let server = match std::env::var("MESH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
        _ => {
            assert!(
                std::env::var("MESH_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "MESH_TEST_REQUIRE_POSTGRES=1 but MESH_TEST_POSTGRES_URL is unset: run scripts/test"
            );
            return None;
        }
    };
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "mesh_fresh_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    create_database(&server, &name);
    Some(format!("{server}/{name}"))
}

/// Everything the catalog of the project in `dir` stores, as text: the
/// SQLite file's bytes and its write-ahead log's, or a data dump of its
/// PostgreSQL database.
pub fn catalog_contents(dir: &Path) -> String {
    match catalog_url(dir) {
        // The file and its write-ahead log: committed pages stay in the
        // log until a checkpoint moves them into the file.
        None => {
            let mut bytes = std::fs::read(dir.join(".mesh/catalog.db")).unwrap();
            if let Ok(wal) = std::fs::read(dir.join(".mesh/catalog.db-wal")) {
                bytes.extend(wal);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Some(url) => {
            let out = Command::new("pg_dump")
                .args(["--data-only", &url])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        }
    }
}

/// Runs `sql` on the catalog of the test that owns `dir`, as another
/// client would: on its PostgreSQL database with psql, or on the SQLite
/// file `sqlite` with Python's sqlite3.
pub fn catalog_sql(dir: &Path, sqlite: &Path, sql: &str) {
    let out = match catalog_url(dir) {
        Some(url) => Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &url, "-c", sql])
            .output()
            .unwrap(),
        None => Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.executescript(sys.argv[2]); db.commit()",
            ])
            .arg(sqlite)
            .arg(sql)
            .output()
            .unwrap(),
    };
    assert!(out.status.success(), "{sql}: {out:?}");
}

/// Runs `mesh ARGS` in `dir`.
pub fn mesh(dir: &Path, args: &[&str]) -> Output {
    command(dir)
        .args(args)
        .env_remove("MESH_SERVER")
        // `mesh init` makes this user the mesh's first admin.
        .env("MESH_USER", USER)
        .output()
        .unwrap()
}

/// Runs `mesh ARGS` in `dir` as another local user.
pub fn mesh_as(dir: &Path, user: &str, args: &[&str]) -> Output {
    command(dir)
        .args(args)
        .env("MESH_USER", user)
        .output()
        .unwrap()
}

/// Runs `mesh ARGS` and returns its stdout; fails the test if it fails.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = mesh(dir, args);
    assert!(
        out.status.success(),
        "mesh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `mesh ARGS` in `dir` with extra environment variables.
#[allow(dead_code)]
pub fn mesh_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = command(dir);
    c.args(args).env("MESH_USER", USER);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Runs `mesh ARGS` expecting failure; returns its stderr.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = mesh(dir, args);
    assert!(
        !out.status.success(),
        "mesh {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).unwrap()
}

/// Replaces `from` with `to` in `dir/file`; fails if `from` is absent.
pub fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in {file}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// `mesh init` into `<tmp>/mesh`.
pub fn init(tmp: &Path) -> PathBuf {
    let dir = tmp.join("mesh");
    ok(tmp, &["init", dir.to_str().unwrap()]);
    dir
}

/// Rows in the published `example.greetings`.
pub fn greetings(dir: &Path) -> i64 {
    json(
        dir,
        &[
            "query",
            "SELECT count(*) AS n FROM example.greetings",
            "--format",
            "json",
        ],
    )[0]["n"]
        .as_i64()
        .unwrap()
}

/// Run folders (`r-<run>`) present in a table's directory.
pub fn run_dirs(table: &Path) -> Vec<String> {
    std::fs::read_dir(table)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("r-"))
        .collect()
}

/// The id `mesh access request` prints: `requested … (req-…)`.
pub fn request_id(stdout: &str) -> String {
    stdout
        .split('(')
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_string()
}

/// `mesh demo` into `<tmp>/acme` with `rows` rows, deployed and run.
pub fn demo(tmp: &Path, rows: u32) -> PathBuf {
    let out = mesh(tmp, &["demo", "acme", "--rows", &rows.to_string()]);
    assert!(out.status.success(), "{out:?}");
    tmp.join("acme")
}

/// Whether the audit log holds a refused `token.use` of `principal`
/// whose reason contains `says`.
pub fn token_use_refused(dir: &Path, principal: &str, says: &str) -> bool {
    let audit = json(dir, &["audit", "--action", "token.use", "--format", "json"]);
    audit.as_array().into_iter().flatten().any(|e| {
        e["principal"] == principal
            && e["decision"] == "deny"
            && e["reason"].as_str().is_some_and(|r| r.contains(says))
    })
}

/// The data files of a Delta table directory (its log left out), in
/// every run directory.
pub fn table_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("_delta_log"))
        .flat_map(|p| if p.is_dir() { table_files(&p) } else { vec![p] })
        .collect()
}
