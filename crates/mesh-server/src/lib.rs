//! `mesh serve`: the mesh over the network.
//!
//! A thin adapter: every request is authenticated with a mesh token
//! (`Mesh::authenticate`), becomes a [`mesh_service::Caller`], and calls
//! the same service functions the CLI calls, so planning, policy
//! enforcement and audit are never done here. Today it serves the REST
//! API (axum, `rest`) with its OpenAPI document; see `docs/server.md`.

mod openapi;
mod problem;
pub mod rest;

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
}

/// A server bound to its addresses, not yet serving.
pub struct Server {
    mesh: Arc<Mesh>,
    http: TcpListener,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("http", &self.http.local_addr().ok())
            .finish()
    }
}

impl Server {
    /// Binds the HTTP address (port 0 picks a free port).
    pub async fn bind(mesh: Mesh, http: SocketAddr) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(http)
            .await
            .map_err(|source| ServerError::Bind { addr: http, source })?;
        Ok(Server {
            mesh: Arc::new(mesh),
            http: listener,
        })
    }

    /// The address the REST API listens on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then stops accepting and lets
    /// requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        axum::serve(self.http, rest::router(self.mesh))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve)
    }
}
