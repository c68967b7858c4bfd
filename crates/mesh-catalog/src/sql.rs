//! The catalog on SQL: a SQLite file (the embedded default) or a
//! PostgreSQL database, through sqlx's `Any` driver, so every statement is
//! written once. Statements use `$N` parameters, text timestamps and
//! 64-bit integers, which both backends read alike; the few that differ
//! are chosen by [`Dialect`]. Each backend has its own migrations
//! (`migrations/sqlite`, `migrations/postgres`), checked by the catalog
//! tests to produce the same tables and columns.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mesh_spec::{DomainName, OutputName, ProductRef};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use tokio::sync::OnceCell;

use crate::error::{CatalogError, Result};
use crate::locations::Locations;
use crate::model::*;
use crate::store::CatalogStore;

/// The SQL a backend speaks, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The advisory lock every PostgreSQL write transaction takes first, so
/// writers run one at a time as they do on SQLite: the catalog's
/// read-then-write transactions (deploys, claims, compactions) rely on it.
/// The number spells "mesh" in ASCII.
const WRITE_LOCK: i64 = 0x6d65_7368;

/// A catalog in a SQLite file or a PostgreSQL database.
///
/// Opened [`SqlCatalog::lazily_under`], it connects, and checks its
/// schema, at its first statement: a command that needs no catalog
/// (`mesh query "SELECT 1"`) never opens it.
#[derive(Debug, Clone)]
pub struct SqlCatalog {
    pool: AnyPool,
    /// Set once the schema is up to date (and old absolute paths made
    /// relative); every statement waits for it ([`Self::pool`]).
    ready: Arc<OnceCell<()>>,
    /// The URL, password hidden, for messages.
    shown_url: String,
    pub(crate) dialect: Dialect,
    /// Table locations, relative to the storage root.
    tables: Locations,
    /// Descriptor paths, relative to the project's folder.
    descriptors: Locations,
}

/// The statement `$statement!(sqlite)` or `$statement!(postgres)`, for
/// `dialect`: a statement that differs between the backends is a local
/// macro, so both texts stay literals.
macro_rules! by_dialect {
    ($dialect:expr, $statement:ident) => {
        match $dialect {
            $crate::sql::Dialect::Sqlite => $statement!(sqlite),
            $crate::sql::Dialect::Postgres => $statement!(postgres),
        }
    };
}
pub(crate) use by_dialect;

/// Settings each SQLite connection gets when it opens.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

impl SqlCatalog {
    /// Opens (creating if needed) a SQLite catalog file and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::connect(&format!("sqlite://{}", path.display())).await
    }

    /// Connects to the catalog at `url` (`sqlite://PATH` or
    /// `postgres://…`) and brings its schema up to date. A SQLite file is
    /// created if missing; a PostgreSQL database must exist.
    pub async fn connect(url: &str) -> Result<Self> {
        let catalog = Self::lazily(url)?;
        catalog.pool().await?;
        Ok(catalog)
    }

    /// The catalog at `url`, not yet connected: the URL is checked now,
    /// the connection and the schema at the first statement.
    fn lazily(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let open_err = |source| CatalogError::Open {
            url: redact(url),
            source,
        };
        let (dialect, pool) = match url.split_once("://") {
            Some(("sqlite", _)) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(4)
                    // A local file needs no ping before each use (a round
                    // trip per query otherwise).
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .connect_lazy(&format!(
                        "{url}{}mode=rwc",
                        if url.contains('?') { '&' } else { '?' }
                    ))
                    .map_err(open_err)?;
                (Dialect::Sqlite, pool)
            }
            Some(("postgres" | "postgresql", _)) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    // A server's connection can drop (restart, failover,
                    // idle timeout): a pooled one is checked before use
                    // and replaced if it is gone.
                    .test_before_acquire(true)
                    .acquire_timeout(Duration::from_secs(30))
                    .idle_timeout(Duration::from_secs(300))
                    .connect_lazy(url)
                    .map_err(open_err)?;
                (Dialect::Postgres, pool)
            }
            _ => {
                return Err(CatalogError::UnsupportedUrl { url: redact(url) });
            }
        };
        Ok(SqlCatalog {
            pool,
            ready: Arc::default(),
            shown_url: redact(url),
            dialect,
            tables: Locations::default(),
            descriptors: Locations::default(),
        })
    }

    /// The pool, once the schema is up to date: the first call connects,
    /// runs the migrations and makes paths recorded by older versions
    /// relative, all on one connection (a connection dropped goes back to
    /// the pool only later, from a task, so taking another at once would
    /// open a second one).
    pub(crate) async fn pool(&self) -> Result<&AnyPool> {
        self.ready.get_or_try_init(|| self.prepare()).await?;
        Ok(&self.pool)
    }

    /// What [`Self::pool`] does first, boxed: sqlx's `Acquire` bounds are
    /// higher-ranked, and only a boxed future proves `Send` to the
    /// `async_trait` methods that await it.
    fn prepare(&self) -> futures::future::BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|source| CatalogError::Open {
                    url: self.shown_url.clone(),
                    source,
                })?;
            match self.dialect {
                Dialect::Sqlite => {
                    sqlx::migrate!("./migrations/sqlite")
                        .run_direct(None, &mut *conn, false)
                        .await?
                }
                Dialect::Postgres => {
                    sqlx::migrate!("./migrations/postgres")
                        .run_direct(None, &mut *conn, false)
                        .await?
                }
            }
            self.relocate(&mut conn).await
        })
    }

    /// Connects now, if this catalog has not yet: what its first
    /// statement would do (see [`Self::pool`]).
    pub async fn reach(&self) -> Result<()> {
        self.pool().await.map(|_| ())
    }

    /// Which SQL the catalog speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Begins a transaction that writes. On PostgreSQL it first takes the
    /// catalog's write lock ([`WRITE_LOCK`]), held until it ends.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        let mut tx = self.pool().await?.begin().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(WRITE_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Opens the catalog at `url` for the project in `project` whose
    /// tables live under `storage_root`: descriptors are stored relative
    /// to the project and table locations relative to the storage root, so
    /// a copied or moved project uses its own sources and tables. Absolute
    /// paths that earlier versions recorded under these roots are made
    /// relative once, when the catalog opens.
    pub async fn connect_under(url: &str, project: &Path, storage_root: &str) -> Result<Self> {
        let catalog = Self::lazily_under(url, project, storage_root)?;
        catalog.pool().await?;
        Ok(catalog)
    }

    /// [`Self::connect_under`], connecting at the first statement.
    pub fn lazily_under(url: &str, project: &Path, storage_root: &str) -> Result<Self> {
        let mut catalog = Self::lazily(url)?;
        catalog.tables = Locations::under(storage_root);
        catalog.descriptors = Locations::under(&project.display().to_string());
        Ok(catalog)
    }

    /// Makes absolute paths that earlier versions recorded under the
    /// project and storage roots relative.
    async fn relocate(&self, conn: &mut sqlx::pool::PoolConnection<Any>) -> Result<()> {
        for (locations, any_sql, relocate_sql) in [
            (
                &self.tables,
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM outputs WHERE location LIKE $1 ESCAPE '\\') THEN 1 ELSE 0 END",
                "UPDATE outputs SET location = substr(location, CAST($2 AS INTEGER)) WHERE location LIKE $1 ESCAPE '\\'",
            ),
            (
                &self.descriptors,
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM products WHERE descriptor_path LIKE $1 ESCAPE '\\') THEN 1 ELSE 0 END",
                "UPDATE products SET descriptor_path = substr(descriptor_path, CAST($2 AS INTEGER)) WHERE descriptor_path LIKE $1 ESCAPE '\\'",
            ),
        ] {
            let Some((pattern, drop)) = locations.absolute_pattern() else {
                continue;
            };
            // Usually nothing to relocate: a read says so without taking
            // the write lock an UPDATE takes.
            let any: i64 = sqlx::query_scalar(any_sql)
                .bind(&pattern)
                .fetch_one(&mut **conn)
                .await?;
            if any != 0 {
                sqlx::query(relocate_sql)
                    .bind(pattern)
                    .bind(drop as i64 + 1)
                    .execute(&mut **conn)
                    .await?;
            }
        }
        Ok(())
    }

    fn output_from_row(&self, row: &AnyRow) -> Result<OutputRecord> {
        let mut output = output_from_row(row)?;
        output.location = self.tables.resolve(&output.location);
        Ok(output)
    }
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(at)) if at > scheme.len() => {
            let userinfo = &rest[..at - scheme.len() - 3];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***{}", &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) fn ts(s: &str, table: &'static str, column: &'static str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| CatalogError::Corrupt {
            table,
            column,
            detail: e.to_string(),
        })
}

pub(crate) fn product_ref(domain: &str, name: &str) -> Result<ProductRef> {
    ProductRef::parse(&format!("{domain}/{name}")).map_err(|e| CatalogError::Corrupt {
        table: "products",
        column: "name",
        detail: e.to_string(),
    })
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(
    s: &str,
    table: &'static str,
    column: &'static str,
) -> Result<T> {
    serde_json::from_str(s).map_err(|e| CatalogError::Corrupt {
        table,
        column,
        detail: e.to_string(),
    })
}

fn domain(s: &str) -> Result<DomainName> {
    DomainName::parse(s).map_err(|e| CatalogError::Corrupt {
        table: "outputs",
        column: "domain",
        detail: e.to_string(),
    })
}

fn output_name(s: &str) -> Result<OutputName> {
    OutputName::parse(s).map_err(|e| CatalogError::Corrupt {
        table: "outputs",
        column: "output",
        detail: e.to_string(),
    })
}

fn output_from_row(row: &AnyRow) -> Result<OutputRecord> {
    let product: String = row.try_get("product")?;
    let (d, p) = product.split_once('/').unwrap_or((&product, ""));
    Ok(OutputRecord {
        domain: domain(row.try_get("domain")?)?,
        output: output_name(row.try_get("output")?)?,
        product: product_ref(d, p)?,
        location: row.try_get("location")?,
        columns: json(row.try_get("columns")?, "outputs", "columns")?,
    })
}

pub(crate) fn publication_from_row(row: &AnyRow) -> Result<Publication> {
    Ok(Publication {
        domain: domain(row.try_get("domain")?)?,
        output: output_name(row.try_get("output")?)?,
        table_version: row.try_get("table_version")?,
        product_version: row.try_get("product_version")?,
        run_id: RunId(row.try_get("run_id")?),
        row_count: row.try_get("row_count")?,
        published_at: ts(row.try_get("published_at")?, "publications", "published_at")?,
        files: row
            .try_get::<Option<String>, _>("files")?
            .map(|f| json(&f, "publications", "files"))
            .transpose()?,
        columns: row
            .try_get::<Option<String>, _>("columns")?
            .map(|c| json(&c, "publications", "columns"))
            .transpose()?,
        read_version: row.try_get("read_version")?,
    })
}

impl SqlCatalog {
    /// Sets a deployed product's lifecycle status in a deployment of its
    /// own, recorded in `product_changes` with the status as the action.
    async fn set_lifecycle(
        &self,
        product: &ProductRef,
        status: &str,
        sunset: Option<chrono::NaiveDate>,
        by: &str,
    ) -> Result<bool> {
        let id = DeploymentId(uuid::Uuid::now_v7().to_string());
        let now = Utc::now().to_rfc3339();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO deployments (id, deployed_at, deployed_by) VALUES ($1, $2, $3)")
            .bind(&id.0)
            .bind(&now)
            .bind(by)
            .execute(&mut *tx)
            .await?;
        let updated = sqlx::query(
            "UPDATE products SET status = $6, sunset = $7, deployment_id = $1, deployed_at = $2, deployed_by = $3 WHERE domain = $4 AND name = $5",
        )
        .bind(&id.0)
        .bind(&now)
        .bind(by)
        .bind(product.domain.as_str())
        .bind(product.name.as_str())
        .bind(status)
        .bind(sunset.map(|d| d.to_string()))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // Dropping the transaction rolls the deployment row back.
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO product_changes (deployment_id, domain, name, version, action)
             SELECT $1, domain, name, version, $4 FROM products WHERE domain = $2 AND name = $3",
        )
        .bind(&id.0)
        .bind(product.domain.as_str())
        .bind(product.name.as_str())
        .bind(status)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn product_rows(&self, filter: Option<&ProductRef>) -> Result<Vec<ProductRecord>> {
        let rows = match filter {
            Some(r) => {
                sqlx::query("SELECT * FROM products WHERE domain = $1 AND name = $2")
                    .bind(r.domain.as_str())
                    .bind(r.name.as_str())
                    .fetch_all(self.pool().await?)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM products ORDER BY domain, name")
                    .fetch_all(self.pool().await?)
                    .await?
            }
        };
        // One product's lookup reads its outputs only.
        let outputs = match filter {
            Some(r) => {
                sqlx::query("SELECT * FROM outputs WHERE product = $1 ORDER BY domain, output")
                    .bind(r.to_string())
                    .fetch_all(self.pool().await?)
                    .await?
                    .iter()
                    .map(|row| self.output_from_row(row))
                    .collect::<Result<Vec<_>>>()?
            }
            None => self.outputs().await?,
        };
        let mut by_product: BTreeMap<ProductRef, Vec<OutputRecord>> = BTreeMap::new();
        for o in outputs {
            by_product.entry(o.product.clone()).or_default().push(o);
        }
        rows.iter()
            .map(|row| {
                let product = product_ref(row.try_get("domain")?, row.try_get("name")?)?;
                Ok(ProductRecord {
                    outputs: by_product.remove(&product).unwrap_or_default(),
                    product,
                    version: row.try_get("version")?,
                    status: row.try_get("status")?,
                    owner: row.try_get("owner")?,
                    descriptor_path: self.descriptors.resolve(row.try_get("descriptor_path")?),
                    descriptor: row.try_get("descriptor")?,
                    sql_texts: json(row.try_get("sql_texts")?, "products", "sql_texts")?,
                    deployed_at: ts(row.try_get("deployed_at")?, "products", "deployed_at")?,
                    deployed_by: row.try_get("deployed_by")?,
                    line_of: row
                        .try_get::<Option<String>, _>("line_of")?
                        .map(|l| {
                            let (d, n) = l.split_once('/').unwrap_or((&l, ""));
                            product_ref(d, n)
                        })
                        .transpose()?,
                    sunset: row
                        .try_get::<Option<String>, _>("sunset")?
                        .and_then(|s| s.parse().ok()),
                })
            })
            .collect()
    }
}

#[async_trait]
impl CatalogStore for SqlCatalog {
    async fn deploy(
        &self,
        by: &str,
        products: Vec<ProductRecord>,
        overrides: Vec<ContractOverride>,
    ) -> Result<DeployOutcome> {
        let existing: BTreeMap<ProductRef, ProductRecord> = self
            .product_rows(None)
            .await?
            .into_iter()
            .map(|p| (p.product.clone(), p))
            .collect();
        let mut outcome = DeployOutcome {
            deployment: None,
            created: Vec::new(),
            updated: Vec::new(),
            unchanged: Vec::new(),
            overridden: Vec::new(),
        };
        let mut changed = Vec::new();
        for p in products {
            match existing.get(&p.product) {
                Some(old) if old.same_definition(&p) => outcome.unchanged.push(p.product.clone()),
                Some(_) => {
                    outcome.updated.push(p.product.clone());
                    changed.push((p, "updated"));
                }
                None => {
                    outcome.created.push(p.product.clone());
                    changed.push((p, "created"));
                }
            }
        }
        if changed.is_empty() {
            return Ok(outcome);
        }
        let id = DeploymentId(uuid::Uuid::now_v7().to_string());
        let now = Utc::now().to_rfc3339();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO deployments (id, deployed_at, deployed_by) VALUES ($1, $2, $3)")
            .bind(&id.0)
            .bind(&now)
            .bind(by)
            .execute(&mut *tx)
            .await?;
        // A new line (an older major kept alive) takes over the publications
        // of the tables it keeps: its head moves to new tables and starts
        // with none, so neither reads the other's versions.
        let old_names: BTreeMap<&str, (&DomainName, &OutputName)> = existing
            .values()
            .flat_map(|r| &r.outputs)
            .map(|o| (o.location.as_str(), (&o.domain, &o.output)))
            .collect();
        let new_lines = changed
            .iter()
            .filter(|(p, a)| p.line_of.is_some() && *a == "created")
            .map(|(p, _)| p);
        for p in new_lines {
            for o in &p.outputs {
                if let Some((d, old)) = old_names.get(o.location.as_str()) {
                    sqlx::query(
                        "UPDATE publications SET output = $1 WHERE domain = $2 AND output = $3",
                    )
                    .bind(o.output.as_str())
                    .bind(d.as_str())
                    .bind(old.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        for (p, action) in &changed {
            let sql_texts = serde_json::to_string(&p.sql_texts).unwrap_or_else(|_| "{}".into());
            sqlx::query("DELETE FROM products WHERE domain = $1 AND name = $2")
                .bind(p.product.domain.as_str())
                .bind(p.product.name.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO products (domain, name, version, status, owner, descriptor_path, descriptor, sql_texts, deployment_id, deployed_at, deployed_by, line_of, sunset)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(p.product.domain.as_str())
            .bind(p.product.name.as_str())
            .bind(&p.version)
            .bind(&p.status)
            .bind(&p.owner)
            .bind(self.descriptors.store(&p.descriptor_path))
            .bind(&p.descriptor)
            .bind(sql_texts)
            .bind(&id.0)
            .bind(&now)
            .bind(by)
            .bind(p.line_of.as_ref().map(ToString::to_string))
            .bind(p.sunset.map(|d| d.to_string()))
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO product_changes (deployment_id, domain, name, version, action) VALUES ($1, $2, $3, $4, $5)")
                .bind(&id.0)
                .bind(p.product.domain.as_str())
                .bind(p.product.name.as_str())
                .bind(&p.version)
                .bind(action)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM outputs WHERE product = $1")
                .bind(p.product.to_string())
                .execute(&mut *tx)
                .await?;
            for o in &p.outputs {
                sqlx::query("INSERT INTO outputs (domain, output, product, location, columns) VALUES ($1, $2, $3, $4, $5)")
                    .bind(o.domain.as_str())
                    .bind(o.output.as_str())
                    .bind(o.product.to_string())
                    .bind(self.tables.store(&o.location))
                    .bind(serde_json::to_string(&o.columns).unwrap_or_else(|_| "[]".into()))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for o in &overrides {
            sqlx::query(
                "INSERT INTO contract_overrides (deployment_id, domain, name, from_version, to_version, overridden_by, overridden_at, changes, consumers)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&id.0)
            .bind(o.product.domain.as_str())
            .bind(o.product.name.as_str())
            .bind(&o.from_version)
            .bind(&o.to_version)
            .bind(&o.by)
            .bind(o.at.to_rfc3339())
            .bind(serde_json::json!(o.changes).to_string())
            .bind(serde_json::json!(o.consumers).to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        outcome.overridden = overrides.into_iter().map(|o| o.product).collect();
        outcome.deployment = Some(id);
        Ok(outcome)
    }

    async fn retire(&self, product: &ProductRef, by: &str) -> Result<bool> {
        self.set_lifecycle(product, "retired", None, by).await
    }

    async fn deprecate(
        &self,
        product: &ProductRef,
        sunset: Option<chrono::NaiveDate>,
        by: &str,
    ) -> Result<bool> {
        self.set_lifecycle(product, "deprecated", sunset, by).await
    }

    async fn overrides(&self, product: &ProductRef) -> Result<Vec<ContractOverride>> {
        sqlx::query(
            "SELECT * FROM contract_overrides WHERE domain = $1 AND name = $2 ORDER BY overridden_at DESC",
        )
        .bind(product.domain.as_str())
        .bind(product.name.as_str())
        .fetch_all(self.pool().await?)
        .await?
        .iter()
        .map(|row| {
            Ok(ContractOverride {
                product: product.clone(),
                from_version: row.try_get("from_version")?,
                to_version: row.try_get("to_version")?,
                by: row.try_get("overridden_by")?,
                at: ts(
                    row.try_get("overridden_at")?,
                    "contract_overrides",
                    "overridden_at",
                )?,
                changes: json(row.try_get("changes")?, "contract_overrides", "changes")?,
                consumers: json(row.try_get("consumers")?, "contract_overrides", "consumers")?,
            })
        })
        .collect()
    }

    async fn products(&self) -> Result<Vec<ProductRecord>> {
        self.product_rows(None).await
    }

    async fn generations(&self) -> Result<crate::Generations> {
        let row = sqlx::query(
            "SELECT d.n AS deployment, a.n AS activity, x.n AS access
             FROM deployment_generation d
             CROSS JOIN activity_generation a
             CROSS JOIN access_generation x
             WHERE d.id = 1 AND a.id = 1 AND x.id = 1",
        )
        .fetch_one(self.pool().await?)
        .await?;
        Ok(crate::Generations {
            deployment: row.try_get("deployment")?,
            activity: row.try_get("activity")?,
            access: row.try_get("access")?,
        })
    }

    async fn deployment_generation(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT n FROM deployment_generation WHERE id = 1")
                .fetch_one(self.pool().await?)
                .await?,
        )
    }

    async fn product(&self, product: &ProductRef) -> Result<Option<ProductRecord>> {
        Ok(self.product_rows(Some(product)).await?.into_iter().next())
    }

    async fn outputs(&self) -> Result<Vec<OutputRecord>> {
        sqlx::query("SELECT * FROM outputs ORDER BY domain, output")
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|r| self.output_from_row(r))
            .collect()
    }

    async fn domain_outputs(&self, d: &DomainName) -> Result<Vec<OutputRecord>> {
        sqlx::query("SELECT * FROM outputs WHERE domain = $1 ORDER BY output")
            .bind(d.as_str())
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|r| self.output_from_row(r))
            .collect()
    }

    async fn domains(&self) -> Result<Vec<DomainName>> {
        sqlx::query("SELECT DISTINCT domain FROM outputs ORDER BY domain")
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|r| domain(r.try_get("domain")?))
            .collect()
    }

    async fn output(&self, d: &DomainName, o: &OutputName) -> Result<Option<OutputRecord>> {
        sqlx::query("SELECT * FROM outputs WHERE domain = $1 AND output = $2")
            .bind(d.as_str())
            .bind(o.as_str())
            .fetch_optional(self.pool().await?)
            .await?
            .as_ref()
            .map(|r| self.output_from_row(r))
            .transpose()
    }

    async fn product_statuses(&self) -> Result<Vec<(ProductRef, String)>> {
        sqlx::query("SELECT domain, name, status FROM products ORDER BY domain, name")
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|row| {
                let d: String = row.try_get("domain")?;
                let n: String = row.try_get("name")?;
                Ok((product_ref(&d, &n)?, row.try_get("status")?))
            })
            .collect()
    }

    async fn current_publication(
        &self,
        d: &DomainName,
        o: &OutputName,
    ) -> Result<Option<Publication>> {
        sqlx::query("SELECT * FROM publications WHERE domain = $1 AND output = $2 ORDER BY table_version DESC LIMIT 1")
            .bind(d.as_str())
            .bind(o.as_str())
            .fetch_optional(self.pool().await?)
            .await?
            .as_ref()
            .map(publication_from_row)
            .transpose()
    }

    async fn publications(&self, d: &DomainName, o: &OutputName) -> Result<Vec<Publication>> {
        sqlx::query("SELECT * FROM publications WHERE domain = $1 AND output = $2 ORDER BY table_version DESC")
            .bind(d.as_str())
            .bind(o.as_str())
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(publication_from_row)
            .collect()
    }
}
