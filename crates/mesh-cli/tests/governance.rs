//! Governance end to end through the binary: identities, tokens, policy
//! files, enforcement by principal and the audit log.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::serve::{Served, curl, token};
use common::{USER, edit, fails, init, json, mesh_as, ok, request_id};

fn out(o: &std::process::Output) -> (bool, String, String) {
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A mesh with `example` owned by example-team (ana), and bob outside it.
fn governed(tmp: &Path) -> std::path::PathBuf {
    let dir = init(tmp);
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    ok(&dir, &["team", "add", "example-team", "--owns", "example"]);
    ok(&dir, &["principal", "add", "ana", "--team", "example-team"]);
    ok(&dir, &["principal", "add", "bob"]);
    dir
}

#[test]
fn the_first_user_is_admin_and_only_admins_manage_principals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = governed(tmp.path());
    let list = json(&dir, &["principal", "list", "--format", "json"]);
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == USER)
        .unwrap();
    assert_eq!(me["roles"], serde_json::json!(["mesh-admin"]));
    let ana = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ana")
        .unwrap();
    assert_eq!(ana["teams"], serde_json::json!(["example-team"]));
    let (done, _, err) = out(&mesh_as(&dir, "bob", &["principal", "add", "eve"]));
    assert!(!done);
    assert!(
        err.contains("`bob` is not allowed: only a mesh-admin may add principals"),
        "{err}"
    );
    let err = fails(&dir, &["principal", "add", "ana"]);
    assert!(err.contains("principal `ana` already exists"), "{err}");
    // A bad team or member is refused before anything is written.
    let err = fails(&dir, &["principal", "add", "dan", "--team", "nope"]);
    assert!(err.contains("team `nope` does not exist"), "{err}");
    let err = fails(&dir, &["team", "add", "ops", "--member", "ghost"]);
    assert!(err.contains("principal `ghost` does not exist"), "{err}");
    let names = ok(&dir, &["principal", "list"]);
    assert!(!names.contains("dan"), "{names}");
    assert!(!ok(&dir, &["team", "list"]).contains("ops"));
}

#[test]
fn reads_are_decided_per_principal_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = governed(tmp.path());
    let sql = "SELECT count(*) AS n FROM example.greetings";
    let (done, stdout, err) = out(&mesh_as(&dir, "ana", &["query", sql, "--format", "csv"]));
    assert!(done, "{err}");
    assert_eq!(stdout, "n\n4\n");
    let (done, _, err) = out(&mesh_as(&dir, "bob", &["query", sql]));
    assert!(!done);
    assert!(
        err.contains("access denied to `example.greetings` (product `example/greetings`): no policy allows `bob` to read `example/greetings`"),
        "{err}"
    );
    // A principal the catalog does not know sees no discoverable product:
    // for it, the product does not exist, exactly as a missing one.
    let (done, _, err) = out(&mesh_as(&dir, "mallory", &["query", sql]));
    assert!(!done);
    assert!(
        err.contains("table 'mesh.example.greetings' not found"),
        "{err}"
    );
    let (_, _, missing) = out(&mesh_as(
        &dir,
        "mallory",
        &["query", "SELECT count(*) AS n FROM example.nothing"],
    ));
    assert_eq!(
        err.replace("greetings", "X"),
        missing.replace("nothing", "X"),
        "a hidden product must read as a missing one"
    );

    let audit = json(
        &dir,
        &[
            "audit",
            "--product",
            "example/greetings",
            "--format",
            "json",
        ],
    );
    let queries: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "query")
        .map(|e| {
            (
                e["principal"].as_str().unwrap().to_string(),
                e["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        queries,
        [
            ("ana".to_string(), "allow".to_string()),
            ("bob".to_string(), "deny".to_string()),
        ]
    );
    let bob = json(&dir, &["audit", "--principal", "bob", "--format", "json"]);
    assert_eq!(bob.as_array().unwrap().len(), 1);
    assert_eq!(bob[0]["detail"]["sql"], sql);
    // The columns a query reads are recorded.
    ok(&dir, &["query", "SELECT language FROM example.greetings"]);
    let me = json(&dir, &["audit", "--principal", USER, "--format", "json"]);
    let last = me.as_array().unwrap().last().unwrap();
    assert_eq!(last["columns"], serde_json::json!(["language"]));
    let table = ok(&dir, &["audit", "--since", "2020-01-01"]);
    assert!(table.contains("deny"), "{table}");
    let err = fails(&dir, &["audit", "--since", "yesterday"]);
    assert!(err.contains("--since `yesterday` is not a date"), "{err}");
}

#[test]
fn tokens_are_shown_once_stored_hashed_and_revocable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = governed(tmp.path());
    let o = common::mesh(
        &dir,
        &["token", "create", "--principal", "ana", "--expires", "30d"],
    );
    let (done, stdout, err) = out(&o);
    assert!(done, "{err}");
    let token = stdout.trim().to_string();
    assert!(token.starts_with("mesh_"), "{token}");
    assert!(
        !err.contains(&token),
        "the token is printed once, on stdout"
    );
    let id = token.split('_').nth(1).unwrap();
    let list = ok(&dir, &["token", "list", "--format", "json"]);
    assert!(list.contains(id));
    let secret = token.rsplit('_').next().unwrap();
    assert!(!list.contains(secret), "{list}");
    // Neither the audit log nor the catalog file holds the secret.
    let audit = ok(&dir, &["audit", "--format", "json"]);
    assert!(audit.contains("token.create"));
    assert!(!audit.contains(secret));
    let stored = common::catalog_contents(&dir);
    assert!(stored.contains(id), "the dump holds the token's id");
    assert!(!stored.contains(secret));
    // bob may not make tokens for others, nor revoke ana's.
    let (done, _, err) = out(&mesh_as(
        &dir,
        "bob",
        &["token", "create", "--principal", "ana"],
    ));
    assert!(
        !done && err.contains("only a mesh-admin may create tokens for others"),
        "{err}"
    );
    let (done, _, err) = out(&mesh_as(&dir, "bob", &["token", "revoke", id]));
    assert!(
        !done && err.contains("only a mesh-admin may revoke tokens of others"),
        "{err}"
    );
    // ana revokes her own; twice is an error.
    let (done, _, err) = out(&mesh_as(&dir, "ana", &["token", "revoke", id]));
    assert!(done, "{err}");
    let (done, _, err) = out(&mesh_as(&dir, "ana", &["token", "revoke", id]));
    assert!(!done && err.contains("already revoked"), "{err}");
    let err = fails(&dir, &["token", "create", "--expires", "soon"]);
    assert!(err.contains("--expires `soon` is not a duration"), "{err}");
}

#[test]
fn policies_are_tested_evaluated_and_a_broken_one_blocks_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = governed(tmp.path());
    let tests = ok(&dir, &["policy", "test"]);
    assert_eq!(tests.matches("PASS").count(), 10, "{tests}");
    let decision = json(
        &dir,
        &[
            "policy",
            "eval",
            "--query",
            "data.mesh.access.masks",
            "--input",
            r#"{"principal": {"roles": [], "teams": []}, "columns": [{"name": "email", "classification": "pii"}], "grants": []}"#,
        ],
    );
    assert_eq!(decision, serde_json::json!({"email": "redact"}));

    // A failing test fails the command.
    std::fs::write(
        dir.join("policies/extra_test.rego"),
        "package mesh.extra_test\n\nimport rego.v1\n\ntest_never if false\n",
    )
    .unwrap();
    let o = common::mesh(&dir, &["policy", "test"]);
    let (done, stdout, _) = out(&o);
    assert!(!done);
    assert!(
        stdout.contains("FAIL  data.mesh.extra_test.test_never"),
        "{stdout}"
    );
    std::fs::remove_file(dir.join("policies/extra_test.rego")).unwrap();

    // A syntax error names file:line:col and blocks tests, deploy and
    // queries, even one that reads no table and whose process finds the
    // working policies' digest recorded as compiling.
    ok(&dir, &["query", "SELECT 1"]);
    common::edit(
        &dir,
        "policies/access.rego",
        "default allow := false",
        "default allow := ",
    );
    for args in [&["policy", "test"][..], &["deploy"], &["query", "SELECT 1"]] {
        let err = fails(&dir, args);
        assert!(
            err.contains("policy error: policies/access.rego:"),
            "{args:?}: {err}"
        );
        assert!(err.contains("hint: fix the policy file"), "{err}");
    }
    // A domain may not write into the global package.
    common::edit(
        &dir,
        "policies/access.rego",
        "default allow := ",
        "default allow := false",
    );
    ok(&dir, &["query", "SELECT 1"]);
    std::fs::create_dir_all(dir.join("example/policies")).unwrap();
    std::fs::write(
        dir.join("example/policies/open.rego"),
        "package mesh.access\n\nimport rego.v1\n\nallow if true\n",
    )
    .unwrap();
    let err = fails(&dir, &["deploy"]);
    assert!(
        err.contains(
            "example/policies/open.rego:1:1: domain policy declares `package mesh.access`"
        ),
        "{err}"
    );
}

fn query_as(dir: &Path, who: &str, sql: &str) -> Result<String, String> {
    let (done, stdout, err) = out(&mesh_as(dir, who, &["query", sql, "--format", "csv"]));
    if done { Ok(stdout) } else { Err(err) }
}

/// The id printed in parentheses by `mesh access request`.
#[test]
fn the_access_loop_requests_approves_masks_and_revokes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    // `text` is personal data in this test.
    let product = dir.join("example/greetings/product.yaml");
    let yaml = std::fs::read_to_string(&product).unwrap();
    std::fs::write(
        &product,
        yaml.replace(
            "{name: text, type: string, description: The greeting}",
            "{name: text, type: string, description: The greeting, classification: pii}",
        ),
    )
    .unwrap();
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    ok(&dir, &["team", "add", "example-team", "--owns", "example"]);
    ok(&dir, &["principal", "add", "ana", "--team", "example-team"]);
    ok(&dir, &["principal", "add", "bob"]);
    ok(&dir, &["principal", "add", "carol"]);
    let sql = "SELECT text FROM example.greetings WHERE id = 1";
    assert!(
        query_as(&dir, "bob", sql)
            .unwrap_err()
            .contains("access denied")
    );
    // A server started now keeps its view of grants in memory: every
    // change the CLI makes below must count from its next statement.
    let bob = token(&dir, "bob");
    let served = Served::start(&dir, &[]);
    let served_as_bob = || {
        let body = serde_json::json!({"sql": sql}).to_string();
        curl(&served.base, "/api/v1/query", Some(&bob), Some(&body))
    };
    let denied = served_as_bob();
    assert_eq!(denied.0, 403, "{denied:?}");

    // bob asks; he cannot decide his own request, nor can carol.
    let (done, stdout, err) = out(&mesh_as(
        &dir,
        "bob",
        &[
            "access",
            "request",
            "example/greetings",
            "--purpose",
            "greeting study",
            "--duration",
            "30d",
        ],
    ));
    assert!(done, "{err}");
    let id = request_id(&stdout);
    let (done, _, err) = out(&mesh_as(&dir, "bob", &["access", "approve", &id]));
    assert!(
        !done && err.contains("cannot be decided by its requester"),
        "{err}"
    );
    let (done, _, err) = out(&mesh_as(&dir, "carol", &["access", "approve", &id]));
    assert!(
        !done
            && err.contains(
                "only the owners of `example/greetings`, its approvers or a mesh-admin may approve"
            ),
        "{err}"
    );
    // It is in ana's inbox, to decide.
    let (_, inbox, _) = out(&mesh_as(
        &dir,
        "ana",
        &["access", "list", "--format", "json"],
    ));
    let inbox: serde_json::Value = serde_json::from_str(&inbox).unwrap();
    assert_eq!(inbox[0]["id"], id.as_str());
    assert_eq!(inbox[0]["can_decide"], true);
    assert_eq!(inbox[0]["purpose"], "greeting study");
    let (_, carol_inbox, _) = out(&mesh_as(
        &dir,
        "carol",
        &["access", "list", "--format", "json"],
    ));
    assert_eq!(carol_inbox.trim(), "[]");

    // Approved: bob reads from the next query, with `pii` masked.
    let (done, stdout, err) = out(&mesh_as(
        &dir,
        "ana",
        &["access", "approve", &id, "--reason", "ok"],
    ));
    assert!(done, "{err}");
    let grant = stdout
        .split("grant ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(query_as(&dir, "bob", sql).unwrap(), "text\n***\n");
    let granted = served_as_bob();
    assert_eq!(granted.0, 200, "{granted:?}");
    assert!(granted.2.contains("***"), "{granted:?}");
    let (done, _, err) = out(&mesh_as(&dir, "ana", &["access", "approve", &id]));
    assert!(!done && err.contains("already approved"), "{err}");

    // Revoked: refused again.
    let (done, _, err) = out(&mesh_as(&dir, "carol", &["access", "revoke", &grant]));
    assert!(!done && err.contains("may revoke its grants"), "{err}");
    let (done, _, err) = out(&mesh_as(&dir, "ana", &["access", "revoke", &grant]));
    assert!(done, "{err}");
    assert!(
        query_as(&dir, "bob", sql)
            .unwrap_err()
            .contains("access denied")
    );
    let revoked = served_as_bob();
    assert_eq!(revoked.0, 403, "{revoked:?}");
    served.stop();

    // A request for personal data, denied, then asked again and approved.
    let (_, stdout, _) = out(&mesh_as(
        &dir,
        "bob",
        &[
            "access",
            "request",
            "example/greetings",
            "--purpose",
            "translations",
            "--pii",
        ],
    ));
    let pii_id = request_id(&stdout);
    let (done, _, _) = out(&mesh_as(
        &dir,
        "ana",
        &["access", "deny", &pii_id, "--reason", "too broad"],
    ));
    assert!(done);
    assert!(query_as(&dir, "bob", sql).is_err());
    let (_, stdout, _) = out(&mesh_as(
        &dir,
        "bob",
        &[
            "access",
            "request",
            "example/greetings",
            "--purpose",
            "translations, narrowed",
            "--pii",
        ],
    ));
    let again = request_id(&stdout);
    // An admin may decide too.
    ok(&dir, &["access", "approve", &again]);
    assert_eq!(query_as(&dir, "bob", sql).unwrap(), "text\nHello\n");

    // Every step is audited.
    let audit = json(
        &dir,
        &[
            "audit",
            "--product",
            "example/greetings",
            "--format",
            "json",
        ],
    );
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| a.starts_with("access."))
        .collect();
    assert_eq!(
        actions,
        [
            "access.request",
            "access.approve",
            "access.revoke",
            "access.request",
            "access.deny",
            "access.request",
            "access.approve"
        ]
    );
    let (_, grants, _) = out(&mesh_as(
        &dir,
        "bob",
        &["access", "grants", "--format", "json"],
    ));
    let grants: serde_json::Value = serde_json::from_str(&grants).unwrap();
    assert_eq!(grants.as_array().unwrap().len(), 2);
    let (done, _, err) = out(&mesh_as(&dir, "bob", &["access", "grants", "--all"]));
    assert!(
        !done && err.contains("only a mesh-admin may list everyone's grants"),
        "{err}"
    );
}

/// Every cell of principal × demo product × access path, asserted.
#[test]
fn authorisation_matrix_over_the_demo_mesh() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    ok(
        tmp.path(),
        &["demo", dir.to_str().unwrap(), "--rows", "300"],
    );
    // customer_360 becomes private: only its owners (and admins) see it.
    let p360 = dir.join("customers/customer_360/product.yaml");
    let yaml = std::fs::read_to_string(&p360).unwrap();
    std::fs::write(
        &p360,
        yaml.replace(
            "tags: [customers, revenue, shipping]",
            "tags: [customers, revenue, shipping]\naccess: {visibility: private}",
        ),
    )
    .unwrap();
    ok(&dir, &["deploy"]);
    ok(&dir, &["team", "add", "sales-team", "--owns", "sales"]);
    ok(
        &dir,
        &["principal", "add", "olivia", "--team", "sales-team"],
    );
    ok(&dir, &["principal", "add", "gus"]);
    ok(&dir, &["principal", "add", "sam"]);
    let (_, stdout, _) = out(&mesh_as(
        &dir,
        "gus",
        &["access", "request", "sales/orders", "--purpose", "forecast"],
    ));
    ok(&dir, &["access", "approve", &request_id(&stdout)]);

    let products = [
        ("customers/profiles", "customers.profiles", false),
        ("sales/orders", "sales.orders", false),
        ("sales/order_lines", "sales.order_lines", false),
        ("logistics/shipments", "logistics.shipments", false),
        (
            "sales/revenue_by_customer",
            "sales.revenue_by_customer",
            false,
        ),
        (
            "logistics/carrier_performance",
            "logistics.carrier_performance",
            false,
        ),
        ("customers/customer_360", "customers.customer_360", true),
    ];
    let mut failures = Vec::new();
    for who in ["olivia", "gus", "sam"] {
        for (product, sql_name, private) in products {
            let reads = match who {
                "olivia" => product.starts_with("sales/"),
                "gus" => product == "sales/orders",
                _ => false,
            };
            let sees = !private;
            let (domain, output) = sql_name.split_once('.').unwrap();
            let cells: Vec<(String, bool, Vec<&str>)> = vec![
                (
                    format!("query:SELECT count(*) FROM {sql_name}"),
                    reads,
                    vec!["query", ""],
                ),
                (
                    format!("query:SELECT count(*) FROM {domain}.\"{output}@1\""),
                    reads,
                    vec!["query", ""],
                ),
                (
                    format!("query:EXPLAIN SELECT * FROM {sql_name}"),
                    reads,
                    vec!["query", ""],
                ),
                (
                    format!("catalog show {product}"),
                    sees,
                    vec!["catalog", "show", product],
                ),
                (
                    format!("runs --product {product}"),
                    sees,
                    vec!["runs", "--product", product],
                ),
            ];
            for (label, expect, mut args) in cells {
                let sql;
                if args[0] == "query" {
                    sql = label.trim_start_matches("query:").to_string();
                    args = vec!["query", &sql];
                }
                let (done, _, err) = out(&mesh_as(&dir, who, &args));
                if done != expect {
                    failures.push(format!(
                        "{who} × {label}: expected {expect}, got {done}: {err}"
                    ));
                }
                if !done && args[0] == "query" && sees && !err.contains("access denied") {
                    failures.push(format!(
                        "{who} × {label}: refused without `access denied`: {err}"
                    ));
                }
                // A product the caller may not see does not exist for it.
                if !done && args[0] == "query" && !sees && !err.contains("not found") {
                    failures.push(format!(
                        "{who} × {label}: a hidden product must look absent: {err}"
                    ));
                }
                if !done && args[0] != "query" && !err.contains("is not deployed") {
                    failures.push(format!(
                        "{who} × {label}: a hidden product must look absent: {err}"
                    ));
                }
            }
            // Search and list show exactly the visible products.
            let (_, found, _) = out(&mesh_as(
                &dir,
                who,
                &["catalog", "search", output, "--format", "json"],
            ));
            if found.contains(&format!("\"{product}\"")) != sees {
                failures.push(format!(
                    "{who} × search {output}: expected visible={sees}: {found}"
                ));
            }
            let (_, list, _) = out(&mesh_as(
                &dir,
                who,
                &["catalog", "list", "--format", "json"],
            ));
            let listed = list.contains(&format!(
                "\"name\": \"{}\"",
                product.split('/').nth(1).unwrap()
            ));
            if listed != sees {
                failures.push(format!("{who} × list: {product} expected visible={sees}"));
            }
        }
    }
    // The lineage in `catalog show` hides private consumers too.
    let (_, show, _) = out(&mesh_as(
        &dir,
        "sam",
        &["catalog", "show", "sales/orders", "--format", "json"],
    ));
    if show.contains("customer_360") {
        failures.push(format!("sam sees the private consumer in lineage: {show}"));
    }
    // An admin sees everything.
    ok(&dir, &["catalog", "show", "customers/customer_360"]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn deploys_and_policy_changes_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = governed(tmp.path());
    let actions = |dir: &Path| -> Vec<(String, Option<String>)> {
        json(dir, &["audit", "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "deploy" || e["action"] == "policy.change")
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["product"].as_str().map(str::to_string),
                )
            })
            .collect()
    };
    assert_eq!(
        actions(&dir),
        [
            ("policy.change".to_string(), None),
            ("deploy".to_string(), Some("example/greetings".to_string())),
        ]
    );
    // An unchanged deploy records nothing new.
    ok(&dir, &["deploy"]);
    assert_eq!(actions(&dir).len(), 2);
    // A changed policy file is recorded at the next deploy, with its digest.
    let policy = dir.join("policies/access.rego");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, format!("{text}\n# reviewed\n")).unwrap();
    ok(&dir, &["deploy"]);
    let all = actions(&dir);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].0, "policy.change");
    let changes = json(
        &dir,
        &["audit", "--action", "policy.change", "--format", "json"],
    );
    assert_eq!(changes.as_array().unwrap().len(), 2);
    let change = &changes[1];
    assert_eq!(change["principal"], USER);
    assert_eq!(change["detail"]["files"][0], "policies/access.rego");
    assert_eq!(change["detail"]["digest"].as_str().unwrap().len(), 64);
}

#[test]
fn an_older_major_is_decided_and_masked_like_its_product() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let product = dir.join("example/greetings/product.yaml");
    let yaml = std::fs::read_to_string(&product).unwrap().replace(
        "{name: text, type: string, description: The greeting}",
        "{name: text, type: string, description: The greeting, classification: pii}",
    );
    std::fs::write(&product, &yaml).unwrap();
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    ok(&dir, &["team", "add", "example-team", "--owns", "example"]);
    ok(&dir, &["principal", "add", "ana", "--team", "example-team"]);
    ok(&dir, &["principal", "add", "bob"]);
    // Major 2 keeps major 1 alive as example.greetings_v1.
    std::fs::write(&product, yaml.replace("version: 1.0.0", "version: 2.0.0")).unwrap();
    let deployed = ok(&dir, &["deploy"]);
    assert!(deployed.contains("example/greetings_v1"), "{deployed}");
    ok(&dir, &["run"]);
    let sql = "SELECT text FROM example.greetings_v1 WHERE id = 1";
    let err = query_as(&dir, "bob", sql).unwrap_err();
    assert!(
        err.contains("access denied to `example.greetings_v1` (product `example/greetings_v1`)"),
        "{err}"
    );
    assert_eq!(query_as(&dir, "ana", sql).unwrap(), "text\n***\n");
    // A grant on the product covers its older major.
    let (_, stdout, _) = out(&mesh_as(
        &dir,
        "bob",
        &[
            "access",
            "request",
            "example/greetings",
            "--purpose",
            "compare majors",
        ],
    ));
    ok(&dir, &["access", "approve", &request_id(&stdout)]);
    assert_eq!(query_as(&dir, "bob", sql).unwrap(), "text\n***\n");
}

#[test]
fn deploy_rules_refuse_located_violations_and_follow_the_policy_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path());
    let descriptor = "example/greetings/product.yaml";
    edit(
        &dir,
        descriptor,
        "{name: language, type: string, description: ISO 639-1 code}",
        "{name: language, type: string}",
    );
    let text = std::fs::read_to_string(dir.join(descriptor)).unwrap();
    let slo = text.lines().find(|l| l.starts_with("slo:")).unwrap();
    edit(&dir, descriptor, &format!("{slo}\n"), "");

    // Plan and deploy both show each violation at its place.
    for args in [&["plan"][..], &["deploy"]] {
        let err = fails(&dir, args);
        assert!(
            err.contains(
                "policy `column-description`: column `language` of output `greetings` has no description"
            ),
            "{err}"
        );
        assert!(err.contains("example/greetings/product.yaml:30:9"), "{err}");
        assert!(err.contains("policy `freshness-slo`"), "{err}");
        assert!(err.contains("`slo.freshness` is missing"), "{err}");
    }
    // Nothing was deployed, and the refusal is audited.
    let listed = json(&dir, &["catalog", "list", "--format", "json"]);
    assert_eq!(listed, serde_json::json!([]));
    let audit = json(&dir, &["audit", "--action", "deploy", "--format", "json"]);
    let refusal = &audit[0];
    assert_eq!(refusal["decision"], "deny");
    assert_eq!(refusal["product"], "example/greetings");
    assert_eq!(refusal["detail"]["violations"].as_array().unwrap().len(), 2);

    // Described, and private (which needs no freshness promise): it deploys.
    edit(
        &dir,
        descriptor,
        "{name: language, type: string}",
        "{name: language, type: string, description: ISO 639-1 code}",
    );
    std::fs::write(
        dir.join(descriptor),
        std::fs::read_to_string(dir.join(descriptor)).unwrap() + "access: {visibility: private}\n",
    )
    .unwrap();
    ok(&dir, &["deploy"]);

    // The rules are data: a governance lead marks `language` personal in
    // the Rego file, and the same descriptor is refused.
    edit(
        &dir,
        "policies/deploy.rego",
        "\"email\", \"phone\",",
        "\"email\", \"language\", \"phone\",",
    );
    let err = fails(&dir, &["plan"]);
    assert!(
        err.contains(
            "policy `personal-data-classified`: column `language` looks like personal data"
        ),
        "{err}"
    );
    edit(
        &dir,
        descriptor,
        "description: ISO 639-1 code}",
        "description: ISO 639-1 code, classification: public}",
    );
    ok(&dir, &["plan"]);

    // A domain adds a rule of its own for its own products; a warning
    // is shown without blocking.
    std::fs::create_dir_all(dir.join("example/policies")).unwrap();
    std::fs::write(
        dir.join("example/policies/deploy.rego"),
        "package mesh.domain.example.deploy\n\nimport rego.v1\n\n\
         warn contains {\"rule\": \"limitations\", \"message\": \"say what the data cannot do\", \"path\": [\"description\"]} \
         if not input.descriptor.description.limitations\n",
    )
    .unwrap();
    let o = common::mesh(&dir, &["plan"]);
    let (done, _, err) = out(&o);
    assert!(done, "{err}");
    assert!(
        err.contains("policy `limitations`: say what the data cannot do"),
        "{err}"
    );
    assert!(err.contains("example/greetings/product.yaml:10:1"), "{err}");
}
