//! The default policy pack `mesh init` writes into `policies/`.

/// Who may read what, and how (package `mesh.access`).
pub const DEFAULT_ACCESS_POLICY: &str = r#"# Access to data products: who may read an output, and how.
#
# Input (one read of one output):
#   input.principal  {name, kind, teams, roles}
#   input.product    {id, domain, name, owner, owner_teams, visibility, status}
#   input.output     the output's name
#   input.columns    [{name, type, classification}]
#   input.grants     the principal's grants on this product still in force:
#                    [{id, purpose, allows_pii, expires_at}]
#   input.purpose    the purpose the reader gave, if any
#
# Decision: `allow` (default false), `deny` (reasons; any one refuses),
# `masks[column]` ("redact", "hash", "null", "last4" or "sql:<expr>"),
# `row_filters` (SQL predicates; every one must hold).
package mesh.access

import rego.v1

default allow := false

# A domain's own teams read its products.
allow if {
	some team in input.principal.teams
	team in input.product.owner_teams
}

# Mesh administrators read everything (personal data stays masked).
allow if "mesh-admin" in input.principal.roles

# Public products are open to every known principal.
allow if {
	input.product.visibility == "public"
	input.principal.kind != "unknown"
}

# An approved access request, still in force.
allow if count(input.grants) > 0

pii_allowed if "pii-reader" in input.principal.roles

pii_allowed if {
	some grant in input.grants
	grant.allows_pii
}

# Personal data is masked unless the reader may see it.
masks[column.name] := "redact" if {
	some column in input.columns
	column.classification == "pii"
	not pii_allowed
}
"#;

/// Unit tests of the access policy, in OPA's convention (`test_` rules).
pub const DEFAULT_ACCESS_TESTS: &str = r#"package mesh.access_test

import rego.v1

import data.mesh.access

product := {
	"id": "sales/orders", "domain": "sales", "name": "orders", "owner": "sales@example.org",
	"owner_teams": ["sales-team"], "visibility": "discoverable", "status": "active",
}

columns := [
	{"name": "order_id", "type": "bigint", "classification": null},
	{"name": "email", "type": "string", "classification": "pii"},
]

reader(teams, roles) := {"name": "p", "kind": "user", "teams": teams, "roles": roles}

test_owner_team_reads_with_pii_masked if {
	access.allow with input as {"principal": reader(["sales-team"], []), "product": product, "columns": columns, "grants": []}
	access.masks.email == "redact" with input as {"principal": reader(["sales-team"], []), "product": product, "columns": columns, "grants": []}
}

test_stranger_is_refused if {
	not access.allow with input as {"principal": reader(["other"], []), "product": product, "columns": columns, "grants": []}
}

test_pii_reader_sees_pii if {
	count(access.masks) == 0 with input as {"principal": reader(["sales-team"], ["pii-reader"]), "product": product, "columns": columns, "grants": []}
}

test_grant_allows_reading if {
	access.allow with input as {"principal": reader([], []), "product": product, "columns": columns, "grants": [{"id": "g1", "purpose": "churn study", "allows_pii": false, "expires_at": "2099-01-01T00:00:00Z"}]}
}
"#;

/// The files of the default pack, relative to the mesh root.
pub fn default_pack() -> Vec<(&'static str, &'static str)> {
    vec![
        ("policies/access.rego", DEFAULT_ACCESS_POLICY),
        ("policies/access_test.rego", DEFAULT_ACCESS_TESTS),
    ]
}

/// Writes the default pack under `root` (creating `policies/`), as
/// `mesh init` does. Returns the path that failed with the error.
pub fn write_default_pack(
    root: &std::path::Path,
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    for (rel, text) in default_pack() {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| (parent.to_path_buf(), e))?;
        }
        std::fs::write(&path, text).map_err(|e| (path.clone(), e))?;
    }
    Ok(())
}
