//! Start-up: `mesh query "SELECT 1"` on a mesh of many small products,
//! against DataFusion alone running `SELECT 1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::measure;
use crate::{Bench, Pair};

impl Bench {
    /// `mesh query "SELECT 1"` on a mesh of `products` deployed products.
    pub(crate) fn startup(&self, products: usize) -> Result<Pair> {
        let project = self.startup_mesh(products)?;
        let out = self.work.join("select1.out");
        // How a binary's pages came into the page cache decides how many
        // faults its start takes: the same file read by `cat` (large
        // folios) starts the baseline 15% faster than when exec faulted it
        // in. Both sides start from copies dropped from the cache, so each
        // one's warm-up run faults its pages in the same way.
        let mesh = cold_copy(&self.mesh, &self.work.join("startup-mesh"))?;
        let me = cold_copy(&self.me, &self.work.join("startup-baseline"))?;
        let mut pair = Pair {
            mesh: Vec::new(),
            base: Vec::new(),
        };
        // Start-up is short: more repetitions, and one warm-up of each.
        let n = self.repeat * 5;
        for i in 0..=n {
            let mut m = Command::new(&mesh);
            m.args(["query", "SELECT 1", "--format", "csv"]);
            self.mesh_env(&mut m, &project);
            let mut b = Command::new(&me);
            b.args(["df-query", "--sql", "SELECT 1"]);
            let m = measure::run(&mut m, &out, false)?;
            let b = measure::run(&mut b, &out, false)?;
            if i > 0 {
                pair.mesh.push(m);
                pair.base.push(b);
            }
        }
        for copy in [&mesh, &me] {
            let _ = std::fs::remove_file(copy);
        }
        Ok(pair)
    }
}

/// A copy of the executable `from` at `to`, written to disk and dropped
/// from the page cache: its next start reads it as after a reboot.
fn cold_copy(from: &Path, to: &Path) -> Result<PathBuf> {
    // A running copy from an earlier bench cannot be replaced in place.
    let _ = std::fs::remove_file(to);
    std::fs::copy(from, to)
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    let file = std::fs::File::open(to)?;
    // Dirty pages are not dropped: write them first.
    file.sync_all()?;
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
        .with_context(|| format!("drop {} from the page cache", to.display()))?;
    Ok(to.to_path_buf())
}

impl Bench {
    /// The deployed and published start-up mesh of `products` products in
    /// the work directory, made on first use.
    pub(crate) fn startup_mesh(&self, products: usize) -> Result<PathBuf> {
        let project = self.work.join(format!("startup-{products}"));
        if !project.join(".mesh/catalog.db").exists() {
            let _ = std::fs::remove_dir_all(&project);
            write_startup_mesh(&project, products)?;
            self.govern(&project)?;
            eprintln!("deploying and running {products} products");
            self.mesh_ok(&project, &["deploy"])?;
            self.mesh_ok(&project, &["run"])?;
        }
        Ok(project)
    }
}

/// A mesh of `n` small source-aligned products over 10 domains.
pub fn write_startup_mesh(project: &Path, n: usize) -> Result<()> {
    std::fs::create_dir_all(project)?;
    std::fs::write(
        project.join("mesh.yaml"),
        "apiVersion: meshwork/v1\nkind: Mesh\nname: startup-bench\n",
    )?;
    for i in 0..n {
        let domain = format!("domain_{:02}", i % 10);
        let name = format!("product_{i:03}");
        let dir = project.join(&domain).join(&name);
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(
            dir.join("data/rows.csv"),
            format!("id,label,amount\n1,a{i},1.5\n2,b{i},2.5\n3,c{i},3.5\n"),
        )?;
        std::fs::write(
            dir.join("product.yaml"),
            format!(
                "apiVersion: meshwork/v1\nkind: DataProduct\ndomain: {domain}\nname: {name}\n\
                 version: 1.0.0\nowner: team-{}@example.org\n\
                 description:\n  purpose: Start-up benchmark product {i}.\n\
                 inputs:\n  - name: raw\n    source:\n      format: csv\n      path: data/rows.csv\n      columns:\n\
                 \x20       - {{name: id, type: bigint, nullable: false}}\n\
                 \x20       - {{name: label, type: string}}\n\
                 \x20       - {{name: amount, type: double}}\n\
                 transform:\n  query: SELECT id, label, amount FROM raw\n\
                 outputs:\n  - name: {name}\n    primary_key: [id]\n    columns:\n\
                 \x20     - {{name: id, type: bigint, nullable: false, description: Row id}}\n\
                 \x20     - {{name: label, type: string, description: Row label}}\n\
                 \x20     - {{name: amount, type: double, description: Amount}}\n\
                 \x20   quality:\n      - {{check: row_count, min: 1}}\n\
                 slo: {{freshness: 1d}}\n",
                i % 10
            ),
        )?;
    }
    Ok(())
}
