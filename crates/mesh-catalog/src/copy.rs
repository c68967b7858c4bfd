//! Copying a whole catalog to another backend (`mesh migrate`,
//! docs/deployment.md): every table's rows, with their history (releases,
//! runs, the audit log, identities, grants), verified row for row.
//!
//! The copy is one transaction on the target, so an interrupted copy
//! leaves it as it was. A target that already holds exactly the source's
//! rows is a finished copy, and copying again only verifies it; a target
//! holding anything else is refused. What the target derives itself is
//! not copied: the change counters (its triggers move them as rows
//! arrive) and the per-generation caches (rebuilt on first use).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Column, Row, ValueRef};

use crate::error::{CatalogError, Result};
use crate::identity::AuditEntry;
use crate::sql::{Dialect, SqlCatalog};

/// Tables the target keeps for itself.
const NOT_COPIED: &[&str] = &[
    "_sqlx_migrations",
    "deployment_caches",
    "deployment_generation",
    "activity_generation",
    "access_generation",
];

/// What a copy did, per table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCopy {
    pub table: String,
    pub rows: u64,
}

/// What [`SqlCatalog::copy_to`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogCopy {
    /// False when the target already held exactly these rows.
    pub copied: bool,
    pub tables: Vec<TableCopy>,
}

/// How a column's values are bound: by the kind of type it declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Int,
    Bool,
    Float,
    Text,
    Blob,
}

impl Class {
    fn of(declared: &str) -> Class {
        let t = declared.to_ascii_uppercase();
        if t.contains("BOOL") {
            Class::Bool
        } else if t.contains("INT") || t.contains("SERIAL") {
            Class::Int
        } else if t.contains("REAL") || t.contains("DOUBLE") || t.contains("FLOAT") {
            Class::Float
        } else if t.contains("BLOB") || t.contains("BYTEA") {
            Class::Blob
        } else {
            Class::Text
        }
    }
}

/// One column of a table, as both backends name and type it.
#[derive(Debug, Clone)]
struct ColumnInfo {
    name: String,
    class: Class,
}

/// A value as text that compares equal across backends.
fn render(row: &AnyRow, i: usize) -> Result<String> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok("null".into());
    }
    use sqlx::any::AnyTypeInfoKind as K;
    Ok(match raw.type_info().kind() {
        K::Bool => format!("i:{}", i64::from(row.try_get::<bool, _>(i)?)),
        K::SmallInt | K::Integer | K::BigInt => format!("i:{}", row.try_get::<i64, _>(i)?),
        K::Real | K::Double => format!("f:{}", row.try_get::<f64, _>(i)?),
        K::Text => format!("t:{}", row.try_get::<String, _>(i)?),
        K::Blob => format!("b:{:?}", row.try_get::<Vec<u8>, _>(i)?),
        K::Null => "null".into(),
    })
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl SqlCatalog {
    /// The catalog's tables in creation order (parents before the tables
    /// that reference them), with their columns.
    async fn tables(&self) -> Result<Vec<(String, Vec<ColumnInfo>)>> {
        let rows: Vec<(String, String, String)> = match self.dialect {
            Dialect::Sqlite => {
                sqlx::query_as(
                    "SELECT m.name, p.name, upper(p.type) FROM sqlite_master m \
                 JOIN pragma_table_info(m.name) p WHERE m.type = 'table' \
                 AND m.name NOT LIKE 'sqlite_%' ORDER BY m.rowid, p.cid",
                )
                .fetch_all(self.pool().await?)
                .await?
            }
            Dialect::Postgres => {
                sqlx::query_as(
                    "SELECT CAST(c.table_name AS text), CAST(c.column_name AS text), \
                 upper(CAST(c.data_type AS text)) FROM information_schema.columns c \
                 JOIN pg_class t ON t.relname = c.table_name \
                 JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = c.table_schema \
                 WHERE c.table_schema = current_schema() \
                 ORDER BY t.oid, c.ordinal_position",
                )
                .fetch_all(self.pool().await?)
                .await?
            }
        };
        let mut tables: Vec<(String, Vec<ColumnInfo>)> = Vec::new();
        for (table, column, ty) in rows {
            if NOT_COPIED.contains(&table.as_str()) {
                continue;
            }
            let info = ColumnInfo {
                name: column,
                class: Class::of(&ty),
            };
            match tables.last_mut() {
                Some((t, columns)) if *t == table => columns.push(info),
                _ => tables.push((table, vec![info])),
            }
        }
        Ok(tables)
    }

    /// Every row of `table`, each value rendered by [`render`], sorted.
    async fn rendered(&self, table: &str, columns: &[ColumnInfo]) -> Result<Vec<Vec<String>>> {
        let rows = self.select_all(table, columns).await?;
        let mut out = rows
            .iter()
            .map(|row| (0..columns.len()).map(|i| render(row, i)).collect())
            .collect::<Result<Vec<Vec<String>>>>()?;
        out.sort();
        Ok(out)
    }

    /// `SELECT` of every column, booleans read as 0/1 (SQLite keeps them
    /// as integers, and the `Any` driver reads neither backend's as the
    /// other's).
    async fn select_all(&self, table: &str, columns: &[ColumnInfo]) -> Result<Vec<AnyRow>> {
        let list = columns
            .iter()
            .map(|c| match c.class {
                Class::Bool => format!("CASE WHEN {0} THEN 1 ELSE 0 END AS {0}", quote(&c.name)),
                _ => quote(&c.name),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {list} FROM {}", quote(table));
        Ok(sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool().await?)
            .await?)
    }

    /// Copies every row of this catalog into `target` (migrated, and
    /// empty or already holding exactly these rows), then verifies that
    /// each table holds the same rows on both. `record`, the copy's own
    /// audit entry, is appended to the target in the copy's transaction,
    /// so a finished copy always says so; verifying allows the target
    /// audit entries of `record`'s action beyond the source's.
    pub async fn copy_to(
        &self,
        target: &SqlCatalog,
        record: Option<&AuditEntry>,
    ) -> Result<CatalogCopy> {
        let tables = self.tables().await?;
        let theirs = target.tables().await?;
        for (table, columns) in &tables {
            let names = |cs: &[ColumnInfo]| cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            match theirs.iter().find(|(t, _)| t == table) {
                Some((_, other)) if names(other) == names(columns) => {}
                _ => {
                    return Err(CatalogError::Copy(format!(
                        "the target's table `{table}` differs from the source's; \
                         both must be at the same schema version (run this version of mesh on both)"
                    )));
                }
            }
        }
        let mut held = 0u64;
        for (table, _) in &tables {
            let sql = format!("SELECT count(*) FROM {}", quote(table));
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_one(target.pool().await?)
                .await?;
            held += n as u64;
        }
        let copied = held == 0;
        if copied {
            let mut tx = target.begin_write().await?;
            for (table, columns) in &tables {
                let Some((_, targets)) = theirs.iter().find(|(t, _)| t == table) else {
                    continue;
                };
                let list = columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>();
                let params = targets
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match (c.class, target.dialect) {
                        (Class::Bool, Dialect::Postgres) => format!("(${} <> 0)", i + 1),
                        _ => format!("${}", i + 1),
                    })
                    .collect::<Vec<_>>();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    quote(table),
                    list.join(", "),
                    params.join(", ")
                );
                for row in self.select_all(table, columns).await? {
                    let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
                    for (i, column) in targets.iter().enumerate() {
                        query = bind(query, &row, i, column.class, table)?;
                    }
                    query.execute(&mut *tx).await?;
                }
            }
            if target.dialect == Dialect::Postgres {
                // Rows arrived with their own sequence numbers: the audit
                // log's next one follows the highest.
                sqlx::query(
                    "SELECT setval(pg_get_serial_sequence('audit_log', 'seq'), \
                     COALESCE((SELECT max(seq) FROM audit_log), 0) + 1, false)",
                )
                .execute(&mut *tx)
                .await?;
            }
            if let Some(record) = record {
                crate::sql_identity::insert_audit(&mut tx, std::slice::from_ref(record)).await?;
            }
            tx.commit().await?;
        }
        let mut report = Vec::new();
        let recorded = record.map(|r| format!("t:{}", r.action));
        for (table, columns) in &tables {
            let ours = self.rendered(table, columns).await?;
            let mut theirs = target.rendered(table, columns).await?;
            if table == "audit_log"
                && let (Some(action), Some(at)) =
                    (&recorded, columns.iter().position(|c| c.name == "action"))
            {
                // The copies' own records, beyond the source's entries.
                theirs.retain(|row| ours.binary_search(row).is_ok() || row[at] != *action);
            }
            if ours != theirs {
                return Err(CatalogError::Copy(match copied {
                    true => format!("table `{table}` differs after the copy"),
                    false => format!(
                        "the target catalog already holds a different mesh (table `{table}` differs); \
                         copy into an empty database"
                    ),
                }));
            }
            report.push(TableCopy {
                table: table.clone(),
                rows: ours.len() as u64,
            });
        }
        Ok(CatalogCopy {
            copied,
            tables: report,
        })
    }
}

/// Binds value `i` of `row` as the target column's `class` wants it.
fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    row: &AnyRow,
    i: usize,
    class: Class,
    table: &str,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>> {
    use sqlx::any::AnyTypeInfoKind as K;
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(match class {
            Class::Int | Class::Bool => query.bind(None::<i64>),
            Class::Float => query.bind(None::<f64>),
            Class::Text => query.bind(None::<String>),
            Class::Blob => query.bind(None::<Vec<u8>>),
        });
    }
    let kind = raw.type_info().kind();
    let integer = |row: &AnyRow| -> Result<i64> {
        Ok(match kind {
            K::Bool => i64::from(row.try_get::<bool, _>(i)?),
            _ => row.try_get::<i64, _>(i)?,
        })
    };
    let mismatch = || {
        CatalogError::Copy(format!(
            "table `{table}`, column `{}`: a {kind:?} value where the target keeps {class:?}",
            row.column(i).name()
        ))
    };
    Ok(match (class, kind) {
        (Class::Int | Class::Bool, K::Bool | K::SmallInt | K::Integer | K::BigInt) => {
            query.bind(integer(row)?)
        }
        (Class::Float, K::Real | K::Double) => query.bind(row.try_get::<f64, _>(i)?),
        (Class::Float, K::SmallInt | K::Integer | K::BigInt) => {
            query.bind(row.try_get::<i64, _>(i)? as f64)
        }
        (Class::Text, K::Text) => query.bind(row.try_get::<String, _>(i)?),
        (Class::Text, K::SmallInt | K::Integer | K::BigInt | K::Bool) => {
            query.bind(integer(row)?.to_string())
        }
        (Class::Blob, K::Blob) => query.bind(row.try_get::<Vec<u8>, _>(i)?),
        _ => return Err(mismatch()),
    })
}
