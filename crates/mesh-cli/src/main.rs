//! `mesh`: the Meshwork command line. It parses arguments, calls the
//! service and prints; nothing else.

mod completions;
mod governance;
mod limits;
mod lineage;
mod migrate;
mod optimize;
mod output;
mod remote;
mod runs;
mod status;
mod vacuum;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use mesh_service::{Mesh, ServiceError};

use crate::output::*;
use crate::runs::{print_run, print_runs};

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

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum QueryFormat {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new mesh project with an example product.
    Init {
        dir: PathBuf,
        /// The catalog's URL (default: SQLite under .mesh/), for
        /// example `sqlite://state/catalog.db`.
        #[arg(long)]
        catalog: Option<String>,
        /// Where tables live (default: .mesh/tables), a path or a
        /// `file:///…` URL.
        #[arg(long)]
        storage: Option<String>,
    },
    /// Print the completion script for a shell (bash, zsh, fish,
    /// elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Build, deploy and run an example mesh with generated data.
    Demo {
        dir: PathBuf,
        /// Number of orders to generate (other tables scale with it).
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
    },
    /// Check every descriptor, its SQL and its contract.
    Validate {
        /// A project directory (default: --project or the current directory).
        path: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Compare the local descriptors with what is deployed: graded contract
    /// changes and the consumers each breaking change breaks.
    Plan {
        path: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Validate, check the contract gate, then register or update products.
    Deploy {
        path: Option<PathBuf>,
        /// Deploy breaking changes without a major version bump; the
        /// override is recorded in the catalog with who and when.
        #[arg(long)]
        allow_breaking: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Build products (default: all) in dependency order. A product
    /// whose definition, upstream versions and source files are unchanged
    /// since its last publication is `up-to-date` and publishes nothing.
    Run {
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
    },
    /// Data contracts in the Open Data Contract Standard (ODCS v3.1.0).
    Contract {
        #[command(subcommand)]
        command: ContractCommand,
    },
    /// Retire a deployed product, such as an older major kept alive
    /// (`sales/orders_v1`): it is no longer built or served.
    Retire { product: String },
    /// Deprecate an older major kept alive (`sales/orders_v1`): its readers
    /// are warned and new consumers refused. The newest major is deprecated
    /// in its product.yaml (`status: deprecated`, `sunset:`).
    Deprecate {
        product: String,
        /// The date it will be retired (YYYY-MM-DD), shown to its readers.
        #[arg(long)]
        sunset: Option<chrono::NaiveDate>,
    },
    /// Every product's health (healthy, degraded, failing) and why, by
    /// domain: data age against the freshness SLO, the last run, the
    /// quality pass rate, upstreams. Exits 1 when any product is failing.
    Status {
        /// Only this domain's products.
        #[arg(long)]
        domain: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
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
    Runs {
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
    },
    /// Run SQL over published products (<domain>.<output>).
    Query {
        sql: String,
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
    },
    /// Discover products.
    #[command(subcommand)]
    Catalog(CatalogCommand),
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
    Serve {
        /// Address of the REST API (port 0: any free port; `off`: none)
        /// [default: 127.0.0.1:8080].
        #[arg(long, env = "MESH_HTTP", value_parser = listen_addr)]
        http: Option<Listen>,
        /// Address of the Postgres wire protocol (`psql -h … -p … -U <principal>`,
        /// a mesh token as the password; `off`: none) [default: 127.0.0.1:5433].
        #[arg(long, env = "MESH_PG", value_parser = listen_addr)]
        pg: Option<Listen>,
        /// Address of Arrow Flight SQL (ADBC, `grpc://…`; `off`: none)
        /// [default: 127.0.0.1:50051].
        #[arg(long, env = "MESH_FLIGHT", value_parser = listen_addr)]
        flight: Option<Listen>,
        /// Serve every protocol over TLS with this PEM certificate chain
        /// (with --tls-key).
        #[arg(long, env = "MESH_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, env = "MESH_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// A configuration file (default: mesh-serve.yaml in the project,
        /// if there is one). Flags and MESH_* variables win over it.
        #[arg(long, env = "MESH_CONFIG")]
        config: Option<PathBuf>,
        /// Also run the scheduler (docs/operations.md) in this process
        /// (`off`: serve only, as when a `mesh scheduler` runs elsewhere).
        #[arg(long, env = "MESH_SCHEDULER", value_enum, default_value_t = OnOff::On)]
        scheduler: OnOff,
        #[command(flatten)]
        limits: limits::LimitArgs,
    },
    /// Keep products fresh: run them on their cron schedules and after
    /// their upstreams publish, with retries (docs/operations.md). Several
    /// schedulers may share a mesh; each run starts once. Stop with Ctrl-C
    /// or SIGTERM (runs in progress get 30 s to finish).
    Scheduler,
    /// Read the audit log: who did what, when, and the decision.
    Audit {
        #[arg(long)]
        product: Option<String>,
        #[arg(long)]
        principal: Option<String>,
        /// Only this action: query, deploy, policy.change, token.create, access.approve, …
        #[arg(long)]
        action: Option<String>,
        /// YYYY-MM-DD or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// The newest entries to show.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
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

#[derive(Subcommand)]
enum ContractCommand {
    /// Write a product's contract as an ODCS v3.1.0 YAML document.
    Export {
        product: String,
        #[arg(long, value_enum, default_value_t = ContractFormat::Odcs)]
        format: ContractFormat,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Create a product.yaml skeleton from an ODCS document.
    Import {
        file: PathBuf,
        /// Write to this file instead of stdout (refuses to overwrite).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ContractFormat {
    Odcs,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Every deployed product.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Releases of a product: when, which product version, and the exact
    /// data version and row count of each output.
    History {
        product: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Everything about one product.
    Show {
        product: String,
        /// Instead: which consumers read which of its columns.
        #[arg(long)]
        usage: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Ranked full-text search.
    Search {
        words: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
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

/// Completes at Ctrl-C or SIGTERM.
/// A listening address, or none (`off`).
#[derive(Debug, Clone, Copy)]
struct Listen(Option<std::net::SocketAddr>);

fn listen_addr(value: &str) -> Result<Listen, String> {
    mesh_spec::serve::parse_listen(value).map(Listen)
}

/// The settings of `mesh serve`: each from its flag or variable, else the
/// configuration file, else the default.
fn serve_settings(
    root: &std::path::Path,
    given: (Option<Listen>, Option<Listen>, Option<Listen>),
    tls: Option<mesh_spec::serve::TlsFiles>,
    config: Option<PathBuf>,
    limits: &limits::LimitArgs,
) -> anyhow::Result<(
    mesh_server::Addresses,
    Option<mesh_spec::serve::TlsFiles>,
    mesh_service::limits::Limits,
)> {
    let implicit = root.join(mesh_spec::serve::SERVE_FILE);
    let path = config.or_else(|| implicit.is_file().then_some(implicit));
    let file = match &path {
        None => mesh_spec::serve::ServeConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            let (file, diagnostics) = mesh_spec::serve::parse_serve_config(path, &text);
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            if errors > 0 {
                print_diagnostics(&diagnostics);
                anyhow::bail!(
                    "{errors} error(s) in the configuration file {}; nothing was started",
                    path.display()
                );
            }
            file
        }
    };
    let pick =
        |flag: Option<Listen>, from_file: Option<Option<std::net::SocketAddr>>, default: &str| {
            flag.map(|l| l.0)
                .or(from_file)
                .unwrap_or_else(|| Some(default.parse().expect("a valid default address")))
        };
    let at = mesh_server::Addresses {
        http: pick(given.0, file.http, "127.0.0.1:8080"),
        pg: pick(given.1, file.pg, "127.0.0.1:5433"),
        flight: pick(given.2, file.flight, "127.0.0.1:50051"),
    };
    let limits = limits.resolve(&file.limits);
    Ok((at, tls.or(file.tls), limits))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// The principal local commands act as.
fn caller() -> mesh_service::Caller {
    mesh_service::Caller::new(user())
}

/// The local user: `MESH_USER`, else the login name.
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
    match cli.command {
        Command::Serve {
            http,
            pg,
            flight,
            tls_cert,
            tls_key,
            config,
            scheduler,
            limits,
        } => {
            let mesh = open(&cli.project, None).await?;
            // A long-running process fails at start when the catalog is
            // out of reach, not at its first request.
            mesh.reach_catalog().await?;
            let root = mesh.root.clone();
            let scheduling = (scheduler == OnOff::On).then(|| mesh.clone());
            let tls = tls_cert
                .zip(tls_key)
                .map(|(cert, key)| mesh_spec::serve::TlsFiles { cert, key });
            let (at, tls, limits) =
                serve_settings(&root, (http, pg, flight), tls, config, &limits)?;
            let mesh = mesh.with_limits(limits);
            if at.http.is_none() && at.pg.is_none() && at.flight.is_none() {
                anyhow::bail!(
                    "every protocol is off; give `--http`, `--pg` or `--flight` an address"
                );
            }
            let tls = tls
                .map(|t| mesh_server::tls::Tls::load(&t.cert, &t.key))
                .transpose()?;
            let mut server = mesh_server::Server::bind(mesh, at).await?;
            if let Some(tls) = tls {
                server = server.with_tls(tls);
            }
            let secure = server.is_tls();
            let mut serving = Vec::new();
            if let Some(addr) = server.http_addr() {
                let scheme = if secure { "https" } else { "http" };
                serving.push(format!("{scheme}://{addr} (OpenAPI: /openapi.json)"));
            }
            if let Some(addr) = server.pg_addr() {
                let tls = if secure { "?sslmode=require" } else { "" };
                serving.push(format!("postgres://{addr}{tls}"));
            }
            if let Some(addr) = server.flight_addr() {
                let scheme = if secure { "grpc+tls" } else { "grpc" };
                serving.push(format!("{scheme}://{addr} (Flight SQL)"));
            }
            let (stop_scheduler, stopped) = tokio::sync::oneshot::channel::<()>();
            let scheduler = scheduling.map(|mesh| {
                let scheduler = mesh_service::scheduler::Scheduler::new(mesh);
                serving.push(format!("the scheduler ({})", scheduler.holder()));
                tokio::spawn(scheduler.run(async {
                    let _ = stopped.await;
                }))
            });
            // Scripts and tests read this line for the bound ports.
            println!("serving {} at {}", root.display(), serving.join(", "));
            {
                use std::io::Write;
                std::io::stdout().flush()?;
            }
            let served = server.run(shutdown_signal()).await;
            let _ = stop_scheduler.send(());
            if let Some(s) = scheduler {
                let _ = s.await;
            }
            served?;
            eprintln!("stopped");
        }
        Command::Scheduler => {
            let mesh = open(&cli.project, None).await?;
            mesh.reach_catalog().await?;
            let root = mesh.root.clone();
            let scheduler = mesh_service::scheduler::Scheduler::new(mesh);
            // Tests read this line to know the scheduler is up.
            println!("scheduling {} as {}", root.display(), scheduler.holder());
            {
                use std::io::Write;
                std::io::stdout().flush()?;
            }
            scheduler.run(shutdown_signal()).await;
            eprintln!("stopped");
        }
        Command::Completions { shell } => return Ok(completions::print::<Cli>(shell)),
        Command::Init {
            dir,
            catalog,
            storage,
        } => {
            mesh_service::init::init_with(
                &dir,
                &mesh_service::init::Backends { catalog, storage },
            )?;
            let me = user();
            Mesh::open(&dir).await?.bootstrap_admin(&me).await?;
            println!("Created a mesh project in {}", dir.display());
            println!("`{me}` is its first principal, with role mesh-admin (policies in policies/)");
            println!(
                "Next: cd {} && mesh validate && mesh deploy && mesh run",
                dir.display()
            );
        }
        Command::Demo { dir, rows } => {
            mesh_service::demo::generate(&dir, rows)?;
            eprintln!(
                "Generated the demo mesh in {} ({rows} orders)",
                dir.display()
            );
            let mesh = Mesh::open(&dir).await?;
            mesh.bootstrap_admin(&user()).await?;
            let (outcome, diagnostics) = mesh.deploy(&user(), false).await?;
            print_diagnostics(&diagnostics);
            eprintln!(
                "Deployed {} products",
                outcome.created.len() + outcome.updated.len() + outcome.unchanged.len()
            );
            let progress = Progress::new();
            let (runs, _) = mesh
                .run(&[], &mesh_service::RunOptions::default(), &progress)
                .await?;
            progress.done();
            print_runs(&runs, false, true)?;
            let ok = runs
                .iter()
                .all(|r| r.status == mesh_service::RunStatus::Succeeded);
            println!(
                "\nTry next:\n  cd {}\n  mesh catalog list\n  mesh catalog search revenue\n  mesh catalog show sales/revenue_by_customer\n  mesh query \"SELECT country, sum(revenue) AS revenue FROM sales.revenue_by_customer GROUP BY country ORDER BY revenue DESC\"\n  mesh query \"SELECT * FROM information_schema.tables WHERE table_catalog = 'mesh'\"\n  mesh runs\n  mesh catalog show sales/orders --usage      # who reads which column\n  mesh catalog history sales/orders          # releases and their data versions\n  mesh contract export sales/orders --format odcs\n  (edit sales/orders/product.yaml, then) mesh plan",
                dir.display()
            );
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Validate { path, format } => {
            let mesh = open(&cli.project, path).await?;
            let (products, diagnostics) = mesh.validate().await?;
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            if format == Format::Json {
                let json: Vec<_> = diagnostics.iter().map(|d| d.to_json()).collect();
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                print_diagnostics(&diagnostics);
                if errors == 0 {
                    println!("{} products valid", products.len());
                }
            }
            if errors > 0 {
                eprintln!("error: {errors} problem(s) found");
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Plan { path, format } => {
            let mesh = open(&cli.project, path).await?;
            let (plans, diagnostics) = mesh.plan().await?;
            print_diagnostics(&diagnostics);
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&plans)?);
            } else {
                print_plan(&plans);
            }
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            if errors > 0 {
                eprintln!(
                    "error: {errors} problem(s) found; `mesh deploy` will refuse until they are fixed"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Deploy {
            path,
            allow_breaking,
            format,
        } => {
            let mesh = open(&cli.project, path).await?;
            let (outcome, diagnostics) = mesh.deploy(&user(), allow_breaking).await?;
            print_diagnostics(&diagnostics);
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&outcome)?);
            } else if outcome.deployment.is_none() {
                println!(
                    "Nothing to deploy: {} products unchanged",
                    outcome.unchanged.len()
                );
            } else {
                for p in &outcome.created {
                    println!("created   {p}");
                }
                for p in &outcome.updated {
                    println!("updated   {p}");
                }
                for p in &outcome.overridden {
                    println!(
                        "override  {p}: breaking changes deployed with --allow-breaking (recorded)"
                    );
                }
                println!("{} unchanged", outcome.unchanged.len());
            }
        }
        Command::Run {
            products,
            force,
            backfill,
            format,
        } => {
            let mesh = open(&cli.project, None).await?;
            let progress = Progress::new();
            let options = mesh_service::RunOptions {
                force: force || backfill,
                cause: if backfill { "backfill" } else { "manual" }.into(),
            };
            let (runs, recovered) = mesh.run(&products, &options, &progress).await?;
            progress.done();
            for r in &recovered {
                eprintln!(
                    "note: closed run {} of {} left open by a stopped process: {}",
                    r.id,
                    r.product,
                    r.status.as_str()
                );
            }
            print_runs(&runs, format == Format::Json, true)?;
            // OpenLineage events still on their way (never fails the run).
            mesh.flush_openlineage(std::time::Duration::from_secs(10))
                .await;
            if runs.iter().any(|r| {
                !matches!(
                    r.status,
                    mesh_service::RunStatus::Succeeded | mesh_service::RunStatus::UpToDate
                )
            }) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Vacuum(args) => {
            let mesh = open(&cli.project, None).await?;
            let report = mesh.vacuum(args.product.as_deref(), args.dry_run).await?;
            vacuum::print(&report, args.dry_run, args.format)?;
        }
        Command::Migrate(args) => {
            let mesh = open(&cli.project, None).await?;
            let done = mesh
                .migrate(&caller(), &args.catalog, args.storage.as_deref())
                .await?;
            migrate::print(&done, args.format)?;
        }
        Command::Optimize(args) => {
            let mesh = open(&cli.project, None).await?;
            let report = mesh.optimize(args.product.as_deref()).await?;
            optimize::print(&report, args.format)?;
        }
        Command::Retire { product } => {
            let mesh = open(&cli.project, None).await?;
            let r = mesh.retire(&product, &user()).await?;
            println!("retired   {r}");
        }
        Command::Deprecate { product, sunset } => {
            let mesh = open(&cli.project, None).await?;
            let r = mesh.deprecate(&product, sunset, &user()).await?;
            match sunset {
                Some(d) => println!("deprecated {r} (sunset {d})"),
                None => println!("deprecated {r}"),
            }
        }
        Command::Contract { command } => match command {
            ContractCommand::Export {
                product,
                format: ContractFormat::Odcs,
                out,
            } => {
                let mesh = open(&cli.project, None).await?;
                let doc = mesh.contract_export(&product).await?;
                let text = mesh_contract::odcs::to_yaml(&doc);
                match out {
                    Some(path) => {
                        std::fs::write(&path, text)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        eprintln!("Wrote {}", path.display());
                    }
                    None => print!("{text}"),
                }
            }
            ContractCommand::Import { file, out } => {
                let (text, notes) = mesh_service::contract::contract_import(&file)?;
                for n in &notes {
                    eprintln!("note: {n}");
                }
                match out {
                    Some(path) if path.exists() => {
                        anyhow::bail!("{} already exists; choose another --out", path.display())
                    }
                    Some(path) => {
                        std::fs::write(&path, text)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        eprintln!(
                            "Wrote {}; fill in its inputs and transform, then `mesh validate`",
                            path.display()
                        );
                    }
                    None => print!("{text}"),
                }
            }
        },
        Command::Lineage(args) => {
            let mesh = open(&cli.project, None).await?;
            let view = mesh
                .lineage(&caller(), &args.target, args.direction(), args.depth)
                .await?;
            lineage::print(&view, args.format)?;
        }
        Command::Status { domain, format } => {
            let mesh = open(&cli.project, None).await?;
            let all = mesh.status(&caller()).await?;
            return status_of(all, domain.as_deref(), format);
        }
        Command::Runs {
            command: Some(RunsCommand::Show { id, format }),
            ..
        } => {
            let mesh = open(&cli.project, None).await?;
            print_run(
                &mesh.run_detail(&caller(), &id).await?,
                format == Format::Json,
            )?;
        }
        Command::Runs {
            command: None,
            product,
            status,
            limit,
            format,
        } => {
            let mesh = open(&cli.project, None).await?;
            let runs = mesh
                .runs(&caller(), product.as_deref(), status.as_deref(), limit)
                .await?;
            print_runs(&runs, format == Format::Json, false)?;
        }
        Command::Query { sql, format } => {
            let mesh = open(&cli.project, None).await?;
            let mut stream = mesh.query_stream(&caller(), &sql).await?;
            return print_query(&mut stream, format).await;
        }
        Command::Principal(cmd) => {
            let mesh = open(&cli.project, None).await?;
            return governance::principal(&mesh, cmd).await;
        }
        Command::Team(cmd) => {
            let mesh = open(&cli.project, None).await?;
            return governance::team(&mesh, cmd).await;
        }
        Command::Token(cmd) => {
            let mesh = open(&cli.project, None).await?;
            return governance::token(&mesh, cmd).await;
        }
        Command::Access(cmd) => {
            let mesh = open(&cli.project, None).await?;
            return governance::access(&mesh, cmd).await;
        }
        Command::Policy(cmd) => {
            let mesh = open(&cli.project, None).await?;
            return governance::policy(&mesh, cmd).await;
        }
        Command::Audit {
            product,
            principal,
            action,
            since,
            limit,
            format,
        } => {
            let mesh = open(&cli.project, None).await?;
            let args = governance::AuditArgs {
                product,
                principal,
                action,
                since,
                limit,
                format,
            };
            return governance::audit(&mesh, args).await;
        }
        Command::Catalog(cmd) => {
            let mesh = open(&cli.project, None).await?;
            match cmd {
                CatalogCommand::List { format } => {
                    print_catalog_list(&mesh.catalog_list(&caller()).await?, format)?;
                }
                CatalogCommand::History { product, format } => {
                    print_history(&mesh.catalog_history(&caller(), &product).await?, format)?;
                }
                CatalogCommand::Show {
                    product,
                    usage: true,
                    format,
                } => {
                    let readers = mesh.column_readers(&caller(), &product).await?;
                    if format == Format::Json {
                        println!("{}", serde_json::to_string_pretty(&readers)?);
                    } else {
                        let rows = readers
                            .iter()
                            .map(|r| {
                                vec![
                                    r.output.clone(),
                                    r.column.clone(),
                                    if r.read_by.is_empty() {
                                        "(no consumer reads it)".into()
                                    } else {
                                        r.read_by.join(", ")
                                    },
                                ]
                            })
                            .collect();
                        println!(
                            "{}",
                            table(
                                ["output", "column", "read by"].map(String::from).to_vec(),
                                rows
                            )
                        );
                    }
                }
                CatalogCommand::Show {
                    product,
                    usage: false,
                    format,
                } => {
                    print_product(&mesh.catalog_show(&caller(), &product).await?, format)?;
                }
                CatalogCommand::Search { words, format } => {
                    let hits = mesh
                        .catalog_search(&caller(), &words.join(" "))
                        .await
                        .context("search failed")?;
                    print_search(&hits, &words, format)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The commands that can ask a server, answered through its REST API and
/// printed as they are locally.
async fn remote_command(client: &remote::Remote, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Query { sql, format } => {
            let mut rows = client.query(&sql).await?;
            print_query(&mut rows, format).await
        }
        Command::Status { domain, format } => {
            let all: Vec<mesh_service::health::ProductHealth> =
                client.list("/api/v1/status", &[], usize::MAX).await?;
            status_of(all, domain.as_deref(), format)
        }
        Command::Runs {
            command: Some(RunsCommand::Show { id, format }),
            ..
        } => {
            let run: mesh_service::RunRecord = client
                .get(&format!("/api/v1/runs/{}", run_path(&id)?))
                .await?;
            print_run(&run, format == Format::Json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs {
            command: None,
            product,
            status,
            limit,
            format,
        } => {
            let mut query = Vec::new();
            if let Some(p) = product {
                query.push(("product", p));
            }
            if let Some(s) = status {
                query.push(("status", s));
            }
            let runs: Vec<mesh_service::RunRecord> = client
                .list("/api/v1/runs", &query, usize::try_from(limit).unwrap_or(0))
                .await?;
            print_runs(&runs, format == Format::Json, false)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog(cmd) => {
            match cmd {
                CatalogCommand::List { format } => {
                    print_catalog_list(
                        &client.list("/api/v1/products", &[], usize::MAX).await?,
                        format,
                    )?;
                }
                CatalogCommand::History { product, format } => {
                    let path = format!("/api/v1/products/{}/history", product_path(&product)?);
                    print_history(&client.list(&path, &[], usize::MAX).await?, format)?;
                }
                CatalogCommand::Show { usage: true, .. } => anyhow::bail!(
                    "`mesh catalog show --usage` reads deployed SQL and works on the local project only; drop --server"
                ),
                CatalogCommand::Show {
                    product, format, ..
                } => {
                    let path = format!("/api/v1/products/{}", product_path(&product)?);
                    print_product(&client.get(&path).await?, format)?;
                }
                CatalogCommand::Search { words, format } => {
                    let hits: Vec<mesh_service::discover::SearchResult> = client
                        .list("/api/v1/search", &[("q", words.join(" "))], usize::MAX)
                        .await?;
                    print_search(&hits, &words, format)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lineage(args) => {
            let direction = match args.direction() {
                mesh_service::lineage::view::Direction::Upstream => "upstream",
                mesh_service::lineage::view::Direction::Downstream => "downstream",
                mesh_service::lineage::view::Direction::Both => "both",
            };
            let mut query = vec![
                ("target", args.target.clone()),
                ("direction", direction.to_string()),
            ];
            if let Some(d) = args.depth {
                query.push(("depth", d.to_string()));
            }
            let view = client.get_with("/api/v1/lineage", &query).await?;
            lineage::print(&view, args.format)?;
            Ok(ExitCode::SUCCESS)
        }
        _ => anyhow::bail!(
            "--server applies to `mesh query`, `mesh catalog`, `mesh lineage`, `mesh status` and `mesh runs`; this command works on a local project (unset MESH_SERVER or drop --server)"
        ),
    }
}

/// Prints `mesh status`; failing products make it exit 1.
fn status_of(
    mut all: Vec<mesh_service::health::ProductHealth>,
    domain: Option<&str>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    if let Some(d) = domain {
        all.retain(|h| h.domain == d);
    }
    status::print_status(&all, format == Format::Json)?;
    Ok(
        if all
            .iter()
            .any(|h| h.health == mesh_service::health::Health::Failing)
        {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// A run id as a URL path segment.
fn run_path(id: &str) -> anyhow::Result<&str> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        anyhow::bail!("`{id}` is not a run id; `mesh runs` lists them");
    }
    Ok(id)
}

/// `<domain>/<name>` as two URL path segments.
fn product_path(product: &str) -> anyhow::Result<String> {
    let (domain, name) = product
        .split_once('/')
        .filter(|(d, n)| !d.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| anyhow::anyhow!("`{product}` is not a product name such as sales/orders"))?;
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !ok(domain) || !ok(name) {
        anyhow::bail!("`{product}` is not a product name such as sales/orders");
    }
    Ok(format!("{domain}/{name}"))
}

/// Rows arriving batch by batch, from the local engine or a server.
trait Batches {
    fn schema(&self) -> mesh_service::arrow::datatypes::SchemaRef;
    fn warnings(&self) -> &[String];
    async fn next_batch(&mut self) -> Option<anyhow::Result<RecordBatch>>;
}

use mesh_service::arrow::array::RecordBatch;

impl Batches for mesh_service::QueryStream {
    fn schema(&self) -> mesh_service::arrow::datatypes::SchemaRef {
        self.schema.clone()
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    async fn next_batch(&mut self) -> Option<anyhow::Result<RecordBatch>> {
        self.next().await.map(|b| b.map_err(Into::into))
    }
}

impl Batches for remote::RemoteRows {
    fn schema(&self) -> mesh_service::arrow::datatypes::SchemaRef {
        remote::RemoteRows::schema(self)
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    async fn next_batch(&mut self) -> Option<anyhow::Result<RecordBatch>> {
        self.next().await
    }
}

/// Prints a query's answer in `format`; CSV and JSON stream, a table
/// needs every row first to size its columns.
async fn print_query(rows: &mut impl Batches, format: QueryFormat) -> anyhow::Result<ExitCode> {
    for w in rows.warnings() {
        eprintln!("warning: {w}");
    }
    if format != QueryFormat::Table {
        return match print_stream(rows, format == QueryFormat::Csv).await {
            Err(e) if is_broken_pipe(&e) => Ok(ExitCode::from(141)),
            other => other.map(|()| ExitCode::SUCCESS),
        };
    }
    let mut batches = Vec::new();
    while let Some(batch) = rows.next_batch().await {
        batches.push(batch?);
    }
    let result = mesh_service::QueryResult {
        schema: rows.schema(),
        batches,
        warnings: Vec::new(),
    };
    let (headers, body) = result.to_strings()?;
    println!("{}", table(headers, body));
    eprintln!("{} row(s)", result.row_count());
    Ok(ExitCode::SUCCESS)
}

/// Writes a query's rows to stdout as they arrive: CSV with a header, or
/// one JSON array of row objects.
async fn print_stream(stream: &mut impl Batches, csv: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if csv {
        let mut writer = datafusion_csv_writer(&mut out);
        let mut wrote = false;
        while let Some(batch) = stream.next_batch().await {
            // CSV cells are text: nested values are written as JSON.
            writer.write(&mesh_service::nested_as_json(&batch?)?)?;
            wrote = true;
        }
        drop(writer);
        if !wrote {
            let schema = stream.schema();
            let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            writeln!(out, "{}", header.join(","))?;
        }
    } else {
        // The writer opens the array at the first row and closes it in
        // `finish`, which writes `[]` when there were no rows.
        let mut writer = mesh_service::arrow::json::ArrayWriter::new(&mut out);
        while let Some(batch) = stream.next_batch().await {
            writer.write(&batch?)?;
        }
        writer.finish()?;
        drop(writer);
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

fn datafusion_csv_writer<W: std::io::Write>(w: W) -> mesh_service::arrow::csv::Writer<W> {
    mesh_service::arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(w)
}

/// Whether an error is a closed stdout (`mesh query … | head`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.to_string().contains("Broken pipe")
    })
}
