//! An opened mesh project and its use cases.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use mesh_catalog::{
    CatalogStore, ColumnRecord, DeployOutcome, OutputRecord, ProductRecord, SqliteCatalog,
    line_name, line_output, matching_line,
};
use mesh_query::lineage::ProductLineage;
use mesh_query::plan::{UpstreamSchemas, check_product_sql_lineage};
use mesh_spec::diagnostic::did_you_mean;
use mesh_spec::project::{self, ProjectConfig};
use mesh_spec::sql::sql_files;
use mesh_spec::validate::{Deployed, validate};
use mesh_spec::{Diagnostic, ProductDescriptor, ProductRef};

use crate::access::Caller;

use crate::error::{Result, ServiceError};

/// An opened mesh: its project folder, settings and catalog.
#[derive(Debug, Clone)]
pub struct Mesh {
    pub root: PathBuf,
    pub config: ProjectConfig,
    pub catalog: Arc<dyn CatalogStore>,
    /// Where output tables live: a URL or an absolute path.
    pub storage_root: String,
    /// The parsed policies and the digest of the files they came from;
    /// reused while the files are unchanged.
    policy_cache: Arc<std::sync::Mutex<Option<CachedPolicies>>>,
    /// Deployed descriptors parsed for access decisions.
    pub(crate) descriptors: Arc<crate::access::DescriptorCache>,
    /// What statements may use (memory, time).
    pub(crate) limits: Arc<crate::limits::Limits>,
    /// Tokens whose secret this process has verified (see `authenticate`).
    pub(crate) verified: Arc<crate::identity::VerifiedTokens>,
    /// Failed token checks per principal and per source (see `throttle`).
    pub(crate) throttle: Arc<crate::throttle::Throttles>,
    /// `deployed()`, parsed, with the catalog generation it was read at.
    deployed_cache: Arc<std::sync::Mutex<Option<DeployedAt>>>,
    /// Product pages (`catalog_show`) by product and visible set, with
    /// the generations they were built at.
    pub(crate) show_cache: Arc<crate::discover::ShowCache>,
    /// What access decisions read, with the generations it was read at.
    pub(crate) snapshot_cache: Arc<crate::snapshot::SnapshotCache>,
    /// The deployed products' column lineage, per deployment generation.
    pub(crate) lineage_cache: Arc<crate::lineage::LineageCache>,
    /// Where OpenLineage run events go.
    pub(crate) openlineage: Arc<crate::openlineage::Emitter>,
}

/// The parsed deployed products and the generation they were read at.
type DeployedAt = (i64, Arc<Vec<(ProductRecord, ProductDescriptor)>>);

/// What validation found: the project's products, every diagnostic, and
/// the column lineage derived from the SQL that planned.
pub(crate) struct Validated {
    pub products: Vec<ProductDescriptor>,
    pub diagnostics: Vec<Diagnostic>,
    pub lineage: BTreeMap<ProductRef, ProductLineage>,
    /// The mesh's lineage as it will be once the project is deployed.
    pub graph: crate::lineage::LineageGraph,
}

/// Parsed policies with the digest of the files they came from.
type CachedPolicies = (String, Arc<mesh_policy::PolicySet>);

fn state_err(path: &Path) -> impl Fn(std::io::Error) -> ServiceError + '_ {
    move |source| ServiceError::State {
        path: path.display().to_string(),
        source,
    }
}

/// Fails early, with the OS's reason, when the state directory cannot be
/// written (read-only, no permission, no space), instead of failing later
/// inside SQLite or a Delta write.
fn probe_writable(dir: &Path) -> Result<()> {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    std::fs::write(&probe, b"meshwork").map_err(state_err(dir))?;
    std::fs::remove_file(&probe).map_err(state_err(dir))
}

/// The products with no error in their own file and none upstream of
/// them (transitively, among the project's products, or a product whose
/// descriptor does not load: `unreadable`). None when an error has no
/// file: it may concern any product.
fn sound_products(
    products: &[ProductDescriptor],
    diagnostics: &[Diagnostic],
    unreadable: &[String],
) -> BTreeSet<ProductRef> {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    if errors.iter().any(|d| d.location.is_none()) {
        return BTreeSet::new();
    }
    let broken_files: BTreeSet<&Path> = errors
        .iter()
        .filter_map(|d| d.location.as_ref().map(|l| l.file.path.as_path()))
        .collect();
    let mut broken: BTreeSet<ProductRef> = products
        .iter()
        .filter(|p| broken_files.contains(p.file.path.as_path()))
        .map(ProductDescriptor::product_ref)
        .collect();
    loop {
        let more: Vec<ProductRef> = products
            .iter()
            .filter(|p| !broken.contains(&p.product_ref()))
            .filter(|p| {
                p.inputs.iter().any(|i| match &i.kind {
                    mesh_spec::InputKind::Product { product, .. } => {
                        broken.contains(&product.value)
                            || unreadable.contains(&product.value.to_string())
                    }
                    mesh_spec::InputKind::Source(_) => false,
                })
            })
            .map(ProductDescriptor::product_ref)
            .collect();
        if more.is_empty() {
            break;
        }
        broken.extend(more);
    }
    products
        .iter()
        .map(ProductDescriptor::product_ref)
        .filter(|p| !broken.contains(p))
        .collect()
}

impl Mesh {
    /// Opens the project at `dir` (or the closest parent holding `mesh.yaml`).
    pub async fn open(dir: &Path) -> Result<Self> {
        let root = project::find_root(dir)?;
        let (mut config, diagnostics) = project::load_config_only(&root)?;
        if diagnostics.iter().any(Diagnostic::is_error) {
            return Err(ServiceError::Invalid { diagnostics });
        }
        // The environment names the backends over mesh.yaml.
        for (var, problem) in [
            (
                mesh_spec::backends::CATALOG_ENV,
                mesh_spec::backends::catalog_problem as fn(&str) -> Option<String>,
            ),
            (
                mesh_spec::backends::STORAGE_ENV,
                mesh_spec::backends::storage_problem,
            ),
        ] {
            let Some(url) = std::env::var(var).ok().filter(|u| !u.is_empty()) else {
                continue;
            };
            if let Some(message) = problem(&url) {
                return Err(ServiceError::Invalid {
                    diagnostics: vec![Diagnostic::error(
                        "backend-url",
                        format!("{var}: {message}"),
                    )],
                });
            }
            if var == mesh_spec::backends::CATALOG_ENV {
                config.catalog = Some(url);
            } else {
                config.storage = Some(url);
            }
        }
        std::fs::create_dir_all(&config.state_dir).map_err(state_err(&config.state_dir))?;
        probe_writable(&config.state_dir)?;
        let storage_root = match &config.storage {
            Some(s) if s.contains("://") => s.trim_end_matches('/').to_string(),
            Some(s) => root.join(s).display().to_string(),
            None => config.state_dir.join("tables").display().to_string(),
        };
        let catalog: Arc<dyn CatalogStore> = match &config.catalog {
            None => Arc::new(
                SqliteCatalog::open_under(
                    &config.state_dir.join("catalog.db"),
                    &root,
                    &storage_root,
                )
                .await?,
            ),
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) => {
                    let path = root.join(path);
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).map_err(state_err(dir))?;
                    }
                    Arc::new(SqliteCatalog::open_under(&path, &root, &storage_root).await?)
                }
                None => {
                    return Err(
                        mesh_catalog::CatalogError::UnsupportedUrl { url: url.clone() }.into(),
                    );
                }
            },
        };
        Ok(Mesh {
            root,
            catalog,
            storage_root,
            policy_cache: Default::default(),
            limits: Default::default(),
            throttle: Default::default(),
            descriptors: Default::default(),
            verified: Default::default(),
            deployed_cache: Default::default(),
            show_cache: Default::default(),
            snapshot_cache: Default::default(),
            lineage_cache: Default::default(),
            openlineage: Arc::new(crate::openlineage::Emitter::new(
                &config.name,
                &config.state_dir,
            )),
            config,
        })
    }

    /// The table location of an output.
    pub fn location(&self, p: &ProductRef, output: &str) -> String {
        format!("{}/{}/{}/{}", self.storage_root, p.domain, p.name, output)
    }

    /// The table location of an output at a major version: majors from 2
    /// on get their own tables, so an older major can live next to them.
    pub fn location_at(&self, p: &ProductRef, major: u64, output: &str) -> String {
        if major <= 1 {
            self.location(p, output)
        } else {
            format!(
                "{}/{}/{}/v{major}/{}",
                self.storage_root, p.domain, p.name, output
            )
        }
    }

    /// Reads every descriptor of the project.
    pub fn load_project(&self) -> Result<(Vec<ProductDescriptor>, Vec<Diagnostic>)> {
        let (project, diagnostics) = project::load(&self.root)?;
        Ok((project.products, diagnostics))
    }

    /// Every check: syntax, structure, references, cycles, the deploy-time
    /// policy rules, SQL and contracts.
    pub async fn validate(&self) -> Result<(Vec<ProductDescriptor>, Vec<Diagnostic>)> {
        let v = self.validate_full().await?;
        Ok((v.products, v.diagnostics))
    }

    /// [`Mesh::validate`], with the column lineage derived from the plans
    /// it checked.
    pub(crate) async fn validate_full(&self) -> Result<Validated> {
        let (products, mut diagnostics) = self.load_project()?;
        let generation = self.catalog.deployment_generation().await?;
        let deployed_parsed = self.deployed_shared(generation).await?;
        let deployed_records: Vec<ProductRecord> =
            deployed_parsed.iter().map(|(r, _)| r.clone()).collect();
        let local: BTreeSet<ProductRef> = products
            .iter()
            .map(ProductDescriptor::product_ref)
            .collect();
        let deployed: Deployed = deployed_records
            .iter()
            .filter(|r| !local.contains(&r.product))
            .map(|r| {
                (
                    r.product.clone(),
                    r.outputs.iter().map(|o| o.output.clone()).collect(),
                )
            })
            .collect();
        // A descriptor that does not load is reported where it breaks; its
        // consumers are not also told that it does not exist.
        let unreadable: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .filter_map(|d| d.location.as_ref())
            .filter_map(|l| l.file.path.strip_prefix(&self.root).ok())
            .filter_map(|rel| {
                let parts: Vec<_> = rel.iter().filter_map(|c| c.to_str()).collect();
                match parts.as_slice() {
                    [domain, name, _file] => Some(format!("{domain}/{name}")),
                    _ => None,
                }
            })
            .collect();
        diagnostics.extend(validate(&products, &deployed).into_iter().filter(|d| {
            d.code != "unknown-product"
                || !unreadable
                    .iter()
                    .any(|u| d.message.contains(&format!("reads product `{u}`,")))
        }));
        diagnostics.extend(crate::lifecycle::check(&products, &deployed_records));
        // Policies that do not load are an error here too, never a pass.
        let policies = self.policies()?;
        // The SQL of every product that is sound, and reads only sound
        // products, is planned even when other files have errors: one
        // broken descriptor hides nothing else.
        let sound = sound_products(&products, &diagnostics, &unreadable);
        let upstream = Upstream {
            local: &products,
            deployed: &deployed_records,
        };
        let mut lineage = BTreeMap::new();
        for p in products.iter().filter(|p| sound.contains(&p.product_ref())) {
            let (found, derived) = check_product_sql_lineage(p, &upstream).await;
            diagnostics.extend(found);
            if let Some(l) = derived {
                lineage.insert(p.product_ref(), l);
            }
        }
        // Classifications follow the lineage (docs/lineage.md).
        let started = std::time::Instant::now();
        // Stored lineage of the deployed products the project does not
        // replace (other repositories' products, older majors' lines).
        let replaced: BTreeSet<ProductRef> = products
            .iter()
            .map(ProductDescriptor::product_ref)
            .collect();
        let current = crate::lineage::lineage_of(&self.catalog, &deployed_parsed, |r| {
            r.line_of.is_some() || !replaced.contains(&r.product)
        })
        .await?;
        let graph =
            crate::lineage::check::candidate_graph(&deployed_parsed, &current, &products, &lineage);
        // Only products whose lineage was derived: one whose SQL does not
        // plan has that error already.
        let derived: Vec<&ProductDescriptor> = products
            .iter()
            .filter(|p| lineage.contains_key(&p.product_ref()))
            .collect();
        diagnostics.extend(crate::lineage::class_diagnostics(&derived, &graph));
        crate::lineage::count(started);
        // Deploy-time rules (policies/*.rego, package mesh.deploy), with
        // each column's derived classification.
        for p in &products {
            let columns = crate::lineage::policy_columns(p, &graph);
            diagnostics.extend(policies.check_descriptor_with(p, columns)?);
        }
        crate::lineage::report();
        Ok(Validated {
            products,
            diagnostics,
            lineage,
            graph,
        })
    }

    /// Validates, checks the contract gate, then registers or updates every
    /// product atomically. With `allow_breaking`, a breaking change without
    /// a major version bump goes ahead and the override is recorded.
    pub async fn deploy(
        &self,
        by: &str,
        allow_breaking: bool,
    ) -> Result<(DeployOutcome, Vec<Diagnostic>)> {
        // Policies that do not load block the deploy: governance is never
        // skipped because a rule file is broken.
        let policies = self.policies()?;
        self.audit_policy_change(by, &policies).await?;
        let Validated {
            products,
            diagnostics,
            lineage,
            graph,
        } = self.validate_full().await?;
        if diagnostics.iter().any(Diagnostic::is_error) {
            self.audit_policy_refusals(by, &products, &diagnostics)
                .await?;
            return Err(ServiceError::Invalid { diagnostics });
        }
        let deployed = self.deployed().await?;
        let refused = crate::lifecycle::new_consumers_of_deprecated(&products, &deployed);
        if !refused.is_empty() {
            return Err(ServiceError::Invalid {
                diagnostics: refused,
            });
        }
        let plans = self.plan_products(&products, &deployed).await?;
        let overrides = crate::plan::gate(&plans, by, allow_breaking)?;
        let heads: BTreeMap<&ProductRef, &ProductRecord> = deployed
            .iter()
            .filter(|(r, _)| r.line_of.is_none())
            .map(|(r, _)| (&r.product, r))
            .collect();
        let mut records = Vec::with_capacity(products.len());
        for p in &products {
            let sql_texts = sql_files(p).map_err(|d| ServiceError::Invalid {
                diagnostics: vec![d],
            })?;
            let r = p.product_ref();
            let major = p.version.value.major;
            let previous = heads.get(&r).copied();
            let previous_major = previous
                .and_then(|h| semver::Version::parse(&h.version).ok())
                .map(|v| v.major);
            // A new major keeps the old one alive as its own line.
            // (0.x has no stable major to keep.)
            if let (Some(old), Some(old_major)) = (previous, previous_major)
                && old_major >= 1
                && old_major < major
            {
                records.push(major_line(old, old_major, by)?);
            }
            let location = |output: &str| match previous {
                Some(old) if previous_major == Some(major) => old
                    .outputs
                    .iter()
                    .find(|o| o.output.as_str() == output)
                    .map(|o| o.location.clone())
                    .unwrap_or_else(|| self.location_at(&r, major, output)),
                _ => self.location_at(&r, major, output),
            };
            records.push(ProductRecord {
                outputs: p
                    .outputs
                    .iter()
                    .map(|o| OutputRecord {
                        domain: p.domain.value.clone(),
                        output: o.name.value.clone(),
                        product: r.clone(),
                        location: location(o.name.as_str()),
                        columns: o
                            .columns
                            .iter()
                            .map(|c| ColumnRecord {
                                name: c.name.to_string(),
                                ty: c.ty.to_string(),
                                nullable: c.nullable,
                            })
                            .collect(),
                    })
                    .collect(),
                product: r,
                version: p.version.to_string(),
                status: p.status.as_str().to_string(),
                owner: p.owner.value.clone(),
                descriptor_path: p.file.path.display().to_string(),
                descriptor: p.file.text.to_string(),
                sql_texts,
                deployed_at: chrono::Utc::now(),
                deployed_by: by.to_string(),
                line_of: None,
                sunset: None,
            });
        }
        self.record_classes(&products, &deployed).await?;
        let outcome = self.catalog.deploy(by, records, overrides).await?;
        // After the deploy commits: a version's lineage describes what is
        // deployed under it. Not stored, it is derived again when read.
        self.record_lineage(&products, &lineage).await?;
        let entries: Vec<mesh_catalog::AuditEntry> =
            [("created", &outcome.created), ("updated", &outcome.updated)]
                .into_iter()
                .flat_map(|(what, products)| products.iter().map(move |p| (what, p)))
                .map(|(what, p)| {
                    let over = if outcome.overridden.contains(p) {
                        " over the contract gate (--allow-breaking)"
                    } else {
                        ""
                    };
                    mesh_catalog::AuditEntry::new(
                by,
                "deploy",
                "done",
                format!("{what}{over}"),
                serde_json::json!({"deployment": outcome.deployment.as_ref().map(|d| d.0.clone())}),
            )
            .on(p)
                })
                .collect();
        let mut entries = entries;
        entries.extend(crate::lineage::declassify_audit(
            by, &products, &graph, &outcome,
        ));
        self.catalog.append_audit(&entries).await?;
        crate::lineage::report();
        Ok((outcome, diagnostics))
    }

    /// Records one `deploy` entry, decision `denied`, for each product the
    /// deploy-time rules refuse, with every violation and where it is.
    async fn audit_policy_refusals(
        &self,
        by: &str,
        products: &[ProductDescriptor],
        diagnostics: &[Diagnostic],
    ) -> Result<()> {
        let mut entries = Vec::new();
        for p in products {
            let refused: Vec<&Diagnostic> = diagnostics
                .iter()
                .filter(|d| d.is_error() && d.code == "policy")
                .filter(|d| {
                    d.location
                        .as_ref()
                        .is_some_and(|l| l.file.path == p.file.path)
                })
                .collect();
            if refused.is_empty() {
                continue;
            }
            let violations: Vec<serde_json::Value> = refused
                .iter()
                .map(|d| serde_json::json!({"message": d.message, "at": d.position()}))
                .collect();
            entries.push(
                mesh_catalog::AuditEntry::new(
                    by,
                    "deploy",
                    "deny",
                    format!("{} deploy-time policy violation(s)", refused.len()),
                    serde_json::json!({"violations": violations}),
                )
                .on(p.product_ref()),
            );
        }
        if !entries.is_empty() {
            self.catalog.append_audit(&entries).await?;
        }
        Ok(())
    }

    /// Records a `policy.change` audit entry when the policy files differ
    /// from those seen at the previous deploy (compared by digest).
    async fn audit_policy_change(&self, by: &str, policies: &mesh_policy::PolicySet) -> Result<()> {
        let digest = policies.digest();
        let last = self
            .catalog
            .audit(&mesh_catalog::AuditFilter {
                action: Some("policy.change".into()),
                limit: Some(1),
                ..Default::default()
            })
            .await?;
        if last
            .first()
            .and_then(|e| e.detail.get("digest"))
            .and_then(|d| d.as_str())
            == Some(digest.as_str())
        {
            return Ok(());
        }
        self.catalog
            .append_audit(&[mesh_catalog::AuditEntry::new(
                by,
                "policy.change",
                "done",
                format!(
                    "{} policy file(s) in force from this deploy",
                    policies.file_count()
                ),
                serde_json::json!({"digest": digest, "files": policies.files()}),
            )])
            .await?;
        Ok(())
    }

    /// The deployed products, parsed back from their stored descriptors.
    ///
    /// Parsed once per change: the catalog's deployment generation moves
    /// with every change to products or outputs (by any process), and the
    /// parsed list is reused while it stands still. The generation is read
    /// before the products, so a change racing the read is seen on the
    /// next call.
    pub async fn deployed(&self) -> Result<Vec<(ProductRecord, ProductDescriptor)>> {
        let generation = self.catalog.deployment_generation().await?;
        self.deployed_at(generation).await
    }

    /// [`Mesh::deployed`] for a deployment generation just read.
    pub(crate) async fn deployed_at(
        &self,
        generation: i64,
    ) -> Result<Vec<(ProductRecord, ProductDescriptor)>> {
        Ok(self.deployed_shared(generation).await?.as_ref().clone())
    }

    /// [`Mesh::deployed_at`], shared rather than copied.
    pub(crate) async fn deployed_shared(
        &self,
        generation: i64,
    ) -> Result<crate::snapshot::Deployed> {
        if let Ok(cached) = self.deployed_cache.lock()
            && let Some((g, list)) = cached.as_ref()
            && *g == generation
        {
            return Ok(list.clone());
        }
        let list = Arc::new(self.parse_deployed(generation).await?);
        if let Ok(mut cached) = self.deployed_cache.lock() {
            *cached = Some((generation, list.clone()));
        }
        Ok(list)
    }

    /// Deprecates an older major kept alive (`sales/orders_v1`), with an
    /// optional sunset date: its readers are warned on query and in
    /// `mesh validate`, and new consumers of it are refused at deploy. The
    /// newest major is deprecated in its descriptor instead (`status:
    /// deprecated`, `sunset:`), which stays the one source for it.
    pub async fn deprecate(
        &self,
        name: &str,
        sunset: Option<chrono::NaiveDate>,
        by: &str,
    ) -> Result<ProductRef> {
        let r = self.resolve_deployed(name).await?;
        let records = self.catalog.products().await?;
        let Some(record) = records.iter().find(|rec| rec.product == r) else {
            return Err(ServiceError::ProductNotFound {
                product: r.to_string(),
                hint: None,
            });
        };
        let refuse = |reason: String, hint: String| ServiceError::Lifecycle {
            action: "deprecate",
            product: r.to_string(),
            reason,
            hint,
        };
        if record.line_of.is_none() {
            return Err(refuse(
                "it is the newest major, whose status its descriptor owns".into(),
                format!(
                    "set `status: deprecated` (and `sunset: YYYY-MM-DD`) in {} and deploy",
                    record.descriptor_path
                ),
            ));
        }
        if record.status == "retired" {
            return Err(refuse(
                "it is already retired".into(),
                "a retired product is not served; there is nothing to deprecate".into(),
            ));
        }
        self.catalog.deprecate(&r, sunset, by).await?;
        Ok(r)
    }

    /// Retires a deployed product: it is no longer built or served. This is
    /// how an older major kept alive (`sales/orders_v1`) is ended; a
    /// product with a descriptor can also be retired with `status: retired`.
    /// Refused while deployed products still read it.
    pub async fn retire(&self, name: &str, by: &str) -> Result<ProductRef> {
        let r = self.resolve_deployed(name).await?;
        let deployed = self.deployed().await?;
        let records: Vec<ProductRecord> = deployed.iter().map(|(r, _)| r.clone()).collect();
        let readers: Vec<String> = deployed
            .iter()
            .filter(|(rec, p)| {
                rec.status != "retired"
                    && p.inputs.iter().any(|i| match &i.kind {
                        mesh_spec::InputKind::Product {
                            product, version, ..
                        } => {
                            let reads = matching_line(
                                &records,
                                &product.value,
                                version.as_ref().map(|v| &v.value),
                            )
                            .map_or(&product.value, |l| &l.product);
                            *reads == r
                        }
                        mesh_spec::InputKind::Source(_) => false,
                    })
            })
            .map(|(rec, _)| rec.product.to_string())
            .collect();
        if !readers.is_empty() {
            return Err(ServiceError::StillRead {
                product: r.to_string(),
                readers,
            });
        }
        self.catalog.retire(&r, by).await?;
        Ok(r)
    }

    /// Resolves a product reference typed by a user among the deployed ones.
    pub async fn resolve_deployed(&self, name: &str) -> Result<ProductRef> {
        let known: Vec<ProductRef> = self
            .catalog
            .product_statuses()
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        self.resolve(name, &known)
    }

    /// Resolves a product reference typed by a user.
    pub fn resolve(&self, name: &str, known: &[ProductRef]) -> Result<ProductRef> {
        let found = ProductRef::parse(name).ok().filter(|r| known.contains(r));
        found.ok_or_else(|| {
            let names: Vec<String> = known.iter().map(ToString::to_string).collect();
            let hint = did_you_mean(name, names.iter().map(String::as_str))
                .map(|m| format!("did you mean `{m}`?"))
                .or_else(|| {
                    Some("products are named `<domain>/<product>`; see `mesh catalog list`".into())
                });
            ServiceError::ProductNotFound {
                product: name.to_string(),
                hint,
            }
        })
    }

    /// How many runs the catalog records, by status (for metrics).
    pub async fn run_counts(&self) -> Result<Vec<(String, u64)>> {
        Ok(self.catalog.run_counts().await?)
    }

    /// Resolves a product name among those `caller` may see; others are
    /// reported exactly like products that do not exist.
    pub async fn resolve_visible(&self, caller: &Caller, name: &str) -> Result<ProductRef> {
        let known: Vec<ProductRef> = self
            .visible_deployed(caller)
            .await?
            .into_iter()
            .map(|(r, _)| r.product)
            .collect();
        self.resolve(name, &known)
    }

    /// The mesh with other statement limits (a server's settings).
    pub fn with_limits(mut self, limits: crate::limits::Limits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// The statement limits in force.
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.limits
    }

    /// The mesh's policies, loaded from `policies/` and each domain's
    /// `policies/`. An error (a syntax error, say) is returned, never an
    /// empty policy set: a broken policy must not allow everything.
    ///
    /// The files are read on every call, so a change takes effect on the
    /// next request; they are parsed again only when their digest changed.
    pub fn policies(&self) -> Result<Arc<mesh_policy::PolicySet>> {
        let sources = mesh_policy::PolicySources::read(&self.root)?;
        let digest = sources.digest();
        if let Ok(cache) = self.policy_cache.lock()
            && let Some((seen, set)) = cache.as_ref()
            && *seen == digest
        {
            return Ok(set.clone());
        }
        let set = Arc::new(sources.build()?);
        if let Ok(mut cache) = self.policy_cache.lock() {
            *cache = Some((digest, set.clone()));
        }
        Ok(set)
    }
}

/// Declared schemas of upstream outputs: local descriptors first, then the catalog.
pub(crate) struct Upstream<'a> {
    pub local: &'a [ProductDescriptor],
    pub deployed: &'a [ProductRecord],
}

impl UpstreamSchemas for Upstream<'_> {
    fn schema(
        &self,
        product: &ProductRef,
        output: Option<&str>,
        version: Option<&semver::VersionReq>,
    ) -> Option<SchemaRef> {
        let local = self.local.iter().find(|p| &p.product_ref() == product);
        let local_matches =
            local.is_some_and(|p| version.is_none_or(|req| req.matches(&p.version.value)));
        if !local_matches {
            if let Some(line) = matching_line(self.deployed, product, version) {
                return record_schema(line, output.map(|o| line_output(o, line)).as_deref());
            }
            // The deployed major the requirement selects becomes a line
            // when the local new major is deployed.
            let head = self.deployed.iter().find(|r| &r.product == product);
            if let (Some(h), Some(req)) = (head, version)
                && semver::Version::parse(&h.version).is_ok_and(|v| req.matches(&v))
            {
                return record_schema(h, output);
            }
        }
        if let Some(p) = local {
            let o = match output {
                Some(name) => p.output(name)?,
                None => p.outputs.first()?,
            };
            return Some(mesh_query::schema::arrow_schema(&o.columns));
        }
        let r = self.deployed.iter().find(|r| &r.product == product)?;
        record_schema(r, output)
    }
}

/// The declared schema of a deployed output.
fn record_schema(r: &ProductRecord, output: Option<&str>) -> Option<SchemaRef> {
    let o = match output {
        Some(name) => r.outputs.iter().find(|o| o.output.as_str() == name)?,
        None => r.outputs.first()?,
    };
    Some(mesh_query::schema::output_schema(o))
}

/// The record that keeps major `major` of `head` alive next to a new major:
/// the same definition and tables, under `<name>_v<major>` names.
fn major_line(head: &ProductRecord, major: u64, by: &str) -> Result<ProductRecord> {
    let invalid = |e: mesh_spec::name::NameError| {
        ServiceError::Execution(format!(
            "cannot keep major {major} of {} alive: {e}",
            head.product
        ))
    };
    let name = mesh_spec::ProductName::parse(&line_name(head.product.name.as_str(), major))
        .map_err(invalid)?;
    let line = ProductRef::new(head.product.domain.clone(), name);
    let outputs = head
        .outputs
        .iter()
        .map(|o| {
            Ok(OutputRecord {
                output: mesh_spec::OutputName::parse(&line_name(o.output.as_str(), major))
                    .map_err(invalid)?,
                product: line.clone(),
                ..o.clone()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ProductRecord {
        product: line,
        outputs,
        deployed_at: chrono::Utc::now(),
        deployed_by: by.to_string(),
        line_of: Some(head.product.clone()),
        sunset: None,
        ..head.clone()
    })
}
