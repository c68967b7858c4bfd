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

/// `'pg_class'::regclass` as `'pg_catalog.pg_class'::regclass`: Postgres
/// finds a catalog table by its bare name, as `pg_catalog` is always on
/// the search path, while the compatibility parser looks a bare name up in
/// the current schema only (pgjdbc joins table remarks on it). Applied to
/// the text, before the compatibility parser turns the cast into a lookup.
pub(super) fn qualify_catalog_regclass(sql: &str) -> std::borrow::Cow<'_, str> {
    const CAST: &str = "'::regclass";
    let lower = sql.to_ascii_lowercase();
    if !lower.contains(CAST) {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = 0;
    let mut from = 0;
    while let Some(at) = lower[from..].find(CAST).map(|i| i + from) {
        // The literal before the cast: `'pg_…'`, a bare name.
        if let Some(open) = lower[..at].rfind('\'')
            && lower[open + 1..at].starts_with("pg_")
            && lower[open + 1..at]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
        {
            out.push_str(&sql[rest..=open]);
            out.push_str("pg_catalog.");
            rest = open + 1;
        }
        from = at + CAST.len();
    }
    out.push_str(&sql[rest..]);
    std::borrow::Cow::Owned(out)
}

/// `SELECT current_user, session_user`: each unaliased `current_user`,
/// `session_user` or `user` gets its own name as alias, as Postgres names the columns, before
/// the compatibility parser renames them all to `session_user` (which made
/// the names collide). Statements that do not name them are untouched.
pub(super) fn alias_user_functions(sql: &str) -> std::borrow::Cow<'_, str> {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
    // `current_user` and `session_user` contain it too.
    if !sql.to_ascii_lowercase().contains("user") {
        return std::borrow::Cow::Borrowed(sql);
    }
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let Ok(mut statements) = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql)
    else {
        return std::borrow::Cow::Borrowed(sql);
    };
    let mut changed = false;
    for statement in &mut statements {
        let Statement::Query(query) = statement else {
            continue;
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            continue;
        };
        for item in &mut select.projection {
            let SelectItem::UnnamedExpr(Expr::Function(f)) = item else {
                continue;
            };
            let name = f.name.to_string().to_ascii_lowercase();
            if matches!(f.args, FunctionArguments::None)
                && matches!(name.as_str(), "current_user" | "session_user" | "user")
            {
                let expr = Expr::Function(f.clone());
                *item = SelectItem::ExprWithAlias {
                    expr,
                    alias: Ident::new(name),
                };
                changed = true;
            }
        }
    }
    if !changed {
        return std::borrow::Cow::Borrowed(sql);
    }
    std::borrow::Cow::Owned(
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    )
}

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
///   `pg_function_is_visible(oid)`, `pg_collation_is_visible(oid)`: the
///   object's schema is on the search path (`pg_catalog`, where every
///   collation is, always is) (SQLAlchemy and psql list "the tables"
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
        // Every column here has the default collation (0): SQLAlchemy 2.1
        // looks a column's collation up in subqueries inside a CASE that
        // this makes constant, so they are never planned.
        if let Expr::CompoundIdentifier(parts) = e
            && parts
                .last()
                .is_some_and(|c| c.value.eq_ignore_ascii_case("attcollation"))
        {
            replace(e, "CAST(0 AS INT)");
            return ControlFlow::Continue(());
        }
        // `ix.indisprimary = 'f'`: Postgres reads the literal as a boolean.
        if let Expr::BinaryOp { left, right, .. } = e
            && is_boolean_column(left)
            && let Some(b) = boolean_literal(right)
        {
            **right = Expr::value(Value::Boolean(b));
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
            let elements = vector_elements(&vector.to_string());
            let text = match name {
                "unnest" => format!("unnest({elements})"),
                "generate_subscripts" => {
                    format!(
                        "unnest(range(CAST(1 AS BIGINT), \
                         COALESCE(CAST(array_length({elements}) AS BIGINT), 0) + 1))"
                    )
                }
                "array_length" | "cardinality" => format!("array_length({elements})"),
                // `attnum = ANY(ix.indkey)`, as the compatibility parser
                // writes it (SQLAlchemy 1.4's index reflection).
                "array_has" | "array_contains" => match list.args.get(1) {
                    Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(x))) => {
                        format!("array_has({elements}, {x})")
                    }
                    _ => return ControlFlow::Continue(()),
                },
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
            // Every collation is in `pg_catalog`, which is always on the
            // path; no subquery, as SQLAlchemy 2.1 calls it inside one.
            "pg_collation_is_visible" => format!("({arg} IS NOT NULL)"),
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

/// A boolean column of the catalog tables, by name.
fn is_boolean_column(e: &Expr) -> bool {
    let name = match e {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => &i.value,
            None => return false,
        },
        _ => return false,
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "indisprimary"
            | "indisunique"
            | "indisclustered"
            | "indisvalid"
            | "indimmediate"
            | "indisexclusion"
            | "indisready"
            | "indislive"
            | "attisdropped"
            | "attnotnull"
            | "atthasdef"
            | "attislocal"
            | "relhasindex"
            | "relispartition"
            | "relisshared"
            | "relhasrules"
            | "relhastriggers"
            | "relrowsecurity"
            | "condeferrable"
            | "condeferred"
            | "convalidated"
            | "typisdefined"
            | "typnotnull"
            | "rolsuper"
            | "rolcanlogin"
            | "proisstrict"
            | "proretset"
    )
}

/// `'t'`, `'f'`, `'true'`, `'false'` (any case) as a boolean.
fn boolean_literal(e: &Expr) -> Option<bool> {
    let Expr::Value(v) = e else {
        return None;
    };
    let Value::SingleQuotedString(s) = &v.value else {
        return None;
    };
    match s.to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The elements of a vector column, as an array of numbers: `pg_index`'s
/// vectors are space-separated (`1 3`), `pg_constraint`'s keys are
/// arrays in text form (`{1,3}`).
pub(super) fn vector_elements(vector: &str) -> String {
    let key = vector.to_ascii_lowercase();
    if key.ends_with("conkey") || key.ends_with("confkey") {
        format!(
            "CAST(array_remove(string_to_array(btrim(CAST({vector} AS TEXT), '{{}}'), ','), '') AS BIGINT[])"
        )
    } else {
        format!("CAST(array_remove(string_to_array(CAST({vector} AS TEXT), ' '), '') AS BIGINT[])")
    }
}

/// A `pg_index` vector column (`int2vector`, `oidvector`: `indkey`,
/// `indclass`, …) or a `pg_constraint` key (`conkey`, `confkey`), which
/// the catalog holds as text.
fn vector_column(e: &Expr) -> Option<&Expr> {
    let last = match e {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => &parts.last()?.value,
        _ => return None,
    };
    matches!(
        last.to_ascii_lowercase().as_str(),
        "indkey" | "indclass" | "indcollation" | "indoption" | "conkey" | "confkey"
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

/// `CASE WHEN c THEN (SELECT x FROM pg_… WHERE w) [ELSE NULL] END`
/// (SQLAlchemy 2.1's column defaults and identities) as `(SELECT x FROM
/// pg_… WHERE (w) AND (c))`: the same value, NULL when `c` does not hold,
/// in the form the compatibility parser's rules and DataFusion's
/// decorrelation know. Whether anything changed.
pub(super) fn case_subqueries(statement: &mut Statement) -> bool {
    use datafusion::sql::sqlparser::ast::{SetExpr, TableFactor};
    let mut changed = false;
    let _ = visit_expressions_mut(statement, |e| {
        if let Expr::Case {
            operand: None,
            conditions,
            else_result,
            ..
        } = e
            && let [when] = conditions.as_slice()
            && else_result
                .as_deref()
                .is_none_or(|r| matches!(r, Expr::Value(v) if v.value == Value::Null))
            && let Expr::Subquery(query) = &when.result
            && let SetExpr::Select(select) = query.body.as_ref()
            && let [item] = select.projection.as_slice()
            // NULL over no rows, as the CASE gives when `c` does not hold:
            // not `count`, which gives 0.
            && !item.to_string().to_ascii_lowercase().starts_with("count(")
            && select.from.iter().all(|t| match &t.relation {
                TableFactor::Table { name, .. } => {
                    name.to_string().to_ascii_lowercase().contains("pg_")
                }
                _ => false,
            })
        {
            let condition = when.condition.clone();
            let mut query = query.clone();
            if let SetExpr::Select(select) = query.body.as_mut() {
                select.selection = Some(match select.selection.take() {
                    Some(w) => Expr::BinaryOp {
                        left: Box::new(Expr::Nested(Box::new(w))),
                        op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
                        right: Box::new(Expr::Nested(Box::new(condition))),
                    },
                    None => condition,
                });
            }
            *e = Expr::Subquery(query);
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed
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
mod user_tests {
    #[test]
    fn user_functions_keep_their_names() {
        let a = super::alias_user_functions("SELECT current_user, session_user, user AS me");
        assert_eq!(
            a,
            "SELECT current_user AS current_user, session_user AS session_user, user AS me"
        );
        assert_eq!(super::alias_user_functions("SELECT 1"), "SELECT 1");
    }
}

#[cfg(test)]
mod regclass_tests {
    #[test]
    fn bare_catalog_names_are_qualified() {
        let q = super::qualify_catalog_regclass;
        assert_eq!(
            q("d.classoid = 'pg_class'::regclass AND x = 'sales.orders'::regclass"),
            "d.classoid = 'pg_catalog.pg_class'::regclass AND x = 'sales.orders'::regclass"
        );
        assert_eq!(q("SELECT 1"), "SELECT 1");
        assert_eq!(
            q("'pg_catalog.pg_type'::REGCLASS"),
            "'pg_catalog.pg_type'::REGCLASS"
        );
    }
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
