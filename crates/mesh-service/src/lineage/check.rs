//! Deploy-time classification checks: a column must declare at least the
//! classification its lineage gives it, or declassify the source with a
//! reason; deploy rules see each column's derived classification.

use std::collections::{BTreeMap, BTreeSet};

use mesh_catalog::classes::strictness;
use mesh_query::lineage::ProductLineage;
use mesh_spec::{Diagnostic, ProductDescriptor, ProductRef};
use serde_json::{Value, json};

use super::ByProduct;
use super::graph::{ColumnId, LineageGraph, Member};
use crate::snapshot::Deployed;

/// The graph as it will be once `local` is deployed: deployed products
/// the project does not hold, and the project's with the lineage
/// validation derived (none for a product whose SQL did not plan).
pub(crate) fn candidate_graph(
    deployed: &Deployed,
    current: &ByProduct,
    local: &[ProductDescriptor],
    lineage: &BTreeMap<ProductRef, ProductLineage>,
) -> LineageGraph {
    let replaced: BTreeSet<ProductRef> = local.iter().map(ProductDescriptor::product_ref).collect();
    let mut members: Vec<Member<'_>> = deployed
        .iter()
        .filter(|(r, _)| r.line_of.is_some() || !replaced.contains(&r.product))
        .map(|(r, d)| Member {
            product: r.product.clone(),
            line_of: r.line_of.clone(),
            version: semver::Version::parse(&r.version).unwrap_or(d.version.value.clone()),
            descriptor: d,
            lineage: current.get(&r.product).and_then(|l| l.as_deref()),
        })
        .collect();
    members.extend(local.iter().map(|p| Member {
        product: p.product_ref(),
        line_of: None,
        version: p.version.value.clone(),
        descriptor: p,
        lineage: lineage.get(&p.product_ref()),
    }));
    LineageGraph::build(&members)
}

/// Errors for columns declared weaker than their lineage, warnings for
/// `declassify` entries that name no source reaching the column.
pub fn class_diagnostics(products: &[&ProductDescriptor], graph: &LineageGraph) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in products {
        for o in &p.outputs {
            for c in &o.columns {
                let Some(info) = graph.column(&ColumnId::of_output(
                    p.domain.as_str(),
                    o.name.as_str(),
                    c.name.as_str(),
                )) else {
                    continue;
                };
                let declared = info.declared.as_deref();
                if strictness(info.derived.as_deref()) > strictness(declared) {
                    let strictest = info
                        .sources
                        .iter()
                        .max_by_key(|s| strictness(Some(&s.classification)));
                    if let Some(s) = strictest {
                        let declared_text = match declared {
                            Some(k) => format!("is declared `{k}`"),
                            None => "declares no classification".to_string(),
                        };
                        out.push(
                            Diagnostic::error(
                                "classification-weaker-than-lineage",
                                format!(
                                    "column `{}` of output `{}` {declared_text}, but `{}` ({}) flows into it: {}",
                                    c.name.value,
                                    o.name.value,
                                    s.origin,
                                    s.classification,
                                    s.path_text()
                                ),
                            )
                            .at(&p.file, c.name.span)
                            .label(format!("carries `{}` data", s.classification))
                            .help(format!(
                                "declare `classification: {}` on the column; if its value cannot be recovered from `{}`, say so with `declassify: {{from: {}, reason: …}}`",
                                s.classification, s.origin, s.origin
                            )),
                        );
                    }
                }
                for d in &c.declassify {
                    let reaches = info.declassified.iter().any(|x| {
                        x.source
                            .path
                            .iter()
                            .any(|id| id.to_string() == d.from.value)
                    });
                    if !reaches {
                        out.push(
                            Diagnostic::warning(
                                "declassify-unused",
                                format!(
                                    "column `{}` of output `{}` declassifies `{}`, but no classification of `{}` flows into it",
                                    c.name.value, o.name.value, d.from.value, d.from.value
                                ),
                            )
                            .at(&p.file, d.from.span)
                            .label("nothing to declassify")
                            .help("name a classified column upstream as `<domain>.<output>.<column>` (see `mesh lineage`), or remove the entry"),
                        );
                    }
                }
            }
        }
    }
    out
}

/// Each column of `p` as deploy rules see it (`input.columns`): where it
/// is in the descriptor, its declared and derived classification, the
/// classified columns that reach it and what it declassifies.
pub fn policy_columns(p: &ProductDescriptor, graph: &LineageGraph) -> Value {
    let mut out = Vec::new();
    for (i, o) in p.outputs.iter().enumerate() {
        for (j, c) in o.columns.iter().enumerate() {
            let info = graph.column(&ColumnId::of_output(
                p.domain.as_str(),
                o.name.as_str(),
                c.name.as_str(),
            ));
            let sources: Vec<Value> = info
                .map(|x| {
                    x.sources
                        .iter()
                        .map(|s| {
                            json!({
                                "column": s.origin.to_string(),
                                "classification": s.classification,
                                "path": s.path.iter().map(ToString::to_string).collect::<Vec<_>>(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let declassified: Vec<Value> = info
                .map(|x| {
                    x.declassified
                        .iter()
                        .map(|d| {
                            json!({
                                "from": d.source.origin.to_string(),
                                "classification": d.source.classification,
                                "reason": d.reason,
                                "path": d.source.path.iter().map(ToString::to_string).collect::<Vec<_>>(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(json!({
                "output": o.name.as_str(),
                "name": c.name.as_str(),
                "path": ["outputs", i, "columns", j],
                "classification": c.classification.map(|k| k.as_str()),
                "derived_classification": info.and_then(|x| x.derived.as_deref()),
                "sources": sources,
                "declassified": declassified,
            }));
        }
    }
    Value::Array(out)
}

/// One `declassify` audit entry per declassified source of each product
/// the deploy created or changed.
pub fn declassify_audit(
    by: &str,
    products: &[ProductDescriptor],
    graph: &LineageGraph,
    outcome: &mesh_catalog::DeployOutcome,
) -> Vec<mesh_catalog::AuditEntry> {
    let mut out = Vec::new();
    for p in products {
        let r = p.product_ref();
        if !outcome.created.contains(&r) && !outcome.updated.contains(&r) {
            continue;
        }
        for o in &p.outputs {
            for c in &o.columns {
                let Some(info) = graph.column(&ColumnId::of_output(
                    p.domain.as_str(),
                    o.name.as_str(),
                    c.name.as_str(),
                )) else {
                    continue;
                };
                for d in &info.declassified {
                    out.push(
                        mesh_catalog::AuditEntry::new(
                            by,
                            "declassify",
                            "done",
                            d.reason.clone(),
                            json!({
                                "version": p.version.to_string(),
                                "output": o.name.as_str(),
                                "column": c.name.as_str(),
                                "from": d.source.origin.to_string(),
                                "classification": d.source.classification,
                                "path": d.source.path.iter().map(ToString::to_string).collect::<Vec<_>>(),
                            }),
                        )
                        .on(&r),
                    );
                }
            }
        }
    }
    out
}
