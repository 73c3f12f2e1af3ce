//! Text held once and shared: an object's JSON or YAML alone, or as a part
//! of a larger buffer (a cache record, or a whole cache pack read into
//! memory at once), so a warm render copies no object out of what it read.

use std::sync::Arc;

/// Bytes that texts are parts of: a string, or bytes read whose parts are
/// checked to be UTF-8 as they are taken.
pub struct Buffer(Backing);

enum Backing {
    String(String),
    /// A cache pack, read whole in one go: a private copy, so what a part
    /// was checked to be it stays, whatever another program does to the
    /// file meanwhile (a mapping of it would change under a truncation or
    /// a rewrite in place).
    Bytes(Box<[u8]>),
}

impl Buffer {
    /// A buffer of `text`.
    pub fn string(text: String) -> Arc<Self> {
        Arc::new(Buffer(Backing::String(text)))
    }

    /// A buffer of `bytes`, not necessarily UTF-8.
    pub fn bytes_of(bytes: Vec<u8>) -> Arc<Self> {
        Arc::new(Buffer(Backing::Bytes(bytes.into_boxed_slice())))
    }

    /// All of its bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Backing::String(s) => s.as_bytes(),
            Backing::Bytes(b) => b,
        }
    }

    /// The text in `range`, when it is in the buffer and is UTF-8.
    pub fn str(&self, range: std::ops::Range<usize>) -> Option<&str> {
        match &self.0 {
            Backing::String(s) => s.get(range),
            Backing::Bytes(b) => std::str::from_utf8(b.get(range)?).ok(),
        }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Backing::String(_) => "string",
            Backing::Bytes(_) => "bytes",
        };
        write!(f, "Buffer({kind}, {} bytes)", self.bytes().len())
    }
}

/// Text held once: alone, or as a part of a [`Buffer`] (cloning it copies
/// nothing).
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Own(Box<str>),
    /// A range of `buf` that was UTF-8 when it was made.
    Part {
        buf: Arc<Buffer>,
        start: u32,
        end: u32,
    },
}

impl Text {
    /// The whole of `text`.
    pub fn new(text: String) -> Self {
        Text(Repr::Own(text.into_boxed_str()))
    }

    /// The whole of `text`, to be shared (cloning it copies nothing).
    pub fn shared(text: String) -> Self {
        let end = u32::try_from(text.len());
        match end {
            Ok(end) => Text(Repr::Part {
                buf: Buffer::string(text),
                start: 0,
                end,
            }),
            Err(_) => Text::new(text),
        }
    }

    /// Part of `buf`; `None` unless `range` is within it and is UTF-8
    /// (on character boundaries).
    pub fn part(buf: &Arc<Buffer>, range: std::ops::Range<usize>) -> Option<Self> {
        buf.str(range.clone())?;
        Some(Text(Repr::Part {
            buf: buf.clone(),
            start: u32::try_from(range.start).ok()?,
            end: u32::try_from(range.end).ok()?,
        }))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Own(text) => text,
            Repr::Part { buf, start, end } => {
                let range = *start as usize..*end as usize;
                match &buf.0 {
                    Backing::String(s) => &s[range],
                    // SAFETY: `Text::part` checked these bytes to be
                    // UTF-8, and a buffer's bytes never change.
                    Backing::Bytes(b) => unsafe { std::str::from_utf8_unchecked(&b[range]) },
                }
            }
        }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_bytes_are_taken_only_where_they_are_utf8() {
        let buf = Buffer::bytes_of(b"plain \xff caf\xc3\xa9".to_vec());
        assert_eq!(
            Text::part(&buf, 0..5).map(|t| t.as_str().to_owned()),
            Some("plain".to_owned())
        );
        assert!(Text::part(&buf, 4..8).is_none(), "an invalid byte");
        assert!(Text::part(&buf, 8..12).is_none(), "half a character");
        assert_eq!(
            Text::part(&buf, 8..13).map(|t| t.as_str().to_owned()),
            Some("café".to_owned())
        );
        assert!(Text::part(&buf, 8..14).is_none(), "past the end");
    }
}
