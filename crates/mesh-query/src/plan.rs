//! Checking transform SQL against the schemas of its inputs, and the
//! columns it produces against the declared contract.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use mesh_spec::sql::{SqlText, load_sql};
use mesh_spec::{CheckKind, Diagnostic, InputKind, Output, ProductDescriptor, ProductRef};

use crate::schema::{accepts, arrow_schema, contract_type};
use crate::session::transform_context;
use crate::source::register_source;

/// Looks up the declared schema of an upstream output: (product, output
/// name or the only one, and the input's version requirement, which may
/// select an older major kept alive next to the newest).
pub trait UpstreamSchemas: Sync {
    fn schema(
        &self,
        product: &ProductRef,
        output: Option<&str>,
        version: Option<&semver::VersionReq>,
    ) -> Option<SchemaRef>;
}

/// A `line:col` from a DataFusion/sqlparser message, if it has one.
fn sql_position(message: &str) -> Option<(usize, usize)> {
    let l = message.find("Line: ")? + 6;
    let line: usize = message[l..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let c = message.find("Column: ")? + 8;
    let col: usize = message[c..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((line, col))
}

/// A diagnostic for SQL that failed to plan.
/// A planning error of a product's SQL, located where the planner or the
/// parser says, and told as a sentence: a syntax error by what was
/// expected, an unknown table by the product's inputs (`inputs`).
pub fn sql_error_diagnostic(
    sql: &SqlText,
    what: &str,
    error: &datafusion::error::DataFusionError,
    inputs: &[&str],
) -> Diagnostic {
    use datafusion::error::DataFusionError as E;
    let help = "the SQL reads the product's inputs by their `name`; check table and column names against the input schemas";
    let located = |message: String, span| {
        Diagnostic::error("sql", format!("{what}: {message}"))
            .at(&sql.file, span)
            .help(help)
    };
    if let Some(E::SQL(parse, _)) = error.iter().find(|e| matches!(e, E::SQL(..))) {
        let span = sql_position(&parse.to_string())
            .map_or_else(|| sql.whole(), |(l, c)| sql.span_at(l, c));
        return located(crate::session::syntax_sentence(parse), span);
    }
    let root = error.find_root().strip_backtrace();
    let planner_span = error.diagnostic().and_then(|d| d.span).map(|span| {
        sql.span_between(
            (span.start.line as usize, span.start.column as usize),
            (span.end.line as usize, span.end.column as usize),
        )
    });
    let word_span = |word: &str| {
        sql.find_word(word)
            .map(|(l, c)| sql.span_between((l, c), (l, c + word.chars().count())))
    };
    // `table 'datafusion.public.x' not found`: name the inputs instead.
    if let Some(rest) = root.split("table '").nth(1)
        && let Some(name) = rest.split('\'').next()
        && root.contains("not found")
    {
        let bare = name.rsplit('.').next().unwrap_or(name);
        let closest = inputs
            .iter()
            .map(|i| (strsim::jaro_winkler(bare, i), *i))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, i)| format!(" (did you mean `{i}`?)"))
            .unwrap_or_default();
        let listed = if inputs.is_empty() {
            "it declares none".to_string()
        } else {
            let names: Vec<String> = inputs.iter().map(|i| format!("`{i}`")).collect();
            format!("its inputs are {}", names.join(", "))
        };
        let span = planner_span
            .or_else(|| word_span(bare))
            .unwrap_or_else(|| sql.whole());
        return Diagnostic::error(
            "sql",
            format!("{what}: table `{bare}` is not an input of this product{closest}; {listed}"),
        )
        .at(&sql.file, span)
        .help("declare it under `inputs:` (a source or another product's output), or read one of the declared inputs");
    }
    // `Function 'f' expects …`: at the first call of `f`.
    let function_span = || {
        let name = root.split("Function '").nth(1)?.split('\'').next()?;
        word_span(name)
    };
    match planner_span.or_else(function_span) {
        Some(span) => located(root, span),
        None => sql_diagnostic(sql, what, &root),
    }
}

pub fn sql_diagnostic(sql: &SqlText, what: &str, message: &str) -> Diagnostic {
    let span = match sql_position(message) {
        Some((line, col)) => sql.span_at(line, col),
        None => sql.whole(),
    };
    Diagnostic::error("sql", format!("{what}: {message}"))
        .at(&sql.file, span)
        .help("the SQL reads the product's inputs by their `name`; check table and column names against the input schemas")
}

/// Registers the inputs of `p` in `ctx` for planning: sources read their
/// files' schemas, upstream products are empty tables with their declared schema.
pub async fn register_inputs_for_planning(
    ctx: &SessionContext,
    p: &ProductDescriptor,
    upstream: &dyn UpstreamSchemas,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for input in &p.inputs {
        let name = input.name.as_str();
        match &input.kind {
            InputKind::Source(source) => {
                if let Err(e) = register_source(ctx, name, &p.dir, source).await {
                    out.push(
                        Diagnostic::error("source", format!("input `{name}` cannot be read: {e}"))
                            .at(&p.file, source.path.span)
                            .help("check the file format, or declare the source's `columns:`"),
                    );
                }
            }
            InputKind::Product {
                product,
                output,
                version,
            } => {
                let Some(schema) = upstream.schema(
                    &product.value,
                    output.as_ref().map(|o| o.as_str()),
                    version.as_ref().map(|v| &v.value),
                ) else {
                    continue; // reported by structural validation
                };
                match MemTable::try_new(schema, vec![vec![]]) {
                    Ok(t) => {
                        let _ = ctx.register_table(name, Arc::new(t));
                    }
                    Err(e) => out
                        .push(Diagnostic::error("internal", e.to_string()).at(&p.file, input.span)),
                }
            }
        }
    }
    out
}

/// Plans every output's SQL and compares what it produces with the contract.
pub async fn check_product_sql(
    p: &ProductDescriptor,
    upstream: &dyn UpstreamSchemas,
) -> Vec<Diagnostic> {
    check_product_sql_lineage(p, upstream).await.0
}

/// [`check_product_sql`], and the column lineage of every output from the
/// same plans (`None` when an output's SQL does not plan).
pub async fn check_product_sql_lineage(
    p: &ProductDescriptor,
    upstream: &dyn UpstreamSchemas,
) -> (Vec<Diagnostic>, Option<crate::lineage::ProductLineage>) {
    let ctx = transform_context(None);
    let mut out = register_inputs_for_planning(&ctx, p, upstream).await;
    if out.iter().any(Diagnostic::is_error) {
        return (out, None);
    }
    let inputs: Vec<&str> = p.inputs.iter().map(|i| i.name.as_str()).collect();
    let input_set: std::collections::BTreeSet<&str> = inputs.iter().copied().collect();
    let mut lineage = Some(crate::lineage::ProductLineage::new());
    for output in &p.outputs {
        let Some(sql) = p.sql_for(output) else {
            continue;
        };
        let sql = match load_sql(p, sql, None) {
            Ok(s) => s,
            Err(d) => {
                out.push(d);
                lineage = None;
                continue;
            }
        };
        match ctx.sql(&sql.text).await {
            Err(e) => {
                lineage = None;
                out.push(sql_error_diagnostic(
                    &sql,
                    &format!("SQL of output `{}` does not plan", output.name.value),
                    &e,
                    &inputs,
                ))
            }
            Ok(df) => {
                let produced = proven_non_null(df.logical_plan());
                out.extend(compare_columns(p, output, &produced));
                if let Some(l) = lineage.as_mut() {
                    l.insert(
                        output.name.to_string(),
                        crate::lineage::plan_lineage(df.logical_plan(), &input_set),
                    );
                }
            }
        }
        out.extend(check_sql_checks(p, output).await);
    }
    (out, lineage)
}

/// The schema `plan` produces, with columns a filter proves non-null
/// marked so: a column the top projection passes through (or that is
/// produced directly) that a `WHERE col IS NOT NULL` conjunct below names
/// (the same column of the same table). DataFusion keeps such columns
/// nullable in the schema.
pub fn proven_non_null(
    plan: &datafusion::logical_expr::LogicalPlan,
) -> datafusion::arrow::datatypes::Schema {
    use datafusion::logical_expr::{Expr, LogicalPlan, utils::split_conjunction};
    let schema = plan.schema().as_arrow().clone();
    // The column each output field passes through, if it is one.
    let passed: Vec<Option<datafusion::common::Column>> = match plan {
        LogicalPlan::Projection(p) => p
            .expr
            .iter()
            .map(|e| match e.clone().unalias() {
                Expr::Column(c) => Some(c),
                _ => None,
            })
            .collect(),
        _ => plan.schema().columns().into_iter().map(Some).collect(),
    };
    let mut proven = std::collections::BTreeSet::new();
    let mut node = Some(plan);
    while let Some(n) = node {
        if let LogicalPlan::Filter(f) = n {
            for c in split_conjunction(&f.predicate) {
                if let Expr::IsNotNull(inner) = c
                    && let Expr::Column(col) = inner.as_ref()
                {
                    proven.insert(col.clone());
                }
            }
        }
        node = match n {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::SubqueryAlias(_) => n.inputs().first().copied(),
            _ => None,
        };
    }
    let fields: Vec<datafusion::arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .zip(passed)
        .map(|(f, through)| {
            let f = f.as_ref().clone();
            match through {
                Some(column) if proven.contains(&column) => f.with_nullable(false),
                _ => f,
            }
        })
        .collect();
    datafusion::arrow::datatypes::Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Diagnostics for produced columns that do not fit the declared ones.
pub fn compare_columns(
    p: &ProductDescriptor,
    output: &Output,
    produced: &datafusion::arrow::datatypes::Schema,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let produced_names: Vec<&str> = produced
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    for col in &output.columns {
        let Ok(field) = produced.field_with_name(col.name.as_str()) else {
            out.push(
                Diagnostic::error(
                    "missing-column",
                    format!(
                        "output `{}` declares column `{}`, but its SQL does not produce it",
                        output.name.value, col.name.value
                    ),
                )
                .at(&p.file, col.name.span)
                .label("not produced by the SQL")
                .help(format!("the SQL produces: {}", produced_names.join(", "))),
            );
            continue;
        };
        if !accepts(&col.ty.value, field.data_type()) {
            let found = contract_type(field.data_type())
                .map_or_else(|| field.data_type().to_string(), |t| t.to_string());
            out.push(
                Diagnostic::error(
                    "type-mismatch",
                    format!(
                        "column `{}` is declared `{}`, but the SQL produces `{found}`",
                        col.name.value, col.ty.value
                    ),
                )
                .at(&p.file, col.ty.span)
                .help(format!(
                    "CAST it in the SQL (`CAST({} AS {})`), or declare `type: {found}`",
                    col.name.value,
                    sql_type(&col.ty.value)
                )),
            );
        }
        if !col.nullable && field.is_nullable() {
            out.push(
                Diagnostic::error("nullability-mismatch", format!("column `{}` is declared `nullable: false`, but the SQL can produce nulls", col.name.value))
                    .at(&p.file, col.name.span)
                    .help("declare the input column `nullable: false`, use COALESCE in the SQL, or declare `nullable: true`"),
            );
        }
    }
    for name in produced_names {
        if output.column(name).is_none() {
            out.push(
                Diagnostic::error(
                    "undeclared-column",
                    format!(
                        "the SQL of output `{}` produces column `{name}`, which is not declared",
                        output.name.value
                    ),
                )
                .at(&p.file, output.name.span)
                .help(format!(
                    "declare `{name}` under `columns:`, or remove it from the SELECT"
                )),
            );
        }
    }
    out
}

/// The type as DataFusion SQL spells it in a `CAST`.
fn sql_type(t: &mesh_spec::ColumnType) -> String {
    use mesh_spec::ColumnType as C;
    match t {
        C::String => "VARCHAR".into(),
        C::List(inner) => format!("{}[]", sql_type(inner)),
        C::Struct(fields) => format!(
            "STRUCT({})",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name, sql_type(&f.ty)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string().to_uppercase(),
    }
}

/// Plans each `check: sql` query against the output's declared schema.
async fn check_sql_checks(p: &ProductDescriptor, output: &Output) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let sql_checks: Vec<_> = output
        .quality
        .iter()
        .filter(|c| matches!(c.kind, CheckKind::Sql { .. }))
        .collect();
    if sql_checks.is_empty() {
        return out;
    }
    let ctx = transform_context(None);
    if let Ok(t) = MemTable::try_new(arrow_schema(&output.columns), vec![vec![]]) {
        let _ = ctx.register_table(output.name.as_str(), Arc::new(t));
    }
    for check in sql_checks {
        let CheckKind::Sql { query, .. } = &check.kind else {
            continue;
        };
        match ctx.sql(&query.value).await {
            Err(e) => out.push(
                Diagnostic::error(
                    "sql",
                    format!(
                        "check `{}` does not plan: {}",
                        check.name,
                        e.strip_backtrace()
                    ),
                )
                .at(&p.file, query.span)
                .help(format!(
                    "the query reads the output as table `{}`",
                    output.name.value
                )),
            ),
            Ok(df) => {
                let fields = df.schema().fields();
                if fields.len() != 1
                    || contract_type(fields[0].data_type()).is_none_or(|t| {
                        !t.is_orderable()
                            || t == mesh_spec::ColumnType::String
                            || t == mesh_spec::ColumnType::Date
                            || t == mesh_spec::ColumnType::Timestamp
                    })
                {
                    out.push(
                        Diagnostic::error("sql", format!("check `{}` must return one numeric column", check.name))
                            .at(&p.file, query.span)
                            .help("for example `SELECT count(*) FROM orders WHERE amount < 0` with `must_be: 0`"),
                    );
                }
            }
        }
    }
    out
}
