//! `mesh lineage`: the columns upstream and downstream of a product, an
//! output or a column, as one caller may see them. A column of a product
//! the caller may not see is a redacted node: no product, dataset or
//! column name, and no classification.

use std::collections::{HashMap, HashSet, VecDeque};

use mesh_spec::ProductRef;
use mesh_spec::diagnostic::did_you_mean;
use serde::{Deserialize, Serialize};

use mesh_query::lineage::{EdgeType, Subtype};

use super::graph::{ColumnId, Dataset, LineageGraph};
use crate::access::Caller;
use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// Which way to walk from the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upstream,
    Downstream,
    Both,
}

/// One column in a lineage answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageNode {
    /// `<domain>.<output>.<column>`, `<domain>/<product>/<input>.<column>`
    /// for a source's column, or `redacted-<n>`.
    pub id: String,
    pub redacted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The classification reads apply (declared or derived, the stricter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// Steps from the target: negative upstream, positive downstream.
    pub depth: i64,
}

/// One edge in a lineage answer, between node ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineageEdge {
    pub from: String,
    /// The nested field of `from` read, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub to: String,
    #[serde(rename = "type")]
    pub edge_type: String,
    pub subtype: String,
    pub masking: bool,
}

/// The answer to `mesh lineage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LineageView {
    /// What was asked for, as resolved.
    pub target: String,
    /// The target's columns first, then by depth.
    pub nodes: Vec<LineageNode>,
    pub edges: Vec<LineageEdge>,
}

/// An edge met while walking: from, to (indexes), field, type, subtype,
/// masking.
type Found<'a> = (u32, u32, Option<&'a str>, EdgeType, Subtype, bool);

/// What a caller sees of the graph's nodes.
struct Redactor<'a> {
    graph: &'a LineageGraph,
    visible: HashSet<String>,
    /// Whether the caller sees each dataset, decided once per dataset.
    seen: HashMap<&'a Dataset, bool>,
    /// Hidden product → its redacted id, numbered in order met.
    hidden: HashMap<String, String>,
    /// Each column's id as shown, and whether it is seen, by index,
    /// worked out once.
    shown: HashMap<u32, (std::rc::Rc<str>, bool)>,
}

impl<'a> Redactor<'a> {
    fn new(graph: &'a LineageGraph, visible: HashSet<String>) -> Self {
        Redactor {
            graph,
            visible,
            seen: HashMap::new(),
            hidden: HashMap::new(),
            shown: HashMap::new(),
        }
    }

    fn sees_dataset(&mut self, dataset: &'a Dataset) -> bool {
        if let Some(s) = self.seen.get(dataset) {
            return *s;
        }
        let s = self
            .graph
            .owner(dataset)
            .is_some_and(|p| self.visible.contains(p));
        self.seen.insert(dataset, s);
        s
    }

    /// A column's id as shown and whether the caller sees it.
    fn shown(&mut self, i: u32) -> (std::rc::Rc<str>, bool) {
        if let Some(found) = self.shown.get(&i) {
            return found.clone();
        }
        let id = self.graph.id(i);
        let sees = self.sees_dataset(&id.dataset);
        let text: std::rc::Rc<str> = if sees {
            id.to_string().into()
        } else {
            let owner = self.graph.owner(&id.dataset).unwrap_or("").to_string();
            let next = self.hidden.len() + 1;
            self.hidden
                .entry(owner)
                .or_insert_with(|| format!("redacted-{next}"))
                .as_str()
                .into()
        };
        self.shown.insert(i, (text.clone(), sees));
        (text, sees)
    }

    fn node(&mut self, i: u32, depth: i64) -> LineageNode {
        let (text, sees) = self.shown(i);
        if !sees {
            return LineageNode {
                id: text.to_string(),
                redacted: true,
                product: None,
                dataset: None,
                column: None,
                classification: None,
                depth,
            };
        }
        let id = self.graph.id(i);
        let info = self.graph.info(i);
        LineageNode {
            id: text.to_string(),
            redacted: false,
            product: self.graph.owner(&id.dataset).map(str::to_string),
            dataset: Some(id.dataset.to_string()),
            column: Some(id.column.clone()),
            classification: info.effective().map(str::to_string),
            depth,
        }
    }
}

impl Mesh {
    /// The lineage of `target` (`<domain>/<product>[.<output>[.<column>]]`
    /// or `<domain>.<output>[.<column>]`) as `caller` may see it, walking
    /// `direction` at most `depth` steps (all when `None`).
    pub async fn lineage(
        &self,
        caller: &Caller,
        target: &str,
        direction: Direction,
        depth: Option<usize>,
    ) -> Result<LineageView> {
        let snapshot = self.snapshot().await?;
        let sight = self.sight(caller, &snapshot).await?;
        let visible: Vec<(&mesh_catalog::ProductRecord, &mesh_spec::ProductDescriptor)> = sight
            .visible(&snapshot.deployed)
            .map(|(r, p)| (r, p))
            .collect();
        let graph = snapshot.lineage().await?;
        let started = std::time::Instant::now();
        let (label, start) = self.lineage_target(target, &visible)?;
        let visible: HashSet<String> = visible.iter().map(|(r, _)| r.product.to_string()).collect();
        let mut redactor = Redactor::new(&graph, visible);
        let start: Vec<u32> = start.iter().filter_map(|c| graph.index_of(c)).collect();
        let mut depths: HashMap<u32, i64> = start.iter().map(|c| (*c, 0)).collect();
        // (from, to, edge) by index, named at the end.
        let mut found: Vec<Found<'_>> = Vec::new();
        let mut walks = Vec::new();
        if direction != Direction::Downstream {
            walks.push(-1i64);
        }
        if direction != Direction::Upstream {
            walks.push(1i64);
        }
        for step in walks {
            let mut queue: VecDeque<(u32, usize)> = start.iter().map(|c| (*c, 0)).collect();
            let mut seen = vec![false; graph.len()];
            for c in &start {
                seen[*c as usize] = true;
            }
            while let Some((column, d)) = queue.pop_front() {
                if depth.is_some_and(|max| d >= max) {
                    continue;
                }
                for arc in graph.arcs(column, step < 0) {
                    let (from, to) = if step < 0 {
                        (arc.other, column)
                    } else {
                        (column, arc.other)
                    };
                    found.push((from, to, arc.field, arc.edge_type, arc.subtype, arc.masking));
                    if !std::mem::replace(&mut seen[arc.other as usize], true) {
                        depths.entry(arc.other).or_insert(step * (d as i64 + 1));
                        queue.push_back((arc.other, d + 1));
                    }
                }
            }
        }
        // Nodes first, so redacted ids number in the order shown.
        let mut ordered: Vec<(u32, i64)> = depths.into_iter().collect();
        ordered.sort_by(|a, b| {
            (a.1.abs(), a.1)
                .cmp(&(b.1.abs(), b.1))
                .then_with(|| graph.id(a.0).cmp(graph.id(b.0)))
        });
        let mut nodes: Vec<LineageNode> = Vec::new();
        let mut ids = HashSet::new();
        for (column, d) in ordered {
            let node = redactor.node(column, d);
            if ids.insert(node.id.clone()) {
                nodes.push(node);
            }
        }
        found.sort_unstable();
        found.dedup();
        // Named once per column, sorted and deduplicated by name before
        // any edge is written out.
        let mut named: Vec<_> = found
            .into_iter()
            .map(|(from, to, field, edge_type, subtype, masking)| {
                let (from, seen) = redactor.shown(from);
                let (to, _) = redactor.shown(to);
                let field = if seen { field } else { None };
                (from, field, to, edge_type, subtype, masking)
            })
            // Within one hidden product: nothing to show.
            .filter(|e| e.0 != e.2)
            .collect();
        named.sort_unstable_by(|a, b| {
            (&a.0, a.1, &a.2, a.3.as_str(), a.4.as_str(), a.5).cmp(&(
                &b.0,
                b.1,
                &b.2,
                b.3.as_str(),
                b.4.as_str(),
                b.5,
            ))
        });
        named.dedup();
        let edges: Vec<LineageEdge> = named
            .into_iter()
            .map(
                |(from, field, to, edge_type, subtype, masking)| LineageEdge {
                    from: from.to_string(),
                    field: field.map(str::to_string),
                    to: to.to_string(),
                    edge_type: edge_type.as_str().to_string(),
                    subtype: subtype.as_str().to_string(),
                    masking,
                },
            )
            .collect();
        super::count(started);
        super::report();
        Ok(LineageView {
            target: label,
            nodes,
            edges,
        })
    }

    /// The columns a lineage target names, among the products `visible`.
    fn lineage_target(
        &self,
        target: &str,
        visible: &[(&mesh_catalog::ProductRecord, &mesh_spec::ProductDescriptor)],
    ) -> Result<(String, Vec<ColumnId>)> {
        let usage = || {
            ServiceError::Usage(format!(
                "`{target}` names no column set: write `<domain>/<product>[.<output>[.<column>]]` or `<domain>.<output>[.<column>]`"
            ))
        };
        // `<domain>/<product>[.<output>[.<column>]]`
        let (record, descriptor, output, column) = if let Some((domain, rest)) =
            target.split_once('/')
        {
            let mut parts = rest.splitn(3, '.');
            let name = parts.next().ok_or_else(usage)?;
            let known: Vec<ProductRef> = visible.iter().map(|(r, _)| r.product.clone()).collect();
            let r = self.resolve(&format!("{domain}/{name}"), &known)?;
            let (record, descriptor) = visible
                .iter()
                .find(|(x, _)| x.product == r)
                .copied()
                .ok_or_else(usage)?;
            (
                record,
                descriptor,
                parts.next().map(str::to_string),
                parts.next().map(str::to_string),
            )
        } else {
            // `<domain>.<output>[.<column>]`
            let mut parts = target.splitn(3, '.');
            let (Some(domain), Some(output)) = (parts.next(), parts.next()) else {
                return Err(usage());
            };
            let found = visible.iter().find(|(r, _)| {
                r.product.domain.as_str() == domain
                    && r.outputs.iter().any(|o| o.output.as_str() == output)
            });
            let Some((record, descriptor)) = found.copied() else {
                let names: Vec<String> = visible
                    .iter()
                    .flat_map(|(r, _)| r.outputs.iter())
                    .map(|o| format!("{}.{}", o.domain, o.output))
                    .collect();
                return Err(ServiceError::ProductNotFound {
                    product: format!("{domain}.{output}"),
                    hint: Some(
                        did_you_mean(
                            &format!("{domain}.{output}"),
                            names.iter().map(String::as_str),
                        )
                        .map_or_else(
                            || "see `mesh catalog list`".to_string(),
                            |m| format!("did you mean `{m}`?"),
                        ),
                    ),
                });
            };
            (
                record,
                descriptor,
                Some(output.to_string()),
                parts.next().map(str::to_string),
            )
        };
        let outputs: Vec<&mesh_spec::Output> = match &output {
            None => descriptor.outputs.iter().collect(),
            Some(name) => {
                let o = descriptor
                    .outputs
                    .iter()
                    .find(|o| o.name.as_str() == name)
                    .ok_or_else(|| {
                        let names = descriptor.outputs.iter().map(|o| o.name.as_str());
                        ServiceError::Usage(format!(
                            "`{}` has no output `{name}`{}",
                            record.product,
                            did_you_mean(name, names)
                                .map(|m| format!("; did you mean `{m}`?"))
                                .unwrap_or_default()
                        ))
                    })?;
                vec![o]
            }
        };
        let mut start = Vec::new();
        for o in &outputs {
            let dataset = Dataset::output(record.product.domain.as_str(), o.name.as_str());
            match &column {
                None => start.extend(o.columns.iter().map(|c| ColumnId {
                    dataset: dataset.clone(),
                    column: c.name.to_string(),
                })),
                Some(name) => {
                    if o.column(name).is_none() {
                        let names = o.columns.iter().map(|c| c.name.as_str());
                        return Err(ServiceError::Usage(format!(
                            "output `{}.{}` has no column `{name}`{}",
                            record.product.domain,
                            o.name.value,
                            did_you_mean(name, names)
                                .map(|m| format!("; did you mean `{m}`?"))
                                .unwrap_or_default()
                        )));
                    }
                    start.push(ColumnId {
                        dataset,
                        column: name.clone(),
                    });
                }
            }
        }
        let label = match (&output, &column) {
            (Some(o), Some(c)) => format!("{}.{o}.{c}", record.product.domain),
            (Some(o), None) => format!("{}.{o}", record.product.domain),
            _ => record.product.to_string(),
        };
        Ok((label, start))
    }
}
