//! The catalog on PostgreSQL against SQLite, whole `mesh` processes on
//! the same mesh of trivial products: a deploy of every product into an
//! empty catalog, `mesh catalog show`, and a query's planning with its
//! policy decision (`EXPLAIN`), which reads the catalog as every query
//! does.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::measure::{self, median};
use crate::startup::write_startup_mesh;
use crate::{Bench, secs};

/// One backend's medians.
struct Timings {
    deploy: Duration,
    show: Duration,
    explain: Duration,
    /// `EXPLAIN` through a running server's Postgres protocol: planning
    /// and the policy decision with the catalog's connections pooled.
    served: Duration,
}

/// Statements one client sends a running server, one after another.
const SERVED: usize = 300;

/// A new, empty database `name` on `server` (`postgres://USER@HOST:PORT`).
fn fresh_database(server: &str, name: &str) -> Result<String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg(format!("{server}/postgres"))
        .args(["-c", &format!("DROP DATABASE IF EXISTS {name}")])
        .args(["-c", &format!("CREATE DATABASE {name}")])
        .output()?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(format!("{server}/{name}"))
}

/// Measures one backend; `catalog(i)` empties it for deploy `i` and
/// names it (`None`: the project's own SQLite file, removed).
fn timings(
    bench: &Bench,
    project: &Path,
    catalog: &dyn Fn(usize) -> Result<Option<String>>,
) -> Result<Timings> {
    let out = bench.work.join("catalogs.out");
    let mut deploys = Vec::new();
    let mut on = bench.clone();
    for i in 0..=bench.repeat {
        let _ = std::fs::remove_dir_all(project.join(".mesh"));
        on.catalog_url = catalog(i)?;
        on.govern(project)?;
        let sample = measure::run(&mut on.mesh_cmd(project, &["deploy"]), &out, false)?;
        if i > 0 {
            deploys.push(sample.wall);
        }
    }
    on.mesh_ok(project, &["run"])?;
    let (mut shows, mut explains) = (Vec::new(), Vec::new());
    for i in 0..=bench.repeat * 5 {
        let mut show = on.mesh_cmd(project, &["catalog", "show", "domain_00/product_000"]);
        let mut explain = on.mesh_cmd(
            project,
            &[
                "query",
                "EXPLAIN SELECT * FROM domain_00.product_000",
                "--format",
                "csv",
            ],
        );
        let s = measure::run(&mut show, &out, false)?;
        let e = measure::run(&mut explain, &out, false)?;
        if i > 0 {
            shows.push(s.wall);
            explains.push(e.wall);
        }
    }
    let token = on
        .mesh_ok(project, &["token", "create"])?
        .trim()
        .to_string();
    let server = crate::serve::Server::start_on(&bench.mesh, project, on.catalog_url.as_deref())?;
    let user = std::env::var("MESH_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let served = crate::runtime()?.block_on(async {
        let client = crate::serve::pg_client(server.pg, &user, &token).await?;
        let mut times = Vec::new();
        for i in 0..=SERVED {
            let started = std::time::Instant::now();
            client
                .simple_query("EXPLAIN SELECT * FROM domain_00.product_000")
                .await?;
            if i > 0 {
                times.push(started.elapsed());
            }
        }
        anyhow::Ok(median(times))
    })?;
    drop(server);
    Ok(Timings {
        deploy: median(deploys),
        show: median(shows),
        explain: median(explains),
        served,
    })
}

/// The report rows.
pub fn bench(bench: &Bench, products: usize, server: &str) -> Result<String> {
    let project = bench.work.join(format!("catalogs-{products}"));
    let _ = std::fs::remove_dir_all(&project);
    write_startup_mesh(&project, products)?;
    let server = server.trim_end_matches('/');
    eprintln!("SQLite: {products} products");
    let sqlite = timings(bench, &project, &|_| Ok(None))?;
    eprintln!("PostgreSQL: {products} products");
    let postgres = timings(bench, &project, &|i| {
        fresh_database(server, &format!("meshbench_catalogs_{i}")).map(Some)
    })?;
    let mut report = String::from(
        "| operation | SQLite | PostgreSQL | PostgreSQL / SQLite |\n|---|---|---|---|\n",
    );
    for (name, s, p) in [
        (
            format!("`mesh deploy`, {products} products, empty catalog"),
            sqlite.deploy,
            postgres.deploy,
        ),
        (
            "`mesh catalog show` one product".to_string(),
            sqlite.show,
            postgres.show,
        ),
        (
            "`mesh query \"EXPLAIN …\"` (planning and policy decision)".to_string(),
            sqlite.explain,
            postgres.explain,
        ),
        (
            format!("`EXPLAIN …` through a running `mesh serve` (median of {SERVED})"),
            sqlite.served,
            postgres.served,
        ),
    ] {
        report.push_str(&format!(
            "| {name} | {} | {} | {:.2} |\n",
            secs(s),
            secs(p),
            p.as_secs_f64() / s.as_secs_f64()
        ));
    }
    report.push_str(&format!(
        "\nPlanning overhead per query on PostgreSQL (PostgreSQL − SQLite medians): {:.2} ms in a \
         running server, {:.1} ms for a new `mesh query` process (which also connects and checks \
         the schema).\n",
        (postgres.served.as_secs_f64() - sqlite.served.as_secs_f64()) * 1000.0,
        (postgres.explain.as_secs_f64() - sqlite.explain.as_secs_f64()) * 1000.0
    ));
    Ok(report)
}
