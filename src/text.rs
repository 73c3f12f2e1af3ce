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
    /// contract as Git's mapped pack files). Another program that
    /// truncates one in place is caught by [`guard`]: the process stops
    /// with a message rather than dying of SIGBUS.
    Mapped {
        map: memmap2::Mmap,
        /// Held for its drop, which ends the watch once `map` is gone
        /// (fields drop in order).
        _watch: guard::Slot,
    },
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
        // Only a mapping the guard watches: with none free, not mapped.
        let slot = guard::Slot::take()?;
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
        slot.watch(&map);
        Some(Arc::new(Buffer(Backing::Mapped { map, _watch: slot })))
    }

    /// All of its bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Backing::String(s) => s.as_bytes(),
            Backing::Mapped { map: m, .. } => m,
        }
    }

    /// The text in `range`, when it is in the buffer and is UTF-8.
    pub fn str(&self, range: std::ops::Range<usize>) -> Option<&str> {
        match &self.0 {
            Backing::String(s) => s.get(range),
            Backing::Mapped { map: m, .. } => std::str::from_utf8(m.get(range)?).ok(),
        }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Backing::String(_) => "string",
            Backing::Mapped { .. } => "mapped",
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
                    Backing::Mapped { map: m, .. } => unsafe {
                        std::str::from_utf8_unchecked(&m[range])
                    },
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

/// What stops a read of a mapped pack that another program truncated in
/// place: the kernel then raises SIGBUS at the first page past the new
/// end, which would kill the process without a word. The handler stops it
/// with a message and exit code 2 when the fault lies in a watched
/// mapping, and leaves any other SIGBUS to the default action.
#[cfg(unix)]
mod guard {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// How many mappings can be watched at once (a render maps a few
    /// packs); past that, files are not mapped.
    const SLOTS: usize = 64;

    /// Each slot's mapping, as its first address and length; a length of
    /// 0 is a free slot, `usize::MAX` one being set.
    static WATCHED: [(AtomicUsize, AtomicUsize); SLOTS] =
        [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; SLOTS];

    const STOPPED: &[u8] = b"error: a cache pack was truncated while this run read it: another program wrote into the cache directory in place. Nothing more is read from it; run again, or with --no-cache\n";

    /// A slot of [`WATCHED`], freed when dropped with its mapping.
    pub(super) struct Slot(usize);

    impl Slot {
        /// A free slot, the handler installed; `None` when none is free.
        pub(super) fn take() -> Option<Slot> {
            static INSTALL: std::sync::Once = std::sync::Once::new();
            INSTALL.call_once(install);
            WATCHED
                .iter()
                .position(|(_, len)| {
                    len.compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                })
                .map(Slot)
        }

        /// Watches `map` from now on.
        pub(super) fn watch(&self, map: &[u8]) {
            let (start, len) = &WATCHED[self.0];
            start.store(map.as_ptr() as usize, Ordering::Release);
            // An empty file maps nothing: the slot stays taken, empty.
            len.store(map.len().max(1), Ordering::Release);
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            // Fields drop in order: the mapping is gone before this.
            let (start, len) = &WATCHED[self.0];
            start.store(0, Ordering::Release);
            len.store(0, Ordering::Release);
        }
    }

    /// Whether `addr` lies in a watched mapping (async-signal-safe: reads
    /// atomics only).
    fn watched(addr: usize) -> bool {
        WATCHED.iter().any(|(start, len)| {
            let len = len.load(Ordering::Acquire);
            let start = start.load(Ordering::Acquire);
            len != 0 && len != usize::MAX && start != 0 && addr.wrapping_sub(start) < len
        })
    }

    extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo_t with SA_SIGINFO.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        // A positive code: raised by a fault, not sent (whose `si_addr`
        // holds the sender's ids).
        if code > 0 && watched(addr) {
            // SAFETY: write(2) and _exit(2) are async-signal-safe.
            unsafe {
                libc::write(2, STOPPED.as_ptr().cast(), STOPPED.len());
                libc::_exit(2);
            }
        }
        // Not ours: the default action, raised again (delivered once the
        // handler returns), so a signal sent is not swallowed.
        // SAFETY: signal(2) and raise(3) are async-signal-safe.
        unsafe {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
            libc::raise(libc::SIGBUS);
        }
    }

    fn install() {
        // SAFETY: a zeroed sigaction is valid; the handler only reads
        // atomics and calls async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    }
}

/// Elsewhere a truncated mapping is the system's to report.
#[cfg(not(unix))]
mod guard {
    /// No watch: every file may be mapped.
    pub(super) struct Slot;

    impl Slot {
        pub(super) fn take() -> Option<Slot> {
            Some(Slot)
        }
        pub(super) fn watch(&self, _: &[u8]) {}
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

    /// Run in a child process: maps a file, truncates it in place, reads
    /// past the new end.
    #[cfg(unix)]
    #[test]
    fn a_pack_truncated_while_mapped_stops_the_process_with_a_message() {
        const CHILD: &str = "CONTROLCENTER_TEST_TRUNCATED_MAP";
        if std::env::var_os(CHILD).is_some() {
            let mut file = tempfile::tempfile().expect("a temporary file");
            file.write_all(&vec![b'a'; 1 << 16]).expect("written");
            let buf = Buffer::map(&file).expect("mapped");
            file.set_len(0).expect("truncated");
            let last = buf.bytes()[(1 << 16) - 1];
            println!("read {last} past the end");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "text::tests::a_pack_truncated_while_mapped_stops_the_process_with_a_message",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .expect("the child runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("a cache pack was truncated while this run read it"),
            "{stderr}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("past the end"));
    }
}
