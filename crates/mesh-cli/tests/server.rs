//! `mesh serve` end to end: the real binary serving a real mesh on a
//! loopback port, called with curl (a real HTTP client).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;
use common::{USER, init, json, ok};
use serde_json::Value;

/// A running `mesh serve`, stopped with SIGTERM when dropped.
struct Served {
    child: Option<Child>,
    base: String,
}

impl Served {
    fn start(dir: &Path) -> Served {
        let mut child = Command::new(cargo_bin("mesh"))
            .args(["serve", "--http", "127.0.0.1:0"])
            .current_dir(dir)
            .env("MESH_USER", USER)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The first line names the bound address; a reader thread keeps
        // the wait bounded.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Served {
            child: Some(child),
            base,
        }
    }

    /// Stops the server with SIGTERM and returns (exited cleanly, stderr).
    fn stop(mut self) -> (bool, String) {
        let child = self.child.take().unwrap();
        terminate(&child);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            let _ = child.wait();
        }
    }
}

/// `curl` a path: (HTTP status, content type, body).
fn curl(base: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String, String) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "--max-time",
        "60",
        "-w",
        "\n%{http_code} %{content_type}",
    ]);
    if let Some(t) = token {
        c.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if let Some(b) = body {
        c.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    c.arg(format!("{base}{path}"));
    let out = c.output().expect("curl is installed (.ci/run installs it)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let (code, ctype) = tail.split_once(' ').unwrap_or((tail, ""));
    (code.parse().unwrap(), ctype.to_string(), body.to_string())
}

fn body_json(r: &(u16, String, String)) -> Value {
    serde_json::from_str(&r.2).unwrap_or_else(|e| panic!("{e}: {}", r.2))
}

fn token(dir: &Path, principal: &str) -> String {
    ok(dir, &["token", "create", "--principal", principal])
        .trim()
        .to_string()
}

#[test]
fn the_rest_api_serves_the_mesh_to_token_holders_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    ok(&dir, &["team", "add", "example-team", "--owns", "example"]);
    ok(&dir, &["principal", "add", "ana", "--team", "example-team"]);
    ok(&dir, &["principal", "add", "bob"]);
    let (admin, ana, bob) = (token(&dir, USER), token(&dir, "ana"), token(&dir, "bob"));
    let served = Served::start(&dir);
    let base = served.base.clone();

    // Health and the document are open; the API is not.
    let r = curl(&base, "/healthz", None, None);
    assert_eq!((r.0, body_json(&r)["status"].clone()), (200, "ok".into()));
    assert_eq!(curl(&base, "/readyz", None, None).0, 200);
    let doc = body_json(&curl(&base, "/openapi.json", None, None));
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/api/v1/products",
        "/api/v1/products/{domain}/{name}",
        "/api/v1/products/{domain}/{name}/history",
        "/api/v1/search",
        "/api/v1/query",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
        let body = path.ends_with("/query").then_some(r#"{"sql": "SELECT 1"}"#);
        let r = curl(
            &base,
            &path.replace("{domain}/{name}", "example/greetings"),
            None,
            body,
        );
        assert_eq!(r.0, 401, "{path}: {}", r.2);
        assert_eq!(r.1, "application/problem+json");
        assert_eq!(
            body_json(&r)["type"],
            "https://meshwork.dev/problems/unauthenticated"
        );
        let r = curl(
            &base,
            &path.replace("{domain}/{name}", "example/greetings"),
            Some("mesh_000000000000_nope"),
            body,
        );
        assert_eq!(r.0, 401, "{path} with a bad token: {}", r.2);
    }

    // Catalog: list (paginated), show, history, search.
    let r = curl(&base, "/api/v1/products?limit=1", Some(&admin), None);
    assert_eq!(r.0, 200, "{}", r.2);
    let page = body_json(&r);
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["name"], "greetings");
    assert!(page.get("next_offset").is_none());
    assert_eq!(
        curl(&base, "/api/v1/products?limit=0", Some(&admin), None).0,
        400
    );
    let show = body_json(&curl(
        &base,
        "/api/v1/products/example/greetings",
        Some(&ana),
        None,
    ));
    assert_eq!(
        show,
        json(
            &dir,
            &["catalog", "show", "example/greetings", "--format", "json"]
        )
    );
    let history = body_json(&curl(
        &base,
        "/api/v1/products/example/greetings/history",
        Some(&ana),
        None,
    ));
    assert_eq!(history["total"], 1);
    assert_eq!(history["items"][0]["outputs"][0]["row_count"], 4);
    let r = curl(&base, "/api/v1/products/example/nope", Some(&ana), None);
    assert_eq!(r.0, 404, "{}", r.2);
    let hits = body_json(&curl(&base, "/api/v1/search?q=greeting", Some(&bob), None));
    assert_eq!(hits["items"][0]["product"], "example/greetings");

    // Query: the same rows as `mesh query --format json`, as the caller.
    let sql = "SELECT id, language, text FROM example.greetings ORDER BY id";
    let body = serde_json::json!({"sql": sql}).to_string();
    let r = curl(&base, "/api/v1/query", Some(&ana), Some(&body));
    assert_eq!(r.0, 200, "{}", r.2);
    let answer = body_json(&r);
    assert_eq!(
        answer["rows"],
        json(&dir, &["query", sql, "--format", "json"])
    );
    assert_eq!(answer["truncated"], false);
    let limited = serde_json::json!({"sql": sql, "limit": 2}).to_string();
    let answer = body_json(&curl(&base, "/api/v1/query", Some(&ana), Some(&limited)));
    assert_eq!(
        (answer["row_count"].clone(), answer["truncated"].clone()),
        (2.into(), true.into())
    );
    // bob is known but not in the owning team and holds no grant.
    let r = curl(&base, "/api/v1/query", Some(&bob), Some(&body));
    assert_eq!(r.0, 403, "{}", r.2);
    let problem = body_json(&r);
    assert_eq!(
        problem["type"],
        "https://meshwork.dev/problems/access-denied"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("mesh access request example/greetings"),
        "{problem}"
    );
    // Bad SQL is the client's error, with the planner's hint.
    let bad = serde_json::json!({"sql": "SELECT * FROM example.nope"}).to_string();
    let r = curl(&base, "/api/v1/query", Some(&ana), Some(&bad));
    assert_eq!(r.0, 400, "{}", r.2);
    assert!(
        body_json(&r)["hint"]
            .as_str()
            .unwrap()
            .contains("example.greetings")
    );
    let r = curl(&base, "/api/v2/nothing", Some(&ana), None);
    assert_eq!((r.0, r.1.as_str()), (404, "application/problem+json"));
    let r = curl(&base, "/api/v1/query", Some(&ana), None);
    assert_eq!((r.0, r.1.as_str()), (405, "application/problem+json"));

    // Every query through the server is audited under its caller.
    let audit = json(
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
    assert_eq!(audit[0]["decision"], "deny");

    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}
