//! Access enforcement inside the planner.
//!
//! Every table a query names is resolved by the `mesh` catalog provider,
//! which asks the [`AccessGuard`] for a decision before handing out the
//! table. A denied read fails planning. An allowed read with masks or row
//! filters gets a [`SecureTable`] instead of the table (see `barrier`):
//! the row filters, then the masks, planned and run below a barrier that
//! no expression of the caller crosses. Everything the query does
//! (`SELECT *`, CTEs, subqueries, joins, `GROUP BY`, `WHERE`, aggregates,
//! time travel, older majors, `EXPLAIN`) is planned on top of it, so no
//! operator of the caller ever sees an unmasked value or a hidden row.
//! Row filters see the stored values.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, DFSchema, ScalarValue, TableReference};
use datafusion::functions::expr_fn::{concat, encode, right, sha256};
use datafusion::logical_expr::{Expr, cast, lit};
use datafusion::prelude::SessionContext;
use mesh_catalog::OutputRecord;
use mesh_policy::{Decision, Mask};

use crate::barrier::SecureTable;
use crate::error::{QueryError, Result};

/// What one read reads of an output: the product version its data was
/// published under, and its columns as stored (a version published
/// before a rename holds the old names).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Read {
    /// `None` for an output never published: nothing is read.
    pub product_version: Option<String>,
    pub columns: Vec<String>,
}

impl Read {
    /// A read of the output's current contract columns.
    pub fn current(output: &OutputRecord) -> Self {
        Read {
            product_version: None,
            columns: output.columns.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

/// Decides reads of outputs for one principal. The service layer
/// implements it over the policy engine and the catalog.
#[async_trait]
pub trait AccessGuard: Send + Sync + std::fmt::Debug {
    /// The decision for reading `read` of `output` (its product is
    /// `output.product`).
    async fn decide(&self, output: &OutputRecord, read: &Read) -> Result<Decision>;
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}

fn typed_null(dt: &DataType) -> Result<Expr> {
    Ok(Expr::Literal(ScalarValue::try_from(dt)?, None))
}

/// The masked value of `column`, keeping its type.
fn mask_expr(
    mask: &Mask,
    column: Expr,
    field: &Field,
    parser: &SessionContext,
    schema: &DFSchema,
) -> Result<Expr> {
    let dt = field.data_type();
    let text = is_string(dt);
    let masked = match mask {
        Mask::Null => typed_null(dt)?,
        Mask::Redact if text => cast(lit("***"), dt.clone()),
        Mask::Hash if text => cast(encode(sha256(column), lit("hex")), dt.clone()),
        Mask::Last4 if text => cast(
            concat(vec![lit("****"), right(column, lit(4i64))]),
            dt.clone(),
        ),
        Mask::Redact | Mask::Hash | Mask::Last4 => typed_null(dt)?,
        Mask::Sql(sql) => {
            let e = parser
                .parse_sql_expr(sql, schema)
                .map_err(|e| QueryError::Plan {
                    message: format!(
                        "the mask of column `{}` is not a valid SQL expression: {}",
                        field.name(),
                        e.strip_backtrace()
                    ),
                    hint: Some(
                        "fix the `masks` rule of the policy (`mesh policy eval` shows it)".into(),
                    ),
                })?;
            cast(e, dt.clone())
        }
    };
    Ok(masked)
}

/// The table as the decision lets it be read: the table itself when
/// unrestricted, else a [`SecureTable`] applying the row filters, then
/// the masks, below a barrier the caller's expressions never cross.
pub fn secure_table(
    inner: Arc<dyn TableProvider>,
    name: TableReference,
    decision: &Decision,
    parser: &SessionContext,
) -> Result<Arc<dyn TableProvider>> {
    if decision.masks.is_empty() && decision.row_filters.is_empty() {
        return Ok(inner);
    }
    let schema = inner.schema();
    let df_schema = DFSchema::try_from_qualified_schema(name.clone(), &schema)?;
    let mut filters = Vec::with_capacity(decision.row_filters.len());
    for filter in &decision.row_filters {
        let e = parser
            .parse_sql_expr(filter, &df_schema)
            .map_err(|e| QueryError::Plan {
                message: format!(
                    "a row filter of `{name}` is not a valid SQL predicate (`{filter}`): {}",
                    e.strip_backtrace()
                ),
                hint: Some("fix the `row_filters` rule of the policy".into()),
            })?;
        filters.push(e);
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = Expr::Column(Column::new(Some(name.clone()), field.name()));
        columns.push(match decision.masks.get(field.name()) {
            Some(mask) => mask_expr(mask, column, field, parser, &df_schema)?.alias(field.name()),
            None => column,
        });
    }
    let masked = decision.masks.keys().cloned().collect();
    Ok(Arc::new(SecureTable::new(
        inner, name, filters, columns, masked,
    )?))
}

/// Refuses a denied read, naming the output and the policy's reason.
pub fn check_allowed(output: &OutputRecord, decision: &Decision) -> Result<()> {
    if decision.allowed {
        return Ok(());
    }
    Err(QueryError::AccessDenied {
        name: format!("{}.{}", output.domain, output.output),
        product: output.product.to_string(),
        reason: decision.reason.clone(),
    })
}
