//! Real clients against `mesh serve` on loopback: psql and psycopg over
//! the Postgres wire protocol, the ADBC Flight SQL driver, curl, and raw
//! sockets for malformed input.
//!
//! The Python clients come from the venv `scripts/test` builds; it sets
//! `MESH_TEST_PYTHON`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::clients::{adbc, psql, psql_err, psql_ok, python_client, split};
use common::serve::{Served, token};
use common::{USER, ok};
use serde_json::{Value, json};

/// The demo mesh, deployed and run, with `bob`: known, in no team.
fn demo(tmp: &Path) -> PathBuf {
    let dir = common::demo(tmp, 300);
    ok(&dir, &["principal", "add", "bob"]);
    dir
}

/// Runs tests/clients/pg.py (psycopg) on `job`.
fn psycopg(addr: &str, user: &str, password: &str, job: Value) -> Value {
    let (host, port) = split(addr);
    let mut job = job;
    job["dsn"] =
        format!("host={host} port={port} user={user} dbname=mesh password={password}").into();
    python_client("pg.py", &job)
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
    // Someone else's valid token is audited like any refused token use.
    assert!(common::token_use_refused(
        &dir,
        "bob",
        &format!("presented as `{USER}` over postgres")
    ));

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
    // Every connection has its own backend key (cancel requests name it).
    let pids: Vec<Value> = (0..2)
        .map(|_| {
            psycopg(&pg, USER, &admin, json!({"steps": [{"backend_pid": true}]}))[0]["backend_pid"]
                .clone()
        })
        .collect();
    assert!(pids[0].is_i64() && pids[0] != pids[1], "{pids:?}");

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

    // The metrics saw it all: outcomes, the denial, the open session.
    let metrics = metrics(&served.base, &admin);
    for line in [
        "mesh_policy_denials_total{protocol=\"postgres\"} 1",
        "mesh_queries_total{protocol=\"postgres\",status=\"denied\"} 1",
        "mesh_queries_total{protocol=\"postgres\",status=\"cancelled\"} 2",
        "mesh_active_sessions{protocol=\"postgres\"} 0",
        "mesh_runs{status=\"succeeded\"} 7",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert!(metrics.contains("mesh_query_duration_seconds_bucket{le="));

    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
}

/// `GET /metrics` with a token (and refused without one).
fn metrics(base: &str, token: &str) -> String {
    let refused = common::serve::curl(base, "/metrics", None, None);
    assert_eq!(refused.0, 401, "{}", refused.2);
    let r = common::serve::curl(base, "/metrics", Some(token), None);
    assert_eq!(r.0, 200, "{}", r.2);
    assert!(r.1.starts_with("application/openmetrics-text"), "{}", r.1);
    r.2
}

#[test]
fn stopping_the_server_ends_a_running_postgres_statement_with_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    let admin = token(&dir, USER);
    let served = Served::start(&dir, &[]);
    let pg = served.pg.clone().unwrap();
    let (host, port) = split(&pg);
    let job = json!({
        "dsn": format!("host={host} port={port} user={USER} dbname=mesh password={admin}"),
        "steps": [{"sql": "SELECT sum(x % 7) AS s FROM generate_series(1, 10000000000) AS t(x)"}],
    });
    let client = std::thread::spawn(move || python_client("pg.py", &job));
    // The statement would run for hours: wait (bounded) until the server
    // reports the client's session, give the statement a moment to start,
    // then stop the server under it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = common::serve::curl(&served.base, "/metrics", Some(&admin), None);
        if r.2
            .contains("mesh_active_sessions{protocol=\"postgres\"} 1")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the statement never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
    let answers = client.join().unwrap();
    let answer = answers.get(0).unwrap_or(&answers);
    let text = answer.to_string();
    assert!(
        text.contains("57P01") || text.contains("terminating connection"),
        "{text}"
    );
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

/// A silent client is let go at the startup deadline, connections over
/// the cap are refused with 53300, and the slots come back.
#[test]
fn postgres_connections_are_capped_and_must_authenticate_in_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    ok(&dir, &["deploy"]);
    std::fs::write(
        dir.join("mesh-serve.yaml"),
        "limits:\n  pg_connections: 2\n  pg_startup_timeout: 3s\n",
    )
    .unwrap();
    let admin = token(&dir, USER);
    let served = Served::start(&dir, &[]);
    let pg = served.pg.clone().unwrap();
    // Two clients connect and say nothing; they hold both slots.
    let mut silent: Vec<TcpStream> = (0..2).map(|_| connect(&pg)).collect();
    // Wait (bounded) until the server has taken both, then a third is
    // refused.
    let mut refused = None;
    for _ in 0..50 {
        let mut third = connect(&pg);
        third.write_all(&startup(USER)).unwrap();
        match message(&mut third) {
            Some((b'E', body)) => {
                refused = Some(sqlstate(&body));
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    assert_eq!(refused.as_deref(), Some("53300"));
    // The silent ones are told why they are let go.
    for s in &mut silent {
        let (t, body) = message(s).unwrap();
        assert_eq!((t, sqlstate(&body)), (b'E', "08P01".to_string()));
        assert!(
            String::from_utf8_lossy(&body).contains("within 3 s"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    drop(silent);
    // The slots are free again (bounded wait for the server to notice).
    let mut answered = String::new();
    for _ in 0..100 {
        let out = psql(&pg, USER, &admin, &["-c", "SELECT 1"]);
        if out.status.success() {
            answered = String::from_utf8_lossy(&out.stdout).into_owned();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(answered.trim(), "1");
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

/// Runs tests/clients/flight.py (the ADBC Flight SQL driver) on `job`.
#[test]
fn adbc_flight_sql_fetches_products_as_arrow_under_the_callers_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo(tmp.path());
    let (admin, bob) = (token(&dir, USER), token(&dir, "bob"));
    let served = Served::start(&dir, &[]);
    let uri = served.flight.clone().unwrap();

    // Whole products, compared with `mesh query --format csv` under the
    // Arrow schema the driver fetched.
    let whole = |t: &str| format!("SELECT * FROM {t} ORDER BY 1");
    let tables = [
        "sales.orders",
        "sales.order_lines",
        "customers.profiles",
        "logistics.shipments",
    ];
    let steps: Vec<Value> = tables
        .iter()
        .map(
            |t| json!({"sql": whole(t), "csv": ok(&dir, &["query", &whole(t), "--format", "csv"])}),
        )
        .collect();
    let answers = adbc(&uri, &admin, json!({"steps": steps}));
    for (t, a) in tables.iter().zip(answers.as_array().unwrap()) {
        assert_eq!(a["equal_csv"], true, "{t}: {a}");
    }
    assert_eq!(answers[0]["row_count"], 300);
    // Masks apply: the admin is not in the owning team.
    let profiles = &answers[2];
    let email = profiles["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == "email")
        .unwrap();
    assert_eq!(profiles["rows"][0][email], "***");

    // Basic auth in the handshake, bound parameters, catalog objects,
    // errors.
    let answers = adbc(
        &uri,
        &admin,
        json!({"basic": true, "user": USER, "steps": [
            {"sql": "SELECT order_id, status FROM sales.orders WHERE order_id = $1", "params": [7]},
            {"sql": "SELECT count(*) AS n FROM sales.orders WHERE status = $1", "params": ["'; DROP TABLE sales.orders; --"]},
            {"objects": true},
            {"sql": "SELECT * FROM sales.nope"},
            {"table_schema": ["sales", "order_lines"]},
        ]}),
    );
    // A table's schema carries the contract: descriptions, primary key,
    // and Flight SQL's column metadata.
    let described = &answers[4];
    assert_eq!(
        described["metadata"]["meshwork.primary_key"], "line_id",
        "{described}"
    );
    let amount = &described["fields"]["amount"];
    assert_eq!(
        amount["description"], "quantity × unit price, in EUR",
        "{described}"
    );
    assert_eq!(amount["ARROW:FLIGHT:SQL:PRECISION"], "12", "{described}");
    assert_eq!(amount["ARROW:FLIGHT:SQL:SCALE"], "2", "{described}");
    assert_eq!(
        amount["ARROW:FLIGHT:SQL:TYPE_NAME"], "decimal(12,2)",
        "{described}"
    );
    assert_eq!(
        amount["ARROW:FLIGHT:SQL:DB_SCHEMA_NAME"], "sales",
        "{described}"
    );
    assert_eq!(answers[0]["rows"][0][0], "7", "{answers}");
    assert_eq!(answers[1]["rows"], json!([["0"]]), "{answers}");
    let listed = answers[2]["tables"].as_array().unwrap();
    assert_eq!(listed.len(), 7, "{answers}");
    assert!(listed.contains(&json!("mesh.sales.orders")));
    assert!(
        answers[3]["error"]
            .as_str()
            .unwrap()
            .contains("did you mean `sales.orders`"),
        "{answers}"
    );
    // Basic auth with someone else's token: refused, and audited.
    let refused = adbc(
        &uri,
        &bob,
        json!({"basic": true, "user": USER, "steps": [{"sql": "SELECT 1"}]}),
    );
    assert!(refused[0]["error"].is_string(), "{refused}");
    assert!(common::token_use_refused(
        &dir,
        "bob",
        &format!("presented as `{USER}` over flight")
    ));

    // bob is refused the read; a bad token is refused everything.
    let answers = adbc(
        &uri,
        &bob,
        json!({"steps": [{"sql": "SELECT * FROM sales.orders"}]}),
    );
    assert!(
        answers[0]["error"]
            .as_str()
            .unwrap()
            .contains("access denied"),
        "{answers}"
    );
    let answers = adbc(
        &uri,
        "mesh_000000000000_nope",
        json!({"steps": [{"sql": "SELECT 1"}, {"objects": true}]}),
    );
    for a in answers.as_array().unwrap() {
        assert!(
            a["error"]
                .as_str()
                .unwrap()
                .contains("mesh token is required"),
            "{answers}"
        );
    }
    // Statements refused or failing at planning are counted too.
    let metrics = metrics(&served.base, &admin);
    for line in [
        "mesh_queries_total{protocol=\"flight\",status=\"denied\"}",
        "mesh_queries_total{protocol=\"flight\",status=\"error\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
}

/// Rows as strings, numbers in one canonical form (protocols print
/// `4.0`, `4` or `4.00` for the same double), nulls as `None`.
fn canonical(cells: impl IntoIterator<Item = Option<String>>) -> Vec<Option<String>> {
    cells
        .into_iter()
        .map(|c| {
            c.map(|s| match s.parse::<f64>() {
                Ok(n) if !s.is_empty() => n.to_string(),
                _ => s,
            })
        })
        .collect()
}

fn json_cell(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Rows given as JSON objects (`mesh query --format json`, REST), in
/// canonical form.
fn object_rows(rows: &Value) -> Vec<Vec<Option<String>>> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not rows: {rows}"))
        .iter()
        .map(|row| canonical(row.as_object().unwrap().values().map(json_cell)))
        .collect()
}

#[test]
fn ten_queries_answer_the_same_through_the_cli_psql_flight_sql_and_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo(tmp.path());
    let admin = token(&dir, USER);
    let served = Served::start(&dir, &[]);
    let (pg, uri, base) = (
        served.pg.clone().unwrap(),
        served.flight.clone().unwrap(),
        served.base.clone(),
    );
    let queries = [
        "SELECT order_id, customer_id, order_date, status FROM sales.orders ORDER BY order_id LIMIT 20",
        "SELECT status, count(*) AS n FROM sales.orders GROUP BY status ORDER BY status",
        "SELECT customer_id, full_name, email, country FROM customers.profiles ORDER BY customer_id LIMIT 10",
        "SELECT customer_id, email, orders, revenue FROM customers.customer_360 ORDER BY customer_id LIMIT 10",
        "SELECT o.order_id, l.sku, l.quantity, l.amount FROM sales.orders o JOIN sales.order_lines l ON o.order_id = l.order_id ORDER BY l.line_id LIMIT 15",
        "SELECT p.country, sum(l.amount) AS revenue FROM sales.order_lines l JOIN sales.orders o ON o.order_id = l.order_id JOIN customers.profiles p ON p.customer_id = o.customer_id GROUP BY p.country ORDER BY p.country",
        "SELECT carrier, count(*) AS shipments FROM logistics.shipments GROUP BY carrier ORDER BY carrier",
        "SELECT * FROM logistics.carrier_performance ORDER BY 1, 2",
        "SELECT order_id, status FROM \"mesh://sales/orders/orders\" WHERE order_id BETWEEN 10 AND 14 ORDER BY order_id",
        "SELECT max(order_date) AS last, min(order_id) AS first FROM sales.\"orders@1\"",
    ];

    let mut flight_steps = Vec::new();
    for sql in &queries {
        flight_steps.push(json!({"sql": sql}));
    }
    let flight = adbc(&uri, &admin, json!({"steps": flight_steps}));
    let psycopg_rows = psycopg(
        &pg,
        USER,
        &admin,
        json!({"steps": queries.iter().map(|q| json!({"sql": q})).collect::<Vec<_>>()}),
    );
    for (i, sql) in queries.iter().enumerate() {
        let cli = common::json(&dir, &["query", sql, "--format", "json"]);
        let expected = object_rows(&cli);
        assert!(!expected.is_empty(), "{sql} returned no rows");

        let body = json!({"sql": sql}).to_string();
        let rest = common::serve::body_json(&common::serve::curl(
            &base,
            "/api/v1/query",
            Some(&admin),
            Some(&body),
        ));
        let rest = object_rows(&rest["rows"]);
        assert_eq!(rest, expected, "REST: {sql}");

        let out = psql_ok(
            &pg,
            USER,
            &admin,
            &["-P", "null=\u{2205}", "-F", "\u{1f}", "-c", sql],
        );
        let psql: Vec<Vec<Option<String>>> = out
            .lines()
            .map(|l| {
                canonical(
                    l.split('\u{1f}')
                        .map(|c| (c != "\u{2205}").then(|| c.to_string()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(psql, expected, "psql: {sql}");

        let via = |answer: &Value| -> Vec<Vec<Option<String>>> {
            answer["rows"]
                .as_array()
                .unwrap_or_else(|| panic!("{sql}: {answer}"))
                .iter()
                .map(|row| {
                    canonical(
                        row.as_array()
                            .unwrap()
                            .iter()
                            .map(json_cell)
                            .collect::<Vec<_>>(),
                    )
                })
                .collect()
        };
        assert_eq!(via(&flight[i]), expected, "Flight SQL: {sql}");
        assert_eq!(via(&psycopg_rows[i]), expected, "psycopg: {sql}");
    }
    let metrics = metrics(&base, &admin);
    for line in [
        "mesh_queries_total{protocol=\"flight\",status=\"ok\"} 10",
        "mesh_queries_total{protocol=\"rest\",status=\"ok\"} 10",
        "mesh_queries_total{protocol=\"postgres\",status=\"ok\"} 20",
        "mesh_http_requests_total{route=\"/api/v1/query\",status=\"200\"} 10",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
}

/// A test CA and a server certificate it signed for localhost and
/// 127.0.0.1, made with the openssl command: (ca.pem, server.pem, server.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    ca.extend(["-subj", "/CN=mesh test CA"]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn tls_from_the_configuration_file_encrypts_every_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let admin = token(&dir, USER);
    let (ca, _, _) = certificates(tmp.path());
    let ca_text = ca.to_str().unwrap();
    // The file names the certificate (relative to itself); the flags of
    // Served::start pick the ports, and win over the file's.
    std::fs::write(
        dir.join("mesh-serve.yaml"),
        "http: 127.0.0.1:1\ntls:\n  cert: ../server.pem\n  key: ../server.key\n",
    )
    .unwrap();
    let served = Served::start(&dir, &[]);
    assert!(served.base.starts_with("https://"), "{}", served.base);
    let port = |a: &str| a.rsplit_once(':').unwrap().1.to_string();
    let https = format!("https://localhost:{}", port(&served.base));

    // REST: HTTPS with the CA; plain HTTP is not served.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "--cacert", ca_text])
        .args(["-H", &format!("Authorization: Bearer {admin}")])
        .arg(format!("{https}/api/v1/products"))
        .output()
        .unwrap();
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["items"][0]["name"], "greetings");
    let plain = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{}/healthz", port(&served.base)))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");

    // Postgres: verify-full against the CA; a plain connection is refused
    // before any password is sent.
    let pg_port = port(served.pg.as_deref().unwrap());
    let psql_tls = |sslmode: &str| {
        Command::new("psql")
            .args(["-X", "-w", "-A", "-t", "-c", "SELECT count(*) FROM example.greetings"])
            .arg(format!(
                "host=localhost port={pg_port} user={USER} dbname=mesh sslmode={sslmode} sslrootcert={ca_text}"
            ))
            .env("PGPASSWORD", &admin)
            .env("PGCONNECT_TIMEOUT", "30")
            .output()
            .unwrap()
    };
    let out = psql_tls("verify-full");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");
    let out = psql_tls("disable");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("encrypted connections only") && stderr.contains("sslmode"),
        "{stderr}"
    );

    // Flight SQL: grpc+tls with the CA.
    let flight = served.flight.clone().unwrap();
    assert!(flight.starts_with("grpc+tls://"), "{flight}");
    let answer = adbc(
        &format!("grpc+tls://localhost:{}", port(&flight)),
        &admin,
        json!({"ca": ca_text, "steps": [{"sql": "SELECT count(*) AS n FROM example.greetings"}]}),
    );
    assert_eq!(answer[0]["rows"][0][0], "4", "{answer}");

    // The CLI as a client: trusts the CA it is given, and only then.
    let away = tmp.path();
    let sql = "SELECT id, text FROM example.greetings ORDER BY id";
    let out = common::mesh_env(
        away,
        &["query", sql, "--format", "csv", "--ca-cert", ca_text],
        &[("MESH_SERVER", &https), ("MESH_TOKEN", &admin)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ok(&dir, &["query", sql, "--format", "csv"])
    );
    let out = common::mesh_env(
        away,
        &["query", sql],
        &[("MESH_SERVER", &https), ("MESH_TOKEN", &admin)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"));
    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
}

#[test]
fn serve_settings_come_from_flags_then_variables_then_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    let (_, cert, key) = certificates(tmp.path());
    // The file turns everything off; a variable turns Postgres back on.
    std::fs::write(
        dir.join("mesh-serve.yaml"),
        "http: off\npg: off\nflight: off\n",
    )
    .unwrap();
    let out = common::mesh(&dir, &["serve"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("every protocol is off"));
    let served = Served::spawn(&dir, &[], &[("MESH_PG", "127.0.0.1:0")]);
    assert!(served.base.is_empty() && served.flight.is_none());
    assert!(served.pg.is_some());
    drop(served);
    // A flag wins over the variable.
    let served = Served::spawn(
        &dir,
        &["--pg", "off", "--flight", "127.0.0.1:0"],
        &[("MESH_PG", "127.0.0.1:0")],
    );
    assert!(served.pg.is_none() && served.flight.is_some());
    drop(served);

    // Mistakes in the file point at their line and column.
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "http: localhost:80\ntsl:\n  cert: x\n").unwrap();
    let out = common::mesh(&dir, &["serve", "--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:1:7") && stderr.contains("bad.yaml:2:1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("known fields of the serve configuration"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error(s) in the configuration file"),
        "{stderr}"
    );
    // A key that does not fit the certificate, or a missing file, is
    // refused before anything listens.
    let (_, other_key) = {
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let (_, c, k) = certificates(&other);
        (c, k)
    };
    let out = common::mesh(
        &dir,
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            other_key.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not fit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::mesh(
        &dir,
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--tls-cert",
            "/nope.pem",
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nope.pem"));
}

#[test]
fn every_protocol_logs_its_statements_with_a_request_or_session_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let admin = token(&dir, USER);
    let served = Served::start_with(&dir, &[], &[("MESH_LOG", "info")]);
    let sql = "SELECT count(*) AS n FROM example.greetings";
    psql_ok(served.pg.as_deref().unwrap(), USER, &admin, &["-c", sql]);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "-H", "x-request-id: rest-call-7"])
        .args(["-H", &format!("Authorization: Bearer {admin}")])
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(json!({ "sql": sql }).to_string())
        .arg(format!("{}/api/v1/query", served.base))
        .output()
        .unwrap();
    assert!(out.status.success());
    adbc(
        served.flight.as_deref().unwrap(),
        &admin,
        json!({"steps": [{"sql": sql}]}),
    );
    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
    let statements: Vec<&str> = stderr.lines().filter(|l| l.contains("statement")).collect();
    let has = |needles: &[&str]| {
        statements
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    };
    assert!(
        has(&["postgres", "session=", "status=\"ok\""])
            || has(&["postgres", "session=", "status=ok"]),
        "{stderr}"
    );
    assert!(has(&["request_id=rest-call-7", "rest"]), "{stderr}");
    assert!(has(&["flight", "request_id="]), "{stderr}");
}
