//! `IdentityStore` for the SQLite catalog.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{CatalogError, Result};
use crate::identity::*;
use crate::sql::{SqlCatalog, by_dialect, ts};

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Maps a unique-key violation to `Conflict` naming what was taken.
fn conflict(what: &'static str, name: &str) -> impl FnOnce(sqlx::Error) -> CatalogError {
    let name = name.to_string();
    move |e| {
        if is_unique_violation(&e) {
            CatalogError::Conflict { what, name }
        } else {
            e.into()
        }
    }
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation())
}

fn opt_ts(v: Option<String>, column: &'static str) -> Result<Option<DateTime<Utc>>> {
    v.map(|s| ts(&s, "tokens", column)).transpose()
}

fn token_from_row(row: &AnyRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        principal: row.try_get("principal")?,
        hash: row.try_get("hash")?,
        created_at: ts(row.try_get("created_at")?, "tokens", "created_at")?,
        expires_at: opt_ts(row.try_get("expires_at")?, "expires_at")?,
        revoked_at: opt_ts(row.try_get("revoked_at")?, "revoked_at")?,
    })
}

fn opt_at(
    v: Option<String>,
    table: &'static str,
    column: &'static str,
) -> Result<Option<DateTime<Utc>>> {
    v.map(|s| ts(&s, table, column)).transpose()
}

fn request_from_row(row: &AnyRow) -> Result<AccessRequest> {
    Ok(AccessRequest {
        id: row.try_get("id")?,
        product: row.try_get("product")?,
        principal: row.try_get("principal")?,
        purpose: row.try_get("purpose")?,
        duration_secs: row.try_get("duration_secs")?,
        pii: row.try_get::<i64, _>("pii")? != 0,
        requested_at: ts(
            row.try_get("requested_at")?,
            "access_requests",
            "requested_at",
        )?,
        status: row.try_get("status")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: opt_at(row.try_get("decided_at")?, "access_requests", "decided_at")?,
        reason: row.try_get("reason")?,
    })
}

fn grant_from_row(row: &AnyRow) -> Result<Grant> {
    Ok(Grant {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        product: row.try_get("product")?,
        principal: row.try_get("principal")?,
        purpose: row.try_get("purpose")?,
        allows_pii: row.try_get::<i64, _>("allows_pii")? != 0,
        granted_by: row.try_get("granted_by")?,
        granted_at: ts(row.try_get("granted_at")?, "grants", "granted_at")?,
        expires_at: ts(row.try_get("expires_at")?, "grants", "expires_at")?,
        revoked_at: opt_at(row.try_get("revoked_at")?, "grants", "revoked_at")?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

async fn insert_grant(tx: &mut sqlx::AnyConnection, g: &Grant) -> Result<()> {
    sqlx::query(
        "INSERT INTO grants (id, request_id, product, principal, purpose, allows_pii, granted_by, granted_at, expires_at, revoked_at, revoked_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)",
    )
    .bind(&g.id)
    .bind(&g.request_id)
    .bind(&g.product)
    .bind(&g.principal)
    .bind(&g.purpose)
    .bind(g.allows_pii as i64)
    .bind(&g.granted_by)
    .bind(g.granted_at.to_rfc3339())
    .bind(g.expires_at.to_rfc3339())
    .execute(tx)
    .await?;
    Ok(())
}

/// The conditions of an [`AuditFilter`], its limit and offset aside: `$1`
/// product, `$2` principal, `$3` since, `$4` action, `$5` the scope's
/// principal and `$6` its domains as a JSON array (both NULL without a
/// scope). Products are recorded as `domain/name`.
macro_rules! audit_where {
    ($dialect:ident) => {
        concat!(
            "($1 IS NULL OR product = $1)
         AND ($2 IS NULL OR principal = $2)
         AND ($3 IS NULL OR at >= $3)
         AND ($4 IS NULL OR action = $4)
         AND ($5 IS NULL OR principal = $5 OR ",
            audit_in_domains!($dialect),
            ")"
        )
    };
}

/// The audited product's domain is one of `$6`'s (a JSON array).
macro_rules! audit_in_domains {
    (sqlite) => {
        "substr(product, 1, instr(product, '/') - 1) IN (SELECT value FROM json_each($6))"
    };
    (postgres) => {
        "split_part(product, '/', 1) IN (SELECT json_array_elements_text(CAST($6 AS json)))"
    };
}

/// `sql`, a statement over [`audit_where`], with `f`'s conditions bound
/// to `$1`…`$6`.
fn audit_query<'q>(
    sql: &'static str,
    f: &'q AuditFilter,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let (scope, domains) = match &f.scope {
        None => (None, None),
        Some(s) => (
            Some(s.principal.as_str()),
            Some(serde_json::Value::from(s.domains.clone()).to_string()),
        ),
    };
    sqlx::query(sql)
        .bind(&f.product)
        .bind(&f.principal)
        .bind(f.since.map(|s| s.to_rfc3339()))
        .bind(&f.action)
        .bind(scope)
        .bind(domains)
}

impl SqlCatalog {
    async fn pairs(&self, sql: &'static str) -> Result<BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in sqlx::query(sql).fetch_all(self.pool().await?).await? {
            out.entry(row.try_get(0)?)
                .or_default()
                .push(row.try_get(1)?);
        }
        Ok(out)
    }

    async fn require_principal(&self, name: &str) -> Result<()> {
        if self.principal(name).await?.is_none() {
            return Err(CatalogError::NotFound {
                what: "principal",
                name: name.to_string(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl IdentityStore for SqlCatalog {
    async fn add_principal(&self, name: &str, kind: &str, by: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO principals (name, kind, created_at, created_by) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(kind)
        .bind(Utc::now().to_rfc3339())
        .bind(by)
        .execute(self.pool().await?)
        .await
        .map_err(conflict("principal", name))?;
        Ok(())
    }

    async fn principal(&self, name: &str) -> Result<Option<Principal>> {
        // One statement: it is asked on every request of every protocol.
        macro_rules! select {
            ($dialect:ident) => {
                concat!(
                    "SELECT ",
                    principal_columns!($dialect),
                    " FROM principals p WHERE name = $1"
                )
            };
        }
        let Some(row) = sqlx::query(by_dialect!(self.dialect, select))
            .bind(name)
            .fetch_optional(self.pool().await?)
            .await?
        else {
            return Ok(None);
        };
        principal_from_row(&row)
    }

    async fn principals(&self) -> Result<Vec<Principal>> {
        let mut teams = self
            .pairs("SELECT principal, team FROM team_members ORDER BY principal, team")
            .await?;
        let mut roles = self
            .pairs("SELECT principal, role FROM principal_roles ORDER BY principal, role")
            .await?;
        sqlx::query("SELECT name, kind FROM principals ORDER BY name")
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                Ok(Principal {
                    teams: teams.remove(&name).unwrap_or_default(),
                    roles: roles.remove(&name).unwrap_or_default(),
                    kind: row.try_get("kind")?,
                    name,
                })
            })
            .collect()
    }

    async fn grant_role(&self, principal: &str, role: &str) -> Result<()> {
        self.require_principal(principal).await?;
        sqlx::query(
            "INSERT INTO principal_roles (principal, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(principal)
        .bind(role)
        .execute(self.pool().await?)
        .await?;
        Ok(())
    }

    async fn add_team(&self, name: &str, domains: &[String], by: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO teams (name, created_at, created_by) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(Utc::now().to_rfc3339())
            .bind(by)
            .execute(&mut *tx)
            .await
            .map_err(conflict("team", name))?;
        for d in domains {
            sqlx::query(
                "INSERT INTO team_domains (team, domain) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(d)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_member(&self, team: &str, principal: &str) -> Result<()> {
        self.require_principal(principal).await?;
        sqlx::query(
            "INSERT INTO team_members (team, principal) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(team)
        .bind(principal)
        .execute(self.pool().await?)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                CatalogError::NotFound {
                    what: "team",
                    name: team.to_string(),
                }
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    async fn teams(&self) -> Result<Vec<Team>> {
        let mut members = self
            .pairs("SELECT team, principal FROM team_members ORDER BY team, principal")
            .await?;
        let mut domains = self
            .pairs("SELECT team, domain FROM team_domains ORDER BY team, domain")
            .await?;
        sqlx::query("SELECT name FROM teams ORDER BY name")
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                Ok(Team {
                    members: members.remove(&name).unwrap_or_default(),
                    domains: domains.remove(&name).unwrap_or_default(),
                    name,
                })
            })
            .collect()
    }

    async fn owner_teams(&self, domain: &str) -> Result<Vec<String>> {
        sqlx::query("SELECT team FROM team_domains WHERE domain = $1 ORDER BY team")
            .bind(domain)
            .fetch_all(self.pool().await?)
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    async fn add_token(&self, t: &TokenRecord) -> Result<()> {
        self.require_principal(&t.principal).await?;
        sqlx::query(
            "INSERT INTO tokens (id, principal, hash, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&t.id)
        .bind(&t.principal)
        .bind(&t.hash)
        .bind(t.created_at.to_rfc3339())
        .bind(t.expires_at.map(|e| e.to_rfc3339()))
        .execute(self.pool().await?)
        .await?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        sqlx::query("SELECT * FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool().await?)
            .await?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    async fn tokens(&self, principal: Option<&str>) -> Result<Vec<TokenRecord>> {
        let rows = match principal {
            Some(p) => {
                sqlx::query("SELECT * FROM tokens WHERE principal = $1 ORDER BY created_at")
                    .bind(p)
                    .fetch_all(self.pool().await?)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM tokens ORDER BY created_at")
                    .fetch_all(self.pool().await?)
                    .await?
            }
        };
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at.to_rfc3339())
                .bind(id)
                .execute(self.pool().await?)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_request(&self, r: &AccessRequest) -> Result<()> {
        self.require_principal(&r.principal).await?;
        sqlx::query(
            "INSERT INTO access_requests (id, product, principal, purpose, duration_secs, pii, requested_at, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')",
        )
        .bind(&r.id)
        .bind(&r.product)
        .bind(&r.principal)
        .bind(&r.purpose)
        .bind(r.duration_secs)
        .bind(r.pii as i64)
        .bind(r.requested_at.to_rfc3339())
        .execute(self.pool().await?)
        .await?;
        Ok(())
    }

    async fn request(&self, id: &str) -> Result<Option<AccessRequest>> {
        sqlx::query("SELECT * FROM access_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool().await?)
            .await?
            .as_ref()
            .map(request_from_row)
            .transpose()
    }

    async fn requests(&self, status: Option<&str>) -> Result<Vec<AccessRequest>> {
        sqlx::query(
            "SELECT * FROM access_requests WHERE ($1 IS NULL OR status = $1) ORDER BY requested_at DESC, id DESC",
        )
        .bind(status)
        .fetch_all(self.pool().await?)
        .await?
        .iter()
        .map(request_from_row)
        .collect()
    }

    async fn decide_request(
        &self,
        id: &str,
        status: &str,
        by: &str,
        reason: Option<&str>,
        grant: Option<&Grant>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE access_requests SET status = $1, decided_by = $2, decided_at = $3, reason = $4
             WHERE id = $5 AND status = 'pending'",
        )
        .bind(status)
        .bind(by)
        .bind(Utc::now().to_rfc3339())
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(g) = grant {
            insert_grant(&mut tx, g).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn grants(&self, principal: Option<&str>) -> Result<Vec<Grant>> {
        sqlx::query(
            "SELECT * FROM grants WHERE ($1 IS NULL OR principal = $1) ORDER BY granted_at DESC, id DESC",
        )
        .bind(principal)
        .fetch_all(self.pool().await?)
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    async fn grant(&self, id: &str) -> Result<Option<Grant>> {
        sqlx::query("SELECT * FROM grants WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool().await?)
            .await?
            .as_ref()
            .map(grant_from_row)
            .transpose()
    }

    async fn revoke_grant(&self, id: &str, by: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE grants SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(at.to_rfc3339())
        .bind(by)
        .bind(id)
        .execute(self.pool().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        insert_audit(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        macro_rules! page {
            ($dialect:ident) => {
                concat!(
                    "SELECT * FROM (SELECT * FROM audit_log WHERE ",
                    audit_where!($dialect),
                    " ORDER BY seq DESC LIMIT $7 OFFSET $8) AS page ORDER BY seq"
                )
            };
        }
        let rows = audit_query(by_dialect!(self.dialect, page), f)
            .bind(f.limit.unwrap_or(i64::MAX))
            .bind(f.offset.unwrap_or(0))
            .fetch_all(self.pool().await?)
            .await?;
        rows.iter()
            .map(|row| {
                let columns: Option<String> = row.try_get("columns")?;
                let detail: Option<String> = row.try_get("detail")?;
                Ok(AuditEntry {
                    seq: row.try_get("seq")?,
                    at: ts(row.try_get("at")?, "audit_log", "at")?,
                    principal: row.try_get("principal")?,
                    action: row.try_get("action")?,
                    product: row.try_get("product")?,
                    columns: columns
                        .and_then(|c| serde_json::from_str(&c).ok())
                        .unwrap_or_default(),
                    decision: row.try_get("decision")?,
                    reason: row.try_get("reason")?,
                    detail: detail
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }

    async fn audit_count(&self, f: &AuditFilter) -> Result<u64> {
        macro_rules! count {
            ($dialect:ident) => {
                concat!(
                    "SELECT count(*) FROM audit_log WHERE ",
                    audit_where!($dialect)
                )
            };
        }
        let row = audit_query(by_dialect!(self.dialect, count), f)
            .fetch_one(self.pool().await?)
            .await?;
        let n: i64 = row.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Appends `entries` to the audit log in the transaction `tx`.
pub(crate) async fn insert_audit(
    tx: &mut sqlx::AnyConnection,
    entries: &[AuditEntry],
) -> Result<()> {
    for e in entries {
        sqlx::query(
            "INSERT INTO audit_log (at, principal, action, product, columns, decision, reason, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.at.to_rfc3339())
        .bind(&e.principal)
        .bind(&e.action)
        .bind(&e.product)
        .bind(serde_json::to_string(&e.columns).unwrap_or_else(|_| "[]".into()))
        .bind(&e.decision)
        .bind(&e.reason)
        .bind(e.detail.to_string())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// A principal's columns, its teams and roles as JSON arrays, from
/// `principals p` (a macro, so statements stay literals).
macro_rules! principal_columns {
    (sqlite) => {
        "p.name AS name, p.kind AS kind,
        (SELECT json_group_array(team) FROM
            (SELECT team FROM team_members WHERE principal = p.name ORDER BY team)) AS teams,
        (SELECT json_group_array(role) FROM
            (SELECT role FROM principal_roles WHERE principal = p.name ORDER BY role)) AS roles"
    };
    (postgres) => {
        "p.name AS name, p.kind AS kind,
        (SELECT CAST(COALESCE(json_agg(team ORDER BY team), '[]') AS text)
            FROM team_members WHERE principal = p.name) AS teams,
        (SELECT CAST(COALESCE(json_agg(role ORDER BY role), '[]') AS text)
            FROM principal_roles WHERE principal = p.name) AS roles"
    };
}
pub(crate) use principal_columns;

/// A principal read with [`PRINCIPAL_COLUMNS`]; `None` when its name is NULL
/// (an outer join that found none).
pub(crate) fn principal_from_row(row: &sqlx::any::AnyRow) -> Result<Option<Principal>> {
    let Some(name) = row.try_get::<Option<String>, _>("name")? else {
        return Ok(None);
    };
    let list = |column: &'static str| -> Result<Vec<String>> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| CatalogError::Corrupt {
            table: "principals",
            column,
            detail: e.to_string(),
        })
    };
    Ok(Some(Principal {
        name,
        kind: row.try_get("kind")?,
        teams: list("teams")?,
        roles: list("roles")?,
    }))
}
