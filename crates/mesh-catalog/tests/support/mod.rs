//! The catalog backends a behaviour test runs against: a SQLite file
//! always, and a PostgreSQL database when the test command provides a
//! server (`MESH_TEST_POSTGRES_URL`, `postgres://USER@HOST:PORT` without a
//! database; `scripts/test` starts one on loopback). Each backend is a
//! fresh, empty catalog. With `MESH_TEST_REQUIRE_POSTGRES=1` (as CI sets
//! it) a missing server fails the test instead of skipping PostgreSQL.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;

use mesh_catalog::SqlCatalog;
use sqlx::Connection;

/// One empty catalog on one backend.
pub struct Backend {
    pub name: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// Opens the catalog, migrating it.
    pub async fn open(&self) -> SqlCatalog {
        SqlCatalog::connect(&self.url).await.unwrap()
    }

    /// Opens it for a project in `project` with tables under `root`.
    pub async fn open_under(&self, project: &Path, root: &str) -> SqlCatalog {
        SqlCatalog::connect_under(&self.url, project, root)
            .await
            .unwrap()
    }

    /// A plain connection, bypassing the store, as another client would.
    pub async fn raw(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.url).await.unwrap()
    }
}

/// The PostgreSQL server the test command started, if any.
pub fn postgres_server() -> Option<String> {
    match std::env::var("MESH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_string()),
        _ => {
            assert!(
                std::env::var("MESH_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "MESH_TEST_REQUIRE_POSTGRES=1 but MESH_TEST_POSTGRES_URL is unset: run scripts/test"
            );
            None
        }
    }
}

/// A new, empty database on the test server, by URL.
pub async fn postgres_database(server: &str) -> String {
    let name = format!("mesh_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    format!("{server}/{name}")
}

/// Every backend this environment provides, each a fresh catalog.
pub async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![Backend {
        name: "sqlite",
        url: format!("sqlite://{}", dir.path().join("catalog.db").display()),
        _dir: Some(dir),
    }];
    if let Some(server) = postgres_server() {
        all.push(Backend {
            name: "postgres",
            url: postgres_database(&server).await,
            _dir: None,
        });
    }
    all
}

/// A loopback TCP proxy to `upstream` whose connections can all be cut at
/// once, as a network failure or a server restart would.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    live: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: std::net::SocketAddr) -> Proxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let live: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>> = Default::default();
        let conns = live.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let mut held = conns.lock().unwrap();
                held.push(client.try_clone().unwrap());
                held.push(server.try_clone().unwrap());
                drop(held);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, live }
    }

    /// Closes every connection made so far.
    pub fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}
