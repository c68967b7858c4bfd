//! `mesh-bench lineage`: column lineage on the `mesh plan` benchmark's
//! synthetic mesh. Two questions:
//!
//! - `mesh lineage --downstream` from a source column, whole process,
//!   against `mesh catalog list` on the same mesh (a process that opens
//!   the mesh and reads the deployed products, nothing more);
//! - how much deriving, storing and checking lineage adds to `mesh
//!   deploy` and `mesh plan`: the binary reports the time it spent on
//!   lineage (`lineage_us`, debug level), set against the rest of the
//!   same command's wall time.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::measure::median;
use crate::planmesh;

/// One command: its wall time and the lineage time it reported last.
struct Timed {
    wall: Duration,
    lineage: Duration,
}

fn timed(mesh: &Path, project: &Path, user: &str, args: &[&str]) -> Result<Timed> {
    let started = Instant::now();
    let out = Command::new(mesh)
        .args(args)
        .current_dir(project)
        .env("MESH_LOG", "mesh_service::lineage=debug")
        .env("MESH_USER", user)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("mesh {args:?} failed:\n{stderr}");
    }
    let lineage = stderr
        .lines()
        .filter_map(|l| l.split("lineage_us=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .next_back()
        .map(Duration::from_micros)
        .unwrap_or_default();
    Ok(Timed { wall, lineage })
}

/// Who deploys (the mesh's first principal, so its admin).
const ADMIN: &str = "bench-admin";
/// Who asks for lineage: a known principal in no team, who sees the
/// mesh's discoverable products as any consumer does.
const READER: &str = "bench-reader";

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Runs the benchmark on a mesh of `n` products, `repeat` times each.
pub fn bench(mesh: &Path, work: &Path, n: usize, repeat: usize) -> Result<String> {
    let project = work.join(format!("lineage-{n}"));
    let _ = std::fs::remove_dir_all(&project);
    planmesh::write(&project, n, false)?;
    crate::write_pack(&project)?;
    for (who, role) in [(ADMIN, "mesh-admin"), (READER, "pii-reader")] {
        let added = Command::new(mesh)
            .args(["principal", "add", who, "--role", role])
            .current_dir(&project)
            .env("MESH_USER", ADMIN)
            .output()?;
        if !added.status.success() {
            bail!(
                "cannot add {who}: {}",
                String::from_utf8_lossy(&added.stderr)
            );
        }
    }
    eprintln!("deploying {n} products");
    let deploy = timed(mesh, &project, ADMIN, &["deploy"])?;
    // Deploys of an unchanged project still validate and derive all of it.
    let mut deploys = vec![deploy];
    for i in 1..repeat {
        eprintln!("deploy {}/{repeat}", i + 1);
        deploys.push(timed(mesh, &project, ADMIN, &["deploy"])?);
    }
    planmesh::write(&project, n, true)?;
    let mut plans = Vec::new();
    for i in 0..repeat {
        eprintln!("plan {}/{repeat}", i + 1);
        plans.push(timed(mesh, &project, ADMIN, &["plan", "--format", "json"])?);
    }
    // From a source-aligned product's column, everything downstream.
    let target = "d00.p0000.v1";
    let lineage_args = ["lineage", target, "--downstream", "--format", "json"];
    let list_args = ["catalog", "list", "--format", "json"];
    let (mut lineage, mut list) = (Vec::new(), Vec::new());
    for i in 0..repeat.max(5) {
        eprintln!("lineage {}/{}", i + 1, repeat.max(5));
        if i % 2 == 0 {
            lineage.push(timed(mesh, &project, READER, &lineage_args)?);
            list.push(timed(mesh, &project, READER, &list_args)?.wall);
        } else {
            list.push(timed(mesh, &project, READER, &list_args)?.wall);
            lineage.push(timed(mesh, &project, READER, &lineage_args)?);
        }
    }
    let out = Command::new(mesh)
        .args(lineage_args)
        .current_dir(&project)
        .env("MESH_USER", READER)
        .output()?;
    let view: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let reached = view["nodes"].as_array().map_or(0, Vec::len);
    let edges = view["edges"].as_array().map_or(0, Vec::len);
    let share = |xs: &[Timed]| {
        let wall = median(xs.iter().map(|t| t.wall).collect());
        let lin = median(xs.iter().map(|t| t.lineage).collect());
        let rest = wall.saturating_sub(lin);
        (wall, lin, lin.as_secs_f64() / rest.as_secs_f64().max(1e-9))
    };
    let (dw, dl, dr) = share(&deploys);
    let (pw, pl, pr) = share(&plans);
    let lw = median(lineage.iter().map(|t| t.wall).collect());
    let li = median(lineage.iter().map(|t| t.lineage).collect());
    let cw = median(list);
    let mut r = String::new();
    let _ = writeln!(
        r,
        "| measurement ({n} products) | wall (ms) | lineage work (ms) | lineage / the rest | goal |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        r,
        "| `mesh deploy` (validate, derive, check, store) | {} | {} | {dr:.3} | ≤ 0.15 |",
        ms(dw),
        ms(dl)
    );
    let _ = writeln!(
        r,
        "| `mesh plan` ({} breaking changes) | {} | {} | {pr:.3} | ≤ 0.15 |",
        (0..n).filter(|i| planmesh::changed(*i)).count(),
        ms(pw),
        ms(pl)
    );
    let _ = writeln!(
        r,
        "\n| measurement ({n} products) | wall (ms) | of which lineage (ms) | baseline: `mesh catalog list` (ms) | wall / baseline | goal |\n|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        r,
        "| `mesh lineage {target} --downstream --format json` ({reached} columns, {edges} edges) | {} | {} | {} | {:.2} | < 100 ms |",
        ms(lw),
        ms(li),
        ms(cw),
        lw.as_secs_f64() / cw.as_secs_f64()
    );
    Ok(r)
}
