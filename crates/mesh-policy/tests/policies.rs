//! The policy engine on real Rego files: the default pack, domain
//! policies that can only restrict, syntax errors and Rego unit tests.
#![allow(clippy::unwrap_used)]

use mesh_policy::{
    AccessInput, ColumnInput, GrantInput, Mask, PolicyError, PolicySet, PrincipalInput,
    ProductInput, default_pack,
};

fn pack() -> Vec<(String, String)> {
    default_pack()
        .into_iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

fn input(teams: &[&str], roles: &[&str], grants: Vec<GrantInput>) -> AccessInput {
    AccessInput {
        action: "read".into(),
        principal: PrincipalInput {
            name: "pat".into(),
            kind: "user".into(),
            teams: teams.iter().map(|t| t.to_string()).collect(),
            roles: roles.iter().map(|t| t.to_string()).collect(),
        },
        product: ProductInput {
            id: "sales/orders".into(),
            domain: "sales".into(),
            name: "orders".into(),
            owner: "sales@example.org".into(),
            owner_teams: vec!["sales-team".into()],
            visibility: "discoverable".into(),
            status: "active".into(),
        },
        output: "orders".into(),
        columns: vec![
            ColumnInput {
                name: "order_id".into(),
                ty: "bigint".into(),
                classification: None,
            },
            ColumnInput {
                name: "email".into(),
                ty: "string".into(),
                classification: Some("pii".into()),
            },
            ColumnInput {
                name: "region".into(),
                ty: "string".into(),
                classification: None,
            },
        ],
        grants,
        purpose: None,
    }
}

fn grant(allows_pii: bool) -> GrantInput {
    GrantInput {
        id: "g1".into(),
        purpose: "churn study".into(),
        allows_pii,
        expires_at: "2099-01-01T00:00:00Z".into(),
    }
}

#[test]
fn the_default_pack_allows_owners_and_grantees_and_masks_pii() {
    let set = PolicySet::from_sources(pack(), vec![]).unwrap();
    let owner = set.decide(&input(&["sales-team"], &[], vec![])).unwrap();
    assert!(owner.allowed, "{owner:?}");
    assert_eq!(owner.masks.get("email"), Some(&Mask::Redact));
    assert_eq!(owner.masks.len(), 1);

    let stranger = set.decide(&input(&["ops"], &[], vec![])).unwrap();
    assert!(!stranger.allowed);
    assert!(
        stranger
            .reason
            .contains("no policy allows `pat` to read `sales/orders`"),
        "{}",
        stranger.reason
    );

    let reader = set
        .decide(&input(&["sales-team"], &["pii-reader"], vec![]))
        .unwrap();
    assert!(reader.is_unrestricted(), "{reader:?}");

    let granted = set.decide(&input(&[], &[], vec![grant(false)])).unwrap();
    assert!(granted.allowed);
    assert_eq!(granted.masks.get("email"), Some(&Mask::Redact));
    let granted_pii = set.decide(&input(&[], &[], vec![grant(true)])).unwrap();
    assert!(granted_pii.is_unrestricted());
}

#[test]
fn the_default_pack_passes_its_own_tests() {
    let set = PolicySet::from_sources(pack(), vec![]).unwrap();
    let outcomes = set.run_tests();
    assert_eq!(outcomes.len(), 10, "{outcomes:#?}");
    assert!(outcomes.iter().all(|t| t.passed), "{outcomes:#?}");
}

const SALES_POLICY: &str = r#"package mesh.domain.sales

import rego.v1

# Sales trusts nobody outside the EU with order data.
row_filters contains "region = 'EU'" if not "sales-team" in input.principal.teams

masks["region"] := "hash" if not "sales-team" in input.principal.teams

# A stricter mask than the global redact wins; a weaker one would not.
masks["email"] := "null" if true

deny contains "sales data is closed on weekends" if input.purpose == "weekend"

# Trying to grant is pointless: `allow` is only read from mesh.access.
allow if true
"#;

#[test]
fn a_domain_policy_only_adds_restrictions() {
    let set = PolicySet::from_sources(
        pack(),
        vec![(
            "sales".into(),
            "sales/policies/orders.rego".into(),
            SALES_POLICY.into(),
        )],
    )
    .unwrap();
    // Its `allow` does not let a stranger in.
    let stranger = set.decide(&input(&["ops"], &[], vec![])).unwrap();
    assert!(!stranger.allowed);
    // A grantee gets the global masks, the domain's stricter ones and its row filter.
    let granted = set.decide(&input(&[], &[], vec![grant(false)])).unwrap();
    assert!(granted.allowed);
    assert_eq!(granted.masks.get("email"), Some(&Mask::Null));
    assert_eq!(granted.masks.get("region"), Some(&Mask::Hash));
    assert_eq!(granted.row_filters, ["region = 'EU'"]);
    // A domain deny refuses even a pii-reader admin.
    let mut weekend = input(&["sales-team"], &["mesh-admin", "pii-reader"], vec![]);
    weekend.purpose = Some("weekend".into());
    let d = set.decide(&weekend).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.reason, "sales data is closed on weekends");
    // Another domain's products are untouched by it.
    let mut other = input(&["sales-team"], &["pii-reader"], vec![]);
    other.product.domain = "ops".into();
    assert!(set.decide(&other).unwrap().row_filters.is_empty());
}

#[test]
fn a_domain_cannot_write_into_the_global_package() {
    let err = PolicySet::from_sources(
        pack(),
        vec![(
            "sales".into(),
            "sales/policies/sneaky.rego".into(),
            "# comment\npackage mesh.access\n\nimport rego.v1\n\nallow if true\n".into(),
        )],
    )
    .unwrap_err();
    assert!(
        matches!(err, PolicyError::ForeignPackage { line: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "sales/policies/sneaky.rego:2:1: domain policy declares `package mesh.access`"
        ),
        "{err}"
    );
}

#[test]
fn a_syntax_error_names_the_file_line_and_column() {
    let err = PolicySet::from_sources(
        vec![(
            "policies/broken.rego".into(),
            "package mesh.access\n\nimport rego.v1\n\nallow if {\n  input.a ==\n}\n".into(),
        )],
        vec![],
    )
    .unwrap_err();
    let PolicyError::Syntax {
        file, line, col, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((file.as_str(), *line, *col), ("policies/broken.rego", 7, 1));
    assert!(
        err.to_string().starts_with("policies/broken.rego:7:1: "),
        "{err}"
    );
}

#[test]
fn a_failing_rego_test_is_reported() {
    let set = PolicySet::from_sources(
        vec![
            pack().remove(0),
            (
                "policies/extra_test.rego".into(),
                "package mesh.extra_test\n\nimport rego.v1\nimport data.mesh.access\n\ntest_strangers_allowed if {\n  access.allow with input as {\"principal\": {\"teams\": [], \"roles\": [], \"kind\": \"user\"}, \"product\": {\"owner_teams\": [\"x\"], \"visibility\": \"private\"}, \"grants\": []}\n}\n".into(),
            ),
        ],
        vec![],
    )
    .unwrap();
    let outcomes = set.run_tests();
    assert_eq!(outcomes.len(), 1);
    assert!(!outcomes[0].passed);
    assert_eq!(
        outcomes[0].name,
        "data.mesh.extra_test.test_strangers_allowed"
    );
}

const DESCRIPTOR: &str = "\
apiVersion: meshwork/v1
kind: DataProduct
domain: sales
name: orders
version: 1.0.0
owner: sales@example.org
description: {usage: for reporting}
transform:
  query: SELECT 1 AS order_id, 'a' AS customer_email
outputs:
  - name: orders
    columns:
      - {name: order_id, type: bigint, description: The order.}
      - {name: customer_email, type: string}
access: {visibility: private}
";

fn descriptor(text: &str) -> mesh_spec::ProductDescriptor {
    let (p, diagnostics) =
        mesh_spec::parse_product(std::path::Path::new("sales/orders/product.yaml"), text);
    p.unwrap_or_else(|| panic!("{diagnostics:#?}"))
}

#[test]
fn deploy_rules_point_at_the_descriptor() {
    let set = PolicySet::from_sources(pack(), vec![]).unwrap();
    let found = set.check_descriptor(&descriptor(DESCRIPTOR)).unwrap();
    let shown: Vec<(String, String)> = found
        .iter()
        .map(|d| (d.position().unwrap(), d.message.clone()))
        .collect();
    assert_eq!(found.len(), 3, "{shown:#?}");
    assert!(found.iter().all(|d| d.is_error()));
    // The missing purpose points at `description:`; the column's missing
    // description and classification point at its mapping.
    assert!(
        shown.contains(&(
            "sales/orders/product.yaml:7:1".into(),
            "policy `purpose`: the product does not state its purpose (description.purpose)".into()
        )),
        "{shown:#?}"
    );
    let at_column: Vec<&String> = shown
        .iter()
        .filter(|(at, _)| at == "sales/orders/product.yaml:14:9")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(at_column.len(), 2, "{shown:#?}");
    assert!(
        at_column
            .iter()
            .any(|m| m.contains("`customer_email` of output `orders` has no description"))
    );
    assert!(
        at_column
            .iter()
            .any(|m| m.contains("looks like personal data"))
    );

    // Made discoverable, it must promise freshness too.
    let open = DESCRIPTOR.replace("visibility: private", "visibility: discoverable");
    let found = set.check_descriptor(&descriptor(&open)).unwrap();
    assert!(
        found
            .iter()
            .any(|d| d.message.contains("policy `freshness-slo`")),
        "{found:#?}"
    );
}

#[test]
fn a_domain_adds_its_own_deploy_rules_and_warnings() {
    let domain = r#"package mesh.domain.sales.deploy

import rego.v1

warn contains {"rule": "tags", "message": "sales products carry tags", "path": ["tags"]} if not input.descriptor.tags

deny contains "sales products are never public" if input.product.visibility == "public"
"#;
    let set = PolicySet::from_sources(
        pack(),
        vec![(
            "sales".into(),
            "sales/policies/deploy.rego".into(),
            domain.into(),
        )],
    )
    .unwrap();
    let text = DESCRIPTOR
        .replace("{usage: for reporting}", "{purpose: reporting}")
        .replace("      - {name: customer_email, type: string}\n", "")
        .replace("visibility: private", "visibility: public")
        .replace("access:", "slo: {freshness: 1d}\naccess:");
    let found = set.check_descriptor(&descriptor(&text)).unwrap();
    let messages: Vec<(bool, &str)> = found
        .iter()
        .map(|d| (d.is_error(), d.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        vec![
            (true, "policy: sales products are never public"),
            (false, "policy `tags`: sales products carry tags"),
        ]
    );
}

#[test]
fn a_malformed_violation_is_an_error_not_a_pass() {
    let bad = "package mesh.deploy\n\nimport rego.v1\n\ndeny contains 42 if true\n";
    let set =
        PolicySet::from_sources(vec![("policies/bad.rego".into(), bad.into())], vec![]).unwrap();
    let err = set.check_descriptor(&descriptor(DESCRIPTOR)).unwrap_err();
    assert!(
        err.to_string()
            .contains("data.mesh.deploy.deny: a violation must be"),
        "{err}"
    );
}

/// A policy whose result has the wrong shape refuses every read with an
/// error naming the rule; it is never read as "no restriction".
#[test]
fn a_policy_result_of_the_wrong_shape_fails_closed() {
    let cases = [
        ("masks := \"redact\"", "masks is \"redact\""),
        ("masks := [\"email\"]", "masks is [\"email\"]"),
        ("masks := {\"email\": \"scramble\"}", "not a mask"),
        ("masks := {\"email\": 3}", "not a mask"),
        ("row_filters := \"region = 'EU'\"", "row_filters is"),
        ("row_filters := {\"region\": \"EU\"}", "row_filters is"),
        ("row_filters := [1]", "not a SQL predicate string"),
        ("deny := {\"why\": 1}", "deny is"),
    ];
    for (rule, expected) in cases {
        let policy = format!("package mesh.domain.sales\n\nimport rego.v1\n\n{rule}\n");
        let set = PolicySet::from_sources(
            pack(),
            vec![(
                "sales".into(),
                "sales/policies/bad.rego".into(),
                policy.clone(),
            )],
        )
        .unwrap();
        let err = set
            .decide(&input(&["sales-team"], &[], vec![]))
            .expect_err(&policy);
        assert!(err.to_string().contains(expected), "{policy}: {err}");
    }
    // `allow` that is not a boolean, in the global package.
    let mut files = pack();
    files[0].1 = files[0]
        .1
        .replace("default allow := false", "default allow := \"yes\"");
    let set = PolicySet::from_sources(files, vec![]).unwrap();
    let err = set.decide(&input(&["ops"], &[], vec![])).unwrap_err();
    assert!(err.to_string().contains("allow is \"yes\""), "{err}");
}
