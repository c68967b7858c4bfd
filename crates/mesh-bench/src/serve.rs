//! `mesh serve` under load, on loopback: concurrent Postgres and Flight SQL
//! clients with idle connections held open, streaming lineitem over Flight
//! SQL, and the REST catalog. Each figure has a baseline measured in the
//! same run (see BENCHMARKS.md).
//!
//! The clients are real protocol clients (tokio-postgres, arrow-flight's
//! Flight SQL client, HTTP/1.1 over a socket), run in this process; the
//! server is the `mesh` binary in its own process. Every loop is bounded
//! by a deadline.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

/// The short product query every load client repeats.
pub const SHORT_QUERY: &str = "SELECT n_name, n_regionkey FROM tpch.nation WHERE n_nationkey = 7";

/// A running `mesh serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub pg: SocketAddr,
    pub flight: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(mesh: &Path, project: &Path) -> Result<Server> {
        Server::start_on(mesh, project, None)
    }

    /// [`Server::start`] with the catalog at `catalog` (`MESH_CATALOG_URL`).
    pub fn start_on(mesh: &Path, project: &Path, catalog: Option<&str>) -> Result<Server> {
        let mut command = Command::new(mesh);
        match catalog {
            Some(url) => command.env("MESH_CATALOG_URL", url),
            None => command.env_remove("MESH_CATALOG_URL"),
        };
        let mut child = command
            .args(["serve", "--http", "127.0.0.1:0", "--pg", "127.0.0.1:0"])
            .args(["--flight", "127.0.0.1:0"])
            .current_dir(project)
            .env("MESH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .context("mesh serve did not start within 60 s")?;
        let find = |scheme: &str| -> Result<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(scheme))
                .map(|a| a.trim_end_matches(','))
                .with_context(|| format!("no {scheme} address in {line:?}"))?
                .parse()
                .context("bad address")
        };
        Ok(Server {
            http: find("http://")?,
            pg: find("postgres://")?,
            flight: find("grpc://")?,
            child,
        })
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// Latencies of one measured loop, and what went wrong.
#[derive(Clone, Default)]
pub struct Loop {
    pub latencies: Vec<Duration>,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl Loop {
    fn merge(&mut self, other: Loop) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q`th quantile latency in milliseconds.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1].as_secs_f64() * 1e3
    }
}

pub(crate) async fn pg_client(
    addr: SocketAddr,
    user: &str,
    token: &str,
) -> Result<tokio_postgres::Client> {
    let config = format!(
        "host={} port={} user={user} password={token} dbname=mesh",
        addr.ip(),
        addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A Flight SQL client, handshaken. `frame` is the largest HTTP/2 frame
/// it accepts; gRPC clients default to 16 KiB.
pub async fn flight_client(
    addr: SocketAddr,
    user: &str,
    token: &str,
    frame: Option<u32>,
) -> Result<FlightSqlServiceClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(30))
        .max_frame_size(frame)
        .connect()
        .await?;
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake(user, token).await?;
    Ok(client)
}

/// Runs `sql` over Flight SQL and decodes every batch; the rows, and the
/// bytes of Arrow IPC received (message headers and bodies).
pub async fn flight_fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<(usize, usize)> {
    use arrow_flight::decode::DecodedPayload;
    let info = client.execute(sql.to_string(), None).await?;
    let mut rows = 0;
    let mut bytes = 0;
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.context("an endpoint without a ticket")?;
        let mut stream = client.do_get(ticket).await?.into_inner();
        while let Some(data) = stream.next().await {
            let data = data?;
            bytes += data.inner.data_header.len() + data.inner.data_body.len();
            if let DecodedPayload::RecordBatch(batch) = data.payload {
                rows += batch.num_rows();
            }
        }
    }
    Ok((rows, bytes))
}

/// What the concurrency test measured.
pub struct Concurrency {
    pub server: Loop,
    pub pg: Loop,
    pub flight: Loop,
    pub in_process: Loop,
    pub idle_held: usize,
    /// Server RSS (KiB) once every client ran for a while, and at the end.
    pub rss_warm: u64,
    pub rss_end: u64,
    pub rss_max: u64,
}

/// `clients` clients (half Postgres, half Flight SQL) repeat
/// [`SHORT_QUERY`] for `seconds`, with `idle` further connections held
/// open; then the same number of tasks run it in-process through
/// `Mesh::query_stream` for the same time (the baseline).
pub async fn concurrency(
    server: &Server,
    project: &Path,
    user: &str,
    token: &str,
    clients: usize,
    idle: usize,
    seconds: u64,
) -> Result<Concurrency> {
    // Held open for the whole run: half Postgres sessions, half Flight
    // SQL channels, each authenticated.
    let mut idle_pg = Vec::new();
    let mut idle_flight = Vec::new();
    for i in 0..idle {
        if i % 2 == 0 {
            idle_pg.push(
                pg_client(server.pg, user, token)
                    .await
                    .context("an idle Postgres connection")?,
            );
        } else {
            idle_flight.push(
                flight_client(server.flight, user, token, None)
                    .await
                    .context("an idle Flight connection")?,
            );
        }
    }
    let idle_held = idle_pg.len() + idle_flight.len();
    eprintln!("holding {idle_held} idle connections; {clients} clients for {seconds} s");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..clients {
        let (user, token) = (user.to_string(), token.to_string());
        let (pg, flight) = (server.pg, server.flight);
        tasks.spawn(async move {
            let mut out = Loop::default();
            if i % 2 == 0 {
                let client = match pg_client(pg, &user, &token).await {
                    Ok(c) => c,
                    Err(e) => {
                        out.fail(e);
                        return (true, out);
                    }
                };
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match client.query(SHORT_QUERY, &[]).await {
                        Ok(rows) if rows.len() == 1 => out.latencies.push(t.elapsed()),
                        Ok(rows) => out.fail(format!("{} rows instead of 1", rows.len())),
                        Err(e) => out.fail(e),
                    }
                }
                (true, out)
            } else {
                let mut client = match flight_client(flight, &user, &token, None).await {
                    Ok(c) => c,
                    Err(e) => {
                        out.fail(e);
                        return (false, out);
                    }
                };
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match flight_fetch(&mut client, SHORT_QUERY).await {
                        Ok((1, _)) => out.latencies.push(t.elapsed()),
                        Ok((n, _)) => out.fail(format!("{n} rows instead of 1")),
                        Err(e) => out.fail(e),
                    }
                }
                (false, out)
            }
        });
    }
    // Memory, sampled every second while the clients run.
    let mut rss = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(kib) = server.rss_kib() {
            rss.push(kib);
        }
    }
    let (mut pg_loop, mut flight_loop) = (Loop::default(), Loop::default());
    while let Some(done) = tasks.join_next().await {
        let (is_pg, l) = done?;
        if is_pg {
            pg_loop.merge(l);
        } else {
            flight_loop.merge(l);
        }
    }
    let elapsed = started.elapsed();
    pg_loop.elapsed = elapsed;
    flight_loop.elapsed = elapsed;
    let mut all = Loop {
        elapsed,
        ..Loop::default()
    };
    all.merge(pg_loop.clone());
    all.merge(flight_loop.clone());
    // Idle connections must still answer after the run.
    if let Some(c) = idle_pg.first() {
        c.query(SHORT_QUERY, &[])
            .await
            .context("an idle Postgres connection after the run")?;
    }
    if let Some(c) = idle_flight.first_mut() {
        flight_fetch(c, SHORT_QUERY)
            .await
            .context("an idle Flight connection after the run")?;
    }
    drop((idle_pg, idle_flight));
    let warm_at = rss.len().min(5).saturating_sub(1);
    let in_process = in_process_loop(project, user, clients, seconds).await?;
    Ok(Concurrency {
        server: all,
        pg: pg_loop,
        flight: flight_loop,
        in_process,
        idle_held,
        rss_warm: rss.get(warm_at).copied().unwrap_or(0),
        rss_end: rss.last().copied().unwrap_or(0),
        rss_max: rss.iter().copied().max().unwrap_or(0),
    })
}

/// The baseline of the concurrency test: the same query through the
/// service layer in this process, no network and no protocol.
async fn in_process_loop(project: &Path, user: &str, tasks: usize, seconds: u64) -> Result<Loop> {
    let mesh = Arc::new(mesh_service::Mesh::open(project).await?);
    let caller = mesh_service::Caller::new(user);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (mesh, caller) = (mesh.clone(), caller.clone());
        set.spawn(async move {
            let mut out = Loop::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                let result = async {
                    let mut s = mesh.query_stream(&caller, SHORT_QUERY).await?;
                    let mut rows = 0;
                    while let Some(b) = s.next().await {
                        rows += b?.num_rows();
                    }
                    Ok::<_, mesh_service::ServiceError>(rows)
                }
                .await;
                match result {
                    Ok(1) => out.latencies.push(t.elapsed()),
                    Ok(n) => out.fail(format!("{n} rows instead of 1")),
                    Err(e) => out.fail(e),
                }
            }
            out
        });
    }
    gather(set, started).await
}

/// One fetch of a whole table: wall time, rows, and bytes (Arrow IPC
/// received over Flight SQL; in memory for DataFusion).
pub struct Fetch {
    pub wall: Duration,
    pub rows: usize,
    pub bytes: usize,
}

/// The largest HTTP/2 frame of the second Flight SQL client.
pub const LARGE_FRAME: u32 = 1 << 20;

/// What the streaming comparison measured, one entry per round.
pub struct Streaming {
    /// Flight SQL, the client accepting gRPC's default 16 KiB frames.
    pub flight: Vec<Fetch>,
    /// Flight SQL, the client accepting [`LARGE_FRAME`] frames.
    pub flight_large: Vec<Fetch>,
    /// DataFusion reading the Parquet files in this process: the baseline.
    pub local: Vec<Fetch>,
    /// The Flight stream's bytes through a bare loopback TCP socket.
    pub tcp: Vec<Duration>,
}

/// `SELECT * FROM tpch.lineitem` over Flight SQL by two clients, and
/// DataFusion alone reading the same Parquet files in this process; then
/// the bytes Flight SQL moved, sent through a bare loopback socket. The
/// order rotates from round to round.
pub async fn streaming(
    server: &Server,
    user: &str,
    token: &str,
    parquet_dir: &str,
    repeat: usize,
) -> Result<Streaming> {
    const SQL: &str = "SELECT * FROM tpch.lineitem";
    let mut small = flight_client(server.flight, user, token, None).await?;
    let mut large = flight_client(server.flight, user, token, Some(LARGE_FRAME)).await?;
    let mut out = Streaming {
        flight: Vec::new(),
        flight_large: Vec::new(),
        local: Vec::new(),
        tcp: Vec::new(),
    };
    let over = |fetch: (usize, usize), t: Instant| Fetch {
        wall: t.elapsed(),
        rows: fetch.0,
        bytes: fetch.1,
    };
    let mut bytes = 0;
    // One round to warm the page cache, then measured rounds.
    for i in 0..=repeat {
        eprintln!("lineitem over Flight SQL and locally, round {i}/{repeat}");
        let (mut f, mut g, mut l, mut w) = (None, None, None, None);
        for step in 0..4 {
            let t = Instant::now();
            match (step + i) % 4 {
                0 => {
                    let x = over(flight_fetch(&mut small, SQL).await?, t);
                    bytes = x.bytes;
                    f = Some(x);
                }
                1 => g = Some(over(flight_fetch(&mut large, SQL).await?, t)),
                2 => l = Some(local_fetch(parquet_dir).await?),
                // The stream's size is known from the first round on,
                // which fetches over Flight SQL first.
                _ => w = Some(tokio::task::spawn_blocking(move || loopback_tcp(bytes)).await??),
            }
        }
        let (f, g, l, w): (Fetch, Fetch, Fetch, Duration) = (
            f.context("no fetch")?,
            g.context("no fetch")?,
            l.context("no read")?,
            w.context("no transfer")?,
        );
        for x in [&f, &g] {
            if x.rows != l.rows {
                bail!(
                    "Flight SQL fetched {} rows, DataFusion read {}",
                    x.rows,
                    l.rows
                );
            }
        }
        if i > 0 {
            out.flight.push(f);
            out.flight_large.push(g);
            out.local.push(l);
            out.tcp.push(w);
        }
    }
    Ok(out)
}

/// `bytes` bytes from one thread to another through a loopback TCP
/// socket, 1 MiB per write and read: the least any protocol pays to move
/// them on this machine.
fn loopback_tcp(bytes: usize) -> Result<Duration> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let t = Instant::now();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut socket, _) = listener.accept()?;
        let chunk = vec![7u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            socket.write_all(&chunk[..n])?;
            left -= n;
        }
        Ok(())
    });
    let mut socket = std::net::TcpStream::connect(addr)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    loop {
        match socket.read(&mut buf)? {
            0 => break,
            n => got += n,
        }
    }
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sending thread panicked"))??;
    if got != bytes {
        bail!("sent {bytes} bytes over loopback, received {got}");
    }
    Ok(t.elapsed())
}

async fn local_fetch(dir: &str) -> Result<Fetch> {
    let t = Instant::now();
    let ctx = SessionContext::new();
    ctx.register_parquet("lineitem", dir, ParquetReadOptions::default())
        .await?;
    let mut stream = ctx
        .sql("SELECT * FROM lineitem")
        .await?
        .execute_stream()
        .await?;
    let (mut rows, mut bytes) = (0, 0);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
    }
    Ok(Fetch {
        wall: t.elapsed(),
        rows,
        bytes,
    })
}

/// `connections` HTTP/1.1 keep-alive connections GET `path` for
/// `seconds`; every answer must be a 200.
pub async fn http_load(
    addr: SocketAddr,
    path: &str,
    token: &str,
    connections: usize,
    seconds: u64,
) -> Result<Loop> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let request = request.clone();
        set.spawn(async move {
            let mut out = Loop::default();
            let mut socket = match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(e) => {
                    out.fail(e);
                    return out;
                }
            };
            let _ = socket.set_nodelay(true);
            let mut buf = Vec::with_capacity(64 * 1024);
            while Instant::now() < deadline {
                let t = Instant::now();
                match exchange(&mut socket, request.as_bytes(), &mut buf).await {
                    Ok(200) => out.latencies.push(t.elapsed()),
                    Ok(status) => {
                        out.fail(format!("status {status}"));
                        break;
                    }
                    Err(e) => {
                        out.fail(e);
                        break;
                    }
                }
            }
            out
        });
    }
    gather(set, started).await
}

/// Sends one request and reads its answer (`Content-Length` framing);
/// returns the status.
async fn exchange(
    socket: &mut tokio::net::TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<u16> {
    socket.write_all(request).await?;
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let header_end = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            bail!("headers longer than 64 KiB");
        }
    };
    let head = std::str::from_utf8(&buf[..header_end])?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .context("an answer without Content-Length")?;
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection mid-answer");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

/// Merges the loops of `set` as they finish; the elapsed time runs from
/// `started`.
async fn gather(mut set: tokio::task::JoinSet<Loop>, started: Instant) -> Result<Loop> {
    let mut all = Loop::default();
    while let Some(l) = set.join_next().await {
        all.merge(l?);
    }
    all.elapsed = started.elapsed();
    Ok(all)
}
