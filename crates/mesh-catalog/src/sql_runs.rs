//! [`RunStore`] on SQLite: runs, leases, the queue and fired ticks.

use std::collections::BTreeMap;

use async_trait::async_trait;
use mesh_spec::ProductRef;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::{CatalogError, Result};
use crate::model::*;
use crate::runs::{CurrentVersion, RecordedHealth, RunFacts, RunFilter, RunStore};
use crate::sql::{SqlCatalog, json, product_ref, publication_from_row, ts};

/// What the `timeline` column holds.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Timeline {
    #[serde(default)]
    steps: Vec<RunStep>,
    #[serde(default)]
    log: Vec<String>,
}

fn queued_from_row(row: &AnyRow) -> Result<QueuedRun> {
    Ok(QueuedRun {
        product: product_ref(row.try_get("domain")?, row.try_get("name")?)?,
        cause: row.try_get("cause")?,
        due_at: row.try_get("due_at")?,
        attempt: row.try_get("attempt")?,
        queued_at: row.try_get("queued_at")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

impl SqlCatalog {
    async fn run_rows(&self, rows: Vec<AnyRow>) -> Result<Vec<RunRecord>> {
        self.run_rows_with(rows, true).await
    }

    /// Runs from their rows; with `details`, their check results and
    /// publications too.
    async fn run_rows_with(&self, rows: Vec<AnyRow>, details: bool) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::with_capacity(rows.len());
        for row in rows {
            let id = RunId(row.try_get("id")?);
            if !details {
                runs.push(self.run_from_row(&row, id, Vec::new(), Vec::new())?);
                continue;
            }
            let checks = sqlx::query(
                "SELECT output, name, kind, severity, observed, sample, \
                     CASE WHEN passed THEN 1 ELSE 0 END AS passed \
                     FROM check_results WHERE run_id = $1 ORDER BY output, name",
            )
            .bind(&id.0)
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|c| {
                Ok(CheckResult {
                    output: c.try_get("output")?,
                    name: c.try_get("name")?,
                    kind: c.try_get("kind")?,
                    severity: c.try_get("severity")?,
                    // Read as 0/1: SQLite keeps booleans as integers.
                    passed: c.try_get::<i64, _>("passed")? != 0,
                    observed: c.try_get("observed")?,
                    sample: json(c.try_get("sample")?, "check_results", "sample")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
            let publications =
                sqlx::query("SELECT * FROM publications WHERE run_id = $1 ORDER BY output")
                    .bind(&id.0)
                    .fetch_all(self.pool().await?)
                    .await?
                    .iter()
                    .map(publication_from_row)
                    .collect::<Result<Vec<_>>>()?;
            runs.push(self.run_from_row(&row, id, checks, publications)?);
        }
        Ok(runs)
    }

    fn run_from_row(
        &self,
        row: &AnyRow,
        id: RunId,
        checks: Vec<CheckResult>,
        publications: Vec<Publication>,
    ) -> Result<RunRecord> {
        {
            let status: String = row.try_get("status")?;
            let timeline: Timeline = match row.try_get::<Option<String>, _>("timeline")? {
                Some(t) => json(&t, "runs", "timeline")?,
                None => Timeline::default(),
            };
            Ok(RunRecord {
                id,
                product: product_ref(row.try_get("domain")?, row.try_get("name")?)?,
                version: row.try_get("version")?,
                status: RunStatus::parse(&status).ok_or(CatalogError::Corrupt {
                    table: "runs",
                    column: "status",
                    detail: status.clone(),
                })?,
                started_at: ts(row.try_get("started_at")?, "runs", "started_at")?,
                finished_at: row
                    .try_get::<Option<String>, _>("finished_at")?
                    .map(|s| ts(&s, "runs", "finished_at"))
                    .transpose()?,
                duration_ms: row.try_get("duration_ms")?,
                rows_written: row.try_get("rows_written")?,
                checks_passed: row.try_get("checks_passed")?,
                checks_failed: row.try_get("checks_failed")?,
                checks_warned: row.try_get("checks_warned")?,
                error: row.try_get("error")?,
                checks,
                publications,
                cause: row.try_get("cause")?,
                attempt: row.try_get("attempt")?,
                inputs: row
                    .try_get::<Option<String>, _>("inputs")?
                    .map(|s| json(&s, "runs", "inputs"))
                    .transpose()?,
                steps: timeline.steps,
                log: timeline.log,
            })
        }
    }

    /// Inserts a running run and its lease; a taken lease is `RunBusy`.
    async fn insert_run(
        &self,
        tx: &mut Transaction<'_, Any>,
        run: &RunRecord,
        holder: &str,
        lease_until: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (id, domain, name, version, status, started_at, cause, attempt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&run.id.0)
        .bind(run.product.domain.as_str())
        .bind(run.product.name.as_str())
        .bind(&run.version)
        .bind(run.status.as_str())
        .bind(run.started_at.to_rfc3339())
        .bind(&run.cause)
        .bind(run.attempt)
        .execute(&mut **tx)
        .await?;
        let leased = sqlx::query(
            "INSERT INTO run_leases (run_id, domain, name, holder, lease_until) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&run.id.0)
        .bind(run.product.domain.as_str())
        .bind(run.product.name.as_str())
        .bind(holder)
        .bind(lease_until)
        .execute(&mut **tx)
        .await;
        match leased {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(self.busy(&run.product).await),
            Err(e) => Err(e.into()),
        }
    }

    /// The error for a product whose lease another run holds.
    async fn busy(&self, product: &ProductRef) -> CatalogError {
        let pool = match self.pool().await {
            Ok(pool) => pool,
            Err(e) => return e,
        };
        let held = sqlx::query_as::<_, (String, String)>(
            "SELECT run_id, holder FROM run_leases WHERE domain = $1 AND name = $2",
        )
        .bind(product.domain.as_str())
        .bind(product.name.as_str())
        .fetch_optional(pool)
        .await;
        let (run_id, holder) = match held {
            Ok(Some(h)) => h,
            _ => ("?".into(), "another process".into()),
        };
        CatalogError::RunBusy {
            product: product.clone(),
            run_id,
            holder,
        }
    }
}

#[async_trait]
impl RunStore for SqlCatalog {
    async fn start_run(&self, run: &RunRecord, holder: &str, lease_until: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        self.insert_run(&mut tx, run, holder, lease_until).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_run(&self, run: &RunRecord) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let timeline = serde_json::to_string(&Timeline {
            steps: run.steps.clone(),
            log: run.log.clone(),
        })
        .map_err(|e| CatalogError::Corrupt {
            table: "runs",
            column: "timeline",
            detail: e.to_string(),
        })?;
        let updated = sqlx::query(
            "UPDATE runs SET status = $1, finished_at = $2, duration_ms = $3, rows_written = $4,
                 checks_passed = $5, checks_failed = $6, checks_warned = $7, error = $8,
                 inputs = $9, timeline = $10 WHERE id = $11",
        )
        .bind(run.status.as_str())
        .bind(run.finished_at.map(|t| t.to_rfc3339()))
        .bind(run.duration_ms)
        .bind(run.rows_written)
        .bind(run.checks_passed)
        .bind(run.checks_failed)
        .bind(run.checks_warned)
        .bind(&run.error)
        .bind(run.inputs.as_ref().map(|i| i.to_string()))
        .bind(timeline)
        .bind(&run.id.0)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(CatalogError::Corrupt {
                table: "runs",
                column: "id",
                detail: format!("run {} was finished without being started", run.id),
            });
        }
        sqlx::query("DELETE FROM run_leases WHERE run_id = $1")
            .bind(&run.id.0)
            .execute(&mut *tx)
            .await?;
        for c in &run.checks {
            sqlx::query(
                "INSERT INTO check_results (run_id, output, name, kind, severity, passed, observed, sample) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&run.id.0)
            .bind(&c.output)
            .bind(&c.name)
            .bind(&c.kind)
            .bind(&c.severity)
            .bind(c.passed)
            .bind(&c.observed)
            .bind(serde_json::Value::Array(c.sample.clone()).to_string())
            .execute(&mut *tx)
            .await?;
        }
        for p in &run.publications {
            sqlx::query(
                "INSERT INTO publications (domain, output, table_version, product_version, run_id, row_count, published_at, files, columns, seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, (SELECT n FROM activity_generation WHERE id = 1))",
            )
            .bind(p.domain.as_str())
            .bind(p.output.as_str())
            .bind(p.table_version)
            .bind(&p.product_version)
            .bind(&p.run_id.0)
            .bind(p.row_count)
            .bind(p.published_at.to_rfc3339())
            .bind(p.files.as_ref().map(|f| serde_json::json!(f).to_string()))
            .bind(
                p.columns
                    .as_ref()
                    .map(|c| serde_json::json!(c).to_string()),
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn extend_lease(&self, run: &RunId, holder: &str, lease_until: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE run_leases SET lease_until = $1 WHERE run_id = $2 AND holder = $3")
                .bind(lease_until)
                .bind(&run.0)
                .bind(holder)
                .execute(self.pool().await?)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_lease(
        &self,
        run: &RunRecord,
        from: Option<&str>,
        to: &str,
        lease_until: i64,
    ) -> Result<bool> {
        let taken = match from {
            Some(from) => {
                sqlx::query(
                    "UPDATE run_leases SET holder = $1, lease_until = $2 WHERE run_id = $3 AND holder = $4",
                )
                .bind(to)
                .bind(lease_until)
                .bind(&run.id.0)
                .bind(from)
                .execute(self.pool().await?)
                .await
            }
            None => {
                sqlx::query(
                    "INSERT INTO run_leases (run_id, domain, name, holder, lease_until) \
                     SELECT id, domain, name, $1, $2 FROM runs WHERE id = $3 AND status = 'running' \
                     ON CONFLICT DO NOTHING",
                )
                .bind(to)
                .bind(lease_until)
                .bind(&run.id.0)
                .execute(self.pool().await?)
                .await
            }
        };
        match taken {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn leases(&self) -> Result<Vec<RunLease>> {
        sqlx::query("SELECT * FROM run_leases ORDER BY domain, name")
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|row| {
                Ok(RunLease {
                    run_id: RunId(row.try_get("run_id")?),
                    product: product_ref(row.try_get("domain")?, row.try_get("name")?)?,
                    holder: row.try_get("holder")?,
                    lease_until: row.try_get("lease_until")?,
                })
            })
            .collect()
    }

    async fn running_runs(&self) -> Result<Vec<RunRecord>> {
        // A running run has no check results or publications yet.
        let rows = sqlx::query("SELECT * FROM runs WHERE status = 'running' ORDER BY started_at")
            .fetch_all(self.pool().await?)
            .await?;
        self.run_rows_with(rows, false).await
    }

    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let rows = sqlx::query("SELECT * FROM runs WHERE id = $1")
            .bind(&id.0)
            .fetch_all(self.pool().await?)
            .await?;
        Ok(self.run_rows(rows).await?.into_iter().next())
    }

    async fn runs(&self, filter: &RunFilter, limit: i64) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE ($1 IS NULL OR (domain = $1 AND name = $2)) \
             AND ($3 IS NULL OR status = $3) AND ($5 = 0 OR cause <> $6) \
             ORDER BY started_at DESC, id DESC LIMIT $4",
        )
        .bind(filter.product.as_ref().map(|p| p.domain.as_str()))
        .bind(filter.product.as_ref().map(|p| p.name.as_str()))
        .bind(filter.status.as_deref())
        .bind(limit)
        .bind(i64::from(filter.builds_only))
        .bind(crate::runs::OPTIMIZE_CAUSE)
        .fetch_all(self.pool().await?)
        .await?;
        self.run_rows(rows).await
    }

    async fn run_counts(&self) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status")
                .fetch_all(self.pool().await?)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(status, n)| (status, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    async fn last_runs(&self) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT r.* FROM runs r WHERE r.id = (SELECT l.id FROM runs l \
             WHERE l.domain = r.domain AND l.name = r.name AND l.cause <> $1 \
             ORDER BY l.started_at DESC, l.id DESC LIMIT 1)",
        )
        .bind(crate::runs::OPTIMIZE_CAUSE)
        .fetch_all(self.pool().await?)
        .await?;
        self.run_rows_with(rows, false).await
    }

    async fn last_fingerprinted(&self, product: &ProductRef) -> Result<Option<RunRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE domain = $1 AND name = $2 AND inputs IS NOT NULL \
             AND status <> 'running' ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .bind(product.domain.as_str())
        .bind(product.name.as_str())
        .fetch_all(self.pool().await?)
        .await?;
        Ok(self.run_rows_with(rows, false).await?.into_iter().next())
    }

    async fn last_inputs(&self) -> Result<Vec<(ProductRef, serde_json::Value)>> {
        sqlx::query(
            "SELECT domain, name, inputs FROM (SELECT domain, name, inputs, row_number() OVER \
             (PARTITION BY domain, name ORDER BY started_at DESC, id DESC) AS n FROM runs \
             WHERE inputs IS NOT NULL AND status <> 'running') AS newest WHERE n = 1",
        )
        .fetch_all(self.pool().await?)
        .await?
        .iter()
        .map(|row| {
            Ok((
                product_ref(row.try_get("domain")?, row.try_get("name")?)?,
                json(row.try_get("inputs")?, "runs", "inputs")?,
            ))
        })
        .collect()
    }

    async fn current_versions(&self, after: Option<i64>) -> Result<Vec<CurrentVersion>> {
        let rows =
            match after {
                // The newest version of each output, found on the primary key
                // alone (no sort of the whole history).
                None => sqlx::query(
                    "SELECT p.domain, p.output, p.table_version, p.published_at, p.seq, r.cause \
                     FROM (SELECT domain, output, max(table_version) AS newest FROM publications \
                     GROUP BY domain, output) AS m \
                     JOIN publications p ON p.domain = m.domain AND p.output = m.output \
                     AND p.table_version = m.newest JOIN runs r ON r.id = p.run_id",
                )
                .fetch_all(self.pool().await?)
                .await?,
                Some(seq) => sqlx::query(
                    "SELECT p.domain, p.output, p.table_version, p.published_at, p.seq, r.cause \
                     FROM publications p JOIN runs r ON r.id = p.run_id WHERE p.seq > $1",
                )
                .bind(seq)
                .fetch_all(self.pool().await?)
                .await?,
            };
        let mut newest: BTreeMap<String, CurrentVersion> = BTreeMap::new();
        for row in &rows {
            let domain: String = row.try_get("domain")?;
            let output: String = row.try_get("output")?;
            let v = CurrentVersion {
                output: format!("{domain}.{output}"),
                version: row.try_get("table_version")?,
                published_at: ts(row.try_get("published_at")?, "publications", "published_at")?
                    .timestamp_millis(),
                cause: row.try_get("cause")?,
                seq: row.try_get::<Option<i64>, _>("seq")?.unwrap_or(0),
            };
            match newest.get(&v.output) {
                Some(known) if known.version >= v.version => {}
                _ => {
                    newest.insert(v.output.clone(), v);
                }
            }
        }
        Ok(newest.into_values().collect())
    }

    async fn run_facts(&self, since: chrono::DateTime<chrono::Utc>) -> Result<Vec<RunFacts>> {
        // Times are RFC 3339 in UTC, so they order as text. PostgreSQL
        // sums integers as numeric, which the Any driver does not read.
        sqlx::query(
            "SELECT domain, name, \
               max(CASE WHEN status IN ('succeeded', 'up-to-date') THEN finished_at END) AS confirmed, \
               CAST(sum(CASE WHEN started_at >= $1 THEN checks_passed ELSE 0 END) AS BIGINT) AS passed, \
               CAST(sum(CASE WHEN started_at >= $1 THEN checks_passed + checks_failed + checks_warned ELSE 0 END) AS BIGINT) AS checked \
             FROM runs GROUP BY domain, name",
        )
        .bind(since.to_rfc3339())
        .fetch_all(self.pool().await?)
        .await?
        .iter()
        .map(|row| {
            Ok(RunFacts {
                product: product_ref(row.try_get("domain")?, row.try_get("name")?)?,
                confirmed_at: row
                    .try_get::<Option<String>, _>("confirmed")?
                    .map(|t| ts(&t, "runs", "finished_at").map(|t| t.timestamp_millis()))
                    .transpose()?,
                checks_passed: row.try_get::<Option<i64>, _>("passed")?.unwrap_or(0),
                checks_run: row.try_get::<Option<i64>, _>("checked")?.unwrap_or(0),
            })
        })
        .collect()
    }

    async fn healths(&self) -> Result<Vec<RecordedHealth>> {
        sqlx::query("SELECT * FROM product_health ORDER BY domain, name")
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|row| {
                Ok(RecordedHealth {
                    product: product_ref(row.try_get("domain")?, row.try_get("name")?)?,
                    health: row.try_get("health")?,
                    reasons: json(row.try_get("reasons")?, "product_health", "reasons")?,
                    since: row.try_get("since")?,
                })
            })
            .collect()
    }

    async fn record_health(
        &self,
        product: &ProductRef,
        from: Option<&str>,
        to: &RecordedHealth,
    ) -> Result<bool> {
        let reasons = serde_json::json!(to.reasons).to_string();
        let done = match from {
            Some(from) => {
                sqlx::query(
                    "UPDATE product_health SET health = $1, reasons = $2, since = $3 \
                     WHERE domain = $4 AND name = $5 AND health = $6",
                )
                .bind(&to.health)
                .bind(&reasons)
                .bind(to.since)
                .bind(product.domain.as_str())
                .bind(product.name.as_str())
                .bind(from)
                .execute(self.pool().await?)
                .await?
            }
            None => {
                sqlx::query(
                    "INSERT INTO product_health (domain, name, health, reasons, since) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (domain, name) DO NOTHING",
                )
                .bind(product.domain.as_str())
                .bind(product.name.as_str())
                .bind(&to.health)
                .bind(&reasons)
                .bind(to.since)
                .execute(self.pool().await?)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn claim_notice(&self, key: &str, by: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO notices (key, sent_by, at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(by)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(self.pool().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn enqueue(&self, e: &QueuedRun) -> Result<()> {
        sqlx::query(
            "INSERT INTO run_queue (domain, name, cause, due_at, attempt, queued_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (domain, name) DO UPDATE SET \
               cause = CASE WHEN excluded.due_at > run_queue.due_at THEN excluded.cause ELSE run_queue.cause END, \
               due_at = CASE WHEN excluded.due_at > run_queue.due_at THEN excluded.due_at ELSE run_queue.due_at END, \
               attempt = CASE WHEN excluded.attempt > run_queue.attempt THEN excluded.attempt ELSE run_queue.attempt END",
        )
        .bind(e.product.domain.as_str())
        .bind(e.product.name.as_str())
        .bind(&e.cause)
        .bind(e.due_at)
        .bind(e.attempt)
        .bind(e.queued_at)
        .execute(self.pool().await?)
        .await?;
        Ok(())
    }

    async fn queue(&self) -> Result<Vec<QueuedRun>> {
        sqlx::query("SELECT * FROM run_queue ORDER BY due_at, domain, name")
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(queued_from_row)
            .collect()
    }

    async fn dequeue(&self, product: &ProductRef) -> Result<()> {
        sqlx::query("DELETE FROM run_queue WHERE domain = $1 AND name = $2")
            .bind(product.domain.as_str())
            .bind(product.name.as_str())
            .execute(self.pool().await?)
            .await?;
        Ok(())
    }

    async fn claim(
        &self,
        entry: &QueuedRun,
        run: &RunRecord,
        holder: &str,
        lease_until: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let taken = sqlx::query(
            "DELETE FROM run_queue WHERE domain = $1 AND name = $2 AND due_at = $3 \
             AND attempt = $4 AND cause = $5",
        )
        .bind(entry.product.domain.as_str())
        .bind(entry.product.name.as_str())
        .bind(entry.due_at)
        .bind(entry.attempt)
        .bind(&entry.cause)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() != 1 {
            return Ok(false);
        }
        match self.insert_run(&mut tx, run, holder, lease_until).await {
            Ok(()) => {}
            Err(CatalogError::RunBusy { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn fire_tick(&self, entry: &QueuedRun, tick: i64, holder: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let fired = sqlx::query(
            "INSERT INTO schedule_ticks (domain, name, tick, fired_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (domain, name, tick) DO NOTHING",
        )
        .bind(entry.product.domain.as_str())
        .bind(entry.product.name.as_str())
        .bind(tick)
        .bind(holder)
        .execute(&mut *tx)
        .await?;
        if fired.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO run_queue (domain, name, cause, due_at, attempt, queued_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (domain, name) DO NOTHING",
        )
        .bind(entry.product.domain.as_str())
        .bind(entry.product.name.as_str())
        .bind(&entry.cause)
        .bind(entry.due_at)
        .bind(entry.attempt)
        .bind(entry.queued_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn last_tick(&self, product: &ProductRef) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT max(tick) FROM schedule_ticks WHERE domain = $1 AND name = $2")
                .bind(product.domain.as_str())
                .bind(product.name.as_str())
                .fetch_optional(self.pool().await?)
                .await?;
        Ok(row.and_then(|r| r.0))
    }
}
