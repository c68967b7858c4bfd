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

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::pgwire;
use mesh_service::{Mesh, ServiceError};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

mod catalog;
mod connection;
mod contracts;
mod copy;
mod describe;
mod functions;
mod query;
mod rewrite;
mod statements;

use catalog::*;
use connection::*;
use query::*;

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

pub(super) struct LogErrors;

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

pub(super) fn user_error(code: &str, message: String, hint: Option<String>) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".into(), code.into(), message);
    info.hint = hint;
    PgWireError::UserError(Box::new(info))
}

/// A service error as Postgres reports it, with its SQLSTATE.
pub(super) fn service_error(e: ServiceError) -> PgWireError {
    let code = e.codes().sqlstate;
    let hint = e.hint();
    let message = match &e {
        ServiceError::Query(q) => q.to_string(),
        other => other.to_string(),
    };
    user_error(code, message, hint)
}
