//! Open Data Contract Standard (ODCS) v3.1.0: export a product's contract,
//! import a contract as a descriptor skeleton, validate documents against
//! the official JSON Schema (vendored in `schemas/`).
//!
//! What a round trip keeps: domain, name, version, status, owner,
//! description, tags, each output with its columns (name, type,
//! nullability, description, classification), primary key, quality checks
//! and severities, and the freshness SLO. What ODCS has no place for, and
//! an import therefore leaves as a placeholder: inputs, transform SQL,
//! schedule and access.

use std::fmt::Write as _;
use std::sync::OnceLock;

use mesh_spec::{
    CheckKind, CheckSeverity, ColumnType, Literal, ProductDescriptor, QualityCheck, StructField,
    format_duration,
};
use serde_json::{Map, Value, json};

/// The ODCS version this module writes and validates against.
pub const API_VERSION: &str = "v3.1.0";

const SCHEMA: &str = include_str!("../schemas/odcs-3.1.0.schema.json");

/// One way a document breaks the ODCS schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// JSON pointer into the document, such as `/schema/0/properties/1/required`.
    pub path: String,
    pub message: String,
}

fn validator() -> &'static Result<jsonschema::Validator, String> {
    static VALIDATOR: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
        jsonschema::validator_for(&schema).map_err(|e| e.to_string())
    })
}

/// Every schema violation of `doc`, in document order.
pub fn validate(doc: &Value) -> Vec<SchemaError> {
    match validator() {
        Err(e) => vec![SchemaError {
            path: String::new(),
            message: format!("the vendored ODCS schema does not load: {e}"),
        }],
        Ok(v) => v
            .iter_errors(doc)
            .map(|e| SchemaError {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect(),
    }
}

fn logical_type(t: &ColumnType) -> &'static str {
    match t {
        ColumnType::Boolean => "boolean",
        ColumnType::TinyInt | ColumnType::SmallInt | ColumnType::Int | ColumnType::BigInt => {
            "integer"
        }
        ColumnType::Float | ColumnType::Double | ColumnType::Decimal { .. } => "number",
        ColumnType::String | ColumnType::Binary => "string",
        ColumnType::Date => "date",
        ColumnType::Timestamp => "timestamp",
        ColumnType::List(_) => "array",
        ColumnType::Map(..) | ColumnType::Struct(_) => "object",
    }
}

/// The type keys of an ODCS property: `logicalType`, `physicalType` (our
/// type text, which import reads back exactly), and for nested types the
/// struct's `properties` or the list's `items`, so tools that only read
/// ODCS see the nested shape.
fn type_keys(t: &ColumnType, prop: &mut Map<String, Value>) {
    prop.insert("logicalType".into(), json!(logical_type(t)));
    prop.insert("physicalType".into(), json!(t.to_string()));
    match t {
        ColumnType::List(inner) => {
            let mut item = Map::new();
            type_keys(inner, &mut item);
            prop.insert("items".into(), Value::Object(item));
        }
        ColumnType::Struct(fields) => {
            let props: Vec<Value> = fields
                .iter()
                .map(|f| {
                    let mut p = Map::new();
                    p.insert("name".into(), json!(f.name));
                    type_keys(&f.ty, &mut p);
                    p.insert("required".into(), json!(!f.nullable));
                    Value::Object(p)
                })
                .collect();
            prop.insert("properties".into(), json!(props));
        }
        _ => {}
    }
}

fn literal(l: &Literal) -> Value {
    match l {
        Literal::Int(i) => json!(i),
        Literal::Float(f) => json!(f),
        Literal::Str(s) => json!(s),
    }
}

fn severity(c: &QualityCheck) -> &'static str {
    match c.severity {
        CheckSeverity::Error => "error",
        CheckSeverity::Warn => "warning",
    }
}

/// A quality rule in ODCS form, and the column it belongs to (if any).
fn quality(c: &QualityCheck) -> (Option<String>, Value) {
    let mut q = Map::new();
    q.insert("name".into(), json!(c.name));
    let column = match &c.kind {
        CheckKind::NotNull { columns } if columns.len() == 1 => {
            q.insert("metric".into(), json!("nullValues"));
            q.insert("mustBe".into(), json!(0));
            Some(columns[0].to_string())
        }
        CheckKind::Unique { columns } if columns.len() == 1 => {
            q.insert("metric".into(), json!("duplicateValues"));
            q.insert("mustBe".into(), json!(0));
            Some(columns[0].to_string())
        }
        CheckKind::NotNull { columns } | CheckKind::Unique { columns } => {
            let metric = if matches!(c.kind, CheckKind::NotNull { .. }) {
                "nullValues"
            } else {
                "duplicateValues"
            };
            q.insert("metric".into(), json!(metric));
            q.insert("mustBe".into(), json!(0));
            q.insert(
                "arguments".into(),
                json!({"properties": columns.iter().map(|c| c.to_string()).collect::<Vec<_>>()}),
            );
            None
        }
        CheckKind::AcceptedValues { column, values } => {
            q.insert("metric".into(), json!("invalidValues"));
            q.insert("mustBe".into(), json!(0));
            q.insert(
                "arguments".into(),
                json!({"validValues": values.iter().map(literal).collect::<Vec<_>>()}),
            );
            Some(column.to_string())
        }
        CheckKind::Range { column, min, max } => {
            let mut args = Map::new();
            if let Some(m) = min {
                args.insert("minimum".into(), literal(m));
            }
            if let Some(m) = max {
                args.insert("maximum".into(), literal(m));
            }
            q.insert("metric".into(), json!("invalidValues"));
            q.insert("mustBe".into(), json!(0));
            q.insert("arguments".into(), Value::Object(args));
            Some(column.to_string())
        }
        CheckKind::RowCount { min, max } => {
            q.insert("metric".into(), json!("rowCount"));
            match (min, max) {
                (Some(a), Some(b)) => q.insert("mustBeBetween".into(), json!([a, b])),
                (Some(a), None) => q.insert("mustBeGreaterOrEqualTo".into(), json!(a)),
                (None, Some(b)) => q.insert("mustBeLessOrEqualTo".into(), json!(b)),
                (None, None) => q.insert("mustBeGreaterOrEqualTo".into(), json!(0)),
            };
            None
        }
        CheckKind::Sql { query, must_be } => {
            q.insert("type".into(), json!("sql"));
            q.insert("query".into(), json!(query.value));
            q.insert("mustBe".into(), json!(must_be));
            None
        }
    };
    q.insert("severity".into(), json!(severity(c)));
    (column, Value::Object(q))
}

/// The product's contract as an ODCS v3.1.0 document.
pub fn export(p: &ProductDescriptor) -> Value {
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), json!(API_VERSION));
    doc.insert("kind".into(), json!("DataContract"));
    doc.insert(
        "id".into(),
        json!(format!("{}/{}", p.domain.value, p.name.value)),
    );
    doc.insert("name".into(), json!(p.name.as_str()));
    doc.insert("version".into(), json!(p.version.to_string()));
    doc.insert("status".into(), json!(p.status.as_str()));
    doc.insert("domain".into(), json!(p.domain.as_str()));
    doc.insert("dataProduct".into(), json!(p.name.as_str()));
    let mut description = Map::new();
    for (k, v) in [
        ("purpose", &p.description.purpose),
        ("usage", &p.description.usage),
        ("limitations", &p.description.limitations),
    ] {
        if let Some(v) = v {
            description.insert(k.into(), json!(v));
        }
    }
    if !description.is_empty() {
        doc.insert("description".into(), Value::Object(description));
    }
    if !p.tags.is_empty() {
        doc.insert("tags".into(), json!(p.tags));
    }
    doc.insert(
        "team".into(),
        json!({"name": p.domain.as_str(), "members": [{"username": p.owner.value, "role": "owner"}]}),
    );
    let schema: Vec<Value> = p
        .outputs
        .iter()
        .map(|o| {
            let mut column_quality: Vec<(String, Value)> = Vec::new();
            let mut table_quality = Vec::new();
            for c in &o.quality {
                match quality(c) {
                    (Some(col), q) => column_quality.push((col, q)),
                    (None, q) => table_quality.push(q),
                }
            }
            let properties: Vec<Value> = o
                .columns
                .iter()
                .map(|c| {
                    let mut prop = Map::new();
                    prop.insert("name".into(), json!(c.name.as_str()));
                    type_keys(&c.ty.value, &mut prop);
                    prop.insert("required".into(), json!(!c.nullable));
                    if let Some(pos) = o.primary_key.iter().position(|k| k.value == c.name.value) {
                        prop.insert("primaryKey".into(), json!(true));
                        prop.insert("primaryKeyPosition".into(), json!(pos + 1));
                    }
                    if let Some(d) = &c.description {
                        prop.insert("description".into(), json!(d));
                    }
                    if let Some(cl) = c.classification {
                        prop.insert("classification".into(), json!(cl.as_str()));
                    }
                    let q: Vec<&Value> = column_quality
                        .iter()
                        .filter(|(col, _)| col == c.name.as_str())
                        .map(|(_, q)| q)
                        .collect();
                    if !q.is_empty() {
                        prop.insert("quality".into(), json!(q));
                    }
                    Value::Object(prop)
                })
                .collect();
            let mut object = Map::new();
            object.insert("name".into(), json!(o.name.as_str()));
            // The table's own name: the domain is the schema it lives in
            // (a server's `schema`), and tools such as `datacontract test`
            // name the table they read by `physicalName`, which a dotted
            // `<domain>.<output>` does not resolve as.
            object.insert("physicalName".into(), json!(o.name.as_str()));
            object.insert("logicalType".into(), json!("object"));
            object.insert("physicalType".into(), json!("table"));
            if let Some(d) = &o.description {
                object.insert("description".into(), json!(d));
            }
            object.insert("properties".into(), Value::Array(properties));
            if !table_quality.is_empty() {
                object.insert("quality".into(), Value::Array(table_quality));
            }
            Value::Object(object)
        })
        .collect();
    doc.insert("schema".into(), Value::Array(schema));
    if let Some(f) = p.slo.as_ref().and_then(|s| s.freshness.as_ref()) {
        let text = format_duration(f.value);
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (value, unit) = text.split_at(split);
        doc.insert(
            "slaProperties".into(),
            json!([{"property": "latency", "value": value.parse::<u64>().unwrap_or(0), "unit": unit}]),
        );
    }
    Value::Object(doc)
}

/// A JSON value as YAML text.
pub fn to_yaml(v: &Value) -> String {
    fn convert(v: &Value) -> saphyr::Yaml<'static> {
        use saphyr::{Scalar, Yaml};
        match v {
            Value::Null => Yaml::Value(Scalar::Null),
            Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Value(Scalar::Integer(i)),
                None => Yaml::Value(Scalar::FloatingPoint(n.as_f64().unwrap_or(0.0).into())),
            },
            Value::String(s) => Yaml::Value(Scalar::String(s.clone().into())),
            Value::Array(a) => Yaml::Sequence(a.iter().map(convert).collect()),
            Value::Object(o) => Yaml::Mapping(
                o.iter()
                    .map(|(k, v)| (Yaml::Value(Scalar::String(k.clone().into())), convert(v)))
                    .collect(),
            ),
        }
    }
    let mut out = String::new();
    let doc = convert(v);
    let mut emitter = saphyr::YamlEmitter::new(&mut out);
    emitter.multiline(true);
    if emitter.dump(&doc).is_err() {
        return serde_json::to_string_pretty(v).unwrap_or_default();
    }
    out.push('\n');
    out
}

fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A descriptor (`product.yaml`) skeleton from a schema-valid ODCS document.
///
/// Returns the text and what could not be carried over, as notes.
pub fn import(doc: &Value) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let domain = text(doc, "domain").unwrap_or("my_domain");
    if doc.get("domain").is_none() {
        notes.push("the contract has no `domain`; set the domain".into());
    }
    let name = text(doc, "dataProduct")
        .or_else(|| text(doc, "name"))
        .unwrap_or("my_product");
    let owner = doc
        .get("team")
        .and_then(|t| t.get("members").or(Some(t)))
        .and_then(Value::as_array)
        .and_then(|members| {
            members
                .iter()
                .find(|m| text(m, "role") == Some("owner"))
                .or_else(|| members.first())
        })
        .and_then(|m| text(m, "username"))
        .unwrap_or("owner@example.org");
    let status = match text(doc, "status") {
        Some(s @ ("draft" | "active" | "deprecated" | "retired")) => s,
        Some(other) => {
            notes.push(format!("status `{other}` has no equivalent; using `draft`"));
            "draft"
        }
        None => "draft",
    };
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Imported from an ODCS contract. Fill in the inputs and the transform."
    );
    let _ = writeln!(y, "apiVersion: meshwork/v1\nkind: DataProduct");
    let _ = writeln!(y, "domain: {domain}\nname: {name}");
    let _ = writeln!(y, "version: {}", text(doc, "version").unwrap_or("0.1.0"));
    let _ = writeln!(y, "status: {status}\nowner: {}", yaml_string(owner));
    if let Some(d) = doc.get("description").and_then(Value::as_object) {
        let _ = writeln!(y, "description:");
        for k in ["purpose", "usage", "limitations"] {
            if let Some(v) = d.get(k).and_then(Value::as_str) {
                let _ = writeln!(y, "  {k}: {}", yaml_string(v));
            }
        }
    }
    if let Some(tags) = doc.get("tags").and_then(Value::as_array) {
        let tags: Vec<String> = tags
            .iter()
            .filter_map(Value::as_str)
            .map(yaml_string)
            .collect();
        let _ = writeln!(y, "tags: [{}]", tags.join(", "));
    }
    let _ = writeln!(
        y,
        "inputs:\n  # - {{name: raw, source: {{format: csv, path: data/*.csv}}}}\n  # - {{name: upstream, product: other_domain/other_product, version: ^1}}\n  []"
    );
    let _ = writeln!(
        y,
        "transform:\n  query: \"SELECT 1 -- TODO: the SQL that builds the outputs\""
    );
    let _ = writeln!(y, "outputs:");
    for object in doc
        .get("schema")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        import_object(object, &mut y, &mut notes);
    }
    if let Some(sla) = doc.get("slaProperties").and_then(Value::as_array) {
        for s in sla {
            match (text(s, "property"), s.get("value"), text(s, "unit")) {
                (Some("latency" | "freshness"), Some(v), unit) => {
                    let unit = match unit.unwrap_or("d") {
                        "d" | "day" | "days" => "d",
                        "h" | "hour" | "hours" => "h",
                        "m" | "min" | "minutes" => "m",
                        "w" | "week" | "weeks" => "w",
                        "s" | "second" | "seconds" => "s",
                        other => {
                            notes.push(format!("SLA unit `{other}` not understood; assumed days"));
                            "d"
                        }
                    };
                    let _ = writeln!(y, "slo:\n  freshness: {}{unit}", v.as_u64().unwrap_or(1));
                }
                (Some(other), _, _) => {
                    notes.push(format!("SLA property `{other}` is not imported"))
                }
                _ => {}
            }
        }
    }
    (y, notes)
}

fn column_type(prop: &Value) -> (String, Option<String>) {
    let mut lossy = false;
    let t = odcs_type(prop, &mut lossy);
    let note = lossy.then(|| {
        format!(
            "column `{}` has a type with no exact contract type; check `{t}`",
            text(prop, "name").unwrap_or("?")
        )
    });
    (t.to_string(), note)
}

/// The contract type of an ODCS property: its `physicalType` when that is
/// one of ours, else built from `logicalType`, descending into an object's
/// `properties` and an array's `items`. `lossy` is set when a guess was made.
fn odcs_type(prop: &Value, lossy: &mut bool) -> ColumnType {
    if let Some(t) = text(prop, "physicalType")
        && let Ok(ct) = t.parse::<ColumnType>()
    {
        return ct;
    }
    match text(prop, "logicalType").unwrap_or("string") {
        "integer" => ColumnType::BigInt,
        "number" => ColumnType::Double,
        "boolean" => ColumnType::Boolean,
        "date" => ColumnType::Date,
        "timestamp" => ColumnType::Timestamp,
        "string" => ColumnType::String,
        "array" => match prop.get("items") {
            Some(items) => ColumnType::List(Box::new(odcs_type(items, lossy))),
            None => {
                *lossy = true;
                ColumnType::List(Box::new(ColumnType::String))
            }
        },
        "object" => {
            let fields: Vec<StructField> = prop
                .get("properties")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some(StructField {
                        name: text(p, "name")?.to_string(),
                        ty: odcs_type(p, lossy),
                        nullable: p.get("required").and_then(Value::as_bool) != Some(true),
                    })
                })
                .collect();
            if fields.is_empty() {
                *lossy = true;
                ColumnType::String
            } else {
                ColumnType::Struct(fields)
            }
        }
        _ => {
            *lossy = true;
            ColumnType::String
        }
    }
}

fn yaml_literal(v: &Value) -> String {
    match v {
        Value::String(s) => yaml_string(s),
        other => other.to_string(),
    }
}

/// The descriptor check for an ODCS quality rule, if it maps onto one.
fn import_quality(q: &Value, column: Option<&str>) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let args = q.get("arguments");
    match (text(q, "metric").or(text(q, "rule")), text(q, "type")) {
        (_, Some("sql")) => {
            parts.push("check: sql".into());
            parts.push(format!("query: {}", yaml_string(text(q, "query")?)));
            parts.push(format!("must_be: {}", q.get("mustBe")?));
        }
        (Some("nullValues"), _) => match column {
            Some(c) => parts.push(format!("check: not_null, column: {c}")),
            None => {
                let cols = args?.get("properties")?.as_array()?;
                let cols: Vec<&str> = cols.iter().filter_map(Value::as_str).collect();
                parts.push(format!("check: not_null, columns: [{}]", cols.join(", ")));
            }
        },
        (Some("duplicateValues"), _) => match column {
            Some(c) => parts.push(format!("check: unique, columns: [{c}]")),
            None => {
                let cols = args?.get("properties")?.as_array()?;
                let cols: Vec<&str> = cols.iter().filter_map(Value::as_str).collect();
                parts.push(format!("check: unique, columns: [{}]", cols.join(", ")));
            }
        },
        (Some("invalidValues"), _) => {
            let c = column?;
            if let Some(values) = args
                .and_then(|a| a.get("validValues"))
                .and_then(Value::as_array)
            {
                let values: Vec<String> = values.iter().map(yaml_literal).collect();
                parts.push(format!(
                    "check: accepted_values, column: {c}, values: [{}]",
                    values.join(", ")
                ));
            } else {
                let min = args.and_then(|a| a.get("minimum"));
                let max = args.and_then(|a| a.get("maximum"));
                if min.is_none() && max.is_none() {
                    return None;
                }
                let mut s = format!("check: range, column: {c}");
                if let Some(m) = min {
                    let _ = write!(s, ", min: {m}");
                }
                if let Some(m) = max {
                    let _ = write!(s, ", max: {m}");
                }
                parts.push(s);
            }
        }
        (Some("rowCount"), _) => {
            let mut s = "check: row_count".to_string();
            if let Some(b) = q.get("mustBeBetween").and_then(Value::as_array) {
                let _ = write!(s, ", min: {}, max: {}", b.first()?, b.get(1)?);
            } else if let Some(m) = q.get("mustBeGreaterOrEqualTo") {
                let _ = write!(s, ", min: {m}");
            } else if let Some(m) = q.get("mustBeGreaterThan").and_then(Value::as_u64) {
                let _ = write!(s, ", min: {}", m + 1);
            } else if let Some(m) = q.get("mustBeLessOrEqualTo") {
                let _ = write!(s, ", max: {m}");
            } else {
                return None;
            }
            parts.push(s);
        }
        _ => return None,
    }
    if let Some(n) = text(q, "name") {
        parts.push(format!("name: {n}"));
    }
    if matches!(text(q, "severity"), Some("warning" | "warn" | "info")) {
        parts.push("severity: warn".into());
    }
    Some(format!("{{{}}}", parts.join(", ")))
}

fn import_object(object: &Value, y: &mut String, notes: &mut Vec<String>) {
    let name = text(object, "name").unwrap_or("output");
    let _ = writeln!(y, "  - name: {name}");
    if let Some(d) = text(object, "description") {
        let _ = writeln!(y, "    description: {}", yaml_string(d));
    }
    let props: Vec<&Value> = object
        .get("properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut keys: Vec<(i64, &str)> = props
        .iter()
        .filter(|p| p.get("primaryKey").and_then(Value::as_bool) == Some(true))
        .filter_map(|p| {
            Some((
                p.get("primaryKeyPosition")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX),
                text(p, "name")?,
            ))
        })
        .collect();
    keys.sort();
    if !keys.is_empty() {
        let keys: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let _ = writeln!(y, "    primary_key: [{}]", keys.join(", "));
    }
    let _ = writeln!(y, "    columns:");
    let mut checks = Vec::new();
    for p in &props {
        let Some(col) = text(p, "name") else { continue };
        let (ty, note) = column_type(p);
        notes.extend(note);
        let mut line = format!("      - {{name: {col}, type: {}", yaml_string(&ty));
        if p.get("required").and_then(Value::as_bool) == Some(true) {
            line.push_str(", nullable: false");
        }
        if let Some(d) = text(p, "description") {
            let _ = write!(line, ", description: {}", yaml_string(d));
        }
        match text(p, "classification") {
            Some(c @ ("public" | "internal" | "confidential" | "pii")) => {
                let _ = write!(line, ", classification: {c}");
            }
            Some(other) => notes.push(format!(
                "column `{col}`: classification `{other}` has no equivalent (public, internal, confidential, pii)"
            )),
            None => {}
        }
        line.push('}');
        let _ = writeln!(y, "{line}");
        for q in p
            .get("quality")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match import_quality(q, Some(col)) {
                Some(c) => checks.push(c),
                None => notes.push(format!(
                    "column `{col}`: a quality rule was not imported: {q}"
                )),
            }
        }
    }
    for q in object
        .get("quality")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match import_quality(q, None) {
            Some(c) => checks.push(c),
            None => notes.push(format!(
                "output `{name}`: a quality rule was not imported: {q}"
            )),
        }
    }
    // Primary-key checks are implied by `primary_key`; do not repeat them.
    checks.retain(|c| !c.contains("name: primary_key_"));
    if !checks.is_empty() {
        let _ = writeln!(y, "    quality:");
        for c in checks {
            let _ = writeln!(y, "      - {c}");
        }
    }
}
