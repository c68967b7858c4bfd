//! Diagnostics: a problem in a user's file, with where it is and how to fix it.
//!
//! Rendering is left to the caller; a [`Diagnostic`] implements
//! [`miette::Diagnostic`] so the CLI can print rustc-style snippets, and it
//! serialises to JSON for scripts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use crate::yaml::Span;

/// How bad a diagnostic is. Errors fail the command; warnings don't.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// A source file, shared by all the diagnostics that point into it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Arc<Self> {
        Arc::new(SourceFile {
            path: path.into(),
            text: text.into(),
        })
    }
}

/// Where a diagnostic points.
#[derive(Debug, Clone)]
pub struct Location {
    pub file: Arc<SourceFile>,
    pub span: Span,
}

/// One problem found in the user's input.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub level: Level,
    /// A stable, greppable code such as `unknown-field`.
    pub code: &'static str,
    pub message: String,
    pub location: Option<Location>,
    /// Text shown under the snippet, next to the span.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// A path that is relevant but has no snippet (for example a missing file).
    pub path: Option<PathBuf>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Error,
            code,
            message: message.into(),
            location: None,
            label: None,
            help: None,
            path: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, file: &Arc<SourceFile>, span: Span) -> Self {
        self.location = Some(Location {
            file: file.clone(),
            span,
        });
        self
    }

    pub fn in_file(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }

    /// `file:line:col`, or the bare path, or nothing.
    pub fn position(&self) -> Option<String> {
        match (&self.location, &self.path) {
            (Some(loc), _) => Some(format!(
                "{}:{}:{}",
                loc.file.path.display(),
                loc.span.line,
                loc.span.col
            )),
            (None, Some(p)) => Some(p.display().to_string()),
            (None, None) => None,
        }
    }

    /// A JSON-friendly view of the diagnostic.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "level": self.level,
            "code": self.code,
            "message": self.message,
            "file": self.location.as_ref().map(|l| l.file.path.display().to_string())
                .or_else(|| self.path.as_ref().map(|p| p.display().to_string())),
            "line": self.location.as_ref().map(|l| l.span.line),
            "column": self.location.as_ref().map(|l| l.span.col),
            "help": self.help,
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position() {
            Some(pos) => write!(f, "{pos}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Diagnostic {}

/// Renders a diagnostic with miette: a snippet of the file and a label.
#[derive(Debug)]
pub struct Rendered {
    diagnostic: Diagnostic,
    source: Option<NamedSource<Arc<str>>>,
}

impl From<Diagnostic> for Rendered {
    fn from(diagnostic: Diagnostic) -> Self {
        let source = diagnostic.location.as_ref().map(|l| {
            NamedSource::new(l.file.path.display().to_string(), l.file.text.clone())
                .with_language("yaml")
        });
        Rendered { diagnostic, source }
    }
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.diagnostic.location, &self.diagnostic.path) {
            (Some(loc), _) => write!(
                f,
                "{} ({}:{}:{})",
                self.diagnostic.message,
                loc.file.path.display(),
                loc.span.line,
                loc.span.col
            ),
            (None, Some(p)) => write!(f, "{} ({})", self.diagnostic.message, p.display()),
            (None, None) => f.write_str(&self.diagnostic.message),
        }
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("mesh::{}", self.diagnostic.code)))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.level {
            Level::Error => miette::Severity::Error,
            Level::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let loc = self.diagnostic.location.as_ref()?;
        let span = SourceSpan::new(
            loc.span.start.into(),
            loc.span
                .len()
                .min(loc.file.text.len().saturating_sub(loc.span.start)),
        );
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            self.diagnostic.label.clone(),
            span,
        ))))
    }
}

/// Suggests the closest candidate to a misspelt word, if one is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
