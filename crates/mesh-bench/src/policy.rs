//! The cost of governance on the query path, measured in-process on the
//! TPC-H mesh: planning a query with the caller's policy decision and the
//! secure-view rewrite against planning it with no policy at all, and how
//! many decisions one core makes per second.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use mesh_catalog::OutputRecord;
use mesh_policy::{AccessInput, ColumnInput, Decision, PolicySet, PrincipalInput, ProductInput};
use mesh_query::{AccessGuard, QueryEngine};
use mesh_service::{Caller, Mesh};

use crate::measure::median;

/// The domain policy the masked side of the benchmark adds: `l_comment`
/// of every tpch product is redacted, for everyone.
pub const MASK_POLICY_FILE: &str = "tpch/policies/mask.rego";
pub const MASK_POLICY: &str = "package mesh.domain.tpch\n\nimport rego.v1\n\n\
# Free text may hold anything; nobody reads it in clear.\n\
masks[\"l_comment\"] := \"redact\" if input.output == \"lineitem\"\n";

/// The domain policy the barrier benchmark adds: a row filter on
/// lineitem that keeps every row (quantities are 1 to 50), so only the
/// barrier it puts under the caller's query differs.
pub const FILTER_POLICY_FILE: &str = "tpch/policies/filter.rego";
pub const FILTER_POLICY: &str = "package mesh.domain.tpch\n\nimport rego.v1\n\n\
row_filters contains \"l_quantity > 0\" if input.output == \"lineitem\"\n";

/// Reads everything as stored, deciding nothing: the baseline.
#[derive(Debug)]
struct NoPolicy;

#[async_trait]
impl AccessGuard for NoPolicy {
    async fn decide(
        &self,
        _output: &OutputRecord,
        _read: &mesh_query::Read,
    ) -> mesh_query::Result<Decision> {
        Ok(Decision {
            allowed: true,
            reason: "no policy".into(),
            masks: Default::default(),
            row_filters: Vec::new(),
        })
    }
}

/// Medians of the in-process measurements.
pub struct Overhead {
    pub samples: usize,
    /// Planning with no policy (engine built, SQL to logical plan).
    pub plain: Duration,
    /// The same with the caller's guard: policies loaded, principal looked
    /// up, the decision made and the secure view built.
    pub governed: Duration,
    /// Pure policy evaluation (`PolicySet::decide`) per second, one core.
    pub evals_per_sec: f64,
    /// Full guard decisions (descriptor, owner teams, grants, evaluation)
    /// per second, one core, with a new guard each time (a repeated input reuses its decision).
    pub guard_decisions_per_sec: f64,
}

/// Measures on the deployed, published mesh in `project`, whose policies
/// must include [`MASK_POLICY`].
pub fn overhead(project: &Path, sql: &str, samples: usize) -> Result<Overhead> {
    // One core: a current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mesh = Mesh::open(project).await?;
        let me = std::env::var("MESH_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        let caller = Caller::new(me);
        let plain = || async {
            let engine = QueryEngine::new(
                mesh.catalog.clone(),
                Arc::new(NoPolicy),
                Default::default(),
                None,
                // The same memory accounting as the governed side.
                Some(mesh.limits().statement_pool()),
            )
            .await?;
            let df = engine.sql(sql).await?;
            anyhow::Ok(df.logical_plan().clone())
        };
        let governed = || async {
            let (engine, guard) = mesh.engine(&caller).await?;
            let df = engine.sql(sql).await?;
            let decided = guard.decided();
            anyhow::ensure!(
                decided.iter().any(|d| !d.decision.masks.is_empty()),
                "the masked side decided no mask; is {MASK_POLICY_FILE} in place?"
            );
            anyhow::Ok(df.logical_plan().clone())
        };
        // Warm up both, then alternate.
        plain().await?;
        governed().await?;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..samples {
            let time = |first: bool| async move {
                let t = Instant::now();
                if first {
                    plain().await?;
                } else {
                    governed().await?;
                }
                anyhow::Ok(t.elapsed())
            };
            if i % 2 == 0 {
                a.push(time(true).await?);
                b.push(time(false).await?);
            } else {
                b.push(time(false).await?);
                a.push(time(true).await?);
            }
        }

        // Decisions per second: the policy engine alone, then the guard.
        let policies = PolicySet::load(project)?;
        let input = lineitem_input(&caller.name);
        let n = 5_000;
        let t = Instant::now();
        for _ in 0..n {
            // Evaluated each time: `decide` would reuse the decision.
            let d = policies.evaluate(&input)?;
            anyhow::ensure!(d.allowed, "the bench user is not allowed: {}", d.reason);
        }
        let evals_per_sec = n as f64 / t.elapsed().as_secs_f64();

        let records = mesh.catalog.products().await?;
        let output = records
            .iter()
            .flat_map(|r| r.outputs.iter())
            .find(|o| o.output.as_str() == "lineitem")
            .context("tpch/lineitem is not deployed")?
            .clone();
        let n = 1_000;
        let t = Instant::now();
        for _ in 0..n {
            // A new guard each time: no guard cache, as for the first read of a
            // product in a query.
            let (_, guard) = mesh.engine(&caller).await?;
            guard
                .decide(&output, &mesh_query::Read::current(&output))
                .await?;
        }
        let with_setup = t.elapsed();
        let t = Instant::now();
        for _ in 0..n {
            let _ = mesh.engine(&caller).await?;
        }
        let setup = t.elapsed();
        let guard_decisions_per_sec = n as f64 / with_setup.saturating_sub(setup).as_secs_f64();

        Ok(Overhead {
            samples,
            plain: median(a),
            governed: median(b),
            evals_per_sec,
            guard_decisions_per_sec,
        })
    })
}

/// A read of tpch/lineitem by `who`, as the guard would build it.
fn lineitem_input(who: &str) -> AccessInput {
    let columns = [
        "l_orderkey",
        "l_partkey",
        "l_suppkey",
        "l_linenumber",
        "l_quantity",
        "l_extendedprice",
        "l_discount",
        "l_tax",
        "l_returnflag",
        "l_linestatus",
        "l_shipdate",
        "l_commitdate",
        "l_receiptdate",
        "l_shipinstruct",
        "l_shipmode",
        "l_comment",
    ];
    AccessInput {
        action: "read".into(),
        principal: PrincipalInput {
            name: who.into(),
            kind: "user".into(),
            teams: Vec::new(),
            roles: vec!["mesh-admin".into(), "pii-reader".into()],
        },
        product: ProductInput {
            id: "tpch/lineitem".into(),
            domain: "tpch".into(),
            name: "lineitem".into(),
            owner: "bench@meshwork.dev".into(),
            owner_teams: Vec::new(),
            visibility: "discoverable".into(),
            status: "active".into(),
        },
        output: "lineitem".into(),
        columns: columns
            .iter()
            .map(|c| ColumnInput {
                name: (*c).into(),
                ty: "string".into(),
                classification: None,
            })
            .collect(),
        grants: Vec::new(),
        purpose: None,
    }
}
