//! The baselines: DataFusion alone, with default settings, in its own
//! process, doing the same work as `mesh` on the same files.

use std::path::Path;

use anyhow::{Context, Result};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrameWriteOptions;
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

/// Converts the CSV files matching `csv` to Parquet files under `out`.
pub async fn convert(table: &Table, csv: &str, out: &Path) -> Result<()> {
    let ctx = SessionContext::new();
    let schema = schema(table)?;
    let df = ctx
        .read_csv(csv, CsvReadOptions::new().has_header(true).schema(&schema))
        .await?;
    std::fs::create_dir_all(out)?;
    df.write_parquet(
        &format!("{}/", out.display()),
        DataFrameWriteOptions::new(),
        None,
    )
    .await?;
    Ok(())
}

/// Runs `sql` over Parquet directories registered as `tpch.<name>`; prints CSV.
pub async fn query(sql: &str, tables: &[(String, String)]) -> Result<()> {
    // DataFusion's defaults, unless `DATAFUSION_*` variables say otherwise
    // (for measuring one setting at a time; the benchmarks set none).
    let config = SessionConfig::from_env()?.with_default_catalog_and_schema("datafusion", "tpch");
    let ctx = SessionContext::new_with_config(config);
    for (name, dir) in tables {
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
