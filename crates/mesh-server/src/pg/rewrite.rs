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
            **pattern = Expr::Function(Function {
                name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new("like_escape"))]),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(inner)),
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
                            Value::SingleQuotedString(c),
                        ))),
                    ],
                    clauses: vec![],
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            });
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Catalog functions that need the catalog tables, written as the
/// queries over them that they stand for:
/// - `pg_table_is_visible(oid)`: the relation's schema is on the search
///   path (SQLAlchemy and psql list "the tables" with it);
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
        let Expr::Function(f) = e else {
            return ControlFlow::<()>::Continue(());
        };
        let name = f.name.to_string().to_ascii_lowercase();
        let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
        let FunctionArguments::List(list) = &f.args else {
            return ControlFlow::Continue(());
        };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice() else {
            return ControlFlow::Continue(());
        };
        let text = match name {
            "pg_table_is_visible" => format!(
                "({arg} IN (SELECT c.oid FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname IN ({schemas})))"
            ),
            "to_regtype" => format!(
                "(SELECT min(t.oid) FROM pg_catalog.pg_type t \
                 WHERE t.typname = regexp_replace(CAST({arg} AS TEXT), '^pg_catalog\\.', ''))"
            ),
            _ => return ControlFlow::Continue(()),
        };
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        if let Ok(parsed) = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_expr())
        {
            *e = parsed;
        }
        ControlFlow::Continue(())
    });
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
