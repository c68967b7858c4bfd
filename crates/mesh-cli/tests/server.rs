//! `mesh serve` end to end: the real binary serving a real mesh on a
//! loopback port, called with curl (a real HTTP client).
#![allow(clippy::unwrap_used)]

mod common;

use common::serve::{Served, body_json, curl, token};
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
    assert!(doc["paths"]["/metrics"].is_object());
    for path in [
        "/api/v1/products",
        "/api/v1/products/{domain}/{name}",
        "/api/v1/products/{domain}/{name}/history",
        "/api/v1/search",
        "/api/v1/runs",
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
