//! Identities (principals, teams, roles), API tokens and the audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;

/// A user or service account, with its teams and global roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    /// `user` or `service`.
    pub kind: String,
    pub teams: Vec<String>,
    pub roles: Vec<String>,
}

/// A team and the domains it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Team {
    pub name: String,
    pub members: Vec<String>,
    pub domains: Vec<String>,
}

/// A stored API token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub principal: String,
    #[serde(skip)]
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Order of recording; assigned by the store.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub principal: String,
    pub action: String,
    pub product: Option<String>,
    pub columns: Vec<String>,
    /// `allow`, `deny` or `done`.
    pub decision: String,
    pub reason: String,
    pub detail: serde_json::Value,
}

impl AuditEntry {
    /// An entry recorded now, about no product in particular.
    pub fn new(
        principal: &str,
        action: &str,
        decision: &str,
        reason: impl Into<String>,
        detail: serde_json::Value,
    ) -> Self {
        AuditEntry {
            seq: 0,
            at: Utc::now(),
            principal: principal.to_string(),
            action: action.to_string(),
            product: None,
            columns: Vec::new(),
            decision: decision.to_string(),
            reason: reason.into(),
            detail,
        }
    }

    /// The same entry, about `product`.
    pub fn on(mut self, product: impl ToString) -> Self {
        self.product = Some(product.to_string());
        self
    }
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub product: Option<String>,
    pub principal: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Only entries of this action (`query`, `deploy`, `policy.change`, …).
    pub action: Option<String>,
    /// The newest `limit` matching entries (after `offset`).
    pub limit: Option<i64>,
    /// Skips the newest `offset` matching entries.
    pub offset: Option<i64>,
    /// Only what one principal may read (see [`AuditScope`]).
    pub scope: Option<AuditScope>,
}

/// The audit entries a principal who is not a mesh-admin may read: those
/// it made, and those about products of the domains its teams own.
#[derive(Debug, Clone, Default)]
pub struct AuditScope {
    pub principal: String,
    pub domains: Vec<String>,
}

/// A consumer's request for access to a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessRequest {
    pub id: String,
    pub product: String,
    pub principal: String,
    pub purpose: String,
    pub duration_secs: i64,
    pub pii: bool,
    pub requested_at: DateTime<Utc>,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// Access granted to a principal on a product, until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub id: String,
    pub request_id: Option<String>,
    pub product: String,
    pub principal: String,
    pub purpose: String,
    pub allows_pii: bool,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

impl Grant {
    /// In force at `now`: not revoked and not expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Identity, token and audit storage.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Adds a principal. Fails with `Conflict` if the name is taken.
    async fn add_principal(&self, name: &str, kind: &str, by: &str) -> Result<()>;
    async fn principal(&self, name: &str) -> Result<Option<Principal>>;
    async fn principals(&self) -> Result<Vec<Principal>>;
    /// Gives a principal a global role (idempotent).
    async fn grant_role(&self, principal: &str, role: &str) -> Result<()>;
    /// Adds a team owning `domains`. Fails with `Conflict` if it exists.
    async fn add_team(&self, name: &str, domains: &[String], by: &str) -> Result<()>;
    /// Adds a principal to a team (idempotent).
    async fn add_member(&self, team: &str, principal: &str) -> Result<()>;
    async fn teams(&self) -> Result<Vec<Team>>;
    /// The teams that own a domain.
    async fn owner_teams(&self, domain: &str) -> Result<Vec<String>>;

    async fn add_token(&self, token: &TokenRecord) -> Result<()>;
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>>;
    async fn tokens(&self, principal: Option<&str>) -> Result<Vec<TokenRecord>>;
    /// Marks a token revoked. Returns whether it existed and was live.
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool>;

    async fn add_request(&self, r: &AccessRequest) -> Result<()>;
    async fn request(&self, id: &str) -> Result<Option<AccessRequest>>;
    /// Requests, newest first: all, or those of one status.
    async fn requests(&self, status: Option<&str>) -> Result<Vec<AccessRequest>>;
    /// Records the decision on a pending request and, when approved, its
    /// grant, in one transaction. Returns false if it was not pending.
    async fn decide_request(
        &self,
        id: &str,
        status: &str,
        by: &str,
        reason: Option<&str>,
        grant: Option<&Grant>,
    ) -> Result<bool>;
    /// Every grant of a principal (or all), newest first.
    async fn grants(&self, principal: Option<&str>) -> Result<Vec<Grant>>;
    async fn grant(&self, id: &str) -> Result<Option<Grant>>;
    /// Marks a grant revoked. Returns whether it was in force.
    async fn revoke_grant(&self, id: &str, by: &str, at: DateTime<Utc>) -> Result<bool>;

    /// Appends entries in one transaction (their `seq` is ignored).
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;
    /// Entries matching the filter, oldest first.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
    /// How many entries `filter` matches, its limit and offset aside.
    async fn audit_count(&self, filter: &AuditFilter) -> Result<u64>;
}
