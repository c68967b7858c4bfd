//! The lineage of one expression over the columns of its input, and the
//! rule deciding which functions carry a value (docs/lineage.md keeps the
//! same table).

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, WindowFunctionDefinition};
use datafusion::scalar::ScalarValue;

use super::{Source, Subtype};

/// How a value flows along one DIRECT path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub subtype: Subtype,
    /// The path cannot carry the input's value.
    pub masking: bool,
}

impl Step {
    pub const IDENTITY: Step = Step {
        subtype: Subtype::Identity,
        masking: false,
    };

    /// This step followed by an operation of `subtype` that masks or not.
    fn then(self, subtype: Subtype, masking: bool) -> Step {
        Step {
            subtype: self.subtype.max(subtype),
            masking: self.masking || masking,
        }
    }

    /// Two paths from one source to one column: the value flows if either
    /// carries it.
    fn or(self, other: Step) -> Step {
        Step {
            subtype: self.subtype.max(other.subtype),
            masking: self.masking && other.masking,
        }
    }
}

/// What one column (of a plan node, or an expression) depends on.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Lineage {
    pub direct: BTreeMap<Source, Step>,
    pub indirect: BTreeMap<Source, BTreeSet<Subtype>>,
}

impl Lineage {
    pub fn add_direct(&mut self, source: Source, step: Step) {
        let merged = match self.direct.get(&source) {
            Some(known) => known.or(step),
            None => step,
        };
        self.direct.insert(source, merged);
    }

    pub fn add_indirect(&mut self, source: Source, subtype: Subtype) {
        self.indirect.entry(source).or_default().insert(subtype);
    }

    /// Everything `other` depends on, as it depends on it.
    pub fn merge(&mut self, other: Lineage) {
        for (source, step) in other.direct {
            self.add_direct(source, step);
        }
        for (source, subtypes) in other.indirect {
            self.indirect.entry(source).or_default().extend(subtypes);
        }
    }

    /// This lineage passed through an operation: DIRECT paths gain
    /// `subtype` (and masking), INDIRECT ones stay.
    fn through(mut self, subtype: Subtype, masking: bool) -> Lineage {
        for step in self.direct.values_mut() {
            *step = step.then(subtype, masking);
        }
        self
    }

    /// Every column this depends on, directly or not, as INDIRECT
    /// `subtype` (a filter's predicate, a join key).
    pub fn into_indirect(self, subtype: Subtype) -> Lineage {
        let mut out = Lineage {
            direct: BTreeMap::new(),
            indirect: self.indirect,
        };
        for source in self.direct.into_keys() {
            out.add_indirect(source, subtype);
        }
        out
    }
}

/// Functions whose result cannot hold an argument's value. Every other
/// function carries (an unknown function is assumed to).
const MASKING: &[&str] = &[
    // Counts.
    "count",
    "approx_distinct",
    "regr_count",
    "grouping",
    // Lengths and sizes.
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "array_length",
    "cardinality",
    // Tests.
    "starts_with",
    "ends_with",
    "isnan",
    "iszero",
    "array_has",
    "array_has_all",
    "array_has_any",
    "regexp_like",
    "contains",
    "bool_and",
    "bool_or",
    // Positions.
    "strpos",
    "instr",
    "array_position",
    // Hashes.
    "md5",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "digest",
];

/// Whether a function (scalar, aggregate or window, by name) passes an
/// argument's value on.
pub fn carries_value(name: &str) -> bool {
    !MASKING.contains(&name.to_ascii_lowercase().as_str())
}

/// Operators whose result is a truth value (or an order), never an
/// operand's value.
fn is_test(op: &Operator) -> bool {
    use Operator::*;
    matches!(
        op,
        Eq | NotEq
            | Lt
            | LtEq
            | Gt
            | GtEq
            | And
            | Or
            | IsDistinctFrom
            | IsNotDistinctFrom
            | RegexMatch
            | RegexIMatch
            | RegexNotMatch
            | RegexNotIMatch
            | LikeMatch
            | ILikeMatch
            | NotLikeMatch
            | NotILikeMatch
            | AtArrow
            | ArrowAt
            | AtQuestion
            | Question
            | QuestionAnd
            | QuestionPipe
    )
}

/// Resolves a column of the input to what it depends on, and a subquery
/// to what its single column depends on.
pub(crate) trait Scope {
    fn column(&self, schema: &DFSchema, column: &datafusion::common::Column) -> Lineage;
    /// A column of an enclosing query, named by a correlated subquery.
    fn outer(&self, column: &datafusion::common::Column) -> Lineage;
    /// What each column of a subquery over `schema`'s query depends on,
    /// and what decides its rows.
    fn subquery(
        &self,
        schema: &DFSchema,
        plan: &datafusion::logical_expr::LogicalPlan,
    ) -> (Vec<Lineage>, Lineage);
}

/// The lineage of `e`, an expression over `schema`.
pub(crate) fn lineage(e: &Expr, schema: &DFSchema, scope: &dyn Scope) -> Lineage {
    let of = |e: &Expr| lineage(e, schema, scope);
    let all = |es: &[Expr]| {
        let mut l = Lineage::default();
        for e in es {
            l.merge(of(e));
        }
        l
    };
    match e {
        Expr::Column(c) => scope.column(schema, c),
        Expr::Alias(a) => of(&a.expr),
        Expr::Literal(..) | Expr::Placeholder(_) | Expr::ScalarVariable(..) => Lineage::default(),
        Expr::OuterReferenceColumn(_, c) => scope.outer(c),
        Expr::Cast(c) => of(&c.expr).through(Subtype::Transformation, false),
        Expr::TryCast(c) => of(&c.expr).through(Subtype::Transformation, false),
        Expr::Negative(inner)
        | Expr::Unnest(datafusion::logical_expr::expr::Unnest { expr: inner, .. }) => {
            of(inner).through(Subtype::Transformation, false)
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let mut l = of(left);
            l.merge(of(right));
            l.through(Subtype::Transformation, is_test(op))
        }
        Expr::Like(like) | Expr::SimilarTo(like) => {
            let mut l = of(&like.expr);
            l.merge(of(&like.pattern));
            l.through(Subtype::Transformation, true)
        }
        Expr::Not(inner)
        | Expr::IsNull(inner)
        | Expr::IsNotNull(inner)
        | Expr::IsTrue(inner)
        | Expr::IsFalse(inner)
        | Expr::IsUnknown(inner)
        | Expr::IsNotTrue(inner)
        | Expr::IsNotFalse(inner)
        | Expr::IsNotUnknown(inner) => of(inner).through(Subtype::Transformation, true),
        Expr::Between(b) => {
            let mut l = of(&b.expr);
            l.merge(of(&b.low));
            l.merge(of(&b.high));
            l.through(Subtype::Transformation, true)
        }
        Expr::InList(i) => {
            let mut l = of(&i.expr);
            l.merge(all(&i.list));
            l.through(Subtype::Transformation, true)
        }
        Expr::Case(case) => {
            // The branches' values flow; the tests decide which.
            let mut l = Lineage::default();
            let mut tests = Lineage::default();
            if let Some(base) = &case.expr {
                tests.merge(of(base));
            }
            for (when, then) in &case.when_then_expr {
                tests.merge(of(when));
                l.merge(of(then));
            }
            if let Some(otherwise) = &case.else_expr {
                l.merge(of(otherwise));
            }
            let mut l = l.through(Subtype::Transformation, false);
            l.merge(tests.into_indirect(Subtype::Conditional));
            l
        }
        Expr::ScalarFunction(f) => {
            let name = f.func.name();
            if name == "get_field"
                && let [base, Expr::Literal(ScalarValue::Utf8(Some(field)), _)] = f.args.as_slice()
            {
                return nested(of(base), field);
            }
            all(&f.args).through(Subtype::Transformation, !carries_value(name))
        }
        Expr::AggregateFunction(AggregateFunction { func, params }) => {
            let mut l =
                all(&params.args).through(Subtype::Aggregation, !carries_value(func.name()));
            if let Some(filter) = &params.filter {
                l.merge(of(filter).into_indirect(Subtype::Filter));
            }
            for sort in &params.order_by {
                l.merge(of(&sort.expr).into_indirect(Subtype::Sort));
            }
            l
        }
        Expr::WindowFunction(w) => window(w, &of),
        Expr::ScalarSubquery(s) => {
            let (fields, rows) = scope.subquery(schema, &s.subquery);
            let mut l = Lineage::default();
            for f in fields {
                l.merge(f);
            }
            let mut l = l.through(Subtype::Transformation, false);
            l.merge(Lineage {
                direct: BTreeMap::new(),
                indirect: rows.indirect,
            });
            l
        }
        Expr::InSubquery(i) => {
            let mut l = of(&i.expr);
            l.merge(subquery_all(scope, schema, &i.subquery.subquery));
            l.through(Subtype::Transformation, true)
        }
        Expr::Exists(x) => {
            subquery_all(scope, schema, &x.subquery.subquery).through(Subtype::Transformation, true)
        }
        Expr::GroupingSet(set) => {
            all(&set.distinct_expr().into_iter().cloned().collect::<Vec<_>>())
        }
        // Anything else: every column it names, as a value that may flow.
        other => {
            let mut l = Lineage::default();
            for c in other.column_refs() {
                l.merge(scope.column(schema, c));
            }
            l.through(Subtype::Transformation, false)
        }
    }
}

/// A subquery used as a test: everything it depends on.
fn subquery_all(
    scope: &dyn Scope,
    schema: &DFSchema,
    plan: &datafusion::logical_expr::LogicalPlan,
) -> Lineage {
    let (fields, rows) = scope.subquery(schema, plan);
    let mut l = rows;
    for f in fields {
        l.merge(f);
    }
    l
}

/// `base['field']`: a copied nested field stays a copy, of `column.field`.
fn nested(base: Lineage, field: &str) -> Lineage {
    let copied = base.direct.len() == 1
        && base
            .direct
            .values()
            .all(|s| s.subtype == Subtype::Identity && !s.masking);
    if !copied {
        return base.through(Subtype::Transformation, false);
    }
    Lineage {
        direct: base
            .direct
            .into_iter()
            .map(|(s, step)| {
                (
                    Source {
                        input: s.input,
                        column: format!("{}.{field}", s.column),
                    },
                    step,
                )
            })
            .collect(),
        indirect: base.indirect,
    }
}

fn window(w: &WindowFunction, of: &dyn Fn(&Expr) -> Lineage) -> Lineage {
    let params = &w.params;
    let (subtype, name) = match &w.fun {
        WindowFunctionDefinition::AggregateUDF(f) => (Subtype::Aggregation, f.name().to_string()),
        WindowFunctionDefinition::WindowUDF(f) => (Subtype::Transformation, f.name().to_string()),
    };
    let mut l = Lineage::default();
    for a in &params.args {
        l.merge(of(a));
    }
    let mut l = l.through(subtype, !carries_value(&name));
    for p in &params.partition_by {
        l.merge(of(p).into_indirect(Subtype::Window));
    }
    for s in &params.order_by {
        l.merge(of(&s.expr).into_indirect(Subtype::Window));
    }
    if let Some(filter) = &params.filter {
        l.merge(of(filter).into_indirect(Subtype::Filter));
    }
    l
}
