//! Whether an object's JSON text is already what writing its parsed value
//! gives: the templates' compact output nearly always is, and is then
//! kept as it was made instead of written again from the parsed value.

/// Nesting deeper than this is never taken as written (serde_json does
/// not read deeper).
const MAX_DEPTH: usize = 128;

/// Whether `text` is exactly what `serde_json::to_string` writes for the
/// value `serde_json::from_str` reads from it: no space between tokens,
/// each object's keys unique and in byte order (keys with an escape are
/// not taken), strings escaped as serde_json escapes them (`\"`, `\\`,
/// `\b\f\n\r\t`, other control characters as `\u00xx`, nothing else), and
/// integers of at most 18 digits without a sign but `-` or a leading zero.
/// A float is never taken as written: its shortest form is the writer's.
pub fn is_canonical(text: &str) -> bool {
    let mut at = 0;
    value(text.as_bytes(), &mut at, 0) && at == text.len()
}

fn value(b: &[u8], at: &mut usize, depth: usize) -> bool {
    match b.get(*at) {
        Some(b'{') => object(b, at, depth + 1),
        Some(b'[') => array(b, at, depth + 1),
        Some(b'"') => string(b, at).is_some(),
        Some(b't') => word(b, at, b"true"),
        Some(b'f') => word(b, at, b"false"),
        Some(b'n') => word(b, at, b"null"),
        _ => integer(b, at),
    }
}

fn object(b: &[u8], at: &mut usize, depth: usize) -> bool {
    match opened(b, at, depth, b'}') {
        Some(false) => {}
        empty => return empty.is_some(),
    }
    let mut previous: Option<&[u8]> = None;
    loop {
        // An escaped key's bytes are not its text: its order is not seen.
        let Some(key) = string(b, at).filter(|k| !k.contains(&b'\\')) else {
            return false;
        };
        if previous.is_some_and(|p| p >= key) {
            return false;
        }
        previous = Some(key);
        if b.get(*at) != Some(&b':') {
            return false;
        }
        *at += 1;
        if !value(b, at, depth) {
            return false;
        }
        match closed(b, at, b'}') {
            Some(false) => {}
            end => return end.is_some(),
        }
    }
}

fn array(b: &[u8], at: &mut usize, depth: usize) -> bool {
    match opened(b, at, depth, b']') {
        Some(false) => {}
        empty => return empty.is_some(),
    }
    loop {
        if !value(b, at, depth) {
            return false;
        }
        match closed(b, at, b']') {
            Some(false) => {}
            end => return end.is_some(),
        }
    }
}

/// Past the opening of a collection `depth` deep: whether it is empty
/// (and then past its `close` too); `None` when it is too deep.
fn opened(b: &[u8], at: &mut usize, depth: usize, close: u8) -> Option<bool> {
    if depth > MAX_DEPTH {
        return None;
    }
    *at += 1;
    let empty = b.get(*at) == Some(&close);
    if empty {
        *at += 1;
    }
    Some(empty)
}

/// Past what follows a member: a `,` (false) or the `close` that ends the
/// collection (true); `None` for anything else.
fn closed(b: &[u8], at: &mut usize, close: u8) -> Option<bool> {
    let next = *b.get(*at)?;
    *at += 1;
    match next {
        b',' => Some(false),
        _ if next == close => Some(true),
        _ => None,
    }
}

/// The string at `at` (its bytes between the quotes, as written), when
/// every escape in it is the one serde_json writes; `at` then past it.
fn string<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    if b.get(*at) != Some(&b'"') {
        return None;
    }
    let start = *at + 1;
    let mut i = start;
    loop {
        match *b.get(i)? {
            b'"' => break,
            b'\\' => {
                i += match *b.get(i + 1)? {
                    b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' => {
                        let code = b.get(i + 2..i + 6)?;
                        let hex = |c: u8| match c {
                            b'0'..=b'9' => Some(c - b'0'),
                            b'a'..=b'f' => Some(c - b'a' + 10),
                            _ => None,
                        };
                        let byte = hex(code[2])? * 16 + hex(code[3])?;
                        let short = matches!(byte, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d);
                        if &code[..2] != b"00" || byte >= 0x20 || short {
                            return None;
                        }
                        6
                    }
                    _ => return None,
                }
            }
            // Control characters are escaped.
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
    *at = i + 1;
    Some(&b[start..i])
}

fn word(b: &[u8], at: &mut usize, word: &[u8]) -> bool {
    let found = b[*at..].starts_with(word);
    if found {
        *at += word.len();
    }
    found
}

/// An integer as serde_json writes one it read (`-0` reads as a float).
fn integer(b: &[u8], at: &mut usize) -> bool {
    let negative = b.get(*at) == Some(&b'-');
    let from = *at + usize::from(negative);
    let digits = b[from.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let canonical = match b.get(from) {
        Some(b'0') => digits == 1 && !negative,
        Some(b'1'..=b'9') => digits <= 18,
        _ => false,
    };
    let end = from + digits;
    if !canonical || matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
        return false;
    }
    *at = end;
    true
}

#[cfg(test)]
mod tests {
    use super::is_canonical;
    use crate::testing::Rng;

    /// What serde_json writes of what it reads from `text`.
    fn rewritten(text: &str) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        serde_json::to_string(&value).ok()
    }

    #[test]
    fn written_values_are_canonical_and_anything_else_is_not() {
        for text in [
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#,
            r#"{}"#,
            r#"[]"#,
            r#"{"a":[1,-2,0,true,false,null,{},[]],"b":"x\"y\\z\n\u001f\u0000"}"#,
            "{\"k\":\"é 日本 \u{7f}\"}",
            r#"123456789012345678"#,
        ] {
            assert!(is_canonical(text), "{text}");
            assert_eq!(rewritten(text).as_deref(), Some(text));
        }
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a": 1}"#,
            r#" {}"#,
            r#"{}x"#,
            r#"{"a\u0062":1}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":"\u00e9"}"#,
            r#"{"a":"\u000a"}"#,
            r#"{"a":"\u001F"}"#,
            r#"{"a":"\u007f"}"#,
            r#"{"a":1.0}"#,
            r#"{"a":1e3}"#,
            r#"{"a":-0}"#,
            r#"{"a":01}"#,
            r#"{"a":1234567890123456789}"#,
            r#"{"a":tru}"#,
            r#"{"a""#,
            r#"{"a":"x"#,
            "",
            "-",
        ] {
            assert!(!is_canonical(text), "{text}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!is_canonical(&deep));
    }

    /// Whatever the text, one taken as written is what writing its value
    /// gives.
    #[test]
    fn a_text_taken_as_written_is_what_writing_its_value_gives() {
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"a\"",
            "\"b\"",
            "\"a\\\"\"",
            "\"\\u0001\"",
            "\"\\n\"",
            "\"\\u000a\"",
            "\"\\/\"",
            "\"é\"",
            "0",
            "-0",
            "7",
            "-12",
            "1.5",
            "1e2",
            "true",
            "null",
            "\"",
            "\\",
        ];
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut taken = 0;
        for _ in 0..200_000 {
            let len = 1 + rng.below(12);
            let text: String = (0..len).map(|_| rng.pick(PIECES)).collect();
            if is_canonical(&text) {
                taken += 1;
                assert_eq!(rewritten(&text).as_deref(), Some(text.as_str()), "{text}");
            }
        }
        assert!(taken > 1000, "only {taken} texts taken");
    }
}
