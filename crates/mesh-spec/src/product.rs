//! Reading `product.yaml` into a [`ProductDescriptor`].

use std::path::Path;
use std::sync::Arc;

use crate::column_type::{ColumnType, TYPE_NAMES};
use crate::decode::{Ctx, Fields};
use crate::descriptor::*;
use crate::diagnostic::{Diagnostic, SourceFile, did_you_mean};
use crate::name::{ColumnName, DomainName, InputName, OutputName, ProductName, ProductRef};
use crate::yaml::{self, Node, Value};

/// The `apiVersion` this build understands.
pub const API_VERSION: &str = "meshwork/v1";

const TOP_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "domain",
    "name",
    "version",
    "status",
    "sunset",
    "owner",
    "description",
    "tags",
    "inputs",
    "transform",
    "outputs",
    "slo",
    "schedule",
    "access",
    "retention",
];

/// Parses a descriptor's text. Returns the descriptor only if it has no errors;
/// the diagnostics (warnings included) are returned either way.
pub fn parse_product(path: &Path, text: &str) -> (Option<ProductDescriptor>, Vec<Diagnostic>) {
    let file = SourceFile::new(path, text);
    let mut ctx = Ctx::new(file.clone());
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            ctx.error(
                "yaml-syntax",
                e.span,
                format!("invalid YAML: {}", e.message),
            )
            .help = Some("check indentation, and quote values that contain `:` or `#`".into());
            return (None, ctx.diagnostics);
        }
    };
    let product = decode_product(&mut ctx, &root, path, file);
    let failed = ctx.diagnostics.iter().any(Diagnostic::is_error);
    (if failed { None } else { product }, ctx.diagnostics)
}

fn decode_product(
    ctx: &mut Ctx,
    root: &Node,
    path: &Path,
    file: Arc<SourceFile>,
) -> Option<ProductDescriptor> {
    let f = ctx.fields(root, "a product descriptor", TOP_FIELDS)?;

    if let Some(n) = ctx.require(&f, "apiVersion", "the descriptor")
        && let Some(v) = ctx.string(n, "apiVersion")
        && v.value != API_VERSION
    {
        ctx.error(
            "api-version",
            v.span,
            format!("unsupported apiVersion `{}`", v.value),
        )
        .help = Some(format!("this build reads `apiVersion: {API_VERSION}`"));
    }
    if let Some(n) = ctx.require(&f, "kind", "the descriptor")
        && let Some(v) = ctx.string(n, "kind")
        && v.value != "DataProduct"
    {
        ctx.error("kind", v.span, format!("unsupported kind `{}`", v.value))
            .help = Some("a product descriptor has `kind: DataProduct`".into());
    }

    let domain = ctx
        .require(&f, "domain", "the descriptor")
        .and_then(|n| ctx.name(n, "domain name", DomainName::parse));
    let name = ctx
        .require(&f, "name", "the descriptor")
        .and_then(|n| ctx.name(n, "product name", ProductName::parse));
    let version = ctx.require(&f, "version", "the descriptor").and_then(|n| {
        let text = ctx.scalar_text(n, "version")?;
        match semver::Version::parse(&text.value) {
            Ok(v) => Some(Spanned::new(v, text.span)),
            Err(e) => {
                ctx.error("invalid-version", text.span, format!("`{}` is not a semantic version: {e}", text.value))
                    .help = Some("write MAJOR.MINOR.PATCH, for example `1.2.0` (quote it if it looks like a number)".into());
                None
            }
        }
    });
    let status = match f.get("status") {
        Some(n) => ctx.keyword(n, "status", Status::NAMES, Status::parse),
        None => Some(Status::Active),
    };
    let sunset = f.get("sunset").and_then(|n| {
        let s = ctx.scalar_text(n, "sunset")?;
        match chrono::NaiveDate::parse_from_str(&s.value, "%Y-%m-%d") {
            Ok(d) => Some(Spanned::new(d, s.span)),
            Err(e) => {
                ctx.error(
                    "invalid-date",
                    s.span,
                    format!("`{}` is not a date: {e}", s.value),
                )
                .help = Some("write YYYY-MM-DD, for example `2027-03-31`".into());
                None
            }
        }
    });
    if let (Some(s), Some(st)) = (&sunset, &status)
        && *st != Status::Deprecated
    {
        ctx.warning(
            "sunset-without-deprecation",
            s.span,
            "`sunset` only means something when `status: deprecated`",
        );
    }
    let owner = ctx.require(&f, "owner", "the descriptor").and_then(|n| {
        let s = ctx.string(n, "owner")?;
        if s.value.trim().is_empty() {
            ctx.error("invalid-value", s.span, "owner is empty").help =
                Some("name the owning team, for example `sales-data@acme.example`".into());
            return None;
        }
        Some(s)
    });
    let description = f
        .get("description")
        .map(|n| decode_description(ctx, n))
        .unwrap_or_default();
    let tags = f
        .get("tags")
        .map(|n| {
            ctx.strings(n, "tags")
                .into_iter()
                .map(|s| s.value)
                .collect()
        })
        .unwrap_or_default();
    let inputs: Vec<Input> = f
        .get("inputs")
        .map(|n| {
            ctx.list(n, "inputs")
                .iter()
                .filter_map(|i| decode_input(ctx, i))
                .collect()
        })
        .unwrap_or_default();
    let transform = f.get("transform").and_then(|n| {
        let tf = ctx.fields(n, "transform", &["sql", "query"])?;
        decode_sql(ctx, &tf, "transform")
    });
    let outputs: Vec<Output> = match ctx.require(&f, "outputs", "the descriptor") {
        Some(n) => {
            let items = ctx.list(n, "outputs");
            if items.is_empty() && matches!(n.value, Value::Seq(_)) {
                ctx.error("no-outputs", n.span, "a product needs at least one output")
                    .help = Some("declare an output with its columns under `outputs:`".into());
            }
            items.iter().filter_map(|o| decode_output(ctx, o)).collect()
        }
        None => Vec::new(),
    };
    let slo = f.get("slo").and_then(|n| {
        let sf = ctx.fields(n, "slo", &["freshness", "quality"])?;
        let (freshness, freshness_warn) = match sf.get("freshness") {
            Some(n) if matches!(n.value, Value::Map(_)) => {
                let ff = ctx.fields(n, "slo.freshness", &["warn", "fail"])?;
                let warn = ff
                    .get("warn")
                    .and_then(|n| duration(ctx, n, "slo.freshness.warn"));
                let fail = ctx
                    .require(&ff, "fail", "slo.freshness")
                    .and_then(|n| duration(ctx, n, "slo.freshness.fail"));
                if let (Some(w), Some(f)) = (&warn, &fail)
                    && w.value >= f.value
                {
                    ctx.error(
                        "invalid-slo",
                        w.span,
                        "`slo.freshness.warn` must be shorter than `fail`",
                    );
                }
                (fail, warn.map(|w| w.value))
            }
            Some(n) => (duration(ctx, n, "slo.freshness"), None),
            None => (None, None),
        };
        let quality = sf.get("quality").and_then(|n| {
            let qf = ctx.fields(n, "slo.quality", &["min_pass_rate", "window"])?;
            let rate = qf.get("min_pass_rate").and_then(|n| {
                ctx.number(n, "slo.quality.min_pass_rate")
                    .map(|r| (r, n.span))
            });
            if let Some((r, span)) = rate
                && !(0.0..=1.0).contains(&r)
            {
                ctx.error(
                    "invalid-slo",
                    span,
                    format!("`slo.quality.min_pass_rate` is {r}; write a share between 0 and 1"),
                );
            }
            Some(crate::descriptor::QualitySlo {
                min_pass_rate: rate
                    .map_or(crate::descriptor::QualitySlo::DEFAULT.min_pass_rate, |r| {
                        r.0
                    }),
                window: qf
                    .get("window")
                    .and_then(|n| duration(ctx, n, "slo.quality.window"))
                    .map_or(crate::descriptor::QualitySlo::DEFAULT.window, |w| w.value),
            })
        });
        Some(Slo {
            freshness,
            freshness_warn,
            quality,
        })
    });
    let schedule = f.get("schedule").and_then(|n| {
        let sf = ctx.fields(
            n,
            "schedule",
            &["cron", "timezone", "on_upstream_change", "retries"],
        )?;
        let schedule = Schedule {
            cron: sf.get("cron").and_then(|n| ctx.string(n, "schedule.cron")),
            timezone: sf
                .get("timezone")
                .and_then(|n| ctx.string(n, "schedule.timezone")),
            on_upstream_change: sf
                .get("on_upstream_change")
                .and_then(|n| ctx.bool(n, "schedule.on_upstream_change"))
                .unwrap_or(false),
            retries: sf
                .get("retries")
                .and_then(|n| ctx.uint(n, "schedule.retries")),
        };
        crate::schedule::check(ctx, &schedule);
        Some(schedule)
    });
    let access = f.get("access").and_then(|n| {
        let af = ctx.fields(n, "access", &["visibility", "approvers", "max_grant"])?;
        Some(Access {
            visibility: af
                .get("visibility")
                .and_then(|n| {
                    ctx.keyword(
                        n,
                        "visibility",
                        &["public", "discoverable", "private"],
                        |s| {
                            ["public", "discoverable", "private"]
                                .contains(&s)
                                .then(|| s.to_string())
                        },
                    )
                })
                .unwrap_or_else(|| "discoverable".into()),
            approvers: af
                .get("approvers")
                .map(|n| {
                    ctx.strings(n, "access.approvers")
                        .into_iter()
                        .map(|s| s.value)
                        .collect()
                })
                .unwrap_or_default(),
            max_grant: af
                .get("max_grant")
                .and_then(|n| duration(ctx, n, "access.max_grant")),
        })
    });

    let retention = f
        .get("retention")
        .and_then(|n| retention(ctx, n, "retention"));

    for output in &outputs {
        if output.sql.is_none() && transform.is_none() {
            ctx.error(
                "no-sql",
                output.span,
                format!("output `{}` has no SQL", output.name.value),
            )
            .help = Some(
                "add `transform: {sql: transform.sql}` to the product, or `sql:` to the output"
                    .into(),
            );
        }
    }

    Some(ProductDescriptor {
        file,
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        domain: domain?,
        name: name?,
        version: version?,
        status: status?,
        sunset,
        owner: owner?,
        description,
        tags,
        inputs,
        transform,
        outputs,
        slo,
        schedule,
        access,
        retention,
    })
}

/// A `retention:` mapping (a product's, or the mesh's default).
pub(crate) fn retention(
    ctx: &mut Ctx,
    node: &crate::yaml::Node,
    what: &str,
) -> Option<Spanned<Retention>> {
    let f = ctx.fields(node, what, &["keep_releases", "keep_days"])?;
    let keep_releases = f.get("keep_releases").and_then(|n| {
        ctx.uint(n, &format!("{what}.keep_releases"))
            .map(|v| (v, n.span))
    });
    let keep_days = f
        .get("keep_days")
        .and_then(|n| ctx.uint(n, &format!("{what}.keep_days")));
    if let Some((0, span)) = keep_releases {
        ctx.error(
            "retention",
            span,
            format!("{what}.keep_releases must be at least 1"),
        )
        .help = Some("the current release is always kept; write 1 to keep only it".into());
        return None;
    }
    if keep_releases.is_none() && keep_days.is_none() {
        ctx.error(
            "retention",
            node.span,
            format!("{what} keeps nothing: give keep_releases, keep_days or both"),
        )
        .help = Some("for example `{keep_releases: 10, keep_days: 30}`".into());
        return None;
    }
    Some(Spanned::new(
        Retention {
            keep_releases: keep_releases.map(|(v, _)| v),
            keep_days,
        },
        node.span,
    ))
}

fn decode_description(ctx: &mut Ctx, n: &Node) -> Description {
    if let Value::Str(s) = &n.value {
        return Description {
            purpose: Some(s.clone()),
            ..Description::default()
        };
    }
    let Some(f) = ctx.fields(n, "description", &["purpose", "usage", "limitations"]) else {
        return Description::default();
    };
    let mut text = |name: &str| {
        f.get(name)
            .and_then(|n| ctx.string(n, name))
            .map(|s| s.value)
    };
    Description {
        purpose: text("purpose"),
        usage: text("usage"),
        limitations: text("limitations"),
    }
}

fn duration(ctx: &mut Ctx, n: &Node, what: &str) -> Option<Spanned<std::time::Duration>> {
    let s = ctx.scalar_text(n, what)?;
    match parse_duration(&s.value) {
        Some(d) => Some(Spanned::new(d, s.span)),
        None => {
            ctx.error(
                "invalid-duration",
                s.span,
                format!("`{}` is not a duration", s.value),
            )
            .help =
                Some("write a number and a unit: s, m, h, d or w (for example `6h`, `90d`)".into());
            None
        }
    }
}

fn decode_sql(ctx: &mut Ctx, f: &Fields<'_>, what: &str) -> Option<Sql> {
    match (f.get("sql"), f.get("query")) {
        (Some(_), Some(q)) => {
            ctx.error(
                "conflicting-fields",
                q.span,
                format!("{what} has both `sql` and `query`"),
            )
            .help = Some("use `sql:` for a file, or `query:` for inline SQL, not both".into());
            None
        }
        (Some(n), None) => ctx.string(n, "sql file").map(Sql::File),
        (None, Some(n)) => ctx.string(n, "query").map(Sql::Inline),
        (None, None) => {
            ctx.error(
                "missing-field",
                f.span,
                format!("{what} needs `sql: FILE` or `query: SQL`"),
            );
            None
        }
    }
}

const INPUT_FIELDS: &[&str] = &["name", "source", "product", "output", "version"];

fn decode_input(ctx: &mut Ctx, n: &Node) -> Option<Input> {
    let f = ctx.fields(n, "an input", INPUT_FIELDS)?;
    let name = ctx
        .require(&f, "name", "an input")
        .and_then(|n| ctx.name(n, "input name", InputName::parse));
    let kind = match (f.get("source"), f.get("product")) {
        (Some(s), None) => {
            for extra in ["output", "version"] {
                if let Some(x) = f.get(extra) {
                    ctx.error(
                        "conflicting-fields",
                        x.span,
                        format!("`{extra}` applies to product inputs, not sources"),
                    );
                }
            }
            decode_source(ctx, s).map(InputKind::Source)
        }
        (None, Some(p)) => {
            let product =
                ctx.string(p, "product")
                    .and_then(|s| match ProductRef::parse(&s.value) {
                        Ok(r) => Some(Spanned::new(r, s.span)),
                        Err(e) => {
                            ctx.error(
                                "invalid-name",
                                s.span,
                                format!("invalid product reference: {e}"),
                            )
                            .help = Some(
                                "write `<domain>/<product>`, for example `customers/profiles`"
                                    .into(),
                            );
                            None
                        }
                    });
            let output = f
                .get("output")
                .and_then(|n| ctx.name(n, "output name", OutputName::parse));
            let version = f.get("version").and_then(|n| {
                let s = ctx.scalar_text(n, "version")?;
                match semver::VersionReq::parse(&s.value) {
                    Ok(r) => Some(Spanned::new(r, s.span)),
                    Err(e) => {
                        ctx.error(
                            "invalid-version",
                            s.span,
                            format!("`{}` is not a version requirement: {e}", s.value),
                        )
                        .help = Some("write a semver range such as `^2` or `>=1.2, <2`".into());
                        None
                    }
                }
            });
            product.map(|product| InputKind::Product {
                product,
                output,
                version,
            })
        }
        (Some(_), Some(p)) => {
            ctx.error(
                "conflicting-fields",
                p.span,
                "an input reads either a `source` or a `product`, not both",
            );
            None
        }
        (None, None) => {
            ctx.error("missing-field", f.span, "an input needs `source:` (files) or `product:` (another product)")
                .help = Some("for example `source: {format: csv, path: data/*.csv}` or `product: customers/profiles`".into());
            None
        }
    };
    Some(Input {
        name: name?,
        kind: kind?,
        span: n.span,
    })
}

fn decode_source(ctx: &mut Ctx, n: &Node) -> Option<Source> {
    let f = ctx.fields(
        n,
        "a source",
        &["format", "path", "columns", "delimiter", "header"],
    )?;
    let format = ctx
        .require(&f, "format", "a source")
        .and_then(|n| ctx.keyword(n, "source format", SourceFormat::NAMES, SourceFormat::parse));
    let path = ctx
        .require(&f, "path", "a source")
        .and_then(|n| ctx.string(n, "path"));
    let columns = f.get("columns").map(|n| {
        ctx.list(n, "columns")
            .iter()
            .filter_map(|c| decode_column(ctx, c))
            .collect()
    });
    let delimiter = match f.get("delimiter") {
        Some(n) => {
            let s = ctx.string(n, "delimiter")?;
            if s.value.len() != 1 {
                ctx.error(
                    "invalid-value",
                    s.span,
                    "delimiter must be a single character",
                );
                return None;
            }
            s.value.as_bytes()[0]
        }
        None => b',',
    };
    let header = f
        .get("header")
        .and_then(|n| ctx.bool(n, "header"))
        .unwrap_or(true);
    let format = format?;
    if format != SourceFormat::Csv {
        for key in ["delimiter", "header"] {
            if let Some(x) = f.get(key) {
                ctx.error(
                    "conflicting-fields",
                    x.span,
                    format!("`{key}` only applies to csv sources"),
                );
            }
        }
    }
    Some(Source {
        format,
        path: path?,
        columns,
        delimiter,
        header,
    })
}

const COLUMN_FIELDS: &[&str] = &[
    "name",
    "type",
    "nullable",
    "description",
    "classification",
    "renamed_from",
    "declassify",
];

const DECLASSIFY_FIELDS: &[&str] = &["from", "reason"];

/// `declassify:` as one mapping or a list of them.
fn decode_declassify(ctx: &mut Ctx, n: &Node) -> Vec<Declassify> {
    let items: Vec<&Node> = match &n.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    let mut out = Vec::new();
    for item in items {
        let Some(f) = ctx.fields(item, "a declassification", DECLASSIFY_FIELDS) else {
            continue;
        };
        let from = ctx
            .require(&f, "from", "a declassification")
            .and_then(|n| ctx.string(n, "from"));
        let reason = ctx
            .require(&f, "reason", "a declassification")
            .and_then(|n| ctx.string(n, "reason"));
        let (Some(from), Some(reason)) = (from, reason) else {
            continue;
        };
        if from.value.split('.').count() != 3 || from.value.split('.').any(str::is_empty) {
            let d = ctx.error(
                "invalid-declassify",
                from.span,
                format!(
                    "`from` must name an upstream column as `<domain>.<output>.<column>`, found `{}`",
                    from.value
                ),
            );
            d.help = Some("for example `from: hr.employees.email`".into());
            continue;
        }
        if reason.value.trim().is_empty() {
            let d = ctx.error(
                "invalid-declassify",
                reason.span,
                "a declassification needs a reason".to_string(),
            );
            d.help = Some("say why the value cannot be recovered from this column".into());
            continue;
        }
        out.push(Declassify {
            from,
            reason,
            span: item.span,
        });
    }
    out
}

fn decode_column(ctx: &mut Ctx, n: &Node) -> Option<Column> {
    let f = ctx.fields(n, "a column", COLUMN_FIELDS)?;
    let name = ctx
        .require(&f, "name", "a column")
        .and_then(|n| ctx.name(n, "column name", ColumnName::parse));
    let ty = ctx.require(&f, "type", "a column").and_then(|n| {
        let s = ctx.string(n, "type")?;
        match s.value.parse::<ColumnType>() {
            Ok(t) => Some(Spanned::new(t, s.span)),
            Err(e) => {
                let help = if s.value.contains('<') {
                    "nested types are written list<T>, map<K, V> and struct<name T, other T not null>".to_string()
                } else {
                    match did_you_mean(&s.value, TYPE_NAMES.iter().copied()) {
                        Some(m) => format!("did you mean `{m}`?"),
                        None => format!("types: {}", TYPE_NAMES.join(", ")),
                    }
                };
                let d = ctx.error("invalid-type", s.span, e);
                d.help = Some(help);
                None
            }
        }
    });
    let nullable = f
        .get("nullable")
        .and_then(|n| ctx.bool(n, "nullable"))
        .unwrap_or(true);
    let description = f
        .get("description")
        .and_then(|n| ctx.string(n, "description"))
        .map(|s| s.value);
    let classification = f.get("classification").and_then(|n| {
        ctx.keyword(
            n,
            "classification",
            Classification::NAMES,
            Classification::parse,
        )
    });
    let renamed_from = f
        .get("renamed_from")
        .and_then(|n| ctx.name(n, "column name", ColumnName::parse));
    let declassify = f
        .get("declassify")
        .map(|n| decode_declassify(ctx, n))
        .unwrap_or_default();
    Some(Column {
        name: name?,
        ty: ty?,
        nullable,
        description,
        renamed_from,
        classification,
        declassify,
    })
}

const OUTPUT_FIELDS: &[&str] = &[
    "name",
    "description",
    "primary_key",
    "columns",
    "quality",
    "sql",
    "query",
    "cluster_by",
    "target_file_size",
];

fn decode_output(ctx: &mut Ctx, n: &Node) -> Option<Output> {
    let f = ctx.fields(n, "an output", OUTPUT_FIELDS)?;
    let name = ctx
        .require(&f, "name", "an output")
        .and_then(|n| ctx.name(n, "output name", OutputName::parse));
    let description = f
        .get("description")
        .and_then(|n| ctx.string(n, "description"))
        .map(|s| s.value);
    let primary_key = f
        .get("primary_key")
        .map(|n| column_names(ctx, n, "primary_key"))
        .unwrap_or_default();
    let columns: Vec<Column> = match ctx.require(&f, "columns", "an output") {
        Some(n) => ctx
            .list(n, "columns")
            .iter()
            .filter_map(|c| decode_column(ctx, c))
            .collect(),
        None => Vec::new(),
    };
    let quality = f
        .get("quality")
        .map(|n| {
            ctx.list(n, "quality")
                .iter()
                .filter_map(|q| decode_check(ctx, q))
                .collect()
        })
        .unwrap_or_default();
    let sql = if f.has("sql") || f.has("query") {
        decode_sql(ctx, &f, "an output")
    } else {
        None
    };
    let cluster_by = f
        .get("cluster_by")
        .map(|n| column_names(ctx, n, "cluster_by"))
        .unwrap_or_default();
    let target_file_size = f.get("target_file_size").and_then(|n| {
        let text = match &n.value {
            Value::Int(i) => i.to_string(),
            _ => ctx.string(n, "target_file_size")?.value,
        };
        match crate::serve::parse_bytes(&text) {
            Ok(bytes) if bytes >= 1 << 20 => Some(Spanned::new(bytes, n.span)),
            Ok(_) => {
                ctx.error(
                    "target-file-size",
                    n.span,
                    format!("target_file_size `{text}` is below 1MiB"),
                )
                .help = Some("files that small make reads slower; try 128MiB".into());
                None
            }
            Err(e) => {
                ctx.error("target-file-size", n.span, e).help =
                    Some("write a size such as 128MiB or 1GB".into());
                None
            }
        }
    });
    Some(Output {
        name: name?,
        description,
        primary_key,
        columns,
        quality,
        sql,
        cluster_by,
        target_file_size,
        span: n.span,
        original_name: None,
    })
}

fn column_names(ctx: &mut Ctx, n: &Node, what: &str) -> Vec<Spanned<ColumnName>> {
    let items: Vec<&Node> = match &n.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    items
        .into_iter()
        .filter_map(|n| ctx.name(n, &format!("column name in {what}"), ColumnName::parse))
        .collect()
}

fn literal(ctx: &mut Ctx, n: &Node, what: &str) -> Option<Literal> {
    match &n.value {
        Value::Int(i) => Some(Literal::Int(*i)),
        Value::Float(f) => Some(Literal::Float(*f)),
        Value::Str(s) => Some(Literal::Str(s.clone())),
        other => {
            let found = other.kind();
            ctx.error(
                "wrong-type",
                n.span,
                format!("{what} must be a number or a string, found {found}"),
            );
            None
        }
    }
}

const CHECK_FIELDS: &[&str] = &[
    "check", "name", "severity", "column", "columns", "min", "max", "values", "query", "must_be",
];

fn decode_check(ctx: &mut Ctx, n: &Node) -> Option<QualityCheck> {
    let f = ctx.fields(n, "a quality check", CHECK_FIELDS)?;
    let keyword = ctx.require(&f, "check", "a quality check")?;
    let keyword = ctx.keyword(keyword, "check", CHECK_NAMES, |s| {
        CHECK_NAMES.contains(&s).then(|| s.to_string())
    })?;
    let severity = match f.get("severity") {
        Some(n) => ctx.keyword(n, "severity", &["error", "warn"], |s| match s {
            "error" => Some(CheckSeverity::Error),
            "warn" | "warning" => Some(CheckSeverity::Warn),
            _ => None,
        })?,
        None => CheckSeverity::Error,
    };
    let given_name = f
        .get("name")
        .and_then(|n| ctx.string(n, "check name"))
        .map(|s| s.value);

    // Columns: `columns: [a, b]` or `column: a`.
    let mut columns = || -> Vec<Spanned<ColumnName>> {
        match (f.get("columns"), f.get("column")) {
            (Some(n), _) => column_names(ctx, n, "columns"),
            (None, Some(n)) => column_names(ctx, n, "column"),
            (None, None) => {
                ctx.error(
                    "missing-field",
                    f.span,
                    format!("check `{keyword}` needs `column:` or `columns:`"),
                );
                Vec::new()
            }
        }
    };
    let kind = match keyword.as_str() {
        "unique" => CheckKind::Unique { columns: columns() },
        "not_null" => CheckKind::NotNull { columns: columns() },
        "range" => {
            let mut cols = columns();
            let min = f.get("min").and_then(|n| literal(ctx, n, "min"));
            let max = f.get("max").and_then(|n| literal(ctx, n, "max"));
            if min.is_none() && max.is_none() {
                ctx.error(
                    "missing-field",
                    f.span,
                    "check `range` needs `min:`, `max:` or both",
                );
            }
            if cols.len() != 1 {
                ctx.error(
                    "invalid-value",
                    f.span,
                    "check `range` applies to exactly one column",
                );
                return None;
            }
            CheckKind::Range {
                column: cols.remove(0),
                min,
                max,
            }
        }
        "accepted_values" => {
            let mut cols = columns();
            let values = match ctx.require(&f, "values", "check `accepted_values`") {
                Some(n) => {
                    let items = ctx.list(n, "values");
                    items
                        .iter()
                        .filter_map(|v| literal(ctx, v, "a value"))
                        .collect()
                }
                None => Vec::new(),
            };
            if cols.len() != 1 {
                ctx.error(
                    "invalid-value",
                    f.span,
                    "check `accepted_values` applies to exactly one column",
                );
                return None;
            }
            CheckKind::AcceptedValues {
                column: cols.remove(0),
                values,
            }
        }
        "row_count" => {
            let min = f.get("min").and_then(|n| ctx.uint(n, "min"));
            let max = f.get("max").and_then(|n| ctx.uint(n, "max"));
            if min.is_none() && max.is_none() {
                ctx.error(
                    "missing-field",
                    f.span,
                    "check `row_count` needs `min:`, `max:` or both",
                );
            }
            CheckKind::RowCount { min, max }
        }
        _ => {
            let query = ctx
                .require(&f, "query", "check `sql`")
                .and_then(|n| ctx.string(n, "query"))?;
            let must_be = f
                .get("must_be")
                .and_then(|n| ctx.number(n, "must_be"))
                .unwrap_or(0.0);
            if given_name.is_none() {
                ctx.error("missing-field", f.span, "check `sql` needs a `name:`")
                    .help = Some("name the rule, for example `name: no_future_orders`".into());
            }
            CheckKind::Sql { query, must_be }
        }
    };
    let name = given_name.unwrap_or_else(|| default_check_name(&kind));
    Some(QualityCheck {
        name,
        kind,
        severity,
        span: n.span,
    })
}

fn default_check_name(kind: &CheckKind) -> String {
    let cols =
        |c: &[Spanned<ColumnName>]| c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join("_");
    match kind {
        CheckKind::Unique { columns } => format!("unique_{}", cols(columns)),
        CheckKind::NotNull { columns } => format!("not_null_{}", cols(columns)),
        CheckKind::Range { column, .. } => format!("range_{}", column.as_str()),
        CheckKind::AcceptedValues { column, .. } => format!("accepted_values_{}", column.as_str()),
        CheckKind::RowCount { .. } => "row_count".to_string(),
        CheckKind::Sql { .. } => "sql".to_string(),
    }
}
