//! Who gets in, and how many: floods of wrong tokens are checked only a
//! few times per principal and per source, and each protocol caps its
//! open connections and lets a silent client go.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::clients::{adbc, psql};
use common::serve::{Served, curl, token};
use common::{USER, ok};
use serde_json::json;

/// The token `good` with its last secret character changed.
fn wrong_secret(good: &str) -> String {
    let (head, secret) = good.rsplit_once('_').unwrap();
    let last = secret.chars().last().unwrap();
    let other = if last == 'a' { 'b' } else { 'a' };
    format!("{head}_{}{other}", &secret[..secret.len() - 1])
}

/// How many refused token uses the audit log holds with `reason` ending
/// in `why`.
fn audited(dir: &std::path::Path, why: &str) -> usize {
    let audit = common::json(dir, &["audit", "--action", "token.use", "--format", "json"]);
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"].as_str().is_some_and(|r| r.ends_with(why)))
        .count()
}

const ONE: &str = r#"{"sql": "SELECT 1 AS one"}"#;

/// A flood of wrong secrets for one token costs one audit row per
/// checked attempt, only the first few of them checked, and does not
/// lock out the holder of the right one.
#[test]
fn a_flood_of_wrong_secrets_is_checked_and_audited_a_few_times_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::demo(tmp.path(), 50);
    let good = token(&dir, common::USER);
    let served = Served::start(&dir, &[]);
    let sql = ONE;
    // The holder signs in once: this process now knows its secret.
    assert_eq!(
        curl(&served.base, "/api/v1/query", Some(&good), Some(sql)).0,
        200
    );
    let wrong = wrong_secret(&good);
    for _ in 0..30 {
        let r = curl(&served.base, "/api/v1/query", Some(&wrong), Some(sql));
        assert_eq!(r.0, 401, "{r:?}");
    }
    // During the burst, the right secret still gets in.
    assert_eq!(
        curl(&served.base, "/api/v1/query", Some(&good), Some(sql)).0,
        200
    );
    assert_eq!(audited(&dir, "wrong secret"), 5);
}

/// A flood from one address, spread over many tokens none of which is
/// tried more than a few times, is limited too: past 20 failures, a
/// secret this server has not verified is refused unchecked, on every
/// protocol, while a secret it has verified still gets in.
#[test]
fn a_flood_from_one_source_is_checked_a_few_times_only_on_every_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::demo(tmp.path(), 50);
    let good = token(&dir, USER);
    ok(&dir, &["principal", "add", "bob"]);
    let bob = token(&dir, "bob");
    let served = Served::start(&dir, &[]);
    assert_eq!(
        curl(&served.base, "/api/v1/query", Some(&good), Some(ONE)).0,
        200
    );
    // 25 tokens that name no token at all: cheap to refuse, but counted.
    for i in 0..25 {
        let unknown = format!("mesh_nosuch{i}_secret");
        let r = curl(&served.base, "/api/v1/query", Some(&unknown), Some(ONE));
        assert_eq!(r.0, 401, "{r:?}");
    }
    // A wrong secret for a real token is now refused unchecked: nothing
    // is audited as a wrong secret.
    let r = curl(
        &served.base,
        "/api/v1/query",
        Some(&wrong_secret(&good)),
        Some(ONE),
    );
    assert_eq!(r.0, 401, "{r:?}");
    assert_eq!(audited(&dir, "wrong secret"), 0);
    // bob's right secret, never verified by this server, waits for the
    // burst to end on every protocol from this address...
    let r = curl(&served.base, "/api/v1/query", Some(&bob), Some(ONE));
    assert_eq!(r.0, 401, "{r:?}");
    let pg = served.pg.clone().unwrap();
    let out = psql(&pg, "bob", &bob, &["-c", "SELECT 1"]);
    assert!(!out.status.success(), "{out:?}");
    let flight = served.flight.clone().unwrap();
    let refused = adbc(&flight, &bob, json!({"steps": [{"sql": "SELECT 1"}]}));
    assert!(refused[0]["error"].is_string(), "{refused}");
    // ...while the holder of a verified secret is not locked out.
    assert_eq!(
        curl(&served.base, "/api/v1/query", Some(&good), Some(ONE)).0,
        200
    );
    let out = psql(&pg, USER, &good, &["-c", "SELECT 1"]);
    assert!(out.status.success(), "{out:?}");
}

/// `GET /healthz` on a kept-alive connection; true when it answered.
fn healthz(s: &mut TcpStream) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: mesh\r\n\r\n")
        .unwrap();
    read_until(s, |text| text.contains("\r\n\r\n") && text.ends_with('}'))
}

/// What `s` sends until `done` says it is enough, the connection closes,
/// or the read times out.
fn read_until(s: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if done(&String::from_utf8_lossy(&got)) {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// HTTP and Flight SQL each cap their open connections (more are told
/// to come back later), a client that connects and says nothing is let
/// go, and the slots come back.
#[test]
fn http_and_flight_connections_are_capped_and_silent_clients_let_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path());
    ok(&dir, &["deploy"]);
    let admin = token(&dir, USER);
    let served = Served::start(
        &dir,
        &["--http-connections", "2", "--flight-connections", "1"],
    );
    let http = served.base.strip_prefix("http://").unwrap().to_string();

    // Two kept-alive HTTP connections hold both slots.
    let mut held: Vec<TcpStream> = (0..2).map(|_| connect(&http)).collect();
    for s in &mut held {
        assert!(healthz(s).starts_with("HTTP/1.1 200"));
    }
    let mut third = connect(&http);
    let refused = healthz(&mut third);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("application/problem+json"), "{refused}");
    assert!(refused.contains("too-many-connections"), "{refused}");
    assert!(refused.contains("limits.http_connections"), "{refused}");
    drop(held.pop());
    let mut answered = String::new();
    for _ in 0..100 {
        answered = healthz(&mut connect(&http));
        if answered.starts_with("HTTP/1.1 200") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // A client that connects and sends nothing is let go.
    drop(held);
    let mut silent = connect(&http);
    let said = read_until(&mut silent, |_| false);
    assert_eq!(said, "", "a silent client is closed without an answer");

    // One Flight SQL connection (an HTTP/2 preface and settings) holds
    // the only slot: a query must wait, and works once it is free.
    let flight = served.flight.clone().unwrap();
    let addr = flight.strip_prefix("grpc://").unwrap();
    let mut holder = connect(addr);
    holder
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    holder.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    // The server's own settings show it took the connection.
    let mut head = [0u8; 9];
    holder.read_exact(&mut head).unwrap();
    assert_eq!(head[3], 4, "a SETTINGS frame");
    let job = json!({"steps": [{"sql": "SELECT 41 + 1 AS answer"}]});
    let refused = adbc(&flight, &admin, job.clone());
    let error = refused[0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(error.contains("unavailable"), "{refused}");
    drop(holder);
    let mut answers = json!(null);
    for _ in 0..20 {
        answers = adbc(&flight, &admin, job.clone());
        if answers[0]["rows"].is_array() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(answers[0]["rows"], json!([["42"]]), "{answers}");
}
