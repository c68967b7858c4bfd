//! Comparing two versions of a product's contract.

use std::collections::{BTreeMap, BTreeSet};

use mesh_spec::{
    CheckKind, CheckSeverity, Classification, Column, Literal, Output, ProductDescriptor,
    QualityCheck, format_duration,
};
use serde::Serialize;

use crate::rules::{Grade, grade};
use crate::types::{NestedChange, TypeChange, type_changes};

/// What changed. Serialized as `{"change": "<code>", ...details}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ChangeKind {
    OutputAdded,
    OutputRemoved,
    OutputDescriptionChanged,
    ColumnAdded {
        nullable: bool,
    },
    ColumnRemoved,
    /// A field appeared inside a struct column (see `Change::field`).
    FieldAdded {
        nullable: bool,
    },
    /// A field went away from a struct column (see `Change::field`).
    FieldRemoved,
    ColumnRenamed {
        from: String,
        to: String,
    },
    TypeWidened {
        from: String,
        to: String,
    },
    TypeNarrowed {
        from: String,
        to: String,
    },
    TypeChanged {
        from: String,
        to: String,
    },
    NullabilityTightened,
    NullabilityLoosened,
    PrimaryKeyAdded {
        to: Vec<String>,
    },
    PrimaryKeyRemoved {
        from: Vec<String>,
    },
    PrimaryKeyChanged {
        from: Vec<String>,
        to: Vec<String>,
    },
    ClassificationRaised {
        from: Option<String>,
        to: Option<String>,
    },
    ClassificationLowered {
        from: Option<String>,
        to: Option<String>,
    },
    ColumnDescriptionChanged,
    CheckAdded,
    CheckRemoved,
    CheckTightened {
        detail: String,
    },
    CheckLoosened {
        detail: String,
    },
    CheckChanged {
        detail: String,
    },
    /// A `severity: warn` check changed or went away: it never blocked a
    /// release, so readers were never promised it.
    AdvisoryCheckChanged {
        detail: String,
    },
    SloAdded,
    SloRemoved,
    SloTightened {
        from: String,
        to: String,
    },
    SloLoosened {
        from: String,
        to: String,
    },
    StatusChanged {
        from: String,
        to: String,
    },
    DescriptionChanged,
    TagsChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    OwnerChanged {
        from: String,
        to: String,
    },
}

/// One graded change of a contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub grade: Grade,
    #[serde(flatten)]
    pub kind: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The column as readers of the old contract name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The place inside a nested column, extending the column name:
    /// `address.zip`, `items[].price`, `attrs{value}`. Consumers are matched
    /// on `column`, since a reader of a struct column reads all of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// A sentence for people.
    pub message: String,
    /// How to avoid or handle it, when there is something to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Change {
    fn new(kind: ChangeKind, message: String) -> Self {
        Change {
            grade: grade(&kind),
            kind,
            output: None,
            column: None,
            field: None,
            check: None,
            message,
            hint: None,
        }
    }

    fn on(mut self, output: &str) -> Self {
        self.output = Some(output.to_string());
        self
    }

    fn column(mut self, column: &str) -> Self {
        self.column = Some(column.to_string());
        self
    }

    fn field(mut self, path: &str) -> Self {
        self.field = Some(path.to_string());
        self
    }

    fn check(mut self, check: &str) -> Self {
        self.check = Some(check.to_string());
        self
    }

    pub fn is_breaking(&self) -> bool {
        self.grade == Grade::Breaking
    }
}

/// Every contract change from `old` (deployed) to `new` (local), in a
/// stable order: product-level changes, then each output's.
pub fn diff_products(old: &ProductDescriptor, new: &ProductDescriptor) -> Vec<Change> {
    let mut out = Vec::new();
    if old.status != new.status {
        let (from, to) = (old.status.as_str(), new.status.as_str());
        out.push(Change::new(
            ChangeKind::StatusChanged {
                from: from.into(),
                to: to.into(),
            },
            format!("status {from} → {to}"),
        ));
    }
    if old.owner.value != new.owner.value {
        out.push(Change::new(
            ChangeKind::OwnerChanged {
                from: old.owner.value.clone(),
                to: new.owner.value.clone(),
            },
            format!("owner {} → {}", old.owner.value, new.owner.value),
        ));
    }
    if old.description != new.description {
        out.push(Change::new(
            ChangeKind::DescriptionChanged,
            "description changed".into(),
        ));
    }
    let (old_tags, new_tags): (BTreeSet<&String>, BTreeSet<&String>) =
        (old.tags.iter().collect(), new.tags.iter().collect());
    if old_tags != new_tags {
        let added: Vec<String> = new_tags
            .difference(&old_tags)
            .map(|s| s.to_string())
            .collect();
        let removed: Vec<String> = old_tags
            .difference(&new_tags)
            .map(|s| s.to_string())
            .collect();
        out.push(Change::new(
            ChangeKind::TagsChanged {
                added: added.clone(),
                removed: removed.clone(),
            },
            format!(
                "tags changed (added: [{}], removed: [{}])",
                added.join(", "),
                removed.join(", ")
            ),
        ));
    }
    diff_slo(old, new, &mut out);
    let old_outputs: BTreeMap<&str, &Output> =
        old.outputs.iter().map(|o| (o.name.as_str(), o)).collect();
    let new_outputs: BTreeMap<&str, &Output> =
        new.outputs.iter().map(|o| (o.name.as_str(), o)).collect();
    for (name, o) in &old_outputs {
        match new_outputs.get(name) {
            None => out.push(
                Change::new(
                    ChangeKind::OutputRemoved,
                    format!("output `{name}` removed"),
                )
                .on(name),
            ),
            Some(n) => diff_output(o, n, &mut out),
        }
    }
    for name in new_outputs.keys().filter(|n| !old_outputs.contains_key(*n)) {
        out.push(Change::new(ChangeKind::OutputAdded, format!("output `{name}` added")).on(name));
    }
    out
}

fn diff_slo(old: &ProductDescriptor, new: &ProductDescriptor, out: &mut Vec<Change>) {
    let freshness = |p: &ProductDescriptor| {
        p.slo
            .as_ref()
            .and_then(|s| s.freshness.as_ref())
            .map(|f| f.value)
    };
    match (freshness(old), freshness(new)) {
        (None, Some(f)) => out.push(Change::new(
            ChangeKind::SloAdded,
            format!("SLO freshness {} added", format_duration(f)),
        )),
        (Some(f), None) => out.push(Change::new(
            ChangeKind::SloRemoved,
            format!("SLO freshness {} removed", format_duration(f)),
        )),
        (Some(a), Some(b)) if a != b => {
            let (from, to) = (format_duration(a), format_duration(b));
            let message = format!("SLO freshness {from} → {to}");
            out.push(if b < a {
                Change::new(ChangeKind::SloTightened { from, to }, message)
            } else {
                Change::new(ChangeKind::SloLoosened { from, to }, message)
            });
        }
        _ => {}
    }
}

/// Sensitivity order of classifications; unclassified is the least.
fn sensitivity(c: Option<Classification>) -> u8 {
    match c {
        None => 0,
        Some(Classification::Public) => 1,
        Some(Classification::Internal) => 2,
        Some(Classification::Confidential) => 3,
        Some(Classification::Pii) => 4,
    }
}

fn diff_output(old: &Output, new: &Output, out: &mut Vec<Change>) {
    let o = old.name.as_str();
    if old.description != new.description {
        out.push(
            Change::new(
                ChangeKind::OutputDescriptionChanged,
                format!("output `{o}`: description changed"),
            )
            .on(o),
        );
    }
    let old_cols: BTreeMap<&str, &Column> =
        old.columns.iter().map(|c| (c.name.as_str(), c)).collect();
    let new_names: BTreeSet<&str> = new.columns.iter().map(|c| c.name.as_str()).collect();
    // New column name -> the old column it continues, if any.
    let mut matched: BTreeMap<&str, &str> = BTreeMap::new();
    for c in &new.columns {
        let name = c.name.as_str();
        if old_cols.contains_key(name) {
            matched.insert(name, name);
        } else if let Some(from) = &c.renamed_from
            && old_cols.contains_key(from.as_str())
            && !new_names.contains(from.as_str())
        {
            matched.insert(name, from.as_str());
        }
    }
    let continued: BTreeSet<&str> = matched.values().copied().collect();
    let removed: Vec<&Column> = old
        .columns
        .iter()
        .filter(|c| !continued.contains(c.name.as_str()))
        .collect();
    let added: Vec<&Column> = new
        .columns
        .iter()
        .filter(|c| !matched.contains_key(c.name.as_str()))
        .collect();
    for c in &removed {
        let name = c.name.as_str();
        let mut change = Change::new(
            ChangeKind::ColumnRemoved,
            format!("output `{o}`: column `{name}` removed"),
        )
        .on(o)
        .column(name);
        // A drop plus an add of the same type may be a rename in disguise.
        if let Some(twin) = added.iter().find(|a| a.ty.value == c.ty.value) {
            change.hint = Some(format!(
                "if `{}` is `{name}` renamed, declare `renamed_from: {name}` on it; either way readers of `{name}` break",
                twin.name.as_str()
            ));
        }
        out.push(change);
    }
    for c in &new.columns {
        let name = c.name.as_str();
        let Some(from) = matched.get(name) else {
            continue;
        };
        let before = old_cols[from];
        if *from != name {
            out.push(
                Change::new(
                    ChangeKind::ColumnRenamed {
                        from: (*from).into(),
                        to: name.into(),
                    },
                    format!("output `{o}`: column `{from}` renamed to `{name}`"),
                )
                .on(o)
                .column(from),
            );
        }
        diff_column(o, from, before, c, out);
    }
    for c in &added {
        let name = c.name.as_str();
        out.push(
            Change::new(
                ChangeKind::ColumnAdded {
                    nullable: c.nullable,
                },
                format!(
                    "output `{o}`: column `{name}` {} added",
                    if c.nullable {
                        format!("{} (nullable)", c.ty.value)
                    } else {
                        format!("{} not null", c.ty.value)
                    }
                ),
            )
            .on(o)
            .column(name),
        );
    }
    diff_primary_key(old, new, &matched, out);
    diff_checks(old, new, out);
}

/// A type change, at the column or inside it, as a graded change.
fn nested_change(o: &str, column: &str, nested: NestedChange) -> Change {
    // Changes at the column itself name no field.
    let at = |path: &str| (path != column).then(|| path.to_string());
    let (kind, message, path) = match nested {
        NestedChange::Type {
            path,
            from,
            to,
            change,
        } => {
            let what = if path == column { "column" } else { "field" };
            let message = format!(
                "output `{o}`: {what} `{path}` type {from} → {to} ({})",
                match change {
                    TypeChange::Widening => "widening",
                    TypeChange::Narrowing => "narrowing",
                    TypeChange::Incompatible => "incompatible",
                }
            );
            let (from, to) = (from.to_string(), to.to_string());
            let kind = match change {
                TypeChange::Widening => ChangeKind::TypeWidened { from, to },
                TypeChange::Narrowing => ChangeKind::TypeNarrowed { from, to },
                TypeChange::Incompatible => ChangeKind::TypeChanged { from, to },
            };
            (kind, message, at(&path))
        }
        NestedChange::FieldAdded { path, ty, nullable } => (
            ChangeKind::FieldAdded { nullable },
            format!(
                "output `{o}`: field `{path}` {ty}{} added",
                if nullable { " (nullable)" } else { " not null" }
            ),
            Some(path),
        ),
        NestedChange::FieldRemoved { path, ty } => (
            ChangeKind::FieldRemoved,
            format!("output `{o}`: field `{path}` ({ty}) removed"),
            Some(path),
        ),
        NestedChange::Nullability { path, nullable } => (
            if nullable {
                ChangeKind::NullabilityLoosened
            } else {
                ChangeKind::NullabilityTightened
            },
            format!(
                "output `{o}`: field `{path}` {}",
                if nullable {
                    "may now be null"
                } else {
                    "is now never null"
                }
            ),
            Some(path),
        ),
    };
    let mut change = Change::new(kind, message).on(o).column(column);
    if let Some(path) = path {
        change = change.field(&path);
    }
    change
}

fn diff_column(o: &str, name: &str, old: &Column, new: &Column, out: &mut Vec<Change>) {
    for nested in type_changes(name, &old.ty.value, &new.ty.value) {
        out.push(nested_change(o, name, nested));
    }
    if old.nullable != new.nullable {
        let (kind, what) = if new.nullable {
            (ChangeKind::NullabilityLoosened, "may now be null")
        } else {
            (ChangeKind::NullabilityTightened, "is now never null")
        };
        out.push(
            Change::new(kind, format!("output `{o}`: column `{name}` {what}"))
                .on(o)
                .column(name),
        );
    }
    if old.classification != new.classification {
        let from = old.classification.map(|c| c.as_str().to_string());
        let to = new.classification.map(|c| c.as_str().to_string());
        let text = format!(
            "output `{o}`: column `{name}` classification {} → {}",
            from.as_deref().unwrap_or("none"),
            to.as_deref().unwrap_or("none")
        );
        let kind = if sensitivity(new.classification) > sensitivity(old.classification) {
            ChangeKind::ClassificationRaised { from, to }
        } else {
            ChangeKind::ClassificationLowered { from, to }
        };
        out.push(Change::new(kind, text).on(o).column(name));
    }
    if old.description != new.description {
        out.push(
            Change::new(
                ChangeKind::ColumnDescriptionChanged,
                format!("output `{o}`: column `{name}` description changed"),
            )
            .on(o)
            .column(name),
        );
    }
}

fn diff_primary_key(
    old: &Output,
    new: &Output,
    matched: &BTreeMap<&str, &str>,
    out: &mut Vec<Change>,
) {
    let o = old.name.as_str();
    let from: Vec<String> = old.primary_key.iter().map(|c| c.to_string()).collect();
    let to: Vec<String> = new.primary_key.iter().map(|c| c.to_string()).collect();
    // Compare in the old contract's names, so a renamed key column alone
    // is reported once, as the rename.
    let to_in_old_names: Vec<String> = to
        .iter()
        .map(|c| matched.get(c.as_str()).map_or(c.clone(), |f| f.to_string()))
        .collect();
    if from == to_in_old_names {
        return;
    }
    let show = |v: &[String]| format!("[{}]", v.join(", "));
    let change = match (from.is_empty(), to.is_empty()) {
        (true, _) => Change::new(
            ChangeKind::PrimaryKeyAdded { to: to.clone() },
            format!("output `{o}`: primary key {} added", show(&to)),
        ),
        (_, true) => Change::new(
            ChangeKind::PrimaryKeyRemoved { from: from.clone() },
            format!("output `{o}`: primary key {} removed", show(&from)),
        ),
        _ => Change::new(
            ChangeKind::PrimaryKeyChanged {
                from: from.clone(),
                to: to.clone(),
            },
            format!("output `{o}`: primary key {} → {}", show(&from), show(&to)),
        ),
    };
    out.push(change.on(o));
}

/// How a check's new form compares with its old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Same,
    Tighter,
    Looser,
    /// Not comparable (a different kind, or changed SQL).
    Unknown,
}

fn combine(ds: &[Direction]) -> Direction {
    use Direction::*;
    if ds.contains(&Unknown) {
        Unknown
    } else if ds.contains(&Looser) {
        Looser
    } else if ds.contains(&Tighter) {
        Tighter
    } else {
        Same
    }
}

fn lit_cmp(a: &Literal, b: &Literal) -> Option<std::cmp::Ordering> {
    let num = |l: &Literal| match l {
        Literal::Int(i) => Some(*i as f64),
        Literal::Float(f) => Some(*f),
        Literal::Str(_) => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(a.to_string().cmp(&b.to_string())),
    }
}

/// A lower bound moving: unbounded is the loosest.
fn lower<T>(
    old: Option<&T>,
    new: Option<&T>,
    cmp: impl Fn(&T, &T) -> Option<std::cmp::Ordering>,
) -> Direction {
    use std::cmp::Ordering::*;
    match (old, new) {
        (None, None) => Direction::Same,
        (None, Some(_)) => Direction::Tighter,
        (Some(_), None) => Direction::Looser,
        (Some(a), Some(b)) => match cmp(b, a) {
            Some(Equal) => Direction::Same,
            Some(Greater) => Direction::Tighter,
            Some(Less) => Direction::Looser,
            None => Direction::Unknown,
        },
    }
}

fn upper<T>(
    old: Option<&T>,
    new: Option<&T>,
    cmp: impl Fn(&T, &T) -> Option<std::cmp::Ordering>,
) -> Direction {
    lower(old, new, |a, b| cmp(a, b).map(std::cmp::Ordering::reverse))
}

fn sets<T: Ord>(old: BTreeSet<T>, new: BTreeSet<T>, smaller_is_tighter: bool) -> Direction {
    let tighter = if smaller_is_tighter {
        new.is_subset(&old)
    } else {
        new.is_superset(&old)
    };
    if old == new {
        Direction::Same
    } else if tighter {
        Direction::Tighter
    } else {
        Direction::Looser
    }
}

fn compare_check(old: &QualityCheck, new: &QualityCheck) -> Direction {
    use CheckKind as K;
    let severity = match (old.severity, new.severity) {
        (CheckSeverity::Error, CheckSeverity::Warn) => Direction::Looser,
        (CheckSeverity::Warn, CheckSeverity::Error) => Direction::Tighter,
        _ => Direction::Same,
    };
    let names = |cs: &[mesh_spec::Spanned<mesh_spec::ColumnName>]| -> BTreeSet<String> {
        cs.iter().map(|c| c.to_string()).collect()
    };
    let params = match (&old.kind, &new.kind) {
        (K::Unique { columns: a }, K::Unique { columns: b }) => {
            // Unique on fewer columns is the stronger promise.
            sets(names(a), names(b), true)
        }
        (K::NotNull { columns: a }, K::NotNull { columns: b }) => sets(names(a), names(b), false),
        (
            K::Range {
                column: ca,
                min: mina,
                max: maxa,
            },
            K::Range {
                column: cb,
                min: minb,
                max: maxb,
            },
        ) if ca.value == cb.value => combine(&[
            lower(mina.as_ref(), minb.as_ref(), lit_cmp),
            upper(maxa.as_ref(), maxb.as_ref(), lit_cmp),
        ]),
        (
            K::AcceptedValues {
                column: ca,
                values: va,
            },
            K::AcceptedValues {
                column: cb,
                values: vb,
            },
        ) if ca.value == cb.value => sets(
            va.iter().map(Literal::to_sql).collect(),
            vb.iter().map(Literal::to_sql).collect(),
            true,
        ),
        (
            K::RowCount {
                min: mina,
                max: maxa,
            },
            K::RowCount {
                min: minb,
                max: maxb,
            },
        ) => combine(&[
            lower(mina.as_ref(), minb.as_ref(), |a, b| Some(a.cmp(b))),
            upper(maxa.as_ref(), maxb.as_ref(), |a, b| Some(a.cmp(b))),
        ]),
        (
            K::Sql {
                query: qa,
                must_be: ma,
            },
            K::Sql {
                query: qb,
                must_be: mb,
            },
        ) => {
            if qa.value.split_whitespace().eq(qb.value.split_whitespace()) && ma == mb {
                Direction::Same
            } else {
                Direction::Unknown
            }
        }
        _ => Direction::Unknown,
    };
    combine(&[severity, params])
}

fn describe_check(c: &QualityCheck) -> String {
    let severity = match c.severity {
        CheckSeverity::Error => "",
        CheckSeverity::Warn => ", warn",
    };
    let detail = match &c.kind {
        CheckKind::Unique { columns } | CheckKind::NotNull { columns } => columns
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        CheckKind::Range { column, min, max } => format!(
            "{} in {}..{}",
            column.value,
            min.as_ref().map(|m| m.to_string()).unwrap_or_default(),
            max.as_ref().map(|m| m.to_string()).unwrap_or_default()
        ),
        CheckKind::AcceptedValues { column, values } => format!(
            "{} in [{}]",
            column.value,
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        CheckKind::RowCount { min, max } => format!(
            "{}..{}",
            min.map(|m| m.to_string()).unwrap_or_default(),
            max.map(|m| m.to_string()).unwrap_or_default()
        ),
        CheckKind::Sql { query, must_be } => format!("{} = {must_be}", query.value.trim()),
    };
    format!("{}({detail}{severity})", c.kind.keyword())
}

/// The one column a check guards, if it guards exactly one: consumers that
/// read that column rely on the check, others do not.
fn guarded_column(c: &QualityCheck) -> Option<&str> {
    match &c.kind {
        CheckKind::Range { column, .. } | CheckKind::AcceptedValues { column, .. } => {
            Some(column.as_str())
        }
        CheckKind::NotNull { columns } | CheckKind::Unique { columns } if columns.len() == 1 => {
            Some(columns[0].as_str())
        }
        _ => None,
    }
}

impl Change {
    fn guarding(mut self, c: &QualityCheck) -> Self {
        self.column = guarded_column(c).map(str::to_string);
        self
    }
}

fn diff_checks(old: &Output, new: &Output, out: &mut Vec<Change>) {
    let o = old.name.as_str();
    let old_checks: BTreeMap<&str, &QualityCheck> =
        old.quality.iter().map(|c| (c.name.as_str(), c)).collect();
    let new_checks: BTreeMap<&str, &QualityCheck> =
        new.quality.iter().map(|c| (c.name.as_str(), c)).collect();
    for (name, c) in &old_checks {
        let advisory = c.severity == CheckSeverity::Warn;
        let Some(n) = new_checks.get(name) else {
            if advisory {
                out.push(
                    Change::new(
                        ChangeKind::AdvisoryCheckChanged {
                            detail: format!("{} removed", describe_check(c)),
                        },
                        format!(
                            "output `{o}`: advisory check `{name}` {} removed",
                            describe_check(c)
                        ),
                    )
                    .on(o)
                    .check(name)
                    .guarding(c),
                );
                continue;
            }
            out.push(
                Change::new(
                    ChangeKind::CheckRemoved,
                    format!("output `{o}`: check `{name}` {} removed", describe_check(c)),
                )
                .on(o)
                .check(name)
                .guarding(c),
            );
            continue;
        };
        let detail = format!("{} → {}", describe_check(c), describe_check(n));
        let kind = match compare_check(c, n) {
            Direction::Same => continue,
            _ if advisory => ChangeKind::AdvisoryCheckChanged {
                detail: detail.clone(),
            },
            Direction::Tighter => ChangeKind::CheckTightened {
                detail: detail.clone(),
            },
            Direction::Looser => ChangeKind::CheckLoosened {
                detail: detail.clone(),
            },
            Direction::Unknown => ChangeKind::CheckChanged {
                detail: detail.clone(),
            },
        };
        let verb = match kind {
            ChangeKind::CheckTightened { .. } => "tightened",
            ChangeKind::CheckLoosened { .. } => "loosened",
            ChangeKind::AdvisoryCheckChanged { .. } => "(advisory, severity warn) changed",
            _ => "changed in a way that cannot be compared",
        };
        out.push(
            Change::new(
                kind,
                format!("output `{o}`: check `{name}` {verb}: {detail}"),
            )
            .on(o)
            .check(name)
            .guarding(c),
        );
    }
    for (name, c) in new_checks
        .iter()
        .filter(|(n, _)| !old_checks.contains_key(*n))
    {
        out.push(
            Change::new(
                ChangeKind::CheckAdded,
                format!("output `{o}`: check `{name}` {} added", describe_check(c)),
            )
            .on(o)
            .check(name),
        );
    }
}
