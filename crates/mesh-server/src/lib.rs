//! `mesh serve`: the mesh over the network.
//!
//! A thin adapter: every request is authenticated with a mesh token
//! (`Mesh::authenticate`), becomes a [`mesh_service::Caller`], and calls
//! the same service functions the CLI calls, so planning, policy
//! enforcement and audit are never done here. It serves the REST API
//! (axum, `rest`) with its OpenAPI document, the Postgres wire protocol
//! (`pg`) and Arrow Flight SQL (`flight`); see `docs/server.md`.

pub mod flight;
pub mod gate;
pub mod metrics;
mod openapi;
pub mod pg;
mod prepared;
mod problem;
pub mod rest;
pub mod tls;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_service::Mesh;
use tokio::net::TcpListener;

pub use problem::Problem;

/// What went wrong starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("cannot start {what}: {message}")]
    Start { what: &'static str, message: String },
    #[error("{message}")]
    Tls { message: String },
}

/// A request's id for its logs: the client's `x-request-id` when it sent
/// a usable one (1 to 128 visible characters), else a new UUID.
pub(crate) fn request_id(sent: Option<&str>) -> String {
    sent.filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// How long a stop waits for HTTP and Flight requests in flight.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Where to listen; `None` leaves a protocol off.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub http: Option<SocketAddr>,
    pub pg: Option<SocketAddr>,
    pub flight: Option<SocketAddr>,
}

/// A server bound to its addresses, not yet serving.
pub struct Server {
    mesh: Arc<Mesh>,
    http: Option<TcpListener>,
    pg: Option<TcpListener>,
    flight: Option<TcpListener>,
    tls: Option<tls::Tls>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("http", &self.http_addr())
            .field("pg", &self.pg_addr())
            .field("flight", &self.flight_addr())
            .finish()
    }
}

async fn listen(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, ServerError> {
    match addr {
        None => Ok(None),
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| ServerError::Bind { addr, source }),
    }
}

impl Server {
    /// Binds every address given (port 0 picks a free port).
    pub async fn bind(mesh: Mesh, at: Addresses) -> Result<Self, ServerError> {
        Ok(Server {
            mesh: Arc::new(mesh),
            http: listen(at.http).await?,
            pg: listen(at.pg).await?,
            flight: listen(at.flight).await?,
            tls: None,
        })
    }

    /// Serves every protocol over TLS only: HTTPS, Postgres with
    /// `sslmode=require` or stricter (a plain startup is refused), and
    /// Flight SQL as `grpc+tls`.
    pub fn with_tls(mut self, tls: tls::Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Whether the protocols are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address the REST API listens on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref()?.local_addr().ok()
    }

    /// The address the Postgres wire protocol listens on.
    pub fn pg_addr(&self) -> Option<SocketAddr> {
        self.pg.as_ref()?.local_addr().ok()
    }

    /// The address Arrow Flight SQL listens on.
    pub fn flight_addr(&self) -> Option<SocketAddr> {
        self.flight.as_ref()?.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then stops accepting; HTTP and
    /// Flight requests in flight may finish within [`SHUTDOWN_GRACE`], and
    /// running Postgres statements are cancelled with an error (57P01)
    /// before their connections close.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        // A heavy statement must not keep connections from being served.
        mesh_service::compute::separate();
        let stop = tokio_util::sync::CancellationToken::new();
        let metrics = Arc::new(metrics::Metrics::default());
        let mut tasks = tokio::task::JoinSet::new();
        let acceptor = |alpn: &[&[u8]]| -> Result<Option<tokio_rustls::TlsAcceptor>, ServerError> {
            self.tls
                .as_ref()
                .map(|t| t.acceptor(alpn))
                .transpose()
                .map_err(|e| ServerError::Tls {
                    message: format!("cannot set up TLS: {e}"),
                })
        };
        let limits = self.mesh.limits();
        if let Some(http) = self.http {
            let router = rest::router(self.mesh.clone(), metrics.clone())
                .into_make_service_with_connect_info::<gate::Peer>();
            let local = http.local_addr().map_err(ServerError::Serve)?;
            let rx = gate::Gate::new("http", limits.http_connections, gate::Refusal::Http)
                .with_tls(acceptor(&[b"http/1.1"])?)
                .with_first_request(gate::FIRST_REQUEST)
                .incoming(http, stop.clone());
            let stop = stop.clone();
            tasks.spawn(async move {
                axum::serve(gate::HttpListener { rx, local }, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .map_err(ServerError::Serve)
            });
        }
        if let Some(pg) = self.pg {
            let handlers = Arc::new(
                pg::PgHandlers::new(self.mesh.clone(), metrics.clone()).map_err(|e| {
                    ServerError::Start {
                        what: "the Postgres server",
                        message: e.to_string(),
                    }
                })?,
            );
            // Postgres negotiates TLS inside its protocol (`wire`).
            let rx = gate::Gate::new("postgres", limits.pg_connections, gate::Refusal::Postgres)
                .incoming(pg, stop.clone());
            tasks.spawn(pg::serve(
                rx,
                handlers,
                acceptor(&[])?,
                limits.pg_startup_timeout,
                stop.clone(),
            ));
        }
        if let Some(flight) = self.flight {
            let service =
                flight::MeshFlightSql::new(self.mesh.clone(), metrics.clone()).map_err(|e| {
                    ServerError::Start {
                        what: "the Flight SQL server",
                        message: e.to_string(),
                    }
                })?;
            let rx = gate::Gate::new("flight", limits.flight_connections, gate::Refusal::Close)
                .with_tls(acceptor(&[b"h2"])?)
                .with_first_request(gate::FIRST_REQUEST)
                .incoming(flight, stop.clone());
            tasks.spawn(flight::serve(rx, service, stop.clone()));
        }
        let mut result = Ok(());
        tokio::select! {
            _ = shutdown => {}
            Some(first) = tasks.join_next() => {
                result = first.unwrap_or(Ok(()));
            }
        }
        stop.cancel();
        // In-flight HTTP and Flight requests may finish; one that outlives
        // the grace period is cut off, so a stop never hangs.
        let grace = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    None => break,
                    Some(Ok(Err(e))) if result.is_ok() => result = Err(e),
                    Some(_) => {}
                },
                _ = &mut grace => {
                    tracing::warn!(
                        "requests still running after {} s; cutting them off",
                        SHUTDOWN_GRACE.as_secs()
                    );
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        result
    }
}
