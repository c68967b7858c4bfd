//! The access loop: a consumer requests access to a product for a purpose
//! and a duration; the product's owners (its domain's teams), its
//! approvers (`access.approvers` in the descriptor: teams or principals)
//! or a mesh-admin approve or deny; a grant is in force from the next
//! query until it expires or is revoked.

use chrono::{Duration, Utc};
use mesh_catalog::{AccessRequest, Grant};
use mesh_spec::parse_product;
use serde::Serialize;

use crate::access::Caller;
use crate::error::{Result, ServiceError};
use crate::identity::{ADMIN_ROLE, entry};
use crate::mesh::Mesh;

/// A request with whether the caller may decide it.
#[derive(Debug, Clone, Serialize)]
pub struct InboxItem {
    #[serde(flatten)]
    pub request: AccessRequest,
    pub can_decide: bool,
}

fn new_id(prefix: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    // The random tail keeps ids short and distinct.
    format!("{prefix}-{}", &id[id.len() - 10..])
}

impl Mesh {
    /// Whether `caller` may decide requests on `product`: a member of a
    /// team owning its domain, a listed approver (team or principal), or a
    /// mesh-admin. Also returns the product's longest grant, if capped.
    async fn approver_of(
        &self,
        caller: &Caller,
        product: &str,
    ) -> Result<(bool, Option<Duration>)> {
        let r = self.resolve_visible(caller, product).await?;
        let record =
            self.catalog
                .product(&r)
                .await?
                .ok_or_else(|| ServiceError::ProductNotFound {
                    product: product.to_string(),
                    hint: None,
                })?;
        let (p, _) = parse_product(
            std::path::Path::new(&record.descriptor_path),
            &record.descriptor,
        );
        let access = p.as_ref().and_then(|p| p.access.as_ref());
        let max = access
            .and_then(|a| a.max_grant.as_ref())
            .and_then(|m| Duration::from_std(m.value).ok());
        let Some(me) = self.catalog.principal(&caller.name).await? else {
            return Ok((false, max));
        };
        if me.roles.iter().any(|r| r == ADMIN_ROLE) {
            return Ok((true, max));
        }
        let owners = self.catalog.owner_teams(r.domain.as_str()).await?;
        let approvers: Vec<String> = access.map(|a| a.approvers.clone()).unwrap_or_default();
        let decides = me
            .teams
            .iter()
            .any(|t| owners.contains(t) || approvers.contains(t))
            || approvers.contains(&me.name);
        Ok((decides, max))
    }

    /// Files a request. The caller must be a known principal.
    pub async fn access_request(
        &self,
        caller: &Caller,
        product: &str,
        purpose: &str,
        duration: Duration,
        pii: bool,
    ) -> Result<AccessRequest> {
        // A product the caller may not see does not exist for it: the
        // request is refused as for a missing product.
        let r = self.resolve_visible(caller, product).await?;
        if purpose.trim().is_empty() {
            return Err(ServiceError::Usage("a request needs a --purpose".into()));
        }
        if duration <= Duration::zero() {
            return Err(ServiceError::Usage("--duration must be positive".into()));
        }
        let request = AccessRequest {
            id: new_id("req"),
            product: r.to_string(),
            principal: caller.name.clone(),
            purpose: purpose.to_string(),
            duration_secs: duration.num_seconds(),
            pii,
            requested_at: Utc::now(),
            status: "pending".into(),
            decided_by: None,
            decided_at: None,
            reason: None,
        };
        self.catalog.add_request(&request).await?;
        self.catalog
            .append_audit(&[entry(
                caller,
                "access.request",
                "done",
                format!("requested: {purpose}"),
                serde_json::json!({"request": request.id, "duration_secs": request.duration_secs, "pii": pii}),
            )
            .on(&request.product)])
            .await?;
        Ok(request)
    }

    /// The caller's inbox: pending requests it may decide, then its own
    /// requests in any state.
    pub async fn access_list(&self, caller: &Caller) -> Result<Vec<InboxItem>> {
        let mut out = Vec::new();
        // Whether the caller decides for a product, asked once per product.
        let mut decides: std::collections::HashMap<String, bool> = Default::default();
        for request in self.catalog.requests(None).await? {
            let mine = request.principal == caller.name;
            let mut can_decide = request.status == "pending" && !mine;
            if can_decide {
                can_decide = match decides.get(&request.product) {
                    Some(d) => *d,
                    None => {
                        let d = self.approver_of(caller, &request.product).await?.0;
                        decides.insert(request.product.clone(), d);
                        d
                    }
                };
            }
            if can_decide || mine {
                out.push(InboxItem {
                    request,
                    can_decide,
                });
            }
        }
        Ok(out)
    }

    /// Approves or denies a pending request. Approval creates the grant,
    /// capped at the product's `access.max_grant`.
    pub async fn access_decide(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        reason: Option<&str>,
    ) -> Result<Option<Grant>> {
        let Some(request) = self.catalog.request(id).await? else {
            return Err(mesh_catalog::CatalogError::NotFound {
                what: "access request",
                name: id.into(),
            }
            .into());
        };
        let action = if approve { "approve" } else { "deny" };
        if request.principal == caller.name {
            return Err(ServiceError::Forbidden {
                principal: caller.name.clone(),
                reason: format!("a request cannot be decided by its requester ({action} {id})"),
            });
        }
        let (decides, max) = self.approver_of(caller, &request.product).await?;
        if !decides {
            return Err(ServiceError::Forbidden {
                principal: caller.name.clone(),
                reason: format!(
                    "only the owners of `{}`, its approvers or a {ADMIN_ROLE} may {action} requests for it",
                    request.product
                ),
            });
        }
        if request.status != "pending" {
            return Err(ServiceError::Usage(format!(
                "request `{id}` is already {}",
                request.status
            )));
        }
        let grant = approve.then(|| {
            let asked = Duration::seconds(request.duration_secs);
            let length = max.map_or(asked, |m| asked.min(m));
            let now = Utc::now();
            Grant {
                id: new_id("grant"),
                request_id: Some(request.id.clone()),
                product: request.product.clone(),
                principal: request.principal.clone(),
                purpose: request.purpose.clone(),
                allows_pii: request.pii,
                granted_by: caller.name.clone(),
                granted_at: now,
                expires_at: now + length,
                revoked_at: None,
                revoked_by: None,
            }
        });
        let status = if approve { "approved" } else { "denied" };
        if !self
            .catalog
            .decide_request(id, status, &caller.name, reason, grant.as_ref())
            .await?
        {
            return Err(ServiceError::Usage(format!(
                "request `{id}` was decided meanwhile"
            )));
        }
        self.catalog
            .append_audit(&[entry(
                caller,
                &format!("access.{action}"),
                "done",
                format!(
                    "{status} for `{}`{}",
                    request.principal,
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                serde_json::json!({
                    "request": id,
                    "grant": grant.as_ref().map(|g| &g.id),
                    "expires_at": grant.as_ref().map(|g| g.expires_at),
                }),
            )
            .on(&request.product)])
            .await?;
        Ok(grant)
    }

    /// Revokes a grant: its holder, the product's deciders or an admin may.
    pub async fn access_revoke(&self, caller: &Caller, id: &str) -> Result<Grant> {
        let Some(grant) = self.catalog.grant(id).await? else {
            return Err(mesh_catalog::CatalogError::NotFound {
                what: "grant",
                name: id.into(),
            }
            .into());
        };
        if grant.principal != caller.name && !self.approver_of(caller, &grant.product).await?.0 {
            return Err(ServiceError::Forbidden {
                principal: caller.name.clone(),
                reason: format!(
                    "only the holder, the owners of `{}`, its approvers or a {ADMIN_ROLE} may revoke its grants",
                    grant.product
                ),
            });
        }
        if !grant.is_live(Utc::now())
            || !self
                .catalog
                .revoke_grant(id, &caller.name, Utc::now())
                .await?
        {
            return Err(ServiceError::Usage(format!(
                "grant `{id}` is no longer in force"
            )));
        }
        self.catalog
            .append_audit(&[entry(
                caller,
                "access.revoke",
                "done",
                format!("revoked grant of `{}`", grant.principal),
                serde_json::json!({"grant": id}),
            )
            .on(&grant.product)])
            .await?;
        Ok(grant)
    }

    /// Grants of the caller (or of everyone, for an admin with `all`).
    pub async fn access_grants(&self, caller: &Caller, all: bool) -> Result<Vec<Grant>> {
        if all {
            let me = self.catalog.principal(&caller.name).await?;
            if !me.is_some_and(|p| p.roles.iter().any(|r| r == ADMIN_ROLE)) {
                return Err(ServiceError::Forbidden {
                    principal: caller.name.clone(),
                    reason: format!("only a {ADMIN_ROLE} may list everyone's grants"),
                });
            }
            return Ok(self.catalog.grants(None).await?);
        }
        Ok(self.catalog.grants(Some(&caller.name)).await?)
    }
}
