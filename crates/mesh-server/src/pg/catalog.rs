//! `pg_catalog` for one connection: what psql, drivers and BI tools
//! read on connect, listing only what the caller may see.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::CatalogProviderList;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
    self as pgc, PgCatalogSchemaProvider, PgCatalogStaticTables,
};
use mesh_service::{Caller, Mesh, SessionSetup};

use super::*;

/// What every connection's `pg_catalog` shares: the static tables,
/// parsed once per server.
pub(super) struct PgSetup {
    pub(super) mesh: Arc<Mesh>,
    pub(super) static_tables: Arc<PgCatalogStaticTables>,
}

impl PgSetup {
    /// The `pg_catalog` of one connection. It lives as long as the
    /// connection, so the OIDs it hands out stay the same from one
    /// statement to the next (psql's `\d` looks a table up by OID in a
    /// second query).
    pub(super) fn connection(&self, caller: &Caller) -> datafusion::error::Result<PgCatalog> {
        let visible = Visible {
            mesh: self.mesh.clone(),
            caller: caller.clone(),
            target: Arc::new(Mutex::new(Target::default())),
        };
        let provider = PgCatalogSchemaProvider::try_new(
            visible.clone(),
            self.static_tables.clone(),
            EmptyContextProvider,
        )?;
        Ok(PgCatalog {
            provider: Arc::new(super::contracts::ContractCatalog::new(
                Arc::new(provider),
                visible.clone(),
            )),
            visible,
            static_tables: self.static_tables.clone(),
            search_path: Arc::new(Mutex::new(vec!["$user".into(), "public".into()])),
        })
    }
}

/// Adds `pg_catalog`, its functions and a Postgres `version()` to each
/// session a connection's statements are planned in. The catalog tables
/// list only the outputs the caller may see and describe them by their
/// declared schema, so browsing them makes no access decision.
pub(super) struct PgCatalog {
    pub(super) provider: Arc<super::contracts::ContractCatalog>,
    pub(super) visible: Visible,
    pub(super) static_tables: Arc<PgCatalogStaticTables>,
    /// `SET search_path`: unqualified table names resolve in its first
    /// schema that is not `$user`, `public` or `pg_catalog`.
    pub(super) search_path: Arc<Mutex<Vec<String>>>,
}

/// The schemas of a `search_path` value (`sales, "$user", public`).
pub(super) fn parse_search_path(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A search path as `SHOW search_path` prints it.
pub(super) fn search_path_text(path: &[String]) -> String {
    path.iter()
        .map(|s| {
            if s.starts_with('$') {
                format!("\"{s}\"")
            } else {
                s.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl PgCatalog {
    pub(super) fn set_search_path(&self, path: Vec<String>) {
        if let Ok(mut p) = self.search_path.lock() {
            *p = path;
        }
    }

    pub(super) fn search_path(&self) -> Vec<String> {
        self.search_path
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// The path as `SHOW search_path` prints it.
    pub(super) fn search_path_text(&self) -> String {
        search_path_text(&self.search_path())
    }

    /// The schema unqualified names resolve in, if the path names one.
    fn default_schema(&self) -> Option<String> {
        self.search_path()
            .into_iter()
            .find(|s| !matches!(s.as_str(), "$user" | "public" | "pg_catalog"))
    }
}

impl SessionSetup for PgCatalog {
    fn setup(&self, ctx: &SessionContext, caller: &Caller) -> datafusion::error::Result<()> {
        self.visible.retarget(ctx.state().catalog_list());
        let catalog = ctx
            .catalog(mesh_service::query::CATALOG_NAME)
            .ok_or_else(|| {
                DataFusionError::Internal("the mesh catalog is not registered".into())
            })?;
        catalog.register_schema("pg_catalog", self.provider.clone())?;
        install_functions(ctx, &self.static_tables);
        let schema = self.default_schema();
        if let Some(schema) = &schema {
            ctx.state_ref()
                .write()
                .config_mut()
                .options_mut()
                .catalog
                .default_schema = schema.clone();
        }
        ctx.register_udf(current_schema_udf(
            schema.unwrap_or_else(|| "public".into()),
        ));
        ctx.register_udf(super::contracts::IndexDefUdf::udf(
            &self.provider.index_defs,
        ));
        for udf in super::functions::user_udfs(&caller.name)
            .into_iter()
            .chain(super::functions::setting_udfs(self.search_path.clone()))
        {
            ctx.register_udf(udf);
        }
        Ok(())
    }
}

/// The functions `setup_pg_catalog` installs, with the static tables
/// parsed once per server instead of once per statement.
pub(super) fn install_functions(ctx: &SessionContext, static_tables: &PgCatalogStaticTables) {
    use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
        array_bounds_udf, format_type, generate_series_arg_coercion, has_privilege_udf,
        oid_type_planner, pg_get_expr_udf, quote_ident_udf,
    };
    for udf in [
        pgc::create_current_database_udf(mesh_service::query::CATALOG_NAME),
        pgc::create_current_schema_udf(),
        pgc::create_current_schemas_udf(),
        pgc::create_pg_get_userbyid_udf(),
        has_privilege_udf::create_has_privilege_udf("has_table_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_schema_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_database_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_any_column_privilege"),
        pgc::create_pg_table_is_visible(),
        format_type::create_format_type_udf(),
        pgc::create_session_user_udf(),
        pg_get_expr_udf::create_pg_get_expr_udf(),
        pgc::create_pg_get_partkeydef_udf(),
        pgc::create_pg_relation_is_publishable_udf(),
        pgc::create_pg_get_statisticsobjdef_columns_udf(),
        pgc::create_pg_encoding_to_char_udf(),
        pgc::create_pg_backend_pid_udf(),
        pgc::create_pg_relation_size_udf(),
        pgc::create_pg_total_relation_size_udf(),
        pgc::create_pg_stat_get_numscans(),
        pgc::create_pg_get_constraintdef(),
        pgc::create_pg_get_partition_ancestors_udf(),
        quote_ident_udf::create_quote_ident_udf(),
        quote_ident_udf::create_parse_ident_udf(),
        array_bounds_udf::create_array_upper_udf(),
        array_bounds_udf::create_array_lower_udf(),
        version_udf(),
        super::rewrite::like_escape_udf(),
        super::functions::json_build_object_udf(),
        super::functions::pg_size_pretty_udf(),
    ]
    .into_iter()
    .chain(super::functions::null_text_udfs())
    {
        ctx.register_udf(udf);
    }
    ctx.register_udtf("pg_get_keywords", static_tables.pg_get_keywords.clone());
    {
        use datafusion::execution::session_state::SessionStateBuilder;
        let state = ctx.state_ref();
        let existing = state.read().clone();
        *state.write() = SessionStateBuilder::new_from_existing(existing)
            .with_type_planner(Arc::new(oid_type_planner::PgOidTypePlanner))
            .build();
    }
    generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(ctx);
}

/// `current_schema()`: where unqualified names resolve.
fn current_schema_udf(schema: String) -> ScalarUDF {
    create_udf(
        "current_schema",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                schema.clone(),
            ))))
        }),
    )
}

/// `version()` as drivers expect it: `PostgreSQL <major.minor> …`.
pub(super) fn version_udf() -> ScalarUDF {
    let text = format!(
        "PostgreSQL {SERVER_VERSION} (Meshwork {}, Apache DataFusion)",
        env!("CARGO_PKG_VERSION")
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))
        }),
    )
}

/// What `pg_catalog` may show a caller: the domains and outputs it may
/// see, with their declared schemas, in the session of the statement
/// being planned. The session is held weakly: it holds this catalog too.
#[derive(Clone)]
pub(super) struct Visible {
    pub(super) mesh: Arc<Mesh>,
    pub(super) caller: Caller,
    pub(super) target: Arc<Mutex<Target>>,
}

/// The `(domain, output)` pairs a caller may see, with their documented
/// declared schemas.
pub(super) type Tables = BTreeMap<(String, String), SchemaRef>;

#[derive(Default)]
pub(super) struct Target {
    pub(super) session: Option<std::sync::Weak<dyn CatalogProviderList>>,
    pub(super) outputs: Arc<tokio::sync::OnceCell<Arc<Tables>>>,
    /// The published tables `pg_class` lists, read once per statement
    /// for the catalog tables completed from the contracts.
    pub(super) relations: Arc<tokio::sync::OnceCell<Arc<super::contracts::Relations>>>,
}

impl Debug for Visible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visible")
            .field("caller", &self.caller.name)
            .finish()
    }
}

impl Visible {
    /// Points at a new statement's session; what the caller may see is
    /// looked up again, once, when a catalog table is first read.
    fn retarget(&self, session: &Arc<dyn CatalogProviderList>) {
        if let Ok(mut target) = self.target.lock() {
            *target = Target {
                session: Some(Arc::downgrade(session)),
                outputs: Arc::default(),
                relations: Arc::default(),
            };
        }
    }

    fn inner(&self) -> datafusion::error::Result<Arc<dyn CatalogProviderList>> {
        self.target
            .lock()
            .ok()
            .and_then(|t| t.session.as_ref()?.upgrade())
            .ok_or_else(|| DataFusionError::Internal("pg_catalog read outside a statement".into()))
    }

    /// This statement's slot for the relations of `contracts.rs`.
    pub(super) fn relations_cell(
        &self,
    ) -> datafusion::error::Result<Arc<tokio::sync::OnceCell<Arc<super::contracts::Relations>>>>
    {
        self.target
            .lock()
            .map(|t| t.relations.clone())
            .map_err(|_| DataFusionError::Internal("pg_catalog target poisoned".into()))
    }

    pub(super) async fn outputs(&self) -> datafusion::error::Result<Arc<Tables>> {
        let cell = self
            .target
            .lock()
            .map(|t| t.outputs.clone())
            .map_err(|_| DataFusionError::Internal("pg_catalog target poisoned".into()))?;
        cell.get_or_try_init(|| async {
            let visible = self
                .mesh
                .visible_tables(&self.caller)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            Ok::<_, DataFusionError>(Arc::new(
                visible
                    .into_iter()
                    .map(|t| ((t.domain, t.name), t.schema))
                    .collect(),
            ))
        })
        .await
        .cloned()
    }

    fn schema(
        &self,
        catalog: &str,
        schema: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn datafusion::catalog::SchemaProvider>>> {
        Ok(self
            .inner()?
            .catalog(catalog)
            .and_then(|c| c.schema(schema)))
    }

    fn domain(
        &self,
        catalog: &str,
        schema: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn datafusion::catalog::SchemaProvider>>> {
        Ok(self
            .schema(catalog, schema)?
            .filter(|p| p.is::<mesh_service::query::DomainSchema>()))
    }
}

#[async_trait]
impl CatalogInfo for Visible {
    async fn catalog_names(&self) -> datafusion::error::Result<Vec<String>> {
        Ok(CatalogProviderList::catalog_names(self.inner()?.as_ref()))
    }

    async fn schema_names(&self, catalog: &str) -> datafusion::error::Result<Option<Vec<String>>> {
        let Some(names) = self.inner()?.catalog(catalog).map(|c| c.schema_names()) else {
            return Ok(None);
        };
        let outputs = self.outputs().await?;
        let mut shown = Vec::with_capacity(names.len());
        for s in names {
            if self.domain(catalog, &s)?.is_none() || outputs.keys().any(|(d, _)| *d == s) {
                shown.push(s);
            }
        }
        Ok(Some(shown))
    }

    async fn table_names(
        &self,
        catalog: &str,
        schema: &str,
    ) -> datafusion::error::Result<Option<Vec<String>>> {
        let Some(provider) = self.schema(catalog, schema)? else {
            return Ok(None);
        };
        let names = provider.table_names();
        if self.domain(catalog, schema)?.is_none() {
            return Ok(Some(names));
        }
        let outputs = self.outputs().await?;
        Ok(Some(
            names
                .into_iter()
                .filter(|t| outputs.contains_key(&(schema.to_string(), t.clone())))
                .collect(),
        ))
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> datafusion::error::Result<Option<SchemaRef>> {
        if let Some(domain) = self.domain(catalog, schema)? {
            let outputs = self.outputs().await?;
            if !outputs.contains_key(&(schema.to_string(), table.to_string())) {
                return Ok(None);
            }
            return Ok(domain
                .downcast_ref::<mesh_service::query::DomainSchema>()
                .and_then(|d| d.declared_schema(table)));
        }
        let Some(provider) = self.schema(catalog, schema)? else {
            return Ok(None);
        };
        Ok(provider.table(table).await?.map(|t| t.schema()))
    }

    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> datafusion::error::Result<Option<TableType>> {
        if self.domain(catalog, schema)?.is_some() {
            return Ok(Some(TableType::Base));
        }
        let Some(provider) = self.schema(catalog, schema)? else {
            return Ok(None);
        };
        provider.table_type(table).await
    }
}
