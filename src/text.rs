//! Text held once and shared: an object's JSON or YAML alone, or as a part
//! of a larger buffer (a cache record, or a whole cache pack mapped into
//! memory), so a warm render copies no object out of what it read.

use std::sync::Arc;

/// Largest file mapped all at once rather than page by page as it is read.
const POPULATE_MAX_BYTES: u64 = 256 << 20;

/// Bytes that texts are parts of: a string, or a file mapped into memory
/// whose parts are checked to be UTF-8 as they are taken.
pub struct Buffer(Backing);

enum Backing {
    String(String),
    /// A cache pack, mapped read-only. Packs are written whole under a
    /// temporary name and renamed into place, never written in place, so
    /// the bytes stay what they were when a part was checked (the same
    /// contract as Git's mapped pack files).
    Mapped(memmap2::Mmap),
}

impl Buffer {
    /// A buffer of `text`.
    pub fn string(text: String) -> Arc<Self> {
        Arc::new(Buffer(Backing::String(text)))
    }

    /// The whole of `file`, mapped into memory (its pages are the page
    /// cache's: nothing is copied, no fresh memory is filled); `None` when
    /// it cannot be mapped.
    pub fn map(file: &std::fs::File) -> Option<Arc<Self>> {
        let mut options = memmap2::MmapOptions::new();
        // Mapped at once when it is no larger than a pack can be (the
        // caller reads most of it); page by page if it is some other file.
        if file.metadata().ok()?.len() <= POPULATE_MAX_BYTES {
            options.populate();
        }
        // SAFETY: the map is read-only and pack files are never modified
        // in place (see `Backing::Mapped`); a text is made of its bytes
        // only once they are checked to be UTF-8 (`Text::part`).
        let map = unsafe { options.map(file) }.ok()?;
        Some(Arc::new(Buffer(Backing::Mapped(map))))
    }

    /// All of its bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Backing::String(s) => s.as_bytes(),
            Backing::Mapped(m) => m,
        }
    }

    /// The text in `range`, when it is in the buffer and is UTF-8.
    pub fn str(&self, range: std::ops::Range<usize>) -> Option<&str> {
        match &self.0 {
            Backing::String(s) => s.get(range),
            Backing::Mapped(m) => std::str::from_utf8(m.get(range)?).ok(),
        }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Backing::String(_) => "string",
            Backing::Mapped(_) => "mapped",
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
                    // UTF-8, and a mapped pack does not change.
                    Backing::Mapped(m) => unsafe { std::str::from_utf8_unchecked(&m[range]) },
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
    use std::io::Write as _;

    #[test]
    fn parts_of_a_mapped_file_are_taken_only_where_they_are_utf8() {
        let mut file = tempfile::tempfile().expect("a temporary file");
        file.write_all(b"plain \xff caf\xc3\xa9").expect("written");
        let buf = Buffer::map(&file).expect("mapped");
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
