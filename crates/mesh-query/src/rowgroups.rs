//! Scans that hand out Parquet row groups one at a time.
//!
//! DataFusion cuts a file scan into one contiguous byte range per
//! partition before it prunes anything. A clustered release keeps the rows
//! a selective predicate wants in a few neighbouring row groups, so one
//! partition got all of them and the others none, and the scan ran on one
//! core. Here every row group of a Parquet scan is a unit of its own, and
//! the partitions' streams take the next unit from one shared queue
//! (DataFusion's file-stream work stealing, on by default), so the row
//! groups left after pruning are spread over every core.
//!
//! The query session therefore turns DataFusion's byte-range
//! repartitioning of file scans off: it would merge the units back into
//! one range per partition. A session that keeps it on (transforms) reads
//! the same rows: a range selects the row groups whose first page it
//! holds, however the ranges are cut.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Constraints, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::{FileRange, ListingTableUrl, PartitionedFile};
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use object_store::{ObjectStore, ObjectStoreExt};

/// One file's footer statistics, or `None` when they cannot be read.
async fn file_statistics(
    store: Arc<dyn ObjectStore>,
    location: object_store::path::Path,
    schema: SchemaRef,
    cache: Arc<FileMetadataCache>,
) -> Option<Statistics> {
    let meta = ObjectStoreExt::head(store.as_ref(), &location).await.ok()?;
    DFParquetMetadata::new(store.as_ref(), &meta)
        .with_file_metadata_cache(Some(cache))
        .fetch_statistics(&schema)
        .await
        .ok()
}

/// A table whose Parquet scans are cut into one unit per row group.
#[derive(Debug)]
pub struct RowGroupTable {
    inner: Arc<dyn TableProvider>,
    /// What the footers say (rows, column bounds), for planning; the
    /// inner table's own when `None`.
    statistics: Option<Statistics>,
}

impl RowGroupTable {
    /// `inner`, its Parquet scans cut by row group.
    pub fn wrap(inner: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        Arc::new(Self {
            inner,
            statistics: None,
        })
    }

    /// `inner`, cut by row group, reporting `statistics` to the planner.
    pub fn with_statistics(
        inner: Arc<dyn TableProvider>,
        statistics: Option<Statistics>,
    ) -> Arc<dyn TableProvider> {
        Arc::new(Self { inner, statistics })
    }
}

/// The statistics of the Parquet files `paths` (rows, and each column's
/// bounds and nulls) merged over the files, as DataFusion reads them from
/// the footers, or `None` when a footer cannot be read. The footers stay
/// in the runtime's metadata cache, where the scan finds them again.
pub async fn footer_statistics(
    runtime: &RuntimeEnv,
    paths: &[ListingTableUrl],
    schema: &SchemaRef,
) -> Option<Statistics> {
    use futures::{StreamExt, TryStreamExt};
    let cache = runtime.cache_manager.get_file_metadata_cache();
    let files = paths
        .iter()
        .map(|path| {
            let store = runtime.object_store(path.object_store()).ok()?;
            Some(file_statistics(
                store,
                path.prefix().clone(),
                Arc::clone(schema),
                Arc::clone(&cache),
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    // In order, 16 at a time: on an object store each footer is a request.
    let each: Vec<Statistics> = futures::stream::iter(files)
        .buffered(16)
        .map(|s| s.ok_or(()))
        .try_collect()
        .await
        .ok()?;
    Statistics::try_merge_iter(&each, schema).ok()
}

#[async_trait]
impl TableProvider for RowGroupTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        self.inner.get_logical_plan()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.statistics.clone().or_else(|| self.inner.statistics())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        by_row_group(plan, state).await
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let plan = self.inner.scan_with_args(state, args).await?.into_inner();
        Ok(by_row_group(plan, state).await?.into())
    }
}

/// `plan` with each Parquet scan in it cut into row-group units.
async fn by_row_group(
    plan: Arc<dyn ExecutionPlan>,
    state: &dyn Session,
) -> Result<Arc<dyn ExecutionPlan>> {
    // Collect the scans first: their footers are read asynchronously.
    let mut scans = Vec::new();
    plan.apply(|node| {
        if let Some(config) = parquet_scan(node) {
            scans.push(config.clone());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    let mut cut = Vec::with_capacity(scans.len());
    for config in scans {
        cut.push(cut_scan(config, state).await?);
    }
    let mut cut = cut.into_iter();
    let rewritten = plan.transform_down(|node| {
        if parquet_scan(&node).is_none() {
            return Ok(Transformed::no(node));
        }
        match cut.next().flatten() {
            Some(config) => Ok(Transformed::yes(
                DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
            )),
            None => Ok(Transformed::no(node)),
        }
    })?;
    Ok(rewritten.data)
}

/// The file scan configuration of a Parquet `DataSourceExec`.
fn parquet_scan(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    let exec = node.downcast_ref::<DataSourceExec>()?;
    let config = exec.data_source().downcast_ref::<FileScanConfig>()?;
    config
        .file_source()
        .downcast_ref::<ParquetSource>()
        .map(|_| config)
}

/// `config` with one unit per row group, dealt round-robin into as many
/// groups as the session has partitions; `None` when there is nothing to
/// cut (a scan that must keep its order, or one row group in all).
async fn cut_scan(config: FileScanConfig, state: &dyn Session) -> Result<Option<FileScanConfig>> {
    if config.preserve_order || !config.output_ordering.is_empty() {
        return Ok(None);
    }
    let runtime = state.runtime_env();
    let store = runtime.object_store(&config.object_store_url)?;
    let cache = runtime.cache_manager.get_file_metadata_cache();
    let mut units = Vec::new();
    for file in config.file_groups.iter().flat_map(FileGroup::iter) {
        if file.range.is_some() {
            units.push(file.clone());
            continue;
        }
        let metadata = DFParquetMetadata::new(store.as_ref(), &file.object_meta)
            .with_file_metadata_cache(Some(Arc::clone(&cache)))
            .fetch_metadata()
            .await?;
        // Where each row group starts: the offset DataFusion's range
        // check reads (its first column's dictionary or data page).
        let starts: Vec<i64> = metadata
            .row_groups()
            .iter()
            .map(|group| {
                let column = group.column(0);
                column
                    .dictionary_page_offset()
                    .unwrap_or_else(|| column.data_page_offset())
            })
            .collect();
        units.extend(row_group_units(file, &starts));
    }
    if units.len() <= 1 {
        return Ok(None);
    }
    let partitions = state.config().target_partitions().clamp(1, units.len());
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
    for (i, unit) in units.into_iter().enumerate() {
        groups[i % partitions].push(unit);
    }
    let mut config = config;
    config.file_groups = groups.into_iter().map(FileGroup::new).collect();
    Ok(Some(config))
}

/// One range of `file` per row group starting at `starts`, or the whole
/// file when it has one row group or its row groups are not in file order.
fn row_group_units(file: &PartitionedFile, starts: &[i64]) -> Vec<PartitionedFile> {
    let size = file.object_meta.size as i64;
    let ordered = starts.windows(2).all(|w| w[0] < w[1]);
    if starts.len() <= 1 || !ordered || starts.last().is_some_and(|&s| s >= size) {
        return vec![file.clone()];
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            // The first range starts at 0 so it holds everything before
            // the second row group, whatever the writer put there.
            let start = if i == 0 { 0 } else { start };
            let end = starts.get(i + 1).copied().unwrap_or(size);
            let mut unit = file.clone();
            unit.range = Some(FileRange { start, end });
            unit
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64) -> PartitionedFile {
        PartitionedFile::new("t/part-0.parquet", size)
    }

    #[test]
    fn each_row_group_is_a_range_holding_its_first_page() {
        let units = row_group_units(&file(1000), &[4, 300, 650]);
        let ranges: Vec<(i64, i64)> = units
            .iter()
            .map(|u| {
                let r = u.range.as_ref().unwrap_or_else(|| panic!("no range"));
                (r.start, r.end)
            })
            .collect();
        assert_eq!(ranges, vec![(0, 300), (300, 650), (650, 1000)]);
        for (unit, start) in units.iter().zip([4, 300, 650]) {
            assert!(unit.range.as_ref().is_some_and(|r| r.contains(start)));
        }
    }

    #[test]
    fn a_file_of_one_row_group_or_odd_offsets_stays_whole() {
        assert!(row_group_units(&file(1000), &[4])[0].range.is_none());
        assert!(row_group_units(&file(1000), &[300, 4])[0].range.is_none());
        assert!(row_group_units(&file(1000), &[4, 1200])[0].range.is_none());
    }
}
