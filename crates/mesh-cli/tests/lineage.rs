//! Column lineage through the real binary: classifications that follow
//! it (refusal at deploy, `declassify`, masks at read time), `mesh
//! lineage` in every format and as a stranger, `catalog show` and
//! `--usage` after a major split, and a snapshot of the demo mesh.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::contacts::*;
use common::{edit, fails, json, mesh_as, ok};
use serde_json::Value;

#[test]
fn a_column_fed_by_pii_is_refused_unless_classified_or_declassified() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let err = fails(&dir, &["deploy"]);
    let line = CONTACTS.lines().position(|l| l == UNCLASSIFIED).unwrap() + 1;
    assert!(
        err.contains("column `sample_contact` of output `contacts` declares no classification, but `hr.employees.email` (pii) flows into it: hr.employees.email → ops.contacts.sample_contact"),
        "{err}"
    );
    assert!(
        err.contains(&format!("ops/contacts/product.yaml:{line}:16")),
        "{err}"
    );
    assert!(
        err.contains("declassify: {from: hr.employees.email, reason: …}"),
        "{err}"
    );
    // `count(email)` cannot carry an address: `staff` is not refused.
    assert!(!err.contains("`staff`"), "{err}");
    // Nothing was deployed.
    assert!(
        !ok(&dir, &["catalog", "list"]).contains("hr/employees"),
        "a refused deploy deploys nothing"
    );

    // Declared pii: deployed, and masked for the admin like the source.
    edit(
        &dir,
        "ops/contacts/product.yaml",
        "description: Someone to ask}",
        "description: Someone to ask, classification: pii}",
    );
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    let out = contacts(&dir);
    assert!(out.contains("eng,***"), "{out}");
    for a in ADDRESSES {
        assert!(!out.contains(a), "{out}");
    }
}

#[test]
fn declassify_is_audited_shown_and_can_be_forbidden_by_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    // The default deploy rules say so at every deploy, as a warning.
    let out = common::mesh(&dir, &["deploy"]);
    assert!(out.status.success(), "{out:?}");
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("policy `pii-declassified`: column `sample_contact` of output `contacts` declassifies pii from `hr.employees.email`"),
        "{warned}"
    );
    ok(&dir, &["run"]);
    // The owner's decision stands: the first address per department.
    let rows = contacts(&dir);
    assert!(rows.contains(&format!("eng,{}", ADDRESSES[0])), "{rows}");

    let audit = json(
        &dir,
        &["audit", "--action", "declassify", "--format", "json"],
    );
    let entry = &audit.as_array().unwrap()[0];
    assert_eq!(entry["product"], "ops/contacts");
    assert_eq!(
        entry["reason"],
        "first address per department, published on the intranet"
    );
    assert_eq!(entry["detail"]["from"], "hr.employees.email");
    assert_eq!(entry["detail"]["column"], "sample_contact");
    assert_eq!(entry["detail"]["classification"], "pii");

    let show = json(
        &dir,
        &["catalog", "show", "ops/contacts", "--format", "json"],
    );
    let columns = &show["outputs"][0]["columns"];
    let sample = columns
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sample_contact")
        .unwrap();
    assert_eq!(sample["declassify"][0]["from"], "hr.employees.email");
    assert_eq!(sample["derived_classification"], Value::Null);
    let sources: Vec<(String, String, String)> = sample["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["column"].as_str().unwrap().into(),
                s["type"].as_str().unwrap().into(),
                s["subtype"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            (
                "hr.employees.dept".into(),
                "INDIRECT".into(),
                "GROUP_BY".into()
            ),
            (
                "hr.employees.email".into(),
                "DIRECT".into(),
                "AGGREGATION".into()
            ),
        ]
    );

    // A mesh that forbids declassifying personal data refuses it.
    write(
        &dir.join("policies/no_declassify.rego"),
        r#"package mesh.deploy

import rego.v1

deny contains v if {
	some column in input.columns
	some d in column.declassified
	d.classification == "pii"
	v := {"rule": "no-pii-declassify", "message": sprintf("`%s` may not declassify %s", [column.name, d.from]), "path": column.path}
}
"#,
    );
    let err = fails(&dir, &["deploy"]);
    assert!(
        err.contains(
            "policy `no-pii-declassify`: `sample_contact` may not declassify hr.employees.email"
        ),
        "{err}"
    );
    assert!(err.contains("ops/contacts/product.yaml:"), "{err}");
}

#[test]
fn a_product_deployed_before_lineage_is_masked_by_its_derived_classification() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    ok(&dir, &["deploy"]);
    ok(&dir, &["run"]);
    assert!(contacts(&dir).contains(ADDRESSES[0]));
    forget_classification(&dir);
    let rows = contacts(&dir);
    assert!(rows.contains("eng,***"), "{rows}");
    for a in ADDRESSES {
        assert!(!rows.contains(a), "{rows}");
    }
    // Every path agrees: lineage names the derived classification.
    let view = json(
        &dir,
        &["lineage", "ops.contacts.sample_contact", "--format", "json"],
    );
    assert_eq!(view["nodes"][0]["classification"], "pii", "{view}");
}

fn edges(view: &Value) -> Vec<String> {
    view["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} -> {} {}/{}{}",
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap(),
                e["type"].as_str().unwrap(),
                e["subtype"].as_str().unwrap(),
                if e["masking"] == Value::Bool(true) {
                    " masking"
                } else {
                    ""
                }
            )
        })
        .collect()
}

#[test]
fn lineage_answers_both_ways_in_every_format_and_redacts_what_a_stranger_cannot_see() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    // hr/employees is private: only hr's teams (and admins) see it.
    edit(
        &dir,
        "hr/employees/product.yaml",
        "slo: {freshness: 7d}",
        "access: {visibility: private}",
    );
    ok(&dir, &["deploy"]);

    let up = json(
        &dir,
        &["lineage", "ops/contacts", "--upstream", "--format", "json"],
    );
    assert_eq!(up["target"], "ops/contacts");
    assert_eq!(
        edges(&up),
        [
            "hr.employees.dept -> ops.contacts.dept DIRECT/IDENTITY",
            "hr.employees.dept -> ops.contacts.dept INDIRECT/GROUP_BY",
            "hr.employees.dept -> ops.contacts.sample_contact INDIRECT/GROUP_BY",
            "hr.employees.dept -> ops.contacts.staff INDIRECT/GROUP_BY",
            "hr.employees.email -> ops.contacts.sample_contact DIRECT/AGGREGATION",
            "hr.employees.email -> ops.contacts.staff DIRECT/AGGREGATION masking",
            "hr/employees/raw.dept -> hr.employees.dept DIRECT/IDENTITY",
            "hr/employees/raw.email -> hr.employees.email DIRECT/IDENTITY",
        ]
    );
    let down = json(
        &dir,
        &[
            "lineage",
            "hr/employees.employees.email",
            "--downstream",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        edges(&down),
        [
            "hr.employees.email -> ops.contacts.sample_contact DIRECT/AGGREGATION",
            "hr.employees.email -> ops.contacts.staff DIRECT/AGGREGATION masking",
        ]
    );
    // --depth 1 stops at the product's own inputs.
    let one = json(
        &dir,
        &[
            "lineage",
            "ops.contacts.dept",
            "--upstream",
            "--depth",
            "1",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        edges(&one),
        [
            "hr.employees.dept -> ops.contacts.dept DIRECT/IDENTITY",
            "hr.employees.dept -> ops.contacts.dept INDIRECT/GROUP_BY",
        ]
    );
    let table = ok(&dir, &["lineage", "ops.contacts.staff"]);
    assert!(table.contains("AGGREGATION (masking)"), "{table}");
    let dot = ok(&dir, &["lineage", "ops/contacts", "--format", "dot"]);
    assert!(dot.starts_with("digraph lineage {"), "{dot}");
    assert!(
        dot.contains(
            "\"hr.employees.email\" -> \"ops.contacts.sample_contact\" [label=\"AGGREGATION\"];"
        ),
        "{dot}"
    );

    // bob sees ops/contacts but not hr/employees.
    for format in ["json", "table", "dot"] {
        let out = mesh_as(
            &dir,
            "bob",
            &["lineage", "ops/contacts", "--upstream", "--format", format],
        );
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ops.contacts.sample_contact"), "{text}");
        for hidden in ["hr.", "hr/", "employees", "email", "raw"] {
            assert!(!text.contains(hidden), "{format} names `{hidden}`: {text}");
        }
    }
    let out = mesh_as(
        &dir,
        "bob",
        &["lineage", "ops/contacts", "--upstream", "--format", "json"],
    );
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["redacted"] == true && n["id"] == "redacted-1"),
        "{view}"
    );
    assert_eq!(
        edges(&view),
        [
            "redacted-1 -> ops.contacts.dept DIRECT/IDENTITY",
            "redacted-1 -> ops.contacts.dept INDIRECT/GROUP_BY",
            "redacted-1 -> ops.contacts.sample_contact DIRECT/AGGREGATION",
            "redacted-1 -> ops.contacts.sample_contact INDIRECT/GROUP_BY",
            "redacted-1 -> ops.contacts.staff DIRECT/AGGREGATION masking",
            "redacted-1 -> ops.contacts.staff INDIRECT/GROUP_BY",
        ]
    );
    // Asking for the private product itself: it does not exist for bob.
    let out = mesh_as(&dir, "bob", &["lineage", "hr/employees"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not deployed"), "{err}");
    // Nor does the catalog page of its consumer name it.
    let out = mesh_as(
        &dir,
        "bob",
        &["catalog", "show", "ops/contacts", "--format", "json"],
    );
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8_lossy(&out.stdout);
    for hidden in ["hr.", "hr/", "employees"] {
        assert!(
            !page.contains(hidden),
            "catalog show names `{hidden}`: {page}"
        );
    }
}

#[test]
fn usage_lineage_and_retire_agree_on_the_readers_of_an_older_major() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    ok(&dir, &["deploy"]);
    // Major 2 of hr/employees; ops/contacts still requires ^1.
    edit(
        &dir,
        "hr/employees/product.yaml",
        "version: 1.0.0",
        "version: 2.0.0",
    );
    edit(
        &dir,
        "hr/employees/product.yaml",
        "description: Department}",
        "description: Department code}",
    );
    ok(&dir, &["deploy"]);

    let usage = json(
        &dir,
        &[
            "catalog",
            "show",
            "hr/employees_v1",
            "--usage",
            "--format",
            "json",
        ],
    );
    let email = usage
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["column"] == "email")
        .unwrap();
    assert_eq!(email["output"], "employees_v1");
    assert_eq!(email["read_by"][0], "ops/contacts:contacts", "{usage}");
    let show = json(
        &dir,
        &["catalog", "show", "hr/employees_v1", "--format", "json"],
    );
    assert_eq!(show["consumers"][0], "ops/contacts", "{show}");
    let head = json(
        &dir,
        &["catalog", "show", "hr/employees", "--format", "json"],
    );
    assert_eq!(head["consumers"], serde_json::json!([]), "{head}");
    assert_eq!(head["older_majors"][0]["consumers"][0], "ops/contacts");

    let down = json(
        &dir,
        &[
            "lineage",
            "hr.employees_v1.email",
            "--downstream",
            "--format",
            "json",
        ],
    );
    assert!(
        edges(&down).contains(
            &"hr.employees_v1.email -> ops.contacts.sample_contact DIRECT/AGGREGATION".to_string()
        ),
        "{down}"
    );
    let err = fails(&dir, &["retire", "hr/employees_v1"]);
    assert!(err.contains("ops/contacts"), "{err}");
}

/// The demo mesh's lineage, one step up from every product, against the
/// snapshot in `tests/snapshots/demo_lineage.txt` (written afresh with
/// `MESH_UPDATE_SNAPSHOTS=1`).
#[test]
fn the_demo_mesh_lineage_matches_its_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::demo(tmp.path(), 50);
    let list = json(&dir, &["catalog", "list", "--format", "json"]);
    let mut lines = Vec::new();
    for p in list.as_array().unwrap() {
        let product = format!(
            "{}/{}",
            p["domain"].as_str().unwrap(),
            p["name"].as_str().unwrap()
        );
        let product = product.as_str();
        let view = json(
            &dir,
            &[
                "lineage",
                product,
                "--upstream",
                "--depth",
                "1",
                "--format",
                "json",
            ],
        );
        lines.push(format!("# {product}"));
        lines.extend(edges(&view));
    }
    let got = lines.join("\n") + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/demo_lineage.txt");
    if std::env::var_os("MESH_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        got, want,
        "the demo's lineage changed; review and rerun with MESH_UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn plan_names_the_downstream_columns_a_breaking_change_reaches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    write(
        &dir.join("ops/summary/product.yaml"),
        r#"apiVersion: meshwork/v1
kind: DataProduct
domain: ops
name: summary
version: 1.0.0
owner: ops@acme.example
description:
  purpose: Head count per department.
slo: {freshness: 7d}
inputs:
  - {name: c, product: ops/contacts}
transform:
  query: SELECT dept, staff FROM c
outputs:
  - name: summary
    columns:
      - {name: dept, type: string, description: Department}
      - {name: staff, type: bigint, nullable: false, description: Head count}
"#,
    );
    ok(&dir, &["deploy"]);
    // The consumers live on, deployed from elsewhere (their SQL would no
    // longer plan here).
    std::fs::remove_dir_all(dir.join("ops")).unwrap();
    // `email` is dropped: a breaking change.
    edit(
        &dir,
        "hr/employees/product.yaml",
        "      - {name: email, type: string, classification: pii, description: Work e-mail}\n",
        "",
    );
    edit(
        &dir,
        "hr/employees/product.yaml",
        "SELECT id, email, dept FROM raw",
        "SELECT id, dept FROM raw",
    );
    let plan = json(&dir, &["plan", "--format", "json"]);
    let employees = plan
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["product"] == "hr/employees")
        .unwrap();
    let removed = employees["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "email")
        .unwrap();
    assert_eq!(
        removed["reaches"],
        serde_json::json!([
            "ops.contacts.sample_contact",
            "ops.contacts.staff",
            "ops.summary.staff"
        ]),
        "{removed}"
    );
    let text = ok(&dir, &["plan"]);
    assert!(
        text.contains("reaches ops.contacts.sample_contact, ops.contacts.staff, ops.summary.staff"),
        "{text}"
    );
}

/// A validator for `reference` over the vendored OpenLineage schemas
/// (no schema is fetched).
fn openlineage_validator(reference: &str) -> jsonschema::Validator {
    struct Vendored(std::collections::HashMap<String, Value>);
    impl jsonschema::Retrieve for Vendored {
        fn retrieve(
            &self,
            uri: &jsonschema::Uri<String>,
        ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
            let key = uri.as_str().split('#').next().unwrap_or_default();
            self.0
                .get(key)
                .cloned()
                .ok_or_else(|| format!("{key} is not vendored").into())
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mesh-service/schemas/openlineage");
    let mut schemas = std::collections::HashMap::new();
    for dir in [root.clone(), root.join("facets")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let schema: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                schemas.insert(schema["$id"].as_str().unwrap().to_string(), schema);
            }
        }
    }
    jsonschema::options()
        .with_retriever(Vendored(schemas))
        .build(&serde_json::json!({"$ref": reference}))
        .unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, what: &str, value: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not validate: {errors:?}\n{value:#}"
    );
}

const OL: &str = "https://openlineage.io/spec";

/// Every event validates: the RunEvent, and each facet against its own
/// schema.
fn validate_event(event: &Value) {
    assert_valid(
        &openlineage_validator(&format!("{OL}/2-0-2/OpenLineage.json#/$defs/RunEvent")),
        "the event",
        event,
    );
    for output in event["outputs"].as_array().unwrap() {
        for facet in ["ColumnLineageDatasetFacet", "SchemaDatasetFacet"] {
            assert_valid(
                &openlineage_validator(&format!("{OL}/facets/1-2-0/{facet}.json")),
                facet,
                &output["facets"],
            );
        }
        if !output["outputFacets"].is_null() {
            assert_valid(
                &openlineage_validator(&format!(
                    "{OL}/facets/1-1-0/DataQualityAssertionsDatasetFacet.json"
                )),
                "dataQualityAssertions",
                &output["outputFacets"],
            );
        }
    }
    assert_valid(
        &openlineage_validator(&format!("{OL}/facets/1-0-1/ErrorMessageRunFacet.json")),
        "errorMessage",
        &event["run"]["facets"],
    );
}

/// The events a receiver got, once each (a retried delivery counts once).
fn received(got: &std::sync::Mutex<Vec<common::receiver::Received>>) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    got.lock()
        .unwrap()
        .iter()
        .inspect(|r| assert_eq!(r.line, "POST /api/v1/lineage HTTP/1.1"))
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .filter(|e| {
            seen.insert((
                e["run"]["runId"].as_str().unwrap().to_string(),
                e["eventType"].as_str().unwrap().to_string(),
            ))
        })
        .collect()
}

#[test]
fn every_run_sends_openlineage_events_that_validate_and_are_kept_locally() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    ok(&dir, &["deploy"]);
    let (url, got) = common::receiver::receiver("");
    let out = common::mesh_env(&dir, &["run"], &[("OPENLINEAGE_URL", &url)]);
    assert!(out.status.success(), "{out:?}");
    let events = received(&got);
    // START and COMPLETE for each of the three products, in order.
    assert_eq!(events.len(), 6, "{events:#?}");
    for pair in events.chunks(2) {
        assert_eq!(pair[0]["eventType"], "START");
        assert_eq!(pair[1]["eventType"], "COMPLETE");
        assert_eq!(pair[0]["run"]["runId"], pair[1]["run"]["runId"]);
    }
    for e in &events {
        validate_event(e);
    }
    // The validator does refuse a malformed event.
    let mut broken = events[0].clone();
    broken["run"]["runId"] = serde_json::json!(42);
    assert!(
        !openlineage_validator(&format!("{OL}/2-0-2/OpenLineage.json#/$defs/RunEvent"))
            .is_valid(&broken)
    );
    let contacts = events
        .iter()
        .find(|e| e["job"]["name"] == "ops/contacts" && e["eventType"] == "COMPLETE")
        .unwrap();
    assert_eq!(contacts["job"]["namespace"], "mesh://mesh");
    assert_eq!(
        contacts["inputs"],
        serde_json::json!([{"namespace": "mesh://mesh", "name": "hr.employees"}])
    );
    let output = &contacts["outputs"][0];
    assert_eq!(output["name"], "ops.contacts");
    let sample = &output["facets"]["columnLineage"]["fields"]["sample_contact"]["inputFields"];
    assert!(
        sample.as_array().unwrap().contains(&serde_json::json!({
            "namespace": "mesh://mesh", "name": "hr.employees", "field": "email",
            "transformations": [{"type": "DIRECT", "subtype": "AGGREGATION", "masking": false}],
        })),
        "{sample}"
    );
    let staff = &output["facets"]["columnLineage"]["fields"]["staff"]["inputFields"];
    assert!(staff.to_string().contains("\"masking\":true"), "{staff}");
    let employees = events
        .iter()
        .find(|e| e["job"]["name"] == "hr/employees" && e["eventType"] == "COMPLETE")
        .unwrap();
    assert_eq!(employees["inputs"][0]["namespace"], "file");
    assert!(
        employees["inputs"][0]["name"]
            .as_str()
            .unwrap()
            .ends_with("hr/employees/data/employees.csv")
    );
    // The checks become assertions (`mesh init`'s example has some).
    let greetings = events
        .iter()
        .find(|e| e["job"]["name"] == "example/greetings" && e["eventType"] == "COMPLETE")
        .unwrap();
    let assertions =
        &greetings["outputs"][0]["outputFacets"]["dataQualityAssertions"]["assertions"];
    assert!(!assertions.as_array().unwrap().is_empty(), "{greetings}");

    // A failing run sends FAIL; its error message quotes no data.
    write(
        &dir.join("hr/employees/data/employees.csv"),
        "id,email,dept\nnot-a-number,leak@acme.example,eng\n",
    );
    let out = common::mesh_env(&dir, &["run", "hr/employees"], &[("OPENLINEAGE_URL", &url)]);
    assert!(!out.status.success());
    let events = received(&got);
    let fail = events.last().unwrap();
    assert_eq!(fail["eventType"], "FAIL", "{fail}");
    validate_event(fail);
    assert!(!fail.to_string().contains("leak@acme.example"), "{fail}");
    assert!(
        fail["run"]["facets"]["errorMessage"]["message"]
            .as_str()
            .unwrap()
            .contains("mesh runs show")
    );

    // Every event is kept locally, delivered or not.
    let stored = std::fs::read_to_string(dir.join(".mesh/openlineage/events.jsonl")).unwrap();
    assert_eq!(stored.lines().count(), events.len());
    // An endpoint that does not answer never fails a run.
    write(
        &dir.join("hr/employees/data/employees.csv"),
        "id,email,dept\n1,ada@acme.example,eng\n",
    );
    let out = common::mesh_env(
        &dir,
        &["run", "hr/employees"],
        &[("OPENLINEAGE_URL", "http://127.0.0.1:9")],
    );
    assert!(out.status.success(), "{out:?}");
    let stored = std::fs::read_to_string(dir.join(".mesh/openlineage/events.jsonl")).unwrap();
    assert_eq!(stored.lines().count(), events.len() + 2);
    for line in stored.lines() {
        validate_event(&serde_json::from_str(line).unwrap());
    }
}

#[test]
fn rest_and_the_remote_cli_answer_lineage_as_the_caller() {
    use common::serve::{Served, body_json, curl, token};
    let tmp = tempfile::tempdir().unwrap();
    let dir = declassified(tmp.path());
    edit(
        &dir,
        "hr/employees/product.yaml",
        "slo: {freshness: 7d}",
        "access: {visibility: private}",
    );
    ok(&dir, &["deploy"]);
    let served = Served::start(&dir, &[]);
    let bob = token(&dir, "bob");
    let admin = token(&dir, common::USER);
    let path = "/api/v1/lineage?target=ops/contacts&direction=upstream";

    let answer = curl(&served.base, path, Some(&bob), None);
    assert_eq!(answer.0, 200, "{answer:?}");
    for hidden in ["hr.", "hr/", "employees", "email"] {
        assert!(
            !answer.2.contains(hidden),
            "REST names `{hidden}`: {}",
            answer.2
        );
    }
    let view = body_json(&answer);
    assert_eq!(view["target"], "ops/contacts");
    assert!(
        view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["redacted"] == true)
    );
    // The admin sees the source; the same document as the local command.
    let admin_view = body_json(&curl(&served.base, path, Some(&admin), None));
    let local = json(
        &dir,
        &["lineage", "ops/contacts", "--upstream", "--format", "json"],
    );
    assert_eq!(admin_view, local);
    // `mesh lineage --server` prints what the local command prints.
    let remote = common::mesh_env(
        &dir,
        &[
            "lineage",
            "ops/contacts",
            "--upstream",
            "--server",
            &served.base,
        ],
        &[("MESH_TOKEN", &admin)],
    );
    assert!(remote.status.success(), "{remote:?}");
    assert_eq!(
        String::from_utf8_lossy(&remote.stdout),
        ok(&dir, &["lineage", "ops/contacts", "--upstream"])
    );
    // A private product named by a stranger is a 404, like an unknown one;
    // a bad direction is a 400; no token is a 401.
    let hidden = curl(
        &served.base,
        "/api/v1/lineage?target=hr/employees",
        Some(&bob),
        None,
    );
    assert_eq!(hidden.0, 404, "{hidden:?}");
    assert!(!hidden.2.contains("did you mean"), "{hidden:?}");
    let bad = curl(
        &served.base,
        "/api/v1/lineage?target=ops/contacts&direction=sideways",
        Some(&bob),
        None,
    );
    assert_eq!(bad.0, 400, "{bad:?}");
    assert_eq!(curl(&served.base, path, None, None).0, 401);
    served.stop();
}

#[test]
fn a_malformed_or_pointless_declassify_is_reported_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let line = CONTACTS.lines().position(|l| l == UNCLASSIFIED).unwrap() + 1;
    let file = "ops/contacts/product.yaml";
    for (declassify, says) in [
        (
            "{from: email, reason: why}",
            "`from` must name an upstream column as `<domain>.<output>.<column>`, found `email`",
        ),
        (
            "{from: hr.employees.email, reason: \"\"}",
            "a declassification needs a reason",
        ),
        ("{from: hr.employees.email, because: why}", "unknown field"),
    ] {
        let text = CONTACTS.replace(
            UNCLASSIFIED,
            &format!(
                "      - name: sample_contact\n        type: string\n        description: Someone to ask\n        declassify: {declassify}"
            ),
        );
        write(&dir.join(file), &text);
        let err = fails(&dir, &["deploy"]);
        assert!(err.contains(says), "{declassify}: {err}");
        assert!(
            err.contains(&format!("{file}:{}:", line + 3)),
            "{declassify}: {err}"
        );
        assert!(
            !ok(&dir, &["catalog", "list"]).contains("ops/contacts"),
            "a refused deploy deploys nothing"
        );
    }
    // A declassify no classification reaches is a warning, not silence.
    write(
        &dir.join(file),
        &CONTACTS.replace(
            "      - {name: dept, type: string, description: Department}",
            "      - name: dept\n        type: string\n        description: Department\n        declassify: {from: hr.employees.email, reason: \"not needed\"}",
        )
        .replace(
            "description: Someone to ask}",
            "description: Someone to ask, classification: pii}",
        ),
    );
    let out = common::mesh(&dir, &["validate"]);
    assert!(out.status.success(), "{out:?}");
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("column `dept` of output `contacts` declassifies `hr.employees.email`, but no classification of `hr.employees.email` flows into it"),
        "{warned}"
    );
}
