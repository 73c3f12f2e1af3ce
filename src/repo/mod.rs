//! The repository as the pipeline reads it: the work tree, a Git revision
//! or a promotion's two branches, all behind [`RepoFiles`]. Paths are
//! repo-relative with `/` separators; nothing outside the repository root
//! can be read, symlinks included.

pub mod git;
pub mod guard;
pub mod layout;
pub mod promotion;

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Largest input file accepted (YAML, schema, Jsonnet): a 20,000-service
/// controlcenter.yaml is about 30 MB.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Why a repository file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The path (or a symlink on it) leads outside the repository.
    OutsideRepo,
    /// The path names a directory or a special file.
    NotAFile,
    /// The file is larger than [`MAX_FILE_BYTES`].
    TooLarge(u64),
    /// The bytes of an input file (named here) read under another name:
    /// through a link, a hard link or a copy.
    InputFile(String),
    /// Any other I/O error, as text.
    Io(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::OutsideRepo => f.write_str("it leads outside the repository"),
            ReadError::NotAFile => f.write_str("it is not a regular file"),
            ReadError::TooLarge(n) => write!(
                f,
                "it is {n} bytes, more than the {MAX_FILE_BYTES}-byte limit for an input file"
            ),
            ReadError::InputFile(name) => write!(
                f,
                "it is the input file {name} under another name (a link or a copy)"
            ),
            ReadError::Io(e) => f.write_str(e),
        }
    }
}

/// Read-only access to the files of one repository snapshot.
pub trait RepoFiles: Send + Sync {
    /// Reads a repo-relative path; `Ok(None)` when nothing is there.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError>;

    /// Reads a repo-relative path and says which file it really is (every
    /// symlink on the way resolved), so a check on the file's identity
    /// cannot be dodged with a link.
    fn read_real(&self, rel: &str) -> Result<Option<(String, Vec<u8>)>, ReadError> {
        let real = normalize(rel).ok_or(ReadError::OutsideRepo)?;
        Ok(self.read(rel)?.map(|bytes| (real, bytes)))
    }

    /// Which file a repo-relative path really is ([`RepoFiles::read_real`]),
    /// refused as that read would be; where reading costs more than
    /// resolving, without reading it.
    fn real_path(&self, rel: &str) -> Result<Option<String>, ReadError> {
        Ok(self.read_real(rel)?.map(|(real, _)| real))
    }

    /// Other snapshots this one is made of (a promotion's source and
    /// target): whatever is true of their input files holds here too.
    fn parts(&self) -> Vec<std::sync::Arc<dyn RepoFiles>> {
        Vec::new()
    }

    /// Names of the regular files directly in directory `rel`, sorted;
    /// empty when it does not exist.
    fn list_files(&self, rel: &str) -> Vec<String> {
        let _ = rel;
        Vec::new()
    }

    /// Names of the directories directly in directory `rel`, sorted;
    /// empty when it does not exist.
    fn list_dirs(&self, rel: &str) -> Vec<String> {
        let _ = rel;
        Vec::new()
    }

    /// Every entry directly in directory `rel`, sorted by name: its name
    /// (with U+FFFD where it is not UTF-8) and kind. Where
    /// [`RepoFiles::list_files`] and [`RepoFiles::list_dirs`] pass over
    /// what they cannot name or read, this says it is there. Empty when
    /// `rel` does not exist; `Err` when it cannot be listed (not a
    /// directory, no permission).
    fn list_entries(&self, rel: &str) -> Result<Vec<(String, EntryKind)>, String> {
        let mut all: Vec<(String, EntryKind)> = self
            .list_files(rel)
            .into_iter()
            .map(|name| (name, EntryKind::File))
            .chain(
                self.list_dirs(rel)
                    .into_iter()
                    .map(|name| (name, EntryKind::Dir)),
            )
            .collect();
        all.sort();
        Ok(all)
    }
}

/// The entries of directory `rel` of `repo` ([`RepoFiles::list_entries`]),
/// none when nothing is there; `Err` (what is wrong with it) when
/// something other than a directory of the repository is: a file, a link
/// to nothing or out of the repository, a special file, a Git submodule,
/// a directory that cannot be listed. A directory of inputs taken for
/// absent would silently drop what it holds.
pub fn dir_entries(repo: &dyn RepoFiles, rel: &str) -> Result<Vec<(String, EntryKind)>, String> {
    if !is_dir(repo, rel)? {
        return Ok(Vec::new());
    }
    repo.list_entries(rel)
        .map_err(|why| format!("cannot be listed: {why}"))
}

/// Whether `rel` is a directory of `repo` (`Ok(false)`: nothing is there).
fn is_dir(repo: &dyn RepoFiles, rel: &str) -> Result<bool, String> {
    // What the parent lists it as, when reading it says nothing useful.
    let listed = || {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        repo.list_entries(parent)
            .unwrap_or_default()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, kind)| kind)
    };
    let not_a_directory =
        "is not a directory of the repository (a special file or a Git submodule)";
    match repo.read_real(rel) {
        // A directory, or a link to one.
        Err(ReadError::NotAFile) => match listed() {
            Some(EntryKind::Other) => Err(not_a_directory.to_owned()),
            _ => Ok(true),
        },
        Ok(None) => match listed() {
            Some(EntryKind::File) => Err("is a link to nothing".to_owned()),
            Some(EntryKind::Other) => Err(not_a_directory.to_owned()),
            _ => Ok(false),
        },
        Ok(Some(_)) => Err("is a file, not a directory".to_owned()),
        Err(ReadError::OutsideRepo) => Err("leads outside the repository".to_owned()),
        Err(e) => Err(format!("cannot be read: {e}")),
    }
}

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// A regular file or a symlink (read through it).
    File,
    /// A directory.
    Dir,
    /// Anything else: a FIFO, a socket, a device, a Git submodule.
    Other,
}

/// Normalizes a repo-relative path lexically; `None` if it is absolute or
/// climbs above the root with `..`.
pub fn normalize(rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// A repository checked out on disk.
pub struct WorkTree {
    root: PathBuf,
    /// Other directories its symlinks may lead into (`eval`'s `-J`
    /// directories and the evaluated file's directory form one sandbox).
    also: Vec<PathBuf>,
}

impl WorkTree {
    /// Opens the directory `root` (which must exist).
    pub fn open(root: &Path) -> std::io::Result<Self> {
        Ok(WorkTree {
            root: root.canonicalize()?,
            also: Vec::new(),
        })
    }

    /// Opens `root`, whose symlinks may also lead into `sandbox` (other
    /// canonical directories).
    pub fn open_in_sandbox(root: &Path, sandbox: &[PathBuf]) -> std::io::Result<Self> {
        let mut tree = Self::open(root)?;
        tree.also = sandbox.to_vec();
        Ok(tree)
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file at repo-relative `rel`, every link resolved and confined:
    /// its name in the tree (in full when in another directory of the
    /// sandbox), its path and its length. `Ok(None)` when nothing is
    /// there (a dangling link included).
    fn resolve(&self, rel: &str) -> Result<Option<(String, PathBuf, u64)>, ReadError> {
        let rel = normalize(rel).ok_or(ReadError::OutsideRepo)?;
        let path = self.root.join(&rel);
        if fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        // Resolve symlinks, then confine: a link may point anywhere.
        let real = match path.canonicalize() {
            Ok(p) => p,
            Err(_) => return Ok(None), // dangling symlink
        };
        let inside = match real.strip_prefix(&self.root) {
            Ok(inside) => inside,
            // Into another directory of the sandbox: named in full, so it
            // is never taken for one of this tree's files.
            Err(_) if self.also.iter().any(|dir| real.starts_with(dir)) => &real,
            Err(_) => return Err(ReadError::OutsideRepo),
        };
        let inside = inside
            .to_str()
            .ok_or_else(|| ReadError::Io("the path is not UTF-8".into()))?
            .to_owned();
        let meta = fs::metadata(&real).map_err(|e| ReadError::Io(e.to_string()))?;
        if !meta.is_file() {
            return Err(ReadError::NotAFile);
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(ReadError::TooLarge(meta.len()));
        }
        Ok(Some((inside, real, meta.len())))
    }
}

impl WorkTree {
    /// Names directly in directory `rel` whose type `keep` accepts, sorted.
    fn names(&self, rel: &str, keep: fn(fs::FileType) -> bool) -> Vec<String> {
        let Some(rel) = normalize(rel) else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir(self.root.join(rel)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(keep))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }
}

impl RepoFiles for WorkTree {
    fn list_files(&self, rel: &str) -> Vec<String> {
        self.names(rel, |t| t.is_file() || t.is_symlink())
    }

    fn list_dirs(&self, rel: &str) -> Vec<String> {
        self.names(rel, |t| t.is_dir())
    }

    fn list_entries(&self, rel: &str) -> Result<Vec<(String, EntryKind)>, String> {
        let rel = normalize(rel).ok_or("it leads outside the repository")?;
        let entries = match fs::read_dir(self.root.join(rel)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        let mut all: Vec<(String, EntryKind)> = Vec::new();
        for e in entries {
            let e = e.map_err(|e| e.to_string())?;
            let kind = match e.file_type() {
                Ok(t) if t.is_file() || t.is_symlink() => EntryKind::File,
                Ok(t) if t.is_dir() => EntryKind::Dir,
                _ => EntryKind::Other,
            };
            all.push((e.file_name().to_string_lossy().into_owned(), kind));
        }
        all.sort();
        Ok(all)
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.read_real(rel)?.map(|(_, bytes)| bytes))
    }

    fn read_real(&self, rel: &str) -> Result<Option<(String, Vec<u8>)>, ReadError> {
        let Some((inside, real, len)) = self.resolve(rel)? else {
            return Ok(None);
        };
        let mut buf = Vec::with_capacity(len as usize);
        fs::File::open(&real)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf))
            .map_err(|e| ReadError::Io(e.to_string()))?;
        if buf.len() as u64 > MAX_FILE_BYTES {
            return Err(ReadError::TooLarge(buf.len() as u64));
        }
        Ok(Some((inside, buf)))
    }

    fn real_path(&self, rel: &str) -> Result<Option<String>, ReadError> {
        Ok(self.resolve(rel)?.map(|(inside, _, _)| inside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_refuses_escapes() {
        assert_eq!(normalize("a/./b/../c.yaml").as_deref(), Some("a/c.yaml"));
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("a/../../x"), None);
        assert_eq!(normalize("/etc/passwd"), None);
    }

    #[test]
    fn worktree_refuses_symlinks_that_leave_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join("ok.yaml"), "a: 1").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path().join("secret"), repo.path().join("link"))
            .unwrap();
        let wt = WorkTree::open(repo.path()).unwrap();
        assert_eq!(wt.read("ok.yaml").unwrap().unwrap(), b"a: 1");
        assert_eq!(wt.read("missing.yaml").unwrap(), None);
        #[cfg(unix)]
        assert_eq!(wt.read("link"), Err(ReadError::OutsideRepo));
        assert_eq!(wt.read("../x"), Err(ReadError::OutsideRepo));
    }

    #[cfg(unix)]
    #[test]
    fn where_a_file_really_is_is_said_as_a_read_would_say_it() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join("data")).unwrap();
        std::fs::write(repo.path().join("data/real.yaml"), "a: 1").unwrap();
        std::os::unix::fs::symlink("data/real.yaml", repo.path().join("link.yaml")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), repo.path().join("out.yaml"))
            .unwrap();
        std::os::unix::fs::symlink("nowhere", repo.path().join("dangling.yaml")).unwrap();
        let wt = WorkTree::open(repo.path()).unwrap();
        for path in [
            "link.yaml",
            "data/real.yaml",
            "out.yaml",
            "dangling.yaml",
            "none.yaml",
            "data",
        ] {
            let read = wt.read_real(path).map(|r| r.map(|(real, _)| real));
            assert_eq!(wt.real_path(path), read, "{path}");
        }
        assert_eq!(
            wt.real_path("link.yaml"),
            Ok(Some("data/real.yaml".to_owned()))
        );
        assert_eq!(wt.real_path("out.yaml"), Err(ReadError::OutsideRepo));
    }

    #[cfg(unix)]
    #[test]
    fn a_sandbox_of_directories_lets_links_between_them_resolve() {
        let base = tempfile::tempdir().unwrap();
        let (vendor, lib, other) = (
            base.path().join("vendor"),
            base.path().join("jsonnet"),
            base.path().join("other"),
        );
        for dir in [&vendor, &lib, &other] {
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::write(lib.join("k.libsonnet"), "{}").unwrap();
        std::fs::write(other.join("x.libsonnet"), "{}").unwrap();
        std::os::unix::fs::symlink("../jsonnet", vendor.join("kube")).unwrap();
        std::os::unix::fs::symlink("../other/x.libsonnet", vendor.join("x.libsonnet")).unwrap();
        let sandbox = [vendor.canonicalize().unwrap(), lib.canonicalize().unwrap()];
        let wt = WorkTree::open_in_sandbox(&vendor, &sandbox).unwrap();
        assert_eq!(wt.read("kube/k.libsonnet").unwrap().unwrap(), b"{}");
        assert_eq!(wt.read("x.libsonnet"), Err(ReadError::OutsideRepo));
        // Alone, the directory is its own sandbox.
        let alone = WorkTree::open(&vendor).unwrap();
        assert_eq!(alone.read("kube/k.libsonnet"), Err(ReadError::OutsideRepo));
    }
}
