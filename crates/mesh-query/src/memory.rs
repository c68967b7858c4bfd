//! Memory limits: one pool for the whole process, and a share of it per
//! statement, so one query fails with a clear error (SQLSTATE 53200)
//! instead of taking the server's memory. Operators that can spill
//! (sorts, aggregations) spill to disk when their statement's share is
//! used up; the others fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// The process-wide pool every statement's share draws from.
pub fn server_pool(limit: usize) -> Arc<dyn MemoryPool> {
    Arc::new(GreedyMemoryPool::new(limit))
}

/// One statement's share of the server's pool: at most `limit` bytes.
#[derive(Debug)]
pub struct StatementPool {
    shared: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl StatementPool {
    pub fn new(shared: Arc<dyn MemoryPool>, limit: usize) -> Self {
        StatementPool {
            shared,
            limit,
            used: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Display for StatementPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "statement pool: {} of {} bytes",
            self.used.load(Ordering::Relaxed),
            self.limit
        )
    }
}

fn mib(bytes: usize) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}

impl MemoryPool for StatementPool {
    fn name(&self) -> &str {
        "statement"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.shared.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.shared.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let before = self.used.fetch_add(additional, Ordering::Relaxed);
        if before + additional > self.limit {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the statement needs more than its memory limit of {} ({} in use, {} more asked by {})",
                mib(self.limit),
                mib(before),
                mib(additional),
                reservation.consumer().name()
            )));
        }
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the server's memory for all statements is in use ({}); try again later: {}",
                mib(match self.shared.memory_limit() {
                    MemoryLimit::Finite(n) => n,
                    _ => 0,
                }),
                e.strip_backtrace()
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_held_to_its_share_and_all_to_the_server() {
        let server = server_pool(1000);
        let a: Arc<dyn MemoryPool> = Arc::new(StatementPool::new(server.clone(), 600));
        let b: Arc<dyn MemoryPool> = Arc::new(StatementPool::new(server.clone(), 600));
        let ra = MemoryConsumer::new("sort").register(&a);
        let rb = MemoryConsumer::new("join").register(&b);
        ra.try_grow(500).unwrap();
        let err = ra.try_grow(200).unwrap_err().to_string();
        assert!(err.contains("memory limit of 1 MiB"), "{err}");
        // b fits its share but not what the server has left.
        let err = rb.try_grow(550).unwrap_err().to_string();
        assert!(err.contains("server's memory"), "{err}");
        rb.try_grow(400).unwrap();
        drop(ra);
        assert_eq!(server.reserved(), 400);
        rb.try_grow(150).unwrap();
    }
}
