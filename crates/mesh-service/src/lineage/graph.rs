//! The mesh's column lineage as one graph: each product's derived edges
//! (input name → column) resolved to the upstream outputs its inputs read,
//! and the classifications that follow the edges.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mesh_catalog::classes::strictness;
use mesh_query::lineage::{Edge, EdgeType, OutputLineage, ProductLineage, Subtype};
use mesh_spec::{InputKind, ProductDescriptor, ProductRef};
use serde::Serialize;

/// A dataset: an output table, or the files a product reads as a source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Dataset {
    /// `<domain>.<output>`, the name SQL reads it by.
    Output { domain: String, output: String },
    /// `<domain>/<product>/<input>`: the files behind a source input.
    Source { product: String, input: String },
}

impl Dataset {
    /// The output `<domain>.<output>`.
    pub fn output(domain: &str, output: &str) -> Self {
        Dataset::Output {
            domain: domain.to_string(),
            output: output.to_string(),
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dataset::Output { domain, output } => write!(f, "{domain}.{output}"),
            Dataset::Source { product, input } => write!(f, "{product}/{input}"),
        }
    }
}

/// A column of a dataset (top-level: a nested field's edges name the
/// field on the [`Link`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ColumnId {
    pub dataset: Dataset,
    pub column: String,
}

impl ColumnId {
    /// Column `column` of output `<domain>.<output>`.
    pub fn of_output(domain: &str, output: &str, column: &str) -> Self {
        ColumnId {
            dataset: Dataset::output(domain, output),
            column: column.to_string(),
        }
    }
}

impl std::fmt::Display for ColumnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.dataset, self.column)
    }
}

/// One edge between two columns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Link {
    pub from: ColumnId,
    /// The nested field of `from` read (`len` of `info['len']`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub to: ColumnId,
    #[serde(rename = "type")]
    pub edge_type: EdgeType,
    pub subtype: Subtype,
    pub masking: bool,
}

/// One edge seen from a column, by index (see [`LineageGraph::arcs`]).
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    pub other: u32,
    pub field: Option<&'a str>,
    pub edge_type: EdgeType,
    pub subtype: Subtype,
    pub masking: bool,
}

/// A classified column whose classification reaches another one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassSource {
    /// Where the classification is declared.
    pub origin: ColumnId,
    pub classification: String,
    /// The columns the value flows through, `origin` first and the
    /// column it reaches last.
    pub path: Vec<ColumnId>,
}

impl ClassSource {
    /// `hr.employees.email → ops.contacts.first_contact`.
    pub fn path_text(&self) -> String {
        self.path
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// A classification a column does not inherit, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Declassified {
    pub source: ClassSource,
    pub reason: String,
}

/// What the graph knows of one column.
#[derive(Debug, Clone, Default)]
pub struct ColumnInfo {
    /// The classification its descriptor declares.
    pub declared: Option<String>,
    /// The strictest classification its lineage gives it.
    pub derived: Option<String>,
    /// The classified columns whose classification reaches it.
    pub sources: Vec<ClassSource>,
    /// Classifications its owner declassified.
    pub declassified: Vec<Declassified>,
    /// `declassify` entries as written: `from` and the reason.
    pub(super) declassify: Vec<(String, String)>,
}

impl ColumnInfo {
    /// The classification reads apply: the stricter of declared and
    /// derived.
    pub fn effective(&self) -> Option<&str> {
        if strictness(self.derived.as_deref()) > strictness(self.declared.as_deref()) {
            self.derived.as_deref()
        } else {
            self.declared.as_deref()
        }
    }
}

/// One product as the graph is built from it.
pub struct Member<'a> {
    /// The product as deployed (an older major's line by its line name).
    pub product: ProductRef,
    /// The newest major this is a line of.
    pub line_of: Option<ProductRef>,
    pub version: semver::Version,
    /// Its descriptor (a line's with the line's output names).
    pub descriptor: &'a ProductDescriptor,
    /// Its derived lineage by output name (a line's by either name);
    /// `None` when its SQL does not plan.
    pub lineage: Option<&'a ProductLineage>,
}

/// One edge as the graph keeps it: the column at the other end by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub(super) struct Arc32 {
    pub other: u32,
    /// Index into `fields`, or `NO_FIELD`.
    pub field: u32,
    pub edge_type: EdgeType,
    pub subtype: Subtype,
    pub masking: bool,
}

pub(super) const NO_FIELD: u32 = u32::MAX;

/// The column lineage of a set of products. Columns are interned: edges
/// hold indexes, so a mesh of thousands of products builds without
/// cloning names per edge.
#[derive(Debug, Default)]
pub struct LineageGraph {
    pub(super) ids: Vec<ColumnId>,
    pub(super) index: HashMap<ColumnId, u32>,
    pub(super) infos: Vec<ColumnInfo>,
    /// Edges into each column, by index.
    pub(super) up: Vec<Vec<Arc32>>,
    /// Edges out of each column, by index.
    pub(super) down: Vec<Vec<Arc32>>,
    /// Nested fields edges read.
    pub(super) fields: Vec<String>,
    /// Dataset → its columns.
    pub(super) by_dataset: HashMap<Dataset, Vec<u32>>,
    /// Dataset → the product that produces it.
    pub(super) owners: HashMap<Dataset, String>,
    /// Dataset → the products whose inputs read it.
    pub(super) readers: HashMap<Dataset, BTreeSet<String>>,
    /// Product → the datasets its inputs read.
    pub(super) inputs: HashMap<String, Vec<Dataset>>,
}

impl LineageGraph {
    /// Builds the graph of `members`, resolving each input as runs do.
    pub fn build(members: &[Member<'_>]) -> LineageGraph {
        let mut g = LineageGraph::default();
        for m in members {
            g.add_columns(m);
        }
        for m in members {
            g.add_edges(m, members);
        }
        for arcs in g.up.iter_mut().chain(g.down.iter_mut()) {
            arcs.sort_unstable();
            arcs.dedup();
        }
        g.classify();
        g
    }

    /// The index of `id`, added with `info` when new.
    fn intern(&mut self, id: ColumnId, info: impl FnOnce() -> ColumnInfo) -> u32 {
        if let Some(i) = self.index.get(&id) {
            return *i;
        }
        let i = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.by_dataset
            .entry(id.dataset.clone())
            .or_default()
            .push(i);
        self.index.insert(id.clone(), i);
        self.ids.push(id);
        self.infos.push(info());
        self.up.push(Vec::new());
        self.down.push(Vec::new());
        i
    }

    fn add_columns(&mut self, m: &Member<'_>) {
        let product = m.product.to_string();
        let d = m.descriptor;
        for o in &d.outputs {
            let dataset = Dataset::output(m.product.domain.as_str(), o.name.as_str());
            self.owners.insert(dataset.clone(), product.clone());
            for c in &o.columns {
                let id = ColumnId {
                    dataset: dataset.clone(),
                    column: c.name.to_string(),
                };
                self.intern(id, || ColumnInfo {
                    declared: c.classification.map(|k| k.as_str().to_string()),
                    declassify: c
                        .declassify
                        .iter()
                        .map(|x| (x.from.value.clone(), x.reason.value.clone()))
                        .collect(),
                    ..Default::default()
                });
            }
        }
        for input in &d.inputs {
            let InputKind::Source(source) = &input.kind else {
                continue;
            };
            let dataset = Dataset::Source {
                product: product.clone(),
                input: input.name.to_string(),
            };
            self.owners.insert(dataset.clone(), product.clone());
            for c in source.columns.iter().flatten() {
                let id = ColumnId {
                    dataset: dataset.clone(),
                    column: c.name.to_string(),
                };
                self.intern(id, || ColumnInfo {
                    declared: c.classification.map(|k| k.as_str().to_string()),
                    ..Default::default()
                });
            }
        }
    }

    /// The dataset each input of `m` reads.
    fn inputs(m: &Member<'_>, members: &[Member<'_>]) -> BTreeMap<String, Dataset> {
        let mut out = BTreeMap::new();
        for input in &m.descriptor.inputs {
            let dataset = match &input.kind {
                InputKind::Source(_) => Some(Dataset::Source {
                    product: m.product.to_string(),
                    input: input.name.to_string(),
                }),
                InputKind::Product {
                    product,
                    output,
                    version,
                } => resolve(
                    members,
                    &product.value,
                    output.as_ref().map(|o| o.as_str()),
                    version.as_ref().map(|v| &v.value),
                ),
            };
            if let Some(d) = dataset {
                out.insert(input.name.to_string(), d);
            }
        }
        out
    }

    fn add_edges(&mut self, m: &Member<'_>, members: &[Member<'_>]) {
        let inputs = Self::inputs(m, members);
        self.inputs
            .insert(m.product.to_string(), inputs.values().cloned().collect());
        for dataset in inputs.values() {
            if matches!(dataset, Dataset::Output { .. }) {
                self.readers
                    .entry(dataset.clone())
                    .or_default()
                    .insert(m.product.to_string());
            }
        }
        for o in &m.descriptor.outputs {
            let to_dataset = Dataset::output(m.product.domain.as_str(), o.name.as_str());
            let lineage: Option<&OutputLineage> = m.lineage.and_then(|l| {
                l.get(o.name.as_str())
                    .or_else(|| o.original_name.as_ref().and_then(|n| l.get(n.as_str())))
            });
            for c in &o.columns {
                let to_id = ColumnId {
                    dataset: to_dataset.clone(),
                    column: c.name.to_string(),
                };
                let Some(&to) = self.index.get(&to_id) else {
                    continue;
                };
                let fallback;
                let edges: &[Edge] = match lineage {
                    Some(l) => l.get(c.name.as_str()).map_or(&[], Vec::as_slice),
                    // Not derivable: every input column may flow into it.
                    None => {
                        fallback = self.everything(&inputs);
                        &fallback
                    }
                };
                for e in edges {
                    let Some(dataset) = inputs.get(&e.input) else {
                        continue;
                    };
                    let (column, field) = match e.column.split_once('.') {
                        Some((top, rest)) => (top.to_string(), Some(rest.to_string())),
                        None => (e.column.clone(), None),
                    };
                    let from = self.intern(
                        ColumnId {
                            dataset: dataset.clone(),
                            column,
                        },
                        ColumnInfo::default,
                    );
                    let field = match field {
                        Some(f) => {
                            self.fields.push(f);
                            u32::try_from(self.fields.len() - 1).unwrap_or(NO_FIELD)
                        }
                        None => NO_FIELD,
                    };
                    let arc = |other| Arc32 {
                        other,
                        field,
                        edge_type: e.edge_type,
                        subtype: e.subtype,
                        masking: e.masking,
                    };
                    self.down[from as usize].push(arc(to));
                    self.up[to as usize].push(arc(from));
                }
            }
        }
    }

    /// DIRECT edges from every known column of every input.
    fn everything(&self, inputs: &BTreeMap<String, Dataset>) -> Vec<Edge> {
        let mut out = Vec::new();
        for (name, dataset) in inputs {
            for &i in self.by_dataset.get(dataset).into_iter().flatten() {
                out.push(Edge {
                    edge_type: EdgeType::Direct,
                    subtype: Subtype::Transformation,
                    input: name.clone(),
                    column: self.ids[i as usize].column.clone(),
                    masking: false,
                });
            }
        }
        out
    }

    /// Computes each column's derived classification and its sources,
    /// upstream first.
    fn classify(&mut self) {
        let n = self.ids.len();
        let mut done = vec![false; n];
        let mut visiting = vec![false; n];
        for i in 0..n {
            self.classify_column(i, &mut done, &mut visiting);
        }
    }

    fn classify_column(&mut self, i: usize, done: &mut [bool], visiting: &mut [bool]) {
        if done[i] || visiting[i] {
            return;
        }
        visiting[i] = true;
        let carrying: Vec<u32> = self.up[i]
            .iter()
            .filter(|a| a.edge_type == EdgeType::Direct && !a.masking)
            .map(|a| a.other)
            .collect();
        let mut reaching: Vec<ClassSource> = Vec::new();
        for from in carrying {
            let from = from as usize;
            self.classify_column(from, done, visiting);
            let info = &self.infos[from];
            let mut here: Vec<ClassSource> = Vec::new();
            if let Some(k) = info.declared.clone().filter(|k| strictness(Some(k)) > 0) {
                here.push(ClassSource {
                    origin: self.ids[from].clone(),
                    classification: k,
                    path: vec![self.ids[from].clone()],
                });
            }
            here.extend(info.sources.iter().cloned());
            for mut s in here {
                s.path.push(self.ids[i].clone());
                reaching.push(s);
            }
        }
        let info = &mut self.infos[i];
        let (mut kept, mut dropped) = (Vec::new(), Vec::new());
        for s in reaching {
            let declassify = info.declassify.iter().find(|(from, _)| {
                s.path[..s.path.len() - 1]
                    .iter()
                    .any(|c| c.to_string() == *from)
            });
            match declassify {
                Some((_, reason)) => dropped.push(Declassified {
                    source: s,
                    reason: reason.clone(),
                }),
                None => kept.push(s),
            }
        }
        info.sources = strongest_per_origin(kept);
        info.declassified = dedup_declassified(dropped);
        info.derived = info
            .sources
            .iter()
            .map(|s| s.classification.clone())
            .max_by_key(|k| strictness(Some(k)));
        visiting[i] = false;
        done[i] = true;
    }

    /// A column, if the graph knows it.
    pub fn column(&self, id: &ColumnId) -> Option<&ColumnInfo> {
        self.index.get(id).map(|i| &self.infos[*i as usize])
    }

    /// Every column of a dataset.
    pub fn columns_of(&self, dataset: &Dataset) -> Vec<(&ColumnId, &ColumnInfo)> {
        self.by_dataset
            .get(dataset)
            .into_iter()
            .flatten()
            .map(|i| (&self.ids[*i as usize], &self.infos[*i as usize]))
            .collect()
    }

    fn links(&self, id: &ColumnId, upstream: bool) -> Vec<Link> {
        let Some(&i) = self.index.get(id) else {
            return Vec::new();
        };
        let arcs = if upstream {
            &self.up[i as usize]
        } else {
            &self.down[i as usize]
        };
        let mut out: Vec<Link> = arcs
            .iter()
            .map(|a| {
                let other = self.ids[a.other as usize].clone();
                let (from, to) = if upstream {
                    (other, id.clone())
                } else {
                    (id.clone(), other)
                };
                Link {
                    from,
                    field: (a.field != NO_FIELD).then(|| self.fields[a.field as usize].clone()),
                    to,
                    edge_type: a.edge_type,
                    subtype: a.subtype,
                    masking: a.masking,
                }
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// How many columns the graph knows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the graph knows no column.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// A column's index in this graph.
    pub fn index_of(&self, id: &ColumnId) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The column at an index.
    pub fn id(&self, i: u32) -> &ColumnId {
        &self.ids[i as usize]
    }

    /// The column info at an index.
    pub fn info(&self, i: u32) -> &ColumnInfo {
        &self.infos[i as usize]
    }

    /// The edges into (`upstream`) or out of a column by index, without
    /// materializing names: the other end's index and the edge.
    pub fn arcs(&self, i: u32, upstream: bool) -> impl Iterator<Item = Step<'_>> {
        let arcs = if upstream {
            &self.up[i as usize]
        } else {
            &self.down[i as usize]
        };
        arcs.iter().map(|a| Step {
            other: a.other,
            field: (a.field != NO_FIELD).then(|| self.fields[a.field as usize].as_str()),
            edge_type: a.edge_type,
            subtype: a.subtype,
            masking: a.masking,
        })
    }

    /// The edges into a column, in order.
    pub fn upstream_of(&self, id: &ColumnId) -> Vec<Link> {
        self.links(id, true)
    }

    /// The edges out of a column, in order.
    pub fn downstream_of(&self, id: &ColumnId) -> Vec<Link> {
        self.links(id, false)
    }

    /// The datasets a product's inputs read.
    pub fn inputs_of(&self, product: &str) -> impl Iterator<Item = &Dataset> {
        self.inputs.get(product).into_iter().flatten()
    }

    /// The products whose inputs read a dataset.
    pub fn readers_of(&self, dataset: &Dataset) -> impl Iterator<Item = &str> {
        self.readers
            .get(dataset)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The product that produces (or reads, for a source) a dataset.
    pub fn owner(&self, dataset: &Dataset) -> Option<&str> {
        self.owners.get(dataset).map(String::as_str)
    }

    /// The derived classification of `column` of output `domain.output`.
    pub fn derived(&self, domain: &str, output: &str, column: &str) -> Option<&str> {
        self.column(&ColumnId::of_output(domain, output, column))
            .and_then(|c| c.derived.as_deref())
    }
}

/// Per origin, the source with the strictest classification and the
/// shortest path.
fn strongest_per_origin(sources: Vec<ClassSource>) -> Vec<ClassSource> {
    let mut best: BTreeMap<ColumnId, ClassSource> = BTreeMap::new();
    for s in sources {
        match best.get(&s.origin) {
            Some(b)
                if (
                    strictness(Some(&b.classification)),
                    std::cmp::Reverse(b.path.len()),
                ) >= (
                    strictness(Some(&s.classification)),
                    std::cmp::Reverse(s.path.len()),
                ) => {}
            _ => {
                best.insert(s.origin.clone(), s);
            }
        }
    }
    best.into_values().collect()
}

fn dedup_declassified(list: Vec<Declassified>) -> Vec<Declassified> {
    let mut seen = BTreeSet::new();
    list.into_iter()
        .filter(|d| seen.insert(d.source.origin.clone()))
        .collect()
}

/// The output an input reads among `members`, as runs resolve it: the
/// newest major when no requirement is given or it matches, otherwise
/// the newest older major's line that matches.
fn resolve(
    members: &[Member<'_>],
    product: &ProductRef,
    output: Option<&str>,
    req: Option<&semver::VersionReq>,
) -> Option<Dataset> {
    let head = members
        .iter()
        .find(|m| &m.product == product && m.line_of.is_none());
    let head_matches = head.is_some_and(|h| req.is_none_or(|r| r.matches(&h.version)));
    let chosen = if head_matches {
        head
    } else {
        members
            .iter()
            .filter(|m| m.line_of.as_ref() == Some(product))
            .filter(|m| req.is_some_and(|r| r.matches(&m.version)))
            .max_by(|a, b| a.version.cmp(&b.version))
            .or(head)
    }?;
    let o = match output {
        Some(name) => chosen.descriptor.outputs.iter().find(|o| {
            o.name.as_str() == name || o.original_name.as_ref().is_some_and(|n| n.as_str() == name)
        }),
        None => chosen.descriptor.outputs.first(),
    }?;
    Some(Dataset::output(
        chosen.product.domain.as_str(),
        o.name.as_str(),
    ))
}
