//! Quality checks, run on staged data before it is published.
//!
//! Row-level checks (not null, range, accepted values) and the row count
//! share one scan; uniqueness and SQL checks run one query each. Only a
//! failed check pays for fetching sample rows.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::arrow::json::ArrayWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use mesh_catalog::CheckResult;
use mesh_spec::{CheckKind, CheckSeverity, ColumnName, Output, QualityCheck, Spanned};

use crate::error::{PipelineError, Result};

/// Rows shown for a failed check.
pub const SAMPLE_ROWS: usize = 5;

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn cols(c: &[Spanned<ColumnName>]) -> String {
    c.iter()
        .map(|c| q(c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The checks of an output, with the implicit ones its contract implies.
pub fn checks_for(output: &Output) -> Vec<QualityCheck> {
    let mut checks = Vec::new();
    if !output.primary_key.is_empty() {
        let span = output.span;
        checks.push(QualityCheck {
            name: "primary_key_unique".into(),
            kind: CheckKind::Unique {
                columns: output.primary_key.clone(),
            },
            severity: CheckSeverity::Error,
            span,
        });
        checks.push(QualityCheck {
            name: "primary_key_not_null".into(),
            kind: CheckKind::NotNull {
                columns: output.primary_key.clone(),
            },
            severity: CheckSeverity::Error,
            span,
        });
    }
    checks.extend(output.quality.iter().cloned());
    checks
}

/// A violation predicate for row-level checks; `None` for the others.
fn violation(kind: &CheckKind) -> Option<String> {
    match kind {
        CheckKind::NotNull { columns } => Some(
            columns
                .iter()
                .map(|c| format!("{} IS NULL", q(c.as_str())))
                .collect::<Vec<_>>()
                .join(" OR "),
        ),
        CheckKind::Range { column, min, max } => {
            let c = q(column.as_str());
            let mut parts = Vec::new();
            if let Some(m) = min {
                parts.push(format!("{c} < {}", m.to_sql()));
            }
            if let Some(m) = max {
                parts.push(format!("{c} > {}", m.to_sql()));
            }
            Some(format!("({})", parts.join(" OR ")))
        }
        CheckKind::AcceptedValues { column, values } => {
            let list = values
                .iter()
                .map(|v| v.to_sql())
                .collect::<Vec<_>>()
                .join(", ");
            Some(format!(
                "({c} IS NOT NULL AND {c} NOT IN ({list}))",
                c = q(column.as_str())
            ))
        }
        _ => None,
    }
}

async fn scalar(ctx: &SessionContext, sql: &str) -> Result<Option<f64>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let col = batch.column(0);
    if col.is_null(0) {
        return Ok(None);
    }
    let casted = datafusion::arrow::compute::cast(col, &DataType::Float64)?;
    Ok(Some(casted.as_primitive::<Float64Type>().value(0)))
}

async fn counts(ctx: &SessionContext, table: &str, preds: &[String]) -> Result<Vec<i64>> {
    let mut select = vec!["count(*)".to_string()];
    select.extend(preds.iter().map(|p| format!("count(*) FILTER (WHERE {p})")));
    let sql = format!("SELECT {} FROM {}", select.join(", "), q(table));
    let batches = ctx.sql(&sql).await?.collect().await?;
    let batch = batches
        .first()
        .ok_or_else(|| PipelineError::Internal("count query returned nothing".into()))?;
    (0..batch.num_columns())
        .map(|i| {
            let c = datafusion::arrow::compute::cast(batch.column(i), &DataType::Int64)?;
            Ok(c.as_primitive::<Int64Type>().value(0))
        })
        .collect()
}

async fn sample(ctx: &SessionContext, sql: &str) -> Result<Vec<serde_json::Value>> {
    let batches: Vec<RecordBatch> = ctx.sql(sql).await?.collect().await?;
    let mut writer = ArrayWriter::new(Vec::new());
    for b in &batches {
        writer.write(b)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or_default())
}

/// Runs `checks` against the table `table` registered in `ctx`.
pub async fn run_checks(
    ctx: &SessionContext,
    table: &str,
    checks: &[QualityCheck],
) -> Result<Vec<CheckResult>> {
    let row_level: Vec<(usize, String)> = checks
        .iter()
        .enumerate()
        .filter_map(|(i, c)| violation(&c.kind).map(|p| (i, p)))
        .collect();
    let preds: Vec<String> = row_level.iter().map(|(_, p)| p.clone()).collect();
    let counted = counts(ctx, table, &preds).await?;
    let total = counted[0];
    let mut results = Vec::with_capacity(checks.len());
    for (i, check) in checks.iter().enumerate() {
        let mut samples = Vec::new();
        let (passed, observed) = match &check.kind {
            CheckKind::NotNull { .. }
            | CheckKind::Range { .. }
            | CheckKind::AcceptedValues { .. } => {
                let pos = row_level.iter().position(|(j, _)| *j == i).unwrap_or(0);
                let bad = counted[pos + 1];
                if bad > 0 {
                    let pred = &row_level[pos].1;
                    samples = sample(
                        ctx,
                        &format!(
                            "SELECT * FROM {} WHERE {pred} LIMIT {SAMPLE_ROWS}",
                            q(table)
                        ),
                    )
                    .await?;
                }
                (bad == 0, format!("{bad} of {total} rows violate"))
            }
            CheckKind::Unique { columns } => {
                let c = cols(columns);
                let dup_sql = format!(
                    "SELECT {c}, count(*) AS occurrences FROM {} GROUP BY {c} HAVING count(*) > 1",
                    q(table)
                );
                let dups = scalar(ctx, &format!("SELECT count(*) FROM ({dup_sql})"))
                    .await?
                    .unwrap_or(0.0) as i64;
                if dups > 0 {
                    samples = sample(
                        ctx,
                        &format!("{dup_sql} ORDER BY occurrences DESC LIMIT {SAMPLE_ROWS}"),
                    )
                    .await?;
                }
                (dups == 0, format!("{dups} duplicated keys"))
            }
            CheckKind::RowCount { min, max } => {
                let ok =
                    min.is_none_or(|m| total as u64 >= m) && max.is_none_or(|m| total as u64 <= m);
                let bounds = match (min, max) {
                    (Some(a), Some(b)) => format!("expected {a}..={b}"),
                    (Some(a), None) => format!("expected at least {a}"),
                    (None, Some(b)) => format!("expected at most {b}"),
                    (None, None) => String::new(),
                };
                (ok, format!("{total} rows ({bounds})"))
            }
            CheckKind::Sql { query, must_be } => {
                let value = scalar(ctx, &query.value).await?;
                let ok = value.is_some_and(|v| (v - must_be).abs() < f64::EPSILON);
                let shown = value.map_or_else(|| "NULL".to_string(), |v| v.to_string());
                (ok, format!("query returned {shown}, must be {must_be}"))
            }
        };
        results.push(CheckResult {
            output: table.to_string(),
            name: check.name.clone(),
            kind: check.kind.keyword().to_string(),
            severity: match check.severity {
                CheckSeverity::Error => "error".into(),
                CheckSeverity::Warn => "warn".into(),
            },
            passed,
            observed,
            sample: samples,
        });
    }
    Ok(results)
}
