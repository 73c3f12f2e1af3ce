//! The evaluation cache: each unit's output stored under a hash of
//! everything it depends on, so a commit that changes one service
//! evaluates one unit.
//!
//! The key of a unit hashes the cache format, the build of the binary
//! ([`build_id`]), the unit's state (secrets included, so it changes when
//! they do, but only as a hash; and which fields are secret), the call
//! depth allowed, and a
//! digest of every template the unit can import: the whole library and the
//! repository's `jsonnet/`, `vendor/` and `lib/` trees. A repository file
//! outside those trees that a template loaded (an `importstr` of a file at
//! the root), and every place outside them an import looked in vain before
//! finding its file, is recorded in the entry with its digest (`absent`)
//! and checked on every hit.
//!
//! Beside a unit's output, a render that found it clean stores a record of
//! what post-processing made of it (each object's identity, JSON, YAML
//! document and what the checks of the whole render read), under a key
//! that also covers everything the checks depend on: a warm render takes
//! those objects as they are, without parsing or checking them again.
//!
//! A records pack is read whole in one go, and each object's YAML stays
//! where it lies in that copy: a warm render takes thousands of objects
//! with one read. (Not mapped: a mapping changes under another program
//! that truncates or rewrites the file in place.)
//!
//! A render that evaluated anything stores what it evaluated as one pack
//! (`packs/*.pack`: the entries, then an index of keys), and the records it
//! made as another, each written atomically
//! (a temporary file renamed into place), so processes sharing a directory
//! never see half a pack. Files per render, not per unit: creating
//! a file costs far more than writing one on some file systems (0.6 ms
//! here, where writing a whole pack of 1000 units takes less). A render
//! reads the index of every pack (the newest holding a key wins). Past 8
//! small packs, the smallest ones' entries are carried into the next pack
//! written, so a warm render copies little; a pack too large to copy (an
//! environment's units or records) is never copied, and past 24 of them
//! the least recently used is deleted (its units' keys have most likely
//! changed since).
//! Each entry carries a checksum over its key and content, and one that
//! does not match (truncated, corrupted, another format, another key) is
//! ignored and stored again. A unit whose output holds a secret value is
//! never stored, nor its record, and an entry carried into a new pack that
//! holds one (a value that became secret since) is dropped. Packs are trimmed to a size bound, least recently used
//! first.

use foldhash::{HashMap, HashSet, HashSetExt as _};
use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::repo::{EntryKind, ReadError, RepoFiles};
use crate::text::Buffer;

/// Overrides the cache directory.
pub const DIR_VAR: &str = "CONTROLCENTER_CACHE_DIR";

/// Overrides the size bound, in MiB.
pub const SIZE_VAR: &str = "CONTROLCENTER_CACHE_SIZE_MB";

/// Default size bound: about 100,000 units of a typical service.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// First word of every entry; changes whenever the entry format, or what
/// the engine makes of the same input, does.
const FORMAT: &str = "controlcenter-cache-6";

/// First word of every pack; then where its index starts and its length,
/// in bytes (20 digits each). The entries come before the index.
const PACK_FORMAT: &str = "controlcenter-cache-pack-1";

/// Small packs (up to [`MERGE_MAX_BYTES`]) kept: past that, the smallest
/// are carried into a new one.
const MAX_PACKS: usize = 8;

/// Large packs kept (more than [`MERGE_MAX_BYTES`]: an environment's
/// units or records): past that, the least recently used is deleted.
/// Room for the two large packs of a dozen environments' renders, and
/// those of changes rendered before.
const MAX_LARGE_PACKS: usize = 24;

/// Largest pack whose entries a new pack carries when there are too
/// many: a warm render copies at most this much. Larger packs are never
/// copied.
const MERGE_MAX_BYTES: u64 = 4 << 20;

/// Largest index read, and largest entry: what a render can make (the
/// output limit) with room to spare, so a damaged pack cannot make a render
/// read or hold more.
const MAX_PART_BYTES: u64 = 64 << 20;

/// Verdicts kept (a few dozen bytes each): past this, the oldest go.
const MAX_VERDICTS: usize = 4096;

/// Whether `key` is a digest (and so a file name of its own).
fn is_hex(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// First word of every verdict file.
const VERDICT_FORMAT: &str = "controlcenter-verdict-2";

/// A verdict file is one short line: anything longer is not one.
const MAX_VERDICT_BYTES: u64 = 256;

/// What a verdict file holds: its format, its own key, and the values its
/// section holds (which count toward the document's limit when it is
/// left out).
fn verdict_bytes(key: &str, values: usize) -> Vec<u8> {
    format!("{VERDICT_FORMAT} {key} {values}\n").into_bytes()
}

/// First line of every memo file.
const MEMO_FORMAT: &str = "controlcenter-memo-1";

/// Memo files kept (one per environment and build): past this, the
/// oldest go.
const MAX_MEMOS: usize = 64;

/// The largest memo file read: 64 bytes per service, for far more
/// services than a document may hold.
const MAX_MEMO_BYTES: u64 = 16 << 20;

/// Most files of the template trees digested (a bound, not a limit users
/// meet: past it, nothing is cached).
const MAX_TEMPLATE_FILES: usize = 20_000;

/// Directories of the repository whose whole content is part of every key.
const TEMPLATE_TREES: [&str; 3] = crate::repo::layout::JSONNET_PATH;

/// A cache directory.
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    /// Largest pack a new one carries the entries of.
    merge_bytes: u64,
}

/// One unit's stored output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Whether the unit evaluated to an array.
    pub array: bool,
    /// Repository files outside the template trees the unit may have
    /// loaded: (path, digest).
    pub depends: Vec<(String, String)>,
    /// The output, compact JSON per element.
    pub items: Vec<String>,
}

/// The directory used when none is given: `$CONTROLCENTER_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/controlcenter`, else `~/.cache/controlcenter`.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(DIR_VAR) {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("controlcenter"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".cache").join("controlcenter"))
}

/// Hex SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex of what `h` has hashed.
pub fn hex_digest(h: Sha256) -> String {
    hex(&h.finalize())
}

/// The checksum of a stored entry or record over its parts: it finds
/// damage, not forgery (a forged cache is trusted like the repository),
/// so it is a fast 128-bit hash rather than SHA-256, which cost a warm
/// render a tenth of its time over the records it reads.
fn checksum(parts: &[&[u8]]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        h.update(part);
    }
    hex(&h.digest128().to_le_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// The key of a unit: its state and what evaluates it.
pub fn unit_key(templates: &str, state: &[u8]) -> String {
    unit_key_with(templates, &mut |out| out.write_all(state)).unwrap_or_default()
}

/// [`unit_key`] of the state `state` writes: it is hashed as it is
/// written, never held whole. `None` when writing it fails: a state
/// written in part has no key.
pub fn unit_key_with(
    templates: &str,
    state: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> Option<String> {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update([0]);
    // Not the version alone: a build with other code under the same
    // version (a patched engine, a fix) must not take this one's outputs.
    h.update(build_id().as_bytes());
    h.update([0]);
    h.update(templates.as_bytes());
    h.update([0]);
    // Serializers write in small pieces: a buffer hands the hash blocks.
    let mut buffered = std::io::BufWriter::with_capacity(8192, HashWriter(&mut h));
    state(&mut buffered).ok()?;
    buffered.flush().ok()?;
    drop(buffered);
    Some(hex(&h.finalize()))
}

/// Feeds what is written to a hash.
struct HashWriter<'h>(&'h mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What tells this build of the binary from another: its version, and the
/// size and modification time of its executable (read once).
pub fn build_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let exe = std::env::current_exe()
            .and_then(std::fs::metadata)
            .ok()
            .map(|m| {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{} {modified}", m.len())
            })
            .unwrap_or_default();
        format!("{} {exe}", env!("CARGO_PKG_VERSION"))
    })
}

/// Digest of every template a unit can import from the library and the
/// repository's template trees (and the repository's directories named
/// like the library's, which would shadow it). `None` when the trees are
/// too large to digest, or a directory in them cannot be listed (imports
/// may still find files there that no digest would see change).
pub fn templates_digest(repo: &dyn RepoFiles, lib: &dyn RepoFiles) -> Option<String> {
    let mut h = Sha256::new();
    let mut files = 0;
    h.update(b"lib\0");
    walk(lib, "", 0, &mut h, &mut files)?;
    let mut trees: Vec<String> = TEMPLATE_TREES.iter().map(|t| (*t).to_owned()).collect();
    trees.extend(lib.list_dirs(""));
    trees.sort();
    trees.dedup();
    for tree in trees {
        h.update(b"repo\0");
        h.update(tree.as_bytes());
        h.update([0]);
        // What stands where a tree would: only a directory is walked.
        match repo.read(&tree) {
            Err(ReadError::NotAFile) => walk(repo, &tree, 0, &mut h, &mut files)?,
            other => digest_read(&mut h, other),
        }
    }
    Some(hex(&h.finalize()))
}

/// Whether a display path (as the sandbox shows it) is covered by
/// [`templates_digest`]: a library file, or one inside a template tree.
pub fn in_template_trees(display: &str, lib_label: &str, lib_dirs: &[String]) -> bool {
    display.starts_with(lib_label)
        || TEMPLATE_TREES
            .iter()
            .map(|t| (*t).to_owned())
            .chain(lib_dirs.iter().cloned())
            .any(|t| display.starts_with(&format!("{t}/")))
}

/// Digest of a repository file as a dependency: its content, or why it
/// cannot be read.
pub fn file_digest(repo: &dyn RepoFiles, path: &str) -> String {
    match repo.read(path) {
        Ok(Some(bytes)) => digest(&bytes),
        Ok(None) => "absent".to_owned(),
        Err(e) => digest(format!("unreadable: {e}").as_bytes()),
    }
}

fn walk(
    files: &dyn RepoFiles,
    dir: &str,
    depth: usize,
    h: &mut Sha256,
    count: &mut usize,
) -> Option<()> {
    if depth > 32 {
        return None;
    }
    let join = |name: &str| {
        if dir.is_empty() {
            name.to_owned()
        } else {
            format!("{dir}/{name}")
        }
    };
    for (name, kind) in files.list_entries(dir).ok()? {
        *count += 1;
        if *count > MAX_TEMPLATE_FILES {
            return None;
        }
        let path = join(&name);
        h.update(path.as_bytes());
        match kind {
            EntryKind::File => {
                h.update([0]);
                match files.read(&path) {
                    // A link to a directory (jsonnet-bundler links vendored
                    // packages): walk it like one.
                    Err(ReadError::NotAFile) => walk(files, &path, depth + 1, h, count)?,
                    read => digest_read(h, read),
                }
            }
            EntryKind::Dir => {
                h.update(b"/\0");
                walk(files, &path, depth + 1, h, count)?;
            }
            EntryKind::Other => h.update(b"?\0"),
        }
    }
    Some(())
}

/// Adds what reading a template file gave to `h`.
fn digest_read(h: &mut Sha256, read: Result<Option<Vec<u8>>, ReadError>) {
    match read {
        Ok(Some(bytes)) => {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        Ok(None) => h.update(b"absent"),
        Err(e) => h.update(format!("unreadable: {e}").as_bytes()),
    }
}

/// The size bound `$CONTROLCENTER_CACHE_SIZE_MB` sets, in bytes: `None`
/// when it is unset or empty, `Err` (what is wrong) when it is not a whole
/// number of MiB, rather than a silent default.
pub fn size_bound() -> Result<Option<u64>, String> {
    let Some(value) = std::env::var_os(SIZE_VAR) else {
        return Ok(None);
    };
    let value = value.to_string_lossy();
    if value.trim().is_empty() {
        return Ok(None);
    }
    value
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|mb| mb.checked_mul(1 << 20))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{SIZE_VAR} is `{}`, not a whole number of MiB",
                crate::names::clip(&value)
            )
        })
}

impl Cache {
    /// A cache in `dir` (created on first write), bounded by
    /// `$CONTROLCENTER_CACHE_SIZE_MB` or [`DEFAULT_MAX_BYTES`] (a value
    /// [`size_bound`] refuses counts as unset: callers check it first).
    pub fn new(dir: PathBuf) -> Self {
        let max_bytes = size_bound().ok().flatten().unwrap_or(DEFAULT_MAX_BYTES);
        Cache {
            dir,
            max_bytes,
            merge_bytes: MERGE_MAX_BYTES,
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn packs_dir(&self) -> PathBuf {
        self.dir.join("packs")
    }

    /// Every pack (a regular file named `*.pack`), newest first: (last
    /// use, size, path).
    fn packs(&self) -> Vec<(SystemTime, u64, PathBuf)> {
        let Ok(files) = fs::read_dir(self.packs_dir()) else {
            return Vec::new();
        };
        let mut packs: Vec<(SystemTime, u64, PathBuf)> = files
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().ends_with(".pack"))
            // Not a FIFO (opening one would wait forever), a directory or a
            // link.
            .filter(|f| f.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|f| {
                let meta = f.metadata().ok()?;
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                Some((modified, meta.len(), f.path()))
            })
            .collect();
        packs.sort_by(|a, b| b.cmp(a));
        packs
    }

    /// The entries of the newest packs (as many as are kept) whose key
    /// `wanted` holds (so a damaged index cannot fill memory). A pack that
    /// cannot be read, or whose index does not parse, is left out.
    pub fn open(&self, wanted: &HashSet<&str>) -> Packs {
        let mut packs = Packs::default();
        for (_, _, path) in self.packs().into_iter().take(MAX_PACKS + MAX_LARGE_PACKS) {
            let Some((mut file, len)) = open_cache_file(&path, self.max_bytes) else {
                continue;
            };
            let p = packs.files.len();
            let mut found = false;
            let mut wanted_bytes: u64 = 0;
            let read = read_index(&mut file, len, |key, offset, length| {
                if wanted.contains(key) {
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        packs.index.entry(key.to_owned())
                    {
                        slot.insert((p, offset, length));
                        wanted_bytes = wanted_bytes.saturating_add(length);
                    }
                    found = true;
                }
                true
            });
            if read.is_some() {
                packs.files.push((path, file, len));
                // Read whole only when much of it is wanted: a render of
                // one service takes its record alone from an environment's.
                packs
                    .worth_whole
                    .push(wanted_bytes.saturating_mul(4) >= len);
                packs.read_whole.push(OnceLock::new());
                packs.used.push(AtomicBool::new(false));
            } else if found {
                // Entries of a pack whose index turned out damaged are not used.
                packs.index.retain(|_, (q, _, _)| *q != p);
            }
        }
        packs
    }

    /// Stores `entries` (key, encoded entry) as one pack, atomically, then
    /// trims. Entries are written as they come, so they are never all held
    /// at once. When there are already [`MAX_PACKS`] small packs, the
    /// entries of the smallest are carried into this one and those
    /// deleted: a render of a few units never pushes a whole environment's
    /// units out. Packs too large to copy each time ([`MERGE_MAX_BYTES`])
    /// are kept as they are, up to [`MAX_LARGE_PACKS`]; past that the least
    /// recently used is deleted. A pack that would be larger than the
    /// cache's whole bound is not written.
    /// Failures are ignored: the cache only ever saves work. An entry
    /// carried from an older pack that `refused` says must not be kept (it
    /// holds what is a secret now) is dropped instead. Says whether every
    /// entry given is stored (none given: they are).
    pub fn write_pack(
        &self,
        entries: impl Iterator<Item = (String, Vec<u8>)>,
        refused: &dyn Fn(&[u8]) -> bool,
    ) -> bool {
        let dir = self.packs_dir();
        if fs::create_dir_all(&dir).is_err() {
            return false;
        }
        let Ok(tmp) = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir) else {
            return false;
        };
        // The header, written last, gives where the index starts: the
        // entries go first, the index after them.
        let header = |at: u64, len: usize| format!("{PACK_FORMAT} {at:020} {len:020}\n");
        // Entries are a few KB each: written a MiB at a time, not one
        // system call per unit.
        let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp);
        let mut index = String::new();
        let mut keys: HashSet<String> = HashSet::new();
        let mut offset = header(0, 0).len() as u64;
        let mut written = out.write_all(header(0, 0).as_bytes()).is_ok();
        // An entry under a key not written yet; its bytes are read only
        // then.
        // A pack is never larger than the whole bound. Past it, a pack of
        // this render's entries is given up (its temporary file deleted)
        // rather than kept over the bound or staged past it; an entry
        // carried from an older pack is left there, and that pack kept.
        let max_bytes = self.max_bytes;
        // Whether the entry fits (a duplicate or unreadable one does).
        let mut add = |key: String,
                       bytes: &mut dyn FnMut() -> Option<Vec<u8>>,
                       out: &mut std::io::BufWriter<_>,
                       carried: bool|
         -> bool {
            if !written || keys.contains(&key) {
                return true;
            }
            let Some(bytes) = bytes() else {
                return true;
            };
            let index_bytes = index.len() as u64 + key.len() as u64 + 43;
            if offset + bytes.len() as u64 + index_bytes > max_bytes {
                written &= carried;
                return false;
            }
            index.push_str(&format!("{key} {offset} {}\n", bytes.len()));
            offset += bytes.len() as u64;
            written = out.write_all(&bytes).is_ok();
            keys.insert(key);
            true
        };
        let mut given = false;
        for (key, bytes) in entries {
            given = true;
            let mut bytes = Some(bytes);
            add(key, &mut || bytes.take(), &mut out, false);
        }
        let (merged, deleted) = packs_to_merge(self.packs(), self.merge_bytes);
        // The packs whose every entry was carried: only those go.
        let mut carried_whole: Vec<&PathBuf> = Vec::new();
        for path in &merged {
            // One handle reads the index, the other the entries, as the
            // index is read: nothing of a damaged index piles up.
            let (Some((mut index_file, len)), Some((mut file, _))) = (
                open_cache_file(path, self.max_bytes),
                open_cache_file(path, self.max_bytes),
            ) else {
                continue;
            };
            // The first entry that does not hold ends the pack: the rest
            // of a damaged pack is not worth reading.
            let mut whole = true;
            let _ = read_index(&mut index_file, len, |key, offset, length| {
                let mut good = true;
                let mut bytes = || {
                    let bytes = read_entry(&mut file, key, offset, length);
                    good = bytes.is_some();
                    bytes.filter(|b| !refused(b))
                };
                whole &= add(key.to_owned(), &mut bytes, &mut out, true);
                good
            });
            if whole {
                carried_whole.push(path);
            }
        }
        if !written || index.is_empty() {
            return written && !given;
        }
        let Ok(mut tmp) = out.into_inner() else {
            return false;
        };
        let finished = tmp.write_all(index.as_bytes()).is_ok()
            && tmp.seek(SeekFrom::Start(0)).is_ok()
            && tmp
                .write_all(header(offset, index.len()).as_bytes())
                .is_ok();
        if !finished {
            return false;
        }
        // Named by its content: two processes writing the same pack write
        // the same file.
        let path = dir.join(format!("{}.pack", &digest(index.as_bytes())[..32]));
        let Ok(file) = tmp.persist(&path) else {
            return false;
        };
        // Newer than any pack this render touched: the file system's own
        // time for a new file can lag the clock by a tick.
        let _ = file.set_modified(SystemTime::now());
        for old in carried_whole
            .into_iter()
            .chain(&deleted)
            .filter(|p| **p != path)
        {
            let _ = fs::remove_file(old);
        }
        self.trim(Some(&path));
        true
    }

    fn verdicts_dir(&self) -> PathBuf {
        self.dir.join("verdicts")
    }

    /// The verdict stored under `key` (a hex digest), if any: what it
    /// says of its section, how many values it holds.
    pub fn verdict(&self, key: &str) -> Option<usize> {
        if !is_hex(key) {
            return None;
        }
        let (file, _) = open_cache_file(&self.verdicts_dir().join(key), MAX_VERDICT_BYTES)?;
        let mut bytes = Vec::new();
        file.take(MAX_VERDICT_BYTES).read_to_end(&mut bytes).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let values = text
            .strip_prefix(VERDICT_FORMAT)?
            .strip_prefix(' ')?
            .strip_prefix(key)?
            .strip_prefix(' ')?
            .strip_suffix('\n')?
            .parse()
            .ok()?;
        (bytes == verdict_bytes(key, values)).then_some(values)
    }

    /// Stores each verdict (a hex digest as its key, and the values of
    /// its section), atomically; past [`MAX_VERDICTS`], the oldest go.
    /// Nothing is stored when the cache may hold nothing. Failures are
    /// ignored.
    pub fn store_verdicts(&self, verdicts: &[(String, usize)]) {
        let dir = self.verdicts_dir();
        if verdicts.is_empty() || self.max_bytes == 0 || fs::create_dir_all(&dir).is_err() {
            return;
        }
        for (key, values) in verdicts.iter().filter(|(k, _)| is_hex(k)) {
            let Ok(mut tmp) = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir) else {
                return;
            };
            if tmp.write_all(&verdict_bytes(key, *values)).is_ok() {
                let _ = tmp.persist(dir.join(key));
            }
        }
        let Ok(files) = fs::read_dir(&dir) else {
            return;
        };
        let mut verdicts: Vec<(SystemTime, PathBuf)> = files
            .flatten()
            .filter_map(|f| Some((f.metadata().ok()?.modified().ok()?, f.path())))
            .collect();
        if verdicts.len() > MAX_VERDICTS {
            verdicts.sort();
            for (_, path) in &verdicts[..verdicts.len() - MAX_VERDICTS] {
                let _ = fs::remove_file(path);
            }
        }
    }

    fn memos_dir(&self) -> PathBuf {
        self.dir.join("memos")
    }

    /// The body of the memo stored as `name` (a hex digest), if there is
    /// one whose format and checksum hold: what another run stored, never
    /// damaged (a damaged memo reads as none, and is written again).
    pub fn memo(&self, name: &str) -> Option<Vec<u8>> {
        if !is_hex(name) {
            return None;
        }
        let (file, len) = open_cache_file(&self.memos_dir().join(name), MAX_MEMO_BYTES)?;
        let mut bytes = Vec::with_capacity(usize::try_from(len).ok()?);
        file.take(MAX_MEMO_BYTES).read_to_end(&mut bytes).ok()?;
        let header = format!("{MEMO_FORMAT} {name}\n");
        let rest = bytes.strip_prefix(header.as_bytes())?;
        let (body, sum) = rest.split_at_checked(rest.len().checked_sub(33)?)?;
        let sum = sum.strip_suffix(b"\n")?;
        if sum != checksum(&[header.as_bytes(), body]).as_bytes() {
            return None;
        }
        let body_len = body.len();
        bytes.drain(..header.len());
        bytes.truncate(body_len);
        Some(bytes)
    }

    /// Marks the memo `name` used now: past [`MAX_MEMOS`], the memos
    /// used longest ago go. Failures are ignored.
    pub fn touch_memo(&self, name: &str) {
        if !is_hex(name) {
            return;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true);
        if let Some(file) = open_regular(&self.memos_dir().join(name), options) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Stores the memo `name` (a hex digest) whose body is `body`'s parts
    /// in turn, atomically, with its checksum; past [`MAX_MEMOS`], the
    /// least recently used go. Nothing is stored when the cache may hold
    /// nothing. Failures are ignored.
    pub fn store_memo(&self, name: &str, body: &[&[u8]]) {
        let dir = self.memos_dir();
        let len: usize = body.iter().map(|part| part.len()).sum();
        if !is_hex(name)
            || self.max_bytes == 0
            || len as u64 > MAX_MEMO_BYTES / 2
            || fs::create_dir_all(&dir).is_err()
        {
            return;
        }
        let header = format!("{MEMO_FORMAT} {name}\n");
        let mut parts = vec![header.as_bytes()];
        parts.extend_from_slice(body);
        let sum = checksum(&parts);
        let Ok(mut tmp) = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir) else {
            return;
        };
        parts.extend([sum.as_bytes(), b"\n"]);
        let written = parts.iter().try_for_each(|part| tmp.write_all(part));
        if written.is_ok() {
            let _ = tmp.persist(dir.join(name));
        }
        let Ok(files) = fs::read_dir(&dir) else {
            return;
        };
        // Memos, not what other writers are filling (a temporary file a
        // killed process left goes after an hour).
        let now = SystemTime::now();
        let mut memos: Vec<(SystemTime, PathBuf)> = Vec::new();
        for f in files.flatten() {
            let Some(modified) = f.metadata().and_then(|m| m.modified()).ok() else {
                continue;
            };
            let name = f.file_name();
            let name = name.to_string_lossy();
            let stale = now
                .duration_since(modified)
                .is_ok_and(|d| d.as_secs() > 3600);
            if is_hex(&name) {
                memos.push((modified, f.path()));
            } else if name.starts_with(".tmp-") && stale {
                let _ = fs::remove_file(f.path());
            }
        }
        if memos.len() > MAX_MEMOS {
            memos.sort();
            for (_, path) in &memos[..memos.len() - MAX_MEMOS] {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Deletes the least recently used packs while the cache is over its
    /// bound; `kept` (the pack just written) counts as the newest and
    /// stays, whatever the clock says of the others. (The count is bounded
    /// by merging, when a pack is written: packs written at the same time
    /// by other processes are not lost here.) Temporary files older than an hour (left by a
    /// killed process) go too, and entries of the earlier
    /// one-file-per-unit layout.
    pub fn trim(&self, kept: Option<&Path>) {
        remove_unit_files(&self.dir.join("units"));
        if let Ok(files) = fs::read_dir(self.packs_dir()) {
            let now = SystemTime::now();
            for f in files.flatten() {
                let stale_tmp = f.file_name().to_string_lossy().starts_with(".tmp-")
                    && f.metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|m| now.duration_since(m).is_ok_and(|d| d.as_secs() > 3600));
                if stale_tmp {
                    let _ = fs::remove_file(f.path());
                }
            }
        }
        let mut packs = self.packs();
        if let Some(i) = packs.iter().position(|p| Some(p.2.as_path()) == kept) {
            let newest = packs.remove(i);
            packs.insert(0, newest);
        }
        let mut total: u64 = packs.iter().map(|p| p.1).sum();
        // Oldest first.
        for (i, (_, len, path)) in packs.iter().enumerate().rev() {
            if i > 0 && total > self.max_bytes && fs::remove_file(path).is_ok() {
                total = total.saturating_sub(*len);
            }
        }
    }
}

/// Deletes what the earlier one-file-per-unit layout left in `units`
/// (`units/<2 hex>/<64 hex>`), and the directories it emptied: nothing
/// else, whatever else a directory of that name holds (a cache directory
/// can be set to any directory).
fn remove_unit_files(units: &Path) {
    let is_hex = |name: &str, len: usize| {
        name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let Ok(shards) = fs::read_dir(units) else {
        return;
    };
    for shard in shards.flatten() {
        let shard_name = shard.file_name().to_string_lossy().into_owned();
        if !is_hex(&shard_name, 2) || !shard.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for entry in fs::read_dir(shard.path()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_hex(&name, 64)
                && name.starts_with(&shard_name)
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        // Only when emptied.
        let _ = fs::remove_dir(shard.path());
    }
    let _ = fs::remove_dir(units);
}

/// What becomes of the packs beside a new one: (those whose entries the
/// new pack carries, those deleted). Small packs (up to `merge_bytes`)
/// past [`MAX_PACKS`], the new one counted, are carried, the smallest
/// first (the oldest of equal size); large ones are never copied, and
/// past [`MAX_LARGE_PACKS`] the least recently used are deleted. Merging
/// by size, not age, keeps a warm render from copying a whole
/// environment's pack every few renders; a large pack that goes unused
/// (its units' keys changed: another library, another binary) ends up the
/// least recently used, deleted then or by the size bound.
fn packs_to_merge(
    packs: Vec<(SystemTime, u64, PathBuf)>,
    merge_bytes: u64,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut small, mut large): (Vec<_>, Vec<_>) =
        packs.into_iter().partition(|p| p.1 <= merge_bytes);
    small.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    let excess = (small.len() + 1).saturating_sub(MAX_PACKS);
    let merged = small.into_iter().take(excess).map(|p| p.2).collect();
    // Least recently used first.
    large.sort_by_key(|a| a.0);
    let excess = large.len().saturating_sub(MAX_LARGE_PACKS);
    let deleted = large.into_iter().take(excess).map(|p| p.2).collect();
    (merged, deleted)
}

/// The entries a render can take from the cache: where the newest packs
/// hold the keys it wants. Read from several threads at once.
#[derive(Default)]
pub struct Packs {
    /// Each pack, open: entries are read at their offset, by any thread.
    files: Vec<(PathBuf, fs::File, u64)>,
    /// Each pack worth it read whole into memory, once a record is read
    /// from it (a warm render reads thousands of records: one read, and
    /// each object's text stays where it lies in it).
    read_whole: Vec<OnceLock<Option<Arc<Buffer>>>>,
    /// Whether a quarter of the pack or more is wanted, so worth reading
    /// whole rather than record by record.
    worth_whole: Vec<bool>,
    index: HashMap<String, (usize, u64, u64)>,
    used: Vec<AtomicBool>,
}

impl Packs {
    /// The entry stored under `key`, when there is one whose checksum
    /// holds.
    pub fn get(&self, key: &str) -> Option<Entry> {
        let &(p, offset, len) = self.index.get(key)?;
        let (path, file, _) = &self.files[p];
        let mut bytes = vec![0; usize::try_from(len).ok()?];
        read_at(path, file, offset, &mut bytes)?;
        let entry = decode(&bytes, key)?;
        self.used[p].store(true, Ordering::Relaxed);
        Some(entry)
    }

    /// The record stored under `key` ([`record_key`]), when there is one
    /// whose checksum holds.
    pub fn get_record(&self, key: &str) -> Option<Record> {
        let &(p, offset, len) = self.index.get(key)?;
        let (path, file, whole) = &self.files[p];
        let buffer = self.worth_whole[p]
            .then(|| self.read_whole[p].get_or_init(|| read_whole(path, file, *whole)))
            .and_then(Option::as_ref);
        let record = match buffer {
            Some(buf) => {
                let start = usize::try_from(offset).ok()?;
                decode_record(
                    buf,
                    start..start.checked_add(usize::try_from(len).ok()?)?,
                    key,
                )?
            }
            None => {
                let mut bytes = vec![0; usize::try_from(len).ok()?];
                read_at(path, file, offset, &mut bytes)?;
                let buf = Buffer::string(String::from_utf8(bytes).ok()?);
                let len = buf.bytes().len();
                decode_record(&buf, 0..len, key)?
            }
        };
        self.used[p].store(true, Ordering::Relaxed);
        Some(record)
    }

    /// Counts the pack holding `key` as used without reading the entry:
    /// a unit served by its record keeps its output young too (it is what
    /// a change to the checks will read).
    pub fn mark_used(&self, key: &str) {
        if let Some(&(p, _, _)) = self.index.get(key) {
            self.used[p].store(true, Ordering::Relaxed);
        }
    }

    /// Records that the packs hits came from were used (the order in which
    /// packs are trimmed).
    pub fn touch_used(&self) {
        let now = SystemTime::now();
        for ((path, _, _), used) in self.files.iter().zip(&self.used) {
            if used.load(Ordering::Relaxed) {
                let mut options = fs::File::options();
                options.append(true);
                if let Some(file) = open_regular(path, options) {
                    let _ = file.set_modified(now);
                }
            }
        }
    }
}

/// The whole of an open pack; `None` when it cannot be read (it was
/// cut short meanwhile: its records are then read one by one, and a short
/// one is a miss).
fn read_whole(path: &Path, file: &fs::File, len: u64) -> Option<Arc<Buffer>> {
    let mut bytes = vec![0; usize::try_from(len).ok()?];
    read_at(path, file, 0, &mut bytes)?;
    Some(Buffer::bytes_of(bytes))
}

/// Opens a file of the cache with `options` when it is a regular file: a
/// FIFO, device or link put in its place is never waited on or followed.
fn open_regular(path: &Path, mut options: fs::OpenOptions) -> Option<fs::File> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NONBLOCK | libc::O_NOFOLLOW,
    );
    let file = options.open(path).ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

/// Opens a file of the cache for reading ([`open_regular`]) when it holds
/// at most `max_len` bytes, with its length: nothing larger than the
/// cache could have written is read.
fn open_cache_file(path: &Path, max_len: u64) -> Option<(fs::File, u64)> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    let file = open_regular(path, options)?;
    let len = file.metadata().ok()?.len();
    (len <= max_len).then_some((file, len))
}

/// Fills `bytes` from `offset` of an open file, without moving a shared
/// position (so threads can read one file at once).
#[cfg(unix)]
fn read_at(_path: &Path, file: &fs::File, offset: u64, bytes: &mut [u8]) -> Option<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, bytes, offset).ok()
}

/// Fills `bytes` from `offset` of the file at `path`.
#[cfg(not(unix))]
fn read_at(path: &Path, _file: &fs::File, offset: u64, bytes: &mut [u8]) -> Option<()> {
    let mut file = fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    file.read_exact(bytes).ok()
}

/// The bytes of the entry stored under `key` at `offset`, when they are one
/// (checksum and key hold).
fn read_entry(file: &mut fs::File, key: &str, offset: u64, len: u64) -> Option<Vec<u8>> {
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = vec![0; usize::try_from(len).ok()?];
    file.read_exact(&mut bytes).ok()?;
    holds(&bytes, key).then_some(bytes)
}

/// Reads a pack's index, giving `each` (key, offset in the file, length) of
/// its entries until it returns false; `None` when the pack is not one, or
/// its index does not parse or points past its entries.
fn read_index(
    file: &mut fs::File,
    file_len: u64,
    mut each: impl FnMut(&str, u64, u64) -> bool,
) -> Option<()> {
    file.seek(SeekFrom::Start(0)).ok()?;
    let mut header = [0u8; PACK_FORMAT.len() + 43];
    file.read_exact(&mut header).ok()?;
    let header = std::str::from_utf8(&header).ok()?;
    let mut words = header
        .strip_suffix('\n')?
        .strip_prefix(PACK_FORMAT)?
        .strip_prefix(' ')?
        .split(' ');
    let at: u64 = words.next()?.parse().ok()?;
    let len: u64 = words.next()?.parse().ok()?;
    if len > MAX_PART_BYTES || at.checked_add(len)? != file_len {
        return None;
    }
    file.seek(SeekFrom::Start(at)).ok()?;
    let mut index = vec![0; usize::try_from(len).ok()?];
    file.read_exact(&mut index).ok()?;
    for line in std::str::from_utf8(&index).ok()?.lines() {
        let mut words = line.split(' ');
        let key = words.next()?;
        let offset: u64 = words.next()?.parse().ok()?;
        let length: u64 = words.next()?.parse().ok()?;
        if length > MAX_PART_BYTES || offset.checked_add(length)? > at {
            return None;
        }
        if !each(key, offset, length) {
            break;
        }
    }
    Some(())
}

/// An entry as stored under `key`; `None` for one that cannot be (a line
/// break in an item or a path). The checksum covers the key: an index that
/// points a key at another unit's entry is caught.
pub fn encode_entry(key: &str, entry: &Entry) -> Option<Vec<u8>> {
    encode_unit(key, entry.array, &entry.depends, &entry.items)
}

/// [`encode_entry`] of an entry's parts, borrowed.
pub fn encode_unit(
    key: &str,
    array: bool,
    depends: &[(String, String)],
    items: &[String],
) -> Option<Vec<u8>> {
    encode(key, array, depends, items).map(String::into_bytes)
}

fn encode(
    key: &str,
    array: bool,
    depends: &[(String, String)],
    items: &[String],
) -> Option<String> {
    if key.contains(['\n', ' ']) {
        return None;
    }
    // The checksum line is written in front of the body once the body is
    // made: its place is kept (a checksum is 32 hex digits), so a unit's
    // output is copied once, into a buffer sized for it.
    let checksum_line = FORMAT.len() + 1 + 32 + 1;
    let items_len: usize = items.iter().map(|i| i.len() + 1).sum();
    let mut body = String::with_capacity(checksum_line + key.len() + 64 + items_len);
    body.push_str(&" ".repeat(checksum_line));
    body.push_str(&format!("key {key}\n"));
    body.push_str(if array { "array\n" } else { "value\n" });
    body.push_str(&format!("depends {}\n", depends.len()));
    for (path, d) in depends {
        if path.contains('\n') || d.contains(['\n', ' ']) {
            return None;
        }
        body.push_str(&format!("{d} {path}\n"));
    }
    for item in items {
        // Compact JSON never holds a raw line break; anything else is not
        // an engine output and is not stored.
        if item.contains('\n') {
            return None;
        }
        body.push_str(item);
        body.push('\n');
    }
    let line = format!(
        "{FORMAT} {}\n",
        checksum(&[&body.as_bytes()[checksum_line..]])
    );
    if line.len() != checksum_line {
        return None;
    }
    body.replace_range(..checksum_line, &line);
    Some(body)
}

/// The key under which what post-processing made of a unit is stored:
/// the unit's key and what the checks depended on (`verdicts`).
pub fn record_key(unit_key: &str, verdicts: &str) -> String {
    let mut h = Sha256::new();
    h.update(RECORD_FORMAT.as_bytes());
    h.update([0]);
    h.update(unit_key.as_bytes());
    h.update([0]);
    h.update(verdicts.as_bytes());
    hex(&h.finalize())
}

/// First word of every checked record (what post-processing made of a
/// unit, as [`record_key`] names it).
const RECORD_FORMAT: &str = "controlcenter-checked-2";

/// What post-processing made of a unit, as the cache keeps it beside the
/// unit's output: enough to stand for that output (how many values it
/// had, whether it was an array, the files outside the template trees it
/// loaded), and the record itself, which the cache does not read.
#[derive(Clone)]
pub struct Record {
    /// Whether the unit evaluated to an array.
    pub array: bool,
    /// Repository files outside the template trees the unit may have
    /// loaded: (path, digest).
    pub depends: Vec<(String, String)>,
    /// How many values the unit's output had.
    pub values: usize,
    /// The buffer holding the record (post-processing's format): a
    /// record read back stays in the copy of the pack it was read from.
    pub body: Arc<Buffer>,
    /// Where in `body` the record is.
    pub body_range: std::ops::Range<usize>,
}

/// A record as stored under `key`, with a checksum over the key and all
/// of it; `None` for one that cannot be (a line break in a path).
pub fn encode_record(key: &str, record: &Record) -> Option<Vec<u8>> {
    if key.contains(['\n', ' ']) {
        return None;
    }
    let mut head = format!(
        "{}\n{}\ndepends {}\n",
        if record.array { "array" } else { "value" },
        record.values,
        record.depends.len()
    );
    for (path, d) in &record.depends {
        if path.contains('\n') || d.contains(['\n', ' ']) {
            return None;
        }
        head.push_str(&format!("{d} {path}\n"));
    }
    let body = record.body.bytes().get(record.body_range.clone())?;
    let sum = checksum(&[key.as_bytes(), &[0], head.as_bytes(), body]);
    let first = format!("{RECORD_FORMAT} {sum} {key}\n{head}");
    let mut out = Vec::with_capacity(first.len() + body.len());
    out.extend_from_slice(first.as_bytes());
    out.extend_from_slice(body);
    Some(out)
}

/// Either an entry or a record: whether `bytes` are one stored under
/// `key` whose checksum holds (a pack carries both alike).
fn holds(bytes: &[u8], key: &str) -> bool {
    decode(bytes, key).is_some() || read_record(bytes, key).is_some()
}

/// The record stored under `key` in `range` of `buf`, when its checksum
/// holds; its body stays where it is in `buf`.
fn decode_record(buf: &Arc<Buffer>, range: std::ops::Range<usize>, key: &str) -> Option<Record> {
    let bytes = buf.bytes().get(range.clone())?;
    let (array, depends, values, body_from) = read_record(bytes, key)?;
    Some(Record {
        array,
        depends,
        values,
        body: buf.clone(),
        body_range: range.start + body_from..range.end,
    })
}

/// A stored record's header, and where its body starts in `bytes`, when
/// they are one stored under `key` whose checksum holds.
fn read_record(bytes: &[u8], key: &str) -> Option<(bool, Vec<(String, String)>, usize, usize)> {
    let header_end = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..header_end]).ok()?;
    let rest = &bytes[header_end + 1..];
    let mut words = header.split(' ');
    let (format, sum, stored) = (words.next()?, words.next()?, words.next()?);
    if format != RECORD_FORMAT || stored != key || words.next().is_some() {
        return None;
    }
    if sum != checksum(&[key.as_bytes(), &[0], rest]) {
        return None;
    }
    let mut at = header_end + 1;
    let mut line = || -> Option<&str> {
        let rest = bytes.get(at..)?;
        let end = rest.iter().position(|&b| b == b'\n')?;
        at += end + 1;
        std::str::from_utf8(&rest[..end]).ok()
    };
    let array = match line()? {
        "array" => true,
        "value" => false,
        _ => return None,
    };
    let values: usize = line()?.parse().ok()?;
    // A damaged or forged count cannot make a render allocate more than
    // a template's output may hold.
    if values > crate::evaluate::MAX_OUTPUT_ITEMS {
        return None;
    }
    let n: usize = line()?.strip_prefix("depends ")?.parse().ok()?;
    let mut depends = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let (d, path) = line()?.split_once(' ')?;
        depends.push((path.to_owned(), d.to_owned()));
    }
    Some((array, depends, values, at))
}

fn decode(bytes: &[u8], key: &str) -> Option<Entry> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (header, body) = text.split_once('\n')?;
    let (format, sum) = header.split_once(' ')?;
    if format != FORMAT || sum != checksum(&[body.as_bytes()]) {
        return None;
    }
    let mut lines = body.split_terminator('\n');
    if lines.next()?.strip_prefix("key ")? != key {
        return None;
    }
    let array = match lines.next()? {
        "array" => true,
        "value" => false,
        _ => return None,
    };
    let n: usize = lines.next()?.strip_prefix("depends ")?.parse().ok()?;
    let mut depends = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let (d, path) = lines.next()?.split_once(' ')?;
        depends.push((path.to_owned(), d.to_owned()));
    }
    let items = lines.map(str::to_owned).collect();
    Some(Entry {
        array,
        depends,
        items,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry() -> Entry {
        Entry {
            array: true,
            depends: vec![("data/x.txt".into(), digest(b"x"))],
            items: vec![r#"{"a":1}"#.into(), r#"{"b":"x\ny"}"#.into()],
        }
    }

    fn store(cache: &Cache, key: &str) {
        let bytes = encode_entry(key, &entry()).unwrap();
        cache.write_pack(std::iter::once((key.to_owned(), bytes)), &|_| false);
    }

    fn get(cache: &Cache, key: &str) -> Option<Entry> {
        cache.open(&HashSet::from_iter([key])).get(key)
    }

    /// Makes `pack` look last used at `at`.
    fn set_used(pack: &Path, at: SystemTime) {
        let f = fs::File::options().append(true).open(pack).unwrap();
        f.set_modified(at).unwrap();
    }

    fn packs(cache: &Cache) -> Vec<PathBuf> {
        cache.packs().into_iter().map(|p| p.2).collect()
    }

    #[test]
    fn entries_round_trip_and_a_damaged_one_is_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let key = unit_key("t", b"state");
        assert_eq!(get(&cache, &key), None);
        store(&cache, &key);
        assert_eq!(get(&cache, &key), Some(entry()));
        // Truncated, flipped, emptied: each is a miss, then stored again.
        let path = packs(&cache).remove(0);
        let good = fs::read(&path).unwrap();
        for bad in [
            good[..good.len() - 3].to_vec(),
            good.iter()
                .map(|b| if *b == b'1' { b'2' } else { *b })
                .collect(),
            Vec::new(),
        ] {
            fs::write(&path, bad).unwrap();
            assert_eq!(get(&cache, &key), None);
            fs::remove_file(&path).unwrap();
            store(&cache, &key);
            assert_eq!(get(&cache, &key), Some(entry()));
        }
    }

    #[test]
    fn a_render_reads_the_newest_packs_and_the_newest_entry_wins() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let (a, b) = (unit_key("t", b"a"), unit_key("t", b"b"));
        store(&cache, &a);
        let newer = Entry {
            items: vec!["{}".into()],
            ..entry()
        };
        let both = [
            (a.clone(), encode_entry(&a, &newer).unwrap()),
            (b.clone(), encode_entry(&b, &entry()).unwrap()),
        ];
        cache.write_pack(both.into_iter(), &|_| false);
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let oldest = packs(&cache).pop().unwrap();
        set_used(&oldest, old);
        assert_eq!(get(&cache, &a), Some(newer));
        assert_eq!(get(&cache, &b), Some(entry()));
    }

    #[test]
    fn keys_change_with_the_templates_and_the_state() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let a = unit_key("t1", b"s");
        assert_ne!(a, unit_key("t2", b"s"));
        assert_ne!(a, unit_key("t1", b"s2"));
        assert_eq!(a, unit_key("t1", b"s"));
    }

    #[test]
    fn trimming_drops_the_least_recently_used_packs_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = Cache::new(dir.path().to_path_buf());
        let keys: Vec<String> = (0..6).map(|i| unit_key("t", &[i])).collect();
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for (i, k) in keys.iter().enumerate() {
            store(&cache, k);
            // Each pack older than the next.
            let newest = packs(&cache).remove(0);
            set_used(&newest, base + Duration::from_secs(i as u64));
        }
        let size = fs::metadata(&packs(&cache)[0]).unwrap().len();
        cache.max_bytes = size * 3;
        cache.trim(None);
        assert!(keys[..3].iter().all(|k| get(&cache, k).is_none()));
        assert!(keys[3..].iter().all(|k| get(&cache, k).is_some()));
        // Past the count bound, the smallest packs are merged into the new
        // one: no entry is lost, and the count stays bounded.
        cache.max_bytes = u64::MAX;
        for i in 0..12u8 {
            store(&cache, &unit_key("u", &[i]));
        }
        assert_eq!(packs(&cache).len(), MAX_PACKS);
        assert!((0..12u8).all(|i| get(&cache, &unit_key("u", &[i])).is_some()));
    }

    #[test]
    fn a_damaged_pack_is_merged_away_without_holding_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        fs::create_dir_all(dir.path().join("packs")).unwrap();
        // The oldest pack: an index of many lines that point at nothing.
        let lines = "a 0 1\n".repeat(50_000);
        let damaged = dir.path().join("packs/damaged.pack");
        fs::write(
            &damaged,
            format!("{PACK_FORMAT} {:020} {:020}\n{lines}", 69, lines.len()),
        )
        .unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        set_used(&damaged, old);
        // Packs larger than it, so that it is the one merged.
        for i in 0..MAX_PACKS as u8 {
            store_large(&cache, &unit_key("d", &[i]));
        }
        assert!(!damaged.exists());
        assert_eq!(packs(&cache).len(), MAX_PACKS);
        assert!((0..MAX_PACKS as u8).all(|i| get(&cache, &unit_key("d", &[i])).is_some()));
    }

    /// Stores an entry larger than the damaged pack's index.
    fn store_large(cache: &Cache, key: &str) {
        let mut large = entry();
        large.items.push(format!("\"{}\"", "x".repeat(400_000)));
        let bytes = encode_entry(key, &large).unwrap();
        cache.write_pack(std::iter::once((key.to_owned(), bytes)), &|_| false);
    }

    #[test]
    fn large_packs_are_kept_to_their_bound_then_the_least_recently_used_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = Cache::new(dir.path().to_path_buf());
        cache.merge_bytes = 100_000;
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // The large packs of many environments' renders.
        let keys: Vec<String> = (0..=MAX_LARGE_PACKS as u8)
            .map(|i| unit_key("large", &[i]))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            store_large(&cache, key);
            let newest = packs(&cache).remove(0);
            set_used(&newest, base + Duration::from_secs(i as u64));
        }
        // Far more than the small packs' count: none is lost or copied.
        assert_eq!(packs(&cache).len(), MAX_LARGE_PACKS + 1);
        assert!(keys.iter().all(|k| get(&cache, k).is_some()));
        // The oldest was used last.
        let oldest = packs(&cache).pop().unwrap();
        set_used(&oldest, base + Duration::from_secs(1000));
        let size = |p: &PathBuf| fs::metadata(p).unwrap().len();
        let sizes: u64 = packs(&cache).iter().map(size).sum();
        store(&cache, &unit_key("warm", b""));
        assert!(get(&cache, &unit_key("warm", b"")).is_some());
        // Past the bound the least recently used (the second stored) is
        // gone, nothing was copied, and the rest stay as they were.
        assert_eq!(packs(&cache).len(), MAX_LARGE_PACKS + 1);
        assert!(get(&cache, &keys[1]).is_none());
        assert!(keys
            .iter()
            .enumerate()
            .all(|(i, k)| i == 1 || get(&cache, k).is_some()));
        assert!(packs(&cache).iter().map(size).sum::<u64>() < sizes);
    }

    #[test]
    fn small_packs_are_merged_and_a_large_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        // The oldest pack, the large one a cold render writes.
        store_large(&cache, &unit_key("cold", b""));
        let large = packs(&cache).remove(0);
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        set_used(&large, old);
        // Many warm renders, each storing one small unit.
        for i in 0..3 * MAX_PACKS as u8 {
            store(&cache, &unit_key("warm", &[i]));
        }
        assert!(
            large.exists(),
            "the large pack was carried into a small one"
        );
        assert_eq!(packs(&cache).len(), MAX_PACKS);
        assert!(get(&cache, &unit_key("cold", b"")).is_some());
        assert!((0..3 * MAX_PACKS as u8).all(|i| get(&cache, &unit_key("warm", &[i])).is_some()));
    }

    #[test]
    fn an_entry_is_trusted_only_under_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let (a, b) = (unit_key("t", b"a"), unit_key("t", b"b"));
        // An index that points `b` at `a`'s entry.
        let bytes = encode_entry(&a, &entry()).unwrap();
        cache.write_pack(
            [(a.clone(), bytes.clone()), (b.clone(), bytes)].into_iter(),
            &|_| false,
        );
        assert_eq!(get(&cache, &a), Some(entry()));
        assert_eq!(get(&cache, &b), None);
    }

    #[test]
    fn the_pack_just_written_stays_whatever_the_clock_says_of_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let future = SystemTime::now() + Duration::from_secs(86_400);
        for i in 0..MAX_PACKS as u8 {
            store(&cache, &unit_key("f", &[i]));
            let newest = packs(&cache).remove(0);
            set_used(&newest, future);
        }
        let key = unit_key("now", b"");
        store(&cache, &key);
        assert_eq!(get(&cache, &key), Some(entry()));
    }

    /// A cache in `dir` bounded to `max_bytes`.
    fn bounded_in(dir: &Path, max_bytes: u64) -> Cache {
        Cache {
            dir: dir.to_path_buf(),
            max_bytes,
            merge_bytes: MERGE_MAX_BYTES,
        }
    }

    #[test]
    fn a_pack_larger_than_the_bound_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let bounded = |max_bytes| bounded_in(dir.path(), max_bytes);
        store(&bounded(0), "k");
        assert!(packs(&bounded(0)).is_empty());
        store(&bounded(1 << 20), "k");
        assert_eq!(packs(&bounded(1 << 20)).len(), 1);
        // Nothing is left staged either.
        store_large(&bounded(100_000), "big");
        let left: Vec<_> = fs::read_dir(dir.path().join("packs")).unwrap().collect();
        assert_eq!(left.len(), 1);
        assert!(get(&bounded(1 << 20), "k").is_some());
    }

    #[test]
    fn new_entries_are_kept_when_the_older_ones_they_would_carry_do_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let bounded = |max_bytes| bounded_in(dir.path(), max_bytes);
        let sized = |key: &str, n: usize| {
            let mut e = entry();
            e.items.push(format!("\"{}\"", "x".repeat(n)));
            (key.to_owned(), encode_entry(key, &e).unwrap())
        };
        // Packs written under a larger bound (the setting was lowered since).
        for i in 0..MAX_PACKS {
            let old = sized(&format!("old{i}"), 15_000);
            bounded(1 << 20).write_pack(std::iter::once(old), &|_| false);
        }
        // This one's entries fit; the pack it would carry does not.
        let cache = bounded(24_000);
        assert!(cache.write_pack(std::iter::once(sized("new", 12_000)), &|_| false));
        assert!(get(&cache, "new").is_some());
        let total: u64 = cache.packs().iter().map(|p| p.1).sum();
        assert!(total <= 24_000, "{total}");
        // Entries that do not fit the bound: given up, and said so.
        assert!(!cache.write_pack(std::iter::once(sized("big", 30_000)), &|_| false));
        assert!(get(&cache, "big").is_none());
        assert!(cache.write_pack(std::iter::empty(), &|_| false));
    }

    #[test]
    fn only_the_earlier_layouts_unit_files_are_removed_from_units() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let units = dir.path().join("units");
        let key = format!("ab{}", "0".repeat(62));
        fs::create_dir_all(units.join("ab")).unwrap();
        fs::write(units.join("ab").join(&key), "old entry").unwrap();
        fs::create_dir_all(units.join("cd")).unwrap();
        fs::write(units.join("cd").join(&key), "a key of another shard").unwrap();
        fs::create_dir_all(units.join("keep")).unwrap();
        fs::write(units.join("keep").join("data.txt"), "precious").unwrap();
        fs::write(units.join("notes.txt"), "precious").unwrap();
        store(&cache, "k");
        assert!(!units.join("ab").exists());
        assert!(units.join("cd").join(&key).exists());
        assert!(units.join("keep").join("data.txt").exists());
        assert!(units.join("notes.txt").exists());
        // A directory of old entries alone goes whole.
        fs::remove_dir_all(&units).unwrap();
        fs::create_dir_all(units.join("ab")).unwrap();
        fs::write(units.join("ab").join(&key), "old entry").unwrap();
        store(&cache, "k2");
        assert!(!units.exists());
    }

    #[test]
    fn a_fifo_or_a_directory_named_like_a_pack_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        fs::create_dir_all(dir.path().join("packs/d.pack")).unwrap();
        #[cfg(unix)]
        {
            let fifo = dir.path().join("packs/f.pack");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            assert!(made.is_ok_and(|s| s.success()));
        }
        let key = unit_key("t", b"x");
        assert_eq!(get(&cache, &key), None);
        store(&cache, &key);
        assert_eq!(get(&cache, &key), Some(entry()));
    }

    /// A work tree one of whose directories cannot be listed.
    struct Unlistable(crate::repo::WorkTree, &'static str);

    impl RepoFiles for Unlistable {
        fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
            self.0.read(rel)
        }
        fn list_entries(&self, rel: &str) -> Result<Vec<(String, EntryKind)>, String> {
            if rel == self.1 {
                return Err("Permission denied (os error 13)".to_owned());
            }
            self.0.list_entries(rel)
        }
    }

    #[test]
    fn templates_are_digested_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("jsonnet/a")).unwrap();
        fs::write(root.join("jsonnet/a/x.libsonnet"), "1").unwrap();
        let lib = crate::evaluate::library::EmbeddedLibrary;
        let tree = || crate::repo::WorkTree::open(root).unwrap();
        let first = templates_digest(&tree(), &lib).unwrap();
        // Every kind of entry counts: a file in a nested directory, a
        // FIFO, a file where a tree would be.
        fs::write(root.join("jsonnet/a/x.libsonnet"), "2").unwrap();
        let edited = templates_digest(&tree(), &lib).unwrap();
        assert_ne!(first, edited);
        #[cfg(unix)]
        {
            let made = std::process::Command::new("mkfifo")
                .arg(root.join("jsonnet/f"))
                .status();
            assert!(made.is_ok_and(|s| s.success()));
            assert_ne!(templates_digest(&tree(), &lib).unwrap(), edited);
        }
        fs::write(root.join("lib"), "not a directory").unwrap();
        assert!(templates_digest(&tree(), &lib).is_some());
        // A directory that cannot be listed (entered, not read: imports
        // through it still work) leaves nothing to cache under.
        assert_eq!(
            templates_digest(&Unlistable(tree(), "jsonnet/a"), &lib),
            None
        );
    }

    #[test]
    fn the_memos_used_longest_ago_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_owned());
        let name = |i: usize| format!("{i:064x}");
        let old = SystemTime::now() - std::time::Duration::from_secs(3600);
        for i in 0..MAX_MEMOS {
            cache.store_memo(&name(i), &[b"body"]);
            let path = dir.path().join("memos").join(name(i));
            let file = fs::OpenOptions::new().write(true).open(path).unwrap();
            file.set_modified(old + std::time::Duration::from_secs(i as u64))
                .unwrap();
        }
        // The first written, used now: it stays; the next oldest goes.
        cache.touch_memo(&name(0));
        cache.store_memo(&name(MAX_MEMOS), &[b"body"]);
        assert_eq!(cache.memo(&name(0)).as_deref(), Some(&b"body"[..]));
        assert_eq!(cache.memo(&name(1)), None);
        assert!(cache.memo(&name(MAX_MEMOS)).is_some());
        assert_eq!(
            fs::read_dir(dir.path().join("memos")).unwrap().count(),
            MAX_MEMOS
        );
    }

    #[test]
    fn a_verdict_is_read_only_from_a_short_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let (good, long) = ("ab12".repeat(16), "cd34".repeat(16));
        cache.store_verdicts(&[(good.clone(), 7)]);
        assert_eq!(cache.verdict(&good), Some(7));
        let path = |key: &str| dir.path().join("verdicts").join(key);
        // Longer than a verdict: not read, even if it starts like one.
        let mut text = verdict_bytes(&long, 7);
        text.resize(10_000, b' ');
        fs::write(path(&long), text).unwrap();
        assert_eq!(cache.verdict(&long), None);
        #[cfg(unix)]
        {
            // A link (to an endless device) and a FIFO (no writer: opening
            // it to read would wait forever) are not followed or waited on.
            fs::remove_file(path(&long)).unwrap();
            std::os::unix::fs::symlink("/dev/zero", path(&long)).unwrap();
            assert_eq!(cache.verdict(&long), None);
            fs::remove_file(path(&good)).unwrap();
            let made = std::process::Command::new("mkfifo")
                .arg(path(&good))
                .status();
            assert!(made.is_ok_and(|s| s.success()));
            assert_eq!(cache.verdict(&good), None);
        }
    }

    #[test]
    fn a_records_pack_is_read_whole_only_when_much_of_it_is_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let keys: Vec<String> = (0..8u8).map(|i| unit_key("r", &[i])).collect();
        let record = Record {
            array: true,
            depends: Vec::new(),
            values: 1,
            body: Buffer::string("x".repeat(1000)),
            body_range: 0..1000,
        };
        let pack = keys
            .iter()
            .map(|k| (k.clone(), encode_record(k, &record).unwrap()));
        cache.write_pack(pack, &|_| false);
        let len = fs::metadata(packs(&cache).remove(0)).unwrap().len() as usize;
        let read = |wanted: &[String]| {
            let packs = cache.open(&wanted.iter().map(String::as_str).collect());
            let got = packs.get_record(&wanted[0]).unwrap();
            assert_eq!(
                &got.body.bytes()[got.body_range.clone()],
                "x".repeat(1000).as_bytes()
            );
            got.body.bytes().len()
        };
        // One record of eight: that record alone is read.
        assert!(read(&keys[..1]) < len / 4);
        // All of them: the pack, in one read.
        assert_eq!(read(&keys), len);
    }

    #[test]
    fn a_pack_larger_than_the_cache_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = bounded_in(dir.path(), 1 << 20);
        let key = unit_key("t", b"x");
        store(&cache, &key);
        assert_eq!(get(&cache, &key), Some(entry()));
        // However well formed (a sparse file of any length can be), a
        // pack is read only up to the bound the cache writes within.
        let len = fs::metadata(packs(&cache).remove(0)).unwrap().len();
        assert_eq!(get(&bounded_in(dir.path(), len), &key), Some(entry()));
        assert_eq!(get(&bounded_in(dir.path(), len - 1), &key), None);
    }
}
