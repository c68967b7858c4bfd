//! ODCS round trips: what an export and an import preserve, and what the
//! schema refuses.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use mesh_contract::{diff_products, odcs};
use mesh_spec::parse_product;
use serde_json::json;

const PRODUCT: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: sales
name: orders
version: 2.3.1
status: deprecated
owner: sales@example.org
description:
  purpose: One row per order.
  usage: Join on order_id.
  limitations: Cancelled orders excluded.
tags: [orders, finance]
inputs:
  - {name: raw, product: raw/orders}
transform:
  query: SELECT * FROM raw
outputs:
  - name: orders
    description: Orders, deduplicated.
    primary_key: [order_id, line]
    columns:
      - {name: order_id, type: bigint, nullable: false, description: Order id}
      - {name: line, type: int, nullable: false}
      - {name: amount, type: "decimal(12,2)", classification: confidential}
      - {name: status, type: string}
      - {name: email, type: string, classification: pii}
      - {name: placed, type: timestamp}
      - {name: day, type: date, nullable: false}
      - {name: ok, type: boolean}
      - {name: shipping, type: "struct<street string, zip int not null, lines list<struct<sku string, qty int>>>"}
      - {name: attrs, type: "map<string, double>"}
    quality:
      - {check: range, column: amount, min: 0, max: 10000}
      - {check: accepted_values, column: status, values: [open, shipped], severity: warn}
      - {check: not_null, column: email}
      - {check: unique, columns: [email, day]}
      - {check: row_count, min: 1, max: 5000000}
      - {check: sql, name: no_future, query: "SELECT count(*) FROM orders WHERE day > current_date", must_be: 0}
  - name: order_stats
    columns:
      - {name: day, type: date}
      - {name: n, type: bigint, nullable: false}
    quality:
      - {check: row_count, min: 1}
slo:
  freshness: 6h
"#;

#[test]
fn export_is_schema_valid_and_import_preserves_the_contract() {
    let (p, d) = parse_product(Path::new("sales/orders/product.yaml"), PRODUCT);
    let p = p.unwrap_or_else(|| panic!("{d:?}"));
    let doc = odcs::export(&p);
    assert_eq!(odcs::validate(&doc), vec![], "{doc:#}");
    assert_eq!(doc["apiVersion"], odcs::API_VERSION);
    assert_eq!(doc["schema"][0]["properties"][0]["primaryKeyPosition"], 1);
    // The table's own name, as `datacontract test` resolves it.
    assert_eq!(doc["schema"][0]["physicalName"], doc["schema"][0]["name"]);

    // The YAML text parses back to the same document.
    let yaml = odcs::to_yaml(&doc);
    assert!(yaml.contains("apiVersion: v3.1.0"), "{yaml}");

    // Importing gives a descriptor whose contract equals the original's.
    let (skeleton, notes) = odcs::import(&doc);
    assert!(notes.is_empty(), "{notes:?}");
    let (back, d) = parse_product(Path::new("sales/orders/product.yaml"), &skeleton);
    let back = back.unwrap_or_else(|| panic!("{d:?}\n{skeleton}"));
    let changes = diff_products(&p, &back);
    assert!(changes.is_empty(), "{changes:#?}\n{skeleton}");
    // Not part of ODCS, so not carried: inputs and the transform.
    assert!(back.inputs.is_empty());
}

#[test]
fn schema_violations_name_their_path() {
    let doc = json!({
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "x",
        "version": "1.0.0",
        "status": "active",
        "schema": [{
            "name": "t",
            "properties": [{"name": "a", "logicalType": "integer", "required": "yes"}]
        }]
    });
    let errors = odcs::validate(&doc);
    assert!(
        errors
            .iter()
            .any(|e| e.path == "/schema/0/properties/0/required"),
        "{errors:#?}"
    );
    let missing = odcs::validate(&json!({"kind": "DataContract"}));
    assert!(!missing.is_empty());
}

#[test]
fn nested_columns_are_imported_from_properties_and_items() {
    // Only ODCS's own keys, no physicalType: the shape comes from
    // `properties` and `items`.
    let doc = json!({
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "x", "version": "1.0.0",
        "status": "active", "domain": "d", "dataProduct": "p",
        "schema": [{"name": "t", "properties": [
            {"name": "address", "logicalType": "object", "properties": [
                {"name": "city", "logicalType": "string", "required": true},
                {"name": "lines", "logicalType": "array", "items": {"logicalType": "integer"}}
            ]},
            {"name": "blob", "logicalType": "object"}
        ]}]
    });
    assert_eq!(odcs::validate(&doc), vec![]);
    let (yaml, notes) = odcs::import(&doc);
    assert!(
        yaml.contains(
            r#"{name: address, type: "struct<city string not null, lines list<bigint>>"}"#
        ),
        "{yaml}"
    );
    // An object without properties has no exact contract type: a note says so.
    assert!(
        notes.iter().any(|n| n.contains("column `blob`")),
        "{notes:?}"
    );
}

#[test]
fn nested_columns_export_their_shape_and_validate() {
    let (p, d) = parse_product(Path::new("sales/orders/product.yaml"), PRODUCT);
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
    let doc = odcs::export(&p.unwrap());
    assert_eq!(odcs::validate(&doc), vec![]);
    let props = doc["schema"][0]["properties"].as_array().unwrap();
    let shipping = props.iter().find(|p| p["name"] == "shipping").unwrap();
    assert_eq!(shipping["logicalType"], "object");
    let zip = &shipping["properties"][1];
    assert_eq!(zip["name"], "zip");
    assert_eq!(zip["required"], true);
    let lines = &shipping["properties"][2];
    assert_eq!(lines["logicalType"], "array");
    assert_eq!(lines["items"]["logicalType"], "object");
    assert_eq!(lines["items"]["properties"][1]["physicalType"], "int");
}
