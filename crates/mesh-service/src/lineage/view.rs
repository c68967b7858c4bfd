//! `mesh lineage`: the columns upstream and downstream of a product, an
//! output or a column, as one caller may see them. A column of a product
//! the caller may not see is a redacted node: no product, dataset or
//! column name, and no classification.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use mesh_spec::ProductRef;
use mesh_spec::diagnostic::did_you_mean;
use serde::{Deserialize, Serialize};

use super::graph::{ColumnId, Dataset, LineageGraph, Link};
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

/// What a caller sees of the graph's nodes.
struct Redactor<'a> {
    graph: &'a LineageGraph,
    visible: BTreeSet<String>,
    /// Hidden product → its redacted id, numbered in order met.
    hidden: HashMap<String, String>,
}

impl Redactor<'_> {
    fn sees(&self, id: &ColumnId) -> bool {
        self.graph
            .owner(&id.dataset)
            .is_some_and(|p| self.visible.contains(p))
    }

    fn id(&mut self, id: &ColumnId) -> String {
        if self.sees(id) {
            return id.to_string();
        }
        let owner = self.graph.owner(&id.dataset).unwrap_or("").to_string();
        let next = self.hidden.len() + 1;
        self.hidden
            .entry(owner)
            .or_insert_with(|| format!("redacted-{next}"))
            .clone()
    }

    fn node(&mut self, id: &ColumnId, depth: i64) -> LineageNode {
        if !self.sees(id) {
            return LineageNode {
                id: self.id(id),
                redacted: true,
                product: None,
                dataset: None,
                column: None,
                classification: None,
                depth,
            };
        }
        let info = self.graph.column(id);
        LineageNode {
            id: id.to_string(),
            redacted: false,
            product: self.graph.owner(&id.dataset).map(str::to_string),
            dataset: Some(id.dataset.to_string()),
            column: Some(id.column.clone()),
            classification: info.and_then(|i| i.effective()).map(str::to_string),
            depth,
        }
    }

    fn edge(&mut self, link: &Link) -> LineageEdge {
        let hidden = !self.sees(&link.from);
        LineageEdge {
            from: self.id(&link.from),
            field: if hidden { None } else { link.field.clone() },
            to: self.id(&link.to),
            edge_type: link.edge_type.as_str().to_string(),
            subtype: link.subtype.as_str().to_string(),
            masking: link.masking,
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
        let started = std::time::Instant::now();
        let graph = snapshot.lineage().await?;
        let (label, start) = self.lineage_target(target, &visible)?;
        let mut redactor = Redactor {
            graph: &graph,
            visible: visible.iter().map(|(r, _)| r.product.to_string()).collect(),
            hidden: HashMap::new(),
        };
        let mut depths: BTreeMap<ColumnId, i64> = start.iter().map(|c| (c.clone(), 0)).collect();
        let mut edges: BTreeSet<LineageEdge> = BTreeSet::new();
        let mut walks = Vec::new();
        if direction != Direction::Downstream {
            walks.push(-1i64);
        }
        if direction != Direction::Upstream {
            walks.push(1i64);
        }
        for step in walks {
            let mut queue: VecDeque<(ColumnId, usize)> =
                start.iter().map(|c| (c.clone(), 0)).collect();
            let mut seen: BTreeSet<ColumnId> = start.iter().cloned().collect();
            while let Some((column, d)) = queue.pop_front() {
                if depth.is_some_and(|max| d >= max) {
                    continue;
                }
                let links = if step < 0 {
                    graph.upstream_of(&column)
                } else {
                    graph.downstream_of(&column)
                };
                for link in links {
                    let edge = redactor.edge(&link);
                    // Within one hidden product: nothing to show.
                    if edge.from != edge.to {
                        edges.insert(edge);
                    }
                    let next = if step < 0 { &link.from } else { &link.to };
                    if seen.insert(next.clone()) {
                        depths.entry(next.clone()).or_insert(step * (d as i64 + 1));
                        queue.push_back((next.clone(), d + 1));
                    }
                }
            }
        }
        let mut nodes: Vec<LineageNode> = Vec::new();
        let mut ids = BTreeSet::new();
        let mut ordered: Vec<(&ColumnId, &i64)> = depths.iter().collect();
        ordered.sort_by_key(|(c, d)| (d.abs(), **d, (*c).clone()));
        for (column, d) in ordered {
            let node = redactor.node(column, *d);
            if ids.insert(node.id.clone()) {
                nodes.push(node);
            }
        }
        super::count(started);
        super::report();
        Ok(LineageView {
            target: label,
            nodes,
            edges: edges.into_iter().collect(),
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
            let dataset = Dataset::Output {
                domain: record.product.domain.to_string(),
                output: o.name.to_string(),
            };
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
