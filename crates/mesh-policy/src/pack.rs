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

/// What a product descriptor must say before it is deployed (package
/// `mesh.deploy`).
pub const DEFAULT_DEPLOY_POLICY: &str = r#"# Deploy-time rules: what a product descriptor must say before `mesh plan`
# and `mesh deploy` accept it. Edit this file to change the rules; no code
# changes are needed.
#
# Input (one descriptor):
#   input.descriptor  product.yaml as written (same keys, same nesting)
#   input.product     {id, domain, name, visibility, status}; visibility is
#                     "discoverable" when the descriptor says nothing
#   input.file        the descriptor's path
#   input.columns     every output column with what its lineage gives it:
#                     {output, name, path, classification,
#                      derived_classification,
#                      sources: [{column, classification, path}],
#                      declassified: [{from, classification, reason, path}]}
#                     (docs/lineage.md); `path` locates the column
#
# Decision: `deny` (blocks the deploy) and `warn` (reported only), sets of
# {"rule", "message", "path"}. `path` leads to the offending key, such as
# ["outputs", 0, "columns", 2, "description"]; the message is shown at that
# line and column, or at the closest key that exists.
package mesh.deploy

import rego.v1

# Words that mark a column as personal data: a column whose name holds one
# of them as a word (split at `_`) must declare a classification, even if
# it is `public`.
personal_words := {
	"email", "phone", "mobile", "firstname", "lastname", "surname", "address",
	"street", "postcode", "zip", "ssn", "passport", "birthdate", "dob", "iban", "ip",
}

# `name` is personal alone or after one of these words (`full_name`,
# `customer_name`), not in `product_name`.
person_words := {
	"full", "first", "last", "given", "family", "middle", "maiden",
	"customer", "user", "person", "contact", "employee", "display",
}

# Products other teams can find are consumer-facing: they promise freshness.
consumer_facing if input.product.visibility != "private"

missing(obj, key) if object.get(obj, key, null) == null

missing(obj, key) if {
	value := object.get(obj, key, "")
	is_string(value)
	trim_space(value) == ""
}

outputs := object.get(input.descriptor, "outputs", [])

deny contains v if {
	missing(input.descriptor, "owner")
	v := {"rule": "owner", "message": "the product names no owner", "path": ["owner"]}
}

deny contains v if {
	missing(object.get(input.descriptor, "description", {}), "purpose")
	v := {
		"rule": "purpose",
		"message": "the product does not state its purpose (description.purpose)",
		"path": ["description", "purpose"],
	}
}

deny contains v if {
	some i, output in outputs
	some j, column in object.get(output, "columns", [])
	missing(column, "description")
	v := {
		"rule": "column-description",
		"message": sprintf("column `%s` of output `%s` has no description", [column.name, output.name]),
		"path": ["outputs", i, "columns", j, "description"],
	}
}

looks_personal(name) if {
	some word in split(lower(name), "_")
	word in personal_words
}

looks_personal(name) if lower(name) == "name"

looks_personal(name) if {
	words := split(lower(name), "_")
	some i, word in words
	word == "name"
	i > 0
	words[i - 1] in person_words
}

deny contains v if {
	some i, output in outputs
	some j, column in object.get(output, "columns", [])
	looks_personal(column.name)
	missing(column, "classification")
	v := {
		"rule": "personal-data-classified",
		"message": sprintf("column `%s` looks like personal data; declare its classification (pii, confidential, internal or public)", [column.name]),
		"path": ["outputs", i, "columns", j, "classification"],
	}
}

# Personal data declassified through lineage is allowed with a reason, and
# said at every plan and deploy. Make it `deny` to forbid it.
warn contains v if {
	some column in input.columns
	some d in column.declassified
	d.classification == "pii"
	v := {
		"rule": "pii-declassified",
		"message": sprintf("column `%s` of output `%s` declassifies pii from `%s`: %s", [column.name, column.output, d.from, d.reason]),
		"path": array.concat(column.path, ["declassify"]),
	}
}

deny contains v if {
	consumer_facing
	missing(object.get(input.descriptor, "slo", {}), "freshness")
	v := {
		"rule": "freshness-slo",
		"message": sprintf("`%s` is %s, so consumers can find it; declare a freshness SLO (slo.freshness), or make it private", [input.product.id, input.product.visibility]),
		"path": ["slo", "freshness"],
	}
}
"#;

/// Unit tests of the deploy rules, in OPA's convention.
pub const DEFAULT_DEPLOY_TESTS: &str = r#"package mesh.deploy_test

import rego.v1

import data.mesh.deploy

base := {
	"domain": "sales", "name": "orders", "owner": "sales@example.org",
	"description": {"purpose": "Orders for revenue reporting."},
	"slo": {"freshness": "6h"},
}

order_id := {"name": "order_id", "type": "bigint", "description": "The order."}

email := {"name": "customer_email", "type": "string", "description": "Who ordered.", "classification": "pii"}

with_columns(columns) := object.union(base, {"outputs": [{"name": "orders", "columns": columns}]})

good := with_columns([order_id, email])

product(visibility) := {"id": "sales/orders", "domain": "sales", "name": "orders", "visibility": visibility, "status": "active"}

test_a_complete_descriptor_passes if {
	count(deploy.deny) == 0 with input as {"descriptor": good, "product": product("discoverable")}
}

test_an_undescribed_column_is_located if {
	bad := with_columns([object.remove(order_id, {"description"}), email])
	found := deploy.deny with input as {"descriptor": bad, "product": product("discoverable")}
	some v in found
	v.rule == "column-description"
	v.path == ["outputs", 0, "columns", 0, "description"]
}

test_personal_data_needs_a_classification if {
	bad := with_columns([order_id, object.remove(email, {"classification"})])
	found := deploy.deny with input as {"descriptor": bad, "product": product("discoverable")}
	{v.rule | some v in found} == {"personal-data-classified"}
}

test_only_a_person_s_name_is_personal if {
	named := [{"name": n, "type": "string", "description": "x"} | some n in ["product_name", "full_name", "name"]]
	found := deploy.deny with input as {"descriptor": with_columns(named), "product": product("discoverable")}
	{v.path[3] | some v in found} == {1, 2}
}

test_purpose_and_freshness_are_required if {
	bad := object.remove(good, {"description", "slo"})
	found := deploy.deny with input as {"descriptor": bad, "product": product("public")}
	{v.rule | some v in found} == {"purpose", "freshness-slo"}
}

test_private_products_need_no_freshness_slo if {
	bad := object.remove(good, {"slo"})
	count(deploy.deny) == 0 with input as {"descriptor": bad, "product": product("private")}
}
"#;

/// The files of the default pack, relative to the mesh root.
pub fn default_pack() -> Vec<(&'static str, &'static str)> {
    vec![
        ("policies/access.rego", DEFAULT_ACCESS_POLICY),
        ("policies/access_test.rego", DEFAULT_ACCESS_TESTS),
        ("policies/deploy.rego", DEFAULT_DEPLOY_POLICY),
        ("policies/deploy_test.rego", DEFAULT_DEPLOY_TESTS),
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
