//! One diagnostic type for every stage: YAML parsing, schema validation,
//! resolution, Jsonnet evaluation, post-processing and emission.
//!
//! A [`Diagnostic`] stores byte spans into files held by [`Sources`]; line
//! and column are computed only when it is rendered (see [`render`]).

pub mod codes;
pub mod render;

use std::sync::Arc;

pub use codes::Code;

use crate::redact::SecretValues;

/// Index of a file in [`Sources`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(u32);

/// A loaded file: its repo-relative display path and its text.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as shown to users (`controlcenter.yaml`, `<lib>/controlcenter/lib.libsonnet`).
    pub path: String,
    /// Full text. Empty for files that could not be decoded.
    pub text: Arc<str>,
}

/// Every file a run has read, so diagnostics can show snippets, and every
/// secret value it has seen, so nothing printed can show one.
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
    /// Each path's id: a run may read thousands of files
    /// (`controlcenter.d/`), each registered once.
    ids: std::collections::HashMap<String, FileId>,
    secrets: SecretValues,
}

impl Sources {
    /// Registers a file (or returns the id of an already registered path).
    pub fn add(&mut self, path: impl Into<String>, text: impl Into<Arc<str>>) -> FileId {
        let path = path.into();
        if let Some(&id) = self.ids.get(&path) {
            return id;
        }
        let id = FileId(self.files.len() as u32);
        self.ids.insert(path.clone(), id);
        self.files.push(SourceFile {
            path,
            text: text.into(),
        });
        id
    }

    /// Masks byte ranges of a file's text (secret values) so no snippet
    /// can show them. Lengths are kept, so every span stays valid.
    pub fn redact(&mut self, id: FileId, ranges: &[(usize, usize)]) {
        if ranges.is_empty() {
            return;
        }
        let file = &mut self.files[id.0 as usize];
        let mut text = file.text.to_string();
        for &(start, end) in ranges {
            let (start, end) = (
                floor_char_boundary(&text, start.min(text.len())),
                end.min(text.len()),
            );
            let Some(part) = text.get(start..end) else {
                continue;
            };
            let masked: String = part
                .chars()
                .map(|c| {
                    if c == '\n' {
                        "\n".to_owned()
                    } else {
                        "*".repeat(c.len_utf8())
                    }
                })
                .collect();
            text.replace_range(start..end, &masked);
        }
        file.text = text.into();
    }

    /// Masks every value of a sensitive file that could not be decoded or
    /// parsed: no secret can be told apart, so none may show.
    pub fn mask_unparsed(&mut self, id: FileId) {
        let ranges = crate::redact::unparsed_value_ranges(&self.get(id).text);
        self.redact(id, &ranges);
    }

    /// The secrets seen so far; whatever is printed goes through
    /// [`SecretValues::scrub`].
    pub fn secrets(&self) -> &SecretValues {
        &self.secrets
    }

    /// Remembers secret values so no printed text can show them.
    pub fn secrets_mut(&mut self) -> &mut SecretValues {
        &mut self.secrets
    }

    /// The file behind an id.
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// Finds a registered file by its display path.
    pub fn find(&self, path: &str) -> Option<FileId> {
        self.ids.get(path).copied()
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, id: FileId, offset: usize) -> (usize, usize) {
        line_col(&self.get(id).text, offset)
    }
}

/// 1-based line and character column of `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A byte range in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// Start byte offset (inclusive).
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

impl Span {
    /// A span covering `start..end` of `file`.
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Span {
            file,
            start,
            end: end.max(start),
        }
    }
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The run fails.
    Error,
    /// Reported, the run goes on.
    Warning,
}

/// A located message attached to a diagnostic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
}

/// A user-facing problem, carried unchanged from the stage that found it to
/// the renderer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, documented in `docs/errors.md`.
    pub code: Code,
    /// One-line summary.
    pub message: String,
    /// The main location, when the problem has one.
    pub primary: Option<Label>,
    /// Other places that explain it ("first defined here").
    pub related: Vec<Label>,
    /// Extra lines of context (a Jsonnet stack, a list of known values).
    pub notes: Vec<String>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error with `code` and `message`.
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: None,
            related: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// A new warning with `code` and `message`.
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Sets the primary location.
    pub fn at(mut self, span: Span, label: impl Into<String>) -> Self {
        self.primary = Some(Label {
            span,
            message: label.into(),
        });
        self
    }

    /// Adds a related location.
    pub fn related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push(Label {
            span,
            message: label.into(),
        });
        self
    }

    /// Adds a note line.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this diagnostic fails the run.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    fn sort_key(&self, sources: &Sources) -> (String, usize, Code, String) {
        match &self.primary {
            Some(l) => (
                sources.get(l.span.file).path.clone(),
                l.span.start,
                self.code,
                self.message.clone(),
            ),
            None => (String::new(), 0, self.code, self.message.clone()),
        }
    }
}

/// Diagnostics gathered by a run, in a stable order.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Adds many.
    pub fn extend(&mut self, ds: impl IntoIterator<Item = Diagnostic>) {
        self.items.extend(ds);
    }

    /// Sorted by file, position, code and message, without exact repeats
    /// (the same `defaults` problem is found once per environment).
    pub fn into_sorted(mut self, sources: &Sources) -> Vec<Diagnostic> {
        self.items
            .sort_by_cached_key(|d| (d.sort_key(sources), d.related.clone(), d.notes.clone()));
        self.items.dedup();
        self.items
    }
}

/// The result of a stage that may have found problems along the way.
pub type Outcome<T> = Result<T, Vec<Diagnostic>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let text = "a: 1\nbé: x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 5), (2, 1));
        // 'x' is after "bé: " which is 5 bytes but 4 characters.
        assert_eq!(line_col(text, 10), (2, 5));
    }

    #[test]
    fn sorted_diagnostics_drop_exact_repeats() {
        let mut sources = Sources::default();
        let f = sources.add("a.yaml", "x: 1\n");
        let d = Diagnostic::error(Code::SchemaViolation, "bad").at(Span::new(f, 0, 1), "");
        let mut all = Diagnostics::default();
        all.push(d.clone());
        all.push(d);
        assert_eq!(all.into_sorted(&sources).len(), 1);
    }
}
