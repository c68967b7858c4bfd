//! `mesh`: the Meshwork command line. It parses arguments, calls the
//! service and prints; nothing else. Each command lives in its module;
//! this file holds the argument tree and the dispatch.

mod catalog;
mod completions;
mod contract;
mod governance;
mod lifecycle;
mod limits;
mod lineage;
mod migrate;
mod optimize;
mod output;
mod query;
mod remote;
mod runs;
mod serve;
mod status;
mod vacuum;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mesh_service::{Mesh, ServiceError};

use crate::output::report_error;

#[derive(Parser)]
#[command(
    name = "mesh",
    version,
    about = "Meshwork: a data mesh platform in one binary"
)]
struct Cli {
    /// The mesh project (default: the current directory or its closest parent with mesh.yaml).
    #[arg(long, global = true, env = "MESH_PROJECT")]
    project: Option<PathBuf>,
    /// A `mesh serve` to ask instead of the local project (`query`,
    /// `catalog` and `runs`), e.g. http://127.0.0.1:8080.
    #[arg(long, global = true, env = "MESH_SERVER")]
    server: Option<String>,
    /// The token for --server (prefer the MESH_TOKEN variable: arguments
    /// are visible to other users of the machine).
    #[arg(long, global = true, env = "MESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A CA certificate (PEM) to trust for an https --server.
    #[arg(long, global = true, env = "MESH_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new mesh project with an example product.
    Init(lifecycle::InitArgs),
    /// Print the completion script for a shell (bash, zsh, fish,
    /// elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Build, deploy and run an example mesh with generated data.
    Demo(lifecycle::DemoArgs),
    /// Check every descriptor, its SQL and its contract.
    Validate(lifecycle::CheckArgs),
    /// Compare the local descriptors with what is deployed: graded contract
    /// changes and the consumers each breaking change breaks.
    Plan(lifecycle::CheckArgs),
    /// Validate, check the contract gate, then register or update products.
    Deploy(lifecycle::DeployArgs),
    /// Build products (default: all) in dependency order. A product
    /// whose definition, upstream versions and source files are unchanged
    /// since its last publication is `up-to-date` and publishes nothing.
    Run(runs::RunArgs),
    /// Data contracts in the Open Data Contract Standard (ODCS v3.1.0).
    Contract {
        #[command(subcommand)]
        command: contract::ContractCommand,
    },
    /// Retire a deployed product, such as an older major kept alive
    /// (`sales/orders_v1`): it is no longer built or served.
    Retire { product: String },
    /// Deprecate an older major kept alive (`sales/orders_v1`): its readers
    /// are warned and new consumers refused. The newest major is deprecated
    /// in its product.yaml (`status: deprecated`, `sunset:`).
    Deprecate(lifecycle::DeprecateArgs),
    /// Every product's health (healthy, degraded, failing) and why, by
    /// domain: data age against the freshness SLO, the last run, the
    /// quality pass rate, upstreams. Exits 1 when any product is failing.
    Status(status::StatusArgs),
    /// Column lineage: where each column of a product, output or column
    /// comes from and what reads it, across domains. Products you may not
    /// see appear as redacted nodes.
    Lineage(lineage::LineageArgs),
    /// Applies retention: expires the data versions no rule keeps and
    /// removes the files only they read, reporting the bytes freed.
    Vacuum(vacuum::VacuumArgs),
    /// Compacts the small files of each output's current release into
    /// target-sized ones, as a Delta version that changes no data.
    Optimize(optimize::OptimizeArgs),
    /// Move the mesh, with its whole history (releases, runs, audit log,
    /// identities, grants), to another catalog and storage root, verify
    /// it, and point mesh.yaml at them. Safe to run again if interrupted.
    Migrate(migrate::MigrateArgs),
    /// Run history, newest first; `mesh runs show ID` for one run.
    Runs(runs::RunsArgs),
    /// Run SQL over published products (<domain>.<output>).
    Query(query::QueryArgs),
    /// Discover products.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Users and service accounts.
    #[command(subcommand)]
    Principal(governance::PrincipalCommand),
    /// Teams and the domains they own.
    #[command(subcommand)]
    Team(governance::TeamCommand),
    /// API tokens for the servers.
    #[command(subcommand)]
    Token(governance::TokenCommand),
    /// Request, grant and revoke access to products.
    #[command(subcommand)]
    Access(governance::AccessCommand),
    /// Test and debug the Rego policies.
    #[command(subcommand)]
    Policy(governance::PolicyCommand),
    /// Serve the mesh over the network: the REST API, the Postgres wire
    /// protocol and Arrow Flight SQL (see docs/server.md). Every request needs a mesh token;
    /// stop with Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Keep products fresh: run them on their cron schedules and after
    /// their upstreams publish, with retries (docs/operations.md). Several
    /// schedulers may share a mesh; each run starts once. Stop with Ctrl-C
    /// or SIGTERM (runs in progress get 30 s to finish).
    Scheduler,
    /// Read the audit log: who did what, when, and the decision.
    Audit(governance::AuditArgs),
}

/// Keeps a closed stdout, and one known, harmless library panic, off the
/// user's terminal.
///
/// When a Parquet upload fails at completion (for example on a full disk),
/// deltalake calls `BufWriter::abort` inside `catch_unwind`; object_store
/// panics there by design ("Already shut down"), deltalake catches it and
/// returns the real I/O error, which `mesh run` reports. Every other panic
/// is printed as usual.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str));
        // `mesh … | head`: the reader went away. Stop quietly, with the
        // status a process killed by SIGPIPE has.
        if message
            .is_some_and(|m| m.starts_with("failed printing to std") && m.contains("Broken pipe"))
        {
            std::process::exit(141);
        }
        let in_object_store = info.location().is_some_and(|l| {
            l.file().contains("object_store") && l.file().ends_with("buffered.rs")
        });
        if !(in_object_store && message == Some("Already shut down")) {
            default(info);
        }
    }));
}

/// Statements, plans and lineage allocate many small, short-lived
/// values; mimalloc frees them faster than the system allocator (as
/// DataFusion's own CLI does). Measured in BENCHMARKS.md. Built with
/// `no_thp`: mimalloc does not ask for transparent huge pages, whose
/// zeroing (2 MiB at a first touch) was a fifth of a short command's
/// time and bought the TPC-H queries nothing (BENCHMARKS.md, start-up).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        // Needs neither a project nor a runtime.
        return completions::print::<Cli>(shell);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MESH_LOG")
                // deltalake warns that a failed upload's parts are left for
                // the store to clean up; a failed run removes its whole
                // `r-<run>/` prefix itself, so that warning would mislead.
                .unwrap_or_else(|_| {
                    "warn,buoyant_kernel=off,deltalake_core::datafile::writer=error".into()
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    // Statements may nest up to `mesh_query::complexity::MAX_DEPTH`
    // levels; planning them recursively needs stacks larger than tokio's
    // 2 MiB default. Pages are only committed as they are used.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(64 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The command runs on a thread with as large a stack as the workers',
    // not on `main`'s 8 MiB.
    let command = std::thread::Builder::new()
        .name("mesh".into())
        .stack_size(64 << 20)
        .spawn(move || runtime.block_on(run(cli)));
    let outcome = match command.map(std::thread::JoinHandle::join) {
        Ok(Ok(outcome)) => outcome,
        // A panic has printed itself already.
        Ok(Err(_)) => return ExitCode::FAILURE,
        Err(e) => Err(anyhow::anyhow!("cannot start the command's thread: {e}")),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            report_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// The principal local commands act as.
fn caller() -> mesh_service::Caller {
    mesh_service::Caller::new(user())
}

/// Who the command acts as: `MESH_USER`, else the login name, else
/// `unknown` (cron, containers), which is said once on stderr, since
/// such a caller usually sees no product at all.
fn user() -> String {
    std::env::var("MESH_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "note: acting as principal `unknown`: neither MESH_USER nor USER is set (set MESH_USER to a principal of this mesh)"
                );
            });
            "unknown".into()
        })
}

/// The project at `path`, else `--project`, else the current directory
/// (or its closest parent with mesh.yaml).
async fn open(project: &Option<PathBuf>, path: Option<PathBuf>) -> Result<Mesh, ServiceError> {
    let dir = path
        .or_else(|| project.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    Mesh::open(&dir).await
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(server) = &cli.server {
        let client = remote::Remote::new(server, cli.token.clone(), cli.ca_cert.as_deref())?;
        return remote_command(&client, cli.command).await;
    }
    let project = &cli.project;
    match cli.command {
        Command::Serve(args) => serve::serve(open(project, None).await?, args).await?,
        Command::Scheduler => serve::scheduler(open(project, None).await?).await?,
        Command::Completions { shell } => return Ok(completions::print::<Cli>(shell)),
        Command::Init(args) => lifecycle::init(args, &user()).await?,
        Command::Demo(args) => return lifecycle::demo(args, &user()).await,
        Command::Validate(args) => {
            let mesh = open(project, args.path.clone()).await?;
            return lifecycle::validate(&mesh, args).await;
        }
        Command::Plan(args) => {
            let mesh = open(project, args.path.clone()).await?;
            return lifecycle::plan(&mesh, args).await;
        }
        Command::Deploy(args) => {
            let mesh = open(project, args.path.clone()).await?;
            lifecycle::deploy(&mesh, args, &user()).await?;
        }
        Command::Run(args) => return runs::run(&open(project, None).await?, args).await,
        Command::Vacuum(args) => {
            let mesh = open(project, None).await?;
            let report = mesh.vacuum(args.product.as_deref(), args.dry_run).await?;
            vacuum::print(&report, args.dry_run, args.format)?;
        }
        Command::Migrate(args) => {
            let mesh = open(project, None).await?;
            let done = mesh
                .migrate(&caller(), &args.catalog, args.storage.as_deref())
                .await?;
            migrate::print(&done, args.format)?;
        }
        Command::Optimize(args) => {
            let mesh = open(project, None).await?;
            let report = mesh.optimize(args.product.as_deref()).await?;
            optimize::print(&report, args.format)?;
        }
        Command::Retire { product } => {
            lifecycle::retire(&open(project, None).await?, &product, &user()).await?;
        }
        Command::Deprecate(args) => {
            lifecycle::deprecate(&open(project, None).await?, args, &user()).await?;
        }
        Command::Contract { command } => contract::contract(project, command).await?,
        Command::Lineage(args) => {
            lineage::local(&open(project, None).await?, &caller(), args).await?;
        }
        Command::Status(args) => {
            return status::local(&open(project, None).await?, &caller(), args).await;
        }
        Command::Runs(args) => runs::local(&open(project, None).await?, &caller(), args).await?,
        Command::Query(args) => {
            return query::local(&open(project, None).await?, &caller(), args).await;
        }
        Command::Principal(cmd) => {
            return governance::principal(&open(project, None).await?, cmd).await;
        }
        Command::Team(cmd) => return governance::team(&open(project, None).await?, cmd).await,
        Command::Token(cmd) => return governance::token(&open(project, None).await?, cmd).await,
        Command::Access(cmd) => {
            return governance::access(&open(project, None).await?, cmd).await;
        }
        Command::Policy(cmd) => {
            return governance::policy(&open(project, None).await?, cmd).await;
        }
        Command::Audit(args) => return governance::audit(&open(project, None).await?, args).await,
        Command::Catalog(cmd) => {
            catalog::local(&open(project, None).await?, &caller(), cmd).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The commands that can ask a server, answered through its REST API and
/// printed as they are locally.
async fn remote_command(client: &remote::Remote, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Query(args) => return query::remote(client, args).await,
        Command::Status(args) => return status::remote(client, args).await,
        Command::Runs(args) => runs::remote(client, args).await?,
        Command::Catalog(cmd) => catalog::remote(client, cmd).await?,
        Command::Lineage(args) => lineage::remote(client, args).await?,
        _ => anyhow::bail!(
            "--server applies to `mesh query`, `mesh catalog`, `mesh lineage`, `mesh status` and `mesh runs`; this command works on a local project (unset MESH_SERVER or drop --server)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
