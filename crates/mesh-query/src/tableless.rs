//! Whether a statement names no table at all (`SELECT 1`, `SELECT now()`),
//! so its session needs no catalog, no policies and no visible set.
//!
//! Conservative: anything but a plain query, any relation in any FROM
//! (a table, a CTE's name, a table function), or SQL that does not parse
//! counts as naming one, and takes the full path.

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Statement, visit_relations};
use datafusion::sql::sqlparser::dialect::GenericDialect;

/// Whether a parsed statement is a query that reads no relation.
pub fn names_no_table(statement: &DFStatement) -> bool {
    let DFStatement::Statement(inner) = statement else {
        return false;
    };
    if !matches!(inner.as_ref(), Statement::Query(_)) {
        return false;
    }
    visit_relations(inner.as_ref(), |_| ControlFlow::Break(())).is_continue()
}

/// [`names_no_table`] for SQL text: one statement, parsed with the
/// engine's own (generic) dialect.
pub fn sql_names_no_table(sql: &str) -> bool {
    let Ok(mut parser) = DFParserBuilder::new(sql)
        .with_dialect(&GenericDialect {})
        .build()
    else {
        return false;
    };
    match parser.parse_statements() {
        Ok(statements) if statements.len() == 1 => names_no_table(&statements[0]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::sql_names_no_table;

    #[test]
    fn only_queries_that_read_no_relation_are_tableless() {
        for sql in [
            "SELECT 1",
            "select 1 + 2 AS three, now(), 'x' || 'y'",
            "SELECT CASE WHEN 1 > 0 THEN 'a' END",
            "SELECT 1 UNION ALL SELECT 2",
        ] {
            assert!(sql_names_no_table(sql), "{sql}");
        }
        for sql in [
            "SELECT * FROM sales.orders",
            "SELECT (SELECT count(*) FROM sales.orders)",
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM hr.employees)",
            "WITH t AS (SELECT 1 AS a) SELECT a FROM t",
            "SELECT * FROM generate_series(1, 3)",
            "SELECT * FROM information_schema.tables",
            "SELECT 1 UNION ALL SELECT id FROM sales.orders",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "SELECT 1; SELECT 2",
            "SELEC 1",
        ] {
            assert!(!sql_names_no_table(sql), "{sql}");
        }
    }
}
