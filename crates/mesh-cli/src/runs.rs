//! `mesh run` and `mesh runs`: building products, run history, one
//! run's timeline, and how runs print.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use mesh_service::{Caller, Mesh, RunRecord, RunStatus};

use crate::Format;
use crate::output::{Progress, table};
use crate::remote::Remote;

#[derive(Args)]
pub struct RunArgs {
    /// Products as <domain>/<product>.
    products: Vec<String>,
    /// Run and publish even what is up to date.
    #[arg(long)]
    force: bool,
    /// Record the runs as a backfill rather than a manual run (implies
    /// --force).
    #[arg(long)]
    backfill: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: Option<RunsCommand>,
    /// Only this product (<domain>/<product>).
    #[arg(long)]
    product: Option<String>,
    /// Only runs with this status: running, succeeded, failed,
    /// up-to-date, skipped, abandoned.
    #[arg(long)]
    status: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: i64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// One run: its timeline (read, transform, checks, commit, with rows
    /// and bytes), check results and log.
    Show {
        /// The run's id, as `mesh runs` lists it.
        id: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// `mesh run`: builds products; exits 1 unless every run succeeded or
/// was up to date.
pub async fn run(mesh: &Mesh, args: RunArgs) -> anyhow::Result<ExitCode> {
    let progress = Progress::new();
    let options = mesh_service::RunOptions {
        force: args.force || args.backfill,
        cause: if args.backfill { "backfill" } else { "manual" }.into(),
    };
    let (runs, recovered) = mesh.run(&args.products, &options, &progress).await?;
    progress.done();
    for r in &recovered {
        eprintln!(
            "note: closed run {} of {} left open by a stopped process: {}",
            r.id,
            r.product,
            r.status.as_str()
        );
    }
    print_runs(&runs, args.format == Format::Json, true)?;
    // OpenLineage events still on their way (never fails the run).
    mesh.flush_openlineage(std::time::Duration::from_secs(10))
        .await;
    let all_ok = runs
        .iter()
        .all(|r| matches!(r.status, RunStatus::Succeeded | RunStatus::UpToDate));
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `mesh runs` on the local project.
pub async fn local(mesh: &Mesh, caller: &Caller, args: RunsArgs) -> anyhow::Result<()> {
    match args.command {
        Some(RunsCommand::Show { id, format }) => {
            print_run(&mesh.run_detail(caller, &id).await?, format == Format::Json)
        }
        None => {
            let runs = mesh
                .runs(
                    caller,
                    args.product.as_deref(),
                    args.status.as_deref(),
                    args.limit,
                )
                .await?;
            print_runs(&runs, args.format == Format::Json, false)
        }
    }
}

/// `mesh runs`, asking a server.
pub async fn remote(client: &Remote, args: RunsArgs) -> anyhow::Result<()> {
    match args.command {
        Some(RunsCommand::Show { id, format }) => {
            let run: RunRecord = client
                .get(&format!("/api/v1/runs/{}", run_path(&id)?))
                .await?;
            print_run(&run, format == Format::Json)
        }
        None => {
            let mut query = Vec::new();
            if let Some(p) = args.product {
                query.push(("product", p));
            }
            if let Some(s) = args.status {
                query.push(("status", s));
            }
            let limit = usize::try_from(args.limit).unwrap_or(0);
            let runs: Vec<RunRecord> = client.list("/api/v1/runs", &query, limit).await?;
            print_runs(&runs, args.format == Format::Json, false)
        }
    }
}

/// A run id as a URL path segment.
fn run_path(id: &str) -> anyhow::Result<&str> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        anyhow::bail!("`{id}` is not a run id; `mesh runs` lists them");
    }
    Ok(id)
}

/// The first line of `text`, at most `max` characters.
fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Why a run ended as it did, in a few words, for the table.
fn why(r: &RunRecord) -> String {
    match (&r.error, r.status) {
        (Some(e), _) => short(e, 72),
        (None, RunStatus::UpToDate) => "nothing it reads changed".into(),
        _ => String::new(),
    }
}

/// A table of runs; with `details`, failed checks, samples and errors follow
/// on stderr.
pub fn print_runs(runs: &[RunRecord], json: bool, details: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(runs)?);
        return Ok(());
    }
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.product.to_string(),
                r.status.as_str().to_string(),
                r.cause.clone(),
                r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                r.duration_ms
                    .map_or_else(String::new, |d| format!("{:.2}s", d as f64 / 1000.0)),
                r.rows_written.map_or_else(String::new, |n| n.to_string()),
                format!(
                    "{}/{}/{}",
                    r.checks_passed, r.checks_failed, r.checks_warned
                ),
                r.publications
                    .iter()
                    .map(|p| format!("{}@{}", p.output, p.table_version))
                    .collect::<Vec<_>>()
                    .join(" "),
                why(r),
            ]
        })
        .collect();
    let headers = [
        "run",
        "product",
        "status",
        "cause",
        "started",
        "duration",
        "rows",
        "checks ok/failed/warn",
        "versions",
        "why",
    ];
    println!(
        "{}",
        table(headers.iter().map(|s| s.to_string()).collect(), rows)
    );
    if details {
        for r in runs {
            print_failures(r);
        }
    }
    Ok(())
}

fn print_failures(r: &RunRecord) {
    for c in r.checks.iter().filter(|c| !c.passed) {
        eprintln!(
            "{} {}: check {}.{} ({}) failed: {}",
            if c.severity == "warn" {
                "warning"
            } else {
                "error"
            },
            r.product,
            c.output,
            c.name,
            c.kind,
            c.observed
        );
        for row in &c.sample {
            eprintln!("    {row}");
        }
    }
    if let Some(e) = &r.error {
        eprintln!("{}: {e}", r.product);
    }
}

/// One run: what it was, its timeline step by step, its checks and log.
pub fn print_run(r: &RunRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("run       {}", r.id);
    println!("product   {} {}", r.product, r.version);
    println!("status    {}", r.status.as_str());
    println!("cause     {} (attempt {})", r.cause, r.attempt);
    println!(
        "started   {}",
        r.started_at.format("%Y-%m-%d %H:%M:%S%.3f UTC")
    );
    if let Some(d) = r.duration_ms {
        println!("duration  {:.3}s", d as f64 / 1000.0);
    }
    if let Some(n) = r.rows_written {
        println!("rows      {n}");
    }
    for p in &r.publications {
        println!(
            "published {}.{} version {} ({} rows)",
            p.domain, p.output, p.table_version, p.row_count
        );
    }
    if let Some(e) = &r.error {
        println!("error     {e}");
    }
    if !r.steps.is_empty() {
        let opt = |n: Option<i64>| n.map_or_else(String::new, |n| n.to_string());
        let rows = r
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.step.clone(),
                    s.output.clone().unwrap_or_default(),
                    format!("+{}ms", s.start_ms),
                    format!("{}ms", s.duration_ms),
                    opt(s.rows_in),
                    opt(s.rows_out),
                    opt(s.bytes),
                    s.detail.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let headers = [
            "step", "output", "at", "took", "rows in", "rows out", "bytes", "detail",
        ];
        println!(
            "{}",
            table(headers.iter().map(|s| s.to_string()).collect(), rows)
        );
    }
    if !r.checks.is_empty() {
        let rows = r
            .checks
            .iter()
            .map(|c| {
                vec![
                    format!("{}.{}", c.output, c.name),
                    c.kind.clone(),
                    c.severity.clone(),
                    if c.passed { "passed" } else { "failed" }.to_string(),
                    c.observed.clone(),
                ]
            })
            .collect();
        let headers = ["check", "kind", "severity", "result", "observed"];
        println!(
            "{}",
            table(headers.iter().map(|s| s.to_string()).collect(), rows)
        );
    }
    for line in &r.log {
        println!("log       {line}");
    }
    Ok(())
}
