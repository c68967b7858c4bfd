//! The baselines: DataFusion alone, with default settings, in its own
//! process, doing the same work as `mesh` on the same files.

use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use mesh_spec::ColumnType;

use crate::tpch::Table;

/// The Arrow schema a product declares for `table`: the same types `mesh` reads.
pub fn schema(table: &Table) -> Result<SchemaRef> {
    let columns = table
        .columns
        .iter()
        .map(|(name, ty)| {
            let ty: ColumnType = ty.parse().map_err(anyhow::Error::msg)?;
            Ok((*name, ty, !table.primary_key.contains(name)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(mesh_query::schema::arrow_schema_of(columns))
}

/// Converts the CSV files matching `csv` to Parquet files under `out`, a
/// directory or an `s3://bucket/prefix/`.
pub async fn convert(table: &Table, csv: &str, out: &str) -> Result<()> {
    // DataFusion's defaults, unless `DATAFUSION_*` variables say otherwise
    // (to write another layout, e.g. smaller row groups, for comparing).
    let ctx = SessionContext::new_with_config(SessionConfig::from_env()?);
    let schema = schema(table)?;
    let df = ctx
        .read_csv(csv, CsvReadOptions::new().has_header(true).schema(&schema))
        .await?;
    if !register_s3(&ctx, out)? {
        std::fs::create_dir_all(out)?;
    }
    df.write_parquet(
        &format!("{}/", out.trim_end_matches('/')),
        DataFrameWriteOptions::new(),
        None,
    )
    .await?;
    Ok(())
}

/// Registers the bucket of `location` in `ctx` when it is an `s3://` URL,
/// with object_store's S3 client configured from the AWS environment
/// alone (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, keys, region); says
/// whether it was one.
fn register_s3(ctx: &SessionContext, location: &str) -> Result<bool> {
    let Some(rest) = location.strip_prefix("s3://") else {
        return Ok(false);
    };
    let bucket = rest.split('/').next().unwrap_or_default();
    let root = format!("s3://{bucket}");
    if ctx
        .runtime_env()
        .object_store(ObjectStoreUrl::parse(&root)?)
        .is_ok()
    {
        return Ok(true);
    }
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .with_context(|| format!("S3 client for {root}"))?;
    ctx.register_object_store(&url::Url::parse(&root)?, Arc::new(store));
    Ok(true)
}

/// Runs `sql` over Parquet directories registered as `tpch.<name>`; prints CSV.
pub async fn query(sql: &str, tables: &[(String, String)]) -> Result<()> {
    // DataFusion's defaults, unless `DATAFUSION_*` variables say otherwise
    // (for measuring one setting at a time; the benchmarks set none).
    let config = SessionConfig::from_env()?.with_default_catalog_and_schema("datafusion", "tpch");
    let ctx = SessionContext::new_with_config(config);
    for (name, dir) in tables {
        register_s3(&ctx, dir)?;
        ctx.register_parquet(name.as_str(), dir, ParquetReadOptions::default())
            .await
            .with_context(|| format!("register {name} at {dir}"))?;
    }
    let batches = ctx.sql(sql).await?.collect().await?;
    let stdout = std::io::stdout();
    let mut writer = datafusion::arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(stdout.lock());
    for b in &batches {
        writer.write(b)?;
    }
    Ok(())
}
