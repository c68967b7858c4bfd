//! Governance end to end: TPC-H queries through `mesh query` with a mask
//! or a row filter switched on and off, alternating, and the in-process
//! planning overhead of `policy.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::measure::{self, Sample};
use crate::{Bench, Pair, policy, queries};

impl Bench {
    /// Governance on the query path (see `policy.rs`), and Q1 end to end
    /// with and without a mask policy on lineitem.
    pub(crate) fn policy(&self, samples: usize) -> Result<String> {
        let project = self.work.join(format!("tpch-sf{}", self.scale));
        self.prepare(&project)?;
        let mask_file = project.join(policy::MASK_POLICY_FILE);
        std::fs::create_dir_all(mask_file.parent().context("no parent")?)?;
        let masked = policy_switch(mask_file, policy::MASK_POLICY);
        let (_, q1) = queries::QUERIES[0];
        let (_, q6) = queries::QUERIES
            .iter()
            .find(|(name, _)| *name == "q6")
            .copied()
            .context("q6 is not among the queries")?;
        eprintln!("q1 with and without a mask on lineitem");
        let pair = self.with_and_without(&project, "q1.mask", q1, &masked)?;
        // The row filter keeps every row, so both sides answer the same:
        // what differs is only the barrier it puts under the query.
        let filtered = policy_switch(
            project.join(policy::FILTER_POLICY_FILE),
            policy::FILTER_POLICY,
        );
        eprintln!("q1 and q6 with and without a row filter on lineitem");
        let barrier_q1 = self.with_and_without(&project, "q1.filter", q1, &filtered)?;
        let barrier_q6 = self.with_and_without(&project, "q6.filter", q6, &filtered)?;
        eprintln!("planning with and without policy, {samples} samples");
        masked(true)?;
        let o = policy::overhead(&project, q1, samples);
        masked(false)?;
        let o = o?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut r = String::new();
        let _ = writeln!(
            r,
            "| measurement | governed | baseline | ratio | goal |\n|---|---|---|---|---|"
        );
        let _ = writeln!(
            r,
            "{}",
            pair.row(
                "Q1 end to end: `mesh query`, mask on lineitem vs none (s)",
                3,
                "≤ 1.05"
            )
        );
        for (name, p) in [("Q1", &barrier_q1), ("Q6", &barrier_q6)] {
            let _ = writeln!(r, "{}", p.row(&format!("{name} end to end: `mesh query`, row filter keeping every row of lineitem vs none (s)"), 3, "≤ 1.10"));
        }
        let _ = writeln!(
            r,
            "| planning Q1: policy load, decision and mask rewrite vs no policy (ms, median of {}) | {:.3} | {:.3} | {:.2} | overhead ≤ 1 ms |",
            o.samples,
            ms(o.governed),
            ms(o.plain),
            o.governed.as_secs_f64() / o.plain.as_secs_f64()
        );
        let _ = writeln!(
            r,
            "\nPolicy overhead per query: {:.3} ms. Decisions per second on one core: {:.0} policy evaluations (regorus, default pack plus the mask), {:.0} full guard decisions (a new guard each time: snapshot lookups, descriptor, input, and the decision reused for a repeated input).",
            ms(o.governed.saturating_sub(o.plain)),
            o.evals_per_sec,
            o.guard_decisions_per_sec
        );
        Ok(r)
    }

    /// `sql` through `mesh query` with a policy switched on by `policy`
    /// (the `mesh` side) and off (the baseline), alternating; fails unless
    /// both answer the same.
    fn with_and_without(
        &self,
        project: &Path,
        tag: &str,
        sql: &str,
        policy: &dyn Fn(bool) -> Result<()>,
    ) -> Result<Pair> {
        let with_out = self.work.join(format!("{tag}.on.csv"));
        let without_out = self.work.join(format!("{tag}.off.csv"));
        let mut pair = Pair {
            mesh: Vec::new(),
            base: Vec::new(),
        };
        for i in 0..=self.repeat {
            let run = |on: bool| -> Result<Sample> {
                policy(on)?;
                let mut cmd = self.mesh_cmd(project, &["query", sql, "--format", "csv"]);
                measure::run(&mut cmd, if on { &with_out } else { &without_out }, false)
            };
            let (m, b) = if i % 2 == 0 {
                let m = run(true)?;
                (m, run(false)?)
            } else {
                let b = run(false)?;
                (run(true)?, b)
            };
            // The first round warms the page cache.
            if i > 0 {
                pair.mesh.push(m);
                pair.base.push(b);
            }
        }
        policy(false)?;
        if std::fs::read(&with_out)? != std::fs::read(&without_out)? {
            bail!("{tag}: the answers differ with the policy on and off");
        }
        Ok(pair)
    }
}

/// Turns a policy file on (written with `text`) or off (removed).
fn policy_switch(file: PathBuf, text: &'static str) -> impl Fn(bool) -> Result<()> {
    move |on| {
        if on {
            std::fs::write(&file, text)?;
        } else if file.exists() {
            std::fs::remove_file(&file)?;
        }
        Ok(())
    }
}
