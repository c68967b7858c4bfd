//! `mesh serve`'s statement and connection limits: each from its flag or
//! `MESH_*` variable, else the configuration file, else the default.

use std::time::Duration;

use mesh_service::limits::Limits;
use mesh_spec::serve::ServeLimits;

/// A timeout, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Timeout(Option<Duration>);

fn timeout(value: &str) -> Result<Timeout, String> {
    duration(value).map(Timeout)
}

fn duration(value: &str) -> Result<Option<Duration>, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match mesh_spec::parse_duration(value) {
        Some(d) if !d.is_zero() => Ok(Some(d)),
        _ => Err(format!(
            "`{value}` is not a duration such as 30s, 5m or 1h, or `off`"
        )),
    }
}

fn some_duration(value: &str) -> Result<Duration, String> {
    duration(value)?.ok_or_else(|| format!("`{value}`: this limit cannot be off"))
}

fn connections(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{value}` is not a number of connections (1 or more)"))
}

/// The limit flags of `mesh serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Longest a statement may run, on every protocol (`off`: no limit)
    /// [default: 5m].
    #[arg(long, env = "MESH_STATEMENT_TIMEOUT", value_parser = timeout)]
    statement_timeout: Option<Timeout>,
    /// Most memory one statement may hold, such as 2GiB [default: a
    /// quarter of --server-memory].
    #[arg(long, env = "MESH_STATEMENT_MEMORY", value_parser = mesh_spec::serve::parse_bytes)]
    statement_memory: Option<u64>,
    /// Most memory all statements together may hold [default: half the
    /// machine's].
    #[arg(long, env = "MESH_SERVER_MEMORY", value_parser = mesh_spec::serve::parse_bytes)]
    server_memory: Option<u64>,
    /// Most Postgres connections open at once [default: 256].
    #[arg(long, env = "MESH_PG_CONNECTIONS", value_parser = connections)]
    pg_connections: Option<usize>,
    /// Most HTTP connections open at once [default: 1024].
    #[arg(long, env = "MESH_HTTP_CONNECTIONS", value_parser = connections)]
    http_connections: Option<usize>,
    /// Most Flight SQL connections open at once [default: 256].
    #[arg(long, env = "MESH_FLIGHT_CONNECTIONS", value_parser = connections)]
    flight_connections: Option<usize>,
    /// How long a Postgres client has to send its startup and password
    /// [default: 10s].
    #[arg(long, env = "MESH_PG_STARTUP_TIMEOUT", value_parser = some_duration)]
    pg_startup_timeout: Option<Duration>,
}

impl LimitArgs {
    /// The limits: flags and variables, else `file`, else the defaults.
    pub fn resolve(&self, file: &ServeLimits) -> Limits {
        let defaults = Limits::default();
        let server = self
            .server_memory
            .or(file.server_memory)
            .map_or(defaults.server_memory, |b| b as usize);
        // Without a statement share of its own, a quarter of the server's.
        let statement = self
            .statement_memory
            .or(file.statement_memory)
            .map_or(server / 4, |b| b as usize);
        Limits::new(
            statement,
            server,
            self.statement_timeout
                .map(|t| t.0)
                .or(file.statement_timeout)
                .unwrap_or(defaults.statement_timeout),
        )
        .with_pg(
            self.pg_connections
                .or(file.pg_connections.map(|n| n as usize))
                .unwrap_or(defaults.pg_connections),
            self.pg_startup_timeout
                .or(file.pg_startup_timeout)
                .unwrap_or(defaults.pg_startup_timeout),
        )
        .with_connections(
            self.http_connections
                .or(file.http_connections.map(|n| n as usize))
                .unwrap_or(defaults.http_connections),
            self.flight_connections
                .or(file.flight_connections.map(|n| n as usize))
                .unwrap_or(defaults.flight_connections),
        )
    }
}
