//! Values derived from the deployed products, kept per deployment
//! generation (`deployment_caches`, migration 0016): a cache a process
//! may fill and every later process at the same generation may read. The
//! catalog's rows stay the truth; a missing, stale or unreadable entry is
//! derived again.

use async_trait::async_trait;
use sqlx::Row;

use crate::error::Result;
use crate::sql::SqlCatalog;

#[async_trait]
pub trait CacheStore {
    /// The `kind` entry stored for a deployment generation in encoding
    /// `format`, if a process stored one.
    async fn cached(&self, kind: &str, generation: i64, format: &str) -> Result<Option<Vec<u8>>>;

    /// Stores the `kind` entry of a deployment generation, and drops the
    /// entries of that kind for older generations. An entry already
    /// stored for the generation and format is kept.
    async fn store_cached(
        &self,
        kind: &str,
        generation: i64,
        format: &str,
        content: &[u8],
    ) -> Result<()>;
}

#[async_trait]
impl CacheStore for SqlCatalog {
    async fn cached(&self, kind: &str, generation: i64, format: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT content FROM deployment_caches WHERE kind = $1 AND generation = $2 AND format = $3",
        )
        .bind(kind)
        .bind(generation)
        .bind(format)
        .fetch_optional(self.pool().await?)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("content")?),
            None => None,
        })
    }

    async fn store_cached(
        &self,
        kind: &str,
        generation: i64,
        format: &str,
        content: &[u8],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM deployment_caches WHERE kind = $1 AND generation < $2")
            .bind(kind)
            .bind(generation)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO deployment_caches (kind, generation, format, content) VALUES ($1, $2, $3, $4)
             ON CONFLICT (kind, generation, format) DO NOTHING",
        )
        .bind(kind)
        .bind(generation)
        .bind(format)
        .bind(content)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
