//! Who holds a run: this process, named so any process can tell whether
//! the holder is still alive.
//!
//! A holder is `host:pid:start`, where `start` is the process's start time
//! in clock ticks since boot (Linux `/proc/<pid>/stat`), so a reused pid
//! is not mistaken for the holder. A holder on this host whose process is
//! gone is dead at once; a holder elsewhere is dead when its lease expires.

use std::sync::Arc;
use std::time::Duration;

use mesh_catalog::{CatalogStore, RunId, RunLease};

/// How long a lease lasts without a heartbeat, unless configured.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A process's start time from `/proc`, when the system has it.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// This process as a lease holder.
pub fn this_process() -> String {
    let pid = std::process::id();
    format!(
        "{}:{pid}:{}",
        host(),
        start_time(pid).unwrap_or_else(|| "0".into())
    )
}

/// Whether a lease can be taken over at `now_ms`: it expired, or its
/// holder is a process of this host that no longer runs.
pub fn is_stale(lease: &RunLease, now_ms: i64) -> bool {
    if lease.lease_until < now_ms {
        return true;
    }
    let mut parts = lease.holder.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host_name)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if host_name != host() || start == "0" {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    start_time(pid).as_deref() != Some(start)
}

/// Keeps a run's lease alive until dropped.
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Extends the lease every third of its length.
    pub fn start(
        catalog: Arc<dyn CatalogStore>,
        run: RunId,
        holder: String,
        lease: Duration,
    ) -> Heartbeat {
        let task = tokio::spawn(async move {
            let every = lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let until = now_ms() + lease.as_millis() as i64;
                match catalog.extend_lease(&run, &holder, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(run = %run, "lost the lease of this run to another process");
                        return;
                    }
                    Err(e) => tracing::warn!(run = %run, error = %e, "could not extend the lease"),
                }
            }
        });
        Heartbeat { task }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_spec::ProductRef;

    fn lease(holder: String, until: i64) -> RunLease {
        RunLease {
            run_id: RunId::new(),
            product: ProductRef::parse("a/b").unwrap(),
            holder,
            lease_until: until,
        }
    }

    #[test]
    fn a_live_holder_keeps_its_lease_and_a_dead_one_loses_it() {
        let now = now_ms();
        assert!(!is_stale(&lease(this_process(), now + 10_000), now));
        assert!(is_stale(&lease(this_process(), now - 1), now));
        // Same host, a pid that does not run (or ran with another start time).
        let dead = format!("{}:{}:{}", host(), u32::MAX - 1, 1);
        assert!(is_stale(&lease(dead, now + 10_000), now));
        // Another host: only expiry tells.
        assert!(!is_stale(&lease("elsewhere:1:1".into(), now + 10_000), now));
    }
}
