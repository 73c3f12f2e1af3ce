//! The evaluation cache: each unit's output stored under a hash of
//! everything it depends on, so a commit that changes one service
//! evaluates one unit.
//!
//! The key of a unit hashes the cache format, the binary's version, the
//! unit's state (secrets included, so it changes when they do, but only as
//! a hash) and a digest of every template the unit can import: the whole
//! library and the repository's `jsonnet/`, `vendor/` and `lib/` trees. A
//! repository file outside those trees that a template loaded (an
//! `importstr` of a file at the root) is recorded in the entry with its
//! digest and checked on every hit.
//!
//! Entries are written atomically (a temporary file renamed into place), so
//! processes sharing a directory never see half an entry; each carries a
//! checksum, and one that does not match (truncated, corrupted, another
//! format) is ignored and rewritten. A unit whose output holds a secret
//! value is never stored. The directory is trimmed to a size bound, least
//! recently used entries (to the hour) first.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::repo::{ReadError, RepoFiles};

/// Overrides the cache directory.
pub const DIR_VAR: &str = "CONTROLCENTER_CACHE_DIR";

/// Overrides the size bound, in MiB.
pub const SIZE_VAR: &str = "CONTROLCENTER_CACHE_SIZE_MB";

/// Default size bound: about 100,000 units of a typical service.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// First word of every entry; changes whenever the entry format, or what
/// the engine makes of the same input, does.
const FORMAT: &str = "controlcenter-cache-2";

/// How old an entry's last use may be before a hit records a new one.
const TOUCH_AFTER: Duration = Duration::from_secs(3600);

/// Most files of the template trees digested (a bound, not a limit users
/// meet: past it, nothing is cached).
const MAX_TEMPLATE_FILES: usize = 20_000;

/// Directories of the repository whose whole content is part of every key.
const TEMPLATE_TREES: [&str; 3] = crate::repo::layout::JSONNET_PATH;

/// A cache directory.
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
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

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The key of a unit: its state and what evaluates it.
pub fn unit_key(templates: &str, state: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update([0]);
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update([0]);
    h.update(templates.as_bytes());
    h.update([0]);
    h.update(state);
    hex(&h.finalize())
}

/// Digest of every template a unit can import from the library and the
/// repository's template trees (and the repository's directories named
/// like the library's, which would shadow it). `None` when the trees are
/// too large to digest.
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
        walk(repo, &tree, 0, &mut h, &mut files)?;
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
    for name in files.list_files(dir) {
        *count += 1;
        if *count > MAX_TEMPLATE_FILES {
            return None;
        }
        let path = join(&name);
        h.update(path.as_bytes());
        h.update([0]);
        match files.read(&path) {
            Ok(Some(bytes)) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            // A link to a directory (jsonnet-bundler links vendored
            // packages): walk it like one.
            Err(ReadError::NotAFile) => walk(files, &path, depth + 1, h, count)?,
            Ok(None) => h.update(b"absent"),
            Err(e) => h.update(format!("unreadable: {e}").as_bytes()),
        }
    }
    for name in files.list_dirs(dir) {
        let path = join(&name);
        h.update(path.as_bytes());
        h.update(b"/\0");
        walk(files, &path, depth + 1, h, count)?;
    }
    Some(())
}

impl Cache {
    /// A cache in `dir` (created on first write), bounded by
    /// `$CONTROLCENTER_CACHE_SIZE_MB` or [`DEFAULT_MAX_BYTES`].
    pub fn new(dir: PathBuf) -> Self {
        let max_bytes = std::env::var(SIZE_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_MAX_BYTES, |mb| mb << 20);
        Cache { dir, max_bytes }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join("units").join(&key[..2]).join(key)
    }

    /// The entry stored under `key`, when there is one whose checksum
    /// holds. A hit counts as a use for the size bound.
    pub fn get(&self, key: &str) -> Option<Entry> {
        let mut file = fs::File::open(self.path(key)).ok()?;
        let modified = file.metadata().and_then(|m| m.modified()).ok();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        let entry = decode(&bytes)?;
        // Recency for trimming, to the hour: a warm render of thousands of
        // units writes nothing.
        let now = SystemTime::now();
        let stale =
            modified.is_none_or(|m| now.duration_since(m).map_or(true, |age| age > TOUCH_AFTER));
        if stale {
            let _ = file.set_modified(now);
        }
        Some(entry)
    }

    /// Stores `entry` under `key`, atomically. Failures are ignored: the
    /// cache only ever saves work.
    pub fn put(&self, key: &str, entry: &Entry) {
        let Some(text) = encode(entry) else {
            return;
        };
        let path = self.path(key);
        let Some(dir) = path.parent() else {
            return;
        };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        let Ok(mut tmp) = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir) else {
            return;
        };
        if tmp.write_all(text.as_bytes()).is_ok() {
            let _ = tmp.persist(&path);
        }
    }

    /// Deletes the least recently used entries until the cache is back
    /// under its bound (to 80% of it, so trimming is not needed on every
    /// run). Temporary files older than an hour (left by a killed
    /// process) go too.
    pub fn trim(&self) {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let Ok(shards) = fs::read_dir(self.dir.join("units")) else {
            return;
        };
        let now = SystemTime::now();
        for shard in shards.flatten() {
            let Ok(files) = fs::read_dir(shard.path()) else {
                continue;
            };
            for f in files.flatten() {
                let Ok(meta) = f.metadata() else { continue };
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let stale_tmp = f.file_name().to_string_lossy().starts_with(".tmp-")
                    && now
                        .duration_since(modified)
                        .is_ok_and(|d| d.as_secs() > 3600);
                if stale_tmp {
                    let _ = fs::remove_file(f.path());
                    continue;
                }
                entries.push((modified, meta.len(), f.path()));
            }
        }
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes / 10 * 8 {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }
}

fn encode(entry: &Entry) -> Option<String> {
    let mut body = String::new();
    body.push_str(if entry.array { "array\n" } else { "value\n" });
    body.push_str(&format!("depends {}\n", entry.depends.len()));
    for (path, d) in &entry.depends {
        if path.contains('\n') || d.contains(['\n', ' ']) {
            return None;
        }
        body.push_str(&format!("{d} {path}\n"));
    }
    for item in &entry.items {
        // Compact JSON never holds a raw line break; anything else is not
        // an engine output and is not stored.
        if item.contains('\n') {
            return None;
        }
        body.push_str(item);
        body.push('\n');
    }
    Some(format!("{FORMAT} {}\n{body}", digest(body.as_bytes())))
}

fn decode(bytes: &[u8]) -> Option<Entry> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (header, body) = text.split_once('\n')?;
    let (format, sum) = header.split_once(' ')?;
    if format != FORMAT || sum != digest(body.as_bytes()) {
        return None;
    }
    let mut lines = body.split_terminator('\n');
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
    use super::*;

    fn entry() -> Entry {
        Entry {
            array: true,
            depends: vec![("data/x.txt".into(), digest(b"x"))],
            items: vec![r#"{"a":1}"#.into(), r#"{"b":"x\ny"}"#.into()],
        }
    }

    #[test]
    fn entries_round_trip_and_a_damaged_one_is_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let key = unit_key("t", b"state");
        assert_eq!(cache.get(&key), None);
        cache.put(&key, &entry());
        assert_eq!(cache.get(&key), Some(entry()));
        // Truncated, flipped, emptied: each is a miss, then rewritten.
        let path = cache.path(&key);
        let good = fs::read(&path).unwrap();
        for bad in [
            good[..good.len() - 3].to_vec(),
            good.iter()
                .map(|b| if *b == b'1' { b'2' } else { *b })
                .collect(),
            Vec::new(),
        ] {
            fs::write(&path, bad).unwrap();
            assert_eq!(cache.get(&key), None);
            cache.put(&key, &entry());
            assert_eq!(cache.get(&key), Some(entry()));
        }
    }

    #[test]
    fn keys_change_with_the_templates_and_the_state() {
        let a = unit_key("t1", b"s");
        assert_ne!(a, unit_key("t2", b"s"));
        assert_ne!(a, unit_key("t1", b"s2"));
        assert_eq!(a, unit_key("t1", b"s"));
    }

    #[test]
    fn trimming_drops_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = Cache::new(dir.path().to_path_buf());
        let keys: Vec<String> = (0..10).map(|i| unit_key("t", &[i])).collect();
        for k in &keys {
            cache.put(k, &entry());
        }
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for k in &keys[..5] {
            let f = fs::File::options()
                .append(true)
                .open(cache.path(k))
                .unwrap();
            f.set_modified(old).unwrap();
        }
        let size = fs::metadata(cache.path(&keys[0])).unwrap().len();
        cache.max_bytes = size * 7;
        cache.trim();
        assert!(keys[..5].iter().all(|k| cache.get(k).is_none()));
        assert!(keys[5..].iter().all(|k| cache.get(k).is_some()));
    }
}
