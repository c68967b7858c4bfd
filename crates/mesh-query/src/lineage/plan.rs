//! The lineage of each column of a logical plan node, bottom up.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan};

use super::expr::{Lineage, Scope, Step, lineage};
use super::{Source, Subtype};

/// What each column of a node depends on, and what decides its rows
/// (INDIRECT for every column).
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub fields: Vec<Lineage>,
    pub rows: BTreeMap<Source, BTreeSet<Subtype>>,
}

impl Node {
    fn rows_from(&mut self, l: Lineage, subtype: Subtype) {
        let l = l.into_indirect(subtype);
        for (source, subtypes) in l.indirect {
            self.rows.entry(source).or_default().extend(subtypes);
        }
    }

    fn rows_of(&mut self, child: &Node) {
        for (source, subtypes) in &child.rows {
            self.rows
                .entry(source.clone())
                .or_default()
                .extend(subtypes.iter().copied());
        }
    }
}

/// What a plan is derived in: the product's inputs, and the queries a
/// subquery is nested in (innermost first) with what their columns depend
/// on, for the columns a correlated subquery names.
pub(crate) struct Cx<'a> {
    pub inputs: &'a BTreeSet<&'a str>,
    pub outer: Vec<(Arc<DFSchema>, Vec<Lineage>)>,
}

impl<'a> Cx<'a> {
    pub fn new(inputs: &'a BTreeSet<&'a str>) -> Self {
        Cx {
            inputs,
            outer: Vec::new(),
        }
    }
}

/// Resolves columns against one child node.
struct Child<'a> {
    node: &'a Node,
    cx: &'a Cx<'a>,
}

impl Scope for Child<'_> {
    fn column(&self, schema: &DFSchema, column: &Column) -> Lineage {
        match schema.index_of_column(column) {
            Ok(i) => self.node.fields.get(i).cloned().unwrap_or_default(),
            Err(_) => Lineage::default(),
        }
    }

    fn outer(&self, column: &Column) -> Lineage {
        self.cx
            .outer
            .iter()
            .find_map(|(schema, fields)| {
                let i = schema.index_of_column(column).ok()?;
                fields.get(i).cloned()
            })
            .unwrap_or_default()
    }

    fn subquery(&self, schema: &DFSchema, plan: &LogicalPlan) -> (Vec<Lineage>, Lineage) {
        let mut outer = vec![(Arc::new(schema.clone()), self.node.fields.clone())];
        outer.extend(self.cx.outer.iter().cloned());
        let cx = Cx {
            inputs: self.cx.inputs,
            outer,
        };
        let n = node(plan, &cx);
        (
            n.fields,
            Lineage {
                direct: BTreeMap::new(),
                indirect: n.rows,
            },
        )
    }
}

/// The lineage of the expressions `exprs` over `input`, each a column.
fn project(exprs: &[Expr], input: &LogicalPlan, child: &Node, cx: &Cx<'_>) -> Vec<Lineage> {
    let scope = Child { node: child, cx };
    exprs
        .iter()
        .map(|e| lineage(e, input.schema(), &scope))
        .collect()
}

/// Every column of a node nothing here understands depends on every
/// column below it, as a value that may flow: over-reporting is the safe
/// mistake for classifications.
fn opaque(plan: &LogicalPlan, cx: &Cx<'_>) -> Node {
    let mut all = Lineage::default();
    let mut out = Node::default();
    for child in plan.inputs() {
        let c = node(child, cx);
        for f in c.fields.iter().cloned() {
            all.merge(f);
        }
        out.rows_of(&c);
    }
    for step in all.direct.values_mut() {
        step.subtype = step.subtype.max(Subtype::Transformation);
    }
    out.fields = vec![all; plan.schema().fields().len()];
    out
}

pub(crate) fn node(plan: &LogicalPlan, cx: &Cx<'_>) -> Node {
    let n = derive(plan, cx);
    if n.fields.len() == plan.schema().fields().len() {
        n
    } else {
        opaque(plan, cx)
    }
}

fn derive(plan: &LogicalPlan, cx: &Cx<'_>) -> Node {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let table = scan.table_name.table();
            let mut out = Node::default();
            let fields: Vec<String> = plan
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            if !cx.inputs.contains(table) {
                out.fields = vec![Lineage::default(); fields.len()];
                return out;
            }
            let copy = |column: &str| {
                let mut l = Lineage::default();
                l.add_direct(
                    Source {
                        input: table.to_string(),
                        column: column.to_string(),
                    },
                    Step::IDENTITY,
                );
                l
            };
            out.fields = fields.iter().map(|f| copy(f)).collect();
            for f in &scan.filters {
                for c in f.column_refs() {
                    out.rows_from(copy(&c.name), Subtype::Filter);
                }
            }
            out
        }
        LogicalPlan::Projection(p) => {
            let child = node(&p.input, cx);
            let mut out = Node {
                fields: project(&p.expr, &p.input, &child, cx),
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            out
        }
        LogicalPlan::Filter(f) => {
            let child = node(&f.input, cx);
            let predicate = project(std::slice::from_ref(&f.predicate), &f.input, &child, cx);
            let mut out = Node {
                fields: child.fields.clone(),
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            for l in predicate {
                out.rows_from(l, Subtype::Filter);
            }
            out
        }
        LogicalPlan::Aggregate(a) => {
            let child = node(&a.input, cx);
            let groups = project(&a.group_expr, &a.input, &child, cx);
            let aggregates = project(&a.aggr_expr, &a.input, &child, cx);
            let mut out = Node::default();
            out.rows_of(&child);
            for g in &groups {
                out.rows_from(g.clone(), Subtype::GroupBy);
            }
            // A grouping set yields one column per distinct expression,
            // plus the grouping id.
            let mut fields: Vec<Lineage> = match a.group_expr.as_slice() {
                [Expr::GroupingSet(set)] => project(
                    &set.distinct_expr().into_iter().cloned().collect::<Vec<_>>(),
                    &a.input,
                    &child,
                    cx,
                ),
                _ => groups,
            };
            while fields.len() + aggregates.len() < plan.schema().fields().len() {
                fields.push(Lineage::default()); // the grouping id
            }
            fields.extend(aggregates);
            out.fields = fields;
            out
        }
        LogicalPlan::Window(w) => {
            let child = node(&w.input, cx);
            let mut fields = child.fields.clone();
            fields.extend(project(&w.window_expr, &w.input, &child, cx));
            let mut out = Node {
                fields,
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            out
        }
        LogicalPlan::Sort(s) => {
            let child = node(&s.input, cx);
            let keys: Vec<Expr> = s.expr.iter().map(|k| k.expr.clone()).collect();
            let mut out = Node {
                fields: child.fields.clone(),
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            for l in project(&keys, &s.input, &child, cx) {
                out.rows_from(l, Subtype::Sort);
            }
            out
        }
        LogicalPlan::Join(j) => {
            let left = node(&j.left, cx);
            let right = node(&j.right, cx);
            let mut out = Node::default();
            out.rows_of(&left);
            out.rows_of(&right);
            for (l, r) in &j.on {
                for side in project(std::slice::from_ref(l), &j.left, &left, cx) {
                    out.rows_from(side, Subtype::Join);
                }
                for side in project(std::slice::from_ref(r), &j.right, &right, cx) {
                    out.rows_from(side, Subtype::Join);
                }
            }
            if let Some(filter) = &j.filter {
                // Over the join's own (left then right) columns.
                let both = Node {
                    fields: left.fields.iter().chain(&right.fields).cloned().collect(),
                    rows: BTreeMap::new(),
                };
                if let Ok(schema) = j.left.schema().join(j.right.schema()) {
                    let scope = Child { node: &both, cx };
                    out.rows_from(lineage(filter, &schema, &scope), Subtype::Join);
                }
            }
            out.fields = match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti => left.fields,
                JoinType::RightSemi | JoinType::RightAnti => right.fields,
                JoinType::LeftMark => {
                    let mut f = left.fields;
                    f.push(Lineage::default());
                    f
                }
                JoinType::RightMark => {
                    let mut f = right.fields;
                    f.push(Lineage::default());
                    f
                }
                _ => left.fields.into_iter().chain(right.fields).collect(),
            };
            out
        }
        LogicalPlan::Union(u) => {
            let mut out = Node {
                fields: vec![Lineage::default(); plan.schema().fields().len()],
                rows: BTreeMap::new(),
            };
            for input in &u.inputs {
                let child = node(input, cx);
                out.rows_of(&child);
                for (f, c) in out.fields.iter_mut().zip(child.fields) {
                    f.merge(c);
                }
            }
            out
        }
        LogicalPlan::Distinct(Distinct::All(input)) => {
            let child = node(input, cx);
            let mut out = Node {
                fields: child.fields.clone(),
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            for f in child.fields {
                out.rows_from(f, Subtype::GroupBy);
            }
            out
        }
        LogicalPlan::Distinct(Distinct::On(on)) => {
            let child = node(&on.input, cx);
            let mut out = Node {
                fields: project(&on.select_expr, &on.input, &child, cx),
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            for l in project(&on.on_expr, &on.input, &child, cx) {
                out.rows_from(l, Subtype::GroupBy);
            }
            if let Some(sort) = &on.sort_expr {
                let keys: Vec<Expr> = sort.iter().map(|k| k.expr.clone()).collect();
                for l in project(&keys, &on.input, &child, cx) {
                    out.rows_from(l, Subtype::Sort);
                }
            }
            out
        }
        LogicalPlan::SubqueryAlias(a) => node(&a.input, cx),
        LogicalPlan::Subquery(s) => node(&s.subquery, cx),
        LogicalPlan::Limit(l) => node(&l.input, cx),
        LogicalPlan::Repartition(r) => node(&r.input, cx),
        LogicalPlan::Unnest(u) => {
            let child = node(&u.input, cx);
            let unnested: BTreeSet<usize> = u
                .list_type_columns
                .iter()
                .map(|(i, _)| *i)
                .chain(u.struct_type_columns.iter().copied())
                .collect();
            let mut out = Node::default();
            out.rows_of(&child);
            out.fields = u
                .dependency_indices
                .iter()
                .map(|i| {
                    let f = child.fields.get(*i).cloned().unwrap_or_default();
                    if unnested.contains(i) {
                        let mut f = f;
                        for step in f.direct.values_mut() {
                            step.subtype = step.subtype.max(Subtype::Transformation);
                        }
                        f
                    } else {
                        f
                    }
                })
                .collect();
            out
        }
        LogicalPlan::RecursiveQuery(r) => {
            let mut out = Node {
                fields: vec![Lineage::default(); plan.schema().fields().len()],
                rows: BTreeMap::new(),
            };
            for term in [&r.static_term, &r.recursive_term] {
                let child = node(term, cx);
                out.rows_of(&child);
                for (f, c) in out.fields.iter_mut().zip(child.fields) {
                    f.merge(c);
                }
            }
            out
        }
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => Node {
            fields: vec![Lineage::default(); plan.schema().fields().len()],
            rows: BTreeMap::new(),
        },
        _ => opaque(plan, cx),
    }
}
