//! Runs, their leases and the scheduler's queue.
//!
//! A run in progress holds its product's lease (one per product): the
//! process that holds it and until when, extended by a heartbeat. Starting
//! a run takes the lease in the same transaction that records the run, so
//! two processes never run one product at once. The queue holds at most
//! one owed run per product, so causes coalesce; claiming an entry
//! removes it and starts its run in one transaction. Each cron tick is
//! recorded as fired once, by whichever scheduler got there first.

use async_trait::async_trait;
use mesh_spec::ProductRef;

use crate::error::Result;
use crate::model::{QueuedRun, RunId, RunLease, RunRecord};

/// Which runs a listing returns.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub product: Option<ProductRef>,
    /// A status as stored (`failed`, `up-to-date`, …).
    pub status: Option<String>,
    /// Leave out maintenance runs (cause [`OPTIMIZE_CAUSE`]), which
    /// build nothing.
    pub builds_only: bool,
}

/// The cause of a maintenance run: a compaction (`mesh optimize`, or one
/// a run starts after leaving many small files). It holds the product's
/// lease like a build, publishes no release, and is left out of "the
/// last run" of a product.
pub const OPTIMIZE_CAUSE: &str = "optimize";

/// The data version queries of an output read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentVersion {
    /// `<domain>.<output>`.
    pub output: String,
    pub version: i64,
    pub published_at: i64,
    /// The cause of the run that published it (`manual`, `upstream`, …).
    pub cause: String,
    /// The order the publication was recorded in (see `current_versions`).
    pub seq: i64,
}

/// What health is computed from, per product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    pub product: ProductRef,
    /// ms since the epoch.
    pub confirmed_at: Option<i64>,
    pub checks_passed: i64,
    pub checks_run: i64,
}

/// A product's health as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedHealth {
    pub product: ProductRef,
    pub health: String,
    pub reasons: Vec<String>,
    /// ms since the epoch.
    pub since: i64,
}

#[async_trait]
pub trait RunStore: Send + Sync {
    /// Records that a run started, holding its product's lease for
    /// `holder` until `lease_until` (ms since the epoch). Fails with
    /// [`crate::CatalogError::RunBusy`] while another run holds it.
    async fn start_run(&self, run: &RunRecord, holder: &str, lease_until: i64) -> Result<()>;

    /// Records how a started run ended, its check results and what it
    /// published, and releases its lease, in one transaction.
    async fn finish_run(&self, run: &RunRecord) -> Result<()>;

    /// Extends the lease `holder` holds on a run; false when it no longer
    /// holds it (the run was recovered by another process).
    async fn extend_lease(&self, run: &RunId, holder: &str, lease_until: i64) -> Result<bool>;

    /// Takes over the lease of a run in progress from `from` (the holder
    /// seen, or `None` for a run recorded without a lease); false when
    /// another process took it first.
    async fn take_lease(
        &self,
        run: &RunRecord,
        from: Option<&str>,
        to: &str,
        lease_until: i64,
    ) -> Result<bool>;

    /// The lease of every run in progress.
    async fn leases(&self) -> Result<Vec<RunLease>>;

    /// Runs still marked `running`.
    async fn running_runs(&self) -> Result<Vec<RunRecord>>;

    /// One run.
    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>>;

    /// Run history, newest first.
    async fn runs(&self, filter: &RunFilter, limit: i64) -> Result<Vec<RunRecord>>;

    /// How many runs are recorded, by status (`succeeded`, …), in one query.
    async fn run_counts(&self) -> Result<Vec<(String, u64)>>;

    /// The newest run of every product that has run, in one query
    /// (without check results and publications).
    async fn last_runs(&self) -> Result<Vec<RunRecord>>;

    /// The newest finished run of `product` that recorded what it read
    /// (without its check results and publications).
    async fn last_fingerprinted(&self, product: &ProductRef) -> Result<Option<RunRecord>>;

    /// For every product, what its newest finished fingerprinted run read,
    /// in one query.
    async fn last_inputs(&self) -> Result<Vec<(ProductRef, serde_json::Value)>>;

    /// The current data version of every published output and when it was
    /// published (ms since the epoch), in one query. With `after`, only
    /// outputs published since the publication of that `seq` (the newest
    /// version of each among them): a caller that keeps the versions it
    /// read reads only what changed.
    async fn current_versions(&self, after: Option<i64>) -> Result<Vec<CurrentVersion>>;

    /// For every product that has run: when its current data was last
    /// confirmed (the newest `succeeded` or `up-to-date` run's end), and
    /// its quality checks passed and run since `since`, in one query.
    async fn run_facts(&self, since: chrono::DateTime<chrono::Utc>) -> Result<Vec<RunFacts>>;

    /// The health last recorded for every product.
    async fn healths(&self) -> Result<Vec<RecordedHealth>>;

    /// Records a product's health if it still is `from` (`None`: none
    /// recorded); false when another process changed it first.
    async fn record_health(
        &self,
        product: &ProductRef,
        from: Option<&str>,
        to: &RecordedHealth,
    ) -> Result<bool>;

    /// Claims the right to send the notification `key`; false when it was
    /// sent already.
    async fn claim_notice(&self, key: &str, by: &str) -> Result<bool>;

    /// Owes `entry.product` a run. With one already owed, the two become
    /// one: the later due time, the higher attempt, and the cause of the
    /// one due later.
    async fn enqueue(&self, entry: &QueuedRun) -> Result<()>;

    /// Every owed run, soonest first.
    async fn queue(&self) -> Result<Vec<QueuedRun>>;

    /// Removes an owed run (a product no longer scheduled).
    async fn dequeue(&self, product: &ProductRef) -> Result<()>;

    /// Claims `entry` exactly as read and starts `run` with its lease, in
    /// one transaction; false when another process claimed or changed the
    /// entry first, or the product is running.
    async fn claim(
        &self,
        entry: &QueuedRun,
        run: &RunRecord,
        holder: &str,
        lease_until: i64,
    ) -> Result<bool>;

    /// Fires cron tick `tick` of a product: records it and owes the run, in
    /// one transaction; false when it had been fired already.
    async fn fire_tick(&self, entry: &QueuedRun, tick: i64, holder: &str) -> Result<bool>;

    /// The newest tick fired for a product.
    async fn last_tick(&self, product: &ProductRef) -> Result<Option<i64>>;
}
