//! Property tests of the descriptor parser: no input makes it panic, every
//! diagnostic points inside the file it names, and valid descriptors built
//! from random parts parse back to those parts.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use mesh_spec::diagnostic::Rendered;
use mesh_spec::{ColumnType, Diagnostic, parse_product};
use proptest::prelude::*;

const VALID: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: sales
name: orders
version: 1.2.3
status: active
owner: sales@example.org
description:
  purpose: One row per order.
tags: [orders, "sales"]
inputs:
  - name: raw
    source:
      format: csv
      path: data/orders.csv
      columns:
        - {name: id, type: bigint, nullable: false}
        - {name: amount, type: "decimal(12,2)"}
  - {name: customers, product: customers/profiles}
transform:
  query: SELECT id, amount FROM raw
outputs:
  - name: orders
    primary_key: [id]
    columns:
      - {name: id, type: bigint, nullable: false, description: Order id}
      - name: amount
        type: decimal(12,2)
        classification: internal
    quality:
      - {check: row_count, min: 1}
      - {check: range, column: amount, min: 0, severity: warn}
      - {check: accepted_values, column: id, values: [1, 2]}
slo:
  freshness: 1d
schedule:
  cron: "0 * * * *"
"#;

/// Parses `text` and checks the invariants every outcome must hold.
fn check(text: &str) -> Result<(), TestCaseError> {
    let (product, diagnostics) = parse_product(Path::new("p/product.yaml"), text);
    if product.is_none() {
        prop_assert!(
            diagnostics.iter().any(Diagnostic::is_error),
            "a rejected descriptor must say why"
        );
    }
    for d in &diagnostics {
        prop_assert!(!d.message.is_empty());
        if let Some(loc) = &d.location {
            let span = loc.span;
            prop_assert!(span.start <= span.end && span.end <= loc.file.text.len());
            prop_assert!(loc.file.text.is_char_boundary(span.start));
            prop_assert!(loc.file.text.is_char_boundary(span.end));
            let line = loc.file.text[..span.start].matches('\n').count() + 1;
            prop_assert_eq!(span.line, line, "line of {:?}", d.message);
            prop_assert!(span.col >= 1);
        }
        // Rendering (what the CLI prints) must not panic either.
        let _ = Rendered::from(d.clone()).to_string();
        let _ = d.to_json();
    }
    Ok(())
}

/// Edits that keep text YAML-shaped, so they reach deep into the decoder.
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let pieces = prop_oneof![
        Just(": ".to_string()),
        Just("\n  - ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!int ".to_string()),
        Just("~".to_string()),
        Just("\t".to_string()),
        Just("é".to_string()),
        Just("null".to_string()),
        Just("-1".to_string()),
        Just("1e999".to_string()),
        Just("decimal(99,99)".to_string()),
        "[a-z_]{1,8}",
        "\\PC{0,6}",
    ];
    prop_oneof![
        (any::<usize>(), 1..40usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), pieces).prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, e: &Edit) -> String {
    match e {
        Edit::Delete { at, len } => {
            let start = boundary(text, *at);
            let end = boundary(text, (start + len).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Edit::Insert { at, text: piece } => {
            let at = boundary(text, *at);
            format!("{}{}{}", &text[..at], piece, &text[at..])
        }
        Edit::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.lines().collect();
            let i = line % lines.len();
            lines.insert(i, lines[i]);
            lines.join("\n")
        }
        Edit::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.lines().collect();
            let n = lines.len();
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
    }
}

#[test]
fn the_reference_descriptor_is_valid() {
    let (product, diagnostics) = parse_product(Path::new("p/product.yaml"), VALID);
    assert!(
        diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        diagnostics
    );
    let p = product.unwrap();
    assert_eq!(p.outputs[0].quality.len(), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check(&text)?;
    }

    #[test]
    fn arbitrary_yamlish_text_never_panics(text in "[a-z:\\-\\[\\]{}\"', \n#&*!|>0-9.]{0,400}") {
        check(&text)?;
    }

    #[test]
    fn edited_descriptors_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
        let mut text = VALID.to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        check(&text)?;
    }

    #[test]
    fn generated_descriptors_parse_back(
        domain in "[a-z][a-z0-9_]{0,12}",
        name in "[a-z][a-z0-9_]{0,12}",
        owner in "[a-z]{1,8}@[a-z]{1,8}\\.org",
        (major, minor, patch) in (0u64..100, 0u64..100, 0u64..100),
        columns in prop::collection::btree_map(
            "[a-z][a-z0-9_]{0,10}",
            (prop::sample::select(vec![
                "boolean", "int", "bigint", "double", "string", "date",
                "timestamp", "decimal(10,2)", "decimal(38,0)",
            ]), any::<bool>()),
            1..8,
        ),
    ) {
        let cols: String = columns
            .iter()
            .map(|(c, (ty, nullable))| {
                format!("      - {{name: {c}, type: \"{ty}\", nullable: {nullable}}}\n")
            })
            .collect();
        let text = format!(
            "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: {domain}\nname: {name}\n\
             version: {major}.{minor}.{patch}\nowner: {owner}\n\
             description:\n  purpose: Generated.\n\
             inputs:\n  - {{name: up, product: other/thing}}\n\
             transform:\n  query: SELECT * FROM up\n\
             outputs:\n  - name: out\n    columns:\n{cols}"
        );
        let (product, diagnostics) = parse_product(Path::new("p/product.yaml"), &text);
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
        prop_assert!(errors.is_empty(), "{:?}\n{}", errors, text);
        let p = product.unwrap();
        prop_assert_eq!(p.domain.value.as_str(), domain.as_str());
        prop_assert_eq!(p.name.value.as_str(), name.as_str());
        prop_assert_eq!(p.owner.value.as_str(), owner.as_str());
        prop_assert_eq!(p.version.value.clone(), semver::Version::new(major, minor, patch));
        let parsed: Vec<(String, String, bool)> = p.outputs[0]
            .columns
            .iter()
            .map(|c| (c.name.value.as_str().to_string(), c.ty.value.to_string(), c.nullable))
            .collect();
        let expected: Vec<(String, String, bool)> = columns
            .iter()
            .map(|(c, (ty, nullable))| {
                (c.clone(), ty.parse::<ColumnType>().unwrap().to_string(), *nullable)
            })
            .collect();
        prop_assert_eq!(parsed, expected);
    }
}
