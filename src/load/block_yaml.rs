//! The events of plain block YAML, read a line at a time.
//!
//! Input files are, nearly always, block mappings and sequences of
//! one-line scalars (plain, or quoted without escapes) and one-line flow
//! collections of the same. For such text this reader gives the very
//! events, at the very positions, that saphyr's parser gives, several
//! times faster (saphyr was most of the time a warm render spent
//! loading). At anything else (anchors, aliases, tags, flow collections
//! over several lines, block scalars, escapes, scalars over several lines,
//! explicit keys, document markers, tabs, carriage returns, text other
//! than ASCII, keys saphyr would not take, deep nesting, and anything
//! malformed) it stops, and the caller parses the text with saphyr, which
//! gives the one true answer or error. A test holds the two to the same
//! events on many generated, damaged and cut documents.

use std::borrow::Cow;

use saphyr_parser::{Event, ScalarStyle};

/// Why reading stopped before the end.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop<E> {
    /// The text is not of the plain kind this reads: parse it with saphyr.
    Unsupported,
    /// The consumer refused an event.
    Refused(E),
}

impl<E> From<E> for Stop<E> {
    fn from(e: E) -> Self {
        Stop::Refused(e)
    }
}

/// Gives `emit` the events of `text`, whose top-level mapping is indented
/// by `indent` spaces (0 for a document; more for a run of a larger
/// mapping's entries), with their start and end (byte offsets, which are
/// saphyr's character indices in ASCII text), as saphyr would;
/// [`Stop::Unsupported`] as soon as the text is not plain block YAML.
/// Events already given then stand for nothing.
pub fn read_indented<'t, E>(
    text: &'t str,
    indent: usize,
    emit: &mut dyn FnMut(Event<'t>, usize, usize) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    if !text
        .bytes()
        .all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
    {
        return Err(Stop::Unsupported);
    }
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        line: None,
        depth: 0,
        emit,
    };
    reader.line = reader.content_line(0);
    reader.document(indent)
}

/// A line with content (not blank, not only a comment).
#[derive(Clone, Copy, Debug)]
struct Line {
    /// Offset of its first character.
    start: usize,
    /// Offset of its first character that is not a space.
    content: usize,
    /// Offset of its line break, or the end of the text.
    end: usize,
}

impl Line {
    fn indent(&self) -> usize {
        self.content - self.start
    }
}

struct Reader<'t, 'e, E> {
    text: &'t str,
    bytes: &'t [u8],
    /// The content line being read; `None` past the last.
    line: Option<Line>,
    /// Collections open.
    depth: usize,
    emit: &'e mut dyn FnMut(Event<'t>, usize, usize) -> Result<(), E>,
}

type Read<E> = Result<(), Stop<E>>;

/// Longest simple key: saphyr forgets a possible key more than 1024
/// characters before its colon (and then refuses the colon).
const MAX_KEY_LEN: usize = 1024;

/// Deepest nesting read: saphyr counts flow nesting in a byte (and stops
/// at 255), and the caller refuses far less deep anyway.
const MAX_DEPTH: usize = 200;

impl<'t, E> Reader<'t, '_, E> {
    /// The first content line from offset `from` (a line start) on.
    fn content_line(&self, mut from: usize) -> Option<Line> {
        let len = self.bytes.len();
        while from < len {
            let end = self.bytes[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(len, |i| from + i);
            let content = self.bytes[from..end]
                .iter()
                .position(|&b| b != b' ')
                .map(|i| from + i);
            match content {
                Some(c) if self.bytes[c] != b'#' => {
                    return Some(Line {
                        start: from,
                        content: c,
                        end,
                    })
                }
                _ => from = end + 1,
            }
        }
        None
    }

    /// Moves past the current line.
    fn next_line(&mut self) {
        self.line = self.line.and_then(|l| self.content_line(l.end + 1));
    }

    fn emit(&mut self, event: Event<'t>, start: usize, end: usize) -> Read<E> {
        (self.emit)(event, start, end).map_err(Stop::Refused)
    }

    /// Where the block that ends here ends: the next token, or the end.
    fn block_end(&self) -> usize {
        self.line.map_or(self.bytes.len(), |l| l.content)
    }

    fn document(&mut self, indent: usize) -> Read<E> {
        self.emit(Event::StreamStart, 0, 0)?;
        let first = self.line.ok_or(Stop::Unsupported)?;
        self.emit(Event::DocumentStart(false), first.content, first.content)?;
        if first.indent() != indent || self.key(first.content, first).is_none() {
            return Err(Stop::Unsupported);
        }
        self.mapping(indent, first.content)?;
        if self.line.is_some() {
            return Err(Stop::Unsupported);
        }
        let end = self.bytes.len();
        self.emit(Event::DocumentEnd, end, end)?;
        self.emit(Event::StreamEnd, end, end)
    }

    /// A simple key at `at` of `line`: its end and its colon's, when it is
    /// letters, digits and `_./-` (starting with a letter, a digit or `_`)
    /// followed by a colon and a space or the line's end.
    fn key(&self, at: usize, line: Line) -> Option<usize> {
        let b = self.bytes;
        let end = self.key_text_end(at, line)?;
        (b[end] == b':' && (end + 1 == line.end || b[end + 1] == b' ')).then_some(end)
    }

    /// Where the text of a simple key at `at` ends (a character of `line`
    /// follows it); `None` if none starts there, or a longer one than
    /// saphyr takes for a key ([`MAX_KEY_LEN`]).
    fn key_text_end(&self, at: usize, line: Line) -> Option<usize> {
        let b = self.bytes;
        if !(b[at].is_ascii_alphanumeric() || b[at] == b'_') {
            return None;
        }
        let len = b[at..line.end].iter().position(|&c| {
            !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-'))
        })?;
        (len <= MAX_KEY_LEN).then_some(at + len)
    }

    /// Counts a collection opened; [`Stop::Unsupported`] past
    /// [`MAX_DEPTH`].
    fn enter(&mut self) -> Read<E> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Stop::Unsupported);
        }
        Ok(())
    }

    /// Whether `line` is a sequence item (`-` then a space or its end).
    fn is_item(&self, line: Line) -> bool {
        self.bytes[line.content] == b'-'
            && (line.content + 1 == line.end || self.bytes[line.content + 1] == b' ')
    }

    /// A block mapping whose keys are at column `indent`, the first at
    /// `first` of the current line.
    fn mapping(&mut self, indent: usize, first: usize) -> Read<E> {
        self.enter()?;
        self.emit(Event::MappingStart(0, None), first, first)?;
        let mut at = first;
        loop {
            let line = self.line.ok_or(Stop::Unsupported)?;
            let colon = self.key(at, line).ok_or(Stop::Unsupported)?;
            self.emit(
                Event::Scalar(
                    Cow::Borrowed(&self.text[at..colon]),
                    ScalarStyle::Plain,
                    0,
                    None,
                ),
                at,
                colon,
            )?;
            self.value(indent, line, colon)?;
            match self.line {
                Some(l) if l.indent() == indent && !self.is_item(l) => at = l.content,
                Some(l) if l.indent() >= indent => return Err(Stop::Unsupported),
                _ => break,
            }
        }
        let end = self.block_end();
        self.depth -= 1;
        self.emit(Event::MappingEnd, end, end)
    }

    /// The value of the key at column `indent` of `line` whose colon is at
    /// `colon`: on the line, or below it, or none.
    fn value(&mut self, indent: usize, line: Line, colon: usize) -> Read<E> {
        let at = self.skip_spaces(colon + 1, line.end);
        if at < line.end && self.bytes[at] != b'#' {
            return self.inline(at, line, indent);
        }
        self.next_line();
        match self.line {
            Some(l) if l.indent() > indent => {
                if self.is_item(l) {
                    self.sequence(l, false)
                } else if self.key(l.content, l).is_some() {
                    self.mapping(l.indent(), l.content)
                } else {
                    Err(Stop::Unsupported)
                }
            }
            Some(l) if l.indent() == indent && self.is_item(l) => self.sequence(l, true),
            _ => self.emit(
                Event::Scalar(Cow::Borrowed("~"), ScalarStyle::Plain, 0, None),
                colon,
                colon,
            ),
        }
    }

    /// A block sequence whose first item is `first`; `indentless` when its
    /// dashes are at its key's column.
    fn sequence(&mut self, first: Line, indentless: bool) -> Read<E> {
        let column = first.indent();
        // An indentless sequence starts at its first item's content.
        let start = if indentless {
            self.skip_spaces(first.content + 1, first.end)
        } else {
            first.content
        };
        self.enter()?;
        self.emit(Event::SequenceStart(0, None), start, start)?;
        loop {
            let line = self.line.ok_or(Stop::Unsupported)?;
            let at = self.skip_spaces(line.content + 1, line.end);
            // An empty item, a comment after the dash, a nested sequence.
            if at == line.end || matches!(self.bytes[at], b'#' | b'-') {
                return Err(Stop::Unsupported);
            }
            if self.key(at, line).is_some() {
                self.mapping(at - line.start, at)?;
            } else {
                self.inline(at, line, column)?;
            }
            match self.line {
                Some(l) if l.indent() == column && self.is_item(l) => {}
                Some(l) if l.indent() > column || (l.indent() == column && !indentless) => {
                    return Err(Stop::Unsupported)
                }
                _ => break,
            }
        }
        let end = self.block_end();
        self.depth -= 1;
        self.emit(Event::SequenceEnd, end, end)
    }

    /// A scalar (or a one-line flow collection) at `at` that ends `line`,
    /// in a collection at column `indent`; the line is read then.
    fn inline(&mut self, at: usize, line: Line, indent: usize) -> Read<E> {
        let b = self.bytes;
        match b[at] {
            b'"' | b'\'' => {
                let after = self.quoted(at, line)?;
                self.rest_is_blank(after, line.end)?;
            }
            b'{' | b'[' => {
                let after = self.flow(at, line)?;
                self.rest_is_blank(after, line.end)?;
            }
            b'-' | b'?' | b':' | b',' | b']' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>'
            | b'%' | b'@' | b'`' => return Err(Stop::Unsupported),
            _ => {
                let mut end = line.end;
                for i in at..line.end {
                    match b[i] {
                        // A mapping inside the value, or an error: saphyr's.
                        b':' if i + 1 == line.end || b[i + 1] == b' ' => {
                            return Err(Stop::Unsupported)
                        }
                        b'#' if b[i - 1] == b' ' => {
                            end = i;
                            break;
                        }
                        _ => {}
                    }
                }
                while b[end - 1] == b' ' {
                    end -= 1;
                }
                let text = Cow::Borrowed(&self.text[at..end]);
                self.emit(Event::Scalar(text, ScalarStyle::Plain, 0, None), at, end)?;
            }
        }
        self.next_line();
        // A more indented line next would continue the scalar, or be an
        // error.
        match self.line {
            Some(l) if l.indent() > indent => Err(Stop::Unsupported),
            _ => Ok(()),
        }
    }

    /// Where the token after `from` on `line` starts: past spaces, and
    /// past a comment to the line's end (saphyr ends a flow collection or
    /// a quoted scalar there).
    fn next_token(&self, from: usize, line: Line) -> usize {
        let at = self.skip_spaces(from, line.end);
        if at < line.end && self.bytes[at] == b'#' && at > from {
            line.end
        } else {
            at
        }
    }

    /// A flow collection, mapping or sequence, opened at `open` and closed
    /// on the same line, of plain and quoted scalars and collections
    /// alike; where it ends.
    fn flow(&mut self, open: usize, line: Line) -> Result<usize, Stop<E>> {
        let b = self.bytes;
        let mapping = b[open] == b'{';
        let close = if mapping { b'}' } else { b']' };
        let start = if mapping {
            Event::MappingStart(0, None)
        } else {
            Event::SequenceStart(0, None)
        };
        let mut at = self.next_token(open + 1, line);
        self.enter()?;
        self.emit(start, open, at)?;
        if at < line.end && b[at] == close {
            return self.flow_end(mapping, at, line);
        }
        loop {
            if at >= line.end {
                return Err(Stop::Unsupported);
            }
            if mapping {
                let key_end = self
                    .key_text_end(at, line)
                    .filter(|&end| b[end] == b':' && b.get(end + 1) == Some(&b' '))
                    .ok_or(Stop::Unsupported)?;
                let key = Cow::Borrowed(&self.text[at..key_end]);
                self.emit(Event::Scalar(key, ScalarStyle::Plain, 0, None), at, key_end)?;
                at = self.skip_spaces(key_end + 1, line.end);
            }
            at = self.flow_node(at, line)?;
            at = self.skip_spaces(at, line.end);
            match b.get(at) {
                Some(b',') if at < line.end => {
                    at = self.skip_spaces(at + 1, line.end);
                    // A trailing comma, or an empty entry: saphyr's.
                    if at == line.end || matches!(b[at], b',' | b'}' | b']' | b'#') {
                        return Err(Stop::Unsupported);
                    }
                }
                Some(&c) if c == close && at < line.end => return self.flow_end(mapping, at, line),
                _ => return Err(Stop::Unsupported),
            }
        }
    }

    /// The end of a flow collection whose closing bracket is at `at`.
    fn flow_end(&mut self, mapping: bool, at: usize, line: Line) -> Result<usize, Stop<E>> {
        let end = if mapping {
            Event::MappingEnd
        } else {
            Event::SequenceEnd
        };
        let next = self.next_token(at + 1, line);
        self.depth -= 1;
        self.emit(end, at, next)?;
        Ok(at + 1)
    }

    /// A value inside a flow collection at `at`; where it ends.
    fn flow_node(&mut self, at: usize, line: Line) -> Result<usize, Stop<E>> {
        let b = self.bytes;
        if at >= line.end {
            return Err(Stop::Unsupported);
        }
        match b[at] {
            b'{' | b'[' => self.flow(at, line),
            b'"' | b'\'' => self.quoted(at, line),
            b'-' | b'?' | b':' | b',' | b']' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>'
            | b'%' | b'@' | b'`' | b' ' => Err(Stop::Unsupported),
            _ => {
                let mut end = at;
                while end < line.end {
                    match b[end] {
                        b',' | b']' | b'}' => break,
                        // A comment, a key, or what saphyr reads its own way.
                        b'#' | b'-' | b'?' if b[end - 1] == b' ' => return Err(Stop::Unsupported),
                        b':' | b'[' | b'{' => return Err(Stop::Unsupported),
                        _ => end += 1,
                    }
                }
                while b[end - 1] == b' ' {
                    end -= 1;
                }
                let text = Cow::Borrowed(&self.text[at..end]);
                self.emit(Event::Scalar(text, ScalarStyle::Plain, 0, None), at, end)?;
                Ok(end)
            }
        }
    }

    /// A one-line quoted scalar without escapes opened at `open`; where it
    /// ends. saphyr ends its event where the next token starts: past the
    /// spaces, and past a comment to the line's end.
    fn quoted(&mut self, open: usize, line: Line) -> Result<usize, Stop<E>> {
        let b = self.bytes;
        let quote = b[open];
        let close = open
            + 1
            + b[open + 1..line.end]
                .iter()
                .position(|&c| c == quote || c == b'\\')
                .ok_or(Stop::Unsupported)?;
        if b[close] == b'\\' || b.get(close + 1) == Some(&quote) {
            return Err(Stop::Unsupported);
        }
        let style = if quote == b'"' {
            ScalarStyle::DoubleQuoted
        } else {
            ScalarStyle::SingleQuoted
        };
        let text = Cow::Borrowed(&self.text[open + 1..close]);
        let next = self.next_token(close + 1, line);
        self.emit(Event::Scalar(text, style, 0, None), open, next)?;
        Ok(close + 1)
    }

    /// Whether only spaces, then perhaps a comment after a space, follow
    /// `from` on the line ending at `end`.
    fn rest_is_blank(&self, from: usize, end: usize) -> Read<E> {
        let at = self.skip_spaces(from, end);
        if at == end || (at > from && self.bytes[at] == b'#') {
            Ok(())
        } else {
            Err(Stop::Unsupported)
        }
    }

    fn skip_spaces(&self, mut at: usize, end: usize) -> usize {
        while at < end && self.bytes[at] == b' ' {
            at += 1;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    /// Each event with its position, as text to compare.
    type Events = Vec<(String, usize, usize)>;

    /// saphyr's events, and whether it read the whole text.
    fn saphyr(text: &str) -> (Events, bool) {
        let mut parser = saphyr_parser::Parser::new_from_str(text);
        let mut events = Vec::new();
        while let Some(event) = parser.next_event() {
            match event {
                Ok((e, span)) => {
                    events.push((format!("{e:?}"), span.start.index(), span.end.index()))
                }
                Err(_) => return (events, false),
            }
        }
        (events, true)
    }

    /// This reader's events, if it read the text as a document.
    fn fast(text: &str) -> Option<Events> {
        fast_at(text, 0)
    }

    /// This reader's events, if it read the text as a mapping indented by
    /// `indent`.
    fn fast_at(text: &str, indent: usize) -> Option<Events> {
        let mut events = Vec::new();
        let read = read_indented::<()>(text, indent, &mut |e, start, end| {
            events.push((format!("{e:?}"), start, end));
            Ok(())
        });
        read.is_ok().then_some(events)
    }

    /// Either this reader stops, or it gives exactly saphyr's events.
    fn agrees(text: &str) -> bool {
        // A run of a larger mapping's entries is read at its indentation.
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .unwrap_or_default();
        let indent = first.len() - first.trim_start_matches(' ').len();
        let Some(events) = fast_at(text, indent) else {
            return false;
        };
        let (expected, whole) = saphyr(text);
        assert!(whole, "saphyr refuses what this read: {text:?}");
        assert_eq!(events, expected, "{text:?}");
        true
    }

    #[test]
    fn reads_plain_block_yaml_as_saphyr_does() {
        for text in [
            "a: 1\n",
            "a: 1",
            "# c\n\na: 1\n  # c\nb:\n  c: x y   # c\n  d: a#b  \n\n",
            "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n",
            "a:\n- x\n- y: 1\n  z:\n- w\nb: 1\n",
            "a:\n  - x\n  -   y\n  - k: v\n    l: \"q\"\nb: 'r'  # c\n",
            "a: {}\nb: []\nc:\nd: ~\n",
            "a: \"x\"   \nb: 'y' # c\nc: http://x/y?a=b\n",
            "svc_00001:\n  git_rev: v1.1.0\n  env:\n    SERVICE_INDEX: \"1\"\n",
            "a:\n  - \"q\"  # c\n  - 'r'\n",
            "a: [1, 2]\nb: {c: 1}\n",
            "a: {min: 3, max: 10}\nb: {x: {s: a-b, k: d/s/db}}\nc: [1, two, \"3\"]\n",
            "d: { x: 1 , y: [ ] }  # c\nf: [a, {b: c}]\ng:\n- {a: 'q', b: \"r\" }\n- [x]\n",
            // Runs of a larger mapping's entries, indented.
            "  svc_2:\n    git_rev: v1\n    env:\n      A: \"1\"\n  svc_3: {}\n",
            "# c\n    a: 1\n    b:\n    - x\n",
        ] {
            assert!(agrees(text), "not read: {text:?}");
        }
    }

    #[test]
    fn stops_at_what_it_does_not_read() {
        for text in [
            "",
            "# only a comment\n",
            "- a\n",
            "x\n",
            "  a: 1\n",
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: |\n  text\n",
            "a: >\n  text\n",
            "a: {a: 1,}\n",
            "a: {a, b: }\n",
            "a: [a: b]\n",
            "a: {a: 1 # c\n  }\n",
            "a: [1,\n  2]\n",
            "a: {\"a\": 1}\n",
            "a: {a: b}x\n",
            "a: [a]]\n",
            "a: [a, , b]\n",
            "a: {a:1}\n",
            "a: [-1]\n",
            "a: {",
            "a: [",
            "a: {b: 1, ",
            "a: [b, ",
            "a: {b: ",
            "a: {b",
            "a: [\"b",
            "a: \"x\\ty\"\n",
            "a: 'it''s'\n",
            "a: x\n  y\n",
            "a: \"x\n  y\"\n",
            "a:\tb\n",
            "a: b\r\n",
            "a: é\n",
            "---\na: 1\n",
            "a: 1\n...\n",
            "%YAML 1.2\n---\na: 1\n",
            "? a\n: b\n",
            "\"a\": 1\n",
            "a:\n  -\n  - x\n",
            "a:\n  - # c\n",
            "a:\n  - - x\n",
            "a: b: c\n",
            "a: b:\n",
            "a: -1\n",
            "<<: {}\n",
        ] {
            assert!(fast(text).is_none(), "read: {text:?}");
        }
    }

    #[test]
    fn stops_at_keys_saphyr_forgets_and_nesting_it_cannot_count() {
        assert!(agrees(&format!("{}: 1\n", "k".repeat(1024))));
        assert!(fast(&format!("{}:", "k".repeat(1025))).is_none());
        assert!(fast(&format!("a: 1\nb:\n- {}: 1\n", "k".repeat(1025))).is_none());
        assert!(agrees(&format!(
            "a: {}{}\n",
            "[".repeat(150),
            "]".repeat(150)
        )));
        assert!(fast(&format!("a: {}{}\n", "[".repeat(256), "]".repeat(256))).is_none());
        assert!(fast(&format!("a: {}\n", "[".repeat(1_000_000))).is_none());
        let deep: String = (0..300).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        assert!(fast(&deep).is_none());
    }

    #[test]
    fn the_examples_read_as_saphyr_reads_them() {
        fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, files);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    files.push(path);
                }
            }
        }
        let mut files = Vec::new();
        for dir in ["controlcenter-examples", "tests"] {
            walk(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
                &mut files,
            );
        }
        let read = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .filter(|text| agrees(text))
            .count();
        assert!(read > 10, "only {read} of {} files read", files.len());
    }

    const KEYS: &[&str] = &[
        "a",
        "k-1",
        "a.b/c",
        "1",
        "true",
        "_x",
        "svc_00001",
        "b",
        "a",
    ];
    /// Scalars this reads.
    const PLAIN: &[&str] = &[
        "{min: 3, max: 10}",
        "{x: {s: a-b, k: d/s/db}}",
        "[1, two, \"3\"]",
        "{ x: 1 , y: [ ] }",
        "[a, {b: c}]",
        "{a: 'q'}",
        "[ {a: [ ]} ]",
        "{a: \"x y\", b: c d}",
        "v",
        "a#b",
        "x y",
        "http://h:80/p",
        "1",
        "~",
        "null",
        "b #c",
        "\"q\"",
        "'s'",
        "\"x\" # c",
        "'y'   ",
        "\"\"",
        "''",
        "{}",
        "[]",
        "x  ",
        "a ,b",
        "0755",
        "1e3",
        "x:y",
        "a=b<c>",
        "true",
        "\"a b: c # d\"",
        "'#'",
    ];
    /// Scalars it does not, or that are errors.
    const TRICKY: &[&str] = &[
        "{a: 1,}",
        "{a, b: }",
        "[a: b]",
        "{a: 1 # c}",
        "{a: b}x",
        "[a]]",
        "{\"a\": 1}",
        "[a, , b]",
        "{a:1}",
        "[-1]",
        "{a: [b}",
        "[a #c]",
        "{a: b, a: c}",
        "[&x a, *x]",
        "-1",
        "a: b",
        "a:",
        "\"a\\\"b\"",
        "'it''s'",
        "[ ]",
        "{a: 1}",
        "[1, 2]",
        "&a x",
        "*a",
        "!!str x",
        "|",
        ">",
        "[x",
        "\"open",
        "-",
        "? x",
        ": x",
        "%x",
        "@x",
        "#x",
        "'x'#",
    ];
    const GAPS: &[&str] = &["", "", "", "\n", "# c\n", "   # c\n", "  \n", " # c\n"];

    fn scalar(rng: &mut Rng) -> String {
        let mut s = if rng.below(15) == 0 {
            rng.pick(TRICKY)
        } else {
            rng.pick(PLAIN)
        }
        .to_owned();
        if rng.below(5) == 0 {
            s.push_str(rng.pick(&["  ", " # c", "  # c ", "#c"]));
        }
        s
    }

    fn block(rng: &mut Rng, out: &mut String, indent: usize, depth: usize) {
        let pad = " ".repeat(indent);
        let entries = 1 + rng.below(4);
        let sequence = rng.below(4) == 0;
        for _ in 0..entries {
            out.push_str(rng.pick(GAPS));
            out.push_str(&pad);
            if sequence {
                out.push_str(rng.pick(&["- ", "-  ", "- ", "- ", "- ", "-"]));
                if rng.below(3) == 0 && depth < 3 {
                    // A compact mapping in the item.
                    let column = indent + 2;
                    out.push_str(rng.pick(KEYS));
                    out.push_str(": ");
                    out.push_str(&scalar(rng));
                    out.push('\n');
                    if rng.below(2) == 0 {
                        out.push_str(&" ".repeat(column));
                        out.push_str(rng.pick(KEYS));
                        out.push_str(":\n");
                        let deeper = column + 2 * rng.below(2);
                        block(rng, out, deeper, depth + 1);
                    }
                    continue;
                }
            } else {
                out.push_str(rng.pick(KEYS));
                out.push_str(rng.pick(&[":", ":", ":", ":", ": ", " :"]));
            }
            match rng.below(4) {
                0 if depth < 3 => {
                    out.push('\n');
                    let deeper = indent
                        + rng
                            .pick(&["0", "2", "2", "4", "1"])
                            .parse::<usize>()
                            .unwrap_or(2);
                    block(rng, out, deeper, depth + 1);
                }
                _ => {
                    out.push(' ');
                    out.push_str(&scalar(rng));
                    out.push('\n');
                }
            }
        }
    }

    fn damage(rng: &mut Rng, text: &mut String) {
        if text.is_empty() {
            return;
        }
        let at = rng.below(text.len());
        match rng.below(3) {
            0 => {
                text.remove(at);
            }
            1 => text.insert(
                at,
                rng.pick(&[
                    " ", ":", "-", "#", "\"", "\n", "x", "'", "{", "}", "[", "]", ",", "?", "&",
                    "*", "!", "|", ">",
                ])
                .chars()
                .next()
                .unwrap_or(' '),
            ),
            _ => {
                let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let line = text[line_start..line_end].to_owned();
                text.insert_str(line_start, &format!("{line}\n"));
            }
        }
    }

    #[test]
    fn generated_and_damaged_documents_read_as_saphyr_reads_them() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut read = 0;
        for i in 0..40_000 {
            let mut text = String::new();
            block(&mut rng, &mut text, 0, 0);
            if i % 3 == 1 {
                for _ in 0..1 + rng.below(3) {
                    damage(&mut rng, &mut text);
                }
            }
            match rng.below(8) {
                0 => {
                    text.pop();
                }
                // Cut anywhere: every construct may meet the end of the text.
                1 => {
                    let cut = rng.below(text.len() + 1);
                    text.truncate(cut);
                }
                _ => {}
            }
            if agrees(&text) {
                read += 1;
            }
        }
        // The generator must exercise the reader, not only its refusals.
        assert!(read > 8_000, "only {read} documents read");
    }
}
