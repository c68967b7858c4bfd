//! Older majors kept alive next to the newest one ("lines"): how they are
//! named, and which one a consumer's version requirement selects. Every
//! reader of inputs (runner, validation, plan, build order) resolves
//! pinned inputs through [`matching_line`].

use mesh_spec::ProductRef;

use crate::model::{OutputRecord, ProductRecord};

/// The name of an older major's line: `orders` at major 1 is `orders_v1`.
/// Applies to products and to their outputs alike.
pub fn line_name(name: &str, major: u64) -> String {
    format!("{name}_v{major}")
}

/// The name a line gives to an output of its product.
pub fn line_output(output: &str, line: &ProductRecord) -> String {
    let major = semver::Version::parse(&line.version).map_or(0, |v| v.major);
    line_name(output, major)
}

/// The newest deployed line of `product` that a version requirement
/// selects, when the newest major (the head) does not satisfy it.
pub fn matching_line<'a>(
    deployed: &'a [ProductRecord],
    product: &ProductRef,
    version: Option<&semver::VersionReq>,
) -> Option<&'a ProductRecord> {
    let req = version?;
    let head_matches = deployed
        .iter()
        .find(|r| &r.product == product)
        .and_then(|r| semver::Version::parse(&r.version).ok())
        .is_some_and(|v| req.matches(&v));
    if head_matches {
        return None;
    }
    deployed
        .iter()
        .filter(|r| r.line_of.as_ref() == Some(product))
        .filter_map(|r| Some((semver::Version::parse(&r.version).ok()?, r)))
        .filter(|(v, _)| req.matches(v))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, r)| r)
}

/// The output an input reading `output` of `product` (its first output
/// when unnamed) under a version requirement reads among `deployed`: the
/// newest major's, or that of the line the requirement selects.
pub fn input_output<'a>(
    deployed: &'a [ProductRecord],
    product: &ProductRef,
    output: Option<&str>,
    version: Option<&semver::VersionReq>,
) -> Option<&'a OutputRecord> {
    let (upstream, name) = match matching_line(deployed, product, version) {
        Some(line) => (line, output.map(|o| line_output(o, line))),
        None => (
            deployed.iter().find(|r| &r.product == product)?,
            output.map(str::to_string),
        ),
    };
    match &name {
        Some(o) => upstream.outputs.iter().find(|x| x.output.as_str() == o),
        None => upstream.outputs.first(),
    }
}
