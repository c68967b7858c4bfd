//! The scheduler benchmark (`mesh-bench schedule`): a mesh of `n` products
//! in a DAG `depth` levels deep, every consumer on `on_upstream_change`
//! with a trivial transform. Measured, alternating, in one run:
//!
//! - **alone**: `mesh run --force` of every product, one process; the sum
//!   of the consumers' run times is the baseline;
//! - **cascade**: with `mesh scheduler` running one run at a time, the
//!   source is changed and published by `mesh run`; from its publication
//!   to the end of the last consumer run, against the sum of those runs'
//!   own times (the rest is scheduling) and against the baseline; then
//!   the same with the scheduler's default concurrency, against the
//!   baseline;
//! - **no-op**: `mesh run` of all products when nothing changed, whole
//!   process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

use mesh_spec::project::SchedulerConfig;

use crate::measure::median;

fn mesh(bin: &Path, dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("MESH_USER", "bench")
        .env("NO_COLOR", "1")
        .output()?;
    if !out.status.success() {
        bail!(
            "mesh {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn product(i: usize) -> (String, String) {
    (format!("d{:02}", i % 10), format!("p{i:04}"))
}

/// Writes the mesh: product 0 reads a CSV; level `l` products read one
/// product of level `l - 1` each.
fn write(dir: &Path, n: usize, depth: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("mesh.yaml"),
        "apiVersion: meshwork/v1\nkind: Mesh\nname: schedule-bench\n\
         scheduler: {tick: 1s, settle: 50ms, concurrency: 1, health: 1h}\n",
    )?;
    let per_level = (n - 1).div_ceil(depth - 1);
    let level = |i: usize| if i == 0 { 0 } else { (i - 1) / per_level + 1 };
    for i in 0..n {
        let (d, p) = product(i);
        let folder = dir.join(&d).join(&p);
        std::fs::create_dir_all(&folder)?;
        let (inputs, sql, schedule) = if i == 0 {
            std::fs::create_dir_all(folder.join("data"))?;
            std::fs::write(folder.join("data/rows.csv"), "id,v\n1,1.5\n2,2.5\n")?;
            (
                "  - name: raw\n    source: {format: csv, path: data/rows.csv}\n".to_string(),
                "SELECT id, v FROM raw",
                "",
            )
        } else {
            // A product of the previous level.
            let l = level(i);
            let first = if l == 1 { 0 } else { (l - 2) * per_level + 1 };
            let count = if l == 1 { 1 } else { per_level };
            let up = (first + (i % count)).min(n - 1);
            let (ud, up) = product(up);
            (
                format!("  - {{name: a, product: {ud}/{up}}}\n"),
                "SELECT id, v FROM a",
                "schedule: {on_upstream_change: true}\n",
            )
        };
        std::fs::write(
            folder.join("product.yaml"),
            format!(
                "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: {d}\nname: {p}\n\
                 version: 1.0.0\nowner: team-{d}@example.org\n\
                 description:\n  purpose: Scheduler benchmark product {i}.\n\
                 inputs:\n{inputs}\
                 transform:\n  query: \"{sql}\"\n\
                 outputs:\n  - name: {p}\n    columns:\n\
                 \x20     - {{name: id, type: bigint, description: Row id}}\n\
                 \x20     - {{name: v, type: double, description: A measure}}\n\
                 slo: {{freshness: 1d}}\n{schedule}"
            ),
        )?;
    }
    Ok(())
}

/// Sets how many runs the scheduler starts at once (`mesh.yaml`, read
/// when a scheduler starts).
fn set_concurrency(dir: &Path, n: usize) -> Result<()> {
    let path = dir.join("mesh.yaml");
    let text = std::fs::read_to_string(&path)?;
    let at = text
        .find("concurrency: ")
        .context("mesh.yaml names no concurrency")?;
    let end = at
        + text[at..]
            .find(',')
            .context("concurrency is not followed by a comma")?;
    std::fs::write(
        &path,
        format!("{}concurrency: {n}{}", &text[..at], &text[end..]),
    )?;
    Ok(())
}

/// Runs since `after`, newest first.
fn runs_since(bin: &Path, dir: &Path, after: DateTime<Utc>, max: usize) -> Result<Vec<Value>> {
    let text = mesh(
        bin,
        dir,
        &["runs", "--limit", &max.to_string(), "--format", "json"],
    )?;
    let all: Vec<Value> = serde_json::from_str(&text)?;
    Ok(all
        .into_iter()
        .filter(|r| time(&r["started_at"]).is_some_and(|t| t > after))
        .collect())
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn ms(v: &Value) -> i64 {
    v["duration_ms"].as_i64().unwrap_or(0)
}

struct Scheduler(Child);

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// One cascade: (from the source's publication to the last consumer's
/// end, the consumers' own run times summed, runs per consumer).
fn cascade(bin: &Path, dir: &Path, n: usize, round: usize) -> Result<(Duration, Duration, f64)> {
    std::fs::write(
        dir.join("d00/p0000/data/rows.csv"),
        format!("id,v\n1,1.5\n2,2.5\n{},{round}.5\n", round + 3),
    )?;
    let before = Utc::now();
    mesh(bin, dir, &["run", "d00/p0000"])?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        // Looked at cheaply (the newest runs only), since each look is a
        // process competing with the runs for the two cores: the cascade
        // is over once nothing has run for three seconds (the scheduler
        // starts each consumer as soon as its upstream ends).
        std::thread::sleep(Duration::from_secs(2));
        let newest = runs_since(bin, dir, before, 3)?;
        let quiet = newest.iter().all(|r| r["status"] != "running")
            && newest
                .iter()
                .filter_map(|r| time(&r["finished_at"]))
                .max()
                .is_some_and(|t| Utc::now() - t > chrono::Duration::seconds(3));
        let runs = if quiet {
            runs_since(bin, dir, before, 4 * n)?
        } else {
            Vec::new()
        };
        let done: Vec<&Value> = runs
            .iter()
            .filter(|r| r["product"] != "d00/p0000" && r["status"] != "running")
            .collect();
        let pending = runs.iter().any(|r| r["status"] == "running");
        if quiet && done.len() >= n - 1 && !pending {
            let source = runs
                .iter()
                .find(|r| r["product"] == "d00/p0000")
                .context("the source's run is missing")?;
            let published = time(&source["finished_at"]).context("source unfinished")?;
            let last = done
                .iter()
                .filter_map(|r| time(&r["finished_at"]))
                .max()
                .context("no consumer finished")?;
            let failed = done
                .iter()
                .filter(|r| r["status"] != "succeeded" && r["status"] != "up-to-date")
                .count();
            if failed > 0 {
                bail!("{failed} consumer runs did not succeed");
            }
            let own: i64 = done.iter().map(|r| ms(r)).sum();
            let per = done.len() as f64 / (n - 1) as f64;
            return Ok((
                (last - published).to_std()?,
                Duration::from_millis(own as u64),
                per,
            ));
        }
        if Instant::now() > deadline {
            bail!("the cascade did not finish in 30 minutes");
        }
    }
}

/// Measures and returns the report.
pub fn schedule_bench(
    bin: &Path,
    work: &Path,
    n: usize,
    depth: usize,
    repeat: usize,
) -> Result<String> {
    let dir: PathBuf = work.join(format!("schedule-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    // `mesh init` makes the benchmark's user the mesh's admin (who sees
    // every run) and writes the default policies; its example goes.
    mesh(bin, work, &["init", &dir.display().to_string()])?;
    std::fs::remove_dir_all(dir.join("example"))?;
    write(&dir, n, depth)?;
    mesh(bin, &dir, &["deploy"])?;
    mesh(bin, &dir, &["run"])?;
    let mut alone = Vec::new();
    let mut elapsed = Vec::new();
    let mut own = Vec::new();
    let mut per_product = Vec::new();
    let mut noop = Vec::new();
    let mut parallel = Vec::new();
    for round in 0..repeat {
        // Alone: every consumer forced, one process.
        let before = Utc::now();
        mesh(bin, &dir, &["run", "--force"])?;
        let runs = runs_since(bin, &dir, before, 2 * n)?;
        let sum: i64 = runs
            .iter()
            .filter(|r| r["product"] != "d00/p0000")
            .map(ms)
            .sum();
        alone.push(Duration::from_millis(sum as u64));
        // No-op: nothing changed.
        let t = Instant::now();
        mesh(bin, &dir, &["run"])?;
        noop.push(t.elapsed());
        // The cascades, each with a scheduler of its own: one run at a
        // time, then the default concurrency.
        let default = SchedulerConfig::default().concurrency;
        for (concurrency, wall) in [(1, &mut elapsed), (default, &mut parallel)] {
            set_concurrency(&dir, concurrency)?;
            let child = Command::new(bin)
                .arg("scheduler")
                .current_dir(&dir)
                .env("MESH_USER", "bench")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let scheduler = Scheduler(child);
            std::thread::sleep(Duration::from_secs(1));
            let (e, o, per) = cascade(bin, &dir, n, 2 * round + concurrency)?;
            drop(scheduler);
            wall.push(e);
            if concurrency == 1 {
                own.push(o);
            }
            per_product.push(per);
        }
    }
    let (alone, elapsed, own, noop, parallel) = (
        median(alone),
        median(elapsed),
        median(own),
        median(noop),
        median(parallel),
    );
    let consumers = (n - 1) as f64;
    let overhead = elapsed.as_secs_f64() - own.as_secs_f64();
    Ok(format!(
        "Scheduler, {n} products in {depth} levels, median of {repeat}:\n\n\
         | measurement | value | baseline | ratio | goal |\n|---|---|---|---|---|\n\
         | cascade, default concurrency ({}): source publish → last consumer published, vs consumers' run times alone | {:.3} s | {:.3} s | {:.3} | ≤ 1.05 |\n\
         | cascade, one run at a time: the same | {:.3} s | {:.3} s | {:.3} | ≤ 1.05 |\n\
         | cascade, one run at a time: vs the same runs' own times in the cascade | {:.3} s | {:.3} s | {:.3} | |\n\
         | scheduling overhead per consumer, one run at a time | {:.1} ms | | | < 20 ms |\n\
         | no-op `mesh run` of all {n} (everything up to date), whole process | {:.3} s | {:.3} s (forced run's consumer times) | {:.3} | < 2 s |\n\n\
         Consumer runs per cascade per product: {:.2} (goal 1.00).\n",
        SchedulerConfig::default().concurrency,
        parallel.as_secs_f64(),
        alone.as_secs_f64(),
        parallel.as_secs_f64() / alone.as_secs_f64(),
        elapsed.as_secs_f64(),
        alone.as_secs_f64(),
        elapsed.as_secs_f64() / alone.as_secs_f64(),
        elapsed.as_secs_f64(),
        own.as_secs_f64(),
        elapsed.as_secs_f64() / own.as_secs_f64(),
        overhead * 1000.0 / consumers,
        noop.as_secs_f64(),
        alone.as_secs_f64(),
        noop.as_secs_f64() / alone.as_secs_f64(),
        per_product.iter().sum::<f64>() / per_product.len() as f64,
    ))
}
