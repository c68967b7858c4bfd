//! Contract diffs between two descriptor texts.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use mesh_contract::{Change, Grade, diff_products};
use mesh_spec::parse_product;

const BASE: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: sales
name: orders
version: 1.0.0
owner: sales@example.org
description:
  purpose: One row per order.
tags: [orders]
inputs:
  - {name: raw, product: raw/orders}
transform:
  query: SELECT * FROM raw
outputs:
  - name: orders
    primary_key: [order_id]
    columns:
      - {name: order_id, type: bigint, nullable: false}
      - {name: customer_id, type: int, nullable: false}
      - {name: amount, type: "decimal(10,2)"}
      - {name: status, type: string, classification: internal}
      - {name: note, type: string, description: Free text}
    quality:
      - {check: range, column: amount, min: 0, max: 1000}
      - {check: accepted_values, column: status, values: [open, shipped]}
      - {check: row_count, min: 1}
slo:
  freshness: 6h
"#;

fn diff(edit: impl Fn(&str) -> String) -> Vec<Change> {
    let (old, d) = parse_product(Path::new("sales/orders/product.yaml"), BASE);
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
    let text = edit(BASE);
    let (new, d) = parse_product(Path::new("sales/orders/product.yaml"), &text);
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}\n{text}");
    diff_products(&old.unwrap(), &new.unwrap())
}

fn codes(changes: &[Change]) -> Vec<(String, Grade)> {
    changes
        .iter()
        .map(|c| {
            let json = serde_json::to_value(c).unwrap();
            (json["change"].as_str().unwrap().to_string(), c.grade)
        })
        .collect()
}

#[test]
fn no_change_no_diff() {
    assert!(diff(|s| s.to_string()).is_empty());
}

#[test]
fn dropping_a_column_is_breaking_and_adding_a_nullable_one_is_not() {
    let changes = diff(|s| {
        s.replace(
            "      - {name: note, type: string, description: Free text}\n",
            "",
        )
        .replace(
            "      - {name: status,",
            "      - {name: channel, type: string}\n      - {name: status,",
        )
    });
    assert_eq!(
        codes(&changes),
        [
            ("column_removed".into(), Grade::Breaking),
            ("column_added".into(), Grade::Compatible)
        ]
    );
    assert_eq!(changes[0].column.as_deref(), Some("note"));
    // Same type: the drop plus add may be a rename; the hint says how to declare one.
    assert!(
        changes[0]
            .hint
            .as_ref()
            .unwrap()
            .contains("renamed_from: note")
    );
}

#[test]
fn a_declared_rename_is_one_breaking_change() {
    let changes = diff(|s| {
        s.replace(
            "{name: note, type: string, description: Free text}",
            "{name: comment, type: string, description: Free text, renamed_from: note}",
        )
    });
    assert_eq!(
        codes(&changes),
        [("column_renamed".into(), Grade::Breaking)]
    );
    assert_eq!(changes[0].column.as_deref(), Some("note"));
}

#[test]
fn widening_is_compatible_and_narrowing_is_breaking() {
    let changes = diff(|s| {
        s.replace("type: int, nullable", "type: bigint, nullable")
            .replace("\"decimal(10,2)\"", "\"decimal(8,2)\"")
    });
    assert_eq!(
        codes(&changes),
        [
            ("type_widened".into(), Grade::Compatible),
            ("type_narrowed".into(), Grade::Breaking)
        ]
    );
    let changes = diff(|s| s.replace("{name: status, type: string", "{name: status, type: int"));
    assert_eq!(codes(&changes), [("type_changed".into(), Grade::Breaking)]);
}

#[test]
fn nullability_primary_key_and_classification() {
    let changes = diff(|s| {
        s.replace(
            "{name: customer_id, type: int, nullable: false}",
            "{name: customer_id, type: int}",
        )
        .replace(
            "{name: amount, type: \"decimal(10,2)\"}",
            "{name: amount, type: \"decimal(10,2)\", nullable: false}",
        )
        .replace(
            "primary_key: [order_id]",
            "primary_key: [order_id, customer_id]",
        )
        .replace("classification: internal", "classification: pii")
    });
    assert_eq!(
        codes(&changes),
        [
            ("nullability_loosened".into(), Grade::Breaking),
            ("nullability_tightened".into(), Grade::Compatible),
            ("classification_raised".into(), Grade::Breaking),
            ("primary_key_changed".into(), Grade::Breaking),
        ]
    );
}

#[test]
fn checks_and_slo_loosened_or_tightened() {
    let tightened = diff(|s| {
        s.replace("min: 0, max: 1000", "min: 0, max: 500")
            .replace("values: [open, shipped]", "values: [open]")
            .replace("freshness: 6h", "freshness: 1h")
            .replace(
                "      - {check: row_count, min: 1}\n",
                "      - {check: row_count, min: 1}\n      - {check: not_null, column: note}\n",
            )
    });
    assert!(
        tightened.iter().all(|c| c.grade == Grade::Compatible),
        "{tightened:#?}"
    );
    assert_eq!(tightened.len(), 4);

    let loosened = diff(|s| {
        s.replace("min: 0, max: 1000", "min: -5, max: 1000")
            .replace("values: [open, shipped]", "values: [open, shipped, lost]")
            .replace("freshness: 6h", "freshness: 1d")
            .replace("      - {check: row_count, min: 1}\n", "")
    });
    assert!(
        loosened.iter().all(|c| c.grade == Grade::Breaking),
        "{loosened:#?}"
    );
    assert_eq!(
        codes(&loosened)
            .into_iter()
            .map(|c| c.0)
            .collect::<Vec<_>>(),
        [
            "slo_loosened",
            "check_loosened",
            "check_loosened",
            "check_removed"
        ]
    );
    let warn = diff(|s| {
        s.replace(
            "{check: row_count, min: 1}",
            "{check: row_count, min: 1, severity: warn}",
        )
    });
    assert_eq!(codes(&warn), [("check_loosened".into(), Grade::Breaking)]);
}

#[test]
fn advisory_checks_promise_nothing() {
    let base = |s: &str| {
        s.replace(
            "{check: row_count, min: 1}",
            "{check: row_count, min: 1, severity: warn}",
        )
    };
    let (old, _) = parse_product(Path::new("p.yaml"), &base(BASE));
    let loosened = base(BASE).replace("min: 1, severity: warn", "min: 0, severity: warn");
    let (new, _) = parse_product(Path::new("p.yaml"), &loosened);
    let changes = diff_products(&old.clone().unwrap(), &new.unwrap());
    assert_eq!(
        codes(&changes),
        [("advisory_check_changed".into(), Grade::Compatible)]
    );
    let removed = base(BASE).replace("      - {check: row_count, min: 1, severity: warn}\n", "");
    let (new, _) = parse_product(Path::new("p.yaml"), &removed);
    let changes = diff_products(&old.unwrap(), &new.unwrap());
    assert_eq!(
        codes(&changes),
        [("advisory_check_changed".into(), Grade::Compatible)]
    );
}

#[test]
fn documentation_is_cosmetic() {
    let changes = diff(|s| {
        s.replace("One row per order.", "Every order, one row each.")
            .replace("tags: [orders]", "tags: [orders, finance]")
            .replace(
                "description: Free text",
                "description: Notes from the buyer",
            )
    });
    assert!(
        changes.iter().all(|c| c.grade == Grade::Cosmetic),
        "{changes:#?}"
    );
    assert_eq!(changes.len(), 3);
}

fn with_address(text: &str, address: &str) -> String {
    text.replace(
        "      - {name: note, type: string, description: Free text}",
        &format!(
            "      - {{name: note, type: string, description: Free text}}\n      - {{name: address, type: \"{address}\"}}"
        ),
    )
}

fn nested_diff(from: &str, to: &str) -> Vec<Change> {
    let (old, d) = parse_product(
        Path::new("sales/orders/product.yaml"),
        &with_address(BASE, from),
    );
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
    let (new, d) = parse_product(
        Path::new("sales/orders/product.yaml"),
        &with_address(BASE, to),
    );
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
    diff_products(&old.unwrap(), &new.unwrap())
}

#[test]
fn changes_inside_struct_and_list_columns_are_graded_where_they_happen() {
    let changes = nested_diff(
        "struct<street string, zip int, lines list<struct<sku string, qty int>>>",
        "struct<street string not null, zip string, lines list<struct<sku string, qty bigint, note string>>, geo struct<lat double>>",
    );
    let got: Vec<(String, Option<String>, Grade)> = changes
        .iter()
        .map(|c| {
            let json = serde_json::to_value(c).unwrap();
            (
                json["change"].as_str().unwrap().to_string(),
                c.field.clone(),
                c.grade,
            )
        })
        .collect();
    let f = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        [
            (
                "nullability_tightened".into(),
                f("address.street"),
                Grade::Compatible
            ),
            ("type_changed".into(), f("address.zip"), Grade::Breaking),
            (
                "type_widened".into(),
                f("address.lines[].qty"),
                Grade::Compatible
            ),
            (
                "field_added".into(),
                f("address.lines[].note"),
                Grade::Compatible
            ),
            ("field_added".into(), f("address.geo"), Grade::Compatible),
        ]
    );
    // Every change is attributed to the top-level column its readers read.
    assert!(
        changes
            .iter()
            .all(|c| c.column.as_deref() == Some("address"))
    );
    let zip = &changes[1];
    assert_eq!(
        zip.message,
        "output `orders`: field `address.zip` type int → string (incompatible)"
    );
}

#[test]
fn removing_or_narrowing_a_nested_field_breaks() {
    let changes = nested_diff(
        "struct<street string, tags list<bigint>, attrs map<string, bigint>>",
        "struct<tags list<int>, attrs map<string, int>>",
    );
    let got: Vec<(String, Grade)> = codes(&changes);
    assert_eq!(
        got,
        [
            ("field_removed".to_string(), Grade::Breaking),
            ("type_narrowed".to_string(), Grade::Breaking),
            ("type_narrowed".to_string(), Grade::Breaking),
        ]
    );
    let fields: Vec<&str> = changes.iter().filter_map(|c| c.field.as_deref()).collect();
    assert_eq!(
        fields,
        ["address.street", "address.tags[]", "address.attrs{value}"]
    );
    // A struct replaced by a string is a type change of the column itself.
    let whole = nested_diff("struct<a int>", "string");
    assert_eq!(
        codes(&whole),
        [("type_changed".to_string(), Grade::Breaking)]
    );
    assert_eq!(whole[0].field, None);
}
