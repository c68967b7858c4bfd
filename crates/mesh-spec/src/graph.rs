//! The dependency graph of products: build order and cycles.

use std::collections::{BTreeMap, BTreeSet};

use crate::name::ProductRef;

/// A dependency cycle, listed in order with the first product repeated at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<ProductRef>);

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(" → "))
    }
}

/// Orders products so that every product comes after the products it reads.
///
/// `edges` maps each product to the products it reads; products read but not
/// listed as keys are treated as already built. Ties break alphabetically, so
/// the order is deterministic.
pub fn build_order(
    edges: &BTreeMap<ProductRef, BTreeSet<ProductRef>>,
) -> Result<Vec<ProductRef>, Cycle> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        node: &ProductRef,
        edges: &BTreeMap<ProductRef, BTreeSet<ProductRef>>,
        marks: &mut BTreeMap<ProductRef, Mark>,
        stack: &mut Vec<ProductRef>,
        out: &mut Vec<ProductRef>,
    ) -> Result<(), Cycle> {
        match marks.get(node) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|p| p == node).unwrap_or(0);
                let mut cycle: Vec<ProductRef> = stack[start..].to_vec();
                cycle.push(node.clone());
                return Err(Cycle(cycle));
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Visiting);
        stack.push(node.clone());
        if let Some(deps) = edges.get(node) {
            for dep in deps {
                if edges.contains_key(dep) {
                    visit(dep, edges, marks, stack, out)?;
                }
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        out.push(node.clone());
        Ok(())
    }

    let mut marks = BTreeMap::new();
    let mut out = Vec::with_capacity(edges.len());
    for node in edges.keys() {
        let mut stack = Vec::new();
        visit(node, edges, &mut marks, &mut stack, &mut out)?;
    }
    Ok(out)
}

/// Every product downstream of `roots` (not including the roots), given `edges` as in [`build_order`].
pub fn downstream(
    edges: &BTreeMap<ProductRef, BTreeSet<ProductRef>>,
    roots: &BTreeSet<ProductRef>,
) -> BTreeSet<ProductRef> {
    let mut found: BTreeSet<ProductRef> = BTreeSet::new();
    let mut changed = true;
    while changed {
        changed = false;
        for (product, deps) in edges {
            if found.contains(product) || roots.contains(product) {
                continue;
            }
            if deps.iter().any(|d| roots.contains(d) || found.contains(d)) {
                found.insert(product.clone());
                changed = true;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ProductRef {
        ProductRef::parse(s).unwrap()
    }

    fn graph(pairs: &[(&str, &[&str])]) -> BTreeMap<ProductRef, BTreeSet<ProductRef>> {
        pairs
            .iter()
            .map(|(p, deps)| (r(p), deps.iter().map(|d| r(d)).collect()))
            .collect()
    }

    #[test]
    fn upstream_comes_first() {
        let g = graph(&[("s/c", &["s/b"]), ("s/b", &["s/a"]), ("s/a", &[])]);
        assert_eq!(build_order(&g).unwrap(), vec![r("s/a"), r("s/b"), r("s/c")]);
    }

    #[test]
    fn cycles_are_named() {
        let g = graph(&[("s/a", &["s/b"]), ("s/b", &["s/c"]), ("s/c", &["s/a"])]);
        let cycle = build_order(&g).unwrap_err();
        assert_eq!(cycle.to_string(), "s/a → s/b → s/c → s/a");
    }

    #[test]
    fn downstream_is_transitive() {
        let g = graph(&[
            ("s/a", &[]),
            ("s/b", &["s/a"]),
            ("s/c", &["s/b"]),
            ("s/d", &[]),
        ]);
        let d = downstream(&g, &[r("s/a")].into());
        assert_eq!(d, [r("s/b"), r("s/c")].into());
    }
}
