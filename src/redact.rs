//! Secret values: a type that cannot print them, the list of every secret
//! a run has seen (so no text it prints can show one), and the masks that
//! keep them out of source snippets.
//!
//! What is secret is decided per value from what the user declared: the
//! `value` of a Terraform output marked `sensitive: true` (at any depth of
//! an env file), every value of `secrets.yaml`, and service fields a repo
//! schema marks `writeOnly`. A sensitive file that cannot be decoded or
//! parsed has every value masked, since none can be told apart.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io::Write;

use serde::{Serialize, Serializer};
use serde_json::Value as Json;

/// What a secret shows instead of itself.
pub const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are masked in snippets but not searched for
/// in printed text: a two-letter value would blank out unrelated words.
pub const MIN_SCRUB_LEN: usize = 4;

/// A secret value. `Debug`, `Display` and `Serialize` print [`REDACTED`];
/// only [`Secret::expose`] and a serialization inside [`exposed`] (the
/// template input) see the value.
#[derive(Clone, PartialEq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A value that is secret or not, as its schema declares.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MaybeSecret {
    /// Shown as it is.
    Plain(Json),
    /// Shown as [`REDACTED`].
    Secret(Secret<Json>),
}

thread_local! {
    static EXPOSED: Cell<bool> = const { Cell::new(false) };
    /// While [`write_keyed`] serializes: the bytes written so far, and
    /// where each secret value started.
    static KEYED: RefCell<Option<Keyed>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Keyed {
    /// Bytes written so far: counted by the writer, read by a secret.
    written: std::rc::Rc<Cell<usize>>,
    secrets: Vec<usize>,
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if EXPOSED.with(Cell::get) {
            KEYED.with_borrow_mut(|k| {
                if let Some(k) = k {
                    k.secrets.push(k.written.get());
                }
            });
            self.0.serialize(s)
        } else {
            s.serialize_str(REDACTED)
        }
    }
}

/// Writes what a cache key hashes of `value` into `out`: its compact JSON
/// with secrets shown, then a line break (which compact JSON never holds)
/// and where each secret value starts in it. A value turning secret, or
/// plain, changes what is written even when its text does not; the
/// secrets are only ever hashed.
pub fn write_keyed(value: &impl Serialize, out: &mut dyn Write) -> std::io::Result<()> {
    /// Counts what the serializer writes (it writes token by token, so a
    /// secret starts where the count stands).
    struct Counting<'w> {
        out: &'w mut Vec<u8>,
        written: std::rc::Rc<Cell<usize>>,
    }
    impl Write for Counting<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.out.extend_from_slice(buf);
            self.written.set(self.written.get() + buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    /// Puts back what an enclosing call was counting, however this ends.
    struct Reset(Option<Keyed>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let outer = self.0.take();
            KEYED.with_borrow_mut(|k| *k = outer);
        }
    }
    let keyed = Keyed::default();
    let written = keyed.written.clone();
    let _reset = Reset(KEYED.with_borrow_mut(|k| k.replace(keyed)));
    // Made whole in memory, then handed on at once: thousands of units'
    // keys are hashed from this, and a write per token through `out` cost
    // more than the hash.
    let mut json = Vec::with_capacity(4096);
    exposed(|| {
        serde_json::to_writer(
            Counting {
                out: &mut json,
                written,
            },
            value,
        )
    })?;
    let secrets = KEYED.with_borrow_mut(|k| k.take().map(|k| k.secrets).unwrap_or_default());
    out.write_all(&json)?;
    out.write_all(b"\n")?;
    for at in secrets {
        write!(out, "{at} ")?;
    }
    Ok(())
}

/// Runs `f` with secrets serializing as their values: only for building
/// the template input, which never reaches a terminal or a file.
pub fn exposed<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPOSED.with(|e| e.set(self.0));
        }
    }
    let _reset = Reset(EXPOSED.with(|e| e.replace(true)));
    f()
}

/// Every secret string seen by a run, in the forms it could be printed in.
#[derive(Clone, Debug, Default)]
pub struct SecretValues {
    /// Longest first, so a secret that contains another is replaced whole.
    values: Vec<String>,
    seen: BTreeSet<String>,
}

impl SecretValues {
    /// Remembers a secret string in every form it could be printed in:
    /// as it is, JSON-escaped, Rust-escaped (`\u{200b}`), YAML-escaped,
    /// and, when it has several lines, each line.
    pub fn add(&mut self, value: &str) {
        let value = value.trim();
        if value.chars().count() < MIN_SCRUB_LEN {
            return;
        }
        let json = serde_json::to_string(value).unwrap_or_default();
        let debug = format!("{value:?}");
        let yaml = serde_saphyr::to_string(&value).unwrap_or_default();
        let mut forms = vec![
            value.to_owned(),
            json.trim_matches('"').to_owned(),
            debug.trim_matches('"').to_owned(),
            yaml.trim().trim_matches('"').to_owned(),
        ];
        if value.contains('\n') {
            forms.extend(
                value
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.chars().count() >= MIN_SCRUB_LEN)
                    .map(str::to_owned),
            );
        }
        for form in forms {
            if form.chars().count() >= MIN_SCRUB_LEN && self.seen.insert(form.clone()) {
                self.values.push(form);
            }
        }
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    }

    /// Where in `text` the first known secret of at least `min_chars`
    /// characters starts.
    pub fn position_in(&self, text: &str, min_chars: usize) -> Option<usize> {
        self.values
            .iter()
            .filter(|v| v.chars().count() >= min_chars)
            .filter_map(|v| text.find(v.as_str()))
            .min()
    }

    /// The secrets of `self` that are not also in `other`.
    pub fn without(&self, other: &SecretValues) -> SecretValues {
        let values: Vec<String> = self
            .values
            .iter()
            .filter(|v| !other.seen.contains(*v))
            .cloned()
            .collect();
        SecretValues {
            seen: values.iter().cloned().collect(),
            values,
        }
    }

    /// Whether `text` holds a known secret.
    pub fn found_in(&self, text: &str) -> bool {
        self.values.iter().any(|v| text.contains(v.as_str()))
    }

    /// [`SecretValues::found_in`] of bytes (read as UTF-8, lossily).
    pub fn found_in_bytes(&self, bytes: &[u8]) -> bool {
        !self.values.is_empty() && self.found_in(&String::from_utf8_lossy(bytes))
    }

    /// Remembers every scalar of a JSON value (strings, numbers by their
    /// text as written and as a float prints, and the keys of mappings).
    pub fn add_json(&mut self, value: &Json) {
        match value {
            Json::String(s) => self.add(s),
            Json::Number(n) => {
                self.add(&n.to_string());
                if let Some(f) = n.as_f64() {
                    self.add(&f.to_string());
                }
            }
            Json::Array(items) => items.iter().for_each(|v| self.add_json(v)),
            Json::Object(map) => map.iter().for_each(|(k, v)| {
                self.add(k);
                self.add_json(v);
            }),
            Json::Null | Json::Bool(_) => {}
        }
    }

    /// Adds every secret of `other`.
    pub fn extend(&mut self, other: &SecretValues) {
        for v in &other.values {
            if self.seen.insert(v.clone()) {
                self.values.push(v.clone());
            }
        }
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    }

    /// Replaces, in place, every string of `value` (mapping keys included)
    /// that holds a known secret with `with(string)`.
    pub fn redact_json(&self, value: &mut Json, with: &dyn Fn(&str) -> Json) {
        match value {
            Json::String(s) if self.found_in(s) => *value = with(s),
            Json::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v, with)),
            Json::Object(map) => {
                if map.keys().any(|k| self.found_in(k)) {
                    let old = std::mem::take(map);
                    for (k, v) in old {
                        let mut key = if self.found_in(&k) {
                            match with(&k) {
                                Json::String(s) => s,
                                other => other.to_string(),
                            }
                        } else {
                            k
                        };
                        // Two redacted keys must not merge.
                        while map.contains_key(&key) {
                            key.push('\'');
                        }
                        map.insert(key, v);
                    }
                }
                map.values_mut().for_each(|v| self.redact_json(v, with));
            }
            _ => {}
        }
    }

    /// Whether no secret is known.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every known secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }
}

/// For a sensitive file that cannot be parsed: the byte ranges of every
/// run of characters that are not white space or YAML/JSON punctuation.
/// Keys are masked too: in a broken file no key can be told from a value.
pub fn unparsed_value_ranges(text: &str) -> Vec<(usize, usize)> {
    let keep = |c: char| c.is_whitespace() || "{}[],:-#\"'|>&*!?".contains(c);
    let mut ranges = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (keep(c), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                ranges.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        ranges.push((s, text.len()));
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_tells_a_secret_from_a_plain_value_of_the_same_text() {
        let keyed = |v: &[MaybeSecret]| {
            let mut out = Vec::new();
            write_keyed(&v, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let plain = || MaybeSecret::Plain(Json::from("pw-canary"));
        let secret = || MaybeSecret::Secret(Secret::new(Json::from("pw-canary")));
        let both_plain = keyed(&[plain(), plain()]);
        let first_secret = keyed(&[secret(), plain()]);
        let second_secret = keyed(&[plain(), secret()]);
        assert_eq!(both_plain, "[\"pw-canary\",\"pw-canary\"]\n");
        assert_eq!(first_secret, "[\"pw-canary\",\"pw-canary\"]\n1 ");
        assert_eq!(second_secret, "[\"pw-canary\",\"pw-canary\"]\n13 ");
        // Nothing is left marking, and plain serialization redacts again.
        assert_eq!(serde_json::to_string(&secret()).unwrap(), "\"<redacted>\"");
        assert_eq!(keyed(&[plain(), plain()]), both_plain);

        // A key written while another is (a value whose serialization
        // makes one) leaves the outer count whole.
        struct Nested;
        impl Serialize for Nested {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut scratch = Vec::new();
                let _ = write_keyed(
                    &MaybeSecret::Secret(Secret::new(Json::from(1))),
                    &mut scratch,
                );
                s.serialize_str("n")
            }
        }
        let mut out = Vec::new();
        write_keyed(&(secret(), Nested, secret()), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[\"pw-canary\",\"n\",\"pw-canary\"]\n1 17 "
        );
    }

    #[test]
    fn a_secret_never_prints_itself() {
        let s = Secret::new("hunter2-canary".to_owned());
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(
            exposed(|| serde_json::to_string(&s).unwrap()),
            "\"hunter2-canary\""
        );
        // The scope ends with the closure.
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
    }

    #[test]
    fn scrub_replaces_every_form_longest_first() {
        let mut v = SecretValues::default();
        v.add("pa\"ss-word");
        v.add("pa\"ss");
        v.add("ab"); // too short to search for
        let json = serde_json::to_string("x pa\"ss-word y").unwrap();
        assert_eq!(v.scrub(&json), "\"x <redacted> y\"");
        assert_eq!(
            v.scrub("pa\"ss-word and pa\"ss, ab"),
            "<redacted> and <redacted>, ab"
        );
    }

    #[test]
    fn unparsed_files_keep_only_their_punctuation() {
        let text = "{\"db\": {\"value\": [\"s3cr3t\", 42]}}";
        let mut masked = text.to_owned();
        for (s, e) in unparsed_value_ranges(text) {
            masked.replace_range(s..e, &"*".repeat(e - s));
        }
        assert_eq!(masked, "{\"**\": {\"*****\": [\"******\", **]}}");
    }
}
