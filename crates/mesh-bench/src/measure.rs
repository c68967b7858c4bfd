//! Running a command as a child process and measuring it: wall time, and
//! optionally peak resident memory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One measured execution.
#[derive(Debug, Clone)]
pub struct Sample {
    pub wall: Duration,
    /// Peak resident set in KiB (`VmHWM`), when it was sampled.
    pub peak_kib: Option<u64>,
}

/// `VmHWM` of a live process: its resident-memory high-water mark.
fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` with stdout written to `stdout_to`; fails if it exits non-zero.
///
/// With `memory`, a thread reads the child's high-water mark every 10 ms.
/// The mark only grows, so the last reading misses at most the growth of
/// the child's final 10 ms. Without it, nothing but the child runs.
pub fn run(cmd: &mut Command, stdout_to: &Path, memory: bool) -> Result<Sample> {
    let out = std::fs::File::create(stdout_to)
        .with_context(|| format!("create {}", stdout_to.display()))?;
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))?;
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let poller = memory.then(|| {
        let (peak, done, pid) = (peak.clone(), done.clone(), child.id());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = high_water_mark(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    });
    let output = child.wait_with_output()?;
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    if let Some(p) = poller {
        let _ = p.join();
    }
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(Sample {
        wall,
        peak_kib: memory.then(|| peak.load(Ordering::Relaxed)),
    })
}

/// The median of `xs` (upper median for an even count).
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}
