//! Health per product: can it be trusted right now? (docs/operations.md)
//!
//! Computed from the catalog alone, so no run is needed to notice a
//! breach: the age of the newest data (the newest release, or the newest
//! run that found nothing changed since it), the freshness windows, the
//! last run, the quality pass rate over a window, and the health of the
//! products it reads. `failing` wins over `degraded`, which wins over
//! `healthy`; every reason is listed.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use mesh_catalog::{ProductRecord, RunFacts, RunStatus};
use mesh_spec::{ProductDescriptor, ProductRef, QualitySlo};
use serde::{Deserialize, Serialize};

use crate::access::Caller;
use crate::error::Result;
use crate::mesh::Mesh;

/// How a product stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Failing,
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Failing => "failing",
        }
    }
}

/// One reason a product is not healthy.
#[derive(Debug, Clone, PartialEq)]
struct Reason {
    health: Health,
    text: String,
    /// The upstream this reason is about, named only to callers who may
    /// see it.
    upstream: Option<ProductRef>,
}

/// A product's health and what it was computed from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductHealth {
    pub product: String,
    pub domain: String,
    pub health: Health,
    pub reasons: Vec<String>,
    /// When its newest data was published.
    pub newest_release: Option<DateTime<Utc>>,
    /// When a run last confirmed its data current (published it, or found
    /// nothing changed since).
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Seconds since then.
    pub age_seconds: Option<i64>,
    /// The freshness windows in seconds, when a freshness SLO is declared.
    pub freshness_warn_seconds: Option<u64>,
    pub freshness_fail_seconds: Option<u64>,
    /// Share of quality checks passed over the window (none run: absent).
    pub quality_pass_rate: Option<f64>,
    pub quality_min_pass_rate: f64,
    pub quality_window: String,
    pub last_run: Option<LastRun>,
    #[serde(skip)]
    raw: Vec<Reason>,
}

/// The newest run of a product, in brief.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastRun {
    pub id: String,
    pub status: String,
    pub cause: String,
    pub started_at: DateTime<Utc>,
}

/// A duration in seconds the way people say it: `45s`, `28m`, `3h 5m`, `2d 4h`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The health of one product from its own facts (upstreams come later).
fn own_health(
    record: &ProductRecord,
    p: &ProductDescriptor,
    published: Option<i64>,
    facts: Option<&RunFacts>,
    last: Option<&mesh_catalog::RunRecord>,
    now: DateTime<Utc>,
) -> ProductHealth {
    let quality = p
        .slo
        .as_ref()
        .and_then(|s| s.quality.clone())
        .unwrap_or(QualitySlo::DEFAULT);
    let windows = p.slo.as_ref().and_then(|s| s.freshness_windows());
    let confirmed = facts.and_then(|f| f.confirmed_at);
    let fresh_at = published.map(|p| confirmed.map_or(p, |c| p.max(c)));
    let mut reasons = Vec::new();
    let age_seconds = fresh_at.map(|t| (now.timestamp_millis() - t) / 1000);
    match (age_seconds, windows) {
        (None, _) => reasons.push(Reason {
            health: Health::Failing,
            text: "no release yet".into(),
            upstream: None,
        }),
        (Some(a), Some((_, fail))) if a as u64 >= fail.as_secs() => reasons.push(Reason {
            health: Health::Failing,
            text: format!(
                "stale: its newest data is {} old; the freshness SLO is {}",
                age(a),
                mesh_spec::format_duration(fail)
            ),
            upstream: None,
        }),
        (Some(a), Some((warn, fail))) if a as u64 >= warn.as_secs() => reasons.push(Reason {
            health: Health::Degraded,
            text: format!(
                "ageing: its newest data is {} old (warned at {}, the SLO is {})",
                age(a),
                mesh_spec::format_duration(warn),
                mesh_spec::format_duration(fail)
            ),
            upstream: None,
        }),
        _ => {}
    }
    if let Some(run) = last
        && matches!(run.status, RunStatus::Failed | RunStatus::Abandoned)
    {
        reasons.push(Reason {
            health: Health::Degraded,
            text: format!("its last run ({}) {}", run.id, run.status.as_str()),
            upstream: None,
        });
    }
    let pass_rate = facts
        .filter(|f| f.checks_run > 0)
        .map(|f| f.checks_passed as f64 / f.checks_run as f64);
    if let Some(rate) = pass_rate
        && rate < quality.min_pass_rate
    {
        reasons.push(Reason {
            health: Health::Degraded,
            text: format!(
                "failing checks: {:.1}% of quality checks passed over {}, below {:.1}%",
                rate * 100.0,
                mesh_spec::format_duration(quality.window),
                quality.min_pass_rate * 100.0
            ),
            upstream: None,
        });
    }
    let ms = |t: i64| DateTime::from_timestamp_millis(t);
    ProductHealth {
        product: record.product.to_string(),
        domain: record.product.domain.to_string(),
        health: Health::Healthy,
        reasons: Vec::new(),
        newest_release: published.and_then(ms),
        confirmed_at: confirmed.and_then(ms),
        age_seconds,
        freshness_warn_seconds: windows.map(|w| w.0.as_secs()),
        freshness_fail_seconds: windows.map(|w| w.1.as_secs()),
        quality_pass_rate: pass_rate,
        quality_min_pass_rate: quality.min_pass_rate,
        quality_window: mesh_spec::format_duration(quality.window),
        last_run: last.map(|r| LastRun {
            id: r.id.to_string(),
            status: r.status.as_str().to_string(),
            cause: r.cause.clone(),
            started_at: r.started_at,
        }),
        raw: reasons,
    }
}

impl Mesh {
    /// The health of every deployed product (retired ones excepted),
    /// keyed by product; for the scheduler and metrics of an admin.
    pub async fn health_all(&self) -> Result<BTreeMap<ProductRef, ProductHealth>> {
        let now = Utc::now();
        let deployed: Vec<(ProductRecord, ProductDescriptor)> = self
            .deployed()
            .await?
            .into_iter()
            .filter(|(r, _)| r.status != "retired")
            .collect();
        let catalog = self.catalog.as_ref();
        let versions: HashMap<String, i64> = catalog
            .current_versions(None)
            .await?
            .into_iter()
            .map(|v| (v.output, v.published_at))
            .collect();
        // One query per distinct quality window (usually one).
        let mut windows: Vec<std::time::Duration> = deployed
            .iter()
            .map(|(_, p)| {
                p.slo
                    .as_ref()
                    .and_then(|s| s.quality.as_ref())
                    .map_or(QualitySlo::DEFAULT.window, |q| q.window)
            })
            .collect();
        windows.sort();
        windows.dedup();
        let mut facts: HashMap<(ProductRef, std::time::Duration), RunFacts> = HashMap::new();
        for w in windows {
            let since = now - chrono::Duration::from_std(w).unwrap_or(chrono::Duration::MAX);
            for f in catalog.run_facts(since).await? {
                facts.insert((f.product.clone(), w), f);
            }
        }
        let last: HashMap<ProductRef, mesh_catalog::RunRecord> = catalog
            .last_runs()
            .await?
            .into_iter()
            .map(|r| (r.product.clone(), r))
            .collect();
        let mut out: BTreeMap<ProductRef, ProductHealth> = BTreeMap::new();
        for (record, p) in &deployed {
            // The product's data is as old as its oldest current output.
            let published = record
                .outputs
                .iter()
                .map(|o| versions.get(&format!("{}.{}", o.domain, o.output)).copied())
                .collect::<Option<Vec<i64>>>()
                .and_then(|v| v.into_iter().min());
            let window = p
                .slo
                .as_ref()
                .and_then(|s| s.quality.as_ref())
                .map_or(QualitySlo::DEFAULT.window, |q| q.window);
            let h = own_health(
                record,
                p,
                published,
                facts.get(&(record.product.clone(), window)),
                last.get(&record.product),
                now,
            );
            out.insert(record.product.clone(), h);
        }
        // Upstreams first, so an unhealthy product makes every product
        // downstream of it (transitively) at least degraded.
        let edges = crate::run::read_edges(&deployed);
        let order = mesh_spec::graph::build_order(&edges).unwrap_or_default();
        for product in order {
            let mut inherited = Vec::new();
            for u in edges.get(&product).into_iter().flatten() {
                if let Some(up) = out.get(u) {
                    let h = up.worst();
                    if h != Health::Healthy {
                        inherited.push(Reason {
                            health: Health::Degraded,
                            text: format!("upstream {u} is {}", h.as_str()),
                            upstream: Some(u.clone()),
                        });
                    }
                }
            }
            if let Some(h) = out.get_mut(&product) {
                h.raw.extend(inherited);
            }
        }
        for h in out.values_mut() {
            h.health = h.worst();
            h.reasons = h.raw.iter().map(|r| r.text.clone()).collect();
        }
        Ok(out)
    }

    /// The health of the products `caller` may see, by domain and name; an
    /// upstream the caller may not see is not named.
    pub async fn status(&self, caller: &Caller) -> Result<Vec<ProductHealth>> {
        let visible: Vec<ProductRef> = self
            .visible_deployed(caller)
            .await?
            .into_iter()
            .map(|(r, _)| r.product)
            .collect();
        let all = self.health_all().await?;
        Ok(all
            .into_iter()
            .filter(|(p, _)| visible.contains(p))
            .map(|(_, mut h)| {
                h.reasons = h
                    .raw
                    .iter()
                    .map(|r| match &r.upstream {
                        Some(u) if !visible.contains(u) => {
                            "an upstream you may not see is not healthy".to_string()
                        }
                        _ => r.text.clone(),
                    })
                    .collect();
                h
            })
            .collect())
    }
}

impl ProductHealth {
    fn worst(&self) -> Health {
        self.raw
            .iter()
            .map(|r| r.health)
            .max()
            .unwrap_or(Health::Healthy)
    }
}
