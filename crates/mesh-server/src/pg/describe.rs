//! Rewrites for what psql's describe commands (`\d+`, `\dt+`, `\dn+`,
//! `\du`, `\df`, `\dT`) and JDBC's metadata queries call, into queries
//! over the catalog tables that DataFusion plans, with the same meaning:
//!
//! - `obj_description(oid [, catalog])` and `col_description(oid, n)`:
//!   the row of `pg_description` (descriptions come from the contracts,
//!   `contracts.rs`); `shobj_description` is NULL (no shared objects are
//!   described);
//! - `ARRAY(SELECT x …)`: `(SELECT array_agg(x) …)`, the same subquery
//!   aggregated (its `ORDER BY` becomes the aggregate's order); an array of
//!   `reloptions`, which no published table has, is NULL;
//! - `pg_table_size`, `pg_indexes_size`: NULL, as sizes on disk are not
//!   known to the catalog tables;
//! - `array_to_string(<…>acl, sep)`: the access privileges, which are
//!   text here rather than `aclitem[]`;
//! - `information_schema._pg_expandarray(v)` and its fields `.x`, `.n`
//!   (pgjdbc's `getPrimaryKeys`, `getIndexInfo`): `unnest` of the
//!   elements and of their positions, which expand side by side.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments, OrderByKind,
    SelectItem, SetExpr, Statement, Value, visit_expressions_mut,
};

use super::rewrite::{call, replace, vector_elements as elements};

pub(super) fn describe_functions(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |e| {
        if let Some(text) = expanded_field(e) {
            replace(e, &text);
            return ControlFlow::Continue(());
        }
        let Expr::Function(f) = e else {
            return ControlFlow::<()>::Continue(());
        };
        let name = f.name.to_string().to_ascii_lowercase();
        let name = name
            .strip_prefix("pg_catalog.")
            .unwrap_or(&name)
            .to_string();
        if name == "array"
            && let FunctionArguments::Subquery(query) = &f.args
        {
            let mut query = query.clone();
            if query
                .to_string()
                .to_ascii_lowercase()
                .contains("reloptions")
            {
                replace(e, "CAST(NULL AS TEXT[])");
            } else if aggregate_into_array(&mut query) {
                *e = Expr::Subquery(query);
            }
            return ControlFlow::Continue(());
        }
        let FunctionArguments::List(list) = &f.args else {
            return ControlFlow::Continue(());
        };
        let args: Vec<String> = list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.to_string()),
                _ => None,
            })
            .collect();
        let description = |object: &str, sub: &str| {
            format!(
                "(SELECT min(d.description) FROM pg_catalog.pg_description d \
                 WHERE d.objoid = {object} AND d.objsubid = {sub})"
            )
        };
        let text = match (name.as_str(), args.as_slice()) {
            // Its rows `(x, n)`: the element and its position. Bare, it
            // stands for `x` (see `expanded_field`).
            ("information_schema._pg_expandarray" | "_pg_expandarray", [vector]) => {
                format!("unnest({})", elements(vector))
            }
            ("obj_description", [object, ..]) => description(object, "0"),
            ("col_description", [object, column]) => description(object, column),
            ("shobj_description", _) => "CAST(NULL AS TEXT)".into(),
            ("pg_table_size" | "pg_indexes_size", [_]) => "CAST(NULL AS BIGINT)".into(),
            // Access privileges are text here, not `aclitem[]`.
            ("array_to_string", [acl, _]) if acl.to_ascii_lowercase().ends_with("acl") => {
                format!("CAST({acl} AS TEXT)")
            }
            _ => return ControlFlow::Continue(()),
        };
        replace(e, &text);
        ControlFlow::Continue(())
    });
}

/// A field of `_pg_expandarray`'s rows, as pgjdbc's key queries read
/// them: `(_pg_expandarray(v)).n` is the position, `.x` the element (the
/// function was already rewritten to `unnest(elements)`, as the visit
/// reaches inner expressions first), and `(keys).x` of a column holding
/// the bare call is that column. Subscripts of vectors and key arrays
/// read their elements (see `subscript`).
fn expanded_field(e: &Expr) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{AccessExpr, Subscript};
    let Expr::CompoundFieldAccess { root, access_chain } = e else {
        return None;
    };
    let root = match root.as_ref() {
        Expr::Nested(inner) => inner.as_ref(),
        other => other,
    };
    match (root, access_chain.as_slice()) {
        (Expr::Function(f), [AccessExpr::Dot(Expr::Identifier(field))])
            if f.name.to_string().eq_ignore_ascii_case("unnest") =>
        {
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            let [FunctionArg::Unnamed(FunctionArgExpr::Expr(array))] = list.args.as_slice() else {
                return None;
            };
            match field.value.to_ascii_lowercase().as_str() {
                "x" => Some(format!("unnest({array})")),
                "n" => Some(format!(
                    "unnest(range(CAST(1 AS BIGINT), COALESCE(CAST(array_length({array}) AS BIGINT), 0) + 1))"
                )),
                _ => None,
            }
        }
        (Expr::CompoundIdentifier(parts), [AccessExpr::Dot(Expr::Identifier(field))])
            if field.value.eq_ignore_ascii_case("x")
                && parts
                    .last()
                    .is_some_and(|p| p.value.eq_ignore_ascii_case("keys")) =>
        {
            Some(root.to_string())
        }
        (Expr::CompoundIdentifier(parts), [AccessExpr::Subscript(Subscript::Index { index })]) => {
            subscript(&root.to_string(), &parts.last()?.value, index)
        }
        // `tmp.I_INDOPTION[k]`, parsed as a field of `tmp`.
        (
            Expr::Identifier(table),
            [
                AccessExpr::Dot(Expr::Identifier(column)),
                AccessExpr::Subscript(Subscript::Index { index }),
            ],
        ) => subscript(&format!("{table}.{column}"), &column.value, index),
        _ => None,
    }
}

/// `column[index]` of a catalog vector (counted from 0, as Postgres's
/// `int2vector` and `oidvector`) or key array (from 1).
fn subscript(column: &str, name: &str, index: &Expr) -> Option<String> {
    let name = name.to_ascii_lowercase();
    if ["indoption", "indkey", "indclass", "indcollation"]
        .iter()
        .any(|v| name.ends_with(v))
    {
        Some(format!("({})[({index}) + 1]", elements(column)))
    } else if name.ends_with("conkey") || name.ends_with("confkey") {
        Some(format!("({})[{index}]", elements(column)))
    } else {
        None
    }
}

/// `SELECT x FROM … [ORDER BY o]` as `SELECT array_agg(x ORDER BY o) FROM
/// …`; false for a query of another shape.
fn aggregate_into_array(query: &mut datafusion::sql::sqlparser::ast::Query) -> bool {
    let order = query.order_by.take();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return false;
    };
    let [item] = select.projection.as_mut_slice() else {
        return false;
    };
    let expr = match item {
        SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
        _ => return false,
    };
    let inner = std::mem::replace(expr, Expr::value(Value::Null));
    let mut aggregated = call("array_agg", vec![inner.clone()]);
    if let (Expr::Function(f), Some(order)) = (&mut aggregated, order)
        && let OrderByKind::Expressions(mut exprs) = order.kind
        && let FunctionArguments::List(list) = &mut f.args
    {
        // `ORDER BY 1` names the selected value.
        for o in &mut exprs {
            if matches!(&o.expr, Expr::Value(v) if v.value == Value::Number("1".into(), false)) {
                o.expr = inner.clone();
            }
        }
        list.clauses.push(FunctionArgumentClause::OrderBy(exprs));
    }
    *expr = aggregated;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let mut ast = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql).unwrap();
        describe_functions(&mut ast[0]);
        ast[0].to_string()
    }

    #[test]
    fn descriptions_are_looked_up_in_pg_description() {
        let sql = rewritten("SELECT col_description(a.attrelid, a.attnum) FROM pg_attribute a");
        assert!(
            sql.contains("d.objoid = a.attrelid AND d.objsubid = a.attnum"),
            "{sql}"
        );
        let sql = rewritten("SELECT obj_description(c.oid, 'pg_class') FROM pg_class c");
        assert!(sql.contains("d.objsubid = 0"), "{sql}");
    }

    #[test]
    fn expanded_arrays_give_elements_and_positions() {
        let sql = rewritten(
            "SELECT (information_schema._pg_expandarray(i.indkey)).n AS k, information_schema._pg_expandarray(i.indkey) AS keys FROM pg_index i",
        );
        assert!(sql.contains("unnest(range(CAST(1 AS BIGINT)"), "{sql}");
        assert!(sql.contains("AS k, unnest(CAST(array_remove"), "{sql}");
        let sql = rewritten(
            "SELECT 1 FROM t WHERE a = (result.KEYS).x AND b = con.conkey[pos.n] AND c = tmp.I_INDOPTION[p - 1]",
        );
        assert!(sql.contains("a = result.KEYS"), "{sql}");
        assert!(
            sql.contains("btrim(CAST(con.conkey AS TEXT), '{}'), ','), '') AS BIGINT[]))[pos.n]"),
            "{sql}"
        );
        assert!(sql.contains("[(p - 1) + 1]"), "{sql}");
    }

    #[test]
    fn array_subqueries_are_aggregated_in_order() {
        let sql = rewritten(
            "SELECT ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON m.roleid = b.oid WHERE m.member = r.oid ORDER BY 1) FROM pg_roles r",
        );
        assert!(
            sql.contains("(SELECT array_agg(b.rolname ORDER BY b.rolname) FROM"),
            "{sql}"
        );
        let sql = rewritten(
            "SELECT array(select 'toast.' || x from unnest(tc.reloptions) x) FROM pg_class tc",
        );
        assert!(sql.contains("CAST(NULL AS TEXT[])"), "{sql}");
    }
}
