//! Rewrites of statements as clients send them into forms DataFusion
//! plans, with the same meaning.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, ObjectNamePart, Statement, Value, visit_expressions_mut,
};

/// `x LIKE p ESCAPE 'c'` with an escape character other than backslash
/// (SQLAlchemy 2 writes `ESCAPE '/'`) becomes `x LIKE like_escape(p,
/// 'c')`: DataFusion's LIKE knows only the backslash.
pub(super) fn like_escapes(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |e| {
        if let Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        } = e
            && let Some(escape) = escape_char.take()
        {
            let c = match &escape.value {
                Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            };
            if c == "\\" {
                return ControlFlow::<()>::Continue(());
            }
            let inner = std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
            **pattern = call(
                "like_escape",
                vec![inner, Expr::value(Value::SingleQuotedString(c))],
            );
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Catalog functions that need the catalog tables, written as the
/// queries over them that they stand for:
/// - `pg_table_is_visible(oid)`, `pg_type_is_visible(oid)`,
///   `pg_function_is_visible(oid)`: the relation's, type's or function's
///   schema is on the search path (SQLAlchemy and psql list "the tables"
///   with it);
/// - `to_regtype(name)`: the OID of a type by name, or NULL.
pub(super) fn catalog_functions(statement: &mut Statement, search_path: &[String]) {
    let mut schemas = vec!["'pg_catalog'".to_string()];
    schemas.extend(
        search_path
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "''"))),
    );
    let schemas = schemas.join(", ");
    let _ = visit_expressions_mut(statement, |e| {
        if let Expr::CompoundIdentifier(parts) = e
            && let [.., table, column] = parts.as_slice()
            && let Some(ty) = missing_column(&table.value, &column.value)
        {
            replace(e, &format!("CAST(NULL AS {ty})"));
            return ControlFlow::Continue(());
        }
        let Expr::Function(f) = e else {
            return ControlFlow::<()>::Continue(());
        };
        let name = f.name.to_string().to_ascii_lowercase();
        let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
        let FunctionArguments::List(list) = &f.args else {
            return ControlFlow::Continue(());
        };
        let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))) = list.args.first() else {
            return ControlFlow::Continue(());
        };
        let one_arg = list.args.len() == 1;
        if let Some(vector) = vector_column(arg) {
            let elements = format!(
                "CAST(array_remove(string_to_array(CAST({vector} AS TEXT), ' '), '') AS BIGINT[])"
            );
            let text = match name {
                "unnest" => format!("unnest({elements})"),
                "generate_subscripts" => {
                    format!(
                        "unnest(range(CAST(1 AS BIGINT), \
                         COALESCE(CAST(array_length({elements}) AS BIGINT), 0) + 1))"
                    )
                }
                "array_length" | "cardinality" => format!("array_length({elements})"),
                _ => return ControlFlow::Continue(()),
            };
            replace(e, &text);
            return ControlFlow::Continue(());
        }
        if !one_arg {
            return ControlFlow::Continue(());
        }
        let text = match name {
            // Correlated and aggregated: planned in a projection too.
            "pg_table_is_visible" => format!(
                "(SELECT count(*) > 0 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = {arg} AND n.nspname IN ({schemas}))"
            ),
            "pg_type_is_visible" => format!(
                "(SELECT count(*) > 0 FROM pg_catalog.pg_type t \
                 JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
                 WHERE t.oid = {arg} AND n.nspname IN ({schemas}))"
            ),
            "pg_function_is_visible" => format!(
                "(SELECT count(*) > 0 FROM pg_catalog.pg_proc p \
                 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                 WHERE p.oid = {arg} AND n.nspname IN ({schemas}))"
            ),
            "to_regtype" => format!(
                "(SELECT min(t.oid) FROM pg_catalog.pg_type t \
                 WHERE t.typname = regexp_replace(CAST({arg} AS TEXT), '^pg_catalog\\.', ''))"
            ),
            _ => return ControlFlow::Continue(()),
        };
        replace(e, &text);
        ControlFlow::Continue(())
    });
}

/// Columns of Postgres's catalog the catalog here lacks, with their
/// type: always NULL for published tables.
fn missing_column(table: &str, column: &str) -> Option<&'static str> {
    match (
        table.to_ascii_lowercase().as_str(),
        column.to_ascii_lowercase().as_str(),
    ) {
        // Only pg_class has these, under whatever alias.
        (_, "reloptions") => Some("TEXT[]"),
        (_, "relacl") => Some("TEXT"),
        _ => None,
    }
}

/// Replaces `e` with the expression `text`.
pub(super) fn replace(e: &mut Expr, text: &str) {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    if let Ok(parsed) = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
    {
        *e = parsed;
    }
}

/// A `pg_index` vector column (`int2vector`, `oidvector`: `indkey`,
/// `indclass`, …), which the catalog holds as space-separated text.
fn vector_column(e: &Expr) -> Option<&Expr> {
    let last = match e {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => &parts.last()?.value,
        _ => return None,
    };
    matches!(
        last.to_ascii_lowercase().as_str(),
        "indkey" | "indclass" | "indcollation" | "indoption"
    )
    .then_some(e)
}

/// A LIKE pattern written with escape character `escape` (empty: none),
/// as a pattern escaped with backslashes.
fn to_backslash(pattern: &str, escape: &str) -> String {
    let escape = escape.chars().next();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            if let Some(next) = chars.next() {
                out.push('\\');
                out.push(next);
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// PostgreSQL's `like_escape(pattern, escape)`.
pub(super) fn like_escape_udf() -> ScalarUDF {
    create_udf(
        "like_escape",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let escape = match &args[1] {
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(e))) => e.clone(),
                ColumnarValue::Scalar(_) => String::new(),
                ColumnarValue::Array(_) => {
                    return Err(datafusion::error::DataFusionError::Plan(
                        "the ESCAPE of LIKE must be a constant".into(),
                    ));
                }
            };
            match &args[0] {
                ColumnarValue::Scalar(ScalarValue::Utf8(p)) => Ok(ColumnarValue::Scalar(
                    ScalarValue::Utf8(p.as_deref().map(|p| to_backslash(p, &escape))),
                )),
                ColumnarValue::Scalar(other) => Ok(ColumnarValue::Scalar(other.clone())),
                ColumnarValue::Array(a) => {
                    let a = as_string_array(a)?;
                    let out: StringArray = (0..a.len())
                        .map(|i| (!a.is_null(i)).then(|| to_backslash(a.value(i), &escape)))
                        .collect();
                    Ok(ColumnarValue::Array(Arc::new(out)))
                }
            }
        }),
    )
}

/// Scalar subqueries over `pg_catalog` tables that select one plain
/// value (SQLAlchemy's column reflection looks up each column's default,
/// identity and collation this way) take `max()` of it: the catalog's
/// keys make them return at most one row, which DataFusion only plans for
/// a correlated subquery when it is aggregated.
pub(super) fn aggregate_catalog_subqueries(statement: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{GroupByExpr, SelectItem, SetExpr, TableFactor};
    let _ = visit_expressions_mut(statement, |e| {
        let Expr::Subquery(query) = e else {
            return ControlFlow::<()>::Continue(());
        };
        if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
            return ControlFlow::Continue(());
        }
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(v, _) if v.is_empty());
        let catalog_only = !select.from.is_empty()
            && select.from.iter().all(|t| {
                std::iter::once(&t.relation)
                    .chain(t.joins.iter().map(|j| &j.relation))
                    .all(|r| match r {
                        TableFactor::Table { name, .. } => {
                            let name = name.to_string().to_ascii_lowercase();
                            name.starts_with("pg_catalog.") || name.starts_with("pg_")
                        }
                        _ => false,
                    })
            });
        if grouped || !catalog_only || select.projection.len() != 1 || select.distinct.is_some() {
            return ControlFlow::Continue(());
        }
        let expr = match &mut select.projection[0] {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
            _ => return ControlFlow::Continue(()),
        };
        if is_aggregate(expr) {
            return ControlFlow::Continue(());
        }
        let inner = std::mem::replace(expr, Expr::value(Value::Null));
        *expr = call("max", vec![inner]);
        ControlFlow::Continue(())
    });
}

/// Whether `e` calls an aggregate anywhere.
fn is_aggregate(e: &Expr) -> bool {
    datafusion::sql::sqlparser::ast::visit_expressions(e, |e| match e {
        Expr::Function(f)
            if matches!(
                f.name.to_string().to_ascii_lowercase().as_str(),
                "max"
                    | "min"
                    | "count"
                    | "sum"
                    | "avg"
                    | "array_agg"
                    | "string_agg"
                    | "bool_and"
                    | "bool_or"
                    | "first_value"
                    | "last_value"
                    | "json_agg"
            ) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// A call of function `name` on `args`.
pub(super) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::to_backslash;

    #[test]
    fn a_pattern_with_another_escape_reads_the_same_with_backslashes() {
        assert_eq!(to_backslash("pg/_%", "/"), "pg\\_%");
        assert_eq!(to_backslash("a\\b//c", "/"), "a\\\\b\\/c");
        assert_eq!(to_backslash("a\\b", ""), "a\\\\b");
    }
}
