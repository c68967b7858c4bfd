//! `mesh-bench s3`: TPC-H with every product's tables on an S3 server.
//! Ingest of lineitem (`mesh run` against DataFusion writing the same
//! Parquet to the same server) and Q1, Q3, Q5, Q6 and Q10 (`mesh query`
//! against DataFusion reading the release's objects through
//! object_store), alternating, in one run. Both sides reach the server
//! the same way: object_store's S3 client, path-style, with the keys of
//! the AWS environment. The tables live at the root of their own bucket
//! (`bench`, which scripts/s3 creates), one scale factor per server.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use crate::{Bench, Pair, queries, tpch};

/// The queries of the S3 comparison.
const NAMES: &[&str] = &["q1", "q3", "q5", "q6", "q10"];

pub fn bench(b: &Bench, endpoint: &str, bucket: &str) -> Result<String> {
    let mut b = b.clone();
    // The baselines' S3 client reads the server from the environment.
    b.baseline_env = vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.to_string()),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
    ];
    let project = b.work.join(format!("tpch-s3-sf{}", b.scale));
    // The bucket's root: s3s-fs names a file after each object's whole
    // key (base64, plus an upload ID while a multipart upload runs), so
    // a release file's key must stay under about 131 bytes there, and
    // `tpch/lineitem/lineitem/r-RUN/part-…` is 129.
    let root = format!("s3://{bucket}");
    let marker = project.join(".generated");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&project);
        eprintln!("generating TPC-H SF{} in {}", b.scale, project.display());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        tpch::generate(&project, b.scale, threads)?;
        std::fs::write(&marker, "")?;
    }
    tpch::write_project(&project)?;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let yaml = project.join("mesh.yaml");
    let mut text = std::fs::read_to_string(&yaml)?;
    text.push_str(&format!(
        "storage: {root}\ns3: {{endpoint: \"{endpoint}\", region: {region}, path_style: true}}\n"
    ));
    std::fs::write(&yaml, text)?;
    b.govern(&project)?;
    b.mesh_ok(&project, &["deploy"])?;
    eprintln!("publishing every table once to {root}");
    b.mesh_ok(&project, &["run"])?;

    // A fresh prefix per repetition, so no side overwrites or lists the
    // other's objects.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let ingest = b.ingest_to(&project, |i| {
        Ok(format!("s3://{bucket}/df/{nonce}-{i}/lineitem/"))
    })?;
    let dirs = b.published_under(&project, &root)?;
    let list: Vec<(&'static str, &'static str)> = NAMES
        .iter()
        .map(|n| {
            queries::QUERIES
                .iter()
                .find(|(q, _)| q == n)
                .copied()
                .with_context(|| format!("no query {n}"))
        })
        .collect::<Result<_>>()?;
    let results = b.queries_on(&project, &dirs, &list)?;
    Ok(report(&b, endpoint, &ingest, &results))
}

fn report(b: &Bench, endpoint: &str, ingest: &Pair, queries: &[(&str, Pair)]) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut r = String::new();
    let _ = writeln!(
        r,
        "## Tables on S3 (`mesh-bench s3`, SF{}, {cores} cores, median of {}, server {endpoint})\n",
        b.scale, b.repeat
    );
    let _ = writeln!(
        r,
        "| measurement | mesh (s) | DataFusion (s) | ratio | goal |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        r,
        "{}",
        ingest.row(
            "ingest lineitem to S3: `mesh run` vs DataFusion CSV→Parquet",
            2,
            "≤ 1.30"
        )
    );
    let (mut mesh, mut base) = (0.0, 0.0);
    for (name, p) in queries {
        mesh += Pair::walls(&p.mesh).as_secs_f64();
        base += Pair::walls(&p.base).as_secs_f64();
        let _ = writeln!(
            r,
            "{}",
            p.row(
                &format!(
                    "{}: `mesh query` vs DataFusion on the same objects",
                    name.to_uppercase()
                ),
                2,
                "≤ 1.10"
            )
        );
    }
    let _ = writeln!(
        r,
        "| the five queries summed | {mesh:.3} | {base:.3} | {:.2} | ≤ 1.10 |",
        mesh / base
    );
    r
}
