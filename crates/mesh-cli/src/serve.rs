//! `mesh serve` and `mesh scheduler`: the long-running processes.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use mesh_service::Mesh;

use crate::limits;
use crate::output::print_diagnostics;

#[derive(Args)]
pub struct ServeArgs {
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
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// A listening address, or none (`off`).
#[derive(Debug, Clone, Copy)]
struct Listen(Option<std::net::SocketAddr>);

fn listen_addr(value: &str) -> Result<Listen, String> {
    mesh_spec::serve::parse_listen(value).map(Listen)
}

/// `mesh serve`: binds every protocol asked for, prints where, and
/// serves until Ctrl-C or SIGTERM.
pub async fn serve(mesh: Mesh, args: ServeArgs) -> anyhow::Result<()> {
    // A long-running process fails at start when the catalog is
    // out of reach, not at its first request.
    mesh.reach_catalog().await?;
    let root = mesh.root.clone();
    let scheduling = (args.scheduler == OnOff::On).then(|| mesh.clone());
    let tls = args
        .tls_cert
        .zip(args.tls_key)
        .map(|(cert, key)| mesh_spec::serve::TlsFiles { cert, key });
    let given = (args.http, args.pg, args.flight);
    let (at, tls, limits) = serve_settings(&root, given, tls, args.config, &args.limits)?;
    let mesh = mesh.with_limits(limits);
    if at.http.is_none() && at.pg.is_none() && at.flight.is_none() {
        anyhow::bail!("every protocol is off; give `--http`, `--pg` or `--flight` an address");
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
    announce(&format!(
        "serving {} at {}",
        root.display(),
        serving.join(", ")
    ))?;
    let served = server.run(shutdown_signal()).await;
    let _ = stop_scheduler.send(());
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    served?;
    eprintln!("stopped");
    Ok(())
}

/// `mesh scheduler`: runs products on their schedules until Ctrl-C or
/// SIGTERM.
pub async fn scheduler(mesh: Mesh) -> anyhow::Result<()> {
    mesh.reach_catalog().await?;
    let root = mesh.root.clone();
    let scheduler = mesh_service::scheduler::Scheduler::new(mesh);
    // Tests read this line to know the scheduler is up.
    announce(&format!(
        "scheduling {} as {}",
        root.display(),
        scheduler.holder()
    ))?;
    scheduler.run(shutdown_signal()).await;
    eprintln!("stopped");
    Ok(())
}

/// Prints the line saying a process is up, at once: scripts wait for it.
fn announce(line: &str) -> std::io::Result<()> {
    use std::io::Write;
    println!("{line}");
    std::io::stdout().flush()
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

/// Completes at Ctrl-C or SIGTERM.
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
