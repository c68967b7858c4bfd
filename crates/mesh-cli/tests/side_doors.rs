//! The adversarial suite: a hostile consumer on every path (CLI, REST,
//! Postgres wire, Flight SQL), as a stranger, a granted consumer and an
//! owner, on a mesh with a row filter, `pii` columns, a private product,
//! a renamed `pii` column and a major that classifies a column anew.
//!
//! Each probe asserts that no protected value and no hidden fact appears
//! in anything the caller gets back: rows, errors, hints, plans, catalog
//! listings, run records, access answers and audit entries.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::clients::{adbc, psql};
use common::serve::{Served, body_json, curl, token};
use common::{edit, ok, request_id};
use serde_json::json;

/// `customers.profiles` hides the US from everyone but admins.
const ROW_FILTER: &str = r#"package mesh.domain.customers

import rego.v1

row_filters contains "country <> 'US'" if {
	input.output == "profiles"
	not "mesh-admin" in input.principal.roles
}
"#;

/// Private: it exists only for the finance team (nobody here) and admins.
const PAYROLL: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: finance
name: payroll
version: 1.0.0
owner: finance@acme.example
description:
  purpose: Salaries, for the finance team only.
access: {visibility: private}
inputs:
  - name: raw
    source:
      format: csv
      path: data/payroll.csv
      columns:
        - {name: employee, type: string}
        - {name: salary, type: bigint}
transform:
  query: SELECT employee, salary FROM raw
outputs:
  - name: payroll
    columns:
      - {name: employee, type: string, classification: pii, description: Who}
      - {name: salary, type: bigint, description: Yearly salary}
"#;

/// Release 0.1.0 calls the e-mail `contact` and classifies it `internal`;
/// 0.2.0 renames it `email` and classifies it `pii`.
const TICKETS: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: support
name: tickets
version: 0.1.0
owner: support@acme.example
description:
  purpose: Support tickets.
inputs:
  - name: raw
    source:
      format: csv
      path: data/tickets.csv
      columns:
        - {name: ticket_id, type: bigint, nullable: false}
        - {name: contact, type: string}
        - {name: subject, type: string}
transform:
  query: SELECT ticket_id, contact, subject FROM raw
outputs:
  - name: tickets
    columns:
      - {name: ticket_id, type: bigint, nullable: false, description: Ticket}
      - {name: contact, type: string, classification: internal, description: Who wrote}
      - {name: subject, type: string, description: About}
    quality:
      - {check: not_null, column: subject, severity: warn}
slo: {freshness: 7d}
"#;

const TICKET_MAILS: [&str; 2] = ["tina.hidden@mail.example", "tom.secret@mail.example"];
const SALARIES: [&str; 2] = ["912345", "873456"];

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The hostile mesh: the demo plus the cases above. `ana` owns customers
/// and support, `gina` holds a grant on customers/profiles (no pii),
/// `bob` is known and in no team.
fn hostile(tmp: &Path) -> PathBuf {
    let dir = common::demo(tmp, 200);
    for p in ["ana", "bob", "gina"] {
        ok(&dir, &["principal", "add", p]);
    }
    ok(
        &dir,
        &[
            "team",
            "add",
            "cx",
            "--owns",
            "customers",
            "--owns",
            "support",
            "--member",
            "ana",
        ],
    );
    write(&dir.join("customers/policies/filter.rego"), ROW_FILTER);
    write(&dir.join("finance/payroll/product.yaml"), PAYROLL);
    write(
        &dir.join("finance/payroll/data/payroll.csv"),
        &format!(
            "employee,salary\nDana Payne,{}\nEli Moss,{}\n",
            SALARIES[0], SALARIES[1]
        ),
    );
    write(&dir.join("support/tickets/product.yaml"), TICKETS);
    write(
        &dir.join("support/tickets/data/tickets.csv"),
        &format!(
            "ticket_id,contact,subject\n1,{},\n2,{},refund\n",
            TICKET_MAILS[0], TICKET_MAILS[1]
        ),
    );
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    // The rename, with the tighter classification.
    edit(
        &dir,
        "support/tickets/product.yaml",
        "{name: contact, type: string, classification: internal, description: Who wrote}",
        "{name: email, type: string, classification: pii, renamed_from: contact, description: Who wrote}",
    );
    edit(
        &dir,
        "support/tickets/product.yaml",
        "version: 0.1.0",
        "version: 0.2.0",
    );
    edit(
        &dir,
        "support/tickets/product.yaml",
        "SELECT ticket_id, contact, subject FROM raw",
        "SELECT ticket_id, contact AS email, subject FROM raw",
    );
    // A new major of customer_360 classifies `country` as personal data.
    edit(
        &dir,
        "customers/customer_360/product.yaml",
        "{name: country, type: string, description: ISO 3166 country code}",
        "{name: country, type: string, classification: pii, description: ISO 3166 country code}",
    );
    edit(
        &dir,
        "customers/customer_360/product.yaml",
        "version: 1.0.0",
        "version: 2.0.0",
    );
    ok(&dir, &["deploy", "--allow-breaking"]);
    ok(&dir, &["run", "support/tickets", "customers/customer_360"]);
    // gina asks for customers/profiles; an admin approves.
    let out = common::mesh_as(
        &dir,
        "gina",
        &[
            "access",
            "request",
            "customers/profiles",
            "--purpose",
            "churn study",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let id = request_id(&String::from_utf8_lossy(&out.stdout));
    ok(&dir, &["access", "approve", &id]);
    dir
}

/// The raw e-mail addresses of the demo's customers.
fn customer_mails(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("customers/profiles/data/customers.csv")).unwrap();
    csv.split([',', '\n'])
        .filter(|f| f.contains('@'))
        .map(str::to_string)
        .collect()
}

/// One answer on one path: whether it succeeded, and all its text.
#[derive(Debug)]
struct Answer {
    path: &'static str,
    ok: bool,
    text: String,
}

/// Runs `sql` as `who` on all four paths.
fn everywhere(dir: &Path, served: &Served, who: &str, token: &str, sqls: &[&str]) -> Vec<Answer> {
    let mut out = Vec::new();
    let flight = adbc(
        served.flight.as_deref().unwrap(),
        token,
        json!({"steps": sqls.iter().map(|s| json!({"sql": s})).collect::<Vec<_>>()}),
    );
    for (i, sql) in sqls.iter().enumerate() {
        let cli = common::mesh_as(dir, who, &["query", sql, "--format", "json"]);
        out.push(Answer {
            path: "cli",
            ok: cli.status.success(),
            text: format!(
                "{}{}",
                String::from_utf8_lossy(&cli.stdout),
                String::from_utf8_lossy(&cli.stderr)
            ),
        });
        let rest = curl(
            &served.base,
            "/api/v1/query",
            Some(token),
            Some(&json!({"sql": sql}).to_string()),
        );
        out.push(Answer {
            path: "rest",
            ok: rest.0 == 200,
            text: format!("{} {}", rest.0, rest.2),
        });
        let pg = psql(served.pg.as_deref().unwrap(), who, token, &["-c", sql]);
        out.push(Answer {
            path: "postgres",
            ok: pg.status.success(),
            text: format!(
                "{}{}",
                String::from_utf8_lossy(&pg.stdout),
                String::from_utf8_lossy(&pg.stderr)
            ),
        });
        let f = &flight[i];
        out.push(Answer {
            path: "flight",
            ok: f.get("error").is_none(),
            text: f.to_string(),
        });
    }
    out
}

/// Whether `text` shows `secret` as a value of its own: not inside a
/// longer run of letters and digits, where a salary's six digits can turn
/// up by chance (a timestamp's nanoseconds, a file's modification time).
fn shows(text: &str, secret: &str) -> bool {
    text.match_indices(secret).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + secret.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

fn assert_hides(label: &str, answers: &[Answer], secrets: &[String], failures: &mut Vec<String>) {
    for a in answers {
        for s in secrets {
            if shows(&a.text, s) {
                failures.push(format!("{label} [{}] shows `{s}`: {}", a.path, a.text));
            }
        }
    }
}

#[test]
fn no_side_door_shows_a_protected_value_or_a_hidden_fact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hostile(tmp.path());
    let served = Served::start(&dir, &[]);
    let tokens: Vec<(&str, String)> = ["ana", "gina", "bob"]
        .into_iter()
        .map(|p| (p, token(&dir, p)))
        .collect();
    let mut secrets: Vec<String> = customer_mails(&dir);
    assert!(secrets.len() >= 10, "{secrets:?}");
    secrets.extend(TICKET_MAILS.iter().map(|s| s.to_string()));
    secrets.extend(SALARIES.iter().map(|s| s.to_string()));
    secrets.extend(["HID".into(), "Dana Payne".into(), "payroll".into()]);
    let mut failures = Vec::new();

    // 1. The row filter is a barrier: expressions that would fail on a
    //    hidden (US) row never run on one, on any path.
    let barrier = [
        "SELECT count(*) AS n FROM customers.profiles WHERE CAST(CASE WHEN country = 'US' THEN concat('HID', customer_id) ELSE '1' END AS INT) = 1",
        "SELECT count(*) AS n FROM customers.profiles WHERE 1 / (CASE WHEN country = 'US' THEN 0 ELSE 1 END) = 1",
        "SELECT sum(1 / (CASE WHEN country = 'US' THEN 0 ELSE 1 END)) AS n FROM customers.profiles",
        "SELECT count(*) AS n FROM customers.profiles a JOIN customers.profiles p ON a.customer_id = p.customer_id AND CAST(CASE WHEN p.country = 'US' THEN 'HID' ELSE '1' END AS INT) = 1",
        "SELECT count(*) AS n FROM (SELECT row_number() OVER (PARTITION BY CAST(CASE WHEN country = 'US' THEN concat('HID', email) ELSE '1' END AS INT)) FROM customers.profiles)",
        "SELECT count(*) AS n FROM customers.profiles WHERE country = 'US'",
    ];
    for (who, t) in &tokens[..2] {
        let answers = everywhere(&dir, &served, who, t, &barrier);
        for a in &answers {
            if !a.ok {
                failures.push(format!(
                    "{who} [{}] barrier probe failed: {}",
                    a.path, a.text
                ));
            }
        }
        assert_hides(&format!("{who} barrier"), &answers, &secrets, &mut failures);
    }
    // The US count is 0 for them, on every path.
    let us = everywhere(&dir, &served, "ana", &tokens[0].1, &[barrier[5]]);
    for a in &us {
        let zero = a.text.contains("\"n\":0")
            || a.text.contains("\"n\": 0")
            || a.text.trim() == "0"
            || a.text.contains("[[\"0\"]]");
        if !zero {
            failures.push(format!("ana [{}] counts US rows: {}", a.path, a.text));
        }
    }

    // 2. EXPLAIN in every form shows nothing below the barrier.
    let explain = [
        "EXPLAIN VERBOSE SELECT count(*) FROM customers.profiles WHERE customer_id IS NOT NULL",
        "EXPLAIN ANALYZE SELECT count(*) FROM customers.profiles WHERE customer_id IS NOT NULL",
        "EXPLAIN ANALYZE VERBOSE SELECT email, country FROM customers.profiles",
    ];
    for (who, t) in &tokens[..2] {
        let answers = everywhere(&dir, &served, who, t, &explain);
        let mut leaks = secrets.clone();
        // Statistics of the stored table: its size, and any min or max.
        let stored = customer_mails(&dir).len();
        leaks.extend([
            format!("Rows=Exact({stored})"),
            format!("Rows=Inexact({stored})"),
            "Min=".into(),
            "Max=".into(),
            "country <>".into(),
            ".parquet".into(),
        ]);
        assert_hides(&format!("{who} explain"), &answers, &leaks, &mut failures);
    }

    // 3. Masks follow the data: time travel before the rename, and the
    //    older major of a product that now classifies `country`.
    let history = [
        "SELECT contact FROM support.\"tickets@0.1.0\"",
        "SELECT contact FROM support.\"tickets@1\"",
        "SELECT email FROM support.tickets",
        "SELECT DISTINCT country FROM customers.customer_360_v1",
        "SELECT DISTINCT country FROM customers.customer_360",
    ];
    let answers = everywhere(&dir, &served, "ana", &tokens[0].1, &history);
    for a in &answers {
        if !a.ok {
            failures.push(format!("ana [{}] history probe failed: {}", a.path, a.text));
        }
    }
    assert_hides("ana history", &answers, &secrets, &mut failures);
    // `country` is masked in both majors: no country code, quoted in
    // JSON or alone on a psql line.
    for a in &answers[12..] {
        for code in ["FR", "DE", "NL", "PL", "SE", "US", "GB", "ES", "IT", "BE"] {
            if a.text.contains(&format!("\"{code}\"")) || a.text.lines().any(|l| l == code) {
                failures.push(format!(
                    "ana [{}] reads country `{code}` raw: {}",
                    a.path, a.text
                ));
            }
        }
    }

    // 4. A product the caller may not see does not exist: the same answer
    //    as for a missing product, on every path, and no listing or hint
    //    names it.
    for (who, t) in &tokens {
        let hidden = everywhere(
            &dir,
            &served,
            who,
            t,
            &[
                "SELECT * FROM finance.payroll",
                "SELECT * FROM finance.nothing",
            ],
        );
        for (h, m) in hidden[..4].iter().zip(&hidden[4..]) {
            let same = h.text.replace("payroll", "X") == m.text.replace("nothing", "X");
            if h.ok || !same {
                failures.push(format!(
                    "{who} [{}] tells payroll from a missing table: {} | {}",
                    h.path, h.text, m.text
                ));
            }
        }
        let listings = everywhere(
            &dir,
            &served,
            who,
            t,
            &[
                "SELECT * FROM information_schema.tables",
                "SELECT * FROM information_schema.columns",
                "SELECT * FROM information_schema.schemata",
                "SHOW TABLES",
                "SELECT * FROM finance.payrol",
                "SELECT * FROM '/etc/passwd'",
                "SELECT relname FROM pg_catalog.pg_class",
            ],
        );
        for a in &listings {
            if a.text.contains("payroll") || a.text.contains("salary") {
                failures.push(format!(
                    "{who} [{}] listing names payroll: {}",
                    a.path, a.text
                ));
            }
        }
        // information_schema.columns answers for every caller.
        if !listings[4].ok || !listings[5].ok || !listings[6].ok || !listings[7].ok {
            failures.push(format!(
                "{who}: information_schema.columns fails: {listings:?}"
            ));
        }
        let objects = adbc(
            served.flight.as_deref().unwrap(),
            t,
            json!({"steps": [{"objects": true}]}),
        );
        if objects.to_string().contains("payroll") {
            failures.push(format!("{who} [flight objects] names payroll: {objects}"));
        }
        // An access request: 404 for both, with the same problem.
        let ask = |product: &str| {
            curl(
                &served.base,
                "/api/v1/access/requests",
                Some(t),
                Some(&json!({"product": product, "purpose": "probe"}).to_string()),
            )
        };
        let (hidden, missing) = (ask("finance/payroll"), ask("finance/nothing"));
        if hidden.0 != 404
            || hidden.0 != missing.0
            || hidden.2.replace("payroll", "X") != missing.2.replace("nothing", "X")
        {
            failures.push(format!(
                "{who}: an access request tells payroll apart: {hidden:?} | {missing:?}"
            ));
        }
    }

    // 5. Run records: samples, counts and errors as the caller may read.
    for (who, t) in &tokens {
        let cli = common::mesh_as(&dir, who, &["runs", "--format", "json", "--limit", "100"]);
        assert!(cli.status.success(), "{cli:?}");
        let rest = curl(&served.base, "/api/v1/runs?limit=100", Some(t), None);
        assert_eq!(rest.0, 200, "{rest:?}");
        for (path, text) in [
            ("cli", String::from_utf8_lossy(&cli.stdout).into_owned()),
            ("rest", rest.2.clone()),
        ] {
            for s in &secrets {
                if shows(&text, s) {
                    failures.push(format!("{who} [{path}] runs show `{s}`: {text}"));
                }
            }
        }
    }
    // The owner sees the failing check's row, with the e-mail masked.
    let runs = body_json(&curl(
        &served.base,
        "/api/v1/runs?product=support/tickets&limit=1",
        Some(&tokens[0].1),
        None,
    ));
    let sample = runs.to_string();
    assert!(sample.contains("\"ticket_id\":1"), "{sample}");

    // 6. The audit entries a caller reads hold no policy internals of
    //    products it may not read.
    let denied = curl(
        &served.base,
        "/api/v1/query",
        Some(&tokens[2].1),
        Some(r#"{"sql": "SELECT * FROM customers.profiles"}"#),
    );
    assert_eq!(denied.0, 403, "{denied:?}");
    let bob_audit = curl(&served.base, "/api/v1/audit", Some(&tokens[2].1), None);
    assert_eq!(bob_audit.0, 200, "{bob_audit:?}");
    let text = &bob_audit.2;
    assert!(text.contains("customers.profiles"), "{text}");
    for internal in ["country <>", "redact", "row_filters"] {
        if text.contains(internal) {
            failures.push(format!("bob's audit shows `{internal}`: {text}"));
        }
    }

    // 7. Unknown fields in a body are refused.
    let unknown = curl(
        &served.base,
        "/api/v1/query",
        Some(&tokens[0].1),
        Some(r#"{"sql": "SELECT 1", "as_user": "admin"}"#),
    );
    if unknown.0 != 400 {
        failures.push(format!("an unknown field is accepted: {unknown:?}"));
    }

    assert!(
        failures.is_empty(),
        "{} side doors:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Statements of growing depth, up to 100,000 terms, get an error on
/// every protocol (SQLSTATE 54001 on Postgres), and the server keeps
/// answering.
#[test]
fn a_statement_too_deep_is_refused_and_the_server_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::demo(tmp.path(), 50);
    let admin = token(&dir, common::USER);
    let served = Served::start(&dir, &[]);
    let pg = served.pg.clone().unwrap();
    let mut failures = Vec::new();
    for terms in [300usize, 1_000, 5_000, 100_000] {
        let sql = format!("SELECT 1{}", "+1".repeat(terms));
        let file = tmp.path().join(format!("deep-{terms}.sql"));
        std::fs::write(&file, &sql).unwrap();
        // REST, with the body from a file (it is too long for an argument).
        let body = tmp.path().join(format!("deep-{terms}.json"));
        std::fs::write(&body, json!({"sql": sql}).to_string()).unwrap();
        let rest = std::process::Command::new("curl")
            .args(["-s", "--max-time", "60", "-w", "\n%{http_code}"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {admin}"))
            .args(["-H", "content-type: application/json"])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!("{}/api/v1/query", served.base))
            .output()
            .unwrap();
        let rest = String::from_utf8_lossy(&rest.stdout).into_owned();
        let deep = terms > 1_000;
        let status = rest.rsplit('\n').next().unwrap_or("").to_string();
        if deep != (status == "400" && rest.contains("statement-too-complex")) {
            failures.push(format!(
                "REST, {terms} terms: {}",
                &rest[rest.len().saturating_sub(300)..]
            ));
        }
        let out = psql(&pg, common::USER, &admin, &["-f", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if deep != (!out.status.success() && err.contains("54001")) {
            failures.push(format!("Postgres, {terms} terms: {err}"));
        }
        let flight = adbc(
            served.flight.as_deref().unwrap(),
            &admin,
            json!({"steps": [{"sql": sql}]}),
        );
        let text = flight.to_string();
        if deep != text.contains("too complex") {
            failures.push(format!(
                "Flight, {terms} terms: {}",
                &text[..text.len().min(300)]
            ));
        }
        // The server still answers other clients.
        let alive = curl(
            &served.base,
            "/api/v1/query",
            Some(&admin),
            Some(r#"{"sql": "SELECT count(*) AS n FROM sales.orders"}"#),
        );
        assert_eq!(alive.0, 200, "after {terms} terms: {alive:?}");
    }
    // One error table: a caller's error is the caller's on every
    // protocol, and a missing product reads the same on all three.
    for (sql, http, sqlstate, grpc) in [
        ("SELECT 1 / 0", 400, "22012", "INVALID_ARGUMENT"),
        ("SELECT CAST('x' AS INT)", 400, "22018", "INVALID_ARGUMENT"),
        (
            "SELECT nope FROM sales.orders",
            400,
            "42703",
            "INVALID_ARGUMENT",
        ),
        ("SELECT * FROM sales.nothing", 404, "42P01", "NOT_FOUND"),
    ] {
        let rest = curl(
            &served.base,
            "/api/v1/query",
            Some(&admin),
            Some(&json!({"sql": sql}).to_string()),
        );
        if rest.0 != http {
            failures.push(format!("REST `{sql}`: {rest:?}"));
        }
        let out = psql(&pg, common::USER, &admin, &["-c", sql]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !err.contains(sqlstate) {
            failures.push(format!("Postgres `{sql}`: {err}"));
        }
        let flight = adbc(
            served.flight.as_deref().unwrap(),
            &admin,
            json!({"steps": [{"sql": sql}]}),
        );
        if !flight.to_string().contains(grpc) {
            failures.push(format!("Flight `{sql}`: {flight}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (clean, log) = served.stop();
    assert!(clean, "{log}");
}

/// The statement timeout and the memory limit hold on every protocol:
/// the statement fails with its own error, and the server answers the
/// next one.
#[test]
fn statement_timeouts_and_memory_limits_hold_on_every_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::demo(tmp.path(), 50);
    write(
        &dir.join("mesh-serve.yaml"),
        "limits:\n  statement_timeout: 30s\n  statement_memory: 4MiB\n  server_memory: 64MiB\n",
    );
    // A bad value is refused before anything starts.
    let bad = common::mesh(&dir, &["serve", "--statement-timeout", "soon"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`soon` is not a duration"),
        "{bad:?}"
    );
    let admin = token(&dir, common::USER);
    // The variable wins over the file's 30s.
    let served = Served::start_with(&dir, &[], &[("MESH_STATEMENT_TIMEOUT", "2s")]);
    let pg = served.pg.clone().unwrap();
    // A join that multiplies rows under an aggregation: it yields to the
    // timer only between its inputs' batches, minutes apart.
    let slow = "SELECT a.value % 7 AS k, count(*) FROM generate_series(1, 60000) a \
                CROSS JOIN generate_series(1, 60000) b GROUP BY 1";
    let greedy = "SELECT array_length(array_agg(value), 1) FROM generate_series(1, 5000000)";
    let mut failures = Vec::new();
    for (sql, http, sqlstate, grpc, says) in [
        (slow, 408, "57014", "DeadlineExceeded", "timeout of 2s"),
        (
            greedy,
            507,
            "53200",
            "ResourceExhausted",
            "memory limit of 4 MiB",
        ),
    ] {
        let rest = curl(
            &served.base,
            "/api/v1/query",
            Some(&admin),
            Some(&json!({"sql": sql}).to_string()),
        );
        if rest.0 != http || !rest.2.contains(says) {
            failures.push(format!("REST `{sql}`: {rest:?}"));
        }
        let out = psql(&pg, common::USER, &admin, &["-c", sql]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !err.contains(sqlstate) || !err.contains(says) {
            failures.push(format!("Postgres `{sql}`: {err}"));
        }
        let flight = adbc(
            served.flight.as_deref().unwrap(),
            &admin,
            json!({"steps": [{"sql": sql}]}),
        )
        .to_string();
        if !flight.contains(grpc) || !flight.contains(says) {
            failures.push(format!("Flight `{sql}`: {flight}"));
        }
    }
    // Within the limits, the same kind of statement answers.
    let fine = curl(
        &served.base,
        "/api/v1/query",
        Some(&admin),
        Some(
            r#"{"sql": "SELECT array_length(array_agg(value), 1) AS n FROM generate_series(1, 1000)"}"#,
        ),
    );
    assert_eq!(fine.0, 200, "{fine:?}");
    assert!(fine.2.contains("1000"), "{fine:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A statement that keeps every core busy (a join multiplying rows under
/// an aggregation) neither stops the server from answering others nor
/// outlives a Postgres cancel request or a session's own timeout. The
/// server's own limit is an hour, so only the cancel can end it in time.
#[test]
fn a_heavy_statement_is_cancelled_and_others_are_answered_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::demo(tmp.path(), 50);
    let admin = token(&dir, common::USER);
    let served = Served::start_with(&dir, &[], &[("MESH_STATEMENT_TIMEOUT", "1h")]);
    let pg = served.pg.clone().unwrap();
    let heavy = "SELECT a.value % 7 AS k, count(*) FROM generate_series(1, 200000) a \
                 CROSS JOIN generate_series(1, 200000) b GROUP BY 1";
    let (host, port) = common::clients::split(&pg);
    // psql sends a cancel request on SIGINT; `timeout` bounds the wait. A
    // psql still connecting when the signal comes (on a machine busy with
    // the other tests' heavy statements) just exits, saying nothing: then
    // the attempt is repeated with a longer wait, a bounded number of times.
    let mut err = String::new();
    for wait in ["3", "10", "30"] {
        let cancelled = std::process::Command::new("timeout")
            .args(["-s", "INT", "-k", "120", wait, "psql", "-X", "-w"])
            .args(["-v", "VERBOSITY=verbose", "-h", host, "-p", port])
            .args(["-U", common::USER, "-d", "mesh", "-c", heavy])
            .env("PGPASSWORD", &admin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Meanwhile, other clients are answered.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let other = curl(
            &served.base,
            "/api/v1/query",
            Some(&admin),
            Some(r#"{"sql": "SELECT count(*) AS n FROM sales.orders"}"#),
        );
        assert_eq!(other.0, 200, "{other:?}");
        let out = cancelled.wait_with_output().unwrap();
        err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !err.trim().is_empty() {
            break;
        }
    }
    assert!(
        err.contains("57014") && err.contains("user request"),
        "{err}"
    );
    // A session's own timeout, on the same statement.
    let out = psql(
        &pg,
        common::USER,
        &admin,
        &["-c", "SET statement_timeout = '1s'", "-c", heavy],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("57014") && err.contains("timeout"), "{err}");
    let (clean, log) = served.stop();
    assert!(clean, "{log}");
}
