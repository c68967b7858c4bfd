//! `mesh serve` end to end: the real binary serving a real mesh on a
//! loopback port, called with curl (a real HTTP client).
#![allow(clippy::unwrap_used)]

mod common;

use common::serve::{Served, body_json, curl, curl_method, token};
use common::{USER, init, json, ok};

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
    let served = Served::start(&dir, &[]);
    let base = served.base.clone();

    // Health and the document are open; the API is not.
    let r = curl(&base, "/healthz", None, None);
    assert_eq!((r.0, body_json(&r)["status"].clone()), (200, "ok".into()));
    assert_eq!(curl(&base, "/readyz", None, None).0, 200);
    // Metrics in the format asked for: Prometheus's classic text for
    // `text/plain`, OpenMetrics otherwise.
    let scrape = |accept: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "60", "-D", "-", "-H"])
            .arg(format!("Accept: {accept}"))
            .arg("-H")
            .arg(format!("Authorization: Bearer {admin}"))
            .arg(format!("{base}/metrics"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_lowercase()
    };
    let classic = scrape("text/plain;version=0.0.4");
    assert!(
        classic.contains("content-type: text/plain; version=0.0.4"),
        "{classic}"
    );
    assert!(
        classic.contains("# type mesh_http_requests_total counter"),
        "{classic}"
    );
    assert!(!classic.contains("# eof"), "{classic}");
    let open = scrape("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");
    assert!(
        open.contains("content-type: application/openmetrics-text"),
        "{open}"
    );
    assert!(open.trim_end().ends_with("# eof"), "{open}");
    let doc = body_json(&curl(&base, "/openapi.json", None, None));
    assert_eq!(doc["openapi"], "3.0.3");
    // The document validates against the OpenAPI 3.0 schema
    // (openapi-spec-validator, from the venv scripts/test builds).
    let file = tmp.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let python = std::env::var("MESH_TEST_PYTHON")
        .expect("MESH_TEST_PYTHON is not set: run the tests with scripts/test");
    let checked = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "the OpenAPI document does not validate: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    for path in [
        "/metrics",
        "/api/v1/access/requests/{id}/approve",
        "/api/v1/access/requests/{id}/deny",
        "/api/v1/access/grants/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    assert!(doc["paths"]["/api/v1/runs"]["post"].is_object());
    for path in [
        "/api/v1/products",
        "/api/v1/products/{domain}/{name}",
        "/api/v1/products/{domain}/{name}/history",
        "/api/v1/search",
        "/api/v1/runs",
        "/api/v1/query",
        "/api/v1/audit",
        "/api/v1/access/requests",
        "/api/v1/access/grants",
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
    // The data's age moves with the clock between the two reads.
    let aged = |mut page: serde_json::Value| {
        page["health"]["age_seconds"] = serde_json::Value::Null;
        page
    };
    let show = aged(body_json(&curl(
        &base,
        "/api/v1/products/example/greetings",
        Some(&ana),
        None,
    )));
    assert_eq!(
        show,
        aged(json(
            &dir,
            &["catalog", "show", "example/greetings", "--format", "json"]
        ))
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
    // Runs: `mesh runs --format json`, paginated.
    let runs = body_json(&curl(&base, "/api/v1/runs", Some(&ana), None));
    assert_eq!(
        runs["items"],
        json(&dir, &["runs", "--format", "json"]),
        "{runs}"
    );
    assert_eq!(runs["total"], 1);
    let r = curl(&base, "/api/v1/runs?product=example/nope", Some(&ana), None);
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
    // Columns are typed in the contracts' vocabulary, not Arrow's.
    assert_eq!(
        answer["columns"],
        serde_json::json!([
            {"name": "id", "type": "bigint"},
            {"name": "language", "type": "string"},
            {"name": "text", "type": "string"}
        ])
    );
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
    // A missing table is a 404 (42P01 and NOT_FOUND on the other
    // protocols), with the planner's hint.
    let bad = serde_json::json!({"sql": "SELECT * FROM example.nope"}).to_string();
    let r = curl(&base, "/api/v1/query", Some(&ana), Some(&bad));
    assert_eq!(r.0, 404, "{}", r.2);
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

#[test]
fn runs_access_and_the_audit_log_are_operated_over_rest_as_the_caller() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    ok(&dir, &["team", "add", "example-team", "--owns", "example"]);
    ok(&dir, &["principal", "add", "ana", "--team", "example-team"]);
    ok(&dir, &["principal", "add", "bob"]);
    let (admin, ana, bob) = (token(&dir, USER), token(&dir, "ana"), token(&dir, "bob"));
    let served = Served::start(&dir, &[]);
    let base = served.base.clone();
    let post = |path: &str, t: &str, body: &str| curl(&base, path, Some(t), Some(body));

    // Runs: only the owning team (or an admin) may trigger one; running
    // everything is an admin's call.
    let one = r#"{"products": ["example/greetings"]}"#;
    let r = post("/api/v1/runs", &bob, one);
    assert_eq!(r.0, 403, "{}", r.2);
    assert!(
        body_json(&r)["detail"]
            .as_str()
            .unwrap()
            .contains("example-team")
            || r.2.contains("domain `example`"),
        "{}",
        r.2
    );
    let r = post("/api/v1/runs", &ana, "{}");
    assert_eq!(r.0, 403, "{}", r.2);
    let page = |t: &str| {
        body_json(&curl(
            &base,
            "/api/v1/products/example/greetings",
            Some(t),
            None,
        ))
    };
    let before = page(&ana)["last_run"]["id"].clone();
    let r = post("/api/v1/runs", &ana, one);
    assert_eq!(r.0, 200, "{}", r.2);
    let done = body_json(&r);
    assert_eq!(done["succeeded"], true);
    // The product page (built once, then served from memory) shows the
    // new run at once.
    let after = page(&ana)["last_run"]["id"].clone();
    assert_ne!(before, after);
    assert_eq!(after, done["runs"][0]["id"]);
    assert_eq!(done["runs"][0]["product"], "example/greetings");
    // Nothing it reads changed since the server's start-up run.
    assert_eq!(done["runs"][0]["status"], "up-to-date", "{done}");
    let forced = body_json(&post(
        "/api/v1/runs",
        &ana,
        r#"{"products": ["example/greetings"], "force": true}"#,
    ));
    assert_eq!(forced["runs"][0]["status"], "succeeded", "{forced}");
    assert_eq!(forced["runs"][0]["steps"][3]["step"], "commit", "{forced}");
    let shown = body_json(&curl(
        &base,
        &format!("/api/v1/runs/{}", forced["runs"][0]["id"].as_str().unwrap()),
        Some(&ana),
        None,
    ));
    assert_eq!(shown["steps"], forced["runs"][0]["steps"]);
    let failed = body_json(&curl(&base, "/api/v1/runs?status=failed", Some(&ana), None));
    assert_eq!(failed["items"], serde_json::json!([]), "{failed}");
    let r = post("/api/v1/runs", &admin, "");
    assert_eq!(r.0, 200, "{}", r.2);
    let r = post("/api/v1/runs", &ana, r#"{"product": "x"}"#);
    assert_eq!(
        (r.0, r.1.as_str()),
        (400, "application/problem+json"),
        "{}",
        r.2
    );
    let r = post("/api/v1/runs", &ana, r#"{"products": ["example/nope"]}"#);
    assert_eq!(r.0, 404, "{}", r.2);
    let runs = body_json(&curl(&base, "/api/v1/runs", Some(&ana), None));
    assert_eq!(runs["total"], 4, "{runs}");
    assert_eq!(
        runs["items"][0]["id"],
        json(&dir, &["runs", "--format", "json"])[0]["id"]
    );

    // The access loop: bob asks, ana (an owner) approves, bob reads, and
    // bob's grant ends when he revokes it.
    let sql = serde_json::json!({"sql": "SELECT count(*) AS n FROM example.greetings"}).to_string();
    assert_eq!(post("/api/v1/query", &bob, &sql).0, 403);
    let r = post(
        "/api/v1/access/requests",
        &bob,
        r#"{"product": "example/greetings", "purpose": "churn model", "duration": "7d"}"#,
    );
    assert_eq!(r.0, 201, "{}", r.2);
    let request = body_json(&r);
    assert_eq!(request["status"], "pending");
    let id = request["id"].as_str().unwrap().to_string();
    let r = post(
        "/api/v1/access/requests",
        &bob,
        r#"{"product": "example/greetings", "purpose": "x", "duration": "soon"}"#,
    );
    assert_eq!(r.0, 400, "{}", r.2);
    let inbox = body_json(&curl(&base, "/api/v1/access/requests", Some(&ana), None));
    assert_eq!(inbox["items"][0]["id"], id.as_str());
    assert_eq!(inbox["items"][0]["can_decide"], true);
    let mine = body_json(&curl(&base, "/api/v1/access/requests", Some(&bob), None));
    assert_eq!(mine["items"][0]["can_decide"], false);
    let approve = format!("/api/v1/access/requests/{id}/approve");
    assert_eq!(
        post(&approve, &bob, "{}").0,
        403,
        "a requester cannot decide"
    );
    let r = post(&approve, &ana, r#"{"reason": "ok for the model"}"#);
    assert_eq!(r.0, 200, "{}", r.2);
    let grant = body_json(&r)["grant"].clone();
    assert_eq!(grant["principal"], "bob");
    assert_eq!(post(&approve, &ana, "").0, 400, "already decided");
    assert_eq!(
        post("/api/v1/access/requests/req-nope/deny", &ana, "").0,
        404
    );
    let r = post("/api/v1/query", &bob, &sql);
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(body_json(&r)["rows"][0]["n"], 4);
    let grants = body_json(&curl(&base, "/api/v1/access/grants", Some(&bob), None));
    assert_eq!(grants["total"], 1);
    assert_eq!(
        curl(&base, "/api/v1/access/grants?all=true", Some(&bob), None).0,
        403
    );
    let everyone = body_json(&curl(
        &base,
        "/api/v1/access/grants?all=true",
        Some(&admin),
        None,
    ));
    assert_eq!(everyone["items"][0]["id"], grant["id"]);
    let revoke = format!("/api/v1/access/grants/{}", grant["id"].as_str().unwrap());
    let r = curl_method(Some("DELETE"), &base, &revoke, Some(&bob), None);
    assert_eq!(r.0, 200, "{}", r.2);
    let r = curl_method(Some("DELETE"), &base, &revoke, Some(&bob), None);
    assert_eq!(r.0, 400, "{}", r.2);
    assert_eq!(post("/api/v1/query", &bob, &sql).0, 403);

    // The audit log: an admin reads everything, newest first; bob reads
    // his own entries only; ana also reads what concerns her domain.
    let all = body_json(&curl(&base, "/api/v1/audit?limit=1000", Some(&admin), None));
    let local = json(&dir, &["audit", "--limit", "1000", "--format", "json"]);
    assert_eq!(all["total"], local.as_array().unwrap().len());
    assert_eq!(
        all["items"][0]["seq"],
        local.as_array().unwrap().last().unwrap()["seq"]
    );
    // Pages come from the newest, and count everything the caller may read.
    let second = body_json(&curl(
        &base,
        "/api/v1/audit?limit=2&offset=1",
        Some(&admin),
        None,
    ));
    assert_eq!(second["total"], all["total"]);
    assert_eq!(second["items"][0], all["items"][1]);
    assert_eq!(second["items"][1], all["items"][2]);
    assert_eq!(second["next_offset"], 3);
    let bobs = body_json(&curl(&base, "/api/v1/audit?limit=1000", Some(&bob), None));
    let items = bobs["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert_eq!(bobs["total"], items.len());
    assert!(items.iter().all(|e| e["principal"] == "bob"), "{bobs}");
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "run.trigger" && e["decision"] == "deny")
    );
    let anas = body_json(&curl(
        &base,
        "/api/v1/audit?action=access.request",
        Some(&ana),
        None,
    ));
    assert_eq!(anas["items"][0]["principal"], "bob", "{anas}");
    assert_eq!(
        curl(&base, "/api/v1/audit?since=yesterday", Some(&ana), None).0,
        400
    );
    for path in [
        "/api/v1/audit",
        "/api/v1/access/requests",
        "/api/v1/access/grants",
    ] {
        assert_eq!(curl(&base, path, None, None).0, 401, "{path}");
    }
    // A token the server has already verified stops working the moment it
    // is revoked, and a wrong secret for a known id never works.
    let id = bob.split('_').nth(1).unwrap();
    assert_eq!(curl(&base, "/api/v1/products", Some(&bob), None).0, 200);
    let forged = format!("mesh_{id}_{}", "0".repeat(48));
    assert_eq!(curl(&base, "/api/v1/products", Some(&forged), None).0, 401);
    ok(&dir, &["token", "revoke", id]);
    assert_eq!(curl(&base, "/api/v1/products", Some(&bob), None).0, 401);
    let (clean, stderr) = served.stop();
    assert!(clean, "{stderr}");
}

#[test]
fn the_cli_asks_a_server_and_prints_what_it_prints_locally() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let admin = token(&dir, USER);
    let served = Served::start(&dir, &[]);
    // Elsewhere: a directory with no project, so nothing local is read.
    let away = tmp.path().join("elsewhere");
    std::fs::create_dir(&away).unwrap();
    let remote = |args: &[&str]| {
        common::mesh_env(
            &away,
            args,
            &[("MESH_SERVER", &served.base), ("MESH_TOKEN", &admin)],
        )
    };
    let sql = "SELECT id, language, text FROM example.greetings ORDER BY id";
    for args in [
        vec!["query", sql, "--format", "csv"],
        vec!["query", sql, "--format", "json"],
        vec!["query", sql],
        vec!["query", "SELECT 1 AS one WHERE false", "--format", "csv"],
        vec!["catalog", "list", "--format", "json"],
        vec!["catalog", "list"],
        vec!["catalog", "show", "example/greetings", "--format", "json"],
        vec!["catalog", "show", "example/greetings"],
        vec![
            "catalog",
            "history",
            "example/greetings",
            "--format",
            "json",
        ],
        vec!["catalog", "search", "greeting", "--format", "json"],
        vec!["runs", "--format", "json"],
        vec!["runs", "--limit", "1", "--format", "json"],
        vec!["runs"],
        vec!["runs", "--status", "succeeded", "--format", "json"],
    ] {
        let out = remote(&args);
        assert!(
            out.status.success(),
            "mesh --server {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The data's age (in JSON answers) moves with the clock.
        let steady = |text: String| match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(mut doc) if doc.pointer("/health/age_seconds").is_some() => {
                doc["health"]["age_seconds"] = serde_json::Value::Null;
                doc.to_string()
            }
            _ => text,
        };
        assert_eq!(
            steady(String::from_utf8(out.stdout).unwrap()),
            steady(ok(&dir, &args)),
            "mesh --server {args:?} differs from the local answer"
        );
    }
    // Errors are the server's, with its hint, and exit non-zero.
    let out = remote(&["query", "SELECT * FROM example.greeting"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error:") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(stderr.contains("example.greetings"), "{stderr}");
    let out = common::mesh_env(
        &away,
        &["catalog", "list"],
        &[
            ("MESH_SERVER", &served.base),
            ("MESH_TOKEN", "mesh_000000000000_nope"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = common::mesh_env(&away, &["runs"], &[("MESH_SERVER", &served.base)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("MESH_TOKEN"));
    let out = remote(&["deploy"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server applies to"));
    drop(served);
}
