//! Retention and `mesh vacuum` (docs/storage.md): which published data
//! versions of each output stay readable, and removing the files only
//! versions no longer kept read.
//!
//! A version is kept while any rule keeps it: the current one always;
//! the newest `keep_releases`; those published within `keep_days`; the
//! newest release of every product version a consumer's `version:`
//! requirement selects. Expired versions are recorded in the catalog
//! before any file is deleted, and a file is deleted only when no kept
//! version reads it. Files a run is still writing belong to no version,
//! so they are never candidates; files a compaction replaced
//! (`mesh optimize`) belong to none either, and are removed.

use std::collections::BTreeSet;

use mesh_catalog::{OutputRecord, ProductRecord, Publication};
use mesh_spec::{InputKind, ProductDescriptor, Retention};
use serde::Serialize;

use crate::error::Result;
use crate::mesh::Mesh;

/// What vacuum did (or would do) to one output.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutputVacuum {
    /// `<domain>.<output>`.
    pub output: String,
    pub product: String,
    /// The retention rule applied, as declared.
    pub retention: String,
    /// Data versions kept readable, newest first.
    pub kept: Vec<i64>,
    /// Data versions this vacuum expired, newest first.
    pub expired: Vec<i64>,
    pub files_removed: usize,
    pub bytes_freed: u64,
    /// Bytes of data files on the store once done.
    pub bytes_after: u64,
}

/// Which publications of an output a rule keeps: indexes into
/// `publications` (newest first).
fn kept(
    publications: &[Publication],
    rule: &Retention,
    pinned: &[semver::VersionReq],
    now: chrono::DateTime<chrono::Utc>,
) -> BTreeSet<usize> {
    let mut keep = BTreeSet::new();
    if !publications.is_empty() {
        keep.insert(0);
    }
    for (i, p) in publications.iter().enumerate() {
        if rule.keep_releases.is_some_and(|n| (i as u64) < n) {
            keep.insert(i);
        }
        if rule
            .keep_days
            .is_some_and(|d| p.published_at > now - chrono::Duration::days(d as i64))
        {
            keep.insert(i);
        }
    }
    // The newest release of each product version a consumer requires.
    for req in pinned {
        if let Some(i) = publications
            .iter()
            .position(|p| semver::Version::parse(&p.product_version).is_ok_and(|v| req.matches(&v)))
        {
            keep.insert(i);
        }
    }
    keep
}

/// The version requirements consumers declare on `product`.
fn pins(
    record: &ProductRecord,
    deployed: &[(ProductRecord, ProductDescriptor)],
) -> Vec<semver::VersionReq> {
    let family = record.line_of.as_ref().unwrap_or(&record.product);
    deployed
        .iter()
        .filter(|(r, _)| r.status != "retired")
        .flat_map(|(_, d)| d.inputs.iter())
        .filter_map(|i| match &i.kind {
            InputKind::Product {
                product,
                version: Some(req),
                ..
            } if &product.value == family => Some(req.value.clone()),
            _ => None,
        })
        .collect()
}

/// What one output holds on its store, for `catalog show`.
#[derive(Debug, Clone, Serialize)]
pub struct OutputStorage {
    /// Bytes of every data file on the store (all kept versions).
    pub bytes: u64,
    pub files: usize,
    /// Bytes and files the current version reads.
    pub current_bytes: u64,
    pub current_files: usize,
    /// The retention rule, as declared (or the mesh's default).
    pub retention: String,
    /// Versions time travel can read, newest first.
    pub readable_versions: Vec<i64>,
    /// Of those, the ones retention keeps at the next `mesh vacuum`.
    pub kept_by_retention: Vec<i64>,
}

/// An output's publications (newest first), the versions already
/// expired, and the indexes of the publications the rule keeps.
struct Retained {
    publications: Vec<Publication>,
    expired: BTreeSet<i64>,
    keep: BTreeSet<usize>,
}

impl Mesh {
    /// Reads an output's publications and expired versions, and decides
    /// what `rule` and the consumers' `pinned` requirements keep.
    async fn retained(
        &self,
        output: &OutputRecord,
        rule: &Retention,
        pinned: &[semver::VersionReq],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Retained> {
        let publications = self
            .catalog
            .publications(&output.domain, &output.output)
            .await?;
        let expired = self
            .catalog
            .expired_versions(&output.domain, &output.output)
            .await?
            .into_iter()
            .map(|e| e.table_version)
            .collect();
        let keep = kept(&publications, rule, pinned, now);
        Ok(Retained {
            publications,
            expired,
            keep,
        })
    }

    /// What an output holds on its store, and what retention keeps.
    pub(crate) async fn output_storage(
        &self,
        output: &OutputRecord,
        record: &ProductRecord,
        descriptor: &ProductDescriptor,
    ) -> Result<OutputStorage> {
        let rule = self.retention_of(descriptor);
        // Every consumer's requirement counts, seen by the caller or not.
        let generation = self.catalog.deployment_generation().await?;
        let deployed = self.deployed_shared(generation).await?;
        let Retained {
            publications,
            expired,
            keep,
        } = self
            .retained(output, &rule, &pins(record, &deployed), chrono::Utc::now())
            .await?;
        let files = if publications.is_empty() {
            Vec::new()
        } else {
            mesh_storage::data_files(&mesh_storage::table_url(&output.location)?).await?
        };
        let current: BTreeSet<&str> = publications
            .first()
            .and_then(|p| p.files.as_ref())
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        Ok(OutputStorage {
            bytes: files.iter().map(|f| f.bytes).sum(),
            files: files.len(),
            current_bytes: files
                .iter()
                .filter(|f| current.contains(f.path.as_str()))
                .map(|f| f.bytes)
                .sum(),
            current_files: current.len(),
            retention: rule.to_string(),
            readable_versions: publications
                .iter()
                .map(|p| p.table_version)
                .filter(|v| !expired.contains(v))
                .collect(),
            kept_by_retention: keep
                .iter()
                .map(|i| publications[*i].table_version)
                .filter(|v| !expired.contains(v))
                .collect(),
        })
    }

    /// The retention rule of a deployed product: its own, or the mesh's.
    pub fn retention_of(&self, descriptor: &ProductDescriptor) -> Retention {
        descriptor
            .retention
            .as_ref()
            .map_or(self.config.retention, |r| r.value)
    }

    /// Applies retention to the outputs of `product` (every deployed
    /// product when `None`): expires the versions no rule keeps and
    /// removes the files only they read. With `dry_run`, reports what it
    /// would do and changes nothing.
    pub async fn vacuum(&self, product: Option<&str>, dry_run: bool) -> Result<Vec<OutputVacuum>> {
        let wanted = match product {
            Some(name) => Some(self.resolve_deployed(name).await?),
            None => None,
        };
        let generation = self.catalog.deployment_generation().await?;
        let deployed = self.deployed_shared(generation).await?;
        let outputs = self.catalog.outputs().await?;
        let now = chrono::Utc::now();
        let mut report = Vec::new();
        for (record, descriptor) in deployed.iter() {
            if wanted.as_ref().is_some_and(|w| w != &record.product) {
                continue;
            }
            let rule = self.retention_of(descriptor);
            let pinned = pins(record, &deployed);
            for output in outputs.iter().filter(|o| o.product == record.product) {
                report.push(
                    self.vacuum_output(output, &rule, &pinned, now, dry_run)
                        .await?,
                );
            }
        }
        Ok(report)
    }

    async fn vacuum_output(
        &self,
        output: &OutputRecord,
        rule: &Retention,
        pinned: &[semver::VersionReq],
        now: chrono::DateTime<chrono::Utc>,
        dry_run: bool,
    ) -> Result<OutputVacuum> {
        let url = mesh_storage::table_url(&output.location)?;
        let Retained {
            publications,
            expired: already,
            keep,
        } = self.retained(output, rule, pinned, now).await?;
        let name = format!("{}.{}", output.domain, output.output);
        if publications.is_empty() {
            // Never published: its table may not exist yet.
            return Ok(OutputVacuum {
                output: name,
                product: output.product.to_string(),
                retention: rule.to_string(),
                ..Default::default()
            });
        }
        let mut needed = BTreeSet::new();
        let mut unneeded = BTreeSet::new();
        let mut expired = Vec::new();
        for (i, p) in publications.iter().enumerate() {
            let kept = keep.contains(&i);
            if !kept && !already.contains(&p.table_version) {
                expired.push(p.table_version);
            }
            let files = match &p.files {
                Some(files) => files.clone(),
                // Published before the catalog kept file lists; a version
                // already vacuumed may no longer open.
                None if kept || !already.contains(&p.table_version) => {
                    mesh_storage::version_files(&url, p.table_version as u64).await?
                }
                None => Vec::new(),
            };
            if kept {
                needed.extend(files);
            } else {
                unneeded.extend(files);
            }
        }
        // Files a compaction replaced: no version reads them any more.
        unneeded.extend(
            self.catalog
                .superseded_files(&output.domain, &output.output)
                .await?,
        );
        let on_store = mesh_storage::data_files(&url).await?;
        let candidates: Vec<String> = unneeded.difference(&needed).cloned().collect();
        let present: BTreeSet<&str> = on_store.iter().map(|f| f.path.as_str()).collect();
        let removable: Vec<String> = candidates
            .into_iter()
            .filter(|c| present.contains(c.as_str()))
            .collect();
        let total: u64 = on_store.iter().map(|f| f.bytes).sum();
        let planned: u64 = on_store
            .iter()
            .filter(|f| removable.contains(&f.path))
            .map(|f| f.bytes)
            .sum();
        let freed = if dry_run {
            planned
        } else {
            // Recorded first: no reader starts on a version being removed.
            if !expired.is_empty() {
                self.catalog
                    .expire_versions(&output.domain, &output.output, &expired, &rule.to_string())
                    .await?;
            }
            mesh_storage::delete_files(&url, &removable).await?
        };
        Ok(OutputVacuum {
            output: name,
            product: output.product.to_string(),
            retention: rule.to_string(),
            kept: keep
                .iter()
                .map(|i| publications[*i].table_version)
                .collect(),
            expired,
            files_removed: removable.len(),
            bytes_freed: freed,
            bytes_after: total - freed.min(total),
        })
    }
}
