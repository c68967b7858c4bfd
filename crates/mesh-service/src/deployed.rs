//! The deployed products, parsed back from their stored descriptors.
//!
//! Parsing a thousand YAML descriptors (with every value's position) is
//! most of what a short-lived command spends before it answers. The
//! parsed descriptors are therefore kept in the catalog per deployment
//! generation (a cache; see migration 0016): the first process to parse
//! them at a generation stores them, and every later process decodes
//! them instead, in a fraction of the time.

use std::path::Path;

use mesh_catalog::ProductRecord;
use mesh_spec::diagnostic::SourceFile;
use mesh_spec::{Diagnostic, ProductDescriptor, parse_product};
use serde::{Deserialize, Serialize};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// The parsed descriptors' entry in the catalog's deployment caches.
const KIND: &str = "descriptors";
/// Their encoding and the types they decode into: a hash of the sources
/// that define them (`build.rs`), so a build with other types parses the
/// descriptors itself rather than misreading another build's entry.
pub(crate) const FORMAT: &str = env!("MESH_CACHE_FORMAT");

/// One parsed descriptor as encoded, with what identifies its record.
#[derive(Serialize)]
struct EntryRef<'a> {
    product: String,
    version: &'a str,
    length: u64,
    descriptor: &'a ProductDescriptor,
}

#[derive(Deserialize)]
struct Entry {
    product: String,
    version: String,
    length: u64,
    descriptor: ProductDescriptor,
}

type Parsed = std::result::Result<ProductDescriptor, Vec<Diagnostic>>;

impl Mesh {
    /// The deployed products of a deployment generation just read, each
    /// with its descriptor as readers see it.
    pub(crate) async fn parse_deployed(
        &self,
        generation: i64,
    ) -> Result<Vec<(ProductRecord, ProductDescriptor)>> {
        let records = self.catalog.products().await?;
        let cached = match self.catalog.cached(KIND, generation, FORMAT).await {
            Ok(found) => found.and_then(|bytes| decode(&bytes, &records)),
            Err(e) => {
                tracing::debug!("parsed descriptors not read from the catalog: {e}");
                None
            }
        };
        let parsed = match cached {
            Some(parsed) => parsed,
            None => {
                let parsed = parse_records(&records);
                if let Some(bytes) = encode(&records, &parsed)
                    && let Err(e) = self
                        .catalog
                        .store_cached(KIND, generation, FORMAT, &bytes)
                        .await
                {
                    // A cache: a read-only catalog parses them again.
                    tracing::debug!("parsed descriptors not stored: {e}");
                }
                parsed
            }
        };
        let mut out = Vec::with_capacity(records.len());
        for (r, p) in records.into_iter().zip(parsed) {
            match p {
                Ok(p) => {
                    let p = as_deployed(p, &r);
                    out.push((r, p));
                }
                Err(diagnostics) => return Err(ServiceError::Invalid { diagnostics }),
            }
        }
        Ok(out)
    }
}

/// The parsed descriptors encoded, when every one parsed.
fn encode(records: &[ProductRecord], parsed: &[Parsed]) -> Option<Vec<u8>> {
    let entries = records
        .iter()
        .zip(parsed)
        .map(|(r, p)| {
            Some(EntryRef {
                product: r.product.to_string(),
                version: &r.version,
                length: r.descriptor.len() as u64,
                descriptor: p.as_ref().ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    postcard::to_stdvec(&entries).ok()
}

/// The descriptors `encode` stored, if they are those of `records`, in
/// order, each with its file as parsing would give it.
fn decode(bytes: &[u8], records: &[ProductRecord]) -> Option<Vec<Parsed>> {
    let entries: Vec<Entry> = postcard::from_bytes(bytes).ok()?;
    if entries.len() != records.len() {
        return None;
    }
    records
        .iter()
        .zip(entries)
        .map(|(r, e)| {
            let same = e.product == r.product.to_string()
                && e.version == r.version
                && e.length == r.descriptor.len() as u64;
            same.then(|| {
                let path = Path::new(&r.descriptor_path);
                let mut p = e.descriptor;
                p.file = SourceFile::new(path, r.descriptor.as_str());
                p.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                Ok(p)
            })
        })
        .collect()
}

/// Renames a line's descriptor to the line's names: the product becomes
/// `<name>_v<major>` and each output `<output>_v<major>`.
fn as_line(p: &mut ProductDescriptor, record: &ProductRecord) {
    let major = p.version.value.major;
    p.name.value = record.product.name.clone();
    for o in &mut p.outputs {
        if let Ok(renamed) =
            mesh_spec::OutputName::parse(&mesh_catalog::line_name(o.name.as_str(), major))
        {
            o.original_name = Some(o.name.value.clone());
            o.name.value = renamed;
        }
    }
}

/// A deployed record's descriptor as readers see it: a line's with the
/// line's names, and the catalog's lifecycle status and sunset.
fn as_deployed(mut p: ProductDescriptor, r: &ProductRecord) -> ProductDescriptor {
    if r.line_of.is_some() {
        as_line(&mut p, r);
    }
    // `mesh retire` and `mesh deprecate` change the status in the
    // catalog; the record is the truth for it.
    if let Some(status) = mesh_spec::Status::parse(&r.status) {
        p.status = status;
    }
    if let Some(sunset) = r.sunset {
        p.sunset = Some(mesh_spec::Spanned::new(sunset, Default::default()));
    }
    p
}

fn parse_record(r: &ProductRecord) -> Parsed {
    let (p, diagnostics) = parse_product(Path::new(&r.descriptor_path), &r.descriptor);
    p.ok_or(diagnostics)
}

/// Records parsed per thread, at least: below it, one thread parses all.
const PARSED_PER_THREAD: usize = 64;

/// [`parse_record`] for every record, in order; a large mesh is parsed
/// on every core (each thread with the stack deep descriptors need).
fn parse_records(records: &[ProductRecord]) -> Vec<Parsed> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(records.len() / PARSED_PER_THREAD)
        .max(1);
    if threads == 1 {
        return records.iter().map(parse_record).collect();
    }
    let chunk = records.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| {
                let spawned = std::thread::Builder::new()
                    .name("mesh-parse".into())
                    .stack_size(64 << 20)
                    .spawn_scoped(s, move || part.iter().map(parse_record).collect::<Vec<_>>());
                (part, spawned)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(part, spawned)| {
                // A thread that cannot start, or that failed, is redone here.
                spawned
                    .ok()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_else(|| part.iter().map(parse_record).collect())
            })
            .collect()
    })
}
