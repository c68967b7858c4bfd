//! Copying every table under one storage root to another (`mesh
//! migrate`): local paths, `file://` and `s3://` roots alike, through
//! their object stores. Each object is written whole (a local store
//! writes a temporary file and renames it; an S3 PUT is atomic), and an
//! object already at the target with the same size is kept, so a copy
//! that was interrupted is finished by running it again.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Result, StorageError};
use crate::table::table_url;

/// What [`copy_root`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootCopy {
    /// Objects under the source root.
    pub objects: u64,
    /// Objects written now, and their bytes.
    pub copied: u64,
    pub bytes: u64,
    /// Objects already at the target with the same size.
    pub present: u64,
}

/// The store holding `root` (a path or URL) and the prefix it names.
pub fn root_store(root: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let url = table_url(root)?;
    if url.scheme() == "s3" {
        return crate::s3::store(&url, &[]);
    }
    let (store, path) =
        object_store::parse_url(&url).map_err(|source| StorageError::ObjectStore {
            location: url.to_string(),
            source,
        })?;
    Ok((Arc::from(store), path))
}

fn err(root: &str) -> impl Fn(object_store::Error) -> StorageError + '_ {
    move |source| StorageError::ObjectStore {
        location: root.to_string(),
        source,
    }
}

/// `object` (under `from`) at its place under `to`.
fn moved(object: &ObjectPath, from: &ObjectPath, to: &ObjectPath) -> ObjectPath {
    match object.prefix_match(from) {
        Some(parts) => parts.fold(to.clone(), |p, part| p.join(part)),
        None => object.clone(),
    }
}

/// Both roots' stores and every object under `from`, each with its place
/// under `to` and whether the target already holds it with its size.
async fn pairs(
    from: &str,
    to: &str,
) -> Result<(Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, Vec<Pair>)> {
    let (source, from_prefix) = root_store(from)?;
    let (target, to_prefix) = root_store(to)?;
    let objects: Vec<_> = source
        .list(Some(&from_prefix))
        .try_collect()
        .await
        .map_err(err(from))?;
    let mut out = Vec::with_capacity(objects.len());
    for object in objects {
        let place = moved(&object.location, &from_prefix, &to_prefix);
        let there = match target.head(&place).await {
            Ok(meta) => meta.size == object.size,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(err(to)(e)),
        };
        out.push(Pair {
            object,
            place,
            there,
        });
    }
    Ok((source, target, out))
}

/// One source object, its place at the target, and whether it is there.
struct Pair {
    object: object_store::ObjectMeta,
    place: ObjectPath,
    there: bool,
}

/// Copies every object under `from` to the same place under `to`.
pub async fn copy_root(from: &str, to: &str) -> Result<RootCopy> {
    let (source, target, pairs) = pairs(from, to).await?;
    let mut report = RootCopy {
        objects: pairs.len() as u64,
        ..RootCopy::default()
    };
    for Pair {
        object,
        place,
        there,
    } in pairs
    {
        if there {
            report.present += 1;
            continue;
        }
        let bytes = source
            .get(&object.location)
            .await
            .map_err(err(from))?
            .bytes()
            .await
            .map_err(err(from))?;
        target.put(&place, bytes.into()).await.map_err(err(to))?;
        report.copied += 1;
        report.bytes += object.size;
    }
    Ok(report)
}

/// Every object under `from` is under `to` with the same size; the first
/// one that is not, if any.
pub async fn missing_from(from: &str, to: &str) -> Result<Option<String>> {
    let (_, _, pairs) = pairs(from, to).await?;
    Ok(pairs
        .into_iter()
        .find(|p| !p.there)
        .map(|p| p.object.location.to_string()))
}
