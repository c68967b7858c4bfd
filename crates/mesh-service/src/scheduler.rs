//! The scheduler: keeps products fresh by themselves (docs/operations.md).
//!
//! Every tick (and whenever one of its runs ends) a scheduler process:
//!
//! 1. recovers runs whose holder died or whose lease expired, and owes a
//!    retry for the scheduled ones;
//! 2. fires each product's newest due cron tick, once across every
//!    scheduler on the catalog (the tick is recorded in the transaction
//!    that owes the run);
//! 3. owes an `on_upstream_change` product a run when an upstream output
//!    it reads has a data version its last run did not read. A version
//!    published by a scheduled run is followed at once (the scheduler
//!    holds consumers back while their upstreams run or are owed runs);
//!    one published by anything else (`mesh run`, a server request) is
//!    followed once the upstream has been quiet for `settle`, since more
//!    may follow. A product owed a run keeps one entry, so a burst
//!    coalesces;
//! 4. claims owed runs that are due, whose product is not running and
//!    none of whose upstreams (transitively) is running or owed a run, so
//!    a chain refreshes in one pass. A claim removes the entry and starts
//!    the run with its lease in one transaction: two schedulers never
//!    start the same run.
//!
//! A failed scheduled run is retried with exponential backoff, up to the
//! product's `schedule.retries` (or the scheduler's default).
//!
//! Every `maintenance` (once across every scheduler on the catalog, the
//! window claimed like a notice) it also maintains storage: compaction,
//! then retention's vacuum (docs/storage.md), beside its runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mesh_catalog::{CatalogStore, ProductRecord, QueuedRun, RunRecord, RunStatus};
use mesh_pipeline::lease::now_ms;
use mesh_pipeline::runner::RunRequest;
use mesh_pipeline::{Runner, Silent};
use mesh_spec::project::SchedulerConfig;
use mesh_spec::{InputKind, ProductDescriptor, ProductRef};
use tokio::task::JoinSet;

use crate::error::Result;
use crate::mesh::Mesh;
use crate::run::read_edges;

type Deployed = Arc<Vec<(ProductRecord, ProductDescriptor)>>;

/// How long a stopping scheduler waits for its runs to finish.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Causes of runs the scheduler started, and so retries.
const SCHEDULED: [&str; 3] = ["cron", "upstream", "retry"];

/// One scheduler process.
pub struct Scheduler {
    mesh: Mesh,
    config: SchedulerConfig,
    runner: Arc<Runner>,
    /// The newest cron tick known fired, per product.
    fired: HashMap<ProductRef, i64>,
    /// The activity generation upstream changes were last looked at in.
    seen_activity: Option<(i64, i64)>,
    notifier: crate::notify::Notifier,
    /// When health was last evaluated.
    health_at: Option<tokio::time::Instant>,
    /// When storage maintenance was last looked at.
    maintained_at: Option<tokio::time::Instant>,
    /// The current data version of each output (`<domain>.<output>`) and
    /// when it may be followed, as of the publication `publication_seq`;
    /// the leases upstream changes were last looked at with; and when
    /// every product was last looked at.
    versions: HashMap<String, (i64, i64)>,
    publication_seq: Option<i64>,
    leased_seen: BTreeSet<ProductRef>,
    full_at: Option<(tokio::time::Instant, i64)>,
    /// Whether runs left without a lease (by earlier versions) were looked
    /// for; after that, only stale leases are.
    swept: bool,
    /// The deployed products (retired ones left out) and what each reads,
    /// for the deployment generation they were read in.
    graph: Option<(i64, Deployed, Arc<Graph>)>,
}

/// The dependency graph of the deployed products.
struct Graph {
    /// Every product each reads, directly or through others.
    ancestors: BTreeMap<ProductRef, BTreeSet<ProductRef>>,
    /// Each product's upstream inputs and the outputs they read.
    reads: BTreeMap<ProductRef, Vec<(String, String)>>,
    /// The products reading each output (`<domain>.<output>`).
    readers: BTreeMap<String, Vec<ProductRef>>,
}

impl Graph {
    fn of(deployed: &[(ProductRecord, ProductDescriptor)]) -> Graph {
        let edges = read_edges(deployed);
        let records: Vec<ProductRecord> = deployed.iter().map(|(r, _)| r.clone()).collect();
        let reads: BTreeMap<ProductRef, Vec<(String, String)>> = deployed
            .iter()
            .map(|(r, p)| (r.product.clone(), upstream_outputs(&records, p)))
            .collect();
        let mut readers: BTreeMap<String, Vec<ProductRef>> = BTreeMap::new();
        for (product, outputs) in &reads {
            for (_, output) in outputs {
                readers
                    .entry(output.clone())
                    .or_default()
                    .push(product.clone());
            }
        }
        Graph {
            readers,
            reads,
            ancestors: deployed
                .iter()
                .map(|(r, _)| (r.product.clone(), ancestors(&edges, &r.product)))
                .collect(),
        }
    }
}

impl Scheduler {
    pub fn new(mesh: Mesh) -> Self {
        let config = mesh.config.scheduler.clone();
        let runner = Arc::new(mesh.runner());
        Scheduler {
            config,
            runner,
            fired: HashMap::new(),
            seen_activity: None,
            notifier: crate::notify::Notifier::new(
                mesh.config.webhooks.clone(),
                mesh.config.name.clone(),
            ),
            health_at: None,
            maintained_at: None,
            swept: false,
            graph: None,
            versions: HashMap::new(),
            publication_seq: None,
            leased_seen: BTreeSet::new(),
            full_at: None,
            mesh,
        }
    }

    /// This process, as lease holder.
    pub fn holder(&self) -> &str {
        &self.runner.holder
    }

    /// Schedules until `stop` completes, then lets runs in progress finish
    /// (for at most 30 s; a run cut off is recovered by the next process).
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tasks = JoinSet::new();
        loop {
            let started = std::time::Instant::now();
            if let Err(e) = self.tick(&mut tasks).await {
                tracing::warn!(error = %e, "scheduler tick failed; trying again next tick");
            }
            tracing::debug!(
                elapsed_us = started.elapsed().as_micros() as u64,
                running = tasks.len(),
                "tick"
            );
            tokio::select! {
                _ = tokio::time::sleep(self.config.tick) => {}
                // A run ending is looked at once, at once: its consumers
                // may be owed runs now.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = &mut stop => break,
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_GRACE, drain).await.is_err() {
            tracing::warn!("stopping with runs in progress; the next process recovers them");
        }
    }

    async fn tick(&mut self, tasks: &mut JoinSet<()>) -> Result<()> {
        let catalog = self.mesh.catalog.clone();
        let generations = catalog.generations().await?;
        // The deployed products and their graph, read once per deployment.
        let (deployed, graph) = match &self.graph {
            Some((g, deployed, graph)) if *g == generations.deployment => {
                (deployed.clone(), graph.clone())
            }
            _ => {
                let deployed: Arc<Vec<(ProductRecord, ProductDescriptor)>> = Arc::new(
                    self.mesh
                        .deployed_shared(generations.deployment)
                        .await?
                        .iter()
                        .filter(|(r, _)| r.status != "retired")
                        .cloned()
                        .collect(),
                );
                let graph = Arc::new(Graph::of(&deployed));
                self.graph = Some((generations.deployment, deployed.clone(), graph.clone()));
                (deployed, graph)
            }
        };
        let now = now_ms();
        // The leases, read once a tick (before any run's inputs are, see
        // `follow_upstreams`); a claim checks its product's lease again.
        let mut leases = catalog.leases().await?;
        let stale = leases
            .iter()
            .any(|l| mesh_pipeline::lease::is_stale(l, now));
        if stale || !self.swept {
            self.swept = true;
            for run in mesh_pipeline::recover::recover(&catalog, &self.runner.holder).await? {
                tracing::warn!(run = %run.id, product = %run.product, status = run.status.as_str(), "recovered a run its process left");
                if run.status == RunStatus::Abandoned {
                    self.retry_later(&run, &deployed).await?;
                }
            }
            leases = catalog.leases().await?;
        }
        let leased: BTreeSet<ProductRef> = leases.into_iter().map(|l| l.product).collect();
        self.fire_cron(&deployed).await?;
        self.follow_upstreams(&deployed, &graph, &leased, generations)
            .await?;
        self.claim(&deployed, &graph, &leased, generations.deployment, tasks)
            .await?;
        if self
            .health_at
            .is_none_or(|t| t.elapsed() >= self.config.health)
        {
            self.health_at = Some(tokio::time::Instant::now());
            self.watch_health().await?;
        }
        if self
            .maintained_at
            .is_none_or(|t| t.elapsed() >= self.config.maintenance)
        {
            self.maintained_at = Some(tokio::time::Instant::now());
            self.maintain(tasks).await?;
        }
        Ok(())
    }

    /// Starts storage maintenance beside the runs, when this scheduler
    /// claims the current window (`maintenance:<n>`, the n-th interval
    /// since the epoch): one scheduler per window maintains.
    async fn maintain(&self, tasks: &mut JoinSet<()>) -> Result<()> {
        let every = self.config.maintenance.as_millis().max(1) as i64;
        let window = format!("maintenance:{}", now_ms() / every);
        if !self
            .mesh
            .catalog
            .claim_notice(&window, &self.runner.holder)
            .await?
        {
            return Ok(());
        }
        let mesh = self.mesh.clone();
        tasks.spawn(async move {
            match mesh.maintain().await {
                Ok(m) => tracing::info!(
                    compacted = m.compacted,
                    busy = m.busy,
                    expired = m.expired,
                    files_removed = m.files_removed,
                    bytes_freed = m.bytes_freed,
                    "storage maintained"
                ),
                Err(e) => tracing::warn!(error = %e, "storage maintenance failed; trying again next window"),
            }
        });
        Ok(())
    }

    /// Records each product's health; the process that records a change
    /// announces it (`slo_breach`, `recovery`), and each failed run of the
    /// last ten minutes is announced once (`run_failed`).
    async fn watch_health(&self) -> Result<()> {
        use crate::health::Health;
        use mesh_catalog::RecordedHealth;
        let catalog = self.mesh.catalog.as_ref();
        let all = self.mesh.health_all().await?;
        let recorded: HashMap<ProductRef, RecordedHealth> = catalog
            .healths()
            .await?
            .into_iter()
            .map(|h| (h.product.clone(), h))
            .collect();
        let now = now_ms();
        for (product, h) in &all {
            let prev = recorded.get(product);
            let same = prev.is_some_and(|p| p.health == h.health.as_str());
            let to = RecordedHealth {
                product: product.clone(),
                health: h.health.as_str().to_string(),
                reasons: h.reasons.clone(),
                since: prev.filter(|_| same).map_or(now, |p| p.since),
            };
            if same {
                if prev.is_some_and(|p| p.reasons != to.reasons) {
                    catalog
                        .record_health(product, Some(&to.health), &to)
                        .await?;
                }
                continue;
            }
            if !catalog
                .record_health(product, prev.map(|p| p.health.as_str()), &to)
                .await?
            {
                continue; // another process noticed it first
            }
            let kind = match (h.health, prev) {
                (Health::Healthy, None) => continue,
                (Health::Healthy, Some(_)) => "recovery",
                _ => "slo_breach",
            };
            tracing::info!(product = %product, health = h.health.as_str(), event = kind, "health changed");
            self.notifier.send(crate::notify::Event {
                kind,
                product: product.clone(),
                detail: serde_json::json!({
                    "health": h.health,
                    "previous": prev.map(|p| p.health.clone()),
                    "reasons": h.reasons,
                    "age_seconds": h.age_seconds,
                    "freshness_warn_seconds": h.freshness_warn_seconds,
                    "freshness_fail_seconds": h.freshness_fail_seconds,
                    "quality_pass_rate": h.quality_pass_rate,
                }),
            });
        }
        let recent = chrono::Utc::now() - chrono::Duration::minutes(10);
        for status in ["failed", "abandoned"] {
            let filter = mesh_catalog::RunFilter {
                product: None,
                status: Some(status.into()),
                builds_only: false,
            };
            for run in catalog.runs(&filter, 50).await? {
                if run.finished_at.is_none_or(|t| t < recent)
                    || !catalog
                        .claim_notice(&format!("run-failed:{}", run.id), &self.runner.holder)
                        .await?
                {
                    continue;
                }
                self.notifier.send(crate::notify::Event {
                    kind: "run_failed",
                    product: run.product.clone(),
                    detail: serde_json::json!({
                        "run": {
                            "id": run.id.to_string(),
                            "status": run.status.as_str(),
                            "cause": run.cause,
                            "attempt": run.attempt,
                            "started_at": run.started_at,
                            "finished_at": run.finished_at,
                        },
                    }),
                });
            }
        }
        Ok(())
    }

    /// Owes a retry of a scheduled run that failed or was abandoned, if
    /// its product's retries allow.
    async fn retry_later(
        &self,
        run: &RunRecord,
        deployed: &[(ProductRecord, ProductDescriptor)],
    ) -> Result<()> {
        if !SCHEDULED.contains(&run.cause.as_str()) {
            return Ok(());
        }
        let Some((_, p)) = deployed.iter().find(|(r, _)| r.product == run.product) else {
            return Ok(()); // no longer deployed
        };
        let retries = retries_of(p, &self.config);
        owe_retry(self.mesh.catalog.as_ref(), &self.config, run, retries).await
    }

    async fn fire_cron(&mut self, deployed: &[(ProductRecord, ProductDescriptor)]) -> Result<()> {
        let now = chrono::Utc::now();
        for (record, p) in deployed {
            let Some(cron) = p.schedule.as_ref().and_then(|s| s.cron()) else {
                continue;
            };
            let Some(tick) = cron.latest(now).map(|t| t.timestamp_millis()) else {
                continue;
            };
            let known = match self.fired.get(&record.product) {
                Some(t) => *t,
                None => {
                    let t = self.mesh.catalog.last_tick(&record.product).await?;
                    // A schedule starts with the deployment that declares it.
                    t.unwrap_or(record.deployed_at.timestamp_millis() - 1)
                }
            };
            if tick > known {
                let entry = QueuedRun {
                    product: record.product.clone(),
                    cause: "cron".into(),
                    due_at: tick,
                    attempt: 1,
                    queued_at: now_ms(),
                };
                if self
                    .mesh
                    .catalog
                    .fire_tick(&entry, tick, &self.runner.holder)
                    .await?
                {
                    tracing::info!(product = %record.product, tick = %cron.pattern(), "cron tick fired");
                }
            }
            self.fired.insert(record.product.clone(), tick.max(known));
        }
        Ok(())
    }

    async fn follow_upstreams(
        &mut self,
        deployed: &[(ProductRecord, ProductDescriptor)],
        graph: &Graph,
        leased: &BTreeSet<ProductRef>,
        generations: mesh_catalog::Generations,
    ) -> Result<()> {
        let seen = (generations.activity, generations.deployment);
        if self.seen_activity == Some(seen) {
            return Ok(());
        }
        let catalog = self.mesh.catalog.as_ref();
        // `leased` was read before the inputs below: a run that ends after
        // that read has recorded what it read before they are read, so it
        // is not owed again for a version it read.
        // Every product now and then (and after a deploy); otherwise only
        // the readers of versions published since the last look and
        // products whose run ended since, whose inputs are read one by one.
        let full = self.full_at.is_none_or(|(at, generation)| {
            at.elapsed() >= self.config.health || generation != generations.deployment
        });
        let settle = self.config.settle.as_millis() as i64;
        let mut versions = std::mem::take(&mut self.versions);
        if full {
            versions.clear();
        }
        let mut changed: BTreeSet<String> = BTreeSet::new();
        let after = if full { None } else { self.publication_seq };
        for v in catalog.current_versions(after).await? {
            self.publication_seq = Some(self.publication_seq.map_or(v.seq, |s| s.max(v.seq)));
            // When the version may be followed.
            let due = if SCHEDULED.contains(&v.cause.as_str()) {
                v.published_at
            } else {
                v.published_at + settle
            };
            if versions
                .get(&v.output)
                .is_none_or(|(known, _)| *known < v.version)
            {
                changed.insert(v.output.clone());
                versions.insert(v.output, (v.version, due));
            }
        }
        let mut last: HashMap<ProductRef, serde_json::Value> = HashMap::new();
        let candidates: BTreeSet<ProductRef> = if full {
            self.full_at = Some((tokio::time::Instant::now(), generations.deployment));
            last = catalog.last_inputs().await?.into_iter().collect();
            deployed.iter().map(|(r, _)| r.product.clone()).collect()
        } else {
            let mut c: BTreeSet<ProductRef> =
                self.leased_seen.difference(leased).cloned().collect();
            for output in &changed {
                c.extend(graph.readers.get(output).into_iter().flatten().cloned());
            }
            for product in &c {
                if let Some(run) = catalog.last_fingerprinted(product).await?
                    && let Some(inputs) = run.inputs
                {
                    last.insert(product.clone(), inputs);
                }
            }
            c
        };
        self.leased_seen = leased.clone();
        for (record, p) in deployed {
            if !candidates.contains(&record.product)
                || !p.schedule.as_ref().is_some_and(|s| s.on_upstream_change)
                || leased.contains(&record.product)
            {
                continue;
            }
            let read = last.get(&record.product);
            let mut due: Option<i64> = None;
            for (input, output) in graph.reads.get(&record.product).into_iter().flatten() {
                let Some((version, follow_at)) = versions.get(output) else {
                    continue;
                };
                let seen = read
                    .and_then(|r| r["upstream"][&input]["version"].as_i64())
                    .filter(|_| {
                        read.is_some_and(|r| r["upstream"][&input]["output"] == output.as_str())
                    });
                if seen != Some(*version) {
                    due = Some(due.map_or(*follow_at, |d| d.max(*follow_at)));
                }
            }
            if let Some(due_at) = due {
                catalog
                    .enqueue(&QueuedRun {
                        product: record.product.clone(),
                        cause: "upstream".into(),
                        due_at,
                        attempt: 1,
                        queued_at: now_ms(),
                    })
                    .await?;
            }
        }
        self.versions = versions;
        self.seen_activity = Some(seen);
        Ok(())
    }

    async fn claim(
        &mut self,
        deployed: &[(ProductRecord, ProductDescriptor)],
        graph: &Graph,
        leased: &BTreeSet<ProductRef>,
        generation: i64,
        tasks: &mut JoinSet<()>,
    ) -> Result<()> {
        let catalog = self.mesh.catalog.clone();
        let queue = catalog.queue().await?;
        // The column lineage runs' OpenLineage events carry, for the
        // generation this tick read (built once per generation).
        let mut lineage: Option<Arc<crate::lineage::LineageGraph>> = None;
        if queue.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let owed: BTreeSet<ProductRef> = queue.iter().map(|e| e.product.clone()).collect();
        let by_ref: BTreeMap<&ProductRef, &(ProductRecord, ProductDescriptor)> =
            deployed.iter().map(|d| (&d.0.product, d)).collect();
        for entry in queue.iter().filter(|e| e.due_at <= now) {
            if tasks.len() >= self.config.concurrency {
                break;
            }
            let Some((record, p)) = by_ref.get(&entry.product).map(|d| (&d.0, &d.1)) else {
                catalog.dequeue(&entry.product).await?;
                continue;
            };
            if leased.contains(&entry.product) {
                continue;
            }
            if graph
                .ancestors
                .get(&entry.product)
                .into_iter()
                .flatten()
                .any(|u| leased.contains(u) || owed.contains(u))
            {
                continue;
            }
            let request = RunRequest {
                cause: entry.cause.clone(),
                attempt: entry.attempt,
                force: false,
            };
            let mut run = self.runner.begin(p, &request);
            run.log.push(why_owed(entry));
            if !catalog
                .claim(entry, &run, &self.runner.holder, self.runner.lease_until())
                .await?
            {
                continue;
            }
            tracing::info!(product = %entry.product, cause = %entry.cause, attempt = entry.attempt, run = %run.id, "run claimed");
            let runner = self.runner.clone();
            let config = self.config.clone();
            let retries = retries_of(p, &config);
            let (record, p) = (record.clone(), p.clone());
            let emitter = self.mesh.openlineage.clone();
            let lineage = match &lineage {
                Some(l) => l.clone(),
                None => {
                    let shared = self.mesh.deployed_shared(generation).await?;
                    let l = self.mesh.lineage_graph_at(generation, &shared).await?;
                    lineage = Some(l.clone());
                    l
                }
            };
            tasks.spawn(async move {
                let product = record.product.clone();
                let observer = crate::openlineage::LineageObserver {
                    inner: &Silent,
                    emitter: &emitter,
                    contexts: [(
                        product.to_string(),
                        crate::openlineage::RunContext {
                            descriptor: Arc::new(p.clone()),
                            graph: lineage,
                        },
                    )]
                    .into_iter()
                    .collect(),
                };
                match runner.execute(&p, &record, run, false, &observer).await {
                    Ok(done) => {
                        tracing::info!(product = %product, run = %done.id, status = done.status.as_str(), "run finished");
                        if done.status == RunStatus::Failed
                            && let Err(e) =
                                owe_retry(runner.catalog.as_ref(), &config, &done, retries).await
                        {
                            tracing::warn!(product = %product, error = %e, "could not owe a retry");
                        }
                    }
                    Err(e) => tracing::warn!(product = %product, error = %e, "run could not be recorded"),
                }
            });
        }
        Ok(())
    }
}

/// How many times a failed scheduled run of `p` is retried.
fn retries_of(p: &ProductDescriptor, config: &SchedulerConfig) -> u64 {
    p.schedule
        .as_ref()
        .and_then(|s| s.retries)
        .unwrap_or(config.retries)
}

/// Why the scheduler started a run, for its log.
fn why_owed(entry: &QueuedRun) -> String {
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).map_or_else(
            || ms.to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
    };
    match entry.cause.as_str() {
        "cron" => format!("cron tick {}", at(entry.due_at)),
        "upstream" => "an upstream published a version this product has not read".into(),
        "retry" => format!("retry: attempt {}, due {}", entry.attempt, at(entry.due_at)),
        other => format!("owed by {other}"),
    }
}

/// Owes the next attempt of `run`, after `backoff × 2^(attempt−1)`, while
/// attempts remain.
async fn owe_retry(
    catalog: &dyn CatalogStore,
    config: &SchedulerConfig,
    run: &RunRecord,
    retries: u64,
) -> Result<()> {
    if run.attempt > i64::try_from(retries).unwrap_or(i64::MAX) {
        tracing::warn!(product = %run.product, run = %run.id, "failed; no retries left");
        return Ok(());
    }
    let factor = 1u32 << (run.attempt - 1).clamp(0, 16);
    let wait = config.backoff.saturating_mul(factor);
    catalog
        .enqueue(&QueuedRun {
            product: run.product.clone(),
            cause: "retry".into(),
            due_at: now_ms() + wait.as_millis() as i64,
            attempt: run.attempt + 1,
            queued_at: now_ms(),
        })
        .await?;
    Ok(())
}

/// Every product `product` reads, directly or through others.
fn ancestors(
    edges: &BTreeMap<ProductRef, BTreeSet<ProductRef>>,
    product: &ProductRef,
) -> BTreeSet<ProductRef> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&ProductRef> = edges.get(product).into_iter().flatten().collect();
    while let Some(p) = todo.pop() {
        if seen.insert(p.clone()) {
            todo.extend(edges.get(p).into_iter().flatten());
        }
    }
    seen
}

/// Each upstream input of `p` and the output it reads (`<domain>.<output>`),
/// resolved as the runner resolves it.
fn upstream_outputs(records: &[ProductRecord], p: &ProductDescriptor) -> Vec<(String, String)> {
    p.inputs
        .iter()
        .filter_map(|i| {
            let InputKind::Product {
                product,
                output,
                version,
            } = &i.kind
            else {
                return None;
            };
            let out = mesh_catalog::input_output(
                records,
                &product.value,
                output.as_ref().map(|o| o.as_str()),
                version.as_ref().map(|v| &v.value),
            )?;
            Some((i.name.to_string(), format!("{}.{}", out.domain, out.output)))
        })
        .collect()
}
