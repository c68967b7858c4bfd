//! Column classifications across a product's versions.
//!
//! A classification declared once protects the column's data in every
//! version: reading data of product version `V`, a column is classified
//! as the strictest classification its lineage (the column followed
//! through declared renames) has in `V` or any later deployed version of
//! the product's family (its older majors included). Tightening therefore
//! protects history; loosening applies only from the version that
//! loosens on.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;

/// What one deployed version declared about one column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnClass {
    /// `<domain>/<name>` of the family's newest major.
    pub family: String,
    /// The output's name in the family.
    pub output: String,
    /// The product version that declared it.
    pub version: String,
    pub name: String,
    /// The column's identity across renames.
    pub lineage: String,
    /// `public`, `internal`, `confidential`, `pii`, or none.
    pub classification: Option<String>,
}

/// How strict a classification is; the stricter one wins.
pub fn strictness(classification: Option<&str>) -> u8 {
    match classification {
        Some("pii") => 4,
        Some("confidential") => 3,
        Some("internal") => 2,
        Some("public") => 1,
        // An unknown word is kept, and ranks above none.
        Some(_) => 1,
        None => 0,
    }
}

/// The stricter of two classifications.
pub fn stricter(a: Option<String>, b: Option<String>) -> Option<String> {
    if strictness(b.as_deref()) > strictness(a.as_deref()) {
        b
    } else {
        a
    }
}

/// Where the declared classifications of every version are kept.
#[async_trait]
pub trait ClassificationStore: Send + Sync {
    /// Records the classifications of one deployed version, in one
    /// transaction. A row that exists keeps the stricter classification.
    async fn record_classes(&self, rows: &[ColumnClass]) -> Result<()>;

    /// Every recorded row of a family.
    async fn classes(&self, family: &str) -> Result<Vec<ColumnClass>>;

    /// Records the derived column lineage of deployed versions, in one
    /// transaction; a version's earlier row is replaced.
    async fn record_lineage(&self, rows: &[StoredLineage]) -> Result<()>;

    /// The stored lineage of every deployed product's current version
    /// (older majors' lines included). A deployed version without a row
    /// was deployed before lineage was stored.
    async fn current_lineage(&self) -> Result<Vec<StoredLineage>>;
}

/// The column lineage one deployed version derived, as a JSON document
/// the query layer writes and reads (`mesh_query::lineage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredLineage {
    /// `<domain>/<name>` of the family's newest major.
    pub family: String,
    pub version: String,
    pub lineage: String,
}

/// The classification of column `name` in data of product `version` of
/// `output`, from a family's `rows`: the strictest its lineage has in that
/// version or any later one. `None` when nothing is recorded for the
/// output (a product deployed before classifications were recorded).
pub fn classification_at(
    rows: &[ColumnClass],
    output: &str,
    version: &str,
    name: &str,
) -> Option<Option<String>> {
    let rows: Vec<&ColumnClass> = rows.iter().filter(|r| r.output == output).collect();
    if rows.is_empty() {
        return None;
    }
    let read = semver::Version::parse(version).ok();
    // A version that does not parse is compared as later: stricter.
    let order = |r: &ColumnClass| match (&read, semver::Version::parse(&r.version)) {
        (Some(v), Ok(w)) => w.cmp(v),
        _ => std::cmp::Ordering::Greater,
    };
    let named: Vec<&&ColumnClass> = rows.iter().filter(|r| r.name == name).collect();
    let lineage = named
        .iter()
        .filter(|r| order(r).is_le())
        .max_by(|a, b| {
            semver::Version::parse(&a.version)
                .ok()
                .cmp(&semver::Version::parse(&b.version).ok())
        })
        .or_else(|| named.first())
        .map_or(name, |r| r.lineage.as_str());
    let mut class = None;
    for r in &rows {
        if (r.lineage == lineage || r.name == name) && order(r).is_ge() {
            class = stricter(class, r.classification.clone());
        }
    }
    Some(class)
}

/// The rows one deployed version adds: each column of each output, its
/// lineage followed from `existing` rows through `renamed_from`.
pub fn version_rows(
    existing: &[ColumnClass],
    family: &str,
    version: &str,
    outputs: &[(String, Vec<DeclaredColumn>)],
) -> Vec<ColumnClass> {
    let newest = |output: &str, name: &str| {
        existing
            .iter()
            .filter(|r| r.output == output && r.name == name)
            .max_by(|a, b| {
                semver::Version::parse(&a.version)
                    .ok()
                    .cmp(&semver::Version::parse(&b.version).ok())
            })
            .map(|r| r.lineage.clone())
    };
    let mut out = Vec::new();
    for (output, columns) in outputs {
        for c in columns {
            let lineage = c
                .renamed_from
                .as_deref()
                .map(|from| newest(output, from).unwrap_or_else(|| from.to_string()))
                .or_else(|| newest(output, &c.name))
                .unwrap_or_else(|| c.name.clone());
            out.push(ColumnClass {
                family: family.to_string(),
                output: output.clone(),
                version: version.to_string(),
                name: c.name.clone(),
                lineage,
                classification: c.classification.clone(),
            });
        }
    }
    out
}

/// A column as a descriptor declares it, for [`version_rows`].
#[derive(Debug, Clone)]
pub struct DeclaredColumn {
    pub name: String,
    pub classification: Option<String>,
    pub renamed_from: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, class: Option<&str>, from: Option<&str>) -> DeclaredColumn {
        DeclaredColumn {
            name: name.into(),
            classification: class.map(Into::into),
            renamed_from: from.map(Into::into),
        }
    }

    #[test]
    fn tightening_protects_history_and_loosening_applies_from_then_on() {
        let mut rows = Vec::new();
        for (version, columns) in [
            (
                "0.1.0",
                vec![col("contact", None, None), col("id", None, None)],
            ),
            // Renamed and classified: older data under the old name too.
            (
                "0.2.0",
                vec![
                    col("email", Some("pii"), Some("contact")),
                    col("id", None, None),
                ],
            ),
            // Loosened later: from 0.3.0 on only.
            (
                "0.3.0",
                vec![col("email", Some("internal"), None), col("id", None, None)],
            ),
        ] {
            let new = version_rows(&rows, "s/t", version, &[("t".into(), columns)]);
            rows.extend(new);
        }
        let at = |v, n| classification_at(&rows, "t", v, n).unwrap();
        assert_eq!(at("0.1.0", "contact"), Some("pii".into()));
        assert_eq!(at("0.2.0", "email"), Some("pii".into()));
        assert_eq!(at("0.3.0", "email"), Some("internal".into()));
        assert_eq!(at("0.1.0", "id"), None);
        assert_eq!(classification_at(&rows, "other", "0.1.0", "id"), None);
        // A name never recorded in the version read, but later: strict.
        assert_eq!(at("0.0.1", "email"), Some("pii".into()));
    }
}
