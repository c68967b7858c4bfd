//! Data versions retention expired (migration 0017): recorded before
//! `mesh vacuum` deletes their files, read by time travel to refuse them
//! with the rule that removed them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mesh_spec::{DomainName, OutputName};
use sqlx::Row;

use crate::error::Result;
use crate::sqlite::SqliteCatalog;

/// One expired data version of an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredVersion {
    pub table_version: i64,
    pub expired_at: DateTime<Utc>,
    /// The retention rule that expired it, as declared.
    pub rule: String,
}

#[async_trait]
pub trait RetentionStore {
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
impl RetentionStore for SqliteCatalog {
    async fn expire_versions(
        &self,
        domain: &DomainName,
        output: &OutputName,
        versions: &[i64],
        rule: &str,
    ) -> Result<()> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.pool.begin().await?;
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
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let at: String = r.try_get("expired_at")?;
                Ok(ExpiredVersion {
                    table_version: r.try_get("table_version")?,
                    expired_at: crate::sqlite::ts(&at, "expired_versions", "expired_at")?,
                    rule: r.try_get("rule")?,
                })
            })
            .collect()
    }
}
