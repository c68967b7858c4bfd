//! Checks across descriptors that need no SQL engine: names, references,
//! files, cycles and columns named by checks. SQL planning is checked in
//! `mesh-query`, against the schemas this crate resolves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::descriptor::{CheckKind, InputKind, Output, ProductDescriptor, Source, Spanned, Sql};
use crate::diagnostic::{Diagnostic, SourceFile, did_you_mean};
use crate::graph::{Cycle, build_order};
use crate::name::{ColumnName, OutputName, ProductRef};

/// Products already deployed that the local project may read without
/// holding their descriptors, with their outputs.
pub type Deployed = BTreeMap<ProductRef, Vec<OutputName>>;

/// Runs every structural check over the project's products.
pub fn validate(products: &[ProductDescriptor], deployed: &Deployed) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<ProductRef, &ProductDescriptor> = BTreeMap::new();
    let mut sql_names: BTreeMap<(String, String), (&ProductDescriptor, &Output)> = BTreeMap::new();

    for p in products {
        check_folder(p, &mut out);
        let r = p.product_ref();
        if let Some(first) = seen.get(&r) {
            out.push(
                Diagnostic::error(
                    "duplicate-product",
                    format!("product `{r}` is defined twice"),
                )
                .at(&p.file, p.name.span)
                .help(format!(
                    "it is also defined in {}; rename one of them",
                    first.file.path.display()
                )),
            );
            continue;
        }
        seen.insert(r, p);
        check_product(p, &mut out);
        for o in &p.outputs {
            let key = (p.domain.to_string(), o.name.to_string());
            if let Some((first, _)) = sql_names.get(&key) {
                out.push(
                    Diagnostic::error(
                        "duplicate-output",
                        format!("SQL name `{}.{}` is already used by product `{}`", p.domain.value, o.name.value, first.product_ref()),
                    )
                    .at(&p.file, o.name.span)
                    .help("outputs are addressed as `<domain>.<output>`, so output names must be unique within a domain"),
                );
            } else {
                sql_names.insert(key, (p, o));
            }
        }
    }

    for p in products {
        check_inputs(p, &seen, deployed, &mut out);
    }

    if let Err(cycle) = build_order(&edges(products)) {
        out.push(cycle_diagnostic(&cycle, &seen));
    }
    out
}

/// Product → the products it reads.
pub fn edges(products: &[ProductDescriptor]) -> BTreeMap<ProductRef, BTreeSet<ProductRef>> {
    products
        .iter()
        .map(|p| {
            (
                p.product_ref(),
                p.upstream().map(|u| u.value.clone()).collect(),
            )
        })
        .collect()
}

fn cycle_diagnostic(cycle: &Cycle, seen: &BTreeMap<ProductRef, &ProductDescriptor>) -> Diagnostic {
    let d = Diagnostic::error("dependency-cycle", format!("dependency cycle: {cycle}")).help(
        "a product cannot read itself, directly or through others; remove one of these inputs",
    );
    let first = cycle.0.first().and_then(|r| seen.get(r));
    let next = cycle.0.get(1);
    match (first, next) {
        (Some(p), Some(next)) => {
            let span = p
                .upstream()
                .find(|u| &u.value == next)
                .map_or(p.name.span, |u| u.span);
            d.at(&p.file, span).label(format!("reads `{next}`"))
        }
        _ => d,
    }
}

fn check_folder(p: &ProductDescriptor, out: &mut Vec<Diagnostic>) {
    let folder = p
        .dir
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str());
    if let Some(folder) = folder
        && folder != p.domain.as_str()
    {
        out.push(
            Diagnostic::error(
                "domain-folder",
                format!(
                    "product is in folder `{folder}/` but declares `domain: {}`",
                    p.domain.value
                ),
            )
            .at(&p.file, p.domain.span)
            .help(format!(
                "move the product under `{}/`, or set `domain: {folder}`",
                p.domain.value
            )),
        );
    }
}

fn check_product(p: &ProductDescriptor, out: &mut Vec<Diagnostic>) {
    dupes(
        p.inputs.iter().map(|i| (i.name.as_str(), i.name.span)),
        &p.file,
        "input",
        out,
    );
    dupes(
        p.outputs.iter().map(|o| (o.name.as_str(), o.name.span)),
        &p.file,
        "output",
        out,
    );
    for o in &p.outputs {
        dupes(
            o.columns.iter().map(|c| (c.name.as_str(), c.name.span)),
            &p.file,
            "column",
            out,
        );
        if o.columns.is_empty() {
            out.push(
                Diagnostic::error(
                    "no-columns",
                    format!("output `{}` declares no columns", o.name.value),
                )
                .at(&p.file, o.name.span)
                .help("the columns are the output's contract; list each with a name and type"),
            );
        }
        for k in &o.primary_key {
            column_exists(p, o, k, "primary_key", out);
        }
        for k in &o.cluster_by {
            if column_exists(p, o, k, "cluster_by", out)
                && let Some(col) = o.column(k.as_str())
                && !col.ty.is_orderable()
            {
                out.push(
                    Diagnostic::error(
                        "cluster-type",
                        format!(
                            "output `{}` cannot be clustered by `{}`: a `{}` has no order",
                            o.name.value, k.value, col.ty.value
                        ),
                    )
                    .at(&p.file, k.span)
                    .help(
                        "cluster by columns of scalar types (numbers, strings, dates, timestamps)",
                    ),
                );
            }
        }
        for check in &o.quality {
            match &check.kind {
                CheckKind::Unique { columns } | CheckKind::NotNull { columns } => {
                    for c in columns {
                        column_exists(p, o, c, &check.name, out);
                    }
                }
                CheckKind::Range { column, .. } => {
                    if column_exists(p, o, column, &check.name, out)
                        && let Some(col) = o.column(column.as_str())
                        && !col.ty.is_orderable()
                    {
                        out.push(
                            Diagnostic::error(
                                "check-type",
                                format!(
                                    "check `range` does not apply to {} column `{}`",
                                    col.ty.value, column.value
                                ),
                            )
                            .at(&p.file, column.span),
                        );
                    }
                }
                CheckKind::AcceptedValues { column, .. } => {
                    if column_exists(p, o, column, &check.name, out)
                        && let Some(col) = o.column(column.as_str())
                        && col.ty.is_nested()
                    {
                        out.push(
                            Diagnostic::error(
                                "check-type",
                                format!(
                                    "check `accepted_values` does not apply to {} column `{}`",
                                    col.ty.value, column.value
                                ),
                            )
                            .at(&p.file, column.span)
                            .help("check a field with `check: sql`, e.g. `SELECT count(*) FROM t WHERE c['field'] NOT IN (...)`"),
                        );
                    }
                }
                CheckKind::RowCount { .. } | CheckKind::Sql { .. } => {}
            }
        }
        dupes(
            o.quality.iter().map(|q| (q.name.as_str(), q.span)),
            &p.file,
            "quality check name",
            out,
        );
        if let Some(sql) = p.sql_for(o) {
            check_sql_file(p, sql, out);
        }
    }
}

fn check_sql_file(p: &ProductDescriptor, sql: &Sql, out: &mut Vec<Diagnostic>) {
    if let Sql::File(path) = sql {
        let full = p.dir.join(&path.value);
        if !full.is_file() {
            out.push(
                Diagnostic::error(
                    "missing-file",
                    format!("SQL file `{}` does not exist", path.value),
                )
                .at(&p.file, path.span)
                .help(format!(
                    "create {} or fix the path (relative to the product folder)",
                    full.display()
                )),
            );
        }
    }
}

fn column_exists(
    p: &ProductDescriptor,
    o: &Output,
    c: &Spanned<ColumnName>,
    what: &str,
    out: &mut Vec<Diagnostic>,
) -> bool {
    if o.column(c.as_str()).is_some() {
        return true;
    }
    let names = o.columns.iter().map(|c| c.name.as_str());
    let help = match did_you_mean(c.as_str(), names) {
        Some(m) => format!("did you mean `{m}`?"),
        None => format!(
            "declared columns: {}",
            o.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    out.push(
        Diagnostic::error(
            "unknown-column",
            format!(
                "`{what}` names column `{}`, which output `{}` does not declare",
                c.value, o.name.value
            ),
        )
        .at(&p.file, c.span)
        .label("not a declared column")
        .help(help),
    );
    false
}

fn dupes<'a>(
    items: impl Iterator<Item = (&'a str, crate::yaml::Span)>,
    file: &Arc<SourceFile>,
    what: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen = BTreeMap::new();
    for (name, span) in items {
        if let Some(first) = seen.insert(name, span) {
            out.push(
                Diagnostic::error(
                    "duplicate-name",
                    format!("{what} `{name}` is declared twice"),
                )
                .at(file, span)
                .help(format!(
                    "first declared at line {}, column {}",
                    first.line, first.col
                )),
            );
        }
    }
}

fn check_inputs(
    p: &ProductDescriptor,
    local: &BTreeMap<ProductRef, &ProductDescriptor>,
    deployed: &Deployed,
    out: &mut Vec<Diagnostic>,
) {
    for input in &p.inputs {
        match &input.kind {
            InputKind::Source(source) => check_source(p, source, out),
            InputKind::Product {
                product, output, ..
            } => {
                let outputs: Vec<&str> = if let Some(u) = local.get(&product.value) {
                    u.outputs.iter().map(|o| o.name.as_str()).collect()
                } else if let Some(outs) = deployed.get(&product.value) {
                    outs.iter().map(|o| o.as_str()).collect()
                } else {
                    let all = local
                        .keys()
                        .chain(deployed.keys())
                        .map(ToString::to_string)
                        .collect::<Vec<_>>();
                    let help = match did_you_mean(
                        &product.value.to_string(),
                        all.iter().map(String::as_str),
                    ) {
                        Some(m) => format!("did you mean `{m}`?"),
                        None => {
                            "deploy that product first, or fix the reference (`<domain>/<product>`)"
                                .into()
                        }
                    };
                    out.push(
                        Diagnostic::error(
                            "unknown-product",
                            format!(
                                "input `{}` reads product `{}`, which does not exist",
                                input.name.value, product.value
                            ),
                        )
                        .at(&p.file, product.span)
                        .label("no such product")
                        .help(help),
                    );
                    continue;
                };
                match output {
                    Some(o) if !outputs.contains(&o.as_str()) => out.push(
                        Diagnostic::error(
                            "unknown-output",
                            format!("product `{}` has no output `{}`", product.value, o.value),
                        )
                        .at(&p.file, o.span)
                        .help(format!("its outputs: {}", outputs.join(", "))),
                    ),
                    None if outputs.len() > 1 => out.push(
                        Diagnostic::error(
                            "ambiguous-output",
                            format!(
                                "product `{}` has several outputs; say which one to read",
                                product.value
                            ),
                        )
                        .at(&p.file, product.span)
                        .help(format!("add `output:` with one of: {}", outputs.join(", "))),
                    ),
                    _ => {}
                }
            }
        }
    }
}

/// The absolute path or glob of a source, resolved against the product folder.
pub fn source_location(dir: &Path, source: &Source) -> PathBuf {
    let path = Path::new(&source.path.value);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// The files a source matches right now, sorted.
pub fn source_files(dir: &Path, source: &Source) -> Result<Vec<PathBuf>, String> {
    let pattern = source_location(dir, source);
    let pattern = pattern.to_string_lossy();
    let paths = glob::glob(&pattern).map_err(|e| format!("invalid glob pattern: {e}"))?;
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn check_source(p: &ProductDescriptor, source: &Source, out: &mut Vec<Diagnostic>) {
    if source.path.value.contains("://") {
        return; // object-store URLs are checked when read
    }
    match source_files(&p.dir, source) {
        Err(e) => out.push(Diagnostic::error("invalid-path", e).at(&p.file, source.path.span)),
        Ok(files) if files.is_empty() => out.push(
            Diagnostic::error(
                "missing-file",
                format!("no file matches `{}`", source.path.value),
            )
            .at(&p.file, source.path.span)
            .label("matches nothing")
            .help(format!(
                "paths are relative to {}; check the path, or add the data files",
                p.dir.display()
            )),
        ),
        Ok(_) => {}
    }
}
