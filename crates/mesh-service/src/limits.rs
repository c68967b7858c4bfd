//! What one statement, and all statements together, may use: memory and
//! time. Every query path applies the same limits (`Mesh::execute`).

use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::memory_pool::MemoryPool;
use mesh_query::memory::{StatementPool, server_pool};

/// The limits of a mesh's statements.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most memory one statement may hold, in bytes.
    pub statement_memory: usize,
    /// Most memory all statements together may hold, in bytes.
    pub server_memory: usize,
    /// Longest a statement may run; `None`: no limit.
    pub statement_timeout: Option<Duration>,
    /// Most Postgres connections open at once.
    pub pg_connections: usize,
    /// Most HTTP connections open at once.
    pub http_connections: usize,
    /// Most Flight SQL connections open at once.
    pub flight_connections: usize,
    /// How long a Postgres client has from connecting to sending its
    /// password.
    pub pg_startup_timeout: Duration,
    pool: Arc<dyn MemoryPool>,
}

/// The default cap on open Postgres connections.
pub const DEFAULT_PG_CONNECTIONS: usize = 256;
/// The default cap on open HTTP connections: browsers and scripts open
/// several each.
pub const DEFAULT_HTTP_CONNECTIONS: usize = 1024;
/// The default cap on open Flight SQL connections.
pub const DEFAULT_FLIGHT_CONNECTIONS: usize = 256;
/// The default deadline for a Postgres client's startup and password.
pub const DEFAULT_PG_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The machine's memory, from `/proc/meminfo`; 8 GiB where unknown.
fn physical_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        })
        .unwrap_or(8 << 30)
}

/// The default statement timeout.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for Limits {
    /// Half the machine's memory for all statements, a quarter of that
    /// for one, and five minutes.
    fn default() -> Self {
        let server = physical_memory() / 2;
        Limits::new(server / 4, server, Some(DEFAULT_STATEMENT_TIMEOUT))
    }
}

impl Limits {
    pub fn new(
        statement_memory: usize,
        server_memory: usize,
        statement_timeout: Option<Duration>,
    ) -> Self {
        Limits {
            statement_memory: statement_memory.min(server_memory),
            server_memory,
            statement_timeout,
            pg_connections: DEFAULT_PG_CONNECTIONS,
            http_connections: DEFAULT_HTTP_CONNECTIONS,
            flight_connections: DEFAULT_FLIGHT_CONNECTIONS,
            pg_startup_timeout: DEFAULT_PG_STARTUP_TIMEOUT,
            pool: server_pool(server_memory),
        }
    }

    /// These limits with another Postgres connection cap and startup
    /// deadline.
    pub fn with_pg(mut self, connections: usize, startup_timeout: Duration) -> Self {
        self.pg_connections = connections.max(1);
        self.pg_startup_timeout = startup_timeout;
        self
    }

    /// These limits with other caps on open HTTP and Flight SQL
    /// connections.
    pub fn with_connections(mut self, http: usize, flight: usize) -> Self {
        self.http_connections = http.max(1);
        self.flight_connections = flight.max(1);
        self
    }

    /// A new statement's share of the server's memory.
    pub fn statement_pool(&self) -> Arc<dyn MemoryPool> {
        Arc::new(StatementPool::new(self.pool.clone(), self.statement_memory))
    }
}
