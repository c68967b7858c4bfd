//! The input a policy sees for one read, and the decision it returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who is asking. Teams and roles come from the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrincipalInput {
    pub name: String,
    /// `user` or `service`; `unknown` for a name the catalog does not hold.
    pub kind: String,
    pub teams: Vec<String>,
    pub roles: Vec<String>,
}

/// The product being read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProductInput {
    /// `<domain>/<product>`.
    pub id: String,
    pub domain: String,
    pub name: String,
    pub owner: String,
    /// The teams that own the product's domain.
    pub owner_teams: Vec<String>,
    /// `public`, `discoverable` or `private`.
    pub visibility: String,
    pub status: String,
}

/// A column of the output being read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ColumnInput {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// `public`, `internal`, `confidential`, `pii`, or none.
    pub classification: Option<String>,
}

/// An access grant the principal holds on the product, still in force.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrantInput {
    pub id: String,
    pub purpose: String,
    pub allows_pii: bool,
    pub expires_at: String,
}

/// The policy input for one read of one output (`input` in Rego).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessInput {
    pub action: String,
    pub principal: PrincipalInput,
    pub product: ProductInput,
    pub output: String,
    pub columns: Vec<ColumnInput>,
    pub grants: Vec<GrantInput>,
    pub purpose: Option<String>,
}

/// How a column's values are hidden. Every mask keeps the column's type:
/// where a mask has no value of that type (a hash of a number), the value
/// becomes null.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// Strings become `***`; other types null.
    Redact,
    /// Strings become the hex SHA-256 of the value (joins still work).
    Hash,
    /// Always null.
    Null,
    /// Strings keep their last four characters, the rest starred.
    Last4,
    /// A SQL expression over the table's columns, cast to the column's type.
    Sql(String),
}

impl Mask {
    /// Parses a policy's mask value: `"redact"`, `"hash"`, `"null"`,
    /// `"last4"`, `"sql:<expr>"` or `{"sql": "<expr>"}`.
    pub fn from_policy(v: &serde_json::Value) -> Option<Mask> {
        match v {
            serde_json::Value::String(s) => match s.as_str() {
                "redact" => Some(Mask::Redact),
                "hash" => Some(Mask::Hash),
                "null" => Some(Mask::Null),
                "last4" => Some(Mask::Last4),
                other => other
                    .strip_prefix("sql:")
                    .map(|e| Mask::Sql(e.trim().to_string())),
            },
            serde_json::Value::Object(o) => o
                .get("sql")
                .and_then(|e| e.as_str())
                .map(|e| Mask::Sql(e.to_string())),
            _ => None,
        }
    }

    /// How much a mask hides, to keep the stricter of two.
    fn rank(&self) -> u8 {
        match self {
            Mask::Null => 4,
            Mask::Redact => 3,
            Mask::Hash => 2,
            Mask::Last4 => 1,
            Mask::Sql(_) => 0,
        }
    }

    /// The stricter of two masks on one column.
    pub fn stricter(self, other: Mask) -> Mask {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// The answer for one read: allowed or not (with why), masks by column,
/// and row filters (SQL predicates, all of which must hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
    pub masks: BTreeMap<String, Mask>,
    pub row_filters: Vec<String>,
}

impl Decision {
    /// Whether the data is served as stored: allowed, no mask, no filter.
    pub fn is_unrestricted(&self) -> bool {
        self.allowed && self.masks.is_empty() && self.row_filters.is_empty()
    }
}
