//! Real clients against `mesh serve` on loopback: psql and psycopg over
//! the Postgres wire protocol, and raw sockets for malformed input.
//!
//! The Python clients come from the venv `scripts/test` builds; it sets
//! `MESH_TEST_PYTHON`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::serve::{Served, token};
use common::{USER, ok};
use serde_json::{Value, json};

fn python() -> String {
    std::env::var("MESH_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "MESH_TEST_PYTHON is not set: run the tests with scripts/test, which builds a venv with psycopg and the ADBC driver"
        )
    })
}

/// The demo mesh, deployed and run, with `bob`: known, in no team.
fn demo(tmp: &Path) -> PathBuf {
    let out = common::mesh(tmp, &["demo", "acme", "--rows", "300"]);
    assert!(out.status.success(), "{out:?}");
    let dir = tmp.join("acme");
    ok(&dir, &["principal", "add", "bob"]);
    dir
}

fn split(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').unwrap()
}

/// `psql` as `user` with `password`, unaligned and tuples only.
fn psql(addr: &str, user: &str, password: &str, args: &[&str]) -> Output {
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

fn psql_ok(addr: &str, user: &str, password: &str, args: &[&str]) -> String {
    let out = psql(addr, user, password, args);
    assert!(
        out.status.success(),
        "psql {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn psql_err(addr: &str, user: &str, password: &str, args: &[&str]) -> String {
    let out = psql(addr, user, password, args);
    assert!(!out.status.success(), "psql {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// Runs tests/clients/pg.py (psycopg) on `job`.
fn psycopg(addr: &str, user: &str, password: &str, job: Value) -> Value {
    let (host, port) = split(addr);
    let mut job = job;
    job["dsn"] =
        format!("host={host} port={port} user={user} dbname=mesh password={password}").into();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/pg.py");
    let mut child = Command::new(python())
        .arg(script)
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
            panic!("pg.py did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pg.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The rows of `mesh query --format csv`, header dropped, `|`-separated.
fn cli_rows(dir: &Path, sql: &str) -> String {
    let csv = ok(dir, &["query", sql, "--format", "csv"]);
    csv.lines()
        .skip(1)
        .map(|l| l.replace(',', "|"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn psql_and_psycopg_read_the_mesh_under_the_callers_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo(tmp.path());
    let (admin, bob) = (token(&dir, USER), token(&dir, "bob"));
    let served = Served::start(&dir, &[]);
    let pg = served.pg.clone().unwrap();

    // Queries across domains: the CLI's rows, masks included.
    for sql in [
        "SELECT order_id, customer_id, status FROM sales.orders ORDER BY order_id LIMIT 5",
        "SELECT p.country, count(*) AS orders FROM sales.orders o JOIN customers.profiles p ON o.customer_id = p.customer_id GROUP BY p.country ORDER BY p.country",
        "SELECT customer_id, email FROM customers.profiles ORDER BY customer_id LIMIT 3",
    ] {
        assert_eq!(
            psql_ok(&pg, USER, &admin, &["-c", sql]).trim_end(),
            cli_rows(&dir, sql),
            "{sql}"
        );
    }
    let masked = psql_ok(
        &pg,
        USER,
        &admin,
        &["-c", "SELECT email FROM customers.profiles LIMIT 1"],
    );
    assert_eq!(masked.trim(), "***");

    // psql's catalog commands.
    let tables = psql_ok(&pg, USER, &admin, &["-c", "\\dt"]);
    for t in ["sales|orders|table", "customers|profiles|table"] {
        assert!(tables.contains(t), "{t} missing from \\dt:\n{tables}");
    }
    assert_eq!(tables.lines().count(), 7, "{tables}");
    let described = psql_ok(&pg, USER, &admin, &["-c", "\\d sales.orders"]);
    for column in [
        "order_id|bigint||not null|",
        "order_date|date||not null|",
        "status|text||not null|",
    ] {
        assert!(
            described.contains(column),
            "{column} missing from \\d:\n{described}"
        );
    }

    // SQLSTATEs: unknown table, access denied, read-only.
    let err = psql_err(&pg, USER, &admin, &["-c", "SELECT * FROM sales.ordres"]);
    assert!(err.contains("42P01"), "{err}");
    assert!(err.contains("did you mean `sales.orders`"), "{err}");
    let err = psql_err(&pg, "bob", &bob, &["-c", "SELECT * FROM sales.orders"]);
    assert!(err.contains("42501"), "{err}");
    assert!(err.contains("mesh access request sales/orders"), "{err}");
    let err = psql_err(&pg, USER, &admin, &["-c", "DROP TABLE sales.orders"]);
    assert!(err.contains("25006") || err.contains("42601"), "{err}");

    // No token, a wrong one, or someone else's: refused at startup.
    for (user, password) in [
        (USER, ""),
        (USER, "mesh_000000000000_nope"),
        (USER, bob.as_str()),
    ] {
        let err = psql_err(&pg, user, password, &["-c", "SELECT 1"]);
        assert!(
            err.contains("password authentication failed")
                || err.contains("belongs to \"bob\"")
                || err.contains("no password supplied"),
            "{user}/{password}: {err}"
        );
    }

    // psycopg: bound parameters (extended protocol) are values, never SQL.
    let confirmed = cli_rows(
        &dir,
        "SELECT count(*) FROM sales.orders WHERE status = 'confirmed'",
    );
    let count = "SELECT count(*) AS n FROM sales.orders WHERE status = %s";
    let answers = psycopg(
        &pg,
        USER,
        &admin,
        json!({"steps": [
            {"sql": count, "params": ["'; DROP TABLE sales.orders; --"]},
            {"sql": count, "params": ["confirmed"]},
            {"sql": count, "params": ["confirmed"], "prepare": true},
            {"sql": "SELECT order_id, status FROM sales.orders WHERE order_id = %s", "params": [7], "prepare": true},
            {"sql": "SELECT count(*) AS n FROM sales.orders"},
            {"sql": "SELECT * FROM sales.nope"},
        ]}),
    );
    assert_eq!(answers[0]["rows"], json!([["0"]]), "{answers}");
    assert_eq!(answers[1]["rows"], json!([[confirmed]]), "{answers}");
    assert_eq!(answers[2]["rows"], answers[1]["rows"]);
    assert_eq!(answers[3]["rows"][0][0], "7", "{answers}");
    assert_eq!(answers[4]["rows"], json!([["300"]]), "{answers}");
    assert_eq!(answers[5]["sqlstate"], "42P01", "{answers}");

    // What drivers and BI tools send on connect, in a transaction
    // (psycopg's default).
    let answers = psycopg(
        &pg,
        USER,
        &admin,
        json!({"autocommit": false, "steps": [
            {"sql": "SET application_name = 'bi-tool'"},
            {"sql": "SET DateStyle = 'ISO'"},
            {"sql": "SHOW server_version"},
            {"sql": "SELECT version()"},
            {"sql": "SELECT current_schema()"},
            {"sql": "SELECT current_database()"},
            {"sql": "SHOW transaction_isolation"},
            {"sql": "SELECT typname FROM pg_catalog.pg_type WHERE oid = 20"},
            {"sql": "SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname = 'sales'"},
            {"sql": "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sales' ORDER BY table_name"},
            {"sql": "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'sales' AND table_name = 'orders' ORDER BY ordinal_position"},
        ]}),
    );
    for (i, a) in answers.as_array().unwrap().iter().enumerate() {
        assert!(a.get("error").is_none(), "step {i}: {a}");
    }
    assert_eq!(answers[2]["rows"], json!([["16.6"]]));
    assert!(
        answers[3]["rows"][0][0]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 16.6")
    );
    assert_eq!(answers[4]["rows"], json!([["public"]]));
    assert_eq!(answers[5]["rows"], json!([["mesh"]]));
    assert_eq!(answers[7]["rows"], json!([["int8"]]));
    assert_eq!(answers[8]["rows"], json!([["sales"]]));
    assert_eq!(
        answers[9]["rows"],
        json!([["order_lines"], ["orders"], ["revenue_by_customer"]])
    );
    assert_eq!(answers[10]["rows"][0], json!(["order_id", "Int64"]));

    // Cancel: a statement that would run for hours stops with 57014, and
    // so does one that outlives statement_timeout. The connection stays
    // usable.
    let forever = "SELECT sum(x % 7) AS s FROM generate_series(1, 10000000000) AS t(x)";
    let answers = psycopg(
        &pg,
        USER,
        &admin,
        json!({"steps": [
            {"sql": forever, "cancel_after": 1.0},
            {"sql": "SELECT 1 AS one"},
            {"sql": "SET statement_timeout = '300ms'"},
            {"sql": forever},
        ]}),
    );
    assert_eq!(answers[0]["sqlstate"], "57014", "{answers}");
    assert!(
        answers[0]["error"]
            .as_str()
            .unwrap()
            .contains("user request")
    );
    assert_eq!(answers[1]["rows"], json!([["1"]]));
    assert_eq!(answers[3]["sqlstate"], "57014", "{answers}");
    assert!(
        answers[3]["error"]
            .as_str()
            .unwrap()
            .contains("statement timeout")
    );

    // Every statement was audited under its principal.
    let audit = common::json(
        &dir,
        &[
            "audit",
            "--principal",
            "bob",
            "--action",
            "query",
            "--format",
            "json",
        ],
    );
    assert_eq!(audit[0]["decision"], "deny", "{audit}");

    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
}

/// Reads one backend message: (type, body).
fn message(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).ok()?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).ok()?;
    Some((header[0], body))
}

/// The SQLSTATE of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"C"))
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default()
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn startup(user: &str) -> Vec<u8> {
    let params = format!("user\0{user}\0database\0mesh\0\0");
    let mut p = ((8 + params.len()) as u32).to_be_bytes().to_vec();
    p.extend_from_slice(&196_608u32.to_be_bytes());
    p.extend_from_slice(params.as_bytes());
    p
}

/// A connection authenticated with `token`, ready for queries.
fn authenticated(addr: &str, token: &str) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(&startup(USER)).unwrap();
    assert_eq!(message(&mut s).unwrap().0, b'R');
    let mut p = vec![b'p'];
    p.extend_from_slice(&((4 + token.len() + 1) as u32).to_be_bytes());
    p.extend_from_slice(token.as_bytes());
    p.push(0);
    s.write_all(&p).unwrap();
    while let Some((t, _)) = message(&mut s) {
        if t == b'Z' {
            return s;
        }
    }
    panic!("no ReadyForQuery after authentication");
}

#[test]
fn malformed_postgres_input_is_answered_with_an_error_and_the_server_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let admin = token(&dir, USER);
    let served = Served::start(&dir, &[]);
    let pg = served.pg.clone().unwrap();

    // A startup packet with an unknown protocol, then one whose length
    // field claims 2 GiB.
    let mut s = connect(&pg);
    s.write_all(&[0, 0, 0, 8, 0, 2, 0, 0]).unwrap();
    let (t, body) = message(&mut s).unwrap();
    assert_eq!((t, sqlstate(&body)), (b'E', "0A000".to_string()));
    let mut s = connect(&pg);
    s.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0]).unwrap();
    let (t, body) = message(&mut s).unwrap();
    assert_eq!((t, sqlstate(&body)), (b'E', "08P01".to_string()));

    // No password at all: the startup is refused.
    let mut s = connect(&pg);
    s.write_all(&startup(USER)).unwrap();
    assert_eq!(message(&mut s).unwrap().0, b'R');
    s.write_all(b"p\0\0\0\x05\0").unwrap();
    let (t, body) = message(&mut s).unwrap();
    assert_eq!((t, sqlstate(&body)), (b'E', "28P01".to_string()));

    // Bind to a statement that was never parsed, then Sync.
    let mut s = authenticated(&pg, &admin);
    let mut bind = vec![b'B', 0, 0, 0, 16];
    bind.extend_from_slice(b"\0nope\0\0\0\0\0\0\0");
    s.write_all(&bind).unwrap();
    s.write_all(b"S\0\0\0\x04").unwrap();
    let (t, body) = message(&mut s).unwrap();
    assert_eq!((t, sqlstate(&body)), (b'E', "26000".to_string()));
    assert_eq!(message(&mut s).unwrap().0, b'Z');
    // The connection still works, then a message claiming 2 GiB ends it
    // with an error.
    s.write_all(b"Q\0\0\0\x0dSELECT 1\0").unwrap();
    let mut types = Vec::new();
    while let Some((t, _)) = message(&mut s) {
        types.push(t);
        if t == b'Z' {
            break;
        }
    }
    assert_eq!(types, b"TDCZ".to_vec());
    s.write_all(b"Q\x7f\xff\xff\xf0SELECT 1").unwrap();
    let (t, body) = message(&mut s).unwrap();
    assert_eq!((t, sqlstate(&body)), (b'E', "08P01".to_string()));

    // The server is still up for everyone else.
    let out = psql_ok(
        &pg,
        USER,
        &admin,
        &["-c", "SELECT count(*) FROM example.greetings"],
    );
    assert_eq!(out.trim(), "4");
    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
}
