//! A running `mesh serve` for the end-to-end tests, and curl.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{USER, ok};

/// A running `mesh serve`, stopped with SIGTERM when dropped.
pub struct Served {
    child: Option<Child>,
    /// `http://host:port` of the REST API.
    pub base: String,
    /// `host:port` of the Postgres protocol.
    pub pg: Option<String>,
    /// `grpc://host:port` of Flight SQL.
    pub flight: Option<String>,
}

impl Served {
    /// Starts `mesh serve` on free loopback ports, with `extra` flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Served {
        Served::start_with(dir, extra, &[])
    }

    /// [`Served::start`] with extra environment variables.
    pub fn start_with(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
        let mut args = vec!["--http", "127.0.0.1:0", "--pg", "127.0.0.1:0"];
        args.extend(["--flight", "127.0.0.1:0"]);
        args.extend(extra);
        Served::spawn(dir, &args, env)
    }

    /// Starts `mesh serve ARGS` with extra environment variables.
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
        let mut command = super::command(dir);
        command
            .arg("serve")
            .args(args)
            .env("MESH_USER", USER)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        // The first line names the bound address; a reader thread keeps
        // the wait bounded.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        // `scheme://host:port`, without a trailing comma or `?options`.
        let find = |scheme: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(scheme))
                .map(|a| {
                    let a = a.trim_end_matches(',');
                    a.split_once('?').map_or(a, |(a, _)| a).to_string()
                })
        };
        let base = find("http://")
            .map(|a| format!("http://{a}"))
            .or_else(|| find("https://").map(|a| format!("https://{a}")))
            .unwrap_or_default();
        let flight = find("grpc://")
            .map(|a| format!("grpc://{a}"))
            .or_else(|| find("grpc+tls://").map(|a| format!("grpc+tls://{a}")));
        let pg = find("postgres://");
        assert!(
            !base.is_empty() || pg.is_some() || flight.is_some(),
            "no address in {line:?}"
        );
        Served {
            child: Some(child),
            base,
            pg,
            flight,
        }
    }

    /// Stops the server with SIGTERM and returns (exited cleanly, stderr).
    pub fn stop(mut self) -> (bool, String) {
        let child = self.child.take().unwrap();
        terminate(&child);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            let _ = child.wait();
        }
    }
}

/// `curl` a path: (HTTP status, content type, body). GET, or POST with a
/// body.
pub fn curl(
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, String) {
    curl_method(None, base, path, token, body)
}

/// `curl -X METHOD` a path.
pub fn curl_method(
    method: Option<&str>,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, String) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "--max-time",
        "60",
        "-w",
        "\n%{http_code} %{content_type}",
    ]);
    if let Some(m) = method {
        c.args(["-X", m]);
    }
    if let Some(t) = token {
        c.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if let Some(b) = body {
        c.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    c.arg(format!("{base}{path}"));
    let out = c.output().expect("curl is installed (.ci/run installs it)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let (code, ctype) = tail.split_once(' ').unwrap_or((tail, ""));
    (code.parse().unwrap(), ctype.to_string(), body.to_string())
}

pub fn body_json(r: &(u16, String, String)) -> Value {
    serde_json::from_str(&r.2).unwrap_or_else(|e| panic!("{e}: {}", r.2))
}

pub fn token(dir: &Path, principal: &str) -> String {
    ok(dir, &["token", "create", "--principal", principal])
        .trim()
        .to_string()
}
