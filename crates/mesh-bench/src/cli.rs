//! The command line of `mesh-bench`: its commands and their arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mesh-bench",
    about = "Benchmarks of mesh against DataFusion alone"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

/// Where a benchmark works, and the binary it measures.
#[derive(Args)]
pub(crate) struct Setup {
    /// Working directory (data, meshes, outputs); reused between runs.
    #[arg(long, default_value = "target/bench")]
    pub(crate) work: PathBuf,
    /// The `mesh` binary; default: next to this one.
    #[arg(long)]
    pub(crate) mesh: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Generate data, build the meshes, measure everything, print a report.
    Run {
        /// TPC-H scale factor.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[command(flatten)]
        at: Setup,
        /// Repetitions of each measurement; medians are compared.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Products in the start-up mesh.
        #[arg(long, default_value_t = 100)]
        products: usize,
        /// Also write the report to this file.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// The scheduler: a DAG of trivial products refreshed by `mesh
    /// scheduler` after its source publishes, against the same runs
    /// alone; and a no-op `mesh run` of every product.
    Schedule {
        #[arg(long, default_value_t = 500)]
        products: usize,
        #[arg(long, default_value_t = 10)]
        depth: usize,
        #[command(flatten)]
        at: Setup,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Time `mesh plan` on synthetic meshes of each size, with breaking
    /// changes in 10% of the products, against `mesh validate`.
    Plan {
        /// Mesh sizes (products), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        sizes: Vec<usize>,
        #[command(flatten)]
        at: Setup,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Column lineage on the `plan` benchmark's mesh: `mesh lineage
    /// --downstream` from a source column against `mesh catalog list`,
    /// and the share of `mesh deploy` and `mesh plan` spent on lineage.
    Lineage {
        #[arg(long, default_value_t = 1000)]
        products: usize,
        #[command(flatten)]
        at: Setup,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// TPC-H queries through `mesh query` against the DuckDB CLI reading
    /// the same published Parquet files (and its own), alternating.
    Duckdb {
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[command(flatten)]
        at: Setup,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// The DuckDB CLI (PyPI `duckdb-cli`).
        #[arg(long, default_value = "duckdb")]
        duckdb: PathBuf,
        /// Declare `cluster_by` on lineitem (`l_shipdate`) and orders
        /// (`o_orderdate`), published to `tpch-sf<scale>-clustered`.
        #[arg(long)]
        clustered: bool,
    },
    /// The catalog on PostgreSQL against SQLite (deploy of `--products`,
    /// `catalog show`, a query's planning), on the server `--postgres`
    /// (`postgres://USER@HOST:PORT`, e.g. from scripts/postgres).
    Catalogs {
        #[arg(long, default_value_t = 100)]
        products: usize,
        #[arg(long)]
        postgres: String,
        #[command(flatten)]
        at: Setup,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Tables on an S3 server (e.g. from scripts/s3; keys from the AWS
    /// environment): lineitem's ingest and Q1, Q3, Q5, Q6, Q10 through
    /// `mesh` against DataFusion with object_store on the same server.
    S3 {
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// The server's URL.
        #[arg(long, env = "MESH_TEST_S3_ENDPOINT")]
        endpoint: String,
        /// A bucket for the benchmark alone: the tables live at its root.
        #[arg(long, default_value = "bench")]
        bucket: String,
        #[command(flatten)]
        at: Setup,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Start-up alone: `mesh query "SELECT 1"` on a mesh of `--products`
    /// published products, against DataFusion alone running `SELECT 1`.
    Startup {
        #[arg(long, default_value_t = 100)]
        products: usize,
        #[command(flatten)]
        at: Setup,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Collects the start-up function order release builds link `mesh`
    /// with: runs `mesh query` under Callgrind (Debian `valgrind`) on the
    /// start-up mesh and writes the functions it executed, one symbol per
    /// line. Measure an LTO build of the same source (`--mesh`).
    StartupOrder {
        #[arg(long, default_value_t = 100)]
        products: usize,
        #[command(flatten)]
        at: Setup,
        /// Where to write the order.
        #[arg(long, default_value = "crates/mesh-cli/startup.order")]
        out: PathBuf,
        /// Only report how many of `--out`'s symbols the binary has.
        #[arg(long)]
        check: bool,
    },
    /// lineitem run `--runs` times under `retention: {keep_releases:
    /// --keep}`, then vacuumed: the table's bytes against one release's.
    Storage {
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[command(flatten)]
        at: Setup,
        #[arg(long, default_value_t = 10)]
        runs: usize,
        #[arg(long, default_value_t = 2)]
        keep: u64,
    },
    /// The cost of governance: planning with the policy decision and mask
    /// rewrite against planning without, decisions per second, and TPC-H
    /// Q1 through `mesh query` with and without a mask on lineitem.
    Policy {
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[command(flatten)]
        at: Setup,
        /// Repetitions of the end-to-end query.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Samples of the in-process planning measurement.
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
    /// `mesh serve` under load on loopback: concurrent Postgres and Flight
    /// SQL clients with idle connections held, lineitem streamed over
    /// Flight SQL, and the REST catalog; each against a baseline.
    Serve {
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[command(flatten)]
        at: Setup,
        /// Seconds of the concurrency test.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Active clients, half Postgres and half Flight SQL.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Idle connections held open meanwhile.
        #[arg(long, default_value_t = 200)]
        idle: usize,
        /// Rounds of the streaming comparison.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Seconds of each REST load.
        #[arg(long, default_value_t = 10)]
        rest_seconds: u64,
        /// HTTP connections of the REST load.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Use the published mesh in the work directory as it is (no
        /// deploy and run first).
        #[arg(long)]
        reuse: bool,
    },
    /// HTTP/1.1 load on one path of a running server, for profiling:
    /// prints requests/s and p50/p99.
    HttpLoad {
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        path: String,
        #[arg(long, env = "MESH_TOKEN")]
        token: String,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Fetches one query over Flight SQL from a running server, for
    /// profiling: prints rows, MiB and seconds per round.
    FlightFetch {
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long, default_value = "SELECT * FROM tpch.lineitem")]
        sql: String,
        #[arg(long, env = "MESH_USER")]
        user: String,
        #[arg(long, env = "MESH_TOKEN")]
        token: String,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The largest HTTP/2 frame the client accepts (default 16 KiB).
        #[arg(long)]
        frame: Option<u32>,
    },
    /// Baseline: DataFusion converts CSV files to Parquet.
    DfConvert {
        #[arg(long)]
        table: String,
        #[arg(long)]
        csv: String,
        /// A directory or an `s3://bucket/prefix/`.
        #[arg(long)]
        out: String,
    },
    /// Baseline: DataFusion runs SQL over Parquet directories, prints CSV.
    DfQuery {
        #[arg(long)]
        sql: String,
        /// `name=DIR` (or `name=s3://bucket/prefix/`), registered as
        /// `tpch.name`.
        #[arg(long = "table")]
        tables: Vec<String>,
    },
}
