//! The comparisons `mesh-bench run` and `mesh-bench s3` share: `mesh run
//! tpch/lineitem` against DataFusion's CSV-to-Parquet, and TPC-H queries
//! through `mesh query` against DataFusion on the very files the product's
//! current release holds, wherever the tables live.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{Bench, Pair, measure, queries, tpch};

impl Bench {
    /// `mesh run tpch/lineitem` against DataFusion's CSV-to-Parquet into
    /// the work directory.
    pub(crate) fn ingest(&self, project: &Path) -> Result<Pair> {
        let out = self.work.join("df-lineitem");
        self.ingest_to(project, |_| {
            let _ = std::fs::remove_dir_all(&out);
            Ok(out.display().to_string())
        })
    }

    /// `mesh run tpch/lineitem` against DataFusion's CSV-to-Parquet into
    /// `out(i)` for repetition `i` (a directory or an `s3://` prefix),
    /// alternating which goes first.
    pub(crate) fn ingest_to(
        &self,
        project: &Path,
        out: impl Fn(usize) -> Result<String>,
    ) -> Result<Pair> {
        let csv = project.join("tpch/lineitem/data/*.csv");
        let log = self.work.join("ingest.out");
        let mut pair = Pair {
            mesh: Vec::new(),
            base: Vec::new(),
        };
        for i in 0..self.repeat {
            eprintln!("ingest {}/{}", i + 1, self.repeat);
            let mut base = Command::new(&self.me);
            base.envs(self.baseline_env.iter().cloned())
                .args(["df-convert", "--table", "lineitem", "--csv"])
                .arg(&csv)
                .arg("--out")
                .arg(out(i)?);
            // `--force`: the CSV is unchanged, and an unforced run of
            // unchanged inputs publishes nothing.
            let mut mesh = self.mesh_cmd(project, &["run", "tpch/lineitem", "--force"]);
            if i % 2 == 0 {
                pair.mesh.push(measure::run(&mut mesh, &log, true)?);
                pair.base.push(measure::run(&mut base, &log, true)?);
            } else {
                pair.base.push(measure::run(&mut base, &log, true)?);
                pair.mesh.push(measure::run(&mut mesh, &log, true)?);
            }
        }
        Ok(pair)
    }

    /// The Parquet files of each table's current publication, on local disk.
    pub(crate) fn published_dirs(&self, project: &Path) -> Result<Vec<(String, String)>> {
        let root = project.join(".mesh/tables");
        self.published_under(project, &root.display().to_string())
    }

    /// The directory of each table's current publication under the
    /// storage root `root` (a path or an `s3://` URL), ending in `/`.
    pub(crate) fn published_under(
        &self,
        project: &Path,
        root: &str,
    ) -> Result<Vec<(String, String)>> {
        let mut dirs = Vec::new();
        for t in tpch::TABLES {
            let runs: serde_json::Value = serde_json::from_str(&self.mesh_ok(
                project,
                &[
                    "runs",
                    "--product",
                    &format!("tpch/{}", t.name),
                    "--format",
                    "json",
                ],
            )?)?;
            let newest = runs
                .as_array()
                .and_then(|r| r.iter().find(|r| r["status"] == "succeeded"))
                .with_context(|| format!("no succeeded run of tpch/{}", t.name))?;
            // A compacted release reads files of several run directories;
            // the baselines read one.
            if newest["cause"] == "optimize" {
                bail!(
                    "tpch/{} was compacted after its run; the baselines read one run's directory, so publish it again (`mesh run tpch/{} --force`)",
                    t.name,
                    t.name
                );
            }
            let run = newest["id"]
                .as_str()
                .with_context(|| format!("a run of tpch/{} has no id", t.name))?;
            let dir = format!(
                "{}/tpch/{}/{}/r-{run}/",
                root.trim_end_matches('/'),
                t.name,
                t.name
            );
            if !root.starts_with("s3://") && !Path::new(&dir).is_dir() {
                bail!("{dir} is missing");
            }
            dirs.push((t.name.to_string(), dir));
        }
        Ok(dirs)
    }

    /// Each TPC-H query through `mesh query` against DataFusion on the
    /// same local files.
    pub(crate) fn queries(&self, project: &Path) -> Result<Vec<(&'static str, Pair)>> {
        let dirs = self.published_dirs(project)?;
        self.queries_on(project, &dirs, queries::QUERIES)
    }

    /// Each of `list` through `mesh query` against DataFusion reading
    /// `dirs`, alternating; fails unless both print the same answer.
    pub(crate) fn queries_on(
        &self,
        project: &Path,
        dirs: &[(String, String)],
        list: &[(&'static str, &'static str)],
    ) -> Result<Vec<(&'static str, Pair)>> {
        let mut results = Vec::new();
        for (name, sql) in list {
            eprintln!("query {name}");
            let mesh_out = self.work.join(format!("{name}.mesh.csv"));
            let base_out = self.work.join(format!("{name}.datafusion.csv"));
            let mut pair = Pair {
                mesh: Vec::new(),
                base: Vec::new(),
            };
            for i in 0..self.repeat {
                let mut mesh = self.mesh_cmd(project, &["query", sql, "--format", "csv"]);
                let mut base = Command::new(&self.me);
                base.envs(self.baseline_env.iter().cloned())
                    .args(["df-query", "--sql", sql]);
                for (t, d) in dirs {
                    base.arg("--table").arg(format!("{t}={d}"));
                }
                if i % 2 == 0 {
                    pair.mesh.push(measure::run(&mut mesh, &mesh_out, false)?);
                    pair.base.push(measure::run(&mut base, &base_out, false)?);
                } else {
                    pair.base.push(measure::run(&mut base, &base_out, false)?);
                    pair.mesh.push(measure::run(&mut mesh, &mesh_out, false)?);
                }
            }
            let (a, b) = (std::fs::read(&mesh_out)?, std::fs::read(&base_out)?);
            if a != b || a.is_empty() {
                bail!(
                    "{name}: mesh and DataFusion disagree; compare {} and {}",
                    mesh_out.display(),
                    base_out.display()
                );
            }
            results.push((*name, pair));
        }
        Ok(results)
    }
}
