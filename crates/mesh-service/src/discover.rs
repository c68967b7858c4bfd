//! Discovery: list, show and search products.

use serde::Serialize;
use serde_json::{Value, json};

use mesh_catalog::search::{SearchDoc, search};
use mesh_spec::name::global_address;
use mesh_spec::{InputKind, ProductDescriptor, ProductRef};
use std::collections::{BTreeSet, HashMap};

use crate::access::Caller;
use crate::error::Result;
use crate::mesh::Mesh;

/// One line of `mesh catalog list`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ProductSummary {
    pub domain: String,
    pub name: String,
    pub version: String,
    pub status: String,
    pub owner: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub outputs: Vec<String>,
    pub last_run: Option<String>,
}

/// One search result.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SearchResult {
    pub product: String,
    pub score: f32,
    #[serde(flatten)]
    pub summary: ProductSummary,
}

impl Mesh {
    fn summary(&self, p: &ProductDescriptor, last_run: Option<String>) -> ProductSummary {
        ProductSummary {
            domain: p.domain.to_string(),
            name: p.name.to_string(),
            version: p.version.to_string(),
            status: p.status.as_str().to_string(),
            owner: p.owner.value.clone(),
            description: p.description.purpose.clone(),
            tags: p.tags.clone(),
            outputs: p
                .outputs
                .iter()
                .map(|o| format!("{}.{}", p.domain.value, o.name.value))
                .collect(),
            last_run,
        }
    }

    async fn last_run(&self, p: &ProductDescriptor) -> Result<Option<mesh_catalog::RunRecord>> {
        Ok(self
            .catalog
            .runs(
                &mesh_catalog::RunFilter {
                    product: Some(p.product_ref()),
                    status: None,
                    builds_only: true,
                },
                1,
            )
            .await?
            .into_iter()
            .next())
    }

    /// The deployed products `caller` may see: `public` ones always;
    /// `discoverable` ones (the default) by any known principal; `private`
    /// ones by the owning teams, the product's approvers, holders of a
    /// grant in force, and mesh-admins. What a caller may not see does not
    /// exist for it: not in list, search, show, lineage, history or runs.
    pub async fn visible_deployed(
        &self,
        caller: &Caller,
    ) -> Result<Vec<(mesh_catalog::ProductRecord, ProductDescriptor)>> {
        let snapshot = self.snapshot().await?;
        let sight = self.sight(caller, &snapshot).await?;
        Ok(sight.visible(&snapshot.deployed).cloned().collect())
    }

    /// The products of `deployed` that `caller` may see (see `visible_deployed`).
    pub(crate) async fn visible_of(
        &self,
        caller: &Caller,
        deployed: Vec<(mesh_catalog::ProductRecord, ProductDescriptor)>,
    ) -> Result<Vec<(mesh_catalog::ProductRecord, ProductDescriptor)>> {
        let snapshot = self.snapshot().await?;
        let sight = self.sight(caller, &snapshot).await?;
        Ok(deployed
            .into_iter()
            .filter(|(r, p)| sight.sees(r, p))
            .collect())
    }

    /// What decides which products `caller` sees, read from `snapshot`.
    pub(crate) async fn sight<'a>(
        &self,
        caller: &'a Caller,
        snapshot: &'a crate::snapshot::Snapshot,
    ) -> Result<Sight<'a>> {
        let me = snapshot.principal(&caller.name).await?;
        let now = chrono::Utc::now();
        let granted: Vec<String> = match &me {
            Some(_) => snapshot
                .grants(&caller.name)
                .await?
                .iter()
                .filter(|g| g.is_live(now))
                .map(|g| g.product.clone())
                .collect(),
            None => Vec::new(),
        };
        Ok(Sight {
            caller: &caller.name,
            admin: me
                .as_ref()
                .is_some_and(|p| p.roles.iter().any(|r| r == crate::identity::ADMIN_ROLE)),
            known: me.is_some(),
            teams: me.map(|p| p.teams).unwrap_or_default(),
            owners: snapshot.owners(),
            granted,
        })
    }

    /// The SQL tables (`<domain>.<output>`) of the served products `caller`
    /// may see, with their declared schemas: what protocol catalogs
    /// (`pg_catalog`, Flight SQL's GetTables) list. Retired products are
    /// not served, so not listed.
    pub async fn visible_tables(&self, caller: &Caller) -> Result<Vec<VisibleTable>> {
        let mut tables: Vec<VisibleTable> = self
            .visible_deployed(caller)
            .await?
            .iter()
            .filter(|(record, _)| record.status != "retired")
            .flat_map(|(record, descriptor)| {
                record.outputs.iter().map(move |o| {
                    // A line's outputs are named `<output>_v<major>`; its
                    // descriptor keeps the original names.
                    let declared = descriptor.outputs.iter().find(|d| {
                        d.name.as_str() == o.output.as_str()
                            || mesh_catalog::line_output(d.name.as_str(), record)
                                == o.output.as_str()
                    });
                    VisibleTable {
                        domain: o.domain.to_string(),
                        name: o.output.to_string(),
                        schema: mesh_query::schema::documented_schema(
                            o,
                            declared,
                            descriptor.description.purpose.as_deref(),
                        ),
                    }
                })
            })
            .collect();
        tables.sort_by(|a, b| (&a.domain, &a.name).cmp(&(&b.domain, &b.name)));
        Ok(tables)
    }

    /// Every deployed product the caller may see.
    pub async fn catalog_list(&self, caller: &Caller) -> Result<Vec<ProductSummary>> {
        let last: std::collections::BTreeMap<_, _> = self
            .catalog
            .last_runs()
            .await?
            .into_iter()
            .map(|r| (r.product.clone(), r.status.as_str().to_string()))
            .collect();
        Ok(self
            .visible_deployed(caller)
            .await?
            .into_iter()
            .map(|(_, p)| {
                let status = last.get(&p.product_ref()).cloned();
                self.summary(&p, status)
            })
            .collect())
    }

    /// Ranked full-text search over names, descriptions, columns, tags and owners.
    pub async fn catalog_search(&self, caller: &Caller, words: &str) -> Result<Vec<SearchResult>> {
        let deployed = self.visible_deployed(caller).await?;
        let docs: Vec<SearchDoc> = deployed
            .iter()
            .map(|(_, p)| SearchDoc {
                id: p.product_ref().to_string(),
                domain: p.domain.to_string(),
                name: p.name.to_string(),
                description: [
                    &p.description.purpose,
                    &p.description.usage,
                    &p.description.limitations,
                ]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
                tags: p.tags.clone(),
                owner: p.owner.value.clone(),
                columns: p
                    .outputs
                    .iter()
                    .flat_map(|o| {
                        std::iter::once(o.name.to_string())
                            .chain(o.description.clone())
                            .chain(o.columns.iter().flat_map(|c| {
                                std::iter::once(c.name.to_string()).chain(c.description.clone())
                            }))
                    })
                    .collect(),
            })
            .collect();
        // Every match: callers page through them (REST `limit`, `offset`).
        let hits = search(&docs, words, docs.len().max(1))?;
        let mut out = Vec::new();
        for h in hits {
            if let Some((_, p)) = deployed.iter().find(|(r, _)| r.product.to_string() == h.id) {
                let last = self
                    .last_run(p)
                    .await?
                    .map(|r| r.status.as_str().to_string());
                out.push(SearchResult {
                    product: h.id.clone(),
                    score: h.score,
                    summary: self.summary(p, last),
                });
            }
        }
        Ok(out)
    }

    /// Everything about one product, as one JSON document.
    ///
    /// A page is built once per deployment and activity generation (see
    /// `mesh_catalog::Generations`) and set of products the caller sees,
    /// then served from memory: the catalog is asked only what moved.
    pub async fn catalog_show(&self, caller: &Caller, name: &str) -> Result<Value> {
        let read = self.catalog.generations().await?;
        let generations = (read.deployment, read.activity);
        let snapshot = self.snapshot_at(read).await?;
        let sight = self.sight(caller, &snapshot).await?;
        let deployed: Vec<_> = sight.visible(&snapshot.deployed).cloned().collect();
        let known: Vec<_> = deployed.iter().map(|(r, _)| r.product.clone()).collect();
        let r = self.resolve(name, &known)?;
        let key = (r.to_string(), fingerprint(&known));
        let mut page = match self.show_cache.get(&key, generations) {
            Some(page) => page,
            None => {
                let graph = snapshot.lineage().await?;
                let page = self.build_show(&deployed, &graph, &r, name).await?;
                self.show_cache.put(key, generations, page.clone());
                page
            }
        };
        // The page is shared by callers who see the same products; the
        // last run's error may quote data, so it is decided per caller.
        if let Some(error) = page.pointer_mut("/last_run/error").filter(|e| !e.is_null()) {
            let raw = error.as_str().map(str::to_string);
            let seen = self.run_error_as_seen_by(caller, &r, raw).await?;
            *error = seen.map_or(Value::Null, Value::String);
        }
        // Health changes with the clock, so it is never cached.
        let health = self
            .status(caller)
            .await?
            .into_iter()
            .find(|h| h.product == r.to_string());
        page["health"] = serde_json::to_value(health).unwrap_or(Value::Null);
        Ok(page)
    }

    async fn build_show(
        &self,
        deployed: &[(mesh_catalog::ProductRecord, ProductDescriptor)],
        graph: &crate::lineage::LineageGraph,
        r: &ProductRef,
        name: &str,
    ) -> Result<Value> {
        let r = r.clone();
        let Some((record, p)) = deployed.iter().find(|(rec, _)| rec.product == r) else {
            return Err(crate::ServiceError::ProductNotFound {
                product: name.into(),
                hint: None,
            });
        };
        let seen: BTreeSet<String> = deployed
            .iter()
            .map(|(x, _)| x.product.to_string())
            .collect();
        let mut outputs = Vec::new();
        for o in &p.outputs {
            let publication = self
                .catalog
                .current_publication(&p.domain.value, &o.name.value)
                .await?;
            let storage = match record.outputs.iter().find(|x| x.output == o.name.value) {
                Some(out) => Some(self.output_storage(out, record, p).await?),
                None => None,
            };
            outputs.push(json!({
                "name": o.name.as_str(),
                "sql_name": format!("{}.{}", p.domain.value, o.name.value),
                "address": global_address(&r, &o.name.value),
                "description": o.description,
                "primary_key": o.primary_key.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
                "columns": o.columns.iter().map(|c| {
                    let id = crate::lineage::ColumnId::of_output(
                        p.domain.as_str(),
                        o.name.as_str(),
                        c.name.as_str(),
                    );
                    let info = graph.column(&id);
                    json!({
                        "name": c.name.as_str(),
                        "type": c.ty.to_string(),
                        "nullable": c.nullable,
                        "description": c.description,
                        "classification": c.classification.map(|x| x.as_str()),
                        "derived_classification": info.and_then(|i| i.derived.as_deref()),
                        "sources": column_sources(graph, &id, &seen),
                        "declassify": c.declassify.iter().map(|d| json!({
                            "from": visible_column(graph, &d.from.value, &seen),
                            "reason": d.reason.value,
                        })).collect::<Vec<_>>(),
                    })
                }).collect::<Vec<_>>(),
                "quality": o.quality.iter().map(|q| json!({"name": q.name, "check": q.kind.keyword(), "severity": match q.severity { mesh_spec::CheckSeverity::Error => "error", mesh_spec::CheckSeverity::Warn => "warn" }})).collect::<Vec<_>>(),
                "data_version": publication.as_ref().map(|x| x.table_version),
                "row_count": publication.as_ref().map(|x| x.row_count),
                "published_at": publication.as_ref().map(|x| x.published_at.to_rfc3339()),
                "location": record.outputs.iter().find(|x| x.output == o.name.value).map(|x| x.location.clone()),
                "storage": storage,
            }));
        }
        let inputs: Vec<Value> = p
            .inputs
            .iter()
            .map(|i| match &i.kind {
                InputKind::Source(s) => json!({"name": i.name.as_str(), "source": {"format": s.format.as_str(), "path": s.path.value}}),
                // A product the reader may not see is not named.
                InputKind::Product { product, .. } if !seen.contains(&product.value.to_string()) => json!({
                    "name": i.name.as_str(),
                    "product": "(hidden)",
                }),
                InputKind::Product { product, output, version } => json!({
                    "name": i.name.as_str(),
                    "product": product.value.to_string(),
                    "output": output.as_ref().map(|o| o.to_string()),
                    "version": version.as_ref().map(|v| v.value.to_string()),
                }),
            })
            .collect();
        // Whoever reads one of its outputs, as the lineage graph resolves
        // inputs (a line's readers are those the line serves).
        let mut consumers: BTreeSet<String> = BTreeSet::new();
        let mut hidden: BTreeSet<&str> = BTreeSet::new();
        for o in &record.outputs {
            let dataset = crate::lineage::Dataset::output(o.domain.as_str(), o.output.as_str());
            for reader in graph.readers_of(&dataset) {
                if seen.contains(reader) {
                    consumers.insert(reader.to_string());
                } else {
                    hidden.insert(reader);
                }
            }
        }
        let mut consumers: Vec<String> = consumers.into_iter().collect();
        if !hidden.is_empty() {
            consumers.push(format!("({} product(s) you cannot see)", hidden.len()));
        }
        let last_run = self.last_run(p).await?;
        let overrides = self.catalog.overrides(&r).await?;
        // Older majors kept alive next to this one, with their readers.
        let majors: Vec<Value> = deployed
            .iter()
            .filter(|(rec, _)| rec.line_of.as_ref() == Some(&r))
            .map(|(rec, _)| {
                json!({
                    "product": rec.product.to_string(),
                    "version": rec.version,
                    "sql_names": rec.outputs.iter().map(|o| format!("{}.{}", o.domain, o.output)).collect::<Vec<_>>(),
                    "consumers": rec
                        .outputs
                        .iter()
                        .flat_map(|o| {
                            let dataset = crate::lineage::Dataset::output(o.domain.as_str(), o.output.as_str());
                            graph
                                .readers_of(&dataset)
                                .filter(|reader| seen.contains(*reader))
                                .map(str::to_string)
                                .collect::<Vec<_>>()
                        })
                        .collect::<BTreeSet<_>>(),
                })
            })
            .collect();
        Ok(json!({
            "domain": p.domain.as_str(),
            "name": p.name.as_str(),
            "product": r.to_string(),
            "version": p.version.to_string(),
            "status": p.status.as_str(),
            "owner": p.owner.value,
            "description": {"purpose": p.description.purpose, "usage": p.description.usage, "limitations": p.description.limitations},
            "tags": p.tags,
            "deployed_at": record.deployed_at.to_rfc3339(),
            "deployed_by": record.deployed_by,
            "inputs": inputs,
            "consumers": consumers,
            "outputs": outputs,
            "slo": p.slo.as_ref().and_then(|s| s.freshness.as_ref()).map(|f| json!({"freshness": mesh_spec::format_duration(f.value)})),
            "contract_overrides": overrides,
            "major_of": record.line_of.as_ref().map(ToString::to_string),
            "older_majors": majors,
            "last_run": last_run.map(|r| json!({"id": r.id.0, "status": r.status.as_str(), "started_at": r.started_at.to_rfc3339(), "rows_written": r.rows_written, "error": r.error})),
        }))
    }
}

/// Built product pages: `(product, visible-set fingerprint)` to the
/// generations they were built at and the page.
#[derive(Debug, Default)]
pub struct ShowCache {
    pages: std::sync::Mutex<HashMap<PageKey, BuiltPage>>,
}

/// A page and the generations it was built at.
type BuiltPage = ((i64, i64), Value);

/// A product and the fingerprint of the products its reader sees.
type PageKey = (String, u64);

/// Most pages kept; beyond it the cache starts over.
const MAX_PAGES: usize = 1_000;

impl ShowCache {
    fn get(&self, key: &PageKey, generations: (i64, i64)) -> Option<Value> {
        let pages = self.pages.lock().ok()?;
        let (built_at, page) = pages.get(key)?;
        (*built_at == generations).then(|| page.clone())
    }

    fn put(&self, key: PageKey, generations: (i64, i64), page: Value) {
        if let Ok(mut pages) = self.pages.lock() {
            if pages.len() >= MAX_PAGES {
                pages.clear();
            }
            pages.insert(key, (generations, page));
        }
    }
}

/// A fingerprint of a set of products (a page lists consumers among them).
fn fingerprint(products: &[ProductRef]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    products.hash(&mut h);
    h.finish()
}

/// One release: a successful run, its product version and the exact data
/// version of each output it published.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Release {
    pub run_id: String,
    pub product_version: String,
    pub released_at: String,
    pub outputs: Vec<ReleasedOutput>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ReleasedOutput {
    pub output: String,
    /// Query it as `<domain>."<output>@<data_version>"`.
    pub data_version: i64,
    pub row_count: i64,
}

impl Mesh {
    /// Every release of a product, newest first.
    pub async fn catalog_history(&self, caller: &Caller, name: &str) -> Result<Vec<Release>> {
        let r = self.resolve_visible(caller, name).await?;
        Ok(self
            .catalog
            .runs(
                &mesh_catalog::RunFilter {
                    product: Some(r.clone()),
                    status: None,
                    builds_only: true,
                },
                i64::MAX,
            )
            .await?
            .into_iter()
            .filter(|run| !run.publications.is_empty())
            .map(|run| Release {
                run_id: run.id.0,
                product_version: run.version,
                released_at: run
                    .publications
                    .iter()
                    .map(|p| p.published_at)
                    .max()
                    .unwrap_or(run.started_at)
                    .to_rfc3339(),
                outputs: run
                    .publications
                    .iter()
                    .map(|p| ReleasedOutput {
                        output: p.output.to_string(),
                        data_version: p.table_version,
                        row_count: p.row_count,
                    })
                    .collect(),
            })
            .collect())
    }
}

/// A table a caller may see: `<domain>.<name>` and its declared columns,
/// documented from the contract (see `mesh_query::schema::documented_schema`).
#[derive(Debug, Clone)]
pub struct VisibleTable {
    pub domain: String,
    pub name: String,
    pub schema: datafusion::arrow::datatypes::SchemaRef,
}

/// Which products one caller may see: `public` ones always;
/// `discoverable` ones (the default) by any known principal; `private`
/// ones by the owning teams, the product's approvers, holders of a grant
/// in force (on it or, for an older major, on its line), and mesh-admins.
pub(crate) struct Sight<'a> {
    caller: &'a str,
    admin: bool,
    known: bool,
    teams: Vec<String>,
    owners: &'a std::collections::BTreeMap<String, Vec<String>>,
    granted: Vec<String>,
}

impl Sight<'_> {
    /// The products of `deployed` the caller sees.
    pub(crate) fn visible<'d>(
        &self,
        deployed: &'d [(mesh_catalog::ProductRecord, ProductDescriptor)],
    ) -> impl Iterator<Item = &'d (mesh_catalog::ProductRecord, ProductDescriptor)> {
        deployed.iter().filter(|(r, p)| self.sees(r, p))
    }

    pub(crate) fn sees(&self, r: &mesh_catalog::ProductRecord, p: &ProductDescriptor) -> bool {
        if self.admin {
            return true;
        }
        let access = p.access.as_ref();
        match access.map_or("discoverable", |a| a.visibility.as_str()) {
            "public" => true,
            "discoverable" => self.known,
            _ => {
                let of = r.line_of.as_ref().unwrap_or(&r.product);
                let approvers = access.map(|a| a.approvers.as_slice()).unwrap_or_default();
                let teams = &self.teams;
                self.owners
                    .get(r.product.domain.as_str())
                    .is_some_and(|o| teams.iter().any(|t| o.contains(t)))
                    || teams.iter().any(|t| approvers.contains(t))
                    || approvers.iter().any(|a| a == self.caller)
                    || self.granted.contains(&of.to_string())
                    || self.granted.contains(&r.product.to_string())
            }
        }
    }
}

/// The columns one column's lineage comes from, one step up; a column of
/// a product the reader may not see is named `(hidden)`.
fn column_sources(
    graph: &crate::lineage::LineageGraph,
    id: &crate::lineage::ColumnId,
    seen: &BTreeSet<String>,
) -> Vec<Value> {
    graph
        .upstream_of(id)
        .iter()
        .map(|l| {
            let visible = graph
                .owner(&l.from.dataset)
                .is_some_and(|o| seen.contains(o));
            json!({
                "column": if visible { l.from.to_string() } else { "(hidden)".to_string() },
                "type": l.edge_type.as_str(),
                "subtype": l.subtype.as_str(),
                "masking": l.masking,
            })
        })
        .collect()
}

/// A `<domain>.<output>.<column>` address, or `(hidden)` when the reader
/// may not see the product behind it.
fn visible_column(
    graph: &crate::lineage::LineageGraph,
    address: &str,
    seen: &BTreeSet<String>,
) -> String {
    let mut parts = address.splitn(3, '.');
    let dataset = match (parts.next(), parts.next()) {
        (Some(domain), Some(output)) => crate::lineage::Dataset::output(domain, output),
        _ => return "(hidden)".to_string(),
    };
    match graph.owner(&dataset) {
        Some(owner) if seen.contains(owner) => address.to_string(),
        _ => "(hidden)".to_string(),
    }
}
