//! `ClassificationStore` for the SQLite catalog.

use async_trait::async_trait;
use sqlx::Row;

use crate::classes::{ClassificationStore, ColumnClass, StoredLineage, stricter};
use crate::error::Result;
use crate::sql::SqlCatalog;

#[async_trait]
impl ClassificationStore for SqlCatalog {
    async fn record_classes(&self, rows: &[ColumnClass]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for r in rows {
            let existing: Option<Option<String>> = sqlx::query(
                "SELECT classification FROM column_classes WHERE family = $1 AND output = $2 AND version = $3 AND name = $4",
            )
            .bind(&r.family)
            .bind(&r.output)
            .bind(&r.version)
            .bind(&r.name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("classification"))
            .transpose()?;
            match existing {
                None => {
                    sqlx::query(
                        "INSERT INTO column_classes (family, output, version, name, lineage, classification) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&r.family)
                    .bind(&r.output)
                    .bind(&r.version)
                    .bind(&r.name)
                    .bind(&r.lineage)
                    .bind(&r.classification)
                    .execute(&mut *tx)
                    .await?;
                }
                Some(old) => {
                    let kept = stricter(old, r.classification.clone());
                    sqlx::query(
                        "UPDATE column_classes SET classification = $5 WHERE family = $1 AND output = $2 AND version = $3 AND name = $4",
                    )
                    .bind(&r.family)
                    .bind(&r.output)
                    .bind(&r.version)
                    .bind(&r.name)
                    .bind(kept)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn classes(&self, family: &str) -> Result<Vec<ColumnClass>> {
        let rows = sqlx::query(
            "SELECT family, output, version, name, lineage, classification FROM column_classes WHERE family = $1 ORDER BY output, version, name",
        )
        .bind(family)
        .fetch_all(self.pool().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ColumnClass {
                    family: r.try_get("family")?,
                    output: r.try_get("output")?,
                    version: r.try_get("version")?,
                    name: r.try_get("name")?,
                    lineage: r.try_get("lineage")?,
                    classification: r.try_get("classification")?,
                })
            })
            .collect()
    }

    async fn record_lineage(&self, rows: &[StoredLineage]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO column_lineage (family, version, lineage) VALUES ($1, $2, $3)
                 ON CONFLICT (family, version) DO UPDATE SET lineage = excluded.lineage",
            )
            .bind(&r.family)
            .bind(&r.version)
            .bind(&r.lineage)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn current_lineage(&self) -> Result<Vec<StoredLineage>> {
        let rows = sqlx::query(
            "SELECT l.family, l.version, l.lineage FROM column_lineage l
             JOIN products p
               ON l.family = COALESCE(p.line_of, p.domain || '/' || p.name)
              AND l.version = p.version
             ORDER BY l.family, l.version",
        )
        .fetch_all(self.pool().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredLineage {
                    family: r.try_get("family")?,
                    version: r.try_get("version")?,
                    lineage: r.try_get("lineage")?,
                })
            })
            .collect()
    }
}
