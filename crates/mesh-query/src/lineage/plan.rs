//! The lineage of each column of a logical plan node, bottom up.

use std::collections::{BTreeMap, BTreeSet};

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

/// Resolves columns against one child node.
struct Child<'a> {
    node: &'a Node,
    inputs: &'a BTreeSet<&'a str>,
}

impl Scope for Child<'_> {
    fn column(&self, schema: &DFSchema, column: &Column) -> Lineage {
        match schema.index_of_column(column) {
            Ok(i) => self.node.fields.get(i).cloned().unwrap_or_default(),
            Err(_) => Lineage::default(),
        }
    }

    fn subquery(&self, plan: &LogicalPlan) -> (Vec<Lineage>, Lineage) {
        let n = node(plan, self.inputs);
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
fn project(
    exprs: &[Expr],
    input: &LogicalPlan,
    child: &Node,
    inputs: &BTreeSet<&str>,
) -> Vec<Lineage> {
    let scope = Child {
        node: child,
        inputs,
    };
    exprs
        .iter()
        .map(|e| lineage(e, input.schema(), &scope))
        .collect()
}

/// Every column of a node nothing here understands depends on every
/// column below it, as a value that may flow: over-reporting is the safe
/// mistake for classifications.
fn opaque(plan: &LogicalPlan, inputs: &BTreeSet<&str>) -> Node {
    let mut all = Lineage::default();
    let mut out = Node::default();
    for child in plan.inputs() {
        let c = node(child, inputs);
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

pub(crate) fn node(plan: &LogicalPlan, inputs: &BTreeSet<&str>) -> Node {
    let n = derive(plan, inputs);
    if n.fields.len() == plan.schema().fields().len() {
        n
    } else {
        opaque(plan, inputs)
    }
}

fn derive(plan: &LogicalPlan, inputs: &BTreeSet<&str>) -> Node {
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
            if !inputs.contains(table) {
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
            let child = node(&p.input, inputs);
            let mut out = Node {
                fields: project(&p.expr, &p.input, &child, inputs),
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            out
        }
        LogicalPlan::Filter(f) => {
            let child = node(&f.input, inputs);
            let predicate = project(std::slice::from_ref(&f.predicate), &f.input, &child, inputs);
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
            let child = node(&a.input, inputs);
            let groups = project(&a.group_expr, &a.input, &child, inputs);
            let aggregates = project(&a.aggr_expr, &a.input, &child, inputs);
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
                    inputs,
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
            let child = node(&w.input, inputs);
            let mut fields = child.fields.clone();
            fields.extend(project(&w.window_expr, &w.input, &child, inputs));
            let mut out = Node {
                fields,
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            out
        }
        LogicalPlan::Sort(s) => {
            let child = node(&s.input, inputs);
            let keys: Vec<Expr> = s.expr.iter().map(|k| k.expr.clone()).collect();
            let mut out = Node {
                fields: child.fields.clone(),
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            for l in project(&keys, &s.input, &child, inputs) {
                out.rows_from(l, Subtype::Sort);
            }
            out
        }
        LogicalPlan::Join(j) => {
            let left = node(&j.left, inputs);
            let right = node(&j.right, inputs);
            let mut out = Node::default();
            out.rows_of(&left);
            out.rows_of(&right);
            for (l, r) in &j.on {
                for side in project(std::slice::from_ref(l), &j.left, &left, inputs) {
                    out.rows_from(side, Subtype::Join);
                }
                for side in project(std::slice::from_ref(r), &j.right, &right, inputs) {
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
                    let scope = Child {
                        node: &both,
                        inputs,
                    };
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
                let child = node(input, inputs);
                out.rows_of(&child);
                for (f, c) in out.fields.iter_mut().zip(child.fields) {
                    f.merge(c);
                }
            }
            out
        }
        LogicalPlan::Distinct(Distinct::All(input)) => {
            let child = node(input, inputs);
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
            let child = node(&on.input, inputs);
            let mut out = Node {
                fields: project(&on.select_expr, &on.input, &child, inputs),
                rows: BTreeMap::new(),
            };
            out.rows_of(&child);
            for l in project(&on.on_expr, &on.input, &child, inputs) {
                out.rows_from(l, Subtype::GroupBy);
            }
            if let Some(sort) = &on.sort_expr {
                let keys: Vec<Expr> = sort.iter().map(|k| k.expr.clone()).collect();
                for l in project(&keys, &on.input, &child, inputs) {
                    out.rows_from(l, Subtype::Sort);
                }
            }
            out
        }
        LogicalPlan::SubqueryAlias(a) => node(&a.input, inputs),
        LogicalPlan::Subquery(s) => node(&s.subquery, inputs),
        LogicalPlan::Limit(l) => node(&l.input, inputs),
        LogicalPlan::Repartition(r) => node(&r.input, inputs),
        LogicalPlan::Unnest(u) => {
            let child = node(&u.input, inputs);
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
                let child = node(term, inputs);
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
        _ => opaque(plan, inputs),
    }
}
