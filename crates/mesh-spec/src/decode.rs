//! Decoding spanned YAML into typed descriptors, collecting every problem.
//!
//! Decoding never stops at the first problem: each field is checked and
//! each problem becomes a [`Diagnostic`] pointing at the offending node.

use std::sync::Arc;

use crate::diagnostic::{Diagnostic, SourceFile, did_you_mean};
use crate::yaml::{Key, Node, Span, Value};

/// Accumulates diagnostics for one file.
pub struct Ctx {
    pub file: Arc<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The entries of a mapping whose keys were checked against a field list.
pub struct Fields<'a> {
    entries: &'a [(Key, Node)],
    pub span: Span,
}

impl<'a> Fields<'a> {
    pub fn get(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, v)| k.name == name && v.value != Value::Null)
            .map(|(_, v)| v)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl Ctx {
    pub fn new(file: Arc<SourceFile>) -> Self {
        Ctx {
            file,
            diagnostics: Vec::new(),
        }
    }

    fn add(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.diagnostics.push(d);
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    pub fn warning(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = Diagnostic::warning(code, message).at(&self.file, span);
        self.add(d)
    }

    pub fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = Diagnostic::error(code, message).at(&self.file, span);
        self.add(d)
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// Checks that `node` is a mapping and that its keys are all known.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            let found = node.value.kind();
            self.error(
                "wrong-type",
                node.span,
                format!("{what} must be a mapping, found {found}"),
            )
            .label = Some("expected a mapping".into());
            return None;
        };
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                let hint = match did_you_mean(&key.name, allowed.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known fields of {what}: {}", allowed.join(", ")),
                };
                let d = self.error(
                    "unknown-field",
                    key.span,
                    format!("unknown field `{}` in {what}", key.name),
                );
                d.label = Some("unknown field".into());
                d.help = Some(hint);
            }
        }
        Some(Fields {
            entries,
            span: node.span,
        })
    }

    /// A required field; reports it missing at the mapping's span.
    pub fn require<'n>(&mut self, f: &Fields<'n>, name: &str, what: &str) -> Option<&'n Node> {
        let node = f.get(name);
        if node.is_none() {
            let d = self.error(
                "missing-field",
                f.span,
                format!("{what} is missing the required field `{name}`"),
            );
            d.help = Some(format!("add `{name}: ...`"));
        }
        node
    }

    /// A string scalar. Numbers and booleans are not silently turned into strings.
    pub fn string(&mut self, node: &Node, what: &str) -> Option<crate::Spanned<String>> {
        match &node.value {
            Value::Str(s) => Some(crate::Spanned::new(s.clone(), node.span)),
            other => {
                let found = other.kind();
                let d = self.error(
                    "wrong-type",
                    node.span,
                    format!("{what} must be a string, found {found}"),
                );
                d.help = Some("quote the value to make it a string".into());
                None
            }
        }
    }

    /// A scalar rendered as text (strings, numbers); used for versions.
    pub fn scalar_text(&mut self, node: &Node, what: &str) -> Option<crate::Spanned<String>> {
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            // Numbers keep the text as written: `1.0` is not `1`.
            Value::Int(_) | Value::Float(_) => self
                .file
                .text
                .get(node.span.start..node.span.end)
                .map(|t| t.trim().to_string())
                .unwrap_or_default(),
            other => {
                let found = other.kind();
                self.error(
                    "wrong-type",
                    node.span,
                    format!("{what} must be a string, found {found}"),
                );
                return None;
            }
        };
        Some(crate::Spanned::new(text, node.span))
    }

    pub fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            other => {
                let found = other.kind();
                let d = self.error(
                    "wrong-type",
                    node.span,
                    format!("{what} must be true or false, found {found}"),
                );
                d.label = Some("expected a boolean".into());
                None
            }
        }
    }

    pub fn uint(&mut self, node: &Node, what: &str) -> Option<u64> {
        match &node.value {
            Value::Int(i) if *i >= 0 => Some(*i as u64),
            other => {
                let found = other.kind();
                self.error(
                    "wrong-type",
                    node.span,
                    format!("{what} must be a whole number ≥ 0, found {found}"),
                );
                None
            }
        }
    }

    pub fn number(&mut self, node: &Node, what: &str) -> Option<f64> {
        match &node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            other => {
                let found = other.kind();
                self.error(
                    "wrong-type",
                    node.span,
                    format!("{what} must be a number, found {found}"),
                );
                None
            }
        }
    }

    /// A list; a single scalar is *not* accepted in place of a list.
    pub fn list<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => items,
            other => {
                let found = other.kind();
                let d = self.error(
                    "wrong-type",
                    node.span,
                    format!("{what} must be a list, found {found}"),
                );
                d.help = Some("write a list, for example `[a, b]`".into());
                &[]
            }
        }
    }

    /// A list of strings, or one string standing for a list of one.
    pub fn strings(&mut self, node: &Node, what: &str) -> Vec<crate::Spanned<String>> {
        match &node.value {
            Value::Str(s) => vec![crate::Spanned::new(s.clone(), node.span)],
            Value::Seq(items) => items.iter().filter_map(|n| self.string(n, what)).collect(),
            other => {
                let found = other.kind();
                self.error(
                    "wrong-type",
                    node.span,
                    format!("{what} must be a list of strings, found {found}"),
                );
                Vec::new()
            }
        }
    }

    /// A name checked by `parse`, reporting why it is invalid.
    pub fn name<T>(
        &mut self,
        node: &Node,
        what: &str,
        parse: fn(&str) -> Result<T, crate::name::NameError>,
    ) -> Option<crate::Spanned<T>> {
        let s = self.string(node, what)?;
        match parse(&s.value) {
            Ok(v) => Some(crate::Spanned::new(v, s.span)),
            Err(e) => {
                let d = self.error("invalid-name", s.span, format!("invalid {what}: {e}"));
                d.help = Some(
                    "names are lowercase letters, digits and `_`, starting with a letter (max 63)"
                        .into(),
                );
                None
            }
        }
    }

    /// One of a fixed set of keywords.
    pub fn keyword<T>(
        &mut self,
        node: &Node,
        what: &str,
        names: &[&str],
        parse: fn(&str) -> Option<T>,
    ) -> Option<T> {
        let s = self.string(node, what)?;
        match parse(&s.value) {
            Some(v) => Some(v),
            None => {
                let help = match did_you_mean(&s.value, names.iter().copied()) {
                    Some(m) => format!("did you mean `{m}`?"),
                    None => format!("expected one of: {}", names.join(", ")),
                };
                let d = self.error(
                    "invalid-value",
                    s.span,
                    format!("`{}` is not a valid {what}", s.value),
                );
                d.help = Some(help);
                None
            }
        }
    }
}
