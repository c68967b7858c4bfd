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
    pool: Arc<dyn MemoryPool>,
}

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
            pool: server_pool(server_memory),
        }
    }

    /// A new statement's share of the server's memory.
    pub fn statement_pool(&self) -> Arc<dyn MemoryPool> {
        Arc::new(StatementPool::new(self.pool.clone(), self.statement_memory))
    }
}
