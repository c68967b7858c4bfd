//! The resolved lineage graph as the catalog keeps it per deployment
//! generation (`lineage_graphs`, a cache): columns and datasets by index,
//! class sources as index paths, only the upstream arcs (the downstream
//! ones are their mirror). Loading it costs a fraction of parsing every
//! version's lineage and resolving it again.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::graph::{Arc32, ClassSource, ColumnId, ColumnInfo, Dataset, Declassified, LineageGraph};

/// The graph's entry in the catalog's deployment caches.
pub(crate) const KIND: &str = "lineage-graph";

/// The encoding and the rules a stored graph was built with: a hash of
/// the sources that define the graph, its classification rules and the
/// descriptor types (`build.rs`). A build whose rules differ ignores
/// stored graphs and builds its own.
pub(crate) const FORMAT: &str = env!("MESH_CACHE_FORMAT");

#[derive(Serialize, Deserialize)]
enum FlatDataset {
    Output(String, String),
    Source(String, String),
}

#[derive(Serialize, Deserialize)]
struct FlatSource {
    origin: u32,
    classification: String,
    path: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
struct FlatInfo {
    declared: Option<String>,
    derived: Option<String>,
    sources: Vec<FlatSource>,
    declassified: Vec<(FlatSource, String)>,
    declassify: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct Flat {
    datasets: Vec<FlatDataset>,
    /// Per column: its dataset's index and its name.
    columns: Vec<(u32, String)>,
    infos: Vec<FlatInfo>,
    up: Vec<Vec<Arc32>>,
    fields: Vec<String>,
    owners: Vec<(u32, String)>,
    readers: Vec<(u32, Vec<String>)>,
    inputs: Vec<(String, Vec<u32>)>,
}

/// Datasets by index while encoding.
#[derive(Default)]
struct Datasets<'a> {
    list: Vec<&'a Dataset>,
    index: HashMap<&'a Dataset, u32>,
}

impl<'a> Datasets<'a> {
    fn of(&mut self, d: &'a Dataset) -> u32 {
        *self.index.entry(d).or_insert_with(|| {
            self.list.push(d);
            u32::try_from(self.list.len() - 1).unwrap_or(u32::MAX)
        })
    }
}

impl LineageGraph {
    /// The graph encoded for the catalog.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut sets = Datasets::default();
        let columns = self
            .ids
            .iter()
            .map(|id| (sets.of(&id.dataset), id.column.clone()))
            .collect();
        let source = |s: &ClassSource| FlatSource {
            origin: self.index.get(&s.origin).copied().unwrap_or(u32::MAX),
            classification: s.classification.clone(),
            path: s
                .path
                .iter()
                .map(|c| self.index.get(c).copied().unwrap_or(u32::MAX))
                .collect(),
        };
        let infos = self
            .infos
            .iter()
            .map(|i| FlatInfo {
                declared: i.declared.clone(),
                derived: i.derived.clone(),
                sources: i.sources.iter().map(source).collect(),
                declassified: i
                    .declassified
                    .iter()
                    .map(|d| (source(&d.source), d.reason.clone()))
                    .collect(),
                declassify: i.declassify.clone(),
            })
            .collect();
        let owners = self
            .owners
            .iter()
            .map(|(d, p)| (sets.of(d), p.clone()))
            .collect();
        let readers = self
            .readers
            .iter()
            .map(|(d, r)| (sets.of(d), r.iter().cloned().collect()))
            .collect();
        let inputs = self
            .inputs
            .iter()
            .map(|(p, ds)| (p.clone(), ds.iter().map(|d| sets.of(d)).collect()))
            .collect();
        let flat = Flat {
            datasets: sets
                .list
                .iter()
                .map(|d| match d {
                    Dataset::Output { domain, output } => {
                        FlatDataset::Output(domain.clone(), output.clone())
                    }
                    Dataset::Source { product, input } => {
                        FlatDataset::Source(product.clone(), input.clone())
                    }
                })
                .collect(),
            columns,
            infos,
            up: self.up.clone(),
            fields: self.fields.clone(),
            owners,
            readers,
            inputs,
        };
        postcard::to_stdvec(&flat).unwrap_or_default()
    }

    /// A graph [`LineageGraph::to_bytes`] encoded; `None` when the bytes
    /// are not one (a damaged row is rebuilt, never trusted).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<LineageGraph> {
        let flat: Flat = postcard::from_bytes(bytes).ok()?;
        let datasets: Vec<Dataset> = flat
            .datasets
            .into_iter()
            .map(|d| match d {
                FlatDataset::Output(domain, output) => Dataset::Output { domain, output },
                FlatDataset::Source(product, input) => Dataset::Source { product, input },
            })
            .collect();
        let dataset = |i: u32| datasets.get(i as usize).cloned();
        let n = flat.columns.len();
        if flat.infos.len() != n || flat.up.len() != n {
            return None;
        }
        let mut g = LineageGraph {
            ids: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
            ..Default::default()
        };
        for (i, (d, column)) in flat.columns.into_iter().enumerate() {
            let dataset = dataset(d)?;
            let i = u32::try_from(i).ok()?;
            g.by_dataset.entry(dataset.clone()).or_default().push(i);
            let id = ColumnId { dataset, column };
            g.index.insert(id.clone(), i);
            g.ids.push(id);
        }
        let column = |i: u32| g.ids.get(i as usize).cloned();
        let source = |s: FlatSource| -> Option<ClassSource> {
            Some(ClassSource {
                origin: column(s.origin)?,
                classification: s.classification,
                path: s.path.into_iter().map(column).collect::<Option<_>>()?,
            })
        };
        let mut infos = Vec::with_capacity(n);
        for i in flat.infos {
            infos.push(ColumnInfo {
                declared: i.declared,
                derived: i.derived,
                sources: i.sources.into_iter().map(source).collect::<Option<_>>()?,
                declassified: i
                    .declassified
                    .into_iter()
                    .map(|(s, reason)| {
                        Some(Declassified {
                            source: source(s)?,
                            reason,
                        })
                    })
                    .collect::<Option<_>>()?,
                declassify: i.declassify,
            });
        }
        g.infos = infos;
        let mut down: Vec<Vec<Arc32>> = vec![Vec::new(); n];
        for (to, arcs) in flat.up.iter().enumerate() {
            let to = u32::try_from(to).ok()?;
            for a in arcs {
                if a.other as usize >= n
                    || (a.field != super::graph::NO_FIELD && a.field as usize >= flat.fields.len())
                {
                    return None;
                }
                down[a.other as usize].push(Arc32 { other: to, ..*a });
            }
        }
        for arcs in &mut down {
            arcs.sort_unstable();
            arcs.dedup();
        }
        g.up = flat.up;
        g.down = down;
        g.fields = flat.fields;
        for (d, p) in flat.owners {
            g.owners.insert(dataset(d)?, p);
        }
        for (d, r) in flat.readers {
            g.readers
                .insert(dataset(d)?, r.into_iter().collect::<BTreeSet<_>>());
        }
        for (p, ds) in flat.inputs {
            g.inputs
                .insert(p, ds.into_iter().map(dataset).collect::<Option<_>>()?);
        }
        Some(g)
    }
}
