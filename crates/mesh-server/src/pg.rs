//! The Postgres wire protocol (pgwire, through datafusion-postgres).
//!
//! A thin adapter like the REST API: the password a client sends at
//! startup is a mesh token, and every statement is planned and run by
//! [`Mesh::prepare`] and [`Mesh::execute`] as that token's principal, so
//! masks, row filters, denials and audit are exactly the CLI's. What is
//! Postgres-specific stays here: the dialect rewrites of
//! `PostgresCompatibilityParser`, the `pg_catalog` schema and functions
//! that psql, drivers and BI tools query on connect (listing only what the
//! caller may see), session statements (`SET`, `SHOW`, `BEGIN`), SQLSTATE
//! codes and query cancel.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::CatalogProviderList;
use datafusion::common::ParamValues;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
    self as pgc, PgCatalogSchemaProvider, PgCatalogStaticTables,
};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, Stream, StreamExt, stream};
use mesh_service::{Caller, Mesh, ServiceError, SessionSetup, Statement};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::data::DataRow;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, QueryTimer};

/// The Postgres version the server reports; drivers parse it.
pub const SERVER_VERSION: &str = "16.6";

/// Everything the Postgres listener shares between connections.
pub struct PgHandlers {
    service: Arc<PgService>,
    startup: Arc<PgStartup>,
    cancel: Arc<PgCancel>,
}

impl PgHandlers {
    pub fn new(mesh: Arc<Mesh>, metrics: Arc<Metrics>) -> Result<Self, DataFusionError> {
        let sessions = Arc::new(Sessions::default());
        let setup = Arc::new(PgSetup {
            mesh: mesh.clone(),
            static_tables: Arc::new(PgCatalogStaticTables::try_new()?),
        });
        let parser = Arc::new(PgParser {
            mesh: mesh.clone(),
            sql: PostgresCompatibilityParser::new(),
        });
        Ok(PgHandlers {
            service: Arc::new(PgService {
                mesh: mesh.clone(),
                parser,
                metrics: metrics.clone(),
            }),
            startup: Arc::new(PgStartup {
                peer: None,
                mesh,
                setup,
                metrics,
                sessions: sessions.clone(),
                keys: Arc::default(),
            }),
            cancel: Arc::new(PgCancel { sessions }),
        })
    }
}

impl PgHandlers {
    /// The handlers of one connection from `peer`.
    fn for_peer(&self, peer: std::net::IpAddr) -> Self {
        PgHandlers {
            service: self.service.clone(),
            startup: Arc::new(PgStartup {
                peer: Some(peer),
                ..(*self.startup).clone()
            }),
            cancel: self.cancel.clone(),
        }
    }
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }
}

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        tracing::info!(client = %client.socket_addr(), "postgres error: {error}");
    }
}

/// Accepts Postgres connections until `stop`; then cancels the statements
/// still running (they end with SQLSTATE 57P01) and closes every
/// connection.
pub async fn serve(
    mut incoming: tokio::sync::mpsc::Receiver<crate::gate::Admitted>,
    handlers: Arc<PgHandlers>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    startup_timeout: std::time::Duration,
    stop: CancellationToken,
) -> Result<(), crate::ServerError> {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            admitted = incoming.recv() => match admitted {
                None => break,
                Some(socket) => {
                    let peer = socket.peer();
                    let handlers = Arc::new(handlers.for_peer(peer.ip()));
                    let tls = tls.clone();
                    // Every log line of a connection carries its session id.
                    let span = tracing::info_span!(
                        "postgres",
                        session = %uuid::Uuid::new_v4(),
                        %peer
                    );
                    connections.spawn(tracing::Instrument::instrument(async move {
                        tracing::debug!("connected");
                        let (ours, theirs) = match tokio::net::UnixStream::pair() {
                            Ok(pair) => pair,
                            Err(e) => {
                                tracing::warn!(%peer, "cannot open a postgres session: {e}");
                                return;
                            }
                        };
                        let session = tokio::spawn(tracing::Instrument::instrument(
                            pgwire::tokio::process_socket_unix(theirs, handlers),
                            tracing::Span::current(),
                        ));
                        if let Err(e) = crate::wire::guard(socket, tls, ours, startup_timeout).await {
                            tracing::debug!("postgres connection ended: {e}");
                        }
                        let _ = session.await;
                        tracing::debug!("disconnected");
                    }, span));
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    handlers.startup.sessions.shut_down();
    // Let cancelled statements send their error before closing.
    let grace = tokio::time::sleep(std::time::Duration::from_millis(200));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            _ = &mut grace => break,
            next = connections.join_next() => if next.is_none() { break },
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// One authenticated connection: its principal, its cancel signal and the
/// settings session that `SET`/`SHOW` act on.
struct Session {
    caller: Caller,
    current: Mutex<(CancellationToken, mesh_service::Stop)>,
    settings: SessionContext,
    stopping: Arc<AtomicBool>,
    catalog: PgCatalog,
}

/// Why a statement may stop early, and the error it then ends with.
#[derive(Clone)]
struct Interrupt {
    token: CancellationToken,
    /// Ends the statement inside its plan, where the token cannot reach.
    stop: mesh_service::Stop,
    timed_out: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
}

impl Interrupt {
    fn error(&self) -> PgWireError {
        if self.stopping.load(Ordering::SeqCst) {
            let mut info = ErrorInfo::new(
                "FATAL".into(),
                "57P01".into(),
                "terminating connection due to administrator command: the server is stopping"
                    .into(),
            );
            info.hint = Some("reconnect when the server is back".into());
            return PgWireError::UserError(Box::new(info));
        }
        user_error(
            "57014",
            if self.timed_out.load(Ordering::SeqCst) {
                "canceling statement due to statement timeout".into()
            } else {
                "canceling statement due to user request".into()
            },
            None,
        )
    }
}

impl Session {
    /// A fresh cancel signal for the statement about to run.
    fn start(&self) -> Interrupt {
        let token = CancellationToken::new();
        let stop = mesh_service::Stop::default();
        if let Ok(mut current) = self.current.lock() {
            *current = (token.clone(), stop.clone());
        }
        Interrupt {
            token,
            stop,
            timed_out: Arc::default(),
            stopping: self.stopping.clone(),
        }
    }

    fn cancel(&self) {
        if let Ok(current) = self.current.lock() {
            current.0.cancel();
            current.1.raise();
        }
    }
}

/// The open sessions by backend key, for cancel requests.
#[derive(Default)]
struct Sessions {
    open: Mutex<HashMap<BackendKey, Arc<Session>>>,
    stopping: Arc<AtomicBool>,
}

impl Sessions {
    /// Cancels every running statement: the server is stopping.
    fn shut_down(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(open) = self.open.lock() {
            for session in open.values() {
                session.cancel();
            }
        }
    }
}

/// A connection's process id and secret key, as a cancel request names it.
type BackendKey = (i32, Vec<u8>);

/// Removes a session from [`Sessions`] when its connection ends.
struct Registered {
    key: BackendKey,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.metrics.postgres_session(-1);
        if let Ok(mut open) = self.sessions.open.lock() {
            open.remove(&self.key);
        }
    }
}

/// Startup: the password is a mesh token, and the user name must be the
/// token's principal.
#[derive(Clone)]
struct PgStartup {
    /// The client's address (the pgwire side sees only a socket pair).
    peer: Option<std::net::IpAddr>,
    mesh: Arc<Mesh>,
    setup: Arc<PgSetup>,
    metrics: Arc<Metrics>,
    sessions: Arc<Sessions>,
    /// Shared by every connection, so each gets its own backend pid.
    keys: Arc<RandomPidSecretKeyGenerator>,
}

#[async_trait]
impl StartupHandler for PgStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let token = pwd.into_password()?.password;
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                let refused = |message: String| {
                    PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "28P01".into(),
                        message,
                    )))
                };
                let caller = self.mesh.authenticate_from(&token, self.peer).await.map_err(|_| {
                    refused(format!(
                        "password authentication failed for user \"{user}\": the password must be a mesh token (`mesh token create`)"
                    ))
                })?;
                if caller.name != user {
                    self.mesh
                        .refuse_token_of_another(&caller, &user, "postgres")
                        .await
                        .map_err(service_error)?;
                    return Err(refused(format!(
                        "the token belongs to \"{}\", not to user \"{user}\"; connect with -U {}",
                        caller.name, caller.name
                    )));
                }
                let catalog = self.setup.connection(&caller).map_err(|e| {
                    user_error("XX000", format!("cannot set up pg_catalog: {e}"), None)
                })?;
                let (pid, secret) = self.keys.generate(client);
                client.set_pid_and_secret_key(pid, secret.clone());
                let session = Arc::new(Session {
                    caller,
                    current: Mutex::new((CancellationToken::new(), mesh_service::Stop::default())),
                    settings: SessionContext::new(),
                    stopping: self.sessions.stopping.clone(),
                    catalog,
                });
                let key = (pid, secret.to_bytes().to_vec());
                if let Ok(mut open) = self.sessions.open.lock() {
                    open.insert(key.clone(), session.clone());
                }
                client.session_extensions().insert(session);
                self.metrics.postgres_session(1);
                client.session_extensions().insert(Registered {
                    key,
                    sessions: self.sessions.clone(),
                    metrics: self.metrics.clone(),
                });
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.server_version = SERVER_VERSION.to_string();
                parameters.is_superuser = false;
                parameters.default_transaction_read_only = true;
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

struct PgCancel {
    sessions: Arc<Sessions>,
}

#[async_trait]
impl CancelHandler for PgCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        let session = self
            .sessions
            .open
            .lock()
            .ok()
            .and_then(|open| open.get(&key).cloned());
        if let Some(session) = session {
            tracing::info!(pid = request.pid, "postgres cancel request");
            session.cancel();
        }
    }
}

fn session<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Session>> {
    client
        .session_extensions()
        .get::<Arc<Session>>()
        .map(|s| (*s).clone())
        .ok_or_else(|| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                "the connection is not authenticated".into(),
            )))
        })
}

/// What every connection's `pg_catalog` shares: the static tables,
/// parsed once per server.
struct PgSetup {
    mesh: Arc<Mesh>,
    static_tables: Arc<PgCatalogStaticTables>,
}

impl PgSetup {
    /// The `pg_catalog` of one connection. It lives as long as the
    /// connection, so the OIDs it hands out stay the same from one
    /// statement to the next (psql's `\d` looks a table up by OID in a
    /// second query).
    fn connection(&self, caller: &Caller) -> datafusion::error::Result<PgCatalog> {
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
            provider: Arc::new(provider),
            visible,
            static_tables: self.static_tables.clone(),
        })
    }
}

/// Adds `pg_catalog`, its functions and a Postgres `version()` to each
/// session a connection's statements are planned in. The catalog tables
/// list only the outputs the caller may see and describe them by their
/// declared schema, so browsing them makes no access decision.
struct PgCatalog {
    provider: Arc<PgCatalogSchemaProvider<Visible, EmptyContextProvider>>,
    visible: Visible,
    static_tables: Arc<PgCatalogStaticTables>,
}

impl SessionSetup for PgCatalog {
    fn setup(&self, ctx: &SessionContext, _caller: &Caller) -> datafusion::error::Result<()> {
        self.visible.retarget(ctx.state().catalog_list());
        let catalog = ctx
            .catalog(mesh_service::query::CATALOG_NAME)
            .ok_or_else(|| {
                DataFusionError::Internal("the mesh catalog is not registered".into())
            })?;
        catalog.register_schema("pg_catalog", self.provider.clone())?;
        install_functions(ctx, &self.static_tables);
        Ok(())
    }
}

/// The functions `setup_pg_catalog` installs, with the static tables
/// parsed once per server instead of once per statement.
fn install_functions(ctx: &SessionContext, static_tables: &PgCatalogStaticTables) {
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
    ] {
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

/// `version()` as drivers expect it: `PostgreSQL <major.minor> …`.
fn version_udf() -> ScalarUDF {
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
struct Visible {
    mesh: Arc<Mesh>,
    caller: Caller,
    target: Arc<Mutex<Target>>,
}

/// The `(domain, output)` pairs a caller may see.
type Tables = BTreeSet<(String, String)>;

#[derive(Default)]
struct Target {
    session: Option<std::sync::Weak<dyn CatalogProviderList>>,
    outputs: Arc<tokio::sync::OnceCell<Arc<Tables>>>,
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

    async fn outputs(&self) -> datafusion::error::Result<Arc<Tables>> {
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
                visible.into_iter().map(|t| (t.domain, t.name)).collect(),
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
            if self.domain(catalog, &s)?.is_none() || outputs.iter().any(|(d, _)| *d == s) {
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
                .filter(|t| outputs.contains(&(schema.to_string(), t.clone())))
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
            if !outputs.contains(&(schema.to_string(), table.to_string())) {
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

/// A parsed statement: a session statement answered here, or a query
/// planned (at Parse) for its schema and parameter types. A query is
/// planned again when it runs, so a policy change between Parse and
/// Execute is honoured.
#[derive(Clone)]
pub struct PgStatement {
    ast: SqlStatement,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// `SET`, `SHOW`, `BEGIN`, … with the columns it answers.
    Session(SchemaRef),
    Query {
        schema: SchemaRef,
        params: Vec<Option<DataType>>,
    },
}

/// `SHOW server_version[_num]`, answered with the version the startup
/// parameters announce (drivers compare the two).
fn show_version(ast: &SqlStatement) -> Option<PgWireResult<Response>> {
    let SqlStatement::ShowVariable { variable } = ast else {
        return None;
    };
    let name = variable
        .iter()
        .map(|i| i.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(".");
    let value = match name.as_str() {
        "server_version" => SERVER_VERSION.to_string(),
        "server_version_num" => {
            let (major, minor) = SERVER_VERSION
                .split_once('.')
                .unwrap_or((SERVER_VERSION, "0"));
            format!("{major}{:0>4}", minor)
        }
        _ => return None,
    };
    let fields = Arc::new(vec![FieldInfo::new(
        name,
        None,
        None,
        Type::TEXT,
        pgwire::api::results::FieldFormat::Text,
    )]);
    let mut encoder = pgwire::api::results::DataRowEncoder::new(fields.clone());
    Some(encoder.encode_field(&Some(value)).map(|()| {
        let row = encoder.take_row();
        Response::Query(QueryResponse::new(fields, stream::iter(vec![Ok(row)])))
    }))
}

fn hooks() -> [Arc<dyn QueryHook>; 2] {
    [Arc::new(SetShowHook), Arc::new(TransactionStatementHook)]
}

/// Refuses a statement too deeply nested to parse safely (54001).
fn mesh_query_complexity(sql: &str) -> PgWireResult<()> {
    mesh_service::check_complexity(sql).map_err(service_error)
}

pub struct PgParser {
    mesh: Arc<Mesh>,
    sql: PostgresCompatibilityParser,
}

impl PgParser {
    fn parse(&self, sql: &str) -> PgWireResult<Vec<SqlStatement>> {
        // Before any parser recurses into it.
        mesh_query_complexity(sql)?;
        self.sql.parse(sql).map_err(|e| {
            user_error(
                "42601",
                mesh_service::query::syntax_sentence(&e),
                Some("the server speaks PostgreSQL's SQL as DataFusion plans it".into()),
            )
        })
    }

    /// Plans `ast` as the session's principal.
    async fn prepare(
        &self,
        session: &Session,
        ast: &SqlStatement,
    ) -> PgWireResult<mesh_service::Planned> {
        self.plan(session, ast).await.map_err(service_error)
    }

    async fn plan(
        &self,
        session: &Session,
        ast: &SqlStatement,
    ) -> mesh_service::Result<mesh_service::Planned> {
        let sql = ast.to_string();
        self.mesh
            .prepare(
                &session.caller,
                Statement {
                    sql: &sql,
                    parsed: Some(datafusion::sql::parser::Statement::Statement(Box::new(
                        ast.clone(),
                    ))),
                    setup: Some(&session.catalog),
                    strings: Default::default(),
                },
            )
            .await
    }
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parse(sql)?;
        if statements.is_empty() {
            return Ok(None);
        }
        let ast = statements.remove(0);
        let session = session(client)?;
        for hook in hooks() {
            if let Some(plan) = hook
                .handle_extended_parse_query(&ast, &session.settings, client)
                .await
            {
                let schema = Arc::new(plan?.schema().as_arrow().clone());
                return Ok(Some(PgStatement {
                    ast,
                    kind: Kind::Session(schema),
                }));
            }
        }
        let planned = self.prepare(&session, &ast).await?;
        let params = planned.parameter_types().map_err(service_error)?;
        Ok(Some(PgStatement {
            ast,
            kind: Kind::Query {
                schema: planned.schema(),
                params,
            },
        }))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        match &stmt.kind {
            Kind::Session(_) => Ok(vec![]),
            Kind::Query { params, .. } => params
                .iter()
                .map(|p| p.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
                .collect(),
        }
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let schema = match &stmt.kind {
            Kind::Session(schema) | Kind::Query { schema, .. } => schema,
        };
        arrow_schema_to_pg_fields(schema, format.unwrap_or(&Format::UnifiedText), None)
    }
}

pub struct PgService {
    mesh: Arc<Mesh>,
    parser: Arc<PgParser>,
    metrics: Arc<Metrics>,
}

impl PgService {
    /// Runs a planned query and streams its rows in `format`; the session's
    /// cancel signal (a cancel request, or `statement_timeout`) stops it.
    async fn run<C>(
        &self,
        client: &C,
        session: &Session,
        ast: &SqlStatement,
        params: Option<ParamValues>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ?Sized,
    {
        let timeout = client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(std::time::Duration::from_millis);
        let interrupt = session.start();
        if let Some(after) = timeout {
            let (token, timed_out) = (interrupt.token.clone(), interrupt.timed_out.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(after) => {
                        timed_out.store(true, Ordering::SeqCst);
                        token.cancel();
                    }
                    _ = token.cancelled() => {}
                }
            });
        }
        let mut timer = self.metrics.query("postgres");
        let work = async {
            let planned = self.parser.plan(session, ast).await?;
            let planned = planned
                .with_stop(interrupt.stop.clone())
                .with_timeout(timeout);
            self.mesh.execute(planned, params).await
        };
        let stream = tokio::select! {
            result = work => match result {
                Ok(stream) => stream,
                Err(e) => {
                    timer.finish(Err(&e));
                    return Err(service_error(e));
                }
            },
            _ = interrupt.token.cancelled() => return Err(interrupt.error()),
        };
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_schema_to_pg_fields(
            &stream.schema,
            format,
            Some(options),
        )?);
        let rows = rows(stream, fields.clone(), interrupt, timer);
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }
}

/// The rows of `stream`, encoded for the wire, until it ends or `token`
/// is interrupted.
fn rows(
    stream: mesh_service::QueryStream,
    fields: Arc<Vec<FieldInfo>>,
    interrupt: Interrupt,
    timer: QueryTimer,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    stream::unfold(Some((stream, interrupt, timer)), move |state| {
        let fields = fields.clone();
        async move {
            let (mut stream, interrupt, mut timer) = state?;
            let next = tokio::select! {
                next = stream.next() => Some(next),
                _ = interrupt.token.cancelled() => None,
            };
            let Some(next) = next else {
                let rows: Vec<PgWireResult<DataRow>> = vec![Err(interrupt.error())];
                return Some((stream::iter(rows), None));
            };
            match next {
                None => {
                    timer.finish(Ok(()));
                    None
                }
                Some(Ok(batch)) => {
                    let rows: Vec<PgWireResult<DataRow>> =
                        encode_recordbatch(fields, batch).collect();
                    Some((stream::iter(rows), Some((stream, interrupt, timer))))
                }
                Some(Err(e)) => {
                    timer.finish(Err(&e));
                    Some((stream::iter(vec![Err(service_error(e))]), None))
                }
            }
        }
    })
    .flatten()
}

#[async_trait]
impl SimpleQueryHandler for PgService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        let statements = self.parser.parse(query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        'statements: for ast in statements {
            if let Some(response) = show_version(&ast) {
                responses.push(response?);
                continue;
            }
            for hook in hooks() {
                if let Some(result) = hook
                    .handle_simple_query(&ast, &session.settings, client)
                    .await
                {
                    responses.push(result?);
                    continue 'statements;
                }
            }
            responses.push(
                self.run(client, &session, &ast, None, &Format::UnifiedText)
                    .await?,
            );
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgService {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        let statement = &portal.statement.statement;
        match &statement.kind {
            Kind::Session(_) => {
                let plan = datafusion::logical_expr::LogicalPlan::EmptyRelation(
                    datafusion::logical_expr::EmptyRelation {
                        produce_one_row: false,
                        schema: Arc::new(datafusion::common::DFSchema::empty()),
                    },
                );
                let none = ParamValues::List(vec![]);
                for hook in hooks() {
                    if let Some(result) = hook
                        .handle_extended_query(
                            &statement.ast,
                            &plan,
                            &none,
                            &session.settings,
                            client,
                        )
                        .await
                    {
                        return result;
                    }
                }
                Ok(Response::EmptyQuery)
            }
            Kind::Query { params, .. } => {
                let inferred: Vec<Option<&DataType>> = params.iter().map(Option::as_ref).collect();
                let values = deserialize_parameters_with_server_types(portal, &inferred, &[])?;
                let values = match &values {
                    ParamValues::List(v) if v.is_empty() => None,
                    _ => Some(values),
                };
                self.run(
                    client,
                    &session,
                    &statement.ast,
                    values,
                    &portal.result_column_format,
                )
                .await
            }
        }
    }
}

fn user_error(code: &str, message: String, hint: Option<String>) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".into(), code.into(), message);
    info.hint = hint;
    PgWireError::UserError(Box::new(info))
}

/// A service error as Postgres reports it, with its SQLSTATE.
fn service_error(e: ServiceError) -> PgWireError {
    let code = e.codes().sqlstate;
    let hint = e.hint();
    let message = match &e {
        ServiceError::Query(q) => q.to_string(),
        other => other.to_string(),
    };
    user_error(code, message, hint)
}
