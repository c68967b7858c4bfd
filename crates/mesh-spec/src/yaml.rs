//! A spanned YAML tree built from `saphyr-parser` events.
//!
//! Every node and every mapping key remembers where it came from, so later
//! stages can point at the exact `line:col` of a problem. Duplicate keys are
//! rejected here, because a YAML map that silently keeps the last value hides
//! mistakes in descriptors.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as RawSpan, StrInput};

/// A byte range in a source text, with the 1-based line and column of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column (in characters) of `start`.
    pub col: usize,
}

impl Span {
    /// Length in bytes, at least 1 so that a label always has something to point at.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start).max(1)
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// The YAML kind of this value, as a user would name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A mapping key: always a string scalar.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// A YAML node with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// One step of a path into a YAML tree: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

impl Node {
    /// The tree as JSON, as a policy sees a descriptor: keys and scalars
    /// as written, without locations.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Where `path` leads: the span of the node it names (a mapping value
    /// is located at its key, which is where a reader looks). A path that
    /// leaves the tree stops at the deepest node that exists, so a missing
    /// key points at the mapping that should hold it. The second value
    /// says whether the whole path was found.
    pub fn locate(&self, path: &[PathStep]) -> (Span, bool) {
        let mut node = self;
        let mut span = self.span;
        for step in path {
            let next = match (&node.value, step) {
                (Value::Map(entries), PathStep::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| &key.name == k)
                    .map(|(key, v)| (key.span, v)),
                (Value::Seq(items), PathStep::Index(i)) => items.get(*i).map(|v| (v.span, v)),
                _ => None,
            };
            match next {
                Some((at, v)) => {
                    span = at;
                    node = v;
                }
                None => return (span, false),
            }
        }
        (span, true)
    }
}

/// A YAML syntax error with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
}

/// Maps the parser's character positions to byte offsets, lines and columns.
///
/// Lines and columns are derived from the byte offset rather than taken from
/// the parser's markers, which can point past the input on some errors.
struct Positions<'a> {
    src: &'a str,
    /// Byte offset of every char, plus one entry for the end of input.
    char_bytes: Vec<usize>,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
}

impl<'a> Positions<'a> {
    fn new(src: &'a str) -> Self {
        let mut char_bytes: Vec<usize> = src.char_indices().map(|(b, _)| b).collect();
        char_bytes.push(src.len());
        let line_starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Positions {
            src,
            char_bytes,
            line_starts,
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.char_bytes
            .get(char_index)
            .copied()
            .unwrap_or(self.src.len())
    }

    /// A span over bytes `start..end`, with the line and column of `start`.
    fn at(&self, start: usize, end: usize) -> Span {
        let line = self.line_starts.partition_point(|&s| s <= start);
        let line_start = self.line_starts[line - 1];
        Span {
            start,
            end: end.max(start),
            line,
            col: self.src[line_start..start].chars().count() + 1,
        }
    }

    fn span(&self, raw: &RawSpan) -> Span {
        self.at(self.byte(raw.start.index()), self.byte(raw.end.index()))
    }
}

/// Parses one YAML document into a spanned tree.
///
/// An empty document yields a `Null` node. More than one document is an error.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let positions = Positions::new(src);
    let mut parser = Parser::new_from_str(src);
    let mut builder = Builder {
        positions: &positions,
        anchors: HashMap::new(),
    };
    let mut root: Option<Node> = None;
    while let Some(next) = parser.next_event() {
        let (event, raw) = next.map_err(|e| SyntaxError {
            message: e.info().to_string(),
            span: positions.span(&RawSpan::new(*e.marker(), *e.marker())),
        })?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err(SyntaxError {
                        message: "a descriptor holds exactly one YAML document".into(),
                        span: positions.span(&raw),
                    });
                }
                let node = builder.node(&mut parser)?;
                root = Some(node);
            }
            other => {
                return Err(SyntaxError {
                    message: format!("unexpected YAML event {other:?}"),
                    span: positions.span(&raw),
                });
            }
        }
    }
    Ok(root.unwrap_or(Node {
        value: Value::Null,
        span: positions.at(0, 0),
    }))
}

struct Builder<'p, 's> {
    positions: &'p Positions<'s>,
    anchors: HashMap<usize, Node>,
}

impl<'s> Builder<'_, 's> {
    fn next(
        &self,
        parser: &mut Parser<'s, StrInput<'s>>,
    ) -> Result<(Event<'s>, RawSpan), SyntaxError> {
        match parser.next_event() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => Err(SyntaxError {
                message: e.info().to_string(),
                span: self.positions.span(&RawSpan::new(*e.marker(), *e.marker())),
            }),
            None => Err(SyntaxError {
                message: "unexpected end of YAML input".into(),
                span: self
                    .positions
                    .at(self.positions.src.len(), self.positions.src.len()),
            }),
        }
    }

    /// Reads one node whose first event is the next one.
    fn node(&mut self, parser: &mut Parser<'s, StrInput<'s>>) -> Result<Node, SyntaxError> {
        let (event, raw) = self.next(parser)?;
        self.node_from(event, raw, parser)
    }

    fn node_from(
        &mut self,
        event: Event<'s>,
        raw: RawSpan,
        parser: &mut Parser<'s, StrInput<'s>>,
    ) -> Result<Node, SyntaxError> {
        let span = self.positions.span(&raw);
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, _tag) => (
                Node {
                    value: resolve_scalar(text, style),
                    span,
                },
                anchor,
            ),
            Event::SequenceStart(anchor, _tag) => {
                let mut items = Vec::new();
                let end = loop {
                    let (event, raw) = self.next(parser)?;
                    if matches!(event, Event::SequenceEnd) {
                        break self.positions.span(&raw);
                    }
                    items.push(self.node_from(event, raw, parser)?);
                };
                let end_byte = items.last().map_or(end.end, |n| n.span.end).max(end.start);
                (
                    Node {
                        value: Value::Seq(items),
                        span: Span {
                            end: end_byte,
                            ..span
                        },
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _tag) => {
                let mut entries: Vec<(Key, Node)> = Vec::new();
                let mut end_byte = span.end;
                loop {
                    let (event, raw) = self.next(parser)?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key_node = self.node_from(event, raw, parser)?;
                    let key = match key_node.value {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Null => "null".to_string(),
                        other => {
                            return Err(SyntaxError {
                                message: format!(
                                    "mapping keys must be plain names, found {}",
                                    other.kind()
                                ),
                                span: key_node.span,
                            });
                        }
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == key) {
                        return Err(SyntaxError {
                            message: format!(
                                "duplicate key `{key}` (first defined at line {}, column {})",
                                first.span.line, first.span.col
                            ),
                            span: key_node.span,
                        });
                    }
                    let value = self.node(parser)?;
                    end_byte = value.span.end;
                    entries.push((
                        Key {
                            name: key,
                            span: key_node.span,
                        },
                        value,
                    ));
                }
                (
                    Node {
                        value: Value::Map(entries),
                        span: Span {
                            end: end_byte.max(span.end),
                            ..span
                        },
                    },
                    anchor,
                )
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => (
                    Node {
                        value: node.value.clone(),
                        span,
                    },
                    0,
                ),
                None => {
                    return Err(SyntaxError {
                        message: "alias refers to an unknown anchor".into(),
                        span,
                    });
                }
            },
            other => {
                return Err(SyntaxError {
                    message: format!("unexpected YAML event {other:?}"),
                    span,
                });
            }
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

/// Resolves a scalar with the YAML 1.2 core schema. Quoted scalars are always strings.
fn resolve_scalar(text: Cow<'_, str>, style: ScalarStyle) -> Value {
    if style != ScalarStyle::Plain {
        return Value::Str(text.into_owned());
    }
    match text.as_ref() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Int(i);
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_keys_and_values() {
        let src = "a: 1\nb:\n  - x\n  - 'y'\n";
        let root = parse(src).unwrap();
        let Value::Map(entries) = root.value else {
            panic!("not a map")
        };
        assert_eq!(entries[1].0.name, "b");
        assert_eq!((entries[1].0.span.line, entries[1].0.span.col), (2, 1));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[1].value, Value::Str("y".into()));
        assert_eq!((items[1].span.line, items[1].span.col), (4, 5));
        assert_eq!(&src[items[0].span.start..items[0].span.end], "x");
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let root = parse("v: '1.0'\nw: 1.0\nx: 2\n").unwrap();
        let Value::Map(e) = root.value else { panic!() };
        assert_eq!(e[0].1.value, Value::Str("1.0".into()));
        assert_eq!(e[1].1.value, Value::Float(1.0));
        assert_eq!(e[2].1.value, Value::Int(2));
    }

    #[test]
    fn duplicate_keys_are_rejected_with_location() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
        assert_eq!((err.span.line, err.span.col), (3, 1));
    }

    #[test]
    fn syntax_errors_have_locations() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.span.line >= 1);
    }

    #[test]
    fn byte_offsets_survive_multibyte_text() {
        let src = "d: \"héllo wörld\"\ne: x\n";
        let root = parse(src).unwrap();
        let Value::Map(e) = root.value else { panic!() };
        assert_eq!(&src[e[1].0.span.start..e[1].0.span.end], "e");
    }

    #[test]
    fn paths_locate_keys_and_stop_where_the_tree_ends() {
        let src = "outputs:\n  - name: o\n    columns:\n      - {name: a}\n      - {name: b, description: x}\n";
        let root = parse(src).unwrap();
        let path = |steps: &[&str]| -> Vec<PathStep> {
            steps
                .iter()
                .map(|s| match s.parse() {
                    Ok(i) => PathStep::Index(i),
                    Err(_) => PathStep::Key((*s).to_string()),
                })
                .collect()
        };
        let (at, found) = root.locate(&path(&["outputs", "0", "columns", "1", "description"]));
        assert!(found);
        assert_eq!((at.line, at.col), (5, 19));
        // A missing key points at the mapping that should hold it.
        let (at, found) = root.locate(&path(&["outputs", "0", "columns", "0", "description"]));
        assert!(!found);
        assert_eq!((at.line, at.col), (4, 9));
        assert_eq!(root.to_json()["outputs"][0]["columns"][1]["name"], "b");
    }
}
