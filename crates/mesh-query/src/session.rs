//! Sessions: the consumer query session, and sessions for transforms.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::catalog::CatalogProvider;
use datafusion::catalog::information_schema::{INFORMATION_SCHEMA, InformationSchemaProvider};
use mesh_spec::ProductRef;

use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use mesh_catalog::CatalogStore;

use crate::broadcast::JoinBroadcast;
use crate::conjuncts::ConjunctOrder;
use crate::decimal::DecimalArithmetic;
use crate::described::Described;
use crate::error::{QueryError, Result};
use crate::guard::AccessGuard;
use crate::provider::{ADDRESS_SCHEMA, CATALOG_NAME, MeshCatalog, StringLayout};
use crate::stages::FilterStages;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;

fn config() -> SessionConfig {
    SessionConfig::new()
        // Served by the mesh catalog's own `information_schema` schema.
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(false)
        .with_default_catalog_and_schema(CATALOG_NAME, ADDRESS_SCHEMA)
        // Tables are scanned a row group at a time (`rowgroups`); byte
        // ranges per partition would undo that.
        .with_repartition_file_scans(false)
}

/// The session every consumer query runs in: CLI and servers alike.
///
/// It is read-only: DDL, DML and session statements are refused.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    names: Vec<String>,
    lifecycle: Arc<crate::provider::Lifecycle>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("names", &self.names)
            .finish()
    }
}

impl QueryEngine {
    /// A session whose every table read is decided by `guard` (the
    /// principal's access policy), reading strings in `strings`.
    ///
    /// Only the outputs of `visible` products exist in the session (all
    /// when `None`): in its names, hints and `information_schema`. Its
    /// operators draw memory from `memory` (unbounded when `None`).
    pub async fn new(
        catalog: Arc<dyn CatalogStore>,
        guard: Arc<dyn AccessGuard>,
        strings: StringLayout,
        visible: Option<&BTreeSet<ProductRef>>,
        memory: Option<Arc<dyn MemoryPool>>,
    ) -> Result<Self> {
        let runtime = match memory {
            Some(pool) => RuntimeEnvBuilder::new()
                .with_memory_pool(pool)
                .build_arc()
                .map_err(QueryError::DataFusion)?,
            None => Arc::new(RuntimeEnv::default()),
        };
        let mesh =
            Arc::new(MeshCatalog::load(catalog, runtime.clone(), guard, strings, visible).await?);
        let names = mesh.sql_names();
        let lifecycle = mesh.lifecycle();
        let state = SessionStateBuilder::new()
            .with_config(config())
            .with_runtime_env(runtime)
            .with_default_features()
            .with_optimizer_rules(crate::joinorder::rules())
            .with_optimizer_rule(Arc::new(DecimalArithmetic))
            .with_optimizer_rule(Arc::new(ConjunctOrder))
            .with_physical_optimizer_rules(physical_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        // `information_schema` describes the declared schemas of the
        // tables the session holds, without deciding a read of each (a
        // denied table must not fail the whole listing).
        mesh.register_schema(
            INFORMATION_SCHEMA,
            Arc::new(InformationSchemaProvider::new(Arc::new(Described::over(
                mesh.clone(),
            )))),
        )
        .map_err(|e| QueryError::Plan {
            message: e.strip_backtrace(),
            hint: None,
        })?;
        ctx.register_catalog(CATALOG_NAME, mesh);
        Ok(QueryEngine {
            ctx,
            names,
            lifecycle,
        })
    }

    /// Plans a read-only SQL statement.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.ctx
            .sql_with_options(sql, read_only())
            .await
            .map_err(|e| explain(e, &self.names))
    }

    /// Plans a statement a front end has already parsed (the Postgres wire
    /// server parses with Postgres' dialect rules); the same read-only
    /// rules apply. `$1`-style placeholders stay in the plan until
    /// [`DataFrame::with_param_values`] binds them, so a bound value is
    /// never spliced into SQL text.
    pub async fn plan(&self, statement: datafusion::sql::parser::Statement) -> Result<DataFrame> {
        let state = self.ctx.state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| explain(e, &self.names))?;
        read_only()
            .verify_plan(&plan)
            .map_err(|e| explain(e, &self.names))?;
        Ok(DataFrame::new(state, plan))
    }

    /// Warnings about the products the planned queries read (deprecations).
    pub fn warnings(&self) -> Vec<String> {
        self.lifecycle.warnings()
    }

    /// Every SQL name of a published or deployed output.
    pub fn sql_names(&self) -> &[String] {
        &self.names
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A parser's error as a sentence: `syntax error at line 1, column 8:
/// expected an expression, found the end of the statement`.
pub fn syntax_sentence(e: &datafusion::sql::sqlparser::parser::ParserError) -> String {
    use datafusion::sql::sqlparser::parser::ParserError as P;
    let raw = match e {
        P::ParserError(m) | P::TokenizerError(m) => m.as_str(),
        P::RecursionLimitExceeded => {
            return "syntax error: the statement is nested too deeply".to_string();
        }
    };
    // sqlparser: `Expected: X, found: Y at Line: L, Column: C`.
    let (what, at) = match raw.rsplit_once(" at Line: ") {
        Some((what, at)) => (what, Some(at.replace(", Column: ", ", column "))),
        None => (raw, None),
    };
    let what = what
        .replace("Expected: ", "expected ")
        .replace(", found: EOF", ", found the end of the statement")
        .replace(", found: ", ", found `")
        .to_string();
    let what = if what.contains(", found `") {
        format!("{what}`")
    } else {
        what
    };
    match at {
        Some(at) => format!("syntax error at line {at}: {what}"),
        None => format!("syntax error: {what}"),
    }
}

/// Turns a planning error into a user error with a hint where one helps.
pub fn explain(e: DataFusionError, names: &[String]) -> QueryError {
    if let DataFusionError::SQL(parser, _) = &e {
        return QueryError::Plan {
            message: syntax_sentence(parser),
            hint: Some(
                "check the statement at that point; queries are one read-only SELECT".into(),
            ),
        };
    }
    let message = e.strip_backtrace();
    let missing = missing_table(&message);
    let hint = if let Some(missing) = missing.clone() {
        let bare = missing
            .strip_prefix(&format!("{CATALOG_NAME}.{ADDRESS_SCHEMA}."))
            .or_else(|| missing.strip_prefix(&format!("{CATALOG_NAME}.")))
            .unwrap_or(&missing)
            .to_string();
        let best = names
            .iter()
            .map(|n| (strsim::jaro_winkler(&bare, n), n))
            .filter(|(s, _)| *s > 0.75)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        Some(match best {
            Some((_, n)) => {
                format!("did you mean `{n}`? Outputs are addressed as <domain>.<output>")
            }
            None if names.is_empty() => {
                "no products are deployed yet; run `mesh deploy` and `mesh run`".to_string()
            }
            None => format!(
                "outputs are addressed as <domain>.<output>; known: {}",
                names
                    .iter()
                    .take(12)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    } else if message.contains("DDL not supported")
        || message.contains("DML not supported")
        || message.contains("Statement not supported")
    {
        Some("queries are read-only; products change only through `mesh run`".to_string())
    } else {
        None
    };
    match e {
        DataFusionError::External(inner) => match inner.downcast::<QueryError>() {
            Ok(q) => *q,
            Err(other) => QueryError::Plan {
                message: other.to_string(),
                hint,
            },
        },
        _ if missing.is_some() => QueryError::UnknownTable { message, hint },
        _ => QueryError::Plan { message, hint },
    }
}

fn missing_table(message: &str) -> Option<String> {
    let start = message.find("table '")? + "table '".len();
    let rest = &message[start..];
    let end = rest.find('\'')?;
    rest[end..]
        .contains("not found")
        .then(|| rest[..end].to_string())
}

/// DataFusion's physical optimizer rules with mesh's own:
/// [`JoinBroadcast`] right after DataFusion's join selection (before
/// distribution is enforced, so a broadcast join's probe side is never
/// repartitioned), and [`FilterStages`] last, before the plan's final
/// sanity check.
pub(crate) fn physical_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = PhysicalOptimizer::new().rules;
    let position = |rules: &[Arc<dyn PhysicalOptimizerRule + Send + Sync>], name: &str| {
        rules.iter().position(|r| r.name() == name)
    };
    let at = position(&rules, "join_selection").map_or(0, |i| i + 1);
    rules.insert(at, Arc::new(JoinBroadcast));
    let at = position(&rules, "SanityCheckPlan").unwrap_or(rules.len());
    rules.insert(at, Arc::new(FilterStages));
    rules
}

/// A session for running a transform: inputs are registered by their local names.
pub fn transform_context(runtime: Option<Arc<RuntimeEnv>>) -> SessionContext {
    let mut config = SessionConfig::new().with_information_schema(false);
    // Spans let a planning error point at the SQL that caused it.
    config.options_mut().sql_parser.collect_spans = true;
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_optimizer_rules(crate::joinorder::rules())
        .with_optimizer_rule(Arc::new(DecimalArithmetic))
        .with_optimizer_rule(Arc::new(ConjunctOrder))
        .with_physical_optimizer_rules(physical_rules());
    if let Some(rt) = runtime {
        builder = builder.with_runtime_env(rt);
    }
    SessionContext::new_with_state(builder.build())
}

#[cfg(test)]
mod tests {
    use super::syntax_sentence;
    use datafusion::sql::sqlparser::parser::ParserError as P;

    #[test]
    fn a_syntax_error_reads_as_a_sentence() {
        let e =
            P::ParserError("Expected: an SQL statement, found: SELEC at Line: 1, Column: 1".into());
        assert_eq!(
            syntax_sentence(&e),
            "syntax error at line 1, column 1: expected an SQL statement, found `SELEC`"
        );
        let e = P::ParserError("Expected: an expression, found: EOF".into());
        assert_eq!(
            syntax_sentence(&e),
            "syntax error: expected an expression, found the end of the statement"
        );
    }
}
