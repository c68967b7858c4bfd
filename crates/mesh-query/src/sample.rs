//! Rows kept outside the tables (quality-check samples in run records),
//! shown to a reader exactly as a query by that reader would show them.
//!
//! The rows are stored raw, so the owners can debug a failed check, and
//! the reader's decision of today is applied at every read: a policy
//! change protects samples taken before it. The rows go through the same
//! [`secure_table`] as a table scan (row filters, then masks), on an
//! in-memory table typed by the output's contract. Anything that cannot
//! be typed or filtered that way (a column the contract no longer has, a
//! row filter over a column the sample lacks) is withheld whole.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::{ArrayWriter, ReaderBuilder};
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use mesh_policy::Decision;

use crate::error::{QueryError, Result};
use crate::guard::secure_table;

/// A column samples may add to the contract's: the `unique` check's count.
const OCCURRENCES: &str = "occurrences";

fn withheld(why: impl Into<String>) -> QueryError {
    QueryError::Plan {
        message: why.into(),
        hint: None,
    }
}

/// `rows` (JSON objects with columns of `schema`) as `decision` lets its
/// reader see them: filtered, masked, or an error when they cannot be.
pub async fn secure_rows(
    schema: &SchemaRef,
    rows: &[serde_json::Value],
    decision: &Decision,
) -> Result<Vec<serde_json::Value>> {
    if !decision.allowed {
        return Err(withheld("the reader may not read the output"));
    }
    if rows.is_empty() || decision.is_unrestricted() {
        return Ok(rows.to_vec());
    }
    // The sample's columns, typed by the contract, in the sample's order.
    let mut fields: Vec<Field> = Vec::new();
    for row in rows {
        let object = row
            .as_object()
            .ok_or_else(|| withheld("a sample row is not an object"))?;
        for key in object.keys() {
            if fields.iter().any(|f| f.name() == key) {
                continue;
            }
            let field = match schema.field_with_name(key) {
                Ok(f) => f.clone().with_nullable(true),
                Err(_) if key == OCCURRENCES => Field::new(key, DataType::Int64, true),
                Err(_) => {
                    return Err(withheld(format!(
                        "the sample has a column `{key}` the contract no longer declares"
                    )));
                }
            };
            fields.push(field);
        }
    }
    let sample_schema = Arc::new(Schema::new(fields));
    let arrow = |e: datafusion::arrow::error::ArrowError| withheld(e.to_string());
    let mut decoder = ReaderBuilder::new(sample_schema.clone())
        .build_decoder()
        .map_err(arrow)?;
    decoder.serialize(rows).map_err(arrow)?;
    let batch = decoder
        .flush()
        .map_err(arrow)?
        .ok_or_else(|| withheld("the sample holds no rows"))?;
    let table = Arc::new(MemTable::try_new(sample_schema, vec![vec![batch]])?);
    let ctx = SessionContext::new();
    let secured = secure_table(table, TableReference::bare("sample"), decision, &ctx)?;
    let batches = ctx.read_table(secured)?.collect().await?;
    let mut writer = ArrayWriter::new(Vec::new());
    for b in &batches {
        writer.write(b).map_err(arrow)?;
    }
    writer.finish().map_err(arrow)?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| withheld(e.to_string()))
}
