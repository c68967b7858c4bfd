//! `mesh contract export|import`: ODCS v3 documents in and out.

use std::path::Path;
use std::sync::Arc;

use mesh_contract::odcs;
use mesh_spec::diagnostic::SourceFile;
use mesh_spec::yaml::{self, Node, Span};
use mesh_spec::{Diagnostic, ProductDescriptor, ProductRef};
use serde_json::Value;

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;

/// A YAML node as JSON, for schema validation.
fn to_json(node: &Node) -> Value {
    match &node.value {
        yaml::Value::Null => Value::Null,
        yaml::Value::Bool(b) => Value::Bool(*b),
        yaml::Value::Int(i) => Value::from(*i),
        yaml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        yaml::Value::Str(s) => Value::String(s.clone()),
        yaml::Value::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        yaml::Value::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.name.clone(), to_json(v)))
                .collect(),
        ),
    }
}

/// The span of the node a JSON pointer names, or of its closest ancestor.
fn span_at(root: &Node, pointer: &str) -> Span {
    let mut node = root;
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        let next = match &node.value {
            yaml::Value::Map(entries) => entries.iter().find(|(k, _)| k.name == part).map(|e| &e.1),
            yaml::Value::Seq(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    node.span
}

impl Mesh {
    /// A product's contract as an ODCS v3.1.0 document: the deployed
    /// definition, or the local one if the product is not deployed.
    pub async fn contract_export(&self, name: &str) -> Result<Value> {
        let deployed = self.deployed().await?;
        let (local, _) = self.load_project()?;
        let mut known: Vec<ProductRef> = deployed.iter().map(|(r, _)| r.product.clone()).collect();
        known.extend(local.iter().map(ProductDescriptor::product_ref));
        let r = self.resolve(name, &known)?;
        let p = deployed
            .iter()
            .map(|(_, p)| p)
            .chain(local.iter())
            .find(|p| p.product_ref() == r)
            .ok_or_else(|| ServiceError::ProductNotFound {
                product: name.to_string(),
                hint: None,
            })?;
        Ok(odcs::export(p))
    }
}

/// A descriptor skeleton from an ODCS file, with notes on what was not
/// carried over. A document that breaks the ODCS schema is refused with
/// one diagnostic per problem, each at its place in the file.
pub fn contract_import(file: &Path) -> Result<(String, Vec<String>)> {
    let text = std::fs::read_to_string(file).map_err(|source| ServiceError::Read {
        path: file.display().to_string(),
        source,
    })?;
    let source = SourceFile::new(file, Arc::<str>::from(text.as_str()));
    let root = yaml::parse(&text).map_err(|e| ServiceError::Invalid {
        diagnostics: vec![Diagnostic::error("yaml", e.message).at(&source, e.span)],
    })?;
    let doc = to_json(&root);
    let errors = odcs::validate(&doc);
    if !errors.is_empty() {
        return Err(ServiceError::Invalid {
            diagnostics: errors
                .into_iter()
                .map(|e| {
                    let at = if e.path.is_empty() {
                        "/"
                    } else {
                        e.path.as_str()
                    };
                    Diagnostic::error("odcs-schema", format!("{at}: {}", e.message))
                        .at(&source, span_at(&root, &e.path))
                        .help(format!(
                            "the document must follow the ODCS {} JSON Schema",
                            odcs::API_VERSION
                        ))
                })
                .collect(),
        });
    }
    Ok(odcs::import(&doc))
}
