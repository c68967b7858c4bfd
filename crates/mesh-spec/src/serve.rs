//! The `mesh serve` configuration file (`mesh-serve.yaml` beside
//! `mesh.yaml`, or `--config FILE`). Every setting can also come from a
//! flag or a `MESH_*` variable, which win over the file.
//!
//! ```yaml
//! http: 127.0.0.1:8080      # or `off`
//! pg: 127.0.0.1:5433
//! flight: 127.0.0.1:50051
//! tls:                      # optional; all three protocols then use it
//!   cert: certs/server.pem  # PEM chain; relative to this file
//!   key: certs/server.key   # PEM private key
//! limits:                   # optional; defaults in docs/server.md
//!   statement_timeout: 5m   # or `off`
//!   statement_memory: 2GiB  # one statement's share of:
//!   server_memory: 8GiB     # all statements together
//!   pg_connections: 256     # Postgres connections open at once
//!   http_connections: 1024  # HTTP connections open at once
//!   flight_connections: 256 # Flight SQL connections open at once
//!   pg_startup_timeout: 10s # from connecting to sending the password
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::decode::Ctx;
use crate::diagnostic::{Diagnostic, SourceFile};
use crate::yaml;

/// The default name of the file, in the project root.
pub const SERVE_FILE: &str = "mesh-serve.yaml";

/// Where a protocol listens: an address, or `None` for `off`.
pub type Listen = Option<SocketAddr>;

/// Certificate and key files for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the file sets; `None` where it is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeConfig {
    pub http: Option<Listen>,
    pub pg: Option<Listen>,
    pub flight: Option<Listen>,
    pub tls: Option<TlsFiles>,
    pub limits: ServeLimits,
}

/// Statement limits; `None` where the file is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeLimits {
    /// `Some(None)`: `off`, no timeout.
    pub statement_timeout: Option<Option<std::time::Duration>>,
    pub statement_memory: Option<u64>,
    pub server_memory: Option<u64>,
    pub pg_connections: Option<u64>,
    pub http_connections: Option<u64>,
    pub flight_connections: Option<u64>,
    pub pg_startup_timeout: Option<std::time::Duration>,
}

/// Parses a size such as `512MiB`, `2GiB`, `1.5GB` or a number of bytes.
pub fn parse_bytes(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a size such as 512MiB or 2GiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "`{other}` in `{value}` is not a unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ));
        }
    };
    let bytes = number * scale;
    if !(1.0..=1.8e19).contains(&bytes) {
        return Err(format!("`{value}` is not a usable size"));
    }
    Ok(bytes as u64)
}

/// Parses `off` or `host:port` (an IP address and a port).
pub fn parse_listen(value: &str) -> Result<Listen, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e| format!("`{value}` is not an address such as 127.0.0.1:8080, or `off`: {e}"))
}

/// Reads a serve configuration; paths in it are relative to its folder.
/// Every problem is a diagnostic with its `file:line:col`.
pub fn parse_serve_config(path: &Path, text: &str) -> (ServeConfig, Vec<Diagnostic>) {
    let mut config = ServeConfig::default();
    let mut ctx = Ctx::new(SourceFile::new(path, text));
    let base = path.parent().unwrap_or(Path::new("."));
    let node = match yaml::parse(text) {
        Ok(node) => node,
        Err(e) => {
            ctx.error(
                "yaml-syntax",
                e.span,
                format!("invalid YAML: {}", e.message),
            );
            return (config, ctx.diagnostics);
        }
    };
    if node.value == yaml::Value::Null {
        return (config, ctx.diagnostics); // an empty file sets nothing
    }
    let what = "the serve configuration";
    let Some(f) = ctx.fields(&node, what, &["http", "pg", "flight", "tls", "limits"]) else {
        return (config, ctx.diagnostics);
    };
    let listen = |ctx: &mut Ctx, key: &str| -> Option<Listen> {
        let v = ctx.scalar_text(f.get(key)?, key)?;
        match parse_listen(&v.value) {
            Ok(l) => Some(l),
            Err(message) => {
                ctx.error("bad-address", v.span, message).help =
                    Some("write an IP address and a port (port 0: any free port), or `off`".into());
                None
            }
        }
    };
    config.http = listen(&mut ctx, "http");
    config.pg = listen(&mut ctx, "pg");
    config.flight = listen(&mut ctx, "flight");
    if let Some(tls) = f.get("tls")
        && let Some(t) = ctx.fields(tls, "tls", &["cert", "key"])
    {
        let cert = ctx
            .require(&t, "cert", "tls")
            .and_then(|n| ctx.string(n, "tls.cert"));
        let key = ctx
            .require(&t, "key", "tls")
            .and_then(|n| ctx.string(n, "tls.key"));
        if let (Some(cert), Some(key)) = (cert, key) {
            config.tls = Some(TlsFiles {
                cert: base.join(cert.value),
                key: base.join(key.value),
            });
        }
    }
    if let Some(limits) = f.get("limits")
        && let Some(l) = ctx.fields(
            limits,
            "limits",
            &[
                "statement_timeout",
                "statement_memory",
                "server_memory",
                "pg_connections",
                "http_connections",
                "flight_connections",
                "pg_startup_timeout",
            ],
        )
    {
        if let Some(v) = l
            .get("statement_timeout")
            .and_then(|n| ctx.scalar_text(n, "limits.statement_timeout"))
        {
            if v.value.eq_ignore_ascii_case("off") {
                config.limits.statement_timeout = Some(None);
            } else {
                match crate::parse_duration(&v.value) {
                    Some(d) if !d.is_zero() => config.limits.statement_timeout = Some(Some(d)),
                    _ => {
                        ctx.error(
                            "bad-duration",
                            v.span,
                            format!(
                                "`{}` is not a duration such as 30s, 5m or 1h, or `off`",
                                v.value
                            ),
                        );
                    }
                }
            }
        }
        if let Some(v) = l
            .get("pg_startup_timeout")
            .and_then(|n| ctx.scalar_text(n, "limits.pg_startup_timeout"))
        {
            match crate::parse_duration(&v.value) {
                Some(d) if !d.is_zero() => config.limits.pg_startup_timeout = Some(d),
                _ => {
                    ctx.error(
                        "bad-duration",
                        v.span,
                        format!("`{}` is not a duration such as 10s or 1m", v.value),
                    );
                }
            }
        }
        for (key, slot) in [
            ("pg_connections", &mut config.limits.pg_connections),
            ("http_connections", &mut config.limits.http_connections),
            ("flight_connections", &mut config.limits.flight_connections),
        ] {
            if let Some(v) = l.get(key).and_then(|n| ctx.scalar_text(n, key)) {
                match v.value.parse::<u64>() {
                    Ok(n) if n > 0 => *slot = Some(n),
                    _ => {
                        ctx.error(
                            "bad-number",
                            v.span,
                            format!("`{}` is not a number of connections (1 or more)", v.value),
                        );
                    }
                }
            }
        }
        for (key, slot) in [
            ("statement_memory", &mut config.limits.statement_memory),
            ("server_memory", &mut config.limits.server_memory),
        ] {
            if let Some(v) = l.get(key).and_then(|n| ctx.scalar_text(n, key)) {
                match parse_bytes(&v.value) {
                    Ok(b) => *slot = Some(b),
                    Err(message) => {
                        ctx.error("bad-size", v.span, message);
                    }
                }
            }
        }
    }
    (config, ctx.diagnostics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (ServeConfig, Vec<Diagnostic>) {
        parse_serve_config(Path::new("/etc/mesh/mesh-serve.yaml"), text)
    }

    #[test]
    fn reads_addresses_off_and_tls_relative_to_the_file() {
        let (c, d) = parse("http: 0.0.0.0:80\npg: off\ntls:\n  cert: c.pem\n  key: /k.pem\n");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(c.http, Some(Some("0.0.0.0:80".parse().unwrap())));
        assert_eq!(c.pg, Some(None));
        assert_eq!(c.flight, None);
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "/etc/mesh/c.pem".into(),
                key: "/k.pem".into()
            })
        );
        assert_eq!(parse("").0, ServeConfig::default());
    }

    #[test]
    fn reads_limits() {
        let (c, d) = parse(
            "limits:\n  statement_timeout: 30s\n  statement_memory: 512MiB\n  server_memory: 2GiB\n",
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            c.limits.statement_timeout,
            Some(Some(std::time::Duration::from_secs(30)))
        );
        assert_eq!(c.limits.statement_memory, Some(512 << 20));
        assert_eq!(c.limits.server_memory, Some(2 << 30));
        let (c, _) = parse("limits: {statement_timeout: off}\n");
        assert_eq!(c.limits.statement_timeout, Some(None));
        let (_, d) = parse("limits:\n  statement_memory: lots\n  statement_timeout: soon\n");
        let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["bad-duration", "bad-size"], "{d:?}");
    }

    #[test]
    fn points_at_each_problem() {
        let (_, d) = parse("http: localhost:80\nflihgt: off\ntls:\n  cert: c.pem\n");
        let found: Vec<(&str, Option<String>)> = d.iter().map(|d| (d.code, d.position())).collect();
        assert!(
            found.contains(&("bad-address", Some("/etc/mesh/mesh-serve.yaml:1:7".into()))),
            "{found:?}"
        );
        assert!(
            found.iter().any(|(c, p)| *c == "unknown-field"
                && p.as_deref() == Some("/etc/mesh/mesh-serve.yaml:2:1")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|(c, _)| *c == "missing-field"),
            "{found:?}"
        );
        let (_, d) = parse("http: [1\n");
        assert_eq!(d[0].code, "yaml-syntax");
    }
}
