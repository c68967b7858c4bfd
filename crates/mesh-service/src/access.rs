//! Who is calling, and the access decisions made for them.
//!
//! [`Caller`] is the one seam where a principal enters the service layer:
//! the CLI builds it from the local user, servers from a verified token.
//! Every query runs with a [`PolicyGuard`] for its caller, which the query
//! layer asks before reading any table; the decisions are then written to
//! the audit log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use mesh_catalog::{AuditEntry, OutputRecord, ProductRecord};
use mesh_policy::{
    AccessInput, ColumnInput, Decision, GrantInput, PolicySet, PrincipalInput, ProductInput,
};
use mesh_query::{AccessGuard, QueryError, Read};
use mesh_spec::{ProductDescriptor, parse_product};

use crate::error::Result;

/// The principal a request acts as. Front ends authenticate; the service
/// layer only ever sees this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
}

impl Caller {
    pub fn new(name: impl Into<String>) -> Self {
        Caller { name: name.into() }
    }
}

/// One decision made while planning a query, for the audit log.
#[derive(Debug, Clone)]
pub struct Decided {
    pub output: OutputRecord,
    pub decision: Decision,
}

/// Decides reads for one caller with the mesh's policies, caching each
/// (product, output) decision for the life of the query session.
#[derive(Debug)]
pub struct PolicyGuard {
    name: String,
    /// Looked up with the first decision's other lookups, then kept.
    principal: tokio::sync::OnceCell<PrincipalInput>,
    policies: Arc<PolicySet>,
    /// The catalog as of the statement's start.
    snapshot: Arc<crate::snapshot::Snapshot>,
    purpose: Option<String>,
    cache: Mutex<HashMap<(String, String, Read), Decision>>,
    decided: Mutex<Vec<Decided>>,
    descriptors: Arc<DescriptorCache>,
}

/// Deployed descriptors parsed for decisions, by product and text hash.
pub type DescriptorCache = Mutex<HashMap<(String, u64), Option<Arc<ProductDescriptor>>>>;

impl PolicyGuard {
    pub(crate) fn new(
        caller: &Caller,
        policies: Arc<PolicySet>,
        snapshot: Arc<crate::snapshot::Snapshot>,
        purpose: Option<String>,
        descriptors: Arc<DescriptorCache>,
    ) -> Self {
        PolicyGuard {
            name: caller.name.clone(),
            principal: tokio::sync::OnceCell::new(),
            policies,
            snapshot,
            purpose,
            cache: Mutex::new(HashMap::new()),
            decided: Mutex::new(Vec::new()),
            descriptors,
        }
    }

    /// The decisions made so far, in order.
    pub fn decided(&self) -> Vec<Decided> {
        self.decided.lock().map(|d| d.clone()).unwrap_or_default()
    }

    pub fn principal(&self) -> &str {
        &self.name
    }

    /// The caller as policies see it; unknown names get kind `unknown`.
    async fn principal_input(&self) -> Result<PrincipalInput> {
        let found = self
            .principal
            .get_or_try_init(|| async {
                Ok::<_, crate::error::ServiceError>(
                    match self.snapshot.principal(&self.name).await? {
                        Some(p) => PrincipalInput {
                            name: p.name,
                            kind: p.kind,
                            teams: p.teams,
                            roles: p.roles,
                        },
                        None => PrincipalInput {
                            name: self.name.clone(),
                            kind: "unknown".into(),
                            teams: Vec::new(),
                            roles: Vec::new(),
                        },
                    },
                )
            })
            .await?;
        Ok(found.clone())
    }

    /// The deployed descriptor of `record`, parsed once per text and
    /// shared by every query of the mesh.
    fn descriptor(&self, record: &ProductRecord) -> Option<Arc<ProductDescriptor>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        record.descriptor.hash(&mut h);
        let key = (record.product.to_string(), h.finish());
        if let Some(found) = self
            .descriptors
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return found;
        }
        let (parsed, _) = parse_product(Path::new(&record.descriptor_path), &record.descriptor);
        let parsed = parsed.map(Arc::new);
        if let Ok(mut c) = self.descriptors.lock() {
            // Old versions' entries are few; bound the map all the same.
            if c.len() > 4096 {
                c.clear();
            }
            c.insert(key, parsed.clone());
        }
        parsed
    }

    /// The policy input for reading `read` of `output`. The catalog
    /// lookups run together.
    ///
    /// Each column's classification is the strictest its lineage has in
    /// the version read or any later deployed version of the product's
    /// family (see `mesh_catalog::classes`), so masks follow the data
    /// across renames, releases and older majors, and at least the
    /// classification its lineage derives (docs/lineage.md). A read never proceeds
    /// without classifications: a deployed descriptor that cannot be read
    /// refuses it.
    async fn input(&self, output: &OutputRecord, read: &Read) -> Result<AccessInput> {
        let domain = output.product.domain.to_string();
        let record = self.snapshot.record(&output.product).ok_or_else(|| {
            crate::error::ServiceError::ProductNotFound {
                product: output.product.to_string(),
                hint: None,
            }
        })?;
        let principal = self.principal_input().await?;
        let grants = self.snapshot.grants(&self.name).await?;
        let descriptor = self.descriptor(record).ok_or_else(|| {
            crate::error::ServiceError::Execution(format!(
                "the deployed descriptor of `{}` cannot be read, so its columns' classifications are unknown; reads of it are refused until it is deployed again",
                record.product
            ))
        })?;
        // A line's outputs are named `<output>_v<major>`; its descriptor
        // keeps the original names.
        let declared = descriptor.outputs.iter().find(|o| {
            o.name.as_str() == output.output.as_str()
                || mesh_catalog::line_output(o.name.as_str(), record) == output.output.as_str()
        });
        let family = record
            .line_of
            .as_ref()
            .unwrap_or(&record.product)
            .to_string();
        let family_output = declared.map_or(output.output.as_str(), |o| o.name.as_str());
        let classes = self.snapshot.classes(&family).await?;
        let version = read.product_version.as_deref().unwrap_or(&record.version);
        let lineage = self.snapshot.lineage().await?;
        let columns = read
            .columns
            .iter()
            .map(|name| {
                let recorded = mesh_catalog::classes::classification_at(
                    &classes,
                    family_output,
                    version,
                    name,
                );
                let current = declared
                    .and_then(|o| o.column(name))
                    .and_then(|col| col.classification)
                    .map(|cl| cl.as_str().to_string());
                let declared = match recorded {
                    Some(class) => class,
                    // Deployed before classifications were recorded.
                    None => current,
                };
                // What flows in from classified columns upstream, even
                // if the descriptor was deployed without saying so.
                let derived = lineage
                    .derived(&domain, output.output.as_str(), name)
                    .map(str::to_string);
                ColumnInput {
                    name: name.clone(),
                    ty: output
                        .columns
                        .iter()
                        .find(|c| &c.name == name)
                        .map_or_else(|| "unknown".to_string(), |c| c.ty.clone()),
                    classification: mesh_catalog::classes::stricter(declared, derived),
                }
            })
            .collect();
        let visibility = descriptor
            .access
            .as_ref()
            .map_or_else(|| "discoverable".to_string(), |a| a.visibility.clone());
        Ok(AccessInput {
            action: "read".into(),
            principal,
            product: ProductInput {
                id: output.product.to_string(),
                owner_teams: self.snapshot.owner_teams(&domain).to_vec(),
                domain,
                name: output.product.name.to_string(),
                owner: record.owner.clone(),
                visibility,
                status: record.status.clone(),
            },
            output: output.output.to_string(),
            columns,
            grants: grants
                .iter()
                // A grant on a product covers its older majors too.
                .filter(|g| {
                    let family = record.line_of.as_ref().unwrap_or(&record.product);
                    (g.product == output.product.to_string() || g.product == family.to_string())
                        && g.is_live(Utc::now())
                })
                .map(|g| GrantInput {
                    id: g.id.clone(),
                    purpose: g.purpose.clone(),
                    allows_pii: g.allows_pii,
                    expires_at: g.expires_at.to_rfc3339(),
                })
                .collect(),
            purpose: self.purpose.clone(),
        })
    }
}

fn plan_error(message: String) -> QueryError {
    QueryError::Plan {
        message,
        hint: Some("check the policies with `mesh policy test` and `mesh policy eval`".into()),
    }
}

#[async_trait]
impl AccessGuard for PolicyGuard {
    async fn decide(&self, output: &OutputRecord, read: &Read) -> mesh_query::Result<Decision> {
        let key = (
            output.product.to_string(),
            output.output.to_string(),
            read.clone(),
        );
        if let Some(d) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(d);
        }
        let input = self
            .input(output, read)
            .await
            .map_err(|e| plan_error(e.to_string()))?;
        let decision = self
            .policies
            .decide(&input)
            .map_err(|e| plan_error(e.to_string()))?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, decision.clone());
        }
        if let Ok(mut d) = self.decided.lock() {
            d.push(Decided {
                output: output.clone(),
                decision: decision.clone(),
            });
        }
        Ok(decision)
    }
}

/// Audit entries for the decisions of one query. `read` maps each output
/// (`<domain>.<output>`) to the columns the query reads of it.
pub fn query_audit(
    principal: &str,
    sql: &str,
    decided: &[Decided],
    read: &HashMap<String, Vec<String>>,
) -> Vec<AuditEntry> {
    decided
        .iter()
        .map(|d| {
            let name = format!("{}.{}", d.output.domain, d.output.output);
            // The principal reads its own entries: a denial records no
            // masks or filters, which are internals of a product it may
            // not read.
            let detail = if d.decision.allowed {
                serde_json::json!({
                    "output": name,
                    "sql": sql,
                    "masks": d.decision.masks,
                    "row_filters": d.decision.row_filters,
                })
            } else {
                serde_json::json!({"output": name, "sql": sql})
            };
            let mut e = AuditEntry::new(
                principal,
                "query",
                if d.decision.allowed { "allow" } else { "deny" },
                d.decision.reason.clone(),
                detail,
            )
            .on(&d.output.product);
            e.columns = read.get(&name).cloned().unwrap_or_default();
            e
        })
        .collect()
}
