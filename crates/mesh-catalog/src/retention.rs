//! What storage maintenance records (docs/storage.md): data versions
//! retention expired (migration 0017), recorded before `mesh vacuum`
//! deletes their files and read by time travel to refuse them with the
//! rule that removed them; and compactions (migration 0018), which point
//! a release at its rewritten files and leave the replaced ones to vacuum.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mesh_spec::{DomainName, OutputName};
use sqlx::Row;

use crate::error::{CatalogError, Result};
use crate::model::RunId;
use crate::sql::SqlCatalog;

/// One expired data version of an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredVersion {
    pub table_version: i64,
    pub expired_at: DateTime<Utc>,
    /// The retention rule that expired it, as declared.
    pub rule: String,
}

/// A compaction of one release, as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    pub domain: DomainName,
    pub output: OutputName,
    /// The release whose files were rewritten.
    pub table_version: i64,
    /// The Delta version that holds the rewritten files.
    pub read_version: i64,
    /// Every file the release reads now, relative to the table root.
    pub files: Vec<String>,
    /// The files no reader is sent to any more.
    pub superseded: Vec<String>,
    /// The maintenance run that compacted it.
    pub run_id: RunId,
}

#[async_trait]
pub trait RetentionStore {
    /// Points a release at its compacted files and records the files
    /// they replace, in one transaction. Fails if the release is not
    /// published, or was compacted to a newer Delta version already.
    async fn record_compaction(&self, c: &Compaction) -> Result<()>;

    /// The files compactions replaced, relative to the table root.
    async fn superseded_files(
        &self,
        domain: &DomainName,
        output: &OutputName,
    ) -> Result<Vec<String>>;

    /// Records versions of an output as expired under `rule` (versions
    /// already recorded keep their first record).
    async fn expire_versions(
        &self,
        domain: &DomainName,
        output: &OutputName,
        versions: &[i64],
        rule: &str,
    ) -> Result<()>;

    /// The expired versions of an output, oldest first.
    async fn expired_versions(
        &self,
        domain: &DomainName,
        output: &OutputName,
    ) -> Result<Vec<ExpiredVersion>>;
}

#[async_trait]
impl RetentionStore for SqlCatalog {
    async fn record_compaction(&self, c: &Compaction) -> Result<()> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.begin_write().await?;
        let files = serde_json::json!(c.files).to_string();
        let updated = sqlx::query(
            "UPDATE publications SET files = $1, read_version = $2
             WHERE domain = $3 AND output = $4 AND table_version = $5
               AND coalesce(read_version, table_version) < $2",
        )
        .bind(&files)
        .bind(c.read_version)
        .bind(c.domain.as_str())
        .bind(c.output.as_str())
        .bind(c.table_version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(CatalogError::Corrupt {
                table: "publications",
                column: "read_version",
                detail: format!(
                    "release {} of {}.{} is not published, or is compacted to Delta version {} or newer already",
                    c.table_version, c.domain, c.output, c.read_version
                ),
            });
        }
        for path in &c.superseded {
            sqlx::query(
                "INSERT INTO superseded_files (domain, output, path, table_version, run_id, superseded_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(c.domain.as_str())
            .bind(c.output.as_str())
            .bind(path)
            .bind(c.table_version)
            .bind(&c.run_id.0)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn superseded_files(
        &self,
        domain: &DomainName,
        output: &OutputName,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT path FROM superseded_files WHERE domain = $1 AND output = $2 ORDER BY path",
        )
        .bind(domain.as_str())
        .bind(output.as_str())
        .fetch_all(self.pool().await?)
        .await?;
        rows.iter()
            .map(|r| r.try_get("path").map_err(Into::into))
            .collect()
    }

    async fn expire_versions(
        &self,
        domain: &DomainName,
        output: &OutputName,
        versions: &[i64],
        rule: &str,
    ) -> Result<()> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.begin_write().await?;
        for v in versions {
            sqlx::query(
                "INSERT INTO expired_versions (domain, output, table_version, expired_at, rule)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(domain.as_str())
            .bind(output.as_str())
            .bind(v)
            .bind(&now)
            .bind(rule)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn expired_versions(
        &self,
        domain: &DomainName,
        output: &OutputName,
    ) -> Result<Vec<ExpiredVersion>> {
        let rows = sqlx::query(
            "SELECT table_version, expired_at, rule FROM expired_versions
             WHERE domain = $1 AND output = $2 ORDER BY table_version",
        )
        .bind(domain.as_str())
        .bind(output.as_str())
        .fetch_all(self.pool().await?)
        .await?;
        rows.iter()
            .map(|r| {
                let at: String = r.try_get("expired_at")?;
                Ok(ExpiredVersion {
                    table_version: r.try_get("table_version")?,
                    expired_at: crate::sql::ts(&at, "expired_versions", "expired_at")?,
                    rule: r.try_get("rule")?,
                })
            })
            .collect()
    }
}
