//! The files a table holds on its store, for retention: what is there,
//! what one version reads, and removing files no kept version needs.

use deltalake::DeltaTable;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use url::Url;

use crate::error::{Result, StorageError};
use crate::table::open;

/// One data file of a table: its path relative to the table root, and
/// its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: String,
    pub bytes: u64,
}

fn store_err(location: &Url) -> impl Fn(object_store::Error) -> StorageError + '_ {
    move |source| StorageError::ObjectStore {
        location: location.to_string(),
        source,
    }
}

async fn handle(location: &Url) -> Result<DeltaTable> {
    DeltaTable::try_from_url(location.clone())
        .await
        .map_err(|source| StorageError::Delta {
            location: location.to_string(),
            source,
        })
}

/// Every data file stored under the table (its log left out), sorted.
pub async fn data_files(location: &Url) -> Result<Vec<DataFile>> {
    let table = handle(location).await?;
    let store = table.log_store().object_store(None);
    let mut files: Vec<DataFile> = store
        .list(None)
        .map_ok(|m| DataFile {
            path: m.location.to_string(),
            bytes: m.size,
        })
        .try_collect::<Vec<_>>()
        .await
        .map_err(store_err(location))?
        .into_iter()
        .filter(|f| !f.path.starts_with("_delta_log/"))
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The data files version `version` of the table reads, relative to the
/// table root.
pub async fn version_files(location: &Url, version: u64) -> Result<Vec<String>> {
    let table = open(location, Some(version)).await?;
    let root = table.table_url().as_str().to_string();
    let uris: Vec<String> = table
        .get_file_uris()
        .map_err(|source| StorageError::Delta {
            location: location.to_string(),
            source,
        })?
        .collect();
    Ok(uris
        .into_iter()
        .map(|u| u.strip_prefix(&root).map_or(u.clone(), str::to_string))
        .collect())
}

/// Deletes data files (paths relative to the table root); a file already
/// gone counts for nothing. Returns the bytes freed. A run directory
/// left empty on local disk is removed too.
pub async fn delete_files(location: &Url, paths: &[String]) -> Result<u64> {
    let table = handle(location).await?;
    let store = table.log_store().object_store(None);
    let mut freed = 0;
    for p in paths {
        let path = ObjectPath::from(p.as_str());
        let size = match store.head(&path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(store_err(location)(e)),
        };
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => freed += size,
            Err(e) => return Err(store_err(location)(e)),
        }
        if location.scheme() == "file"
            && let Ok(root) = location.to_file_path()
            && let Some((dir, _)) = p.rsplit_once('/')
        {
            // Only an empty directory is removed.
            let _ = std::fs::remove_dir(root.join(dir));
        }
    }
    Ok(freed)
}
