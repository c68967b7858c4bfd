//! What a run reads, as a value two runs can compare: the deployed
//! definition (descriptor and SQL texts), the data version of every
//! upstream output, and the size and modification time of every source
//! file. A run whose fingerprint equals that of the run behind the current
//! publication has nothing new to publish (`up-to-date`).
//!
//! Remote sources (`s3://…`) are not fingerprinted: a product reading one
//! always runs.

use std::time::UNIX_EPOCH;

use mesh_catalog::{CatalogStore, ProductRecord, RunRecord, RunStatus};
use mesh_spec::validate::source_files;
use mesh_spec::{InputKind, ProductDescriptor};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::Result;

fn definition(record: &ProductRecord) -> String {
    let mut hash = Sha256::new();
    hash.update(record.version.as_bytes());
    hash.update([0]);
    hash.update(record.descriptor.as_bytes());
    for (name, text) in &record.sql_texts {
        hash.update([0]);
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of what `p` reads now.
pub async fn fingerprint(
    catalog: &dyn CatalogStore,
    p: &ProductDescriptor,
    record: &ProductRecord,
) -> Result<Value> {
    let mut upstream = serde_json::Map::new();
    let mut sources = serde_json::Map::new();
    let mut remote = false;
    for input in &p.inputs {
        let name = input.name.to_string();
        match &input.kind {
            InputKind::Source(source) => {
                if source.path.value.contains("://") {
                    remote = true;
                    continue;
                }
                let files = source_files(&p.dir, source).unwrap_or_default();
                let listed: Vec<Value> = files
                    .iter()
                    .map(|f| {
                        let meta = std::fs::metadata(f).ok();
                        let modified = meta
                            .as_ref()
                            .and_then(|m| m.modified().ok())
                            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_nanos());
                        json!({
                            "file": f.strip_prefix(&p.dir).unwrap_or(f).display().to_string(),
                            "size": meta.map_or(0, |m| m.len()),
                            "modified_ns": modified.to_string(),
                        })
                    })
                    .collect();
                sources.insert(name, Value::Array(listed));
            }
            InputKind::Product {
                product,
                output,
                version,
            } => {
                let out = crate::runner::upstream_output(
                    catalog,
                    &name,
                    &product.value,
                    output.as_ref().map(|o| o.to_string()),
                    version.as_ref().map(|v| &v.value),
                )
                .await;
                let read = match out {
                    Ok(out) => {
                        let version = catalog
                            .current_publication(&out.domain, &out.output)
                            .await?
                            .map(|p| p.table_version);
                        json!({"output": format!("{}.{}", out.domain, out.output), "version": version})
                    }
                    // The run reports this itself.
                    Err(_) => Value::Null,
                };
                upstream.insert(name, read);
            }
        }
    }
    let mut fp = json!({
        "definition": definition(record),
        "upstream": upstream,
        "sources": sources,
    });
    if remote {
        fp["remote"] = Value::Bool(true);
    }
    Ok(fp)
}

/// The run whose publication is current, when it read exactly `fp` and
/// every file of the current versions is still there: running again would
/// publish the same data. (A version whose files are gone is published
/// again.)
pub async fn unchanged_since(
    catalog: &dyn CatalogStore,
    resolver: &mesh_query::Resolver,
    record: &ProductRecord,
    fp: &Value,
) -> Result<Option<RunRecord>> {
    if fp.get("remote").is_some() || record.outputs.is_empty() {
        return Ok(None);
    }
    let Some(last) = catalog.last_fingerprinted(&record.product).await? else {
        return Ok(None);
    };
    if !matches!(last.status, RunStatus::Succeeded | RunStatus::UpToDate)
        || last.inputs.as_ref() != Some(fp)
    {
        return Ok(None);
    }
    for o in &record.outputs {
        let Some(current) = catalog.current_publication(&o.domain, &o.output).await? else {
            return Ok(None);
        };
        // Local files recorded with the version: one `stat` each. Anything
        // else is opened as a query would open it (which checks its files).
        let local = mesh_storage::table_url(&o.location)
            .ok()
            .filter(|u| u.scheme() == "file")
            .and_then(|u| u.to_file_path().ok());
        let present = match (local, &current.files) {
            (Some(root), Some(files)) => files.iter().all(|f| root.join(f).is_file()),
            _ => resolver.provider(o, mesh_query::At::Current).await.is_ok(),
        };
        if !present {
            return Ok(None);
        }
    }
    Ok(Some(last))
}
