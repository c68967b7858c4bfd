//! The one catalog provider every query goes through.
//!
//! SQL names: `<domain>.<output>` reads the newest published version of an
//! output; `<domain>."<output>@<N>"` reads published table version `N`
//! (time travel); `<domain>."<output>@<X.Y.Z>"` reads the newest release of
//! product version X.Y.Z. Any output can also be read by its global
//! address, `"mesh://<domain>/<product>/<output>"`, with the same suffixes.
//!
//! The provider resolves names to Delta versions through the catalog's
//! publications, never through the newest Delta commit, so a commit that a
//! crash left unrecorded is never read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::parquet::transform_schema_to_view;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;
use mesh_catalog::{CatalogStore, OutputRecord};
use mesh_spec::name::parse_global_address;
use mesh_spec::{ColumnType, DomainName, OutputName, ProductRef};

use crate::error::QueryError;
use crate::guard::{AccessGuard, Read, check_allowed, secure_table};
use crate::rowgroups::{RowGroupTable, footer_statistics};
use crate::schema::arrow_schema_of;

/// The name of the catalog all products live in.
pub const CATALOG_NAME: &str = "mesh";
/// The schema for global addresses (`"mesh://…"`); the default schema.
pub const ADDRESS_SCHEMA: &str = "public";

/// Which version of an output a name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// The newest published version.
    Current,
    /// A published Delta table version (`@3`).
    Version(u64),
    /// The newest release of a product version (`@1.2.0`).
    Release(semver::Version),
}

/// Splits `orders@3` into (`orders`, `At::Version(3)`) and `orders@1.2.0`
/// into (`orders`, `At::Release(1.2.0)`).
pub fn split_version(name: &str) -> std::result::Result<(&str, At), QueryError> {
    let bad = || QueryError::BadVersionSuffix {
        name: name.to_string(),
    };
    match name.rsplit_once('@') {
        None => Ok((name, At::Current)),
        Some((base, v)) if v.contains('.') => {
            let version = semver::Version::parse(v).map_err(|_| bad())?;
            Ok((base, At::Release(version)))
        }
        Some((base, v)) => {
            let version = v.parse::<u64>().map_err(|_| bad())?;
            Ok((base, At::Version(version)))
        }
    }
}

/// How string and binary columns are read from Parquet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StringLayout {
    /// View types (`Utf8View`, `BinaryView`), as DataFusion reads Parquet
    /// by default: cheaper to decode, compare and group. For sessions that
    /// compute on or print the rows (CLI, Postgres, JSON).
    #[default]
    View,
    /// Classic offsets and bytes (`Utf8`, `Binary`): the layout Arrow IPC
    /// results travel in (see [`crate::encode::wire_schema`]), so rows
    /// streamed over Flight SQL or REST are sent without a cast.
    Classic,
}

/// Resolves outputs to table providers.
#[derive(Debug)]
pub struct Resolver {
    catalog: Arc<dyn CatalogStore>,
    runtime: Arc<RuntimeEnv>,
    strings: StringLayout,
}

impl Resolver {
    pub fn new(catalog: Arc<dyn CatalogStore>, runtime: Arc<RuntimeEnv>) -> Self {
        Resolver {
            catalog,
            runtime,
            strings: StringLayout::View,
        }
    }

    /// Reads string and binary columns of Meshwork's tables in `strings`.
    pub fn with_strings(mut self, strings: StringLayout) -> Self {
        self.strings = strings;
        self
    }

    /// A provider for `output` at `at`, and the product version its data
    /// was published under.
    ///
    /// An output that was never published reads as an empty table with its
    /// declared schema, so joins still plan.
    pub async fn provider(
        &self,
        output: &OutputRecord,
        at: At,
    ) -> std::result::Result<(Arc<dyn TableProvider>, Option<String>), QueryError> {
        let Some(publication) = self.publication(output, at).await? else {
            return Ok((empty_table(output)?, None));
        };
        let version = publication.product_version.clone();
        Ok((self.table(output, publication).await?, Some(version)))
    }

    /// The publication `at` names; `None` for the current version of an
    /// output never published.
    async fn publication(
        &self,
        output: &OutputRecord,
        at: At,
    ) -> std::result::Result<Option<mesh_catalog::Publication>, QueryError> {
        let mut publications = match &at {
            At::Current => self
                .catalog
                .current_publication(&output.domain, &output.output)
                .await?
                .into_iter()
                .collect::<Vec<_>>(),
            At::Version(_) | At::Release(_) => {
                self.catalog
                    .publications(&output.domain, &output.output)
                    .await?
            }
        };
        let publication = match &at {
            At::Current => match publications.into_iter().next() {
                Some(p) => p,
                None => return Ok(None),
            },
            // Publications are newest first: the first match is the newest
            // release of that product version.
            At::Release(v) => {
                let wanted = v.to_string();
                match publications
                    .iter()
                    .position(|p| p.product_version == wanted)
                {
                    Some(i) => publications.swap_remove(i),
                    None => {
                        let mut released: Vec<String> = Vec::new();
                        for p in publications.iter().rev() {
                            if !released.contains(&p.product_version) {
                                released.push(p.product_version.clone());
                            }
                        }
                        return Err(QueryError::ReleaseNotFound {
                            name: format!("{}.{}", output.domain, output.output),
                            version: wanted,
                            released,
                        });
                    }
                }
            }
            At::Version(v) => match publications
                .iter()
                .position(|p| p.table_version as u64 == *v)
            {
                Some(i) => publications.swap_remove(i),
                None => {
                    return Err(QueryError::VersionNotPublished {
                        name: format!("{}.{}", output.domain, output.output),
                        version: *v,
                        published: publications
                            .iter()
                            .map(|p| p.table_version as u64)
                            .collect(),
                    });
                }
            },
        };
        if !matches!(at, At::Current) {
            let expired = self
                .catalog
                .expired_versions(&output.domain, &output.output)
                .await?;
            if let Some(e) = expired
                .iter()
                .find(|e| e.table_version == publication.table_version)
            {
                let gone: Vec<i64> = expired.iter().map(|e| e.table_version).collect();
                return Err(QueryError::VersionExpired {
                    name: format!("{}.{}", output.domain, output.output),
                    version: publication.table_version as u64,
                    rule: e.rule.clone(),
                    expired_at: e.expired_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                    readable: self
                        .catalog
                        .publications(&output.domain, &output.output)
                        .await?
                        .iter()
                        .map(|p| p.table_version)
                        .filter(|v| !gone.contains(v))
                        .map(|v| v as u64)
                        .collect(),
                });
            }
        }
        Ok(Some(publication))
    }

    /// The table of one publication.
    async fn table(
        &self,
        output: &OutputRecord,
        publication: mesh_catalog::Publication,
    ) -> std::result::Result<Arc<dyn TableProvider>, QueryError> {
        let version = publication.table_version as u64;
        let url = mesh_storage::table_url(&output.location)?;
        // The catalog knows the files and columns of versions Meshwork
        // published, so tables are read without the Delta log, on local
        // disk and on S3 alike (its bucket's store registered once).
        mesh_storage::s3::register_store(&self.runtime, &url)?;
        if matches!(url.scheme(), "file" | "s3")
            && let (Some(files), Some(columns)) = (&publication.files, &publication.columns)
        {
            let root = url.as_str().trim_end_matches('/');
            let plain = mesh_storage::PlainFiles {
                schema: arrow_schema_of(columns.iter().map(|c| {
                    let ty: ColumnType = c.ty.parse().unwrap_or(ColumnType::String);
                    (c.name.as_str(), ty, c.nullable)
                })),
                files: files.iter().map(|f| format!("{root}/{f}")).collect(),
            };
            self.check_files(output, version, &plain.files).await?;
            return Ok(parquet_files(plain, self.strings, &self.runtime).await?);
        }
        // A compacted release's files are in the Delta version that
        // compacted it; the release keeps its own number.
        let delta_version = publication.read_version.map_or(version, |v| v as u64);
        let table = mesh_storage::open(&url, Some(delta_version)).await?;
        if let Some(plain) = mesh_storage::plain_files(&table)? {
            self.check_files(output, version, &plain.files).await?;
            return Ok(parquet_files(plain, self.strings, &self.runtime).await?);
        }
        let log_store = table.log_store();
        let store_url = log_store.root_url().clone();
        let object_store_url = datafusion::execution::object_store::ObjectStoreUrl::parse(
            &store_url[..url::Position::BeforePath],
        )?;
        if self.runtime.object_store(&object_store_url).is_err() {
            self.runtime.register_object_store(
                object_store_url.as_ref(),
                log_store.root_object_store(None),
            );
        }
        let provider = table.table_provider().await.map_err(|e| {
            QueryError::Storage(mesh_storage::StorageError::Delta {
                location: output.location.clone(),
                source: e.into(),
            })
        })?;
        Ok(RowGroupTable::wrap(provider))
    }
}

impl Resolver {
    /// Every file of a published version must be there. A listing table
    /// reads a path it cannot find as an empty folder, so a missing file
    /// would read as fewer rows, or none: it is an error instead, naming
    /// the file. Local files are checked with one `stat` each; files in
    /// an object store with a `HEAD` each, a few at a time.
    async fn check_files(
        &self,
        output: &OutputRecord,
        version: u64,
        files: &[String],
    ) -> std::result::Result<(), QueryError> {
        use futures::StreamExt;
        let pending: Vec<_> = files
            .iter()
            .map(|file| check_file(self.runtime.clone(), file.clone()))
            .collect();
        let mut checks = futures::stream::iter(pending).buffer_unordered(16);
        while let Some(checked) = checks.next().await {
            if let Err((file, problem)) = checked {
                return Err(QueryError::MissingData {
                    name: format!("{}.{}", output.domain, output.output),
                    product: output.product.to_string(),
                    version,
                    file,
                    problem,
                });
            }
        }
        Ok(())
    }
}

/// Whether `file` is there, or what is wrong with it.
async fn check_file(
    runtime: Arc<RuntimeEnv>,
    file: String,
) -> std::result::Result<(), (String, String)> {
    let url = match url::Url::parse(&file) {
        Ok(url) => url,
        Err(e) => return Err((file, format!("is not a URL: {e}"))),
    };
    if url.scheme() == "file" {
        let Ok(path) = url.to_file_path() else {
            return Err((file, "is not a local path".into()));
        };
        return match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err((file, "is not a file".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err((file, "is missing".into())),
            Err(e) => Err((file, format!("cannot be read: {e}"))),
        };
    }
    let store = datafusion::execution::object_store::ObjectStoreUrl::parse(
        &url[..url::Position::BeforePath],
    )
    .and_then(|at| runtime.object_store(at));
    let Ok(store) = store else {
        // The scan itself will fail to reach the store.
        return Ok(());
    };
    let location = match object_store::path::Path::from_url_path(url.path()) {
        Ok(l) => l,
        Err(e) => return Err((file, format!("is not a valid path: {e}"))),
    };
    match object_store::ObjectStoreExt::head(store.as_ref(), &location).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => Err((file, "is missing".into())),
        Err(e) => Err((file, format!("cannot be read: {e}"))),
    }
}

/// A table over exactly the Parquet files of a Delta version.
///
/// Tables Meshwork writes need nothing from the Delta log beyond the file
/// list (see [`mesh_storage::plain_files`]), so they are read with
/// DataFusion's own Parquet scan and its defaults: statistics pruning and
/// page index, without Parquet row-filter pushdown, which delta-rs always
/// turns on and which costs more than it saves on most analytical scans.
///
/// The table reports its footers' statistics (rows, column bounds), which
/// the join order reads (`joinorder`).
async fn parquet_files(
    plain: mesh_storage::PlainFiles,
    strings: StringLayout,
    runtime: &RuntimeEnv,
) -> Result<Arc<dyn TableProvider>> {
    let paths = plain
        .files
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<Result<Vec<_>>>()?;
    if paths.is_empty() {
        return Ok(Arc::new(MemTable::try_new(plain.schema, vec![vec![]])?));
    }
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    // Strings and binaries are read as view types, as DataFusion's own
    // Parquet reads do by default (`schema_force_view_types`), unless the
    // rows are bound for Arrow IPC.
    let schema = match strings {
        StringLayout::View => Arc::new(transform_schema_to_view(&plain.schema)),
        StringLayout::Classic => plain.schema,
    };
    let statistics = footer_statistics(runtime, &paths, &schema).await;
    let config = ListingTableConfig::new_with_multi_paths(paths)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(RowGroupTable::with_statistics(
        Arc::new(ListingTable::try_new(config)?),
        statistics,
    ))
}

fn empty_table(output: &OutputRecord) -> Result<Arc<dyn TableProvider>> {
    let schema = arrow_schema_of(output.columns.iter().map(|c| {
        let ty: ColumnType = c.ty.parse().unwrap_or(ColumnType::String);
        (c.name.as_str(), ty, c.nullable)
    }));
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}

fn df_err(e: QueryError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Product lifecycle as queries see it: retired products are not served,
/// deprecated ones are served with a warning.
#[derive(Debug, Default)]
pub struct Lifecycle {
    statuses: BTreeMap<ProductRef, String>,
    warnings: std::sync::Mutex<BTreeSet<String>>,
}

impl Lifecycle {
    fn status(&self, p: &ProductRef) -> &str {
        self.statuses.get(p).map_or("active", String::as_str)
    }

    fn served(&self, o: &OutputRecord) -> bool {
        self.status(&o.product) != "retired"
    }

    /// Refuses a retired product; notes a deprecated one.
    fn check(&self, o: &OutputRecord, name: &str) -> std::result::Result<(), QueryError> {
        match self.status(&o.product) {
            "retired" => Err(QueryError::Retired {
                name: name.to_string(),
                product: o.product.to_string(),
            }),
            "deprecated" => {
                if let Ok(mut w) = self.warnings.lock() {
                    w.insert(format!(
                        "`{name}` belongs to `{}`, which is deprecated; move to its successor before it is retired",
                        o.product
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Warnings gathered while planning, one per deprecated product read.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The `mesh` catalog: one schema per domain, plus `public` for global addresses.
/// Where every table resolution asks for an access decision (see `guard`).
pub struct Gate {
    guard: Arc<dyn AccessGuard>,
    /// Parses policy SQL (row filters, SQL masks); made on first use.
    parser: OnceLock<SessionContext>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("guard", &self.guard).finish()
    }
}

impl Gate {
    /// The table `output` at `at`, as the principal may read it.
    async fn table(
        &self,
        resolver: &Resolver,
        output: &OutputRecord,
        at: At,
        name: TableReference,
    ) -> std::result::Result<Arc<dyn TableProvider>, QueryError> {
        // The table is resolved first, so the decision knows the version
        // and the columns it reads; any resolution error is reported only
        // after the read is allowed, so it tells a denied caller nothing.
        let resolved = resolver.provider(output, at).await;
        let read = match &resolved {
            Ok((table, version)) => Read {
                product_version: version.clone(),
                columns: table
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
            },
            Err(_) => Read::current(output),
        };
        let decision = self.guard.decide(output, &read).await?;
        check_allowed(output, &decision)?;
        let (inner, _) = resolved?;
        if decision.masks.is_empty() && decision.row_filters.is_empty() {
            return Ok(inner);
        }
        let parser = self.parser.get_or_init(SessionContext::new);
        secure_table(inner, name, &decision, parser)
    }
}

#[derive(Debug)]
pub struct MeshCatalog {
    domains: BTreeMap<String, Arc<DomainSchema>>,
    addresses: Arc<AddressSchema>,
    lifecycle: Arc<Lifecycle>,
    /// Schemas a front end adds to its sessions (the Postgres server's
    /// `pg_catalog`); they can never shadow a domain.
    system: RwLock<BTreeMap<String, Arc<dyn SchemaProvider>>>,
}

impl MeshCatalog {
    /// Builds the catalog from the outputs the store lists now, keeping
    /// only those of `visible` products (all when `None`): a product the
    /// principal may not see does not exist in its session, so naming it
    /// fails exactly as naming a missing table does.
    pub async fn load(
        catalog: Arc<dyn CatalogStore>,
        runtime: Arc<RuntimeEnv>,
        guard: Arc<dyn AccessGuard>,
        strings: StringLayout,
        visible: Option<&BTreeSet<ProductRef>>,
    ) -> std::result::Result<Self, QueryError> {
        let resolver = Arc::new(Resolver::new(catalog.clone(), runtime).with_strings(strings));
        let gate = Arc::new(Gate {
            guard,
            parser: OnceLock::new(),
        });
        // Nothing visible: nothing to read from the catalog.
        let nothing = visible.is_some_and(BTreeSet::is_empty);
        let lifecycle = Arc::new(Lifecycle {
            statuses: if nothing {
                BTreeMap::new()
            } else {
                catalog.product_statuses().await?.into_iter().collect()
            },
            warnings: Default::default(),
        });
        let mut domains: BTreeMap<String, BTreeMap<String, OutputRecord>> = BTreeMap::new();
        let mut outputs = if nothing {
            Vec::new()
        } else {
            catalog.outputs().await?
        };
        if let Some(visible) = visible {
            outputs.retain(|o| visible.contains(&o.product));
        }
        for o in &outputs {
            domains
                .entry(o.domain.to_string())
                .or_default()
                .insert(o.output.to_string(), o.clone());
        }
        Ok(MeshCatalog {
            domains: domains
                .into_iter()
                .map(|(d, outputs)| {
                    (
                        d,
                        Arc::new(DomainSchema {
                            outputs,
                            resolver: resolver.clone(),
                            lifecycle: lifecycle.clone(),
                            gate: gate.clone(),
                        }),
                    )
                })
                .collect(),
            addresses: Arc::new(AddressSchema {
                outputs,
                resolver,
                lifecycle: lifecycle.clone(),
                gate,
            }),
            lifecycle,
            system: RwLock::default(),
        })
    }

    /// Lifecycle warnings of the queries planned so far.
    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.lifecycle.clone()
    }

    /// The schema of domain `name`, if the session holds it.
    pub fn domain(&self, name: &str) -> Option<Arc<DomainSchema>> {
        self.domains.get(name).cloned()
    }

    /// Every SQL name, for suggestions.
    pub fn sql_names(&self) -> Vec<String> {
        self.domains
            .iter()
            .flat_map(|(d, s)| s.outputs.keys().map(move |o| format!("{d}.{o}")))
            .collect()
    }
}

impl CatalogProvider for MeshCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.domains.keys().cloned().collect();
        names.push(ADDRESS_SCHEMA.to_string());
        if let Ok(system) = self.system.read() {
            names.extend(system.keys().cloned());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == ADDRESS_SCHEMA {
            return Some(self.addresses.clone());
        }
        if let Some(domain) = self.domains.get(name) {
            return Some(domain.clone() as Arc<dyn SchemaProvider>);
        }
        self.system.read().ok()?.get(name).cloned()
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        if name == ADDRESS_SCHEMA || self.domains.contains_key(name) {
            return Err(DataFusionError::Plan(format!(
                "`{name}` is a domain of the mesh; a system schema cannot replace it"
            )));
        }
        let mut system = self
            .system
            .write()
            .map_err(|_| DataFusionError::Internal("system schemas poisoned".into()))?;
        Ok(system.insert(name.to_string(), schema))
    }
}

/// The outputs of one domain.
#[derive(Debug)]
pub struct DomainSchema {
    outputs: BTreeMap<String, OutputRecord>,
    resolver: Arc<Resolver>,
    lifecycle: Arc<Lifecycle>,
    gate: Arc<Gate>,
}

impl DomainSchema {
    /// The declared schema of a served output, without an access decision:
    /// what catalogs (`pg_catalog`, `information_schema`) describe.
    pub fn declared_schema(&self, name: &str) -> Option<datafusion::arrow::datatypes::SchemaRef> {
        let output = self.outputs.get(name)?;
        self.lifecycle
            .served(output)
            .then(|| crate::schema::output_schema(output))
    }
}

#[async_trait]
impl SchemaProvider for DomainSchema {
    fn table_names(&self) -> Vec<String> {
        // Retired outputs are not served, so they are not listed either.
        self.outputs
            .iter()
            .filter(|(_, o)| self.lifecycle.served(o))
            .map(|(n, _)| n.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let (base, at) = split_version(name).map_err(df_err)?;
        let Some(output) = self.outputs.get(base) else {
            return Ok(None);
        };
        self.lifecycle
            .check(output, &format!("{}.{}", output.domain, output.output))
            .map_err(df_err)?;
        let name = TableReference::partial(output.domain.as_str(), name);
        self.gate
            .table(&self.resolver, output, at, name)
            .await
            .map(Some)
            .map_err(df_err)
    }

    fn table_exist(&self, name: &str) -> bool {
        split_version(name).is_ok_and(|(base, _)| self.outputs.contains_key(base))
    }

    /// Every output is a base table; saying so needs no access decision
    /// (`information_schema.tables` asks for each).
    async fn table_type(&self, name: &str) -> Result<Option<datafusion::datasource::TableType>> {
        Ok(self
            .table_exist(name)
            .then_some(datafusion::datasource::TableType::Base))
    }
}

/// Global addresses: `"mesh://<domain>/<product>/<output>[@N]"`.
#[derive(Debug)]
pub struct AddressSchema {
    outputs: Vec<OutputRecord>,
    resolver: Arc<Resolver>,
    lifecycle: Arc<Lifecycle>,
    gate: Arc<Gate>,
}

impl AddressSchema {
    fn find(&self, address: &str) -> Option<&OutputRecord> {
        let (product, output) = parse_global_address(address)?;
        self.outputs
            .iter()
            .find(|o| o.product == product && o.output == output)
    }
}

#[async_trait]
impl SchemaProvider for AddressSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let (base, at) = split_version(name).map_err(df_err)?;
        let Some(output) = self.find(base) else {
            return Ok(None);
        };
        self.lifecycle.check(output, base).map_err(df_err)?;
        let name = TableReference::partial(ADDRESS_SCHEMA, name);
        self.gate
            .table(&self.resolver, output, at, name)
            .await
            .map(Some)
            .map_err(df_err)
    }

    fn table_exist(&self, name: &str) -> bool {
        split_version(name).is_ok_and(|(base, _)| self.find(base).is_some())
    }
}

/// The domain and output of a SQL name, if it names one.
pub fn parse_sql_name(name: &str) -> Option<(DomainName, OutputName)> {
    let (d, o) = name.split_once('.')?;
    Some((DomainName::parse(d).ok()?, OutputName::parse(o).ok()?))
}
