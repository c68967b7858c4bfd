//! Lifecycle rules between products: version requirements on inputs, and
//! reading deprecated or retired products.

use std::collections::BTreeMap;
use std::path::Path;

use mesh_catalog::ProductRecord;
use mesh_spec::{Diagnostic, InputKind, ProductDescriptor, ProductRef, Status, parse_product};

/// What a consumer needs to know about a product it reads.
struct Upstream {
    version: semver::Version,
    status: Status,
    sunset: Option<chrono::NaiveDate>,
}

fn upstreams(
    local: &[ProductDescriptor],
    deployed: &[ProductRecord],
) -> BTreeMap<ProductRef, Upstream> {
    let mut out = BTreeMap::new();
    for r in deployed {
        let status = Status::parse(&r.status).unwrap_or(Status::Active);
        // The sunset date lives in the descriptor, or for an older major in
        // its record (`mesh deprecate`); parse only when it matters.
        let sunset = (status == Status::Deprecated)
            .then(|| {
                r.sunset.or_else(|| {
                    parse_product(Path::new(&r.descriptor_path), &r.descriptor)
                        .0
                        .and_then(|p| p.sunset.map(|s| s.value))
                })
            })
            .flatten();
        if let Ok(version) = semver::Version::parse(&r.version) {
            out.insert(
                r.product.clone(),
                Upstream {
                    version,
                    status,
                    sunset,
                },
            );
        }
    }
    for p in local {
        out.insert(
            p.product_ref(),
            Upstream {
                version: p.version.value.clone(),
                status: p.status,
                sunset: p.sunset.as_ref().map(|s| s.value),
            },
        );
    }
    out
}

/// Every version of each product a requirement may select: the local
/// descriptor, the deployed one (it stays alive as a line when the local
/// one is a new major) and the older majors kept alive.
fn all_versions(
    local: &[ProductDescriptor],
    deployed: &[ProductRecord],
) -> BTreeMap<ProductRef, Vec<semver::Version>> {
    let mut out: BTreeMap<ProductRef, Vec<semver::Version>> = BTreeMap::new();
    for r in deployed {
        if let Ok(v) = semver::Version::parse(&r.version) {
            let of = r.line_of.clone().unwrap_or_else(|| r.product.clone());
            out.entry(of).or_default().push(v);
        }
    }
    for p in local {
        out.entry(p.product_ref())
            .or_default()
            .push(p.version.value.clone());
    }
    out
}

/// Version requirements nobody satisfies, inputs on retired products
/// (errors) and inputs on deprecated ones (warnings).
pub fn check(local: &[ProductDescriptor], deployed: &[ProductRecord]) -> Vec<Diagnostic> {
    let known = upstreams(local, deployed);
    let versions = all_versions(local, deployed);
    let mut out = Vec::new();
    for p in local {
        for input in &p.inputs {
            let InputKind::Product {
                product, version, ..
            } = &input.kind
            else {
                continue;
            };
            // A requirement that selects an older major reads that line.
            let line = mesh_catalog::matching_line(
                deployed,
                &product.value,
                version.as_ref().map(|v| &v.value),
            );
            let target = line.map_or(&product.value, |l| &l.product);
            let Some(up) = known.get(target) else {
                continue; // a missing product is reported by structural validation
            };
            let name = input.name.as_str();
            let satisfied = |req: &semver::VersionReq| {
                versions
                    .get(&product.value)
                    .is_some_and(|vs| vs.iter().any(|v| req.matches(v)))
            };
            if let Some(req) = version
                && !satisfied(&req.value)
            {
                out.push(
                    Diagnostic::error(
                        "version-unsatisfied",
                        format!(
                            "input `{name}` requires `{}` {}, but its version is {}",
                            product.value, req.value, up.version
                        ),
                    )
                    .at(&p.file, req.span)
                    .label("no deployed or local version matches")
                    .help(format!(
                        "require a range that includes {}, or deploy a matching version of `{}`",
                        up.version, product.value
                    )),
                );
            }
            match up.status {
                Status::Retired => out.push(
                    Diagnostic::error(
                        "retired-upstream",
                        format!(
                            "input `{name}` reads `{target}`, which is retired and no longer served"
                        ),
                    )
                    .at(&p.file, product.span)
                    .help("read its successor instead"),
                ),
                Status::Deprecated => out.push(
                    Diagnostic::warning(
                        "deprecated-upstream",
                        format!(
                            "input `{name}` reads `{target}`, which is deprecated{}",
                            up.sunset
                                .map(|d| format!(" and will be retired on {d}"))
                                .unwrap_or_default()
                        ),
                    )
                    .at(&p.file, product.span)
                    .help("move to its successor before the sunset"),
                ),
                Status::Draft | Status::Active => {}
            }
        }
    }
    out
}

/// What each product input of `p` reads: the product it names, or the
/// older major its version requirement selects.
fn reads<'a>(
    p: &'a ProductDescriptor,
    records: &'a [ProductRecord],
) -> impl Iterator<Item = (&'a mesh_spec::Spanned<ProductRef>, &'a ProductRef)> {
    p.inputs.iter().filter_map(move |i| match &i.kind {
        InputKind::Product {
            product, version, ..
        } => {
            let line = mesh_catalog::matching_line(
                records,
                &product.value,
                version.as_ref().map(|v| &v.value),
            );
            Some((product, line.map_or(&product.value, |l| &l.product)))
        }
        InputKind::Source(_) => None,
    })
}

/// Errors for consumers that would start reading a deprecated product or
/// older major: products not deployed yet, or deployed without reading it.
pub fn new_consumers_of_deprecated(
    local: &[ProductDescriptor],
    deployed: &[(ProductRecord, ProductDescriptor)],
) -> Vec<Diagnostic> {
    let records: Vec<ProductRecord> = deployed.iter().map(|(r, _)| r.clone()).collect();
    let known = upstreams(local, &records);
    let before: BTreeMap<ProductRef, &ProductDescriptor> = deployed
        .iter()
        .map(|(r, p)| (r.product.clone(), p))
        .collect();
    let mut out = Vec::new();
    for p in local {
        for (named, target) in reads(p, &records) {
            let deprecated = known
                .get(target)
                .is_some_and(|up| up.status == Status::Deprecated);
            let already = before
                .get(&p.product_ref())
                .is_some_and(|old| reads(old, &records).any(|(_, t)| t == target));
            if deprecated && !already {
                out.push(
                    Diagnostic::error(
                        "new-consumer-of-deprecated",
                        format!(
                            "`{}` would start reading `{target}`, which is deprecated; new consumers of a deprecated product are refused",
                            p.product_ref(),
                        ),
                    )
                    .at(&p.file, named.span)
                    .help("read its successor instead"),
                );
            }
        }
    }
    out
}
