//! An opened mesh project: its settings, catalog and storage root, the
//! deployed products, lifecycle commands and name resolution. Use cases
//! live in their own modules (`deploy.rs`, `run.rs`, `statement.rs`, …).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use mesh_catalog::{
    CatalogStore, OutputRecord, ProductRecord, SqlCatalog, line_name, line_output, matching_line,
};
use mesh_query::lineage::ProductLineage;
use mesh_query::plan::UpstreamSchemas;
use mesh_spec::diagnostic::did_you_mean;
use mesh_spec::project::{self, ProjectConfig};
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
    /// The catalog's URL, SQLite paths absolute (it may hold a password
    /// from the environment: never show it).
    pub(crate) catalog_url: String,
    /// The same catalog as [`Self::catalog`], for what only the SQL
    /// implementation does (`mesh migrate` copies it).
    pub(crate) sql_catalog: Arc<SqlCatalog>,
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

/// The storage root a `storage:` setting names: a URL as written, a path
/// relative to the project, or the state directory's `tables` by default.
pub(crate) fn storage_root_of(storage: Option<&str>, root: &Path, state_dir: &Path) -> String {
    match storage {
        Some(s) if s.contains("://") => s.trim_end_matches('/').to_string(),
        Some(s) => root.join(s).display().to_string(),
        None => state_dir.join("tables").display().to_string(),
    }
}

/// The catalog URL a `catalog:` setting names, a SQLite path made
/// absolute (relative paths are the project's), the state directory's
/// `catalog.db` by default.
pub(crate) fn catalog_url_of(catalog: Option<&str>, root: &Path, state_dir: &Path) -> String {
    match catalog {
        None => format!("sqlite://{}", state_dir.join("catalog.db").display()),
        Some(url) => match url.strip_prefix("sqlite://") {
            Some(path) => format!("sqlite://{}", root.join(path).display()),
            None => url.to_string(),
        },
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
pub(crate) fn sound_products(
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
        for backend in mesh_spec::backends::Backend::ALL {
            let var = backend.env();
            let Some(url) = std::env::var(var).ok().filter(|u| !u.is_empty()) else {
                continue;
            };
            if let Some(message) = backend.problem(&url) {
                return Err(ServiceError::Invalid {
                    diagnostics: vec![Diagnostic::error(
                        "backend-url",
                        format!("{var}: {message}"),
                    )],
                });
            }
            *config.backend_mut(backend) = Some(url);
        }
        std::fs::create_dir_all(&config.state_dir).map_err(state_err(&config.state_dir))?;
        probe_writable(&config.state_dir)?;
        let storage_root = storage_root_of(config.storage.as_deref(), &root, &config.state_dir);
        // S3 settings apply to the storage root and to a root `mesh
        // migrate` moves the tables to.
        if storage_root.starts_with("s3://") || config.s3 != mesh_spec::project::S3Config::default()
        {
            let s3 = &config.s3;
            mesh_storage::s3::configure(mesh_storage::s3::S3Settings {
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                path_style: s3.path_style,
                allow_http: s3
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
            });
        }
        let catalog_url = catalog_url_of(config.catalog.as_deref(), &root, &config.state_dir);
        if let Some(path) = catalog_url.strip_prefix("sqlite://")
            && let Some(dir) = Path::new(path).parent()
        {
            std::fs::create_dir_all(dir).map_err(state_err(dir))?;
        }
        // Connected at its first statement: a command that reads no
        // catalog (a statement naming no table) never opens it.
        let sql_catalog = Arc::new(SqlCatalog::lazily_under(
            &catalog_url,
            &root,
            &storage_root,
        )?);
        Ok(Mesh {
            root,
            catalog: sql_catalog.clone(),
            sql_catalog,
            catalog_url,
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

    /// Connects the catalog now; otherwise it connects at its first
    /// statement. Long-running processes (`mesh serve`, `mesh scheduler`)
    /// call it at start, to fail there, naming the catalog, when it is out
    /// of reach.
    pub async fn reach_catalog(&self) -> Result<()> {
        Ok(self.sql_catalog.reach().await?)
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
        self.policies_of(sources, digest)
    }

    /// The policy set this process compiled from files of `digest`, if any.
    pub(crate) fn compiled(&self, digest: &str) -> Option<Arc<mesh_policy::PolicySet>> {
        let cache = self.policy_cache.lock().ok()?;
        let (seen, set) = cache.as_ref()?;
        (seen == digest).then(|| set.clone())
    }

    /// [`Mesh::policies`] for sources already read, whose digest is `digest`.
    pub(crate) fn policies_of(
        &self,
        sources: mesh_policy::PolicySources,
        digest: String,
    ) -> Result<Arc<mesh_policy::PolicySet>> {
        if let Some(set) = self.compiled(&digest) {
            return Ok(set);
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
pub(crate) fn major_line(head: &ProductRecord, major: u64, by: &str) -> Result<ProductRecord> {
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
