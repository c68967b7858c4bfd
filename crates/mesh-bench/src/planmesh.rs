//! A synthetic mesh for the `mesh plan` benchmark: `n` products over 20
//! domains, 10 source-aligned and the rest consumers reading 5 or 6
//! earlier products each (about `5 * n` consumer edges), every consumer
//! joining its inputs in SQL.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::measure::{self, median};
use crate::{secs, write_pack};

/// Deterministic pseudo-random numbers (xorshift), so meshes are repeatable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const SOURCES: usize = 10;

fn domain(i: usize) -> String {
    format!("d{:02}", i % 20)
}

fn name(i: usize) -> String {
    format!("p{i:04}")
}

/// Whether product `i` gets a breaking change: `v2` narrowed to float.
pub fn changed(i: usize) -> bool {
    i % 10 == 5
}

/// The upstream products of consumer `i`.
fn upstream(i: usize, n: usize, rng: &mut Rng) -> Vec<usize> {
    let consumers = n - SOURCES;
    let extra = (5 * n).saturating_sub(5 * consumers);
    let k = if i - SOURCES < extra { 6 } else { 5 }.min(i);
    let mut picked = Vec::with_capacity(k);
    while picked.len() < k {
        let j = rng.below(i);
        if !picked.contains(&j) {
            picked.push(j);
        }
    }
    picked
}

fn columns(v2: &str) -> String {
    format!(
        "      - {{name: id, type: bigint, nullable: false, description: Row id}}\n\
         \x20     - {{name: v1, type: double, description: First measure}}\n\
         \x20     - {{name: v2, type: {v2}, description: Second measure}}\n\
         \x20     - {{name: label, type: string, description: Row label}}\n"
    )
}

/// Writes the mesh; with `after`, the changed products narrow `v2`.
pub fn write(project: &Path, n: usize, after: bool) -> Result<usize> {
    std::fs::create_dir_all(project)?;
    std::fs::write(
        project.join("mesh.yaml"),
        "apiVersion: meshwork/v1\nkind: Mesh\nname: plan-bench\n",
    )?;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut edges = 0;
    for i in 0..n.max(SOURCES + 1) {
        let dir = project.join(domain(i)).join(name(i));
        std::fs::create_dir_all(&dir)?;
        let narrow = after && changed(i);
        let v2_type = if narrow { "float" } else { "double" };
        let v2 = |expr: &str| {
            if narrow {
                format!("CAST({expr} AS FLOAT) AS v2")
            } else {
                format!("{expr} AS v2")
            }
        };
        let (inputs, sql) = if i < SOURCES {
            std::fs::create_dir_all(dir.join("data"))?;
            std::fs::write(
                dir.join("data/rows.csv"),
                "id,v1,v2,label\n1,1.5,2.5,a\n2,3.5,4.5,b\n",
            )?;
            (
                format!(
                    "  - name: raw\n    source:\n      format: csv\n      path: data/rows.csv\n      columns:\n{}",
                    columns("double").replace("      - ", "        - ")
                ),
                format!("SELECT id, v1, {}, label FROM raw", v2("v2")),
            )
        } else {
            let ups = upstream(i, n, &mut rng);
            edges += ups.len();
            let inputs: String = ups
                .iter()
                .enumerate()
                .map(|(k, j)| {
                    format!(
                        "  - {{name: i{k}, product: {}/{}, version: ^1}}\n",
                        domain(*j),
                        name(*j)
                    )
                })
                .collect();
            let joins: String = (1..ups.len())
                .map(|k| format!(" JOIN i{k} ON i0.id = i{k}.id"))
                .collect();
            (
                inputs,
                format!(
                    "SELECT i0.id, i0.v1 + i1.v1 AS v1, {}, i3.label AS label FROM i0{joins} WHERE i4.v1 > 0",
                    v2("i2.v2")
                ),
            )
        };
        std::fs::write(
            dir.join("product.yaml"),
            format!(
                "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: {d}\nname: {p}\n\
                 version: 1.0.0\nowner: team-{d}@example.org\n\
                 description:\n  purpose: Plan benchmark product {i}.\n\
                 inputs:\n{inputs}\
                 transform:\n  query: \"{sql}\"\n\
                 outputs:\n  - name: {p}\n    primary_key: [id]\n    columns:\n{cols}\
                 \x20   quality:\n      - {{check: row_count, min: 1}}\n\
                 slo: {{freshness: 1d}}\n",
                d = domain(i),
                p = name(i),
                cols = columns(v2_type),
            ),
        )?;
    }
    Ok(edges)
}

/// `mesh plan` against `mesh validate` (its own first step) per mesh size.
pub fn plan_bench(mesh: &Path, work: &Path, sizes: &[usize], repeat: usize) -> Result<String> {
    let mut r = String::from(
        "| products | consumer edges | changed products | `mesh plan` (s) | `mesh validate` (s) | plan / validate |\n|---|---|---|---|---|---|\n",
    );
    let mut medians = Vec::new();
    for &n in sizes {
        let project = work.join(format!("plan-{n}"));
        let _ = std::fs::remove_dir_all(&project);
        write(&project, n, false)?;
        // `mesh plan` evaluates every descriptor against the deploy rules.
        write_pack(&project)?;
        eprintln!("deploying {n} products");
        let deploy = Command::new(mesh)
            .arg("deploy")
            .current_dir(&project)
            .output()?;
        if !deploy.status.success() {
            bail!(
                "deploy failed:\n{}",
                String::from_utf8_lossy(&deploy.stderr)
            );
        }
        let edges = write(&project, n, true)?;
        let changed = (0..n).filter(|i| changed(*i)).count();
        let out = work.join("plan.out");
        let (mut plan, mut validate) = (Vec::new(), Vec::new());
        for i in 0..repeat {
            eprintln!("plan {n}: {}/{repeat}", i + 1);
            let mut p = Command::new(mesh);
            p.args(["plan", "--format", "json"]).current_dir(&project);
            let mut v = Command::new(mesh);
            v.args(["validate"]).current_dir(&project);
            if i % 2 == 0 {
                plan.push(measure::run(&mut p, &out, false)?.wall);
                validate.push(measure::run(&mut v, &out, false)?.wall);
            } else {
                validate.push(measure::run(&mut v, &out, false)?.wall);
                plan.push(measure::run(&mut p, &out, false)?.wall);
            }
        }
        let (p, v) = (median(plan), median(validate));
        medians.push((n, p));
        let _ = writeln!(
            r,
            "| {n} | {edges} | {changed} | {} | {} | {:.2} |",
            secs(p),
            secs(v),
            p.as_secs_f64() / v.as_secs_f64()
        );
    }
    if let (Some((n0, t0)), Some((n1, t1))) = (medians.first(), medians.last())
        && n1 > n0
    {
        let _ = writeln!(
            r,
            "\nGrowth: {}× the products take {:.1}× the time.",
            n1 / n0,
            t1.as_secs_f64() / t0.as_secs_f64()
        );
    }
    Ok(r)
}
