//! `mesh plan`: what deploying the local descriptors would change, graded,
//! with the consumers each breaking change breaks.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::datatypes::SchemaRef;
use mesh_catalog::ProductRecord;
use mesh_contract::{Change, ChangeKind, Grade, VersionError, diff_products, version_gate};
use mesh_query::plan::UpstreamSchemas;
use mesh_query::schema::arrow_schema;
use mesh_query::usage::{ColumnUsage, column_usage};
use mesh_spec::{Diagnostic, InputKind, ProductDescriptor, ProductRef};
use serde::Serialize;

use crate::access::Caller;
use crate::error::{Result, ServiceError};
use crate::lineage::{ColumnId, Dataset};
use crate::mesh::Mesh;

/// A consumer output that reads what a change touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Impact {
    /// The consuming product.
    pub consumer: String,
    /// The consumer's output whose SQL reads it.
    pub consumer_output: String,
    /// The consumer's input name for the changed output.
    pub input: String,
    /// The column read, when the change is about one column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

/// One change with its effect on consumers.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedChange {
    #[serde(flatten)]
    pub change: Change,
    /// For breaking changes: the consumers that read what changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub breaks: Vec<Impact>,
    /// A breaking change that no consumer reads.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unused: bool,
    /// For breaking changes: every downstream column the changed columns'
    /// lineage reaches through the consumers it breaks, transitively
    /// (`<domain>.<output>.<column>`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reaches: Vec<String>,
    /// For a widened column: consumers whose contract declares the
    /// narrower type, which must widen it (their runs refuse to cast back).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<Required>,
}

/// A consumer's declared column that no longer accepts what its SQL
/// produces once a change is deployed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Required {
    pub consumer: String,
    pub consumer_output: String,
    pub column: String,
    pub declared: String,
    pub produced: String,
}

/// How a product compares with what is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanState {
    New,
    Changed,
    Unchanged,
}

/// The plan for one product.
#[derive(Debug, Clone, Serialize)]
pub struct ProductPlan {
    pub product: String,
    pub state: PlanState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_version: Option<String>,
    pub version: String,
    /// The highest grade among the changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grade: Option<Grade>,
    pub changes: Vec<PlannedChange>,
    /// Why this version number cannot be deployed, if it cannot.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "display_opt"
    )]
    pub version_error: Option<VersionError>,
    /// A new major keeps the deployed one alive under this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keeps_alive: Option<String>,
}

fn display_opt<S: serde::Serializer>(
    v: &Option<VersionError>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(e) => s.serialize_str(&e.to_string()),
        None => s.serialize_none(),
    }
}

impl ProductPlan {
    pub fn breaking(&self) -> impl Iterator<Item = &PlannedChange> {
        self.changes.iter().filter(|c| c.change.is_breaking())
    }
}

/// Schemas of the contracts consumers read today: the deployed ones, and
/// local descriptors only for products not deployed yet.
struct Current<'a> {
    deployed: &'a BTreeMap<ProductRef, ProductDescriptor>,
    records: &'a [ProductRecord],
    local: &'a BTreeMap<ProductRef, &'a ProductDescriptor>,
}

impl UpstreamSchemas for Current<'_> {
    fn schema(
        &self,
        product: &ProductRef,
        output: Option<&str>,
        version: Option<&semver::VersionReq>,
    ) -> Option<SchemaRef> {
        if let Some(line) = mesh_catalog::matching_line(self.records, product, version) {
            let p = self.deployed.get(&line.product)?;
            let name = output.map(|name| mesh_catalog::line_output(name, line));
            return declared_schema(p, name.as_deref());
        }
        let p = self
            .deployed
            .get(product)
            .or_else(|| self.local.get(product).copied())?;
        declared_schema(p, output)
    }
}

/// The declared schema of output `output` of `p`, or of its only one.
fn declared_schema(p: &ProductDescriptor, output: Option<&str>) -> Option<SchemaRef> {
    let o = match output {
        Some(name) => p.output(name)?,
        None => p.outputs.first()?,
    };
    Some(arrow_schema(&o.columns))
}

/// Schemas consumers will read once the local descriptors are deployed:
/// the local contract where there is one, else what [`Current`] gives.
struct Next<'a> {
    current: &'a Current<'a>,
    local: &'a BTreeMap<ProductRef, &'a ProductDescriptor>,
}

impl UpstreamSchemas for Next<'_> {
    fn schema(
        &self,
        product: &ProductRef,
        output: Option<&str>,
        version: Option<&semver::VersionReq>,
    ) -> Option<SchemaRef> {
        let local = self
            .local
            .get(product)
            .filter(|p| version.is_none_or(|req| req.matches(&p.version.value)));
        match local {
            Some(p) => declared_schema(p, output),
            None => self.current.schema(product, output, version),
        }
    }
}

/// The consumers of a widened column whose contracts declare the narrower
/// type: planned against the new contract, their SQL produces a type
/// their declaration no longer accepts.
async fn requirements(
    change: &Change,
    edges: Option<&Vec<Edge<'_>>>,
    next: &Next<'_>,
) -> Result<Vec<Required>> {
    let mut out = BTreeSet::new();
    for e in edges.into_iter().flatten() {
        if change.output.as_deref().is_some_and(|o| o != e.output) {
            continue;
        }
        let stored = e.stored.map(|r| &r.sql_texts);
        let narrowed = mesh_query::usage::narrowed_columns(e.consumer, next, stored)
            .await
            .map_err(|d| ServiceError::Invalid {
                diagnostics: vec![d],
            })?;
        out.extend(narrowed.into_iter().map(|n| Required {
            consumer: e.consumer.product_ref().to_string(),
            consumer_output: n.output,
            column: n.column,
            declared: n.declared,
            produced: n.produced,
        }));
    }
    Ok(out.into_iter().collect())
}

/// A product that reads another: which input, and which output of it.
struct Edge<'a> {
    consumer: &'a ProductDescriptor,
    stored: Option<&'a ProductRecord>,
    input: String,
    output: String,
}

impl Mesh {
    /// Compares the local descriptors with the deployed ones.
    ///
    /// Validation problems do not stop the plan: a consumer whose SQL no
    /// longer plans against a changed upstream is exactly what a plan must
    /// show. They are returned alongside, for the caller to report; only
    /// descriptors that could not be read at all are left out of the plan.
    pub async fn plan(&self) -> Result<(Vec<ProductPlan>, Vec<Diagnostic>)> {
        let (local, diagnostics) = self.validate().await?;
        let deployed = self.deployed().await?;
        Ok((self.plan_products(&local, &deployed).await?, diagnostics))
    }

    /// The plan for validated local descriptors against the deployed
    /// products (as [`Mesh::deployed`] returns them).
    pub async fn plan_products(
        &self,
        local: &[ProductDescriptor],
        deployed_pairs: &[(ProductRecord, ProductDescriptor)],
    ) -> Result<Vec<ProductPlan>> {
        let records: BTreeMap<ProductRef, &ProductRecord> = deployed_pairs
            .iter()
            .map(|(r, _)| (r.product.clone(), r))
            .collect();
        let deployed: BTreeMap<ProductRef, ProductDescriptor> = deployed_pairs
            .iter()
            .map(|(r, p)| (r.product.clone(), p.clone()))
            .collect();
        let local_by_ref: BTreeMap<ProductRef, &ProductDescriptor> =
            local.iter().map(|p| (p.product_ref(), p)).collect();
        let record_list: Vec<ProductRecord> =
            deployed_pairs.iter().map(|(r, _)| r.clone()).collect();
        let current = Current {
            deployed: &deployed,
            records: &record_list,
            local: &local_by_ref,
        };

        // Every consumer as it will be after the deploy: local descriptors
        // replace deployed ones; deployed-only products keep their stored SQL.
        let mut edges: BTreeMap<ProductRef, Vec<Edge>> = BTreeMap::new();
        let consumers = local.iter().map(|p| (p, None)).chain(
            deployed
                .iter()
                .filter(|(r, _)| !local_by_ref.contains_key(*r))
                .map(|(r, p)| (p, records.get(r).copied())),
        );
        for (consumer, stored) in consumers {
            for input in &consumer.inputs {
                let InputKind::Product {
                    product,
                    output,
                    version,
                } = &input.kind
                else {
                    continue;
                };
                // A consumer whose requirement the new version does not meet
                // keeps reading the older major, which stays alive.
                if let (Some(req), Some(new)) = (version, local_by_ref.get(&product.value))
                    && !req.value.matches(&new.version.value)
                {
                    continue;
                }
                let upstream = deployed
                    .get(&product.value)
                    .or_else(|| local_by_ref.get(&product.value).copied());
                let output = match (output, upstream) {
                    (Some(o), _) => o.to_string(),
                    (None, Some(u)) => match u.outputs.first() {
                        Some(o) => o.name.to_string(),
                        None => continue,
                    },
                    (None, None) => continue,
                };
                edges.entry(product.value.clone()).or_default().push(Edge {
                    consumer,
                    stored,
                    input: input.name.to_string(),
                    output,
                });
            }
        }

        let mut usage_cache: BTreeMap<ProductRef, ColumnUsage> = BTreeMap::new();
        let mut plans = Vec::with_capacity(local.len());
        // Built only when a breaking change breaks someone.
        let mut graph: Option<std::sync::Arc<crate::lineage::LineageGraph>> = None;
        for p in local {
            let r = p.product_ref();
            let Some(old) = deployed.get(&r) else {
                plans.push(ProductPlan {
                    product: r.to_string(),
                    state: PlanState::New,
                    deployed_version: None,
                    version: p.version.to_string(),
                    grade: None,
                    changes: Vec::new(),
                    version_error: None,
                    keeps_alive: None,
                });
                continue;
            };
            let changes = diff_products(old, p);
            let breaking = changes.iter().any(Change::is_breaking);
            let mut planned = Vec::with_capacity(changes.len());
            let next = Next {
                current: &current,
                local: &local_by_ref,
            };
            for change in changes {
                let breaks = if change.is_breaking() {
                    self.impacts(&change, edges.get(&r), &current, &mut usage_cache)
                        .await?
                } else {
                    Vec::new()
                };
                let requires = if matches!(change.kind, ChangeKind::TypeWidened { .. }) {
                    requirements(&change, edges.get(&r), &next).await?
                } else {
                    Vec::new()
                };
                let reaches = if breaks.is_empty() {
                    Vec::new()
                } else {
                    if graph.is_none() {
                        graph = Some(self.lineage_graph().await?);
                    }
                    let started = std::time::Instant::now();
                    let found = graph
                        .as_deref()
                        .map(|g| reached_columns(g, &r, &change, &breaks))
                        .unwrap_or_default();
                    crate::lineage::count(started);
                    found
                };
                planned.push(PlannedChange {
                    unused: change.is_breaking() && breaks.is_empty(),
                    reaches,
                    breaks,
                    requires,
                    change,
                });
            }
            let same_text = records
                .get(&r)
                .is_some_and(|rec| rec.descriptor == *p.file.text);
            plans.push(ProductPlan {
                product: r.to_string(),
                state: if planned.is_empty() && same_text {
                    PlanState::Unchanged
                } else {
                    PlanState::Changed
                },
                deployed_version: Some(old.version.to_string()),
                version: p.version.to_string(),
                grade: planned.iter().map(|c| c.change.grade).max(),
                version_error: version_gate(&old.version.value, &p.version.value, breaking).err(),
                keeps_alive: (p.version.value.major > old.version.value.major
                    && old.version.value.major >= 1)
                    .then(|| {
                        format!(
                            "{}/{}",
                            r.domain,
                            mesh_catalog::line_name(r.name.as_str(), old.version.value.major)
                        )
                    }),
                changes: planned,
            });
        }
        crate::lineage::report();
        Ok(plans)
    }

    /// The consumer outputs that read what `change` touches.
    async fn impacts(
        &self,
        change: &Change,
        edges: Option<&Vec<Edge<'_>>>,
        current: &Current<'_>,
        cache: &mut BTreeMap<ProductRef, ColumnUsage>,
    ) -> Result<Vec<Impact>> {
        let mut out = BTreeSet::new();
        for e in edges.into_iter().flatten() {
            if change.output.as_deref().is_some_and(|o| o != e.output) {
                continue;
            }
            let consumer = e.consumer.product_ref();
            if !cache.contains_key(&consumer) {
                let stored = e.stored.map(|r| &r.sql_texts);
                let usage = column_usage(e.consumer, current, stored)
                    .await
                    .map_err(|d| ServiceError::Invalid {
                        diagnostics: vec![d],
                    })?;
                cache.insert(consumer.clone(), usage);
            }
            for (consumer_output, inputs) in &cache[&consumer] {
                let Some(read) = inputs.get(&e.input) else {
                    continue;
                };
                let hit = match &change.column {
                    Some(c) => read.contains(c),
                    // Output-wide changes (a removed output, a row-count
                    // check, the SLO) touch every reader of the output.
                    None => true,
                };
                if hit {
                    out.insert(Impact {
                        consumer: consumer.to_string(),
                        consumer_output: consumer_output.clone(),
                        input: e.input.clone(),
                        column: change.column.clone(),
                    });
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// The downstream columns a breaking change reaches in the deployed
/// lineage: from the changed column (every column of the output for an
/// output-wide change), first into the consumers it breaks, then onwards.
fn reached_columns(
    graph: &crate::lineage::LineageGraph,
    product: &ProductRef,
    change: &Change,
    breaks: &[Impact],
) -> Vec<String> {
    let Some(output) = change.output.as_deref().filter(|_| !breaks.is_empty()) else {
        return Vec::new();
    };
    let dataset = Dataset::output(product.domain.as_str(), output);
    let start: Vec<ColumnId> = match &change.column {
        Some(c) => vec![ColumnId {
            dataset,
            column: c.clone(),
        }],
        None => graph
            .columns_of(&dataset)
            .into_iter()
            .map(|(id, _)| id.clone())
            .collect(),
    };
    let broken: BTreeSet<String> = breaks
        .iter()
        .map(|i| format!("{}:{}", i.consumer, i.consumer_output))
        .collect();
    let start: Vec<u32> = start.iter().filter_map(|c| graph.index_of(c)).collect();
    let mut seen: std::collections::HashSet<u32> = start.iter().copied().collect();
    let mut queue: Vec<u32> = start;
    let mut reached = BTreeSet::new();
    let mut first = true;
    while !queue.is_empty() {
        let mut next = Vec::new();
        for i in queue {
            for arc in graph.arcs(i, false) {
                let to = graph.id(arc.other);
                let Dataset::Output { output, .. } = &to.dataset else {
                    continue;
                };
                if first {
                    let owner = graph.owner(&to.dataset).unwrap_or_default();
                    if !broken.contains(&format!("{owner}:{output}")) {
                        continue;
                    }
                }
                if seen.insert(arc.other) {
                    reached.insert(to.to_string());
                    next.push(arc.other);
                }
            }
        }
        first = false;
        queue = next;
    }
    reached.into_iter().collect()
}

/// One breaking change and whom it breaks, as a line.
fn describe(c: &PlannedChange) -> String {
    let whom = if c.breaks.is_empty() {
        "read by no consumer".to_string()
    } else {
        let names: Vec<String> = c
            .breaks
            .iter()
            .map(|i| format!("{}:{}", i.consumer, i.consumer_output))
            .collect();
        format!("breaks {}", names.join(", "))
    };
    format!("    {} ({whom})", c.change.message)
}

/// Applies the contract gate to a plan: the overrides to record, or why
/// the deploy is refused.
pub fn gate(
    plans: &[ProductPlan],
    by: &str,
    allow_breaking: bool,
) -> Result<Vec<mesh_catalog::ContractOverride>> {
    let mut refusals = Vec::new();
    let mut overridable = true;
    let mut overrides = Vec::new();
    for plan in plans {
        let Some(error) = &plan.version_error else {
            continue;
        };
        let breaking: Vec<&PlannedChange> = plan.breaking().collect();
        match error {
            VersionError::NeedsMajor { .. } if allow_breaking => {
                overrides.push(mesh_catalog::ContractOverride {
                    product: ProductRef::parse(&plan.product).map_err(|e| {
                        ServiceError::Execution(format!("bad product name in plan: {e}"))
                    })?,
                    from_version: plan.deployed_version.clone().unwrap_or_default(),
                    to_version: plan.version.clone(),
                    by: by.to_string(),
                    at: chrono::Utc::now(),
                    changes: breaking.iter().map(|c| c.change.message.clone()).collect(),
                    consumers: breaking
                        .iter()
                        .flat_map(|c| &c.breaks)
                        .map(|i| format!("{}:{}", i.consumer, i.consumer_output))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                });
            }
            VersionError::NeedsMajor { .. } => {
                refusals.push(format!("  {}: {error}", plan.product));
                refusals.extend(breaking.iter().map(|c| describe(c)));
            }
            VersionError::Backwards { .. } => {
                overridable = false;
                refusals.push(format!("  {}: {error}", plan.product));
            }
        }
    }
    if refusals.is_empty() {
        Ok(overrides)
    } else {
        Err(ServiceError::ContractGate {
            refusals,
            overridable,
        })
    }
}

/// Who reads one column of an output.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnReaders {
    pub output: String,
    pub column: String,
    /// `domain/product:output` of every consumer output that reads it.
    pub read_by: Vec<String>,
}

impl Mesh {
    /// For each column of a deployed product's outputs, the consumer
    /// outputs its lineage flows into (any edge, DIRECT or INDIRECT), as
    /// `caller` may see them: a consumer it may not see is counted, not
    /// named. The same graph answers `mesh lineage`, so the two agree,
    /// older majors' lines included.
    pub async fn column_readers(&self, caller: &Caller, name: &str) -> Result<Vec<ColumnReaders>> {
        let snapshot = self.snapshot().await?;
        let sight = self.sight(caller, &snapshot).await?;
        let visible: Vec<&(ProductRecord, ProductDescriptor)> =
            sight.visible(&snapshot.deployed).collect();
        let known: Vec<ProductRef> = visible.iter().map(|(r, _)| r.product.clone()).collect();
        let target = self.resolve(name, &known)?;
        let Some((record, product)) = visible.iter().find(|(r, _)| r.product == target) else {
            return Ok(Vec::new());
        };
        let seen: BTreeSet<String> = known.iter().map(ToString::to_string).collect();
        let graph = snapshot.lineage().await?;
        let graph = graph.as_ref();
        let mut out = Vec::new();
        for o in &product.outputs {
            let dataset = Dataset::output(record.product.domain.as_str(), o.name.as_str());
            for c in &o.columns {
                let id = ColumnId {
                    dataset: dataset.clone(),
                    column: c.name.to_string(),
                };
                let mut by = BTreeSet::new();
                let mut hidden = BTreeSet::new();
                for link in graph.downstream_of(&id) {
                    let Some(owner) = graph.owner(&link.to.dataset) else {
                        continue;
                    };
                    if owner == record.product.to_string() {
                        continue;
                    }
                    if seen.contains(owner) {
                        let output = match &link.to.dataset {
                            Dataset::Output { output, .. } => output.as_str(),
                            Dataset::Source { input, .. } => input.as_str(),
                        };
                        by.insert(format!("{owner}:{output}"));
                    } else {
                        hidden.insert(owner.to_string());
                    }
                }
                let mut read_by: Vec<String> = by.into_iter().collect();
                if !hidden.is_empty() {
                    read_by.push(format!("({} product(s) you cannot see)", hidden.len()));
                }
                out.push(ColumnReaders {
                    output: o.name.to_string(),
                    column: c.name.to_string(),
                    read_by,
                });
            }
        }
        Ok(out)
    }
}
