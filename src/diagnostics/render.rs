//! Renderers for diagnostics: `human` (rustc-style snippets through
//! annotate-snippets), `json` (one object per line, stable fields) and
//! `github` (workflow command annotations).

use std::fmt::Write as _;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

use super::{Diagnostic, Label, Severity, Sources};

/// Output format for diagnostics (`--error-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorFormat {
    /// Source snippets with file:line:col, colour on a terminal.
    Human,
    /// One JSON object per line.
    Json,
    /// GitHub Actions workflow annotations (`::error file=…`).
    Github,
    /// One line per problem (`file:line:col: error[CODE]: message`) and its
    /// hint: what the Argo CD UI shows well.
    Short,
}

/// Renders all diagnostics in `format`; `color` only affects `human`.
pub fn render_all(
    diags: &[Diagnostic],
    sources: &Sources,
    format: ErrorFormat,
    color: bool,
) -> String {
    let mut out = String::new();
    for d in diags {
        let d = &clipped(d, sources.secrets());
        match format {
            ErrorFormat::Human => {
                out.push_str(&human(d, sources, color));
                out.push_str("\n\n");
            }
            ErrorFormat::Json => {
                out.push_str(&json(d, sources));
                out.push('\n');
            }
            ErrorFormat::Github => {
                out.push_str(&github(d, sources));
                out.push('\n');
            }
            ErrorFormat::Short => out.push_str(&short(d, sources)),
        }
    }
    // Snippets are masked by span; a message can still quote a value (a
    // Jsonnet `error` built from a secret field): scrub them all.
    sources.secrets().scrub(&out)
}

/// Longest message, note, help or label text shown, in characters.
pub const MAX_TEXT_CHARS: usize = 400;

/// `d` with every text scrubbed of secrets, then cut to
/// [`MAX_TEXT_CHARS`]: a message can quote a value of megabytes (a Jsonnet
/// `error` of a long string), and a secret cut in two would escape the
/// scrub of the rendered text.
///
/// Control characters are shown escaped (`\u{1b}`, `\n`): every text
/// may quote what users and files wrote (an environment name from a
/// plugin variable, a YAML key), and an escape sequence or a line break
/// in it would recolour a terminal or add a line of its own, a fake
/// problem, to what Argo CD shows.
pub fn clipped(d: &Diagnostic, secrets: &crate::redact::SecretValues) -> Diagnostic {
    let clip = |s: &str| -> String {
        let s = &secrets.scrub(s);
        let cut = match s.char_indices().nth(MAX_TEXT_CHARS) {
            Some((i, _)) => format!("{} … ({} more characters)", &s[..i], s[i..].chars().count()),
            None => s.to_owned(),
        };
        escape_controls(&cut)
    };
    let mut d = d.clone();
    d.message = clip(&d.message);
    d.notes = d.notes.iter().map(|n| clip(n)).collect();
    d.help = d.help.as_deref().map(clip);
    for label in d.primary.iter_mut().chain(d.related.iter_mut()) {
        label.message = clip(&label.message);
    }
    d
}

/// `s` with its control characters escaped, line breaks included: what
/// the repository or a template wrote, made safe to print on a terminal.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A diagnostic as rustc-style text.
pub fn human(d: &Diagnostic, sources: &Sources, color: bool) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let mut group = Group::with_title(level.primary_title(d.message.as_str()).id(d.code.as_str()));
    // Related labels in the primary's file join its snippet; others get their own.
    let mut by_file: Vec<(super::FileId, Vec<(&Label, bool)>)> = Vec::new();
    let labels = d
        .primary
        .iter()
        .map(|l| (l, true))
        .chain(d.related.iter().map(|l| (l, false)));
    for (label, primary) in labels {
        match by_file.iter_mut().find(|(f, _)| *f == label.span.file) {
            Some((_, v)) => v.push((label, primary)),
            None => by_file.push((label.span.file, vec![(label, primary)])),
        }
    }
    // Paths come from the repository (an imported file's name): shown
    // like the texts, control characters escaped.
    let paths: Vec<String> = by_file
        .iter()
        .map(|(file, _)| escape_controls(&sources.get(*file).path))
        .collect();
    for ((file, labels), path) in by_file.iter().zip(&paths) {
        let src = sources.get(*file);
        let mut snippet = Snippet::source(&*src.text).path(path.as_str()).fold(true);
        for (label, primary) in labels {
            let kind = if *primary {
                AnnotationKind::Primary
            } else {
                AnnotationKind::Context
            };
            let range = visible_range(&src.text, label.span.start, label.span.end);
            snippet = snippet.annotation(kind.span(range).label(label.message.as_str()));
        }
        group = group.element(snippet);
    }
    let mut report: Vec<Group<'_>> = vec![group];
    let mut tail = Group::with_level(Level::NOTE);
    for n in &d.notes {
        tail = tail.element(Level::NOTE.message(n.as_str()));
    }
    if let Some(h) = &d.help {
        tail = tail.element(Level::HELP.message(h.as_str()));
    }
    if !tail.is_empty() {
        report.push(tail);
    }
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    renderer.render(&report)
}

/// Clamps a span to the text, snaps it to character boundaries (the snippet
/// library slices by bytes) and gives empty spans one visible character.
fn visible_range(text: &str, start: usize, end: usize) -> std::ops::Range<usize> {
    let mut start = start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = end.min(text.len()).max(start);
    while !text.is_char_boundary(end) {
        end += 1;
    }
    if end == start && start < text.len() {
        end = text[start..]
            .chars()
            .next()
            .map_or(start, |c| start + c.len_utf8());
    }
    start..end
}

/// A diagnostic as one line, plus an indented hint line.
pub fn short(d: &Diagnostic, sources: &Sources) -> String {
    let place = d.primary.as_ref().map_or_else(String::new, |l| {
        let loc = location(l, sources);
        format!(
            "{}:{}:{}: ",
            escape_controls(loc.file),
            loc.line,
            loc.column
        )
    });
    let mut out = format!(
        "{place}{}[{}]: {}\n",
        severity_name(d.severity),
        d.code.as_str(),
        d.message
    );
    // A few notes (known values, the first frames of a Jsonnet stack).
    for n in d.notes.iter().take(3) {
        out.push_str(&format!("  note: {n}\n"));
    }
    if let Some(h) = &d.help {
        out.push_str(&format!("  help: {h}\n"));
    }
    out
}

/// Location fields shared by the machine formats.
#[derive(Serialize)]
struct Location<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    message: &'a str,
}

fn location<'a>(label: &'a Label, sources: &'a Sources) -> Location<'a> {
    let (line, column) = sources.line_col(label.span.file, label.span.start);
    let (end_line, end_column) = sources.line_col(label.span.file, label.span.end);
    Location {
        file: &sources.get(label.span.file).path,
        line,
        column,
        end_line,
        end_column,
        message: &label.message,
    }
}

/// The stable JSON form of one diagnostic (one line, no trailing newline).
///
/// Fields: `severity` (`error`|`warning`), `code`, `message`, `location`
/// (`file`, `line`, `column`, `end_line`, `end_column`, `message`; null when
/// the problem has no place), `related` (same shape), `notes`, `help`.
pub fn json(d: &Diagnostic, sources: &Sources) -> String {
    #[derive(Serialize)]
    struct Json<'a> {
        severity: &'static str,
        code: &'static str,
        message: &'a str,
        location: Option<Location<'a>>,
        related: Vec<Location<'a>>,
        notes: &'a [String],
        help: Option<&'a str>,
    }
    let j = Json {
        severity: severity_name(d.severity),
        code: d.code.as_str(),
        message: &d.message,
        location: d.primary.as_ref().map(|l| location(l, sources)),
        related: d.related.iter().map(|l| location(l, sources)).collect(),
        notes: &d.notes,
        help: d.help.as_deref(),
    };
    serde_json::to_string(&j).unwrap_or_default()
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// A GitHub Actions workflow command for one diagnostic.
pub fn github(d: &Diagnostic, sources: &Sources) -> String {
    let mut out = format!("::{}", severity_name(d.severity));
    let mut props = vec![format!("title={}", escape_property(d.code.as_str()))];
    if let Some(l) = &d.primary {
        let loc = location(l, sources);
        props.insert(0, format!("file={}", escape_property(loc.file)));
        props.insert(1, format!("line={}", loc.line));
        props.insert(2, format!("col={}", loc.column));
        props.insert(3, format!("endLine={}", loc.end_line));
        if loc.end_line == loc.line {
            props.insert(4, format!("endColumn={}", loc.end_column));
        }
    }
    let _ = write!(out, " {}::", props.join(","));
    let mut text = d.message.clone();
    for n in &d.notes {
        text.push('\n');
        text.push_str(n);
    }
    if let Some(h) = &d.help {
        text.push_str("\nhelp: ");
        text.push_str(h);
    }
    out.push_str(&escape_data(&text));
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{Code, Span};

    fn sample() -> (Sources, Diagnostic) {
        let mut sources = Sources::default();
        let f = sources.add("controlcenter.yaml", "dev:\n  svc:\n    replica: 2\n");
        let d = Diagnostic::error(Code::UnknownField, "unknown field `replica`")
            .at(Span::new(f, 16, 23), "not a service field")
            .help("did you mean `replicas`?");
        (sources, d)
    }

    #[test]
    fn control_characters_in_texts_are_shown_escaped() {
        let (sources, mut d) = sample();
        d.message = "environment `dev\u{1b}[31mRED\nfake line` is unknown".to_owned();
        d.notes = vec!["first\nsecond\u{7}".to_owned()];
        let d = clipped(&d, sources.secrets());
        assert_eq!(
            d.message,
            "environment `dev\\u{1b}[31mRED\\nfake line` is unknown"
        );
        assert_eq!(d.notes, ["first\\nsecond\\u{7}"]);
        for format in [ErrorFormat::Human, ErrorFormat::Short, ErrorFormat::Github] {
            let text = render_all(&[d.clone()], &sources, format, false);
            assert!(
                !text.contains('\u{1b}') && !text.contains("\nfake line"),
                "{text}"
            );
        }
    }

    #[test]
    fn human_form_names_file_line_column() {
        let (sources, d) = sample();
        let text = human(&d, &sources, false);
        assert!(text.contains("controlcenter.yaml:3:5"), "{text}");
        assert!(text.contains("error[CC0202]"), "{text}");
        assert!(text.contains("help: did you mean `replicas`?"), "{text}");
    }

    #[test]
    fn json_form_carries_the_same_location() {
        let (sources, d) = sample();
        let v: serde_json::Value = serde_json::from_str(&json(&d, &sources)).unwrap();
        assert_eq!(v["code"], "CC0202");
        assert_eq!(v["location"]["file"], "controlcenter.yaml");
        assert_eq!(v["location"]["line"], 3);
        assert_eq!(v["location"]["column"], 5);
    }

    #[test]
    fn spans_inside_a_character_are_snapped_not_panicking() {
        let mut sources = Sources::default();
        let f = sources.add("x.yaml", "city: M\u{fffd}nchen\n");
        let d = Diagnostic::error(Code::FileUnreadable, "not UTF-8").at(Span::new(f, 8, 9), "here");
        let text = human(&d, &sources, false);
        assert!(text.contains("x.yaml:1:8"), "{text}");
    }

    #[test]
    fn short_form_is_a_located_line_and_a_hint() {
        let (sources, d) = sample();
        assert_eq!(
            short(&d, &sources),
            "controlcenter.yaml:3:5: error[CC0202]: unknown field `replica`\n  help: did you mean `replicas`?\n"
        );
    }

    #[test]
    fn github_form_is_one_escaped_line() {
        let (sources, d) = sample();
        let line = github(&d, &sources);
        assert!(
            line.starts_with("::error file=controlcenter.yaml,line=3,col=5,"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        assert!(line.contains("%0Ahelp: did you mean"));
    }
}
