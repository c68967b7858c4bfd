//! The real clients the end-to-end tests drive: psql, and Python's
//! psycopg and ADBC Flight SQL driver from the venv `scripts/test` builds
//! (it sets `MESH_TEST_PYTHON`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub fn python() -> String {
    std::env::var("MESH_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "MESH_TEST_PYTHON is not set: run the tests with scripts/test, which builds a venv with psycopg and the ADBC driver"
        )
    })
}

pub fn split(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').unwrap()
}

/// `psql` as `user` with `password`, unaligned and tuples only.
pub fn psql(addr: &str, user: &str, password: &str, args: &[&str]) -> Output {
    let (host, port) = split(addr);
    Command::new("psql")
        .args(["-X", "-w", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1"])
        .args(["-v", "VERBOSITY=verbose"])
        .args(["-h", host, "-p", port, "-U", user, "-d", "mesh"])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "30")
        .output()
        .expect("psql is installed (scripts/test installs postgresql-client)")
}

pub fn psql_ok(addr: &str, user: &str, password: &str, args: &[&str]) -> String {
    let out = psql(addr, user, password, args);
    assert!(
        out.status.success(),
        "psql {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn psql_err(addr: &str, user: &str, password: &str, args: &[&str]) -> String {
    let out = psql(addr, user, password, args);
    assert!(!out.status.success(), "psql {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

pub fn adbc(uri: &str, token: &str, job: Value) -> Value {
    let mut job = job;
    job["uri"] = uri.into();
    job["token"] = token.into();
    python_client("flight.py", &job)
}

/// Runs a Python client from tests/clients on a JSON job, bounded.
pub fn python_client(script: &str, job: &Value) -> Value {
    python_client_with(script, job, None)
}

/// A directory of packages `scripts/test` installs beside the venv
/// (`sqlalchemy-1.4`, `sqlalchemy-2.1`), for [`python_client_with`].
pub fn packages(name: &str) -> std::path::PathBuf {
    let python = python();
    let dir = Path::new(&python)
        .parent()
        .and_then(Path::parent)
        .map(|venv| venv.join(name))
        .unwrap();
    assert!(
        dir.is_dir(),
        "{} is missing: scripts/test installs it",
        dir.display()
    );
    dir
}

/// [`python_client`] with `pythonpath` first on the import path.
pub fn python_client_with(script: &str, job: &Value, pythonpath: Option<&Path>) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let mut command = Command::new(python());
    if let Some(path) = pythonpath {
        command.env("PYTHONPATH", path);
    }
    let mut child = command
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    // Bounded: a client that hangs fails the test instead of stalling it.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} did not finish within 300 s", script.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
