//! `mesh-bench storage`: what a table holds after repeated runs under
//! retention. `tpch/lineitem` with `retention: {keep_releases: K}` is run
//! N times, then vacuumed; the table's bytes on disk (data and log) are
//! set against one release's bytes.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::Bench;

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        total += if path.is_dir() {
            bytes_under(&path)?
        } else {
            path.metadata()?.len()
        };
    }
    Ok(total)
}

pub fn bench(b: &Bench, runs: usize, keep: u64) -> Result<String> {
    let project = b.work.join(format!("tpch-sf{}", b.scale));
    b.prepare(&project)?;
    let descriptor = project.join("tpch/lineitem/product.yaml");
    let text = std::fs::read_to_string(&descriptor)?;
    let text = text
        .lines()
        .filter(|l| !l.starts_with("retention:"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + &format!("retention: {{keep_releases: {keep}}}\n");
    std::fs::write(&descriptor, text)?;
    b.mesh_ok(&project, &["deploy"])?;
    for i in 0..runs {
        eprintln!("storage: run {}/{runs}", i + 1);
        b.mesh_ok(&project, &["run", "tpch/lineitem", "--force"])?;
    }
    let table = project.join(".mesh/tables/tpch/lineitem/lineitem");
    let before = bytes_under(&table)?;
    b.mesh_ok(&project, &["vacuum", "tpch/lineitem"])?;
    let after = bytes_under(&table)?;
    let show: serde_json::Value = serde_json::from_str(&b.mesh_ok(
        &project,
        &["catalog", "show", "tpch/lineitem", "--format", "json"],
    )?)?;
    let release = show["outputs"][0]["storage"]["current_bytes"]
        .as_u64()
        .context("catalog show gave no current_bytes")?;
    let mib = |n: u64| format!("{:.1}", n as f64 / (1 << 20) as f64);
    let mut r = String::new();
    let _ = writeln!(
        r,
        "| lineitem SF{}, {runs} runs, `keep_releases: {keep}` | MiB | × one release |\n|---|---|---|",
        b.scale
    );
    let _ = writeln!(
        r,
        "| one release (current version's files) | {} | 1.00 |",
        mib(release)
    );
    let _ = writeln!(
        r,
        "| table before `mesh vacuum` (data and log) | {} | {:.2} |",
        mib(before),
        before as f64 / release as f64
    );
    let _ = writeln!(
        r,
        "| table after `mesh vacuum` | {} | **{:.2}** (goal ≤ 2.2) |",
        mib(after),
        after as f64 / release as f64
    );
    Ok(r)
}
