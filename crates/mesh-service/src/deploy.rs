//! Validating and deploying a project: every check (structure, policy
//! rules, SQL, contracts, lineage), the contract gate, and registering
//! products, with the audit of refusals and policy changes.

use std::collections::{BTreeMap, BTreeSet};

use mesh_catalog::{ColumnRecord, DeployOutcome, OutputRecord, ProductRecord};
use mesh_query::plan::check_product_sql_lineage;
use mesh_spec::project;
use mesh_spec::sql::sql_files;
use mesh_spec::validate::{Deployed, validate};
use mesh_spec::{Diagnostic, ProductDescriptor, ProductRef};

use crate::error::{Result, ServiceError};
use crate::mesh::{Mesh, Upstream, Validated, major_line, sound_products};

impl Mesh {
    /// Reads every descriptor of the project.
    pub fn load_project(&self) -> Result<(Vec<ProductDescriptor>, Vec<Diagnostic>)> {
        let (project, diagnostics) = project::load(&self.root)?;
        Ok((project.products, diagnostics))
    }

    /// Every check: syntax, structure, references, cycles, the deploy-time
    /// policy rules, SQL and contracts.
    pub async fn validate(&self) -> Result<(Vec<ProductDescriptor>, Vec<Diagnostic>)> {
        let v = self.validate_full().await?;
        Ok((v.products, v.diagnostics))
    }

    /// [`Mesh::validate`], with the column lineage derived from the plans
    /// it checked.
    pub(crate) async fn validate_full(&self) -> Result<Validated> {
        let (products, mut diagnostics) = self.load_project()?;
        let generation = self.catalog.deployment_generation().await?;
        let deployed_parsed = self.deployed_shared(generation).await?;
        let deployed_records: Vec<ProductRecord> =
            deployed_parsed.iter().map(|(r, _)| r.clone()).collect();
        let local: BTreeSet<ProductRef> = products
            .iter()
            .map(ProductDescriptor::product_ref)
            .collect();
        let deployed: Deployed = deployed_records
            .iter()
            .filter(|r| !local.contains(&r.product))
            .map(|r| {
                (
                    r.product.clone(),
                    r.outputs.iter().map(|o| o.output.clone()).collect(),
                )
            })
            .collect();
        // A descriptor that does not load is reported where it breaks; its
        // consumers are not also told that it does not exist.
        let unreadable: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .filter_map(|d| d.location.as_ref())
            .filter_map(|l| l.file.path.strip_prefix(&self.root).ok())
            .filter_map(|rel| {
                let parts: Vec<_> = rel.iter().filter_map(|c| c.to_str()).collect();
                match parts.as_slice() {
                    [domain, name, _file] => Some(format!("{domain}/{name}")),
                    _ => None,
                }
            })
            .collect();
        diagnostics.extend(validate(&products, &deployed).into_iter().filter(|d| {
            d.code != "unknown-product"
                || !unreadable
                    .iter()
                    .any(|u| d.message.contains(&format!("reads product `{u}`,")))
        }));
        diagnostics.extend(crate::lifecycle::check(&products, &deployed_records));
        // Policies that do not load are an error here too, never a pass.
        let policies = self.policies()?;
        // The SQL of every product that is sound, and reads only sound
        // products, is planned even when other files have errors: one
        // broken descriptor hides nothing else.
        let sound = sound_products(&products, &diagnostics, &unreadable);
        let upstream = Upstream {
            local: &products,
            deployed: &deployed_records,
        };
        let mut lineage = BTreeMap::new();
        for p in products.iter().filter(|p| sound.contains(&p.product_ref())) {
            let (found, derived) = check_product_sql_lineage(p, &upstream).await;
            diagnostics.extend(found);
            if let Some(l) = derived {
                lineage.insert(p.product_ref(), l);
            }
        }
        // Classifications follow the lineage (docs/lineage.md).
        let started = std::time::Instant::now();
        // Stored lineage of the deployed products the project does not
        // replace (other repositories' products, older majors' lines).
        let replaced: BTreeSet<ProductRef> = products
            .iter()
            .map(ProductDescriptor::product_ref)
            .collect();
        let current = crate::lineage::lineage_of(&self.catalog, &deployed_parsed, |r| {
            r.line_of.is_some() || !replaced.contains(&r.product)
        })
        .await?;
        let graph =
            crate::lineage::check::candidate_graph(&deployed_parsed, &current, &products, &lineage);
        // Only products whose lineage was derived: one whose SQL does not
        // plan has that error already.
        let derived: Vec<&ProductDescriptor> = products
            .iter()
            .filter(|p| lineage.contains_key(&p.product_ref()))
            .collect();
        diagnostics.extend(crate::lineage::class_diagnostics(&derived, &graph));
        crate::lineage::count(started);
        // Deploy-time rules (policies/*.rego, package mesh.deploy), with
        // each column's derived classification.
        for p in &products {
            let columns = crate::lineage::policy_columns(p, &graph);
            diagnostics.extend(policies.check_descriptor_with(p, columns)?);
        }
        crate::lineage::report();
        Ok(Validated {
            products,
            diagnostics,
            lineage,
            graph,
        })
    }

    /// Validates, checks the contract gate, then registers or updates every
    /// product atomically. With `allow_breaking`, a breaking change without
    /// a major version bump goes ahead and the override is recorded.
    pub async fn deploy(
        &self,
        by: &str,
        allow_breaking: bool,
    ) -> Result<(DeployOutcome, Vec<Diagnostic>)> {
        // Policies that do not load block the deploy: governance is never
        // skipped because a rule file is broken.
        let policies = self.policies()?;
        self.audit_policy_change(by, &policies).await?;
        let Validated {
            products,
            diagnostics,
            lineage,
            graph,
        } = self.validate_full().await?;
        if diagnostics.iter().any(Diagnostic::is_error) {
            self.audit_policy_refusals(by, &products, &diagnostics)
                .await?;
            return Err(ServiceError::Invalid { diagnostics });
        }
        let deployed = self.deployed().await?;
        let refused = crate::lifecycle::new_consumers_of_deprecated(&products, &deployed);
        if !refused.is_empty() {
            return Err(ServiceError::Invalid {
                diagnostics: refused,
            });
        }
        let plans = self.plan_products(&products, &deployed).await?;
        let overrides = crate::plan::gate(&plans, by, allow_breaking)?;
        let heads: BTreeMap<&ProductRef, &ProductRecord> = deployed
            .iter()
            .filter(|(r, _)| r.line_of.is_none())
            .map(|(r, _)| (&r.product, r))
            .collect();
        let mut records = Vec::with_capacity(products.len());
        for p in &products {
            let sql_texts = sql_files(p).map_err(|d| ServiceError::Invalid {
                diagnostics: vec![d],
            })?;
            let r = p.product_ref();
            let major = p.version.value.major;
            let previous = heads.get(&r).copied();
            let previous_major = previous
                .and_then(|h| semver::Version::parse(&h.version).ok())
                .map(|v| v.major);
            // A new major keeps the old one alive as its own line.
            // (0.x has no stable major to keep.)
            if let (Some(old), Some(old_major)) = (previous, previous_major)
                && old_major >= 1
                && old_major < major
            {
                records.push(major_line(old, old_major, by)?);
            }
            let location = |output: &str| match previous {
                Some(old) if previous_major == Some(major) => old
                    .outputs
                    .iter()
                    .find(|o| o.output.as_str() == output)
                    .map(|o| o.location.clone())
                    .unwrap_or_else(|| self.location_at(&r, major, output)),
                _ => self.location_at(&r, major, output),
            };
            records.push(ProductRecord {
                outputs: p
                    .outputs
                    .iter()
                    .map(|o| OutputRecord {
                        domain: p.domain.value.clone(),
                        output: o.name.value.clone(),
                        product: r.clone(),
                        location: location(o.name.as_str()),
                        columns: o
                            .columns
                            .iter()
                            .map(|c| ColumnRecord {
                                name: c.name.to_string(),
                                ty: c.ty.to_string(),
                                nullable: c.nullable,
                            })
                            .collect(),
                    })
                    .collect(),
                product: r,
                version: p.version.to_string(),
                status: p.status.as_str().to_string(),
                owner: p.owner.value.clone(),
                descriptor_path: p.file.path.display().to_string(),
                descriptor: p.file.text.to_string(),
                sql_texts,
                deployed_at: chrono::Utc::now(),
                deployed_by: by.to_string(),
                line_of: None,
                sunset: None,
            });
        }
        self.record_classes(&products, &deployed).await?;
        let outcome = self.catalog.deploy(by, records, overrides).await?;
        // After the deploy commits: a version's lineage describes what is
        // deployed under it. Not stored, it is derived again when read.
        self.record_lineage(&products, &lineage).await?;
        let entries: Vec<mesh_catalog::AuditEntry> =
            [("created", &outcome.created), ("updated", &outcome.updated)]
                .into_iter()
                .flat_map(|(what, products)| products.iter().map(move |p| (what, p)))
                .map(|(what, p)| {
                    let over = if outcome.overridden.contains(p) {
                        " over the contract gate (--allow-breaking)"
                    } else {
                        ""
                    };
                    mesh_catalog::AuditEntry::new(
                by,
                "deploy",
                "done",
                format!("{what}{over}"),
                serde_json::json!({"deployment": outcome.deployment.as_ref().map(|d| d.0.clone())}),
            )
            .on(p)
                })
                .collect();
        let mut entries = entries;
        entries.extend(crate::lineage::declassify_audit(
            by, &products, &graph, &outcome,
        ));
        self.catalog.append_audit(&entries).await?;
        crate::lineage::report();
        Ok((outcome, diagnostics))
    }

    /// Records one `deploy` entry, decision `denied`, for each product the
    /// deploy-time rules refuse, with every violation and where it is.
    async fn audit_policy_refusals(
        &self,
        by: &str,
        products: &[ProductDescriptor],
        diagnostics: &[Diagnostic],
    ) -> Result<()> {
        let mut entries = Vec::new();
        for p in products {
            let refused: Vec<&Diagnostic> = diagnostics
                .iter()
                .filter(|d| d.is_error() && d.code == "policy")
                .filter(|d| {
                    d.location
                        .as_ref()
                        .is_some_and(|l| l.file.path == p.file.path)
                })
                .collect();
            if refused.is_empty() {
                continue;
            }
            let violations: Vec<serde_json::Value> = refused
                .iter()
                .map(|d| serde_json::json!({"message": d.message, "at": d.position()}))
                .collect();
            entries.push(
                mesh_catalog::AuditEntry::new(
                    by,
                    "deploy",
                    "deny",
                    format!("{} deploy-time policy violation(s)", refused.len()),
                    serde_json::json!({"violations": violations}),
                )
                .on(p.product_ref()),
            );
        }
        if !entries.is_empty() {
            self.catalog.append_audit(&entries).await?;
        }
        Ok(())
    }

    /// Records a `policy.change` audit entry when the policy files differ
    /// from those seen at the previous deploy (compared by digest).
    async fn audit_policy_change(&self, by: &str, policies: &mesh_policy::PolicySet) -> Result<()> {
        let digest = policies.digest();
        let last = self
            .catalog
            .audit(&mesh_catalog::AuditFilter {
                action: Some("policy.change".into()),
                limit: Some(1),
                ..Default::default()
            })
            .await?;
        if last
            .first()
            .and_then(|e| e.detail.get("digest"))
            .and_then(|d| d.as_str())
            == Some(digest.as_str())
        {
            return Ok(());
        }
        self.catalog
            .append_audit(&[mesh_catalog::AuditEntry::new(
                by,
                "policy.change",
                "done",
                format!(
                    "{} policy file(s) in force from this deploy",
                    policies.file_count()
                ),
                serde_json::json!({"digest": digest, "files": policies.files()}),
            )])
            .await?;
        Ok(())
    }
}
