//! Principals, teams, roles and API tokens, with every change audited.
//!
//! Only a `mesh-admin` may add principals and teams or give roles, and
//! create or revoke tokens for others; anyone may manage their own tokens.
//! The first principal of a mesh is the exception: `mesh init` and
//! `mesh demo` register the local user as `mesh-admin`, and while a mesh
//! has no principal at all, the first one added is allowed.

use chrono::{DateTime, Duration, Utc};
use mesh_catalog::{AuditEntry, AuditFilter, CatalogError, Principal, Team, TokenRecord};
use subtle::ConstantTimeEq;

use crate::access::Caller;
use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// The global role that administers the mesh.
pub const ADMIN_ROLE: &str = "mesh-admin";

/// An audit entry by `by`, recorded now.
/// Who attempts not tied to a principal (a burst from one source) are
/// audited as; no principal may take the name, so only an admin reads
/// those entries.
pub const ANONYMOUS: &str = "(anonymous)";

pub(crate) fn entry(
    by: &Caller,
    action: &str,
    decision: &str,
    reason: String,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry::new(&by.name, action, decision, reason, detail)
}

impl Mesh {
    async fn is_admin(&self, caller: &Caller) -> Result<bool> {
        Ok(self
            .catalog
            .principal(&caller.name)
            .await?
            .is_some_and(|p| p.roles.iter().any(|r| r == ADMIN_ROLE)))
    }

    /// Refuses (and audits the refusal) unless `caller` is an admin.
    pub(crate) async fn require_admin(
        &self,
        caller: &Caller,
        action: &str,
        what: &str,
    ) -> Result<()> {
        if self.is_admin(caller).await? {
            return Ok(());
        }
        let reason = format!("only a {ADMIN_ROLE} may {what}");
        self.catalog
            .append_audit(&[entry(
                caller,
                action,
                "deny",
                reason.clone(),
                serde_json::Value::Null,
            )])
            .await?;
        Err(ServiceError::Forbidden {
            principal: caller.name.clone(),
            reason,
        })
    }

    /// Registers `name` as the mesh's first administrator, unless the mesh
    /// already has principals. Returns whether it did.
    pub async fn bootstrap_admin(&self, name: &str) -> Result<bool> {
        if !self.catalog.principals().await?.is_empty() {
            return Ok(false);
        }
        let by = Caller::new(name);
        self.catalog.add_principal(name, "user", name).await?;
        self.catalog.grant_role(name, ADMIN_ROLE).await?;
        self.catalog
            .append_audit(&[entry(
                &by,
                "principal.add",
                "done",
                format!("first principal of the mesh, made {ADMIN_ROLE}"),
                serde_json::json!({"name": name, "roles": [ADMIN_ROLE]}),
            )])
            .await?;
        Ok(true)
    }

    /// Adds a principal with teams and roles.
    pub async fn add_principal(
        &self,
        by: &Caller,
        name: &str,
        kind: &str,
        teams: &[String],
        roles: &[String],
    ) -> Result<Principal> {
        if !self.catalog.principals().await?.is_empty() {
            self.require_admin(by, "principal.add", "add principals")
                .await?;
        }
        if !matches!(kind, "user" | "service") {
            return Err(ServiceError::Usage(format!(
                "principal kind `{kind}` is not `user` or `service`"
            )));
        }
        if name == ANONYMOUS {
            return Err(ServiceError::Usage(format!(
                "`{ANONYMOUS}` is reserved for audit entries of unauthenticated attempts; choose another name"
            )));
        }
        // Check every team first, so a bad one leaves nothing half-added.
        let known: Vec<String> = self
            .catalog
            .teams()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        if let Some(t) = teams.iter().find(|t| !known.contains(t)) {
            return Err(CatalogError::NotFound {
                what: "team",
                name: t.clone(),
            }
            .into());
        }
        self.catalog.add_principal(name, kind, &by.name).await?;
        for t in teams {
            self.catalog.add_member(t, name).await?;
        }
        for r in roles {
            self.catalog.grant_role(name, r).await?;
        }
        self.catalog
            .append_audit(&[entry(
                by,
                "principal.add",
                "done",
                format!("added {kind} `{name}`"),
                serde_json::json!({"name": name, "kind": kind, "teams": teams, "roles": roles}),
            )])
            .await?;
        self.catalog.principal(name).await?.ok_or_else(|| {
            CatalogError::NotFound {
                what: "principal",
                name: name.into(),
            }
            .into()
        })
    }

    /// Adds a team owning `domains`, with `members`.
    pub async fn add_team(
        &self,
        by: &Caller,
        name: &str,
        domains: &[String],
        members: &[String],
    ) -> Result<()> {
        self.require_admin(by, "team.add", "add teams").await?;
        for d in domains {
            mesh_spec::DomainName::parse(d)
                .map_err(|e| ServiceError::Usage(format!("domain `{d}`: {e}")))?;
        }
        // Check every member first, so a bad one leaves nothing half-added.
        for m in members {
            if self.catalog.principal(m).await?.is_none() {
                return Err(CatalogError::NotFound {
                    what: "principal",
                    name: m.clone(),
                }
                .into());
            }
        }
        self.catalog.add_team(name, domains, &by.name).await?;
        for m in members {
            self.catalog.add_member(name, m).await?;
        }
        self.catalog
            .append_audit(&[entry(
                by,
                "team.add",
                "done",
                format!("added team `{name}`"),
                serde_json::json!({"name": name, "domains": domains, "members": members}),
            )])
            .await?;
        Ok(())
    }

    pub async fn principals(&self) -> Result<Vec<Principal>> {
        Ok(self.catalog.principals().await?)
    }

    pub async fn teams(&self) -> Result<Vec<Team>> {
        Ok(self.catalog.teams().await?)
    }

    /// Creates an API token for `principal`; returns its record and the
    /// token text, which is shown once and stored nowhere.
    pub async fn create_token(
        &self,
        by: &Caller,
        principal: &str,
        ttl: Option<Duration>,
    ) -> Result<(TokenRecord, String)> {
        if by.name != principal {
            self.require_admin(by, "token.create", "create tokens for others")
                .await?;
        }
        if self.catalog.principal(principal).await?.is_none() {
            return Err(CatalogError::NotFound {
                what: "principal",
                name: principal.into(),
            }
            .into());
        }
        let fresh = mesh_policy::new_token()?;
        let now = Utc::now();
        let record = TokenRecord {
            id: fresh.id,
            principal: principal.to_string(),
            hash: fresh.hash,
            created_at: now,
            expires_at: ttl.map(|d| now + d),
            revoked_at: None,
        };
        self.catalog.add_token(&record).await?;
        self.catalog
            .append_audit(&[entry(
                by,
                "token.create",
                "done",
                format!("token `{}` for `{principal}`", record.id),
                serde_json::json!({"token_id": record.id, "principal": principal, "expires_at": record.expires_at}),
            )])
            .await?;
        Ok((record, fresh.token))
    }

    /// Revokes a token by id. Its owner or an admin may.
    pub async fn revoke_token(&self, by: &Caller, id: &str) -> Result<()> {
        let Some(t) = self.catalog.token(id).await? else {
            return Err(CatalogError::NotFound {
                what: "token",
                name: id.into(),
            }
            .into());
        };
        if t.principal != by.name {
            self.require_admin(by, "token.revoke", "revoke tokens of others")
                .await?;
        }
        if !self.catalog.revoke_token(id, Utc::now()).await? {
            return Err(ServiceError::Usage(format!(
                "token `{id}` is already revoked"
            )));
        }
        self.catalog
            .append_audit(&[entry(
                by,
                "token.revoke",
                "done",
                format!("revoked token `{id}` of `{}`", t.principal),
                serde_json::json!({"token_id": id, "principal": t.principal}),
            )])
            .await?;
        Ok(())
    }

    /// The caller a token stands for, if it is live: known id, matching
    /// secret, not revoked, not expired. The reason for a refusal is
    /// audited but not returned, so a caller learns nothing from it.
    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        self.authenticate_from(token, None).await
    }

    /// [`Mesh::authenticate`] for a client at `source`, whose failed
    /// attempts are limited per source as well as per principal (see
    /// `throttle`).
    pub async fn authenticate_from(
        &self,
        token: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<Caller> {
        let refused = || ServiceError::Unauthenticated;
        let now = std::time::Instant::now();
        let source = source.map(crate::throttle::source_key);
        let from = match &source {
            Some(key) => self.throttle.sources.admit(key, now),
            None => crate::throttle::Admission {
                check: true,
                ended_burst: None,
            },
        };
        if let (Some(n), Some(key)) = (from.ended_burst, &source) {
            self.audit_burst(
                &Caller::new(ANONYMOUS),
                format!("{n} more token attempts from {key} refused unchecked in one burst"),
                serde_json::json!({"source": key, "refused": n}),
            )
            .await?;
        }
        let failed_from_source = || {
            if let Some(key) = &source {
                self.throttle.sources.failed(key, now);
            }
        };
        let Ok((id, secret)) = mesh_policy::parse_token(token) else {
            failed_from_source();
            return Err(refused());
        };
        let Some(t) = self.catalog.token(id).await? else {
            failed_from_source();
            return Err(refused());
        };
        // A secret verified before needs no Argon2 work: it is let through
        // even during a burst of wrong ones (see `throttle`).
        let remembered = self.verified.remembers(id, secret, &t.hash);
        let of = self.throttle.principals.admit(&t.principal, now);
        if let Some(n) = of.ended_burst {
            self.audit_burst(
                &Caller::new(t.principal.clone()),
                format!(
                    "{n} more attempts with a wrong secret for tokens of `{}` refused unchecked in one burst",
                    t.principal
                ),
                serde_json::json!({"token_id": id, "refused": n}),
            )
            .await?;
        }
        let may_check = of.check && from.check;
        if !remembered && !may_check {
            return Err(refused());
        }
        let why = if !remembered && !self.verified.check(id, secret, &t.hash).await {
            Some("wrong secret")
        } else if t.revoked_at.is_some() {
            Some("revoked")
        } else if t.expires_at.is_some_and(|e| e <= Utc::now()) {
            Some("expired")
        } else {
            None
        };
        if let Some(why) = why {
            if why == "wrong secret" {
                self.throttle.principals.failed(&t.principal, now);
            }
            failed_from_source();
            let mut detail = serde_json::json!({"token_id": id});
            if let Some(key) = &source {
                detail["source"] = key.as_str().into();
            }
            self.catalog
                .append_audit(&[entry(
                    &Caller::new(t.principal.clone()),
                    "token.use",
                    "deny",
                    format!("token `{id}` {why}"),
                    detail,
                )])
                .await?;
            return Err(refused());
        }
        Ok(Caller::new(t.principal))
    }

    /// The one audit entry for attempts refused unchecked in a burst.
    async fn audit_burst(
        &self,
        by: &Caller,
        reason: String,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.catalog
            .append_audit(&[entry(by, "token.use", "deny", reason, detail)])
            .await?;
        Ok(())
    }

    /// Records a login refused because `owner`'s valid token was presented
    /// as another principal's (`claimed`), like any other refused token use.
    pub async fn refuse_token_of_another(
        &self,
        owner: &Caller,
        claimed: &str,
        protocol: &str,
    ) -> Result<()> {
        self.catalog
            .append_audit(&[entry(
                owner,
                "token.use",
                "deny",
                format!(
                    "a token of `{}` presented as `{claimed}` over {protocol}",
                    owner.name
                ),
                serde_json::json!({"claimed": claimed, "protocol": protocol}),
            )])
            .await?;
        Ok(())
    }

    /// Audit entries, oldest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        Ok(self.catalog.audit(filter).await?)
    }

    /// Tokens of one principal or all (hashes are never returned).
    pub async fn tokens(&self, principal: Option<&str>) -> Result<Vec<TokenRecord>> {
        Ok(self.catalog.tokens(principal).await?)
    }
}

/// Secrets this process has verified against their Argon2 hashes, by
/// token id: the stored hash they matched and a SHA-256 of the secret.
///
/// Argon2id is slow on purpose (tens of milliseconds), and Flight SQL and
/// REST clients present their token on every call. A presented secret
/// whose digest matches the remembered one, for a token whose stored hash
/// is still the one it matched, skips the slow check; revocation and
/// expiry are still read from the catalog on every call. Only memory holds
/// the digests, never the catalog.
#[derive(Default)]
pub struct VerifiedTokens {
    known: std::sync::Mutex<std::collections::HashMap<String, (String, [u8; 32])>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.known.lock().map_or(0, |k| k.len());
        f.debug_struct("VerifiedTokens")
            .field("tokens", &n)
            .finish()
    }
}

/// Most tokens remembered; beyond it the memory starts over.
const MAX_VERIFIED: usize = 10_000;

impl VerifiedTokens {
    /// Whether this process has verified `secret` against `hash` before.
    fn remembers(&self, id: &str, secret: &str, hash: &str) -> bool {
        let digest = mesh_policy::secret_digest(secret);
        self.known
            .lock()
            .ok()
            .and_then(|k| k.get(id).cloned())
            .is_some_and(|(h, d)| h == hash && bool::from(d.ct_eq(&digest)))
    }

    /// Whether `secret` matches `hash`, the Argon2 check run off the async
    /// threads, at most once per token and process.
    async fn check(&self, id: &str, secret: &str, hash: &str) -> bool {
        if self.remembers(id, secret, hash) {
            return true;
        }
        let digest = mesh_policy::secret_digest(secret);
        let (s, h) = (secret.to_string(), hash.to_string());
        let ok = tokio::task::spawn_blocking(move || mesh_policy::verify_secret(&s, &h))
            .await
            .unwrap_or(false);
        if ok && let Ok(mut known) = self.known.lock() {
            if known.len() >= MAX_VERIFIED {
                known.clear();
            }
            known.insert(id.to_string(), (hash.to_string(), digest));
        }
        ok
    }
}

/// Parses `30d`, `12h`, `2w` as a token lifetime.
pub fn parse_ttl(s: &str) -> Option<Duration> {
    mesh_spec::parse_duration(s).and_then(|d| Duration::from_std(d).ok())
}

/// `YYYY-MM-DD` or RFC 3339, for `--since`.
pub fn parse_since(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
