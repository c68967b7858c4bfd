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
//!   text here rather than `aclitem[]`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments, OrderByKind,
    SelectItem, SetExpr, Statement, Value, visit_expressions_mut,
};

use super::rewrite::{call, replace};

pub(super) fn describe_functions(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |e| {
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
