//! Operations a remote caller asks for by name: triggering runs and
//! reading the audit log. The CLI on the mesh's own machine is trusted
//! with the state directory; a caller over the network gets only what its
//! principal may do, decided here so every front end agrees.
//!
//! - A run may be triggered by a member of a team owning each selected
//!   product's domain, or by a mesh-admin; running every product at once
//!   (an empty selection) is for a mesh-admin.
//! - The audit log shows a mesh-admin everything; anyone else sees their
//!   own entries and the entries about products their teams own.

use std::collections::BTreeSet;

use mesh_catalog::{AuditEntry, AuditFilter, AuditScope, RunRecord};
use mesh_pipeline::Observer;
use mesh_spec::ProductRef;

use crate::access::Caller;
use crate::error::{Result, ServiceError};
use crate::identity::{ADMIN_ROLE, entry};
use crate::mesh::Mesh;

/// What a caller is, for deciding operations.
struct Standing {
    admin: bool,
    /// Domains owned by one of the caller's teams.
    owned: BTreeSet<String>,
}

impl Mesh {
    async fn standing(&self, caller: &Caller) -> Result<Standing> {
        let Some(me) = self.catalog.principal(&caller.name).await? else {
            return Ok(Standing {
                admin: false,
                owned: BTreeSet::new(),
            });
        };
        let owned = self
            .catalog
            .teams()
            .await?
            .into_iter()
            .filter(|t| me.teams.contains(&t.name))
            .flat_map(|t| t.domains)
            .collect();
        Ok(Standing {
            admin: me.roles.iter().any(|r| r == ADMIN_ROLE),
            owned,
        })
    }

    /// Runs `selection` (product names) as `caller`, who must own every
    /// selected product's domain or be a mesh-admin; an empty selection
    /// (everything) needs a mesh-admin. The trigger and any refusal are
    /// audited. Products the caller may not see are reported as unknown.
    pub async fn run_as(
        &self,
        caller: &Caller,
        selection: &[String],
        options: &crate::RunOptions,
        observer: &dyn Observer,
    ) -> Result<(Vec<RunRecord>, Vec<RunRecord>)> {
        let standing = self.standing(caller).await?;
        // Resolved among visible products, so a private product's
        // existence is not confirmed to an outsider.
        let mut chosen: Vec<ProductRef> = Vec::new();
        for name in selection {
            chosen.push(self.resolve_visible(caller, name).await?);
        }
        let refusal = if standing.admin {
            None
        } else if chosen.is_empty() {
            Some(format!(
                "only a {ADMIN_ROLE} may run every product; name the products to run"
            ))
        } else {
            chosen
                .iter()
                .find(|p| !standing.owned.contains(p.domain.as_str()))
                .map(|p| {
                    format!(
                        "only the teams owning domain `{}` or a {ADMIN_ROLE} may run `{p}`",
                        p.domain
                    )
                })
        };
        let names: Vec<String> = chosen.iter().map(ToString::to_string).collect();
        let detail = serde_json::json!({ "products": names });
        if let Some(reason) = refusal {
            self.catalog
                .append_audit(&[entry(caller, "run.trigger", "deny", reason.clone(), detail)])
                .await?;
            return Err(ServiceError::Forbidden {
                principal: caller.name.clone(),
                reason,
            });
        }
        self.catalog
            .append_audit(&[entry(
                caller,
                "run.trigger",
                "done",
                if names.is_empty() {
                    "triggered a run of every product".to_string()
                } else {
                    format!("triggered a run of {}", names.join(", "))
                },
                detail,
            )])
            .await?;
        self.run(&names, options, observer).await
    }

    /// One page of the audit entries `caller` may read, newest first
    /// (`filter.limit` entries after skipping the newest `filter.offset`),
    /// and how many there are in all. A mesh-admin reads every entry;
    /// anyone else those they made and those about products of domains
    /// their teams own. The catalog selects the page, so the log's size
    /// does not matter.
    pub async fn audit_for(
        &self,
        caller: &Caller,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, u64)> {
        let standing = self.standing(caller).await?;
        let filter = AuditFilter {
            scope: (!standing.admin).then(|| AuditScope {
                principal: caller.name.clone(),
                domains: standing.owned.into_iter().collect(),
            }),
            ..filter.clone()
        };
        let mut entries = self.catalog.audit(&filter).await?;
        entries.reverse();
        let total = self.catalog.audit_count(&filter).await?;
        Ok((entries, total))
    }
}
