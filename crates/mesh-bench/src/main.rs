//! `mesh-bench`: measures `mesh` against DataFusion alone on TPC-H data.
//!
//! `mesh-bench run` generates TPC-H at a scale factor, builds a mesh whose
//! source-aligned products ingest it, and reports each figure as a ratio of
//! medians against a baseline measured in the same run, alternating the two
//! so that drift on a shared machine hits both. The baselines run as child
//! processes of this binary (`df-convert`, `df-query`), so both sides pay
//! for process start-up. See BENCHMARKS.md.

mod baseline;
mod catalogs;
mod cli;
mod compare;
mod duckdb;
mod governed;
mod lineage;
mod measure;
mod planmesh;
mod policy;
mod queries;
mod s3;
mod schedule;
mod serve;
mod startorder;
mod startup;
mod storage;
mod tpch;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use cli::{Cli, Cmd, Setup};
use measure::{Sample, median};

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run {
            scale,
            at,
            repeat,
            products,
            report,
        } => {
            let bench = Bench::new(&at, scale, repeat)?;
            let text = bench.run_all(products)?;
            print!("{text}");
            if let Some(path) = report {
                std::fs::write(&path, &text)?;
            }
            Ok(())
        }
        Cmd::Duckdb {
            scale,
            at,
            repeat,
            duckdb,
            clustered,
        } => {
            let bench = Bench::new(&at, scale, repeat)?;
            let layout = if clustered {
                tpch::Layout::Clustered
            } else {
                tpch::Layout::Default
            };
            print!("{}", duckdb::bench(&bench, &duckdb, layout)?);
            Ok(())
        }
        Cmd::S3 {
            scale,
            endpoint,
            bucket,
            at,
            repeat,
        } => {
            let bench = Bench::new(&at, scale, repeat)?;
            print!("{}", s3::bench(&bench, &endpoint, &bucket)?);
            Ok(())
        }
        Cmd::Startup {
            products,
            at,
            repeat,
        } => {
            let bench = Bench::new(&at, 1.0, repeat)?;
            let startup = bench.startup(products)?;
            println!("{}", startup.row(&format!("start-up: `mesh query \"SELECT 1\"`, {products} products vs DataFusion `SELECT 1`"), 2, ""));
            Ok(())
        }
        Cmd::StartupOrder {
            products,
            at,
            out,
            check,
        } => {
            if check {
                print!("{}", startorder::coverage(&mesh_binary(at.mesh)?, &out)?);
            } else {
                let bench = Bench::new(&at, 1.0, 1)?;
                print!("{}", startorder::collect(&bench, products, &out)?);
            }
            Ok(())
        }
        Cmd::Catalogs {
            products,
            postgres,
            at,
            repeat,
        } => {
            let bench = Bench::new(&at, 1.0, repeat)?;
            print!("{}", catalogs::bench(&bench, products, &postgres)?);
            Ok(())
        }
        Cmd::Storage {
            scale,
            at,
            runs,
            keep,
        } => {
            let bench = Bench::new(&at, scale, 1)?;
            print!("{}", storage::bench(&bench, runs, keep)?);
            Ok(())
        }
        Cmd::Schedule {
            products,
            depth,
            at,
            repeat,
        } => {
            std::fs::create_dir_all(&at.work)?;
            print!(
                "{}",
                schedule::schedule_bench(
                    &mesh_binary(at.mesh)?,
                    &std::path::absolute(&at.work)?,
                    products.max(3),
                    depth.clamp(2, products.max(3)),
                    repeat.max(1)
                )?
            );
            Ok(())
        }
        Cmd::Lineage {
            products,
            at,
            repeat,
        } => {
            let work = std::path::absolute(&at.work)?;
            std::fs::create_dir_all(&work)?;
            print!(
                "{}",
                lineage::bench(&mesh_binary(at.mesh)?, &work, products, repeat.max(1))?
            );
            Ok(())
        }
        Cmd::Plan { sizes, at, repeat } => {
            print!(
                "{}",
                planmesh::plan_bench(
                    &mesh_binary(at.mesh)?,
                    &std::path::absolute(&at.work)?,
                    &sizes,
                    repeat.max(1)
                )?
            );
            Ok(())
        }
        Cmd::Policy {
            scale,
            at,
            repeat,
            samples,
        } => {
            let bench = Bench::new(&at, scale, repeat)?;
            print!("{}", bench.policy(samples.max(1))?);
            Ok(())
        }
        Cmd::Serve {
            scale,
            at,
            seconds,
            clients,
            idle,
            repeat,
            rest_seconds,
            connections,
            reuse,
        } => {
            let bench = Bench::new(&at, scale, repeat)?;
            let load = Load {
                seconds,
                clients: clients.max(2),
                idle,
                rest_seconds,
                connections: connections.max(1),
                reuse,
            };
            print!("{}", bench.serve(&load)?);
            Ok(())
        }
        Cmd::FlightFetch {
            addr,
            sql,
            user,
            token,
            rounds,
            frame,
        } => runtime()?.block_on(async {
            let mut client = serve::flight_client(addr, &user, &token, frame).await?;
            for _ in 0..rounds {
                let t = std::time::Instant::now();
                let (rows, bytes) = serve::flight_fetch(&mut client, &sql).await?;
                println!(
                    "{rows} rows, {:.0} MiB of Arrow IPC, {:.3} s",
                    bytes as f64 / 1048576.0,
                    t.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }),
        Cmd::HttpLoad {
            addr,
            path,
            token,
            connections,
            seconds,
        } => {
            let mut l = runtime()?.block_on(serve::http_load(
                addr,
                &path,
                &token,
                connections.max(1),
                seconds,
            ))?;
            println!(
                "{:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} errors{}",
                l.per_second(),
                l.quantile_ms(0.5),
                l.quantile_ms(0.99),
                l.errors,
                l.first_error
                    .as_ref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Cmd::DfConvert { table, csv, out } => {
            let t = tpch::table(&table).context("unknown table")?;
            runtime()?.block_on(baseline::convert(t, &csv, &out))
        }
        Cmd::DfQuery { sql, tables } => {
            let tables = tables
                .iter()
                .map(|t| {
                    t.split_once('=')
                        .map(|(n, d)| (n.to_string(), d.to_string()))
                        .context("--table takes name=DIR")
                })
                .collect::<Result<Vec<_>>>()?;
            runtime()?.block_on(baseline::query(&sql, &tables))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The `mesh` binary given, else the one built next to this one.
fn mesh_binary(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(m) => Ok(m),
        None => sibling("mesh"),
    }
}

/// Writes the default policy pack into `project`.
fn write_pack(project: &Path) -> Result<()> {
    mesh_policy::write_default_pack(project)
        .map_err(|(path, e)| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// A binary built next to this one.
fn sibling(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found; build it first (cargo build --release -p mesh-cli -p mesh-bench) or pass --mesh",
            path.display()
        );
    }
    Ok(path)
}

/// The shape of the serving benchmark.
struct Load {
    seconds: u64,
    clients: usize,
    idle: usize,
    rest_seconds: u64,
    connections: usize,
    reuse: bool,
}

#[derive(Clone)]
struct Bench {
    mesh: PathBuf,
    me: PathBuf,
    work: PathBuf,
    scale: f64,
    repeat: usize,
    /// The catalog every `mesh` command uses (`MESH_CATALOG_URL`), when
    /// not the project's own.
    catalog_url: Option<String>,
    /// Environment of the baseline processes.
    baseline_env: Vec<(String, String)>,
}

/// Medians of the two sides of one comparison.
struct Pair {
    mesh: Vec<Sample>,
    base: Vec<Sample>,
}

impl Pair {
    fn walls(samples: &[Sample]) -> Duration {
        median(samples.iter().map(|s| s.wall).collect())
    }
    fn ratio(&self) -> f64 {
        Self::walls(&self.mesh).as_secs_f64() / Self::walls(&self.base).as_secs_f64()
    }
    fn peak_mib(samples: &[Sample]) -> f64 {
        samples.iter().filter_map(|s| s.peak_kib).max().unwrap_or(0) as f64 / 1024.0
    }
    /// A report row: `label`, both medians in seconds, the ratio with
    /// `digits` decimals, then `goal` (no column when empty).
    fn row(&self, label: &str, digits: usize, goal: &str) -> String {
        let goal = if goal.is_empty() {
            String::new()
        } else {
            format!(" {goal} |")
        };
        format!(
            "| {label} | {} | {} | {:.digits$} |{goal}",
            secs(Self::walls(&self.mesh)),
            secs(Self::walls(&self.base)),
            self.ratio()
        )
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

impl Bench {
    fn new(at: &Setup, scale: f64, repeat: usize) -> Result<Self> {
        Ok(Bench {
            mesh: mesh_binary(at.mesh.clone())?,
            me: std::env::current_exe()?,
            work: std::path::absolute(&at.work)?,
            scale,
            repeat: repeat.max(1),
            catalog_url: None,
            baseline_env: Vec::new(),
        })
    }

    fn mesh_cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.mesh);
        c.args(args);
        self.mesh_env(&mut c, dir);
        c
    }

    /// The directory and environment of every `mesh` process the bench
    /// starts, also one run under another program (Callgrind).
    fn mesh_env(&self, c: &mut Command, dir: &Path) {
        c.current_dir(dir).env("NO_COLOR", "1");
        match &self.catalog_url {
            Some(url) => c.env("MESH_CATALOG_URL", url),
            None => c.env_remove("MESH_CATALOG_URL"),
        };
    }

    fn mesh_ok(&self, dir: &Path, args: &[&str]) -> Result<String> {
        let out = self.mesh_cmd(dir, args).output()?;
        if !out.status.success() {
            bail!(
                "mesh {args:?} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Writes the default policy pack and makes the user the bench runs as
    /// (`MESH_USER`, else `USER`, as `mesh` itself reads them) an admin who
    /// reads personal data, so queries measure the real enforcement path.
    fn govern(&self, project: &Path) -> Result<()> {
        write_pack(project)?;
        let me = std::env::var("MESH_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        let out = self
            .mesh_cmd(
                project,
                &[
                    "principal",
                    "add",
                    &me,
                    "--role",
                    "mesh-admin",
                    "--role",
                    "pii-reader",
                ],
            )
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !stderr.contains("already exists") {
            bail!("mesh principal add failed:\n{stderr}");
        }
        Ok(())
    }

    fn run_all(&self, products: usize) -> Result<String> {
        let project = self.work.join(format!("tpch-sf{}", self.scale));
        self.prepare(&project)?;
        let ingest = self.ingest(&project)?;
        let queries = self.queries(&project)?;
        let startup = self.startup(products)?;
        Ok(self.report(&project, &ingest, &queries, &startup, products))
    }

    /// Generates the data once per scale, deploys, and publishes every table.
    fn prepare(&self, project: &Path) -> Result<()> {
        self.prepare_laid_out(project, tpch::Layout::Default)
    }

    fn prepare_laid_out(&self, project: &Path, layout: tpch::Layout) -> Result<()> {
        let marker = project.join(".generated");
        if !marker.exists() {
            let _ = std::fs::remove_dir_all(project);
            eprintln!("generating TPC-H SF{} in {}", self.scale, project.display());
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            tpch::generate(project, self.scale, threads)?;
            std::fs::write(&marker, "")?;
        }
        tpch::write_project_laid_out(project, layout)?;
        self.govern(project)?;
        self.mesh_ok(project, &["deploy"])?;
        eprintln!("publishing every table once");
        self.mesh_ok(project, &["run"])?;
        Ok(())
    }

    /// `mesh serve` under load (see `serve.rs`).
    fn serve(&self, load: &Load) -> Result<String> {
        let project = self.work.join(format!("tpch-sf{}", self.scale));
        if !(load.reuse && project.join(".mesh/catalog.db").exists()) {
            self.prepare(&project)?;
        }
        let lineitem = self
            .published_dirs(&project)?
            .into_iter()
            .find(|(t, _)| t == "lineitem")
            .map(|(_, d)| d)
            .context("lineitem is not published")?;
        let user = std::env::var("MESH_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        let token = self
            .mesh_ok(&project, &["token", "create"])?
            .trim()
            .to_string();
        let server = serve::Server::start(&self.mesh, &project)?;
        let rt = runtime()?;
        let mut c = rt.block_on(serve::concurrency(
            &server,
            &project,
            &user,
            &token,
            load.clients,
            load.idle,
            load.seconds,
        ))?;
        let streamed = rt.block_on(serve::streaming(
            &server,
            &user,
            &token,
            &lineitem,
            self.repeat,
        ))?;
        eprintln!("REST: catalog show, then /healthz");
        let show_path = "/api/v1/products/tpch/lineitem";
        let mut show = rt.block_on(serve::http_load(
            server.http,
            show_path,
            &token,
            load.connections,
            load.rest_seconds,
        ))?;
        let mut health = rt.block_on(serve::http_load(
            server.http,
            "/healthz",
            &token,
            load.connections,
            load.rest_seconds,
        ))?;
        drop(server);

        let median_of = |f: &[serve::Fetch]| median(f.iter().map(|x| x.wall).collect());
        let (fw, gw, lw) = (
            median_of(&streamed.flight),
            median_of(&streamed.flight_large),
            median_of(&streamed.local),
        );
        let tw = median(streamed.tcp.clone());
        // Rates are of the Arrow IPC stream Flight SQL sent, the same data
        // in the layout it travels in.
        let ipc_mib = streamed.flight[0].bytes as f64 / 1024.0 / 1024.0;
        let mib_s = |wall: Duration| ipc_mib / wall.as_secs_f64();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## Serving (`mesh-bench serve`, SF{}, loopback)\n",
            self.scale
        );
        let _ = writeln!(
            out,
            "| measurement | mesh serve | baseline | ratio | goal |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        let (sq, bq) = (c.server.per_second(), c.in_process.per_second());
        let _ = writeln!(
            out,
            "| {} clients ({} Postgres, {} Flight SQL) + {} idle, {} s: queries/s | {:.0} | {:.0} (in-process `Mesh::query_stream`, {} tasks) | {:.2} | 0 errors |",
            load.clients,
            load.clients.div_ceil(2),
            load.clients / 2,
            c.idle_held,
            load.seconds,
            sq,
            bq,
            load.clients,
            sq / bq
        );
        let (p50, p99) = (c.server.quantile_ms(0.5), c.server.quantile_ms(0.99));
        let (b50, b99) = (
            c.in_process.quantile_ms(0.5),
            c.in_process.quantile_ms(0.99),
        );
        let _ = writeln!(
            out,
            "| latency p50 / p99 (ms) | {p50:.1} / {p99:.1} | {b50:.1} / {b99:.1} | {:.2} / {:.2} | |",
            p50 / b50,
            p99 / b99
        );
        let _ = writeln!(
            out,
            "| lineitem over Flight SQL vs DataFusion reading the Parquet (s) | {} ({:.0} MiB/s) | {} ({:.0} MiB/s) | {:.2} | ≤ 1.50 |",
            secs(fw),
            mib_s(fw),
            secs(lw),
            mib_s(lw),
            fw.as_secs_f64() / lw.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "| the same, the client accepting {} KiB HTTP/2 frames (s) | {} ({:.0} MiB/s) | {} | {:.2} | |",
            serve::LARGE_FRAME / 1024,
            secs(gw),
            mib_s(gw),
            secs(lw),
            gw.as_secs_f64() / lw.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "| floor: DataFusion's read plus the stream's bytes through a bare loopback socket (s) | {} + {} = {} | {} | {:.2} | |",
            secs(lw),
            secs(tw),
            secs(lw + tw),
            secs(lw),
            (lw + tw).as_secs_f64() / lw.as_secs_f64()
        );
        let (r, h) = (show.per_second(), health.per_second());
        let _ = writeln!(
            out,
            "| REST catalog show, {} connections: requests/s | {r:.0} | {h:.0} (`/healthz`) | {:.2} | ≥ 5,000 |",
            load.connections,
            r / h
        );
        let (s99, h99) = (show.quantile_ms(0.99), health.quantile_ms(0.99));
        let _ = writeln!(
            out,
            "| REST catalog show: p50 / p99 (ms) | {:.2} / {s99:.2} | {:.2} / {h99:.2} | | p99 < 10 |",
            show.quantile_ms(0.5),
            health.quantile_ms(0.5)
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Errors: {} Postgres, {} Flight SQL, {} REST, {} in-process{}.",
            c.pg.errors,
            c.flight.errors,
            show.errors + health.errors,
            c.in_process.errors,
            [&c.pg, &c.flight, &show, &health, &c.in_process]
                .iter()
                .find_map(|l| l.first_error.as_ref())
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "Queries: {} Postgres ({:.0}/s), {} Flight SQL ({:.0}/s). Server memory (RSS): {:.0} MiB after 5 s, {:.0} MiB at the end, {:.0} MiB at most.",
            c.pg.latencies.len(),
            c.pg.per_second(),
            c.flight.latencies.len(),
            c.flight.per_second(),
            c.rss_warm as f64 / 1024.0,
            c.rss_end as f64 / 1024.0,
            c.rss_max as f64 / 1024.0
        );
        let _ = writeln!(
            out,
            "Streaming: {} rows, {ipc_mib:.0} MiB of Arrow IPC ({:.0} MiB in DataFusion's memory); median of {} after a warm-up round.",
            streamed.flight[0].rows,
            streamed.local[0].bytes as f64 / 1024.0 / 1024.0,
            streamed.flight.len()
        );
        Ok(out)
    }

    fn report(
        &self,
        project: &Path,
        ingest: &Pair,
        queries: &[(&str, Pair)],
        startup: &Pair,
        products: usize,
    ) -> String {
        let csv_bytes: u64 = std::fs::read_dir(project.join("tpch/lineitem/data"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut r = String::new();
        let _ = writeln!(
            r,
            "TPC-H SF{} · {} cores · median of {} · lineitem CSV {:.0} MiB\n",
            self.scale,
            cores,
            self.repeat,
            csv_bytes as f64 / (1 << 20) as f64
        );
        let _ = writeln!(
            r,
            "| measurement | mesh (s) | baseline (s) | ratio | goal |\n|---|---|---|---|---|"
        );
        let _ = writeln!(
            r,
            "{}",
            ingest.row(
                "ingest lineitem: `mesh run` vs DataFusion CSV→Parquet",
                2,
                "≤ 1.30"
            )
        );
        for (name, p) in queries {
            let _ = writeln!(
                r,
                "{}",
                p.row(
                    &format!(
                        "{}: `mesh query` vs DataFusion on the same Parquet",
                        name.to_uppercase()
                    ),
                    2,
                    "≤ 1.10"
                )
            );
        }
        let _ = writeln!(r, "{}", startup.row(&format!("start-up: `mesh query \"SELECT 1\"`, {products} products vs DataFusion `SELECT 1`"), 2, "≤ 0.150 s wall"));
        let _ = writeln!(
            r,
            "\nPeak resident memory of the ingest: mesh {:.0} MiB, DataFusion {:.0} MiB (goal: mesh < 2048 MiB).",
            Pair::peak_mib(&ingest.mesh),
            Pair::peak_mib(&ingest.base)
        );
        r
    }
}
