//! A repository as it is at a Git revision, read straight from the object
//! database (git2, no network, no checkout). Everything downstream, Jsonnet
//! imports included, reads through [`RepoFiles`], so rendering a revision is
//! rendering a snapshot. Symlinks stored in the tree are followed inside
//! the snapshot only.

use std::path::Path;
use std::sync::Mutex;

use git2::{ObjectType, Oid, Repository};

use super::repo::{normalize, ReadError, RepoFiles, MAX_FILE_BYTES};

/// Symlink hops followed before giving up (a loop).
const MAX_LINK_HOPS: usize = 16;

/// The files of one commit.
pub struct GitRevision {
    // git2's Repository is Send but not Sync: serialize access.
    repo: Mutex<Repository>,
    tree: Oid,
    /// Directory of the control-center repository inside the Git work tree
    /// (`""` when it is the top level).
    prefix: String,
}

/// Why a revision cannot be opened.
#[derive(Debug)]
pub enum RevisionError {
    /// The directory is not inside a Git repository.
    NotARepository(String),
    /// The revision does not name a commit.
    UnknownRevision(String),
}

impl std::fmt::Display for RevisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevisionError::NotARepository(e) => write!(f, "not a Git repository: {e}"),
            RevisionError::UnknownRevision(e) => write!(f, "unknown revision: {e}"),
        }
    }
}

impl GitRevision {
    /// Opens revision `rev` (a commit, branch, tag, `HEAD~2`, …) of the Git
    /// repository that contains `dir`; `dir`'s place in it is kept, so a
    /// control-center repository in a subdirectory works.
    pub fn open(dir: &Path, rev: &str) -> Result<Self, RevisionError> {
        let repo = Repository::discover(dir)
            .map_err(|e| RevisionError::NotARepository(e.message().to_owned()))?;
        let workdir = repo
            .workdir()
            .and_then(|w| w.canonicalize().ok())
            .ok_or_else(|| {
                RevisionError::NotARepository("a bare repository has no work tree".into())
            })?;
        let here = dir
            .canonicalize()
            .map_err(|e| RevisionError::NotARepository(e.to_string()))?;
        let prefix = here
            .strip_prefix(&workdir)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let object = repo
            .revparse_single(rev)
            .map_err(|e| RevisionError::UnknownRevision(format!("`{rev}`: {}", e.message())))?;
        let commit = object
            .peel_to_commit()
            .map_err(|_| RevisionError::UnknownRevision(format!("`{rev}` is not a commit")))?;
        let tree = commit
            .tree()
            .map_err(|e| RevisionError::UnknownRevision(e.message().to_owned()))?
            .id();
        drop(commit);
        drop(object);
        Ok(GitRevision {
            repo: Mutex::new(repo),
            tree,
            prefix,
        })
    }

    fn full_path(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_owned()
        } else if rel.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }
}

impl RepoFiles for GitRevision {
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
        let mut rel = normalize(rel).ok_or(ReadError::OutsideRepo)?;
        let repo = self
            .repo
            .lock()
            .map_err(|_| ReadError::Io("repository lock poisoned".into()))?;
        let tree = repo
            .find_tree(self.tree)
            .map_err(|e| ReadError::Io(e.message().to_owned()))?;
        for _ in 0..MAX_LINK_HOPS {
            let entry = match tree.get_path(Path::new(&self.full_path(&rel))) {
                Ok(e) => e,
                Err(_) => return Ok(None),
            };
            if entry.kind() != Some(ObjectType::Blob) {
                return Err(ReadError::NotAFile);
            }
            let blob = repo
                .find_blob(entry.id())
                .map_err(|e| ReadError::Io(e.message().to_owned()))?;
            if blob.size() as u64 > MAX_FILE_BYTES {
                return Err(ReadError::TooLarge(blob.size() as u64));
            }
            if entry.filemode() != 0o120000 {
                return Ok(Some(blob.content().to_vec()));
            }
            // A symlink: its content is the target, relative to its directory.
            let target = String::from_utf8_lossy(blob.content()).into_owned();
            if Path::new(&target).is_absolute() {
                return Err(ReadError::OutsideRepo);
            }
            let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
            let joined = if dir.is_empty() {
                target
            } else {
                format!("{dir}/{target}")
            };
            rel = normalize(&joined).ok_or(ReadError::OutsideRepo)?;
        }
        Err(ReadError::Io("too many levels of symbolic links".into()))
    }

    fn list_files(&self, rel: &str) -> Vec<String> {
        let Some(rel) = normalize(rel) else {
            return Vec::new();
        };
        let Ok(repo) = self.repo.lock() else {
            return Vec::new();
        };
        let Ok(tree) = repo.find_tree(self.tree) else {
            return Vec::new();
        };
        let path = self.full_path(&rel);
        let dir = if path.is_empty() {
            Some(tree)
        } else {
            tree.get_path(Path::new(&path))
                .ok()
                .and_then(|e| repo.find_tree(e.id()).ok())
        };
        let mut names: Vec<String> = dir
            .map(|d| {
                d.iter()
                    .filter(|e| e.kind() == Some(ObjectType::Blob))
                    .filter_map(|e| e.name().ok().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}
