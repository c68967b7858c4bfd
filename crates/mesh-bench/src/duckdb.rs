//! `mesh-bench duckdb`: TPC-H queries through `mesh query` against the
//! DuckDB CLI reading the very Parquet files the mesh published, whole
//! processes, alternating, one run; and DuckDB on the Parquet it writes
//! itself from the same CSV. Answers are compared cell by cell.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::measure::{self, median};
use crate::{Bench, queries, secs, tpch};

/// The DuckDB type of a contract type the TPC-H products declare.
fn duck_type(ty: &str) -> &str {
    match ty {
        "bigint" => "BIGINT",
        "int" => "INTEGER",
        "string" => "VARCHAR",
        "date" => "DATE",
        other => other,
    }
}

/// Views `tpch.<table>` over the Parquet files under each directory.
fn views<'a>(tables: impl Iterator<Item = (&'a str, String)>) -> String {
    let mut sql = String::from("CREATE SCHEMA tpch;\n");
    for (name, glob) in tables {
        let _ = writeln!(
            sql,
            "CREATE VIEW tpch.{name} AS SELECT * FROM read_parquet('{glob}');"
        );
    }
    sql
}

/// Splits one CSV line into cells (quoted cells may hold commas).
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cell)),
            c => cell.push(c),
        }
    }
    out.push(cell);
    out
}

/// Digits after the decimal point of a number as printed.
fn decimals(s: &str) -> i32 {
    s.split_once('.').map_or(0, |(_, f)| f.len() as i32)
}

/// Whether two CSV answers agree: same rows, same cells, numbers equal to
/// the precision the less precise side printed (an average of decimals is
/// a decimal in one engine, a double in another) or within 1e-9 relative.
fn same_answer(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().skip(1).collect(), b.lines().skip(1).collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            let (x, y) = (cells(x), cells(y));
            x.len() == y.len()
                && x.iter().zip(&y).all(|(p, q)| {
                    p == q
                        || match (p.parse::<f64>(), q.parse::<f64>()) {
                            (Ok(x), Ok(y)) => {
                                let unit = 10f64.powi(-decimals(p).min(decimals(q)));
                                (x - y).abs() <= unit.max(1e-9 * x.abs().max(y.abs()))
                            }
                            _ => false,
                        }
                })
        })
}

fn duck(duckdb: &Path, sql: String) -> Command {
    let mut c = Command::new(duckdb);
    c.args(["-csv", "-c", &sql]);
    c
}

/// Runs the comparison; returns the report (markdown).
pub fn bench(b: &Bench, duckdb: &Path, layout: tpch::Layout) -> Result<String> {
    let version = Command::new(duckdb)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", duckdb.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let suffix = match layout {
        tpch::Layout::Default => "",
        tpch::Layout::Clustered => "-clustered",
    };
    let project = b.work.join(format!("tpch-sf{}{suffix}", b.scale));
    b.prepare_laid_out(&project, layout)?;
    let published = b.published_dirs(&project)?;
    let mesh_views = views(
        published
            .iter()
            .map(|(t, d)| (t.as_str(), format!("{d}*.parquet"))),
    );
    // DuckDB's own Parquet, written once from the same CSV.
    let own = b.work.join(format!("duckdb-sf{}", b.scale));
    if !own.join(".written").exists() {
        std::fs::create_dir_all(&own)?;
        for t in tpch::TABLES {
            eprintln!("duckdb: writing {} as Parquet", t.name);
            let columns: Vec<String> = t
                .columns
                .iter()
                .map(|(n, ty)| format!("'{n}': '{}'", duck_type(ty)))
                .collect();
            let sql = format!(
                "COPY (SELECT * FROM read_csv('{}/tpch/{}/data/*.csv', header = true, columns = {{{}}})) TO '{}/{}.parquet' (FORMAT parquet);",
                project.display(),
                t.name,
                columns.join(", "),
                own.display(),
                t.name
            );
            let out = duck(duckdb, sql).output()?;
            if !out.status.success() {
                bail!(
                    "duckdb COPY failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        std::fs::write(own.join(".written"), "")?;
    }
    let own_views = views(
        tpch::TABLES
            .iter()
            .map(|t| (t.name, format!("{}/{}.parquet", own.display(), t.name))),
    );
    let mut r = String::new();
    let _ = writeln!(
        r,
        "DuckDB {version}; TPC-H SF{}; {layout:?} layout; median of {} alternating runs, whole processes.\n",
        b.scale, b.repeat
    );
    let _ = writeln!(
        r,
        "| query | `mesh query` (s) | DuckDB, same files (s) | mesh / DuckDB | DuckDB, its own Parquet (s) |\n|---|---|---|---|---|"
    );
    let (mut sum_mesh, mut sum_duck, mut sum_own) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for (name, sql) in queries::QUERIES {
        eprintln!("duckdb: {name}");
        let outs = ["mesh", "duck", "own"].map(|k| b.work.join(format!("{name}.{k}.csv")));
        let (mut mesh, mut same, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..b.repeat {
            let mut m = b.mesh_cmd(&project, &["query", sql, "--format", "csv"]);
            let mut d = duck(duckdb, format!("{mesh_views}{sql};"));
            let mut o = duck(duckdb, format!("{own_views}{sql};"));
            if i % 2 == 0 {
                mesh.push(measure::run(&mut m, &outs[0], false)?.wall);
                same.push(measure::run(&mut d, &outs[1], false)?.wall);
            } else {
                same.push(measure::run(&mut d, &outs[1], false)?.wall);
                mesh.push(measure::run(&mut m, &outs[0], false)?.wall);
            }
            theirs.push(measure::run(&mut o, &outs[2], false)?.wall);
        }
        let [a, d, o] = outs.map(|p| std::fs::read_to_string(p).unwrap_or_default());
        if a.lines().count() < 2 || !same_answer(&a, &d) || !same_answer(&d, &o) {
            bail!(
                "{name}: answers differ; compare {}",
                b.work.join(format!("{name}.*.csv")).display()
            );
        }
        let (m, d, o) = (median(mesh), median(same), median(theirs));
        sum_mesh += m;
        sum_duck += d;
        sum_own += o;
        let _ = writeln!(
            r,
            "| {name} | {} | {} | {:.2} | {} |",
            secs(m),
            secs(d),
            m.as_secs_f64() / d.as_secs_f64(),
            secs(o)
        );
    }
    let _ = writeln!(
        r,
        "| **sum** | {} | {} | **{:.2}** | {} |",
        secs(sum_mesh),
        secs(sum_duck),
        sum_mesh.as_secs_f64() / sum_duck.as_secs_f64(),
        secs(sum_own)
    );
    Ok(r)
}
