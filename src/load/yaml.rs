//! YAML to a spanned value tree.
//!
//! Built directly on `saphyr-parser` events so that every node keeps the
//! byte span it came from (for diagnostics and provenance), duplicate keys
//! are refused at any depth, aliases are expanded under a budget (no
//! "billion laughs"), nesting depth is bounded, and scalars resolve by the
//! YAML 1.2 core schema: `yes`, `on` and `0755`-style octals of YAML 1.1 are
//! not booleans or octal numbers here. Plain scalars also remember that they
//! were plain, so a resolver can recover the text the user wrote.

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::diagnostics::{Code, Diagnostic, FileId, Span};

/// Maximum nesting of mappings and sequences.
pub const MAX_DEPTH: usize = 128;
/// Maximum number of values (scalars, sequences, mappings, keys) a
/// document may hold, counting each alias use and each anchored copy at
/// its full size.
pub const MAX_NODES: usize = 4_000_000;
/// Maximum scalar text that anchors and aliases may copy, in bytes.
pub const MAX_COPIED_BYTES: usize = 64 * 1024 * 1024;
/// The UTF-8 byte-order mark, legal at the start of a YAML stream.
const BOM: &str = "\u{feff}";

/// A YAML node with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it is written.
    pub span: Span,
    /// A plain (unquoted, untagged) scalar: its source text is `span`.
    pub plain: bool,
}

/// A YAML value that has a JSON equivalent.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer or a finite float.
    Number(serde_json::Number),
    /// Any other scalar.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order, keys unique.
    Map(Vec<Entry>),
}

/// One key of a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key text.
    pub key: String,
    /// Where the key is written.
    pub key_span: Span,
    /// The value.
    pub value: Node,
}

impl Node {
    /// The entries if this is a mapping.
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The entry for `key` if this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|e| e.key == key)
    }

    /// The value for `key` if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The string if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is a mapping.
    pub fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// A short name of the node's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node at a JSON pointer (`/dev/service_rpps/replicas`).
    pub fn pointer(&self, pointer: &str) -> Option<&Node> {
        let mut node = self;
        for token in pointer_tokens(pointer) {
            node = match &node.value {
                Value::Map(m) => &m.iter().find(|e| e.key == token)?.value,
                Value::Seq(s) => s.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The JSON equivalent (object keys sorted).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Seq(s) => serde_json::Value::Array(s.iter().map(Node::to_json).collect()),
            Value::Map(m) => serde_json::Value::Object(
                m.iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Splits a JSON pointer into unescaped tokens.
pub fn pointer_tokens(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
}

/// Parses one YAML document of `file`. An empty document is `Null`.
pub fn parse(text: &str, file: FileId) -> Result<Node, Vec<Diagnostic>> {
    parse_with_aliases(text, file, false).map(|(root, _)| root)
}

/// Where an alias (or a merge key's alias) copies an anchored node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AliasUse {
    /// The anchored node.
    pub anchor: Span,
    /// The alias.
    pub used_at: Span,
}

/// What a parse copies, or charges against the document's limits, beyond
/// the tree it returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copies {
    /// Every alias use.
    pub aliases: Vec<AliasUse>,
    /// Anchored values: each is charged once more than the tree holds it
    /// (it is kept for its aliases).
    pub anchored: Vec<Span>,
    /// Merge sources (`<<` however its key is spelled): charged, then
    /// dropped once merged into their mapping.
    pub merged: Vec<Span>,
}

impl Copies {
    /// Adds `other`'s, after these.
    pub fn extend(&mut self, other: Copies) {
        self.aliases.extend(other.aliases);
        self.anchored.extend(other.anchored);
        self.merged.extend(other.merged);
    }

    /// Whether anything in `range` of the document is copied or charged
    /// beyond the tree: an alias, what it copies, an anchor, a merge. The
    /// range's end counts as in it: an empty value's span starts where the
    /// next token does (the next section's key, or the end of the text).
    pub fn reach_into(&self, range: &std::ops::Range<usize>) -> bool {
        let within = |at: usize| range.start <= at && at <= range.end;
        self.aliases
            .iter()
            .any(|a| within(a.anchor.start) || within(a.used_at.start))
            || self
                .anchored
                .iter()
                .chain(&self.merged)
                .any(|c| within(c.start))
    }
}

/// [`parse`], also returning every alias use: a value that is secret must
/// not be copied by one into a place that is not. In a `sensitive` file
/// (whose keys may be secret too) no message names a key.
pub fn parse_with_aliases(
    text: &str,
    file: FileId,
    sensitive: bool,
) -> Result<(Node, Copies), Vec<Diagnostic>> {
    if let Some(d) = forbidden_character(text, file) {
        return Err(vec![d]);
    }
    if text.len() >= PARALLEL_MIN_BYTES {
        let parts = crate::parallel::cores();
        if let Some(parsed) = parse_sections_in_parallel(text, file, sensitive, parts) {
            return Ok(parsed);
        }
    }
    let base = if text.starts_with(BOM) { BOM.len() } else { 0 };
    build(text, file, base..text.len(), sensitive).map(|(root, aliases, _)| (root, aliases))
}

/// The node in `range` of `text`, every alias use, and how much it holds:
/// built from the plain block reader's events when the text is of its
/// kind and builds cleanly, else from saphyr's, which then give the one
/// true answer or error.
fn build(
    text: &str,
    file: FileId,
    range: std::ops::Range<usize>,
    sensitive: bool,
) -> Result<(Node, Copies, Size), Vec<Diagnostic>> {
    build_indented(text, file, range, 0, sensitive)
}

/// [`build`] of a range whose top-level mapping is indented by `indent`
/// spaces (more entries of a mapping that an earlier range began).
fn build_indented(
    text: &str,
    file: FileId,
    range: std::ops::Range<usize>,
    indent: usize,
    sensitive: bool,
) -> Result<(Node, Copies, Size), Vec<Diagnostic>> {
    let builder = |range| {
        let mut builder = Builder::new(text, file, range);
        builder.sensitive = sensitive;
        // An indented run's mapping is an entry's value, a level down.
        builder.depth = usize::from(indent > 0);
        builder
    };
    let mut fast = builder(range.clone());
    // Character indices are byte offsets only in ASCII text.
    if fast.offsets.table.is_empty() {
        let part = &text[range.clone()];
        let read = super::block_yaml::read_indented(part, indent, &mut |event, start, end| {
            fast.event(event, start, end)
        });
        if read.is_ok() && fast.errors.is_empty() {
            return Ok(fast.built());
        }
        // What it built (up to a limit, maybe: millions of values) goes
        // before the same text is built again.
        drop(fast);
    }
    builder(range).run()
}

/// Documents at least this large are parsed a run of top-level keys per
/// core: below it, threads cost more than they save.
const PARALLEL_MIN_BYTES: usize = 256 * 1024;

/// Parses a document whose top level is a block mapping as about `parts`
/// runs of its entries, in parallel, and joins them.
fn parse_sections_in_parallel(
    text: &str,
    file: FileId,
    sensitive: bool,
    parts: usize,
) -> Option<(Node, Copies)> {
    if parts < 2 {
        return None;
    }
    let starts = key_line_starts(text)?;
    let runs = plan_runs(text, &starts, &[0..text.len()], parts);
    if runs.len() < 2 {
        return None;
    }
    parse_runs(text, file, sensitive, &runs, 0)
}

/// A range of a document parsed on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Run {
    range: std::ops::Range<usize>,
    /// `None` for whole top-level entries; else more entries, indented
    /// this much, of the mapping of the last top-level entry before.
    continues: Option<usize>,
}

/// Runs of about equal size covering `segments` (each a range of whole
/// top-level entries, whose key lines start at `starts`), at least one
/// per segment: cut between top-level entries, and inside an entry
/// larger than a share between the entries of its block mapping (a
/// document is mostly one environment's services).
fn plan_runs(
    text: &str,
    starts: &[usize],
    segments: &[std::ops::Range<usize>],
    parts: usize,
) -> Vec<Run> {
    let total: usize = segments.iter().map(std::ops::Range::len).sum();
    let share = (total / parts.max(1)).max(1);
    let mut runs = Vec::new();
    for segment in segments {
        let (mut start, mut continues) = (segment.start, None);
        while segment.end - start > share + share / 2 {
            let Some((cut, cut_continues)) = next_cut(text, starts, start + share, segment.end)
            else {
                break;
            };
            runs.push(Run {
                range: start..cut,
                continues,
            });
            (start, continues) = (cut, cut_continues);
        }
        runs.push(Run {
            range: start..segment.end,
            continues,
        });
    }
    runs
}

/// The first place at or after `target` (before `end`) where a run may
/// start: a line with a key of the block mapping of the top-level entry
/// there, written plainly at its indentation, else the next top-level
/// key's line.
fn next_cut(
    text: &str,
    starts: &[usize],
    target: usize,
    end: usize,
) -> Option<(usize, Option<usize>)> {
    let entry = starts.partition_point(|&s| s <= target).checked_sub(1)?;
    let next = starts
        .get(entry + 1)
        .copied()
        .unwrap_or(text.len())
        .min(end);
    // A merge key (`<<`) adds entries to the mapping it is in, whichever
    // run it falls in: such a section is not cut (one spelled otherwise is
    // found once parsed, in `parse_runs`).
    let merges = text
        .get(starts[entry]..next)
        .is_none_or(|section| section.contains("<<"));
    if let Some(indent) = mapping_indent(text, starts[entry]).filter(|_| !merges) {
        // The line after the one `target` falls in (maybe inside a
        // character).
        let from = text
            .as_bytes()
            .get(target..next)?
            .iter()
            .position(|&b| b == b'\n')?;
        let from = target + from + 1;
        let mut at = from;
        for line in text.get(from..next)?.split_inclusive('\n') {
            if line.len() > indent
                && line.as_bytes()[..indent].iter().all(|&b| b == b' ')
                && plain_key(&line[indent..]).is_some()
            {
                return Some((at, Some(indent)));
            }
            at += line.len();
        }
    }
    (next < end).then_some((next, None))
}

/// The indentation of the block mapping under the top-level key whose line
/// starts at `key_start`, when the key's value is one (its first content
/// line is a plain key, indented).
fn mapping_indent(text: &str, key_start: usize) -> Option<usize> {
    let mut lines = text[key_start..].split_inclusive('\n');
    let key_line = lines.next()?;
    if !key_line.split_once(':')?.1.trim().is_empty() {
        return None;
    }
    let line = lines.find(|l| {
        let t = l.trim_start_matches(' ');
        !t.trim().is_empty() && !t.starts_with('#')
    })?;
    let indent = line.len() - line.trim_start_matches(' ').len();
    (indent > 0 && plain_key(&line[indent..]).is_some()).then_some(indent)
}

/// The key `line` starts with, when it is written plainly (letters,
/// digits and `_./-`, starting with a letter, a digit or `_`) and followed
/// by a colon and a space or the line's end.
fn plain_key(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    if !b
        .first()
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        return None;
    }
    let len = b
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-')))
        .unwrap_or(b.len());
    let colon_then_space =
        b.get(len) == Some(&b':') && matches!(b.get(len + 1), None | Some(b' ' | b'\n' | b'\r'));
    colon_then_space.then(|| &line[..len])
}

/// Parses `runs` of a document whose top level is a block mapping, in
/// parallel, and joins their entries in order. A top-level entry of a
/// block mapping, and an entry of its own block mapping, means the same
/// whatever entries surround it, except through anchors: so anything this
/// cannot join exactly (an error in a run, an alias to another run's
/// anchor, a key two runs define, a limit reached only together,
/// directives, several documents) returns `None`, and the caller parses
/// the whole document at once, which then gives the one true answer or
/// error.
fn parse_runs(
    text: &str,
    file: FileId,
    sensitive: bool,
    runs: &[Run],
    nodes_elsewhere: usize,
) -> Option<(Node, Copies)> {
    let parsed = crate::parallel::map(runs, runs.len(), |run| {
        build_indented(
            text,
            file,
            run.range.clone(),
            run.continues.unwrap_or(0),
            sensitive,
        )
        .ok()
    });
    for (i, (run, parsed)) in runs.iter().zip(&parsed).enumerate() {
        let Some((root, copies, _)) = parsed else {
            return None;
        };
        // A merge key adds entries to the mapping it is in, whichever run
        // it falls in: a section cut into runs that holds one, however its
        // key is spelled (`"\x3c<"`), is parsed whole.
        let cut = run.continues.is_some() || runs.get(i + 1).is_some_and(|r| r.continues.is_some());
        if cut && !copies.merged.is_empty() {
            return None;
        }
        // A block scalar with no content is, in the whole parse, empty
        // and at the token after it, which a run ending there does not hold
        // (whether the next run or a section left out follows).
        if run.range.end < text.len() && ends_in_empty_block_scalar(root, text) {
            return None;
        }
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut keys: HashSet<String> = HashSet::new();
    // The keys of the last top-level entry's mapping, once a run continues it.
    let mut continued: Option<HashSet<String>> = None;
    let mut copies = Copies::default();
    let (mut start, mut end) = (None, 0);
    // The limits are the whole document's.
    let mut size = Size {
        nodes: nodes_elsewhere,
        copied_bytes: 0,
    };
    for (run, parsed) in runs.iter().zip(parsed) {
        let (root, run_copies, run_size) = parsed?;
        let Value::Map(run_entries) = root.value else {
            return None;
        };
        if run.continues.is_some() {
            let last = entries.last_mut()?;
            let Value::Map(mapping) = &mut last.value.value else {
                return None;
            };
            // What the cut closed ends, in the whole parse, at the next
            // key itself, past its indentation.
            if let (Some(e), Some(indent)) = (mapping.last_mut(), run.continues) {
                close_at(&mut e.value, run.range.start, run.range.start + indent);
            }
            let known =
                continued.get_or_insert_with(|| mapping.iter().map(|e| e.key.clone()).collect());
            for e in &run_entries {
                if !known.insert(e.key.clone()) {
                    return None;
                }
            }
            mapping.extend(run_entries);
            last.value.span.end = root.span.end;
        } else {
            for e in &run_entries {
                if !keys.insert(e.key.clone()) {
                    return None;
                }
            }
            continued = None;
            start.get_or_insert(root.span.start);
            entries.extend(run_entries);
        }
        end = root.span.end;
        copies.extend(run_copies);
        size.nodes += run_size.nodes;
        size.copied_bytes += run_size.copied_bytes;
    }
    if size.nodes > MAX_NODES || size.copied_bytes > MAX_COPIED_BYTES {
        return None;
    }
    let root = Node {
        value: Value::Map(entries),
        span: Span::new(file, start?, end),
        plain: false,
    };
    Some((root, copies))
}

/// Whether the last value of `node` (its last descendant, or the last
/// key) is a block scalar with no content: parsed alone up to a cut it reads as a line
/// break spanning from its indicator, where the whole parse reads it as
/// empty, at the next token.
fn ends_in_empty_block_scalar(node: &Node, text: &str) -> bool {
    match &node.value {
        // A key can be one too (`? |`).
        Value::Map(entries) => entries.last().is_some_and(|e| {
            (e.key.bytes().all(|b| b == b'\n')
                && !matches!(text.as_bytes().get(e.key_span.start), Some(b'\'' | b'"')))
                || ends_in_empty_block_scalar(&e.value, text)
        }),
        Value::Seq(items) => items
            .last()
            .is_some_and(|n| ends_in_empty_block_scalar(n, text)),
        Value::String(s) => {
            !node.plain
                && s.bytes().all(|b| b == b'\n')
                && !matches!(text.as_bytes().get(node.span.start), Some(b'\'' | b'"'))
        }
        _ => false,
    }
}

/// Moves the end of `node` and of its last descendants, those that end
/// at `from` (where a run was cut: a collection, a block scalar), to `to`.
fn close_at(node: &mut Node, from: usize, to: usize) {
    match &mut node.value {
        Value::Map(entries) => {
            if let Some(last) = entries.last_mut() {
                close_at(&mut last.value, from, to);
            }
        }
        Value::Seq(items) => {
            if let Some(last) = items.last_mut() {
                close_at(last, from, to);
            }
        }
        _ => {}
    }
    if node.span.end == from {
        node.span.end = to;
    }
}

/// [`parse_with_aliases`] of a document whose top-level sections in
/// `left_out` (ranges [`sections`] gave), holding `left_out_values`
/// values ([`count_values`]), are not parsed: the tree holds the others
/// only. `None` when the rest cannot be parsed on its own exactly (see
/// [`parse_runs`]), or the whole would be past a limit; the caller then
/// parses it all.
pub fn parse_leaving_out(
    text: &str,
    file: FileId,
    left_out: &[std::ops::Range<usize>],
    left_out_values: usize,
) -> Option<(Node, Copies)> {
    forbidden_character(text, file).is_none().then_some(())?;
    let all = sections(text)?;
    // Runs of the sections kept, each contiguous.
    let mut segments: Vec<std::ops::Range<usize>> = Vec::new();
    for s in all.iter().filter(|s| !left_out.contains(&s.range)) {
        match segments.last_mut() {
            Some(last) if last.end == s.range.start => last.end = s.range.end,
            _ => segments.push(s.range.clone()),
        }
    }
    let sections_left_out = all.iter().filter(|s| left_out.contains(&s.range)).count();
    if segments.is_empty() || sections_left_out != left_out.len() {
        return None;
    }
    let kept: usize = segments.iter().map(std::ops::Range::len).sum();
    let starts: Vec<usize> = all.iter().map(|s| s.key_start).collect();
    let parts = if kept >= PARALLEL_MIN_BYTES {
        crate::parallel::cores()
    } else {
        1
    };
    parse_runs(
        text,
        file,
        false,
        &plan_runs(text, &starts, &segments, parts),
        left_out_values,
    )
}

/// The values a top-level entry holding `value` counts toward
/// [`MAX_NODES`] (its key, and every value under it), when nothing in it
/// is copied or charged beyond the tree ([`Copies::reach_into`]).
pub fn count_values(value: &Node) -> usize {
    1 + Size::of(value).nodes
}

/// One top-level entry of a document that is plainly a block mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Its key.
    pub key: String,
    /// Where its key's line starts.
    pub key_start: usize,
    /// Its text: from its key's line (the first also from the start of
    /// the document, with any comments before it) to the next key's.
    pub range: std::ops::Range<usize>,
}

/// The top-level entries of `text`, in order, when it is plainly one block
/// mapping of keys written plainly at the start of their lines (letters,
/// digits and `_./-`, then `:`), else `None`. A line that only looks like
/// such a key (inside a scalar) is told apart by parsing: the sections are
/// what the parsed document holds only when its top-level keys start where
/// these do.
pub fn sections(text: &str) -> Option<Vec<Section>> {
    let starts = key_line_starts(text)?;
    let mut sections = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let key = plain_key(&text[start..])?;
        let from = if i == 0 { 0 } else { start };
        let to = starts.get(i + 1).copied().unwrap_or(text.len());
        sections.push(Section {
            key: key.to_owned(),
            key_start: start,
            range: from..to,
        });
    }
    Some(sections)
}

/// Where each line starting with a plain top-level key starts; `None`
/// when the text is not plainly one block mapping (a byte-order mark, a
/// directive, a document marker, a top level written otherwise, or
/// anything but comments before the first key).
fn key_line_starts(text: &str) -> Option<Vec<usize>> {
    if text.starts_with(BOM) || has_lone_carriage_return(text) {
        return None;
    }
    let mut keys = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        match line.as_bytes().first() {
            Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => keys.push(offset),
            // Indented content, a comment, a blank line.
            Some(b' ' | b'#' | b'\n') => {}
            Some(b'\r') if line == "\r\n" => {}
            // Anything else at the start of a line (a directive, a
            // document marker, a merge key `<<`, a tab, a flow or quoted
            // top level) may join or change what surrounds it.
            _ => return None,
        }
        offset += line.len();
    }
    let first = *keys.first()?;
    if text[..first]
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    {
        return None;
    }
    Some(keys)
}

/// Whether `text` breaks a line with a carriage return alone, which YAML
/// reads as a line break and a scan by `\n` would not.
fn has_lone_carriage_return(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'\r' && b.get(i + 1) != Some(&b'\n'))
}

/// Whether YAML allows `c` in a stream (YAML 1.2 `c-printable`).
fn is_printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// The first character YAML forbids (NUL, other control characters, a
/// byte-order mark past the start). saphyr stops reading at some of them
/// and would silently lose the rest of the file.
pub fn forbidden_character(text: &str, file: FileId) -> Option<Diagnostic> {
    let body_start = if text.starts_with(BOM) { BOM.len() } else { 0 };
    // Printable ASCII, the bulk of any input, is passed over a byte at a
    // time; characters are decoded only from the first other byte on.
    let plain = text.as_bytes()[body_start..]
        .iter()
        .position(|&b| !matches!(b, b'\t' | b'\n' | b'\r' | b' '..=b'~'))?;
    let from = body_start + plain;
    let (at, c) = text[from..]
        .char_indices()
        .map(|(i, c)| (from + i, c))
        .find(|&(_, c)| !is_printable(c) || c == '\u{feff}')?;
    let name = match c {
        '\0' => "a NUL byte".to_owned(),
        '\u{feff}' => "a byte-order mark (U+FEFF) after the start of the file".to_owned(),
        c => format!("the control character U+{:04X}", c as u32),
    };
    Some(
        Diagnostic::error(Code::YamlSyntax, format!("invalid YAML: {name}"))
            .at(
                Span::new(file, at, at + c.len_utf8()),
                "YAML does not allow this character",
            )
            .help("remove it; if the file was written by a tool, check its encoding"),
    )
}

/// Maps saphyr's character indices (in the text after any byte-order
/// mark) to byte offsets in the whole file.
struct Offsets {
    /// Byte offset of each char index; empty when the text is ASCII.
    table: Vec<usize>,
    /// Bytes before the parsed text (a byte-order mark).
    base: usize,
    len: usize,
}

impl Offsets {
    fn new(text: &str, base: usize) -> Self {
        let table = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices().map(|(b, _)| b).collect()
        };
        Offsets {
            table,
            base,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.base
            + if self.table.is_empty() {
                char_index.min(self.len)
            } else {
                self.table.get(char_index).copied().unwrap_or(self.len)
            }
    }
}

/// A collection being built. Its items wait on the builder's shared
/// stacks (from `first`), and move into a vector of their exact size when
/// it ends: no vector grows item by item.
enum Frame {
    Seq {
        start: usize,
        anchor: usize,
        first: usize,
    },
    Map {
        start: usize,
        anchor: usize,
        first: usize,
        /// Key → span, once the mapping is too large to search its
        /// entries for a duplicate.
        seen: Option<HashMap<String, Span>>,
        pending_key: Option<(String, Span)>,
        merges: Vec<Node>,
    },
}

/// Entries a mapping may have before duplicates are found by a hash map
/// rather than by comparing with each entry.
const SCAN_FOR_DUPLICATES: usize = 16;

struct Builder<'t> {
    /// The whole file.
    text: &'t str,
    /// End of the part parsed (its start is `offsets.base`).
    end: usize,
    file: FileId,
    offsets: Offsets,
    stack: Vec<Frame>,
    /// Items of the open sequences, innermost last.
    items: Vec<Node>,
    /// Entries of the open mappings, innermost last.
    entries: Vec<Entry>,
    anchors: HashMap<usize, (Node, Size)>,
    /// Values held so far, copies included.
    nodes: usize,
    /// Scalar bytes copied by anchors and aliases.
    copied: usize,
    /// Every alias use.
    copies: Copies,
    /// Keys may be secret: messages do not name them.
    sensitive: bool,
    errors: Vec<Diagnostic>,
    root: Option<Node>,
    documents: usize,
    /// Levels of nesting above the part parsed: 1 for more entries of a
    /// top-level entry's mapping (a run that continues a section).
    depth: usize,
}

impl<'t> Builder<'t> {
    /// A builder of the node in `range` of `text` (past any byte-order
    /// mark, which the parser does not know).
    fn new(text: &'t str, file: FileId, range: std::ops::Range<usize>) -> Self {
        Builder {
            text,
            file,
            offsets: Offsets::new(&text[range.clone()], range.start),
            end: range.end,
            stack: Vec::new(),
            items: Vec::new(),
            entries: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            copied: 0,
            copies: Copies::default(),
            sensitive: false,
            errors: Vec::new(),
            root: None,
            documents: 0,
            depth: 0,
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, self.offsets.byte(start), self.offsets.byte(end))
    }

    /// The node, every alias use, and how much the document holds.
    fn run(mut self) -> Result<(Node, Copies, Size), Vec<Diagnostic>> {
        let mut parser = Parser::new_from_str(&self.text[self.offsets.base..self.end]);
        while let Some(event) = parser.next_event() {
            let (event, span) = match event {
                Ok(e) => e,
                Err(e) => {
                    let at = self.offsets.byte(e.marker().index());
                    // One character: the span must end on a char boundary.
                    let end = self
                        .text
                        .get(at..)
                        .and_then(|rest| rest.chars().next())
                        .map_or(at, |c| at + c.len_utf8());
                    let mut d =
                        Diagnostic::error(Code::YamlSyntax, format!("invalid YAML: {}", e.info()))
                            .at(Span::new(self.file, at, end), "here");
                    let line_start = self
                        .text
                        .get(..at)
                        .and_then(|b| b.rfind('\n'))
                        .map_or(0, |i| i + 1);
                    let indent = self.text[line_start..]
                        .chars()
                        .take_while(|c| *c == ' ' || *c == '\t');
                    if indent.clone().any(|c| c == '\t')
                        || self.text.as_bytes().get(at) == Some(&b'\t')
                    {
                        d = d.help("YAML does not allow tabs for indentation; indent with spaces");
                    } else {
                        d = d.help("check the indentation and quoting around this position");
                    }
                    self.errors.push(d);
                    return Err(self.errors);
                }
            };
            let (start, end) = (span.start.index(), span.end.index());
            if let Err(d) = self.event(event, start, end) {
                self.errors.push(d);
                return Err(self.errors);
            }
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        Ok(self.built())
    }

    /// What the events given so far built: the node, every alias use, and
    /// how much the document holds.
    fn built(self) -> (Node, Copies, Size) {
        let root = self.root.unwrap_or(Node {
            value: Value::Null,
            span: Span::new(self.file, 0, 0),
            plain: true,
        });
        let size = Size {
            nodes: self.nodes,
            copied_bytes: self.copied,
        };
        (root, self.copies, size)
    }

    fn event(&mut self, event: Event<'_>, start: usize, end: usize) -> Result<(), Diagnostic> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::error(
                        Code::YamlUnsupported,
                        "this file has more than one YAML document",
                    )
                    .at(
                        self.span(start, end.max(start + 3)),
                        "a second document starts here",
                    )
                    .help(
                        "keep one document per file: remove this `---` and merge the documents",
                    ));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let span = self.span(start, end);
                let node = self.scalar(&value, style, tag.as_deref(), span)?;
                self.finish(node, anchor)?;
            }
            Event::Alias(id) => {
                let span = self.span(start, end);
                let Some((node, size_of_anchor)) = self.anchors.get(&id) else {
                    return Err(
                        Diagnostic::error(Code::YamlSyntax, "alias to an unknown anchor")
                            .at(span, "no anchor with this name before here"),
                    );
                };
                let (mut node, size) = (node.clone(), *size_of_anchor);
                self.copies.aliases.push(AliasUse {
                    anchor: node.span,
                    used_at: span,
                });
                self.count(size, span)?;
                // The alias is used here: point at the use, keep the content.
                node.span = span;
                self.finish(node, 0)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), start, end, "seq")?;
                self.open(start, end)?;
                self.stack.push(Frame::Seq {
                    start,
                    anchor,
                    first: self.items.len(),
                });
            }
            Event::MappingStart(anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), start, end, "map")?;
                self.open(start, end)?;
                self.stack.push(Frame::Map {
                    start,
                    anchor,
                    first: self.entries.len(),
                    seen: None,
                    pending_key: None,
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    start: s,
                    anchor,
                    first,
                }) = self.stack.pop()
                {
                    let items: Vec<Node> = self.items.drain(first..).collect();
                    let node = Node {
                        value: Value::Seq(items),
                        span: self.span(s, end.max(s)),
                        plain: false,
                    };
                    self.finish(node, anchor)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    start: s,
                    anchor,
                    first,
                    merges,
                    ..
                }) = self.stack.pop()
                {
                    let mut entries: Vec<Entry> = self.entries.drain(first..).collect();
                    apply_merges(&mut entries, merges);
                    let node = Node {
                        value: Value::Map(entries),
                        span: self.span(s, end.max(s)),
                        plain: false,
                    };
                    self.finish(node, anchor)?;
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(&mut self, start: usize, end: usize) -> Result<(), Diagnostic> {
        if self.stack.len() + self.depth >= MAX_DEPTH {
            return Err(Diagnostic::error(
                Code::YamlLimit,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            )
            .at(self.span(start, end), "too deep")
            .help("flatten the structure; controlcenter inputs never need this depth"));
        }
        Ok(())
    }

    /// Charges `size` against the document's limits; `span` is where the
    /// values are being added.
    fn count(&mut self, size: Size, span: Span) -> Result<(), Diagnostic> {
        self.nodes = self.nodes.saturating_add(size.nodes);
        self.copied = self.copied.saturating_add(size.copied_bytes);
        let copies = !self.anchors.is_empty();
        if self.nodes > MAX_NODES {
            let why = if copies {
                " (each alias use and each anchored value counts its whole content)"
            } else {
                ""
            };
            return Err(Diagnostic::error(
                Code::YamlLimit,
                format!("this document holds more than {MAX_NODES} values{why}"),
            )
            .at(span, "the limit is reached here")
            .help(if copies {
                "this looks like an alias bomb; write the values out or reduce the nesting of anchors and aliases"
            } else {
                "controlcenter inputs are hand- or CI-written; split the data or check that the right file is committed"
            }));
        }
        if self.copied > MAX_COPIED_BYTES {
            return Err(Diagnostic::error(
                Code::YamlLimit,
                format!(
                    "anchors and aliases copy more than {} MiB of text in this document",
                    MAX_COPIED_BYTES >> 20
                ),
            )
            .at(span, "the limit is reached here")
            .help("this looks like an alias bomb; write the values out or reduce the nesting of anchors and aliases"));
        }
        Ok(())
    }

    fn check_collection_tag(
        &self,
        tag: Option<&saphyr_parser::Tag>,
        start: usize,
        end: usize,
        expected: &str,
    ) -> Result<(), Diagnostic> {
        match tag {
            None => Ok(()),
            Some(t) if t.handle == "tag:yaml.org,2002:" && t.suffix == expected => Ok(()),
            Some(t) => Err(unsupported_tag(t, self.span(start, end))),
        }
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&saphyr_parser::Tag>,
        span: Span,
    ) -> Result<Node, Diagnostic> {
        let plain = style == ScalarStyle::Plain && tag.is_none();
        let value = match tag {
            Some(t) if t.handle == "tag:yaml.org,2002:" => match t.suffix.as_str() {
                "str" => Value::String(text.to_owned()),
                "null" | "bool" | "int" | "float" => match resolve_plain(text) {
                    Ok(v) if tag_matches(&t.suffix, &v) => v,
                    _ => {
                        return Err(Diagnostic::error(
                            Code::YamlSyntax,
                            // Never quote the value: it may be a secret.
                            format!("this value is not a valid !!{}", t.suffix),
                        )
                        .at(span, "tagged value"));
                    }
                },
                _ => return Err(unsupported_tag(t, span)),
            },
            Some(t) => return Err(unsupported_tag(t, span)),
            None if style != ScalarStyle::Plain => Value::String(text.to_owned()),
            None => resolve_plain(text).map_err(|msg| {
                Diagnostic::error(Code::YamlUnsupported, msg)
                    .at(span, "here")
                    .help("quote it if you mean the text")
            })?,
        };
        Ok(Node { value, span, plain })
    }

    /// Attaches a completed node to its parent (or makes it the root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            // Keeping the anchor is a copy: charge it, or nested anchors
            // multiply memory without a single alias.
            let size = Size::of(&node);
            self.count(size, node.span)?;
            self.copies.anchored.push(node.span);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        self.count(
            Size {
                nodes: 1,
                copied_bytes: 0,
            },
            node.span,
        )?;
        let text = self.text;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { .. }) => self.items.push(node),
            Some(Frame::Map {
                first,
                seen,
                pending_key,
                merges,
                ..
            }) => {
                let entries = &mut self.entries;
                match pending_key.take() {
                    None => {
                        let key = key_text(&node, text)?;
                        *pending_key = Some((key, node.span));
                    }
                    Some((key, key_span)) => {
                        if key == "<<" && node_is_merge_source(&node) {
                            self.copies.merged.push(node.span);
                            merges.push(node);
                            return Ok(());
                        }
                        let earlier = match seen {
                            Some(seen) => seen.get(&key).copied(),
                            None => entries[*first..]
                                .iter()
                                .find(|e| e.key == key)
                                .map(|e| e.key_span),
                        };
                        if let Some(earlier) = earlier {
                            self.errors.push(
                            Diagnostic::error(
                                Code::DuplicateKey,
                                if self.sensitive {
                                    "duplicate key in a mapping".to_owned()
                                } else {
                                    format!("duplicate key `{key}`")
                                },
                            )
                                .at(key_span, "defined again here")
                                .related(earlier, "first defined here")
                                .help("YAML keys must be unique in a mapping; remove one, or merge them"),
                        );
                            return Ok(());
                        }
                        match seen {
                            Some(seen) => {
                                seen.insert(key.clone(), key_span);
                            }
                            None if entries.len() - *first >= SCAN_FOR_DUPLICATES => {
                                *seen = Some(
                                    entries[*first..]
                                        .iter()
                                        .map(|e| (e.key.clone(), e.key_span))
                                        .chain([(key.clone(), key_span)])
                                        .collect(),
                                );
                            }
                            None => {}
                        }
                        entries.push(Entry {
                            key,
                            key_span,
                            value: node,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

fn unsupported_tag(t: &saphyr_parser::Tag, span: Span) -> Diagnostic {
    Diagnostic::error(
        Code::YamlUnsupported,
        format!("unsupported YAML tag `{}{}`", t.handle, t.suffix),
    )
    .at(span, "tagged here")
    .help("controlcenter inputs are plain data; remove the tag")
}

fn tag_matches(suffix: &str, v: &Value) -> bool {
    matches!(
        (suffix, v),
        ("null", Value::Null)
            | ("bool", Value::Bool(_))
            | ("int", Value::Number(_))
            | ("float", Value::Number(_))
    )
}

fn node_is_merge_source(node: &Node) -> bool {
    match &node.value {
        Value::Map(_) => true,
        Value::Seq(items) => items.iter().all(Node::is_map),
        _ => false,
    }
}

/// YAML merge keys (`<<: *base`): keys written in the mapping win, then
/// earlier merge sources over later ones.
fn apply_merges(entries: &mut Vec<Entry>, merges: Vec<Node>) {
    if merges.is_empty() {
        return;
    }
    let mut present: HashSet<String> = entries.iter().map(|e| e.key.clone()).collect();
    for source in merges {
        let maps: Vec<Node> = match source.value {
            Value::Map(_) => vec![source],
            Value::Seq(items) => items,
            _ => Vec::new(),
        };
        for map in maps {
            if let Value::Map(src) = map.value {
                for e in src {
                    if present.insert(e.key.clone()) {
                        entries.push(e);
                    }
                }
            }
        }
    }
}

fn key_text(node: &Node, text: &str) -> Result<String, Diagnostic> {
    match &node.value {
        Value::String(s) => Ok(s.clone()),
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            // JSON keys are strings: keep what the user wrote (`1:`, `true:`).
            Ok(text
                .get(node.span.start..node.span.end)
                .unwrap_or_default()
                .to_owned())
        }
        Value::Seq(_) | Value::Map(_) => Err(Diagnostic::error(
            Code::YamlUnsupported,
            "a mapping key must be a scalar",
        )
        .at(node.span, "complex key")
        .help("use a plain string as the key")),
    }
}

/// What a copy of a node costs: its values and its scalar text.
#[derive(Clone, Copy, Debug, Default)]
struct Size {
    nodes: usize,
    copied_bytes: usize,
}

impl Size {
    fn of(node: &Node) -> Size {
        let mut size = Size::default();
        let mut todo = vec![node];
        while let Some(n) = todo.pop() {
            size.nodes += 1;
            match &n.value {
                Value::Seq(s) => todo.extend(s),
                Value::Map(m) => {
                    for e in m {
                        size.nodes += 1;
                        size.copied_bytes += e.key.len();
                        todo.push(&e.value);
                    }
                }
                Value::String(s) => size.copied_bytes += s.len(),
                _ => {}
            }
        }
        size
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
pub fn resolve_plain(s: &str) -> Result<Value, String> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            return Err(format!("an infinite or NaN number, which JSON cannot hold"))
        }
        _ => {}
    }
    if is_decimal_int(s) {
        if let Ok(i) = s.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = s.trim_start_matches('+').parse::<u64>() {
            return Ok(Value::Number(u.into()));
        }
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            if let Ok(i) = i64::from_str_radix(oct, 8) {
                return Ok(Value::Number(i.into()));
            }
        }
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(i) = i64::from_str_radix(hex, 16) {
                return Ok(Value::Number(i.into()));
            }
        }
    }
    if is_float(s) {
        if let Ok(f) = s.parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                return Ok(Value::Number(n));
            }
        }
    }
    Ok(Value::String(s.to_owned()))
}

fn is_decimal_int(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (int.bytes().all(|b| b.is_ascii_digit()) && frac.bytes().all(|b| b.is_ascii_digit()))
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Sources;

    fn load(text: &str) -> Result<Node, Vec<Diagnostic>> {
        let mut sources = Sources::default();
        let f = sources.add("t.yaml", text);
        parse(text, f)
    }

    #[test]
    fn yaml_1_1_words_stay_strings() {
        let n = load("a: yes\nb: on\nc: off\nd: no\ne: 0755\nf: 1e3\ng: 1.10\nh: ~\ni: null\n")
            .unwrap();
        let j = n.to_json();
        assert_eq!(j["a"], "yes");
        assert_eq!(j["b"], "on");
        assert_eq!(j["c"], "off");
        assert_eq!(j["d"], "no");
        // YAML 1.2 core: these are numbers and null; the node stays `plain`
        // so a resolver can recover the written text.
        assert_eq!(j["e"], 755);
        assert_eq!(j["f"], 1000.0);
        assert!(j["h"].is_null() && j["i"].is_null());
        assert!(n.get("e").unwrap().plain);
    }

    #[test]
    fn spans_cover_the_written_text() {
        let text = "dev:\n  svc:\n    replicas: \"two\"\n";
        let n = load(text).unwrap();
        let r = n.pointer("/dev/svc/replicas").unwrap();
        assert_eq!(&text[r.span.start..r.span.end], "\"two\"");
        let e = n
            .get("dev")
            .unwrap()
            .get("svc")
            .unwrap()
            .entry("replicas")
            .unwrap();
        assert_eq!(&text[e.key_span.start..e.key_span.end], "replicas");
    }

    #[test]
    fn non_ascii_spans_are_byte_offsets() {
        let text = "é: ü\nk: v\n";
        let n = load(text).unwrap();
        let v = n.get("k").unwrap();
        assert_eq!(&text[v.span.start..v.span.end], "v");
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let errs = load("a:\n  b:\n    c: 1\n    c: 2\nd: 1\nd: 2\n").unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs.iter().all(|d| d.code == Code::DuplicateKey));
        assert!(errs.iter().all(|d| d.related.len() == 1));
    }

    #[test]
    fn alias_bomb_is_stopped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let errs = load(&text).unwrap_err();
        assert_eq!(errs[0].code, Code::YamlLimit);
    }

    #[test]
    fn nested_anchors_without_aliases_are_bounded() {
        // Each anchor keeps a copy of its subtree: 30 nested anchors over a
        // large list once took gigabytes without a single alias.
        let mut text = String::new();
        for i in 0..30 {
            text.push_str(&format!("{}k{i}: &a{i}\n", "  ".repeat(i)));
        }
        text.push_str(&format!(
            "{}leaf: [{}]\n",
            "  ".repeat(30),
            vec!["x"; 150_000].join(", ")
        ));
        let errs = load(&text).unwrap_err();
        assert_eq!(errs[0].code, Code::YamlLimit);
        assert!(errs[0].message.contains("values"), "{}", errs[0].message);
    }

    #[test]
    fn a_large_list_without_aliases_names_the_real_limit() {
        let text = format!("a: [{}]\n", vec!["1"; MAX_NODES + 1].join(","));
        let errs = load(&text).unwrap_err();
        assert_eq!(errs[0].code, Code::YamlLimit);
        assert!(!errs[0].message.contains("alias"), "{}", errs[0].message);
        assert!(
            errs[0].message.contains("4000000 values"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn aliases_copying_long_strings_are_bounded() {
        let big = "y".repeat(1 << 20);
        let mut text = format!("s: &s {big}\nl: [");
        text.push_str(&vec!["*s"; 100].join(", "));
        text.push_str("]\n");
        let errs = load(&text).unwrap_err();
        assert_eq!(errs[0].code, Code::YamlLimit);
        assert!(errs[0].message.contains("MiB"), "{}", errs[0].message);
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_accepted() {
        let text = "\u{feff}dev:\n  svc:\n    git_rev: v1\n";
        let n = load(text).unwrap();
        let r = n.pointer("/dev/svc/git_rev").unwrap();
        assert_eq!(&text[r.span.start..r.span.end], "v1");
    }

    #[test]
    fn forbidden_characters_are_errors_at_their_place() {
        for (text, bad) in [
            ("dev:\n  a: {git_rev: v1}\0\n  b: {git_rev: v2}\n", '\0'),
            ("a: 1\nb: x\u{7}y\n", '\u{7}'),
            ("a: 1\nb: \u{feff}x\n", '\u{feff}'),
            ("a: 1\nb: x\u{9f}\n", '\u{9f}'),
            // After other characters than ASCII, and after a byte-order mark.
            ("a: é\u{85}\u{a0}\nb: x\u{7}y\n", '\u{7}'),
            ("\u{feff}a: 1\nb: \u{feff}\n", '\u{feff}'),
        ] {
            let at = text.rfind(bad).unwrap();
            let errs = load(text).unwrap_err();
            assert_eq!(errs[0].code, Code::YamlSyntax, "{text:?}");
            assert_eq!(errs[0].primary.as_ref().unwrap().span.start, at, "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_stopped() {
        let text = "[".repeat(MAX_DEPTH + 5);
        let errs = load(&text).unwrap_err();
        assert_eq!(errs[0].code, Code::YamlLimit);
    }

    #[test]
    fn merge_keys_merge_and_explicit_keys_win() {
        let n = load("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n").unwrap();
        assert_eq!(n.to_json()["use"], serde_json::json!({"x": 1, "y": 3}));
    }

    #[test]
    fn tabs_and_garbage_give_located_errors() {
        let errs = load("a:\n\tb: 1\n").unwrap_err();
        assert_eq!(errs[0].code, Code::YamlSyntax);
        assert!(errs[0].primary.is_some());
    }

    #[test]
    fn second_document_is_refused() {
        let errs = load("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(errs[0].code, Code::YamlUnsupported);
    }

    #[test]
    fn unknown_tags_are_refused() {
        let errs = load("a: !Ref foo\n").unwrap_err();
        assert_eq!(errs[0].code, Code::YamlUnsupported);
        assert_eq!(load("a: !!str 12\n").unwrap().to_json()["a"], "12");
    }

    #[test]
    fn floats_and_ints_follow_the_core_schema() {
        for s in ["1.5", ".5", "1.", "-2e3", "+1E-2"] {
            assert!(matches!(resolve_plain(s), Ok(Value::Number(_))), "{s}");
        }
        for s in ["1.2.3", "e3", "0x", "1_000", "v1.0.86", "."] {
            assert!(matches!(resolve_plain(s), Ok(Value::String(_))), "{s}");
        }
    }
}

#[cfg(test)]
mod regression_tests {
    use super::*;
    use crate::diagnostics::Sources;

    /// Found by tests/fuzz.rs (CC_FUZZ_SEED=10914): an error right before a
    /// multi-byte character made the loader slice inside it.
    #[test]
    fn syntax_error_before_a_multibyte_character_does_not_panic() {
        let text = "{}\né";
        let mut sources = Sources::default();
        let f = sources.add("x.yaml", text);
        let errs = parse(text, f).unwrap_err();
        let span = errs[0].primary.as_ref().unwrap().span;
        assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
    }
}

#[cfg(test)]
mod parallel_tests {
    use super::*;
    use crate::diagnostics::Sources;

    /// The whole parse, ignoring the size threshold.
    fn whole(text: &str, file: FileId) -> Result<(Node, Copies), Vec<Diagnostic>> {
        let base = if text.starts_with(BOM) { BOM.len() } else { 0 };
        Builder::new(text, file, base..text.len())
            .run()
            .map(|(root, aliases, _)| (root, aliases))
    }

    /// Runs of top-level keys join into exactly the whole parse, spans
    /// included, or decline: for every way of cutting the document.
    fn same_as_whole(text: &str) -> bool {
        let mut sources = Sources::default();
        let f = sources.add("t.yaml", text);
        let expected = whole(text, f);
        let mut joined = false;
        for parts in 2..=8 {
            if let Some(parsed) = parse_sections_in_parallel(text, f, false, parts) {
                let expected = expected.as_ref().unwrap_or_else(|_| {
                    panic!("runs of {text:?} in {parts} parsed where the whole fails")
                });
                assert_eq!(&parsed, expected, "{text:?} in {parts} runs");
                joined = true;
            }
        }
        joined
    }

    #[test]
    fn runs_of_top_level_keys_parse_as_the_whole_document() {
        let joined = [
            "# head\n\ndev:\n  a: {x: 1}\n  b: [1, 2]\n# between\nprod:\n  a: 2\n\nsettings: {y: 1}\nz: 1\n",
            "a: &x {k: 1}\nb: 2\nc: 3\nd: 4\n",
            "a: |\n  text\n  more\n\nb: >-\n  folded\nc: 'q'\nd: \"dq\"\ne: ~\n",
            "a: 1\nb:\n  - 1\n  - x: 2\nc: 3\n",
        ];
        for text in joined {
            assert!(same_as_whole(text), "{text:?} should be cut");
        }
        let declined = [
            // An alias to another run's anchor.
            "a: &x {k: 1}\nb: 2\nc: *x\nd: 4\ne: 5\n",
            // A key two runs define (the whole parse reports it).
            "a: 1\nb: 2\nc: 3\na: 4\n",
            // Constructs a cut would split.
            "a: [1,\n2]\nb: 3\nc: 4\n",
            "a: \"one\ntwo\"\nb: 3\nc: 4\n",
            "a: 'one\ntwo'\nb: 3\nc: 4\n",
            "{a: 1,\nb: 2}\n",
            "%YAML 1.2\n---\na: 1\nb: 2\n",
            "a: 1\n---\nb: 2\n",
            "- a\n- b\n",
            "\u{feff}a: 1\nb: 2\n",
            "? a\n: 1\nb: 2\n",
        ];
        for text in declined {
            assert!(!same_as_whole(text), "{text:?} should not be cut");
        }
        // An empty block scalar at the end of a run: its span, in the
        // whole parse, starts at the next run's first token.
        for text in ["a: 1\nb: |\nc: 3\nd: 4\n", "a: 1\nb: >-\n\nc: 3\nd: {}\n"] {
            same_as_whole(text);
        }
        // Multi-line plain scalars: whatever the whole parse says, the
        // runs say the same or decline.
        for text in ["a: one\ntwo\nb: 3\n", "a: one\n two\nb: 3\nc: 4\n"] {
            same_as_whole(text);
        }
    }

    #[test]
    fn an_anchor_on_an_empty_value_reaches_into_the_section_before_it() {
        // The empty value's span starts at the next token: the next
        // section's key, or the end of the text.
        for text in ["a: 1\nb:\n  x: &e\n", "a: 1\nb:\n  x: &e\nc: 2\n"] {
            let mut sources = Sources::default();
            let f = sources.add("t.yaml", text);
            let (_, copies) = whole(text, f).unwrap();
            let all = sections(text).unwrap();
            assert!(copies.reach_into(&all[1].range), "{text:?}");
            assert!(!copies.reach_into(&all[0].range), "{text:?}");
        }
    }

    #[test]
    fn runs_inside_a_section_parse_as_the_whole_document() {
        let joined = [
            "dev:\n  a: {x: 1}\n  b: [1, 2]\n  c: 3\n  # c\n  d:\n    e: 1\n    f: |\n      t\n  g: 'q'\nprod:\n  a: 2\n",
            "settings: {}\nprod:\n    svc_1:\n      git_rev: v1\n    svc_2:\n      git_rev: v2\n    svc_3:\n      git_rev: v3\n    svc_4: {}\n",
            // What ends a service before a cut: a block scalar, a list,
            // a nested mapping, comments.
            "dev:\n  a:\n    t: |\n      x\n\n  b:\n    t: >-\n      y\n  # c\n  c:\n    l:\n    - 1\n    - k: v\n  d:\n    m:\n      n: 1\n  # c\n\n  e: 1\n",
        ];
        for text in joined {
            assert!(same_as_whole(text), "{text:?} should be cut");
        }
        // A merge key adds to the whole section: no cut inside it, however
        // its key is spelled.
        assert!(!same_as_whole(
            "dev:\n  a: 1\n  b: 2\n  c: 3\n  <<: {a: 5, z: 6}\n  d: 4\n  e: 5\n"
        ));
        assert!(!same_as_whole(
            "dev:\n  a: 1\n  b: 2\n  c: 3\n  \"\\x3c\\x3c\": {a: 5, z: 6}\n  d: 4\n  e: 5\n"
        ));
        // A block scalar with no content before a cut: empty, as whole.
        same_as_whole("dev:\n  a: 1\n  b: |\n  c: 3\n  d: 4\n  e: 5\n");
        same_as_whole("dev:\n  a: 1\n  s:\n    b: >+\n\n  c: 3\n  d: 4\n");
        // Nesting counts from the document's top, whatever run it is in.
        let deep = format!(
            "dev:\n  a: 1\n  b: 2\n  c: 3\n  d: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        same_as_whole(&deep);
        let declined = [
            // A key two runs of one section define.
            "dev:\n  a: 1\n  b: 2\n  c: 3\n  d: 4\n  a: 5\n",
            // An alias to an anchor of another run of the section.
            "dev:\n  a: &x 1\n  b: 2\n  c: 3\n  d: 4\n  e: *x\n",
        ];
        for text in declined {
            assert!(!same_as_whole(text), "{text:?} should not be cut");
        }
        // A quoted scalar over lines that look like keys: the same, or
        // declined.
        for text in [
            "dev:\n  a: \"one\n  b: two\"\n  c: 3\n  d: 4\n",
            "dev:\n  a: 'one\n  b: two'\n  c: 3\n  d: 4\n  e: 5\n",
        ] {
            same_as_whole(text);
        }
    }

    #[test]
    fn sections_left_out_are_the_only_difference_from_the_whole_parse() {
        let text = "# head\nsettings: {a: 1}\ndev:\n  svc:\n    git_rev: v1\n  other: {}\nprod:\n  svc:\n    git_rev: v2\n  more: {}\n";
        let mut sources = Sources::default();
        let f = sources.add("t.yaml", text);
        let (whole, _) = whole(text, f).unwrap();
        let all = sections(text).unwrap();
        assert_eq!(
            all.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
            ["settings", "dev", "prod"]
        );
        assert_eq!(
            all[0].range.start, 0,
            "the first takes the comments before it"
        );
        for left_out in [vec![1], vec![2], vec![0, 2], vec![1, 2]] {
            let ranges: Vec<_> = left_out.iter().map(|&i| all[i].range.clone()).collect();
            let (parsed, _) = parse_leaving_out(text, f, &ranges, 0).unwrap();
            let mut expected = whole.clone();
            if let Value::Map(entries) = &mut expected.value {
                entries.retain(|e| !left_out.iter().any(|&i| all[i].key == e.key));
            }
            assert_eq!(
                parsed.as_map(),
                expected.as_map(),
                "leaving out {left_out:?}"
            );
        }
        // An empty block scalar right before a section left out is, whole,
        // at that section's key: the rest is not parsed on its own.
        let text2 = "dev:\n  a: 1\nzzz: |\nprod:\n  b: 2\n";
        let f2 = sources.add("t2.yaml", text2);
        let prod = sections(text2).unwrap()[2].range.clone();
        assert!(parse_leaving_out(text2, f2, &[prod], 0).is_none());
        // A range that is no section, and a document whose keys are not
        // written plainly, are parsed whole.
        assert!(parse_leaving_out(text, f, &[3..10], 0).is_none());
        // Nor when the values left out would put the whole past its limit.
        assert!(parse_leaving_out(text, f, &[all[1].range.clone()], MAX_NODES).is_none());
        assert!(sections("dev:\n  a: 1\n\"prod\": {}\n").is_none());
        assert!(sections("dev:\n  a: 1\nprod:x\n").is_none());
        // What a scan by `\n` cannot see: a line broken by a carriage
        // return alone, a merge key at the top level, a tab.
        assert!(sections("dev:\n  a: 1\rprod:\r  b: 2\nqa: {}\n").is_none());
        assert!(sections("dev:\n  a: 1\n<<: {qa: {b: 1}}\nprod: {}\n").is_none());
        assert!(sections("dev:\n\ta: 1\nprod: {}\n").is_none());
        assert!(sections("dev:\r\n  a: 1\r\n\r\nprod: {}\r\n").is_some());
    }

    /// Leaving out any set of sections gives exactly the whole parse
    /// without them, spans included, or declines.
    fn same_as_whole_leaving_out(text: &str) {
        let mut sources = Sources::default();
        let f = sources.add("t.yaml", text);
        let (Ok((whole, _)), Some(all)) = (whole(text, f), sections(text)) else {
            return;
        };
        if all.len() > 10 {
            return;
        }
        for mask in 1..(1u32 << all.len()) - 1 {
            let out: Vec<&Section> = (0..all.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| &all[i])
                .collect();
            let ranges: Vec<_> = out.iter().map(|s| s.range.clone()).collect();
            if let Some((parsed, _)) = parse_leaving_out(text, f, &ranges, 0) {
                let mut expected = whole.clone();
                if let Value::Map(entries) = &mut expected.value {
                    entries.retain(|e| !out.iter().any(|s| s.key == e.key));
                }
                assert_eq!(
                    parsed.as_map(),
                    expected.as_map(),
                    "{text:?} leaving out {mask:b}"
                );
            }
        }
    }

    #[test]
    fn sections_left_out_after_any_last_value_parse_as_the_whole_document() {
        for text in [
            "dev:\n  a: 1\nzzz: |\nprod:\n  b: 2\n",
            "dev:\n  a: 1\nzzz: >+\n\n# c\nprod:\n  b: 2\n",
            "dev:\n  a: 1\nzzz:\n# c\nprod:\n  b: 2\n",
            "dev:\n  a:\n# c\n\nprod:\n  b: 2\nqa:\n",
            "dev:\n  a: &e\n# c\nprod:\n  b: 2\n",
            "dev:\n  a: !!str\n# c\nprod:\n  b: 2\n",
            "dev:\n  - a\n  -\n# c\nprod:\n  b: 2\n",
            "dev:\n  a:\n    b: |-\n  # c\nprod: {}\nqa: |\n",
            "dev: one\n  two\n# c\nprod: x\n",
            "dev: |\n  t\n\n\n# c\nprod: x\nqa: >\n  y\n\n",
            // An empty block scalar as a key.
            "dev:\n  p:\n    ? |\nprod:\n  b: 2\n",
            "dev:\n  ? |\n# c\nprod:\n  b: 2\nqa: 1\n",
            "dev:\n  ? !!str |\nprod: 1\n",
            "dev:\n  ? ''\nprod: 1\n",
            "dev:\n  ?\nprod: 1\n",
        ] {
            same_as_whole_leaving_out(text);
        }
        for text in [
            "dev:\n  a: 1\n  ? |\n  c: 3\n  d: 4\n  e: 5\n",
            "dev:\n  a: 1\n  b:\n    ? >\n  c: 3\n  d: 4\n",
        ] {
            same_as_whole(text);
        }
    }

    #[test]
    fn example_inputs_parse_the_same_in_runs() {
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/controlcenter-examples");
        let mut joined = 0;
        for dir in std::fs::read_dir(examples).unwrap() {
            for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    joined += usize::from(same_as_whole(&text));
                    same_as_whole_leaving_out(&text);
                }
            }
        }
        assert!(joined >= 6, "only {joined} example files were cut");
    }
}
