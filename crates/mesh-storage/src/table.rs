//! One product output's Delta table.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{
    Action, Add, ArrayType, DataType, MapType, PrimitiveType, StructField, StructType,
};
use deltalake::operations::write::writer::{DeltaWriter, WriterConfig};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use mesh_spec::ColumnType;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{Result, StorageError};

/// Commit metadata key holding the id of the run that wrote a version.
pub const RUN_ID_KEY: &str = "meshwork.runId";
/// Commit metadata key holding the product version a commit was built from.
pub const PRODUCT_VERSION_KEY: &str = "meshwork.productVersion";

/// Parses a table location: a URL, or an absolute local path.
pub fn table_url(location: &str) -> Result<Url> {
    let invalid = |detail: String| StorageError::InvalidLocation {
        location: location.to_string(),
        detail,
    };
    if location.contains("://") {
        let mut url = Url::parse(location).map_err(|e| invalid(e.to_string()))?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        Ok(url)
    } else {
        let path = std::path::Path::new(location);
        if !path.is_absolute() {
            return Err(invalid(
                "a local table location must be an absolute path".into(),
            ));
        }
        Url::from_directory_path(path).map_err(|()| invalid("not a directory path".into()))
    }
}

/// The Delta type for a contract type.
pub fn delta_type(ty: &ColumnType) -> Result<DataType, DeltaTableError> {
    Ok(match ty {
        ColumnType::Boolean => DataType::Primitive(PrimitiveType::Boolean),
        ColumnType::TinyInt => DataType::Primitive(PrimitiveType::Byte),
        ColumnType::SmallInt => DataType::Primitive(PrimitiveType::Short),
        ColumnType::Int => DataType::Primitive(PrimitiveType::Integer),
        ColumnType::BigInt => DataType::Primitive(PrimitiveType::Long),
        ColumnType::Float => DataType::Primitive(PrimitiveType::Float),
        ColumnType::Double => DataType::Primitive(PrimitiveType::Double),
        ColumnType::Decimal { precision, scale } => {
            DataType::Primitive(PrimitiveType::decimal(*precision, (*scale).max(0) as u8)?)
        }
        ColumnType::String => DataType::Primitive(PrimitiveType::String),
        ColumnType::Binary => DataType::Primitive(PrimitiveType::Binary),
        ColumnType::Date => DataType::Primitive(PrimitiveType::Date),
        ColumnType::Timestamp => DataType::Primitive(PrimitiveType::Timestamp),
        ColumnType::List(inner) => ArrayType::new(delta_type(inner)?, true).into(),
        ColumnType::Map(k, v) => MapType::new(delta_type(k)?, delta_type(v)?, true).into(),
        ColumnType::Struct(fields) => StructType::try_new(
            fields
                .iter()
                .map(|f| Ok(StructField::new(&f.name, delta_type(&f.ty)?, f.nullable)))
                .collect::<Result<Vec<_>, DeltaTableError>>()?,
        )?
        .into(),
    })
}

/// A column of a table to create.
#[derive(Debug, Clone)]
pub struct TableColumn {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
}

pub(crate) fn delta_err(location: &Url) -> impl Fn(DeltaTableError) -> StorageError + '_ {
    move |source| StorageError::Delta {
        location: location.to_string(),
        source,
    }
}

/// Opens the table at `location`, creating it (version 0, no data) if absent.
pub async fn ensure_table(
    location: &Url,
    name: &str,
    columns: &[TableColumn],
) -> Result<DeltaTable> {
    if location.scheme() == "file"
        && let Ok(path) = location.to_file_path()
    {
        std::fs::create_dir_all(&path).map_err(|source| StorageError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    let table = DeltaTable::try_from_url(location.clone())
        .await
        .map_err(delta_err(location))?;
    if table.version().is_some() {
        return Ok(table);
    }
    let fields = columns
        .iter()
        .map(|c| {
            Ok(StructField::new(
                c.name.clone(),
                delta_type(&c.ty)?,
                c.nullable,
            ))
        })
        .collect::<Result<Vec<_>, DeltaTableError>>()
        .map_err(delta_err(location))?;
    table
        .create()
        .with_table_name(name)
        .with_columns(fields)
        .with_save_mode(SaveMode::Ignore)
        .await
        .map_err(delta_err(location))
}

/// Opens the table at `location`, at `version` or the newest.
pub async fn open(location: &Url, version: Option<u64>) -> Result<DeltaTable> {
    let table = match version {
        None => deltalake::open_table(location.clone()).await,
        Some(v) => deltalake::open_table_with_version(location.clone(), v).await,
    };
    match table {
        Ok(t) => Ok(t),
        Err(DeltaTableError::InvalidVersion(_)) if version.is_some() => {
            let latest = deltalake::open_table(location.clone())
                .await
                .ok()
                .and_then(|t| t.version())
                .map_or(-1, |v| v as i64);
            Err(StorageError::VersionNotFound {
                location: location.to_string(),
                version: version.unwrap_or_default() as i64,
                latest,
            })
        }
        Err(source) => Err(StorageError::Delta {
            location: location.to_string(),
            source,
        }),
    }
}

/// The directory, inside the table, that holds the files of one run.
pub fn run_dir(run_id: &str) -> String {
    format!("r-{run_id}")
}

/// Writes record batches as Parquet files that no reader sees until [`commit_overwrite`].
///
/// Files land under `r-<run_id>/` in the table.
pub struct StagedWriter {
    writer: DeltaWriter,
    prefix: String,
    location: Url,
    rows: u64,
}

/// How a release's files are laid out (docs/storage.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// Roll to a new file at about this many bytes (delta-rs's default
    /// when `None`).
    pub target_file_size: Option<u64>,
    /// Rows per Parquet row group (the Parquet writer's default when
    /// `None`). Smaller groups prune finer on sorted data.
    pub row_group_rows: Option<usize>,
}

impl StagedWriter {
    /// A writer for one stream of batches of `schema`. Several can run at once.
    pub fn new(table: &DeltaTable, run_id: &str, schema: SchemaRef, layout: Layout) -> Self {
        let prefix = run_dir(run_id);
        let root = table.log_store().object_store(None);
        let store: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(root, prefix.as_str()));
        // Page-level statistics and the page index are the Parquet
        // writer's defaults; so is the compression delta-rs picks.
        let properties = layout.row_group_rows.map(|rows| {
            deltalake::parquet::file::properties::WriterProperties::builder()
                .set_compression(deltalake::parquet::basic::Compression::SNAPPY)
                .set_max_row_group_row_count(Some(rows.max(1)))
                .build()
        });
        let config = WriterConfig::new(
            schema,
            Vec::new(),
            properties,
            layout.target_file_size.and_then(std::num::NonZeroU64::new),
            None,
            buoyant_kernel::table_properties::DataSkippingNumIndexedCols::NumColumns(32),
            None,
        );
        StagedWriter {
            writer: DeltaWriter::new(store, config),
            prefix,
            location: table.table_url().clone(),
            rows: 0,
        }
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .await
            .map_err(delta_err(&self.location))
    }

    /// Flushes the files; returns their `add` actions, paths relative to the table.
    pub async fn finish(self) -> Result<Vec<Add>> {
        let location = self.location.clone();
        let mut adds = self.writer.close().await.map_err(delta_err(&location))?;
        for add in &mut adds {
            add.path = format!("{}/{}", self.prefix, add.path);
        }
        Ok(adds)
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// Publishes a run: one commit that replaces every current file with `adds`.
///
/// Returns the new table version.
pub async fn commit_overwrite(
    table: &DeltaTable,
    adds: Vec<Add>,
    run_id: &str,
    product_version: &str,
) -> Result<u64> {
    let operation = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: None,
        predicate: None,
    };
    commit_replacing(
        table,
        adds,
        |_| true,
        true,
        commit_metadata(run_id, product_version),
        operation,
    )
    .await
}

/// The commit info every Meshwork commit carries: the run that wrote it
/// and the product version it was built from.
pub(crate) fn commit_metadata(
    run_id: &str,
    product_version: &str,
) -> HashMap<String, serde_json::Value> {
    HashMap::from([
        (RUN_ID_KEY.to_string(), serde_json::Value::from(run_id)),
        (
            PRODUCT_VERSION_KEY.to_string(),
            serde_json::Value::from(product_version),
        ),
    ])
}

/// One commit on the loaded version: `adds`, and a `remove` of every
/// live file `replaced` selects, all with `data_change`. Fails, committing
/// nothing, if another commit landed since `table` was loaded. Returns
/// the new table version.
pub(crate) async fn commit_replacing(
    table: &DeltaTable,
    mut adds: Vec<Add>,
    replaced: impl Fn(&str) -> bool,
    data_change: bool,
    metadata: HashMap<String, serde_json::Value>,
    operation: DeltaOperation,
) -> Result<u64> {
    let location = table.table_url().clone();
    let snapshot = table.snapshot().map_err(delta_err(&location))?;
    let log_store = table.log_store();
    let removes: Vec<Action> = snapshot
        .snapshot()
        .file_views(&log_store, None)
        .try_filter(|f| std::future::ready(replaced(&f.path())))
        .map_ok(|f| Action::Remove(f.remove_action(data_change)))
        .try_collect()
        .await
        .map_err(delta_err(&location))?;
    for add in &mut adds {
        add.data_change = data_change;
    }
    let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    actions.extend(removes);
    let finalized = CommitBuilder::default()
        .with_actions(actions)
        .with_app_metadata(metadata)
        .build(Some(snapshot), log_store, operation)
        .await
        .map_err(delta_err(&location))?;
    Ok(finalized.version())
}

/// Finds the version, newer than `after`, that run `run_id` committed, if any.
pub async fn find_run_commit(
    location: &Url,
    run_id: &str,
    after: Option<u64>,
) -> Result<Option<u64>> {
    let table = open(location, None).await?;
    let Some(latest) = table.version() else {
        return Ok(None);
    };
    let log_store = table.log_store();
    let first = after.map_or(0, |a| a + 1);
    for version in (first..=latest).rev() {
        let Some(bytes) = log_store
            .read_commit_entry(version)
            .await
            .map_err(delta_err(location))?
        else {
            continue;
        };
        let committed_by_run = String::from_utf8_lossy(&bytes).lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| {
                    v.get("commitInfo")?
                        .get(RUN_ID_KEY)?
                        .as_str()
                        .map(|id| id == run_id)
                })
                .unwrap_or(false)
        });
        if committed_by_run {
            return Ok(Some(version));
        }
    }
    Ok(None)
}

/// Removes the files of a run that never published.
pub async fn remove_run_files(location: &Url, run_id: &str) -> Result<usize> {
    let table = DeltaTable::try_from_url(location.clone())
        .await
        .map_err(delta_err(location))?;
    let store = table.log_store().object_store(None);
    let prefix = ObjectPath::from(run_dir(run_id));
    let files: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| StorageError::ObjectStore {
            location: location.to_string(),
            source,
        })?;
    for f in &files {
        store
            .delete(&f.location)
            .await
            .map_err(|source| StorageError::ObjectStore {
                location: location.to_string(),
                source,
            })?;
    }
    if location.scheme() == "file"
        && let Ok(dir) = location.to_file_path()
    {
        let _ = std::fs::remove_dir(dir.join(run_dir(run_id)));
    }
    Ok(files.len())
}

/// The data files and schema of a table version, when reading those Parquet
/// files as they are gives exactly the table's rows.
///
/// That holds for the tables Meshwork writes: reader protocol 1 (so no
/// deletion vectors and no column mapping) and no partition columns, whose
/// values would live in the log rather than the files. For any other table
/// this returns `None` and the reader must go through the Delta provider.
#[derive(Debug, Clone)]
pub struct PlainFiles {
    pub schema: SchemaRef,
    /// Fully qualified file URLs.
    pub files: Vec<String>,
}

pub fn plain_files(table: &DeltaTable) -> Result<Option<PlainFiles>> {
    let location = table.table_url().clone();
    let state = table.snapshot().map_err(delta_err(&location))?;
    let snapshot = state.snapshot();
    if snapshot.protocol().min_reader_version() != 1
        || !snapshot.metadata().partition_columns().is_empty()
    {
        return Ok(None);
    }
    let files = table
        .get_file_uris()
        .map_err(delta_err(&location))?
        .collect();
    Ok(Some(PlainFiles {
        schema: snapshot.arrow_schema(),
        files,
    }))
}
