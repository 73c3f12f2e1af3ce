//! Writes an object's YAML document straight from its JSON text, byte for
//! byte as serde-saphyr writes it, for the kind of object nearly every
//! rendered one is; `None` for anything else, which serde-saphyr then
//! writes itself.
//!
//! Handled: an object at the top; maps and lists nested in it (a list's
//! items being scalars, non-empty maps or empty collections); `null`,
//! booleans, integers written the canonical way and within 18 digits, and
//! strings of at most 80 printable ASCII characters with nothing to escape.
//! How such a string is written (plain or quoted) as a key, a
//! map value or a list item is decided without asking for the common
//! shape (a letter or `/`, then letters, digits, `.`, `_`, `-`, `/`; not a
//! word YAML 1.1 reads as a boolean, null or number), and otherwise asked
//! of serde-saphyr once per string and remembered. Everything else (floats,
//! escapes, long or multi-line strings, text beyond ASCII, a list directly
//! in a list, deep nesting) is left to serde-saphyr. A test holds the two
//! to the same bytes on generated documents.

use std::collections::HashMap;

/// How scalar strings are written, as learnt from serde-saphyr, per
/// position: the writer asks once per distinct string (per thread).
#[derive(Default)]
struct ScalarStyles {
    keys: HashMap<Box<str>, Option<Box<str>>>,
    values: HashMap<Box<str>, Option<Box<str>>>,
    items: HashMap<Box<str>, Option<Box<str>>>,
}

/// Where a scalar is written.
#[derive(Clone, Copy)]
enum Position {
    Key,
    Value,
    Item,
}

/// Strings longer than this may be folded over lines (serde-saphyr's
/// `folded_wrap_chars`): left to serde-saphyr.
const MAX_STRING: usize = 80;

/// Maps and lists nested deeper than this are left to serde-saphyr (whose
/// JSON reader stops at 128).
const MAX_DEPTH: usize = 64;

/// Strings remembered per thread before the memory starts over: a bound
/// on what a long-running process keeps.
const MAX_REMEMBERED: usize = 1 << 16;

thread_local! {
    static STYLES: std::cell::RefCell<ScalarStyles> = std::cell::RefCell::default();
}

/// Appends the YAML document (no leading `---`) of the JSON object `json`
/// to `out`, as serde-saphyr writes it; `None` (with `out` as it was) when
/// the document is not of the kind handled.
pub fn write_document(json: &str, out: &mut String) -> Option<()> {
    STYLES.with(|styles| {
        let mut styles = styles.try_borrow_mut().ok()?;
        let remembered = styles.keys.len() + styles.values.len() + styles.items.len();
        if remembered > MAX_REMEMBERED {
            *styles = ScalarStyles::default();
        }
        let from = out.len();
        let mut writer = Writer {
            json: json.as_bytes(),
            text: json,
            at: 0,
            out,
            styles: &mut styles,
        };
        let written = writer.document();
        if written.is_none() {
            writer.out.truncate(from);
        }
        written
    })
}

/// A JSON value, as far as the writer needs to look ahead.
#[derive(Clone, Copy)]
enum Next {
    Scalar,
    EmptyMap,
    EmptyList,
    Map,
    List,
}

struct Writer<'j, 'o> {
    json: &'j [u8],
    /// The same, as text: what is copied out is cut from it where the
    /// bytes are ASCII, so it needs no check again.
    text: &'j str,
    at: usize,
    out: &'o mut String,
    styles: &'o mut ScalarStyles,
}

impl<'j> Writer<'j, '_> {
    fn document(&mut self) -> Option<()> {
        self.skip_space();
        if !matches!(self.next_kind()?, Next::Map) {
            return None;
        }
        self.map(0, None, 0)?;
        self.skip_space();
        (self.at == self.json.len()).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.json.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// What the value at the cursor is (the cursor stays).
    fn next_kind(&mut self) -> Option<Next> {
        self.skip_space();
        let open = self.peek()?;
        let close = match open {
            b'{' => b'}',
            b'[' => b']',
            _ => return Some(Next::Scalar),
        };
        let mut i = self.at + 1;
        while matches!(self.json.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            i += 1;
        }
        let empty = *self.json.get(i)? == close;
        Some(match (open, empty) {
            (b'{', true) => Next::EmptyMap,
            (b'{', false) => Next::Map,
            (_, true) => Next::EmptyList,
            (_, false) => Next::List,
        })
    }

    fn indent(&mut self, columns: usize) {
        const SPACES: &str = "                                ";
        let mut left = columns;
        while left > 0 {
            let n = left.min(SPACES.len());
            self.out.push_str(&SPACES[..n]);
            left -= n;
        }
    }

    /// A non-empty map, `depth` maps and lists deep, whose keys sit at
    /// `column`. With `dash`, its first entry goes on the line a list
    /// item's `- ` already started.
    fn map(&mut self, column: usize, mut dash: Option<()>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(b'{')?;
        loop {
            if dash.take().is_none() {
                self.indent(column);
            }
            self.skip_space();
            let key = self.string()?;
            self.scalar_string(key, Position::Key)?;
            self.out.push(':');
            self.expect(b':')?;
            match self.next_kind()? {
                Next::Scalar => {
                    self.out.push(' ');
                    self.scalar(Position::Value)?;
                    self.out.push('\n');
                }
                empty @ (Next::EmptyMap | Next::EmptyList) => {
                    self.out.push(' ');
                    self.empty(empty)?;
                }
                Next::Map => {
                    self.out.push('\n');
                    self.map(column + 2, None, depth + 1)?;
                }
                // A list under a key starts at the key's column.
                Next::List => {
                    self.out.push('\n');
                    self.list(column, depth + 1)?;
                }
            }
            if self.closed(b'}')? {
                return Some(());
            }
        }
    }

    /// A non-empty list, `depth` maps and lists deep, whose dashes sit at
    /// `column`.
    fn list(&mut self, column: usize, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(b'[')?;
        loop {
            self.indent(column);
            self.out.push_str("- ");
            match self.next_kind()? {
                Next::Scalar => {
                    self.scalar(Position::Item)?;
                    self.out.push('\n');
                }
                empty @ (Next::EmptyMap | Next::EmptyList) => self.empty(empty)?,
                // The item's keys sit past the dash, the first on its line.
                Next::Map => self.map(column + 2, Some(()), depth + 1)?,
                Next::List => return None,
            }
            if self.closed(b']')? {
                return Some(());
            }
        }
    }

    /// The empty map or list at the cursor, `{}` or `[]`, and the cursor
    /// past it.
    fn empty(&mut self, kind: Next) -> Option<()> {
        let (text, close) = match kind {
            Next::EmptyMap => ("{}\n", b'}'),
            _ => ("[]\n", b']'),
        };
        self.out.push_str(text);
        self.at += self.json[self.at..].iter().position(|&b| b == close)? + 1;
        Some(())
    }

    /// After a member: past a `,` (false) or the `close` that ends the
    /// collection (true).
    fn closed(&mut self, close: u8) -> Option<bool> {
        self.skip_space();
        let next = self.peek()?;
        self.at += 1;
        match next {
            b',' => Some(false),
            _ if next == close => Some(true),
            _ => None,
        }
    }

    /// The string at the cursor, when it has nothing escaped and is
    /// printable ASCII.
    fn string(&mut self) -> Option<&'j str> {
        let json: &'j [u8] = self.json;
        if json.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        // One pass to the closing quote, refusing what is not printable
        // ASCII or is escaped.
        let len = json[start..]
            .iter()
            .take(MAX_STRING + 1)
            .position(|&b| b == b'"' || !(b' '..=b'~').contains(&b) || b == b'\\')?;
        if len > MAX_STRING || json[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    fn scalar(&mut self, position: Position) -> Option<()> {
        match self.peek()? {
            b'"' => {
                let s = self.string()?;
                self.scalar_string(s, position)
            }
            b'n' => self.word("null"),
            b't' => self.word("true"),
            b'f' => self.word("false"),
            _ => self.integer(),
        }
    }

    fn word(&mut self, word: &str) -> Option<()> {
        let rest = &self.json[self.at..];
        if !rest.starts_with(word.as_bytes()) {
            return None;
        }
        self.at += word.len();
        self.out.push_str(word);
        Some(())
    }

    /// An integer written the canonical way (no sign but `-`, no leading
    /// zero, no fraction or exponent) that fits any integer type.
    fn integer(&mut self) -> Option<()> {
        let rest = &self.json[self.at..];
        let negative = rest.first() == Some(&b'-');
        let digits = rest[usize::from(negative)..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = usize::from(negative) + digits;
        let canonical = match rest.get(usize::from(negative)..end)? {
            [b'0'] => !negative,
            [b'1'..=b'9', ..] => digits <= 18,
            _ => false,
        };
        if !canonical || matches!(rest.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.out.push_str(self.text.get(self.at..self.at + end)?);
        self.at += end;
        Some(())
    }

    fn scalar_string(&mut self, s: &str, position: Position) -> Option<()> {
        if is_plain_word(s) {
            self.out.push_str(s);
            return Some(());
        }
        let styles = match position {
            Position::Key => &mut self.styles.keys,
            Position::Value => &mut self.styles.values,
            Position::Item => &mut self.styles.items,
        };
        // Looked up by reference: a string seen before costs no copy.
        if !styles.contains_key(s) {
            styles.insert(s.into(), asked(s, position));
        }
        self.out.push_str(styles.get(s)?.as_deref()?);
        Some(())
    }
}

/// A string every position writes plain: a letter or `/`, then letters,
/// digits, `.`, `_`, `-` and `/`, and not a word YAML reads as something
/// else. (`/` and letters are no YAML indicator; without `:`, `#` or a
/// space nothing inside can end the scalar; a number starts with a digit,
/// a sign or a dot.)
fn is_plain_word(s: &str) -> bool {
    let bytes = s.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'/'))
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        && (s.len() > 5
            || ![
                "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
            ]
            .iter()
            .any(|word| s.eq_ignore_ascii_case(word)))
}

/// How serde-saphyr writes `s` at `position`, when it is one scalar on the
/// line; `None` when it is not (the document is then left to it).
fn asked(s: &str, position: Position) -> Option<Box<str>> {
    let written = match position {
        Position::Key => serde_saphyr::to_string(&std::collections::BTreeMap::from([(s, 0)])),
        Position::Value => serde_saphyr::to_string(&std::collections::BTreeMap::from([("k", s)])),
        Position::Item => serde_saphyr::to_string(&[s]),
    }
    .ok()?;
    let scalar = match position {
        Position::Key => written.strip_suffix(": 0\n")?,
        Position::Value => written.strip_prefix("k: ")?.strip_suffix('\n')?,
        Position::Item => written.strip_prefix("- ")?.strip_suffix('\n')?,
    };
    let quoted = |q: char| scalar.strip_prefix(q).and_then(|x| x.strip_suffix(q)) == Some(s);
    let same = scalar == s || quoted('"') || (quoted('\'') && !s.contains('\''));
    (same && !scalar.contains('\n')).then(|| scalar.into())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::write_document;

    /// What serde-saphyr writes for the JSON text.
    fn saphyr(json: &str) -> String {
        let mut de = serde_json::Deserializer::from_str(json);
        serde_saphyr::to_string(&serde_transcode::Transcoder::new(&mut de)).unwrap()
    }

    /// The writer's document, when it writes one.
    fn written(json: &str) -> Option<String> {
        let mut out = String::from("before\n");
        let done = write_document(json, &mut out);
        let text = out.strip_prefix("before\n").unwrap().to_owned();
        match done {
            Some(()) => Some(text),
            None => {
                assert_eq!(text, "", "a refused document leaves the output as it was");
                None
            }
        }
    }

    /// A deterministic generator of documents; `.1` (writable) keeps to
    /// what the writer handles (no floats, nothing to escape, no list in a
    /// list), so that its layout is what gets compared.
    struct Rng(crate::testing::Rng, bool);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0.next()
        }

        fn below(&mut self, n: usize) -> usize {
            self.0.below(n)
        }
    }

    /// Strings YAML may read as something else, or that need quoting, or
    /// that are ordinary.
    const WORDS: &[&str] = &[
        "",
        "a",
        "web",
        "app.kubernetes.io/name",
        "checksum/config",
        "/healthz",
        "v1.2.3",
        "y",
        "Y",
        "yes",
        "No",
        "ON",
        "off",
        "true",
        "False",
        "null",
        "NULL",
        "~",
        "nan",
        ".inf",
        "-.inf",
        "inf",
        "+inf",
        "1",
        "0",
        "-1",
        "+1",
        "08",
        "0x1F",
        "0o17",
        "0b101",
        "1_000",
        "1e3",
        "1E-3",
        "1.5",
        ".5",
        "5.",
        "1:20",
        "1:2:3",
        "12:30:45.5",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14 21:59:43",
        "<<",
        "=",
        "-",
        "?",
        "- a",
        "? a",
        "-a",
        "?a",
        ":a",
        "a:",
        "a:b",
        "a: b",
        "a #b",
        "a#b",
        "#a",
        "&a",
        "*a",
        "!a",
        "|",
        ">",
        "'a'",
        "\"a\"",
        "%a",
        "@a",
        "`a",
        "a,b",
        "[a]",
        "{a}",
        "a]",
        " a",
        "a ",
        "---",
        "--- a",
        "...",
        "... a",
        "a\tb",
        "a\nb",
        "a\\b",
        "é",
        "100m",
        "256Mi",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/svc:1",
        "http://x.example.com:80/a",
        "_a",
        ".a",
        "a.",
        "-1a",
        "0a",
        "1a2",
        "v",
        "N",
        "n",
        "On",
        "oFF",
        "Yes",
    ];

    fn string(rng: &mut Rng) -> String {
        let s = any_string(rng);
        if rng.1 {
            s.chars()
                .filter(|c| (' '..='~').contains(c) && !matches!(c, '"' | '\\'))
                .collect()
        } else {
            s
        }
    }

    fn any_string(rng: &mut Rng) -> String {
        match rng.below(6) {
            0..=2 => WORDS[rng.below(WORDS.len())].to_owned(),
            3 => {
                // Around the length past which serde-saphyr folds.
                let len = if rng.1 {
                    70 + rng.below(11)
                } else {
                    76 + rng.below(8)
                };
                let unit = ["a", "a b", "ab-", "x.y"][rng.below(4)];
                unit.repeat(len).chars().take(len).collect()
            }
            _ => {
                const CHARS: &[char] = &[
                    'a', 'Z', '0', '9', '-', '.', '_', '/', ':', '#', ' ', '?', ',', '[', '{', '"',
                    '\'', '!', '&', '*', '|', '>', '%', '@', '`', '~', '=', '<', '+',
                ];
                (0..1 + rng.below(6))
                    .map(|_| CHARS[rng.below(CHARS.len())])
                    .collect()
            }
        }
    }

    fn scalar(rng: &mut Rng) -> Value {
        match rng.below(10) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 | 3 if rng.1 => {
                json!((rng.next() % 1_000_000_000_000_000_000) as i64 >> rng.below(64))
            }
            2 => json!(rng.next() as i64 >> rng.below(64)),
            3 => json!(rng.next() >> rng.below(64)),
            4 if rng.1 => json!(rng.below(100_000) as i64 - 50_000),
            4 => json!([0.5, -0.0, 1e20, 1.5e-7, 3.0, -2.25][rng.below(6)]),
            _ => Value::String(string(rng)),
        }
    }

    fn value(rng: &mut Rng, depth: usize) -> Value {
        if depth > 4 || rng.below(3) == 0 {
            return scalar(rng);
        }
        match rng.below(5) {
            0 if rng.1 => Value::Array((0..rng.below(4)).map(|_| scalar(rng)).collect()),
            0 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
            1 => Value::Array(
                (0..1 + rng.below(3))
                    .map(|_| object(rng, depth + 1))
                    .collect(),
            ),
            _ => object(rng, depth + 1),
        }
    }

    fn object(rng: &mut Rng, depth: usize) -> Value {
        let mut map = Map::new();
        for _ in 0..rng.below(5) + usize::from(rng.1) {
            map.insert(string(rng), value(rng, depth));
        }
        Value::Object(map)
    }

    #[test]
    fn documents_it_writes_are_what_serde_saphyr_writes() {
        let mut rng = Rng(crate::testing::Rng(0x9e37_79b9_7f4a_7c15), false);
        let mut fast = 0;
        for round in 0..12_000 {
            // Every other document only of what the writer handles.
            rng.1 = round % 2 == 1;
            let doc = object(&mut rng, 0);
            let compact = serde_json::to_string(&doc).unwrap();
            let spaced = serde_json::to_string_pretty(&doc).unwrap();
            for text in [&compact, &spaced] {
                if let Some(yaml) = written(text) {
                    fast += 1;
                    assert_eq!(yaml, saphyr(text), "for {text}");
                }
            }
        }
        // Most generated documents hold something left to serde-saphyr;
        // enough are written here for the comparison to mean something.
        assert!(fast > 10_000, "only {fast} documents written");
    }

    #[test]
    fn kubernetes_objects_are_written_here() {
        let objects = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"labels": {"app.kubernetes.io/name": "web"}, "name": "web", "namespace": "prod"},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"annotations": {"checksum/config": "99914b932bd37a50b983c5e7c90ae93b"}},
                        "spec": {"containers": [{"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "true"}],
                            "envFrom": [{"configMapRef": {"name": "web"}}], "image": "registry.example.com/web:1.2.3",
                            "name": "web", "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                            "args": ["--port", "8080", "-v"], "resources": {}, "volumeMounts": []}],
                        "securityContext": {"runAsNonRoot": true}}}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                "data": {"FLAG_X": "false", "N": "1", "EMPTY": "", "URL": "http://a:80/b", "yes": "no"}}),
        ];
        for object in objects {
            let text = serde_json::to_string(&object).unwrap();
            assert_eq!(written(&text).as_deref(), Some(saphyr(&text).as_str()));
        }
    }

    #[test]
    fn what_it_cannot_write_exactly_is_refused() {
        for text in [
            r#"[1]"#,
            r#"{}"#,
            r#"{"a": 1.5}"#,
            r#"{"a": -0}"#,
            r#"{"a": 12345678901234567890}"#,
            r#"{"a": "x\ny"}"#,
            r#"{"a": "é"}"#,
            r#"{"a": [[1]]}"#,
            r#"{"a": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
            r#"{"a": 1} x"#,
            r#"{"a" 1}"#,
        ] {
            assert_eq!(written(text), None, "{text}");
        }
        for (open, close) in [("{\"a\":", "}"), ("{\"a\":[", "]}")] {
            let deep = open.repeat(70) + "1" + &close.repeat(70);
            assert_eq!(written(&deep), None);
        }
        // Within the bound, nesting of either kind is written.
        let nested = "{\"a\":[".repeat(30) + "1" + &"]}".repeat(30);
        assert_eq!(written(&nested).as_deref(), Some(saphyr(&nested).as_str()));
    }
}
