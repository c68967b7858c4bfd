//! Loading the SQL text of a transform, from disk or from deployed texts.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::descriptor::{ProductDescriptor, Sql};
use crate::diagnostic::{Diagnostic, SourceFile};
use crate::yaml::Span;

/// SQL text with where it came from, so errors can point into it.
#[derive(Debug, Clone)]
pub struct SqlText {
    pub text: String,
    /// The SQL file, or the descriptor for inline SQL.
    pub file: Arc<SourceFile>,
    /// For inline SQL: the span of the string in the descriptor.
    pub inline_at: Option<Span>,
}

impl SqlText {
    /// The span of a 1-based `line:col` inside the SQL.
    pub fn span_at(&self, line: usize, col: usize) -> Span {
        if let Some(at) = self.inline_at {
            return self.inline_span(at, line, col).unwrap_or(at);
        }
        let mut offset = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let byte = l
                    .char_indices()
                    .nth(col.saturating_sub(1))
                    .map_or(l.len(), |(b, _)| b);
                let start = offset + byte;
                let end = l.trim_end().len().max(byte + 1) + offset;
                return Span {
                    start,
                    end: end.min(self.text.len()),
                    line,
                    col,
                };
            }
            offset += l.len();
        }
        Span {
            start: 0,
            end: self.text.len().min(1),
            line: 1,
            col: 1,
        }
    }

    /// For inline SQL: where `line:col` of the SQL is in the descriptor,
    /// found by the SQL line's text inside the scalar (plain, quoted
    /// without escapes, or a block). `None` when it is not found there.
    fn inline_span(&self, at: Span, line: usize, col: usize) -> Option<Span> {
        let sql_line = self.text.lines().nth(line.checked_sub(1)?)?;
        let doc = &self.file.text;
        let within = doc.get(at.start..at.end.max(at.start).min(doc.len()))?;
        let trimmed = sql_line.trim_start();
        if trimmed.is_empty() {
            return None;
        }
        let found = at.start + within.find(trimmed)?;
        // The column within the SQL line, past its own leading spaces.
        let skipped = sql_line.chars().count() - trimmed.chars().count();
        let offset_chars = col.saturating_sub(1).saturating_sub(skipped);
        let start = found
            + trimmed
                .char_indices()
                .nth(offset_chars)
                .map_or(trimmed.len(), |(b, _)| b);
        let before = &doc[..start];
        let doc_line = before.matches('\n').count() + 1;
        let doc_col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .chars()
            .count()
            + 1;
        let line_end = doc[start..].find('\n').map_or(doc.len(), |i| start + i);
        Some(Span {
            start,
            end: line_end.max(start + 1).min(doc.len()),
            line: doc_line,
            col: doc_col,
        })
    }

    /// The span from 1-based `line:col` up to (not including) `end`
    /// (`line:col` too), for an error the planner located precisely.
    pub fn span_between(&self, start: (usize, usize), end: (usize, usize)) -> Span {
        let mut span = self.span_at(start.0, start.1);
        let to = self.span_at(end.0, end.1);
        if to.start > span.start {
            span.end = to.start;
        }
        span
    }

    /// The first 1-based `line:col` where `word` stands as a whole word
    /// (case-insensitively), outside of nothing cleverer than the text.
    pub fn find_word(&self, word: &str) -> Option<(usize, usize)> {
        let word = word.to_ascii_lowercase();
        for (i, line) in self.text.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            let mut from = 0;
            while let Some(at) = lower[from..].find(&word).map(|a| a + from) {
                let before = lower[..at].chars().next_back();
                let after = lower[at + word.len()..].chars().next();
                let boundary =
                    |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                if boundary(before) && boundary(after) {
                    return Some((i + 1, lower[..at].chars().count() + 1));
                }
                from = at + word.len();
            }
        }
        None
    }

    /// The span of the whole statement.
    pub fn whole(&self) -> Span {
        self.inline_at.unwrap_or(Span {
            start: 0,
            end: self.text.trim_end().len().max(1),
            line: 1,
            col: 1,
        })
    }
}

/// Stored SQL texts by relative path, as deployed.
pub type SqlTexts = BTreeMap<String, String>;

/// Reads the SQL of `sql`: inline, from `stored` texts, or from the product folder.
pub fn load_sql(
    p: &ProductDescriptor,
    sql: &Sql,
    stored: Option<&SqlTexts>,
) -> Result<SqlText, Diagnostic> {
    match sql {
        Sql::Inline(q) => Ok(SqlText {
            text: q.value.clone(),
            file: p.file.clone(),
            inline_at: Some(q.span),
        }),
        Sql::File(path) => {
            let full = p.dir.join(&path.value);
            let text = match stored {
                Some(texts) => texts.get(&path.value).cloned().ok_or_else(|| {
                    Diagnostic::error(
                        "missing-file",
                        format!("the deployed product has no SQL text for `{}`", path.value),
                    )
                    .at(&p.file, path.span)
                    .help("redeploy the product with `mesh deploy`")
                })?,
                None => std::fs::read_to_string(&full).map_err(|e| {
                    Diagnostic::error(
                        "missing-file",
                        format!("cannot read SQL file `{}`: {e}", path.value),
                    )
                    .at(&p.file, path.span)
                    .help(format!(
                        "create {} or fix the path (relative to the product folder)",
                        full.display()
                    ))
                })?,
            };
            Ok(SqlText {
                text: text.clone(),
                file: SourceFile::new(full, text),
                inline_at: None,
            })
        }
    }
}

/// Every SQL file a product references, read from disk, for deployment.
pub fn sql_files(p: &ProductDescriptor) -> Result<SqlTexts, Diagnostic> {
    let mut texts = SqlTexts::new();
    let sqls = p
        .transform
        .iter()
        .chain(p.outputs.iter().filter_map(|o| o.sql.as_ref()));
    for sql in sqls {
        if let Sql::File(path) = sql {
            let t = load_sql(p, sql, None)?;
            texts.insert(path.value.clone(), t.text);
        }
    }
    Ok(texts)
}
