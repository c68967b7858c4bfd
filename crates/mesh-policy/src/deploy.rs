//! Deploy-time rules: product descriptors checked against the policies
//! (package `mesh.deploy`, and `mesh.domain.<domain>.deploy` for a domain's
//! own products) before `mesh plan` and `mesh deploy` accept them.
//!
//! The input is the descriptor as written, so a rule can look at any field
//! without Rust knowing about it. A violation names a path into the
//! descriptor, which becomes a `file:line:col` diagnostic.

use serde_json::{Value, json};

use mesh_spec::yaml::PathStep;
use mesh_spec::{Diagnostic, ProductDescriptor};

use crate::error::{PolicyError, Result};
use crate::policies::PolicySet;

/// One rule a descriptor breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name (`column-description`), when the policy gives one.
    pub rule: Option<String>,
    pub message: String,
    /// Where in the descriptor; empty for the descriptor as a whole.
    pub path: Vec<PathStep>,
    /// `deny` blocks the deploy; `warn` is reported only.
    pub blocking: bool,
}

/// The input a deploy rule sees for one descriptor. `columns` is each
/// column with its derived classification (see `mesh-service`'s lineage),
/// an empty list when none was derived.
pub fn deploy_input(p: &ProductDescriptor, descriptor: Value, columns: Value) -> Value {
    let visibility = p
        .access
        .as_ref()
        .map_or("discoverable", |a| a.visibility.as_str());
    json!({
        "descriptor": descriptor,
        "product": {
            "id": p.product_ref().to_string(),
            "domain": p.domain.value.as_str(),
            "name": p.name.value.as_str(),
            "visibility": visibility,
            "status": p.status.as_str(),
        },
        "file": p.file.path.display().to_string(),
        "columns": columns,
    })
}

/// Reads one element of a `deny`/`warn` set: `{rule, message, path}` or a
/// bare message string.
fn violation(package: &str, v: &Value, blocking: bool) -> Result<Violation> {
    let bad = |why: &str| {
        PolicyError::Eval(format!(
            "{package}: a violation must be a message string or {{rule, message, path}}; got {v} ({why})"
        ))
    };
    if let Some(message) = v.as_str() {
        return Ok(Violation {
            rule: None,
            message: message.to_string(),
            path: Vec::new(),
            blocking,
        });
    }
    let obj = v.as_object().ok_or_else(|| bad("not an object"))?;
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no `message` string"))?
        .to_string();
    let rule = match obj.get("rule") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("`rule` is not a string")),
    };
    let mut path = Vec::new();
    if let Some(p) = obj.get("path") {
        let steps = p.as_array().ok_or_else(|| bad("`path` is not a list"))?;
        for step in steps {
            path.push(match step {
                Value::String(s) => PathStep::Key(s.clone()),
                Value::Number(n) => PathStep::Index(
                    n.as_u64()
                        .and_then(|i| usize::try_from(i).ok())
                        .ok_or_else(|| bad("a path index is not a whole number"))?,
                ),
                _ => return Err(bad("a path step is neither a key nor an index")),
            });
        }
    }
    Ok(Violation {
        rule,
        message,
        path,
        blocking,
    })
}

impl PolicySet {
    /// The violations of one descriptor: the global `mesh.deploy` rules and
    /// its domain's `mesh.domain.<domain>.deploy` rules, `deny` then `warn`.
    pub fn deploy_violations(&self, domain: &str, input: &Value) -> Result<Vec<Violation>> {
        let mut out = Vec::new();
        let mut scopes = vec![(self.global_engine(), "data.mesh.deploy".to_string())];
        if let Some(engine) = self.domain_engine(domain) {
            scopes.push((engine, format!("data.mesh.domain.{domain}.deploy")));
        }
        for (engine, package) in scopes {
            let deny = format!("{package}.deny");
            let warn = format!("{package}.warn");
            let values = Self::values(engine, input, &[deny.as_str(), warn.as_str()])?;
            for ((set, blocking), v) in [(&deny, true), (&warn, false)].into_iter().zip(values) {
                let Some(v) = v else {
                    continue;
                };
                let items = match v {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for item in &items {
                    let found = violation(set, item, blocking)?;
                    if !out.contains(&found) {
                        out.push(found);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Checks a descriptor against the deploy rules and returns each
    /// violation as a diagnostic at the place in `product.yaml` it names:
    /// errors for `deny`, warnings for `warn`.
    pub fn check_descriptor(&self, p: &ProductDescriptor) -> Result<Vec<Diagnostic>> {
        self.check_descriptor_with(p, Value::Array(Vec::new()))
    }

    /// [`PolicySet::check_descriptor`] with each column's derived
    /// classification and sources as `input.columns`.
    pub fn check_descriptor_with(
        &self,
        p: &ProductDescriptor,
        columns: Value,
    ) -> Result<Vec<Diagnostic>> {
        // The descriptor parsed once already, so it parses again.
        let tree = mesh_spec::yaml::parse(&p.file.text).map_err(|e| {
            PolicyError::Eval(format!(
                "{}: cannot re-read the descriptor: {}",
                p.file.path.display(),
                e.message
            ))
        })?;
        let input = deploy_input(p, tree.to_json(), columns);
        let violations = self.deploy_violations(p.domain.value.as_str(), &input)?;
        Ok(violations
            .into_iter()
            .map(|v| {
                let (mut span, found) = tree.locate(&v.path);
                if !found {
                    // Point at the first line of the node that lacks the
                    // key, not at all of it.
                    let text = &p.file.text[span.start.min(p.file.text.len())..];
                    span.end = span
                        .end
                        .min(span.start + text.find('\n').unwrap_or(text.len()));
                }
                let message = match &v.rule {
                    Some(rule) => format!("policy `{rule}`: {}", v.message),
                    None => format!("policy: {}", v.message),
                };
                let d = if v.blocking {
                    Diagnostic::error("policy", message)
                } else {
                    Diagnostic::warning("policy", message)
                };
                let label = match v.path.last() {
                    Some(_) if !found => format!("`{}` is missing", show_path(&v.path)),
                    _ => "here".to_string(),
                };
                d.at(&p.file, span).label(label).help(
                    "deploy rules live in policies/*.rego (package mesh.deploy); \
                     `mesh policy test` runs their tests",
                )
            })
            .collect())
    }
}

/// `outputs[0].columns[2].description`.
fn show_path(path: &[PathStep]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            PathStep::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathStep::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}
