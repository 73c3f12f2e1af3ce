//! A repository as it is at a Git revision, read straight from the object
//! database (git2, no network, no checkout). Everything downstream, Jsonnet
//! imports included, reads through [`RepoFiles`], so rendering a revision is
//! rendering a snapshot. Symlinks stored in the tree are followed inside
//! the snapshot only.

use std::path::Path;
use std::sync::Mutex;

use git2::{ObjectType, Oid, Repository};

use super::{normalize, ReadError, RepoFiles, MAX_FILE_BYTES};

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
    /// Names of the entries of kind `kind` directly in directory `rel`, sorted.
    fn entries(&self, rel: &str, kind: ObjectType) -> Vec<String> {
        // Blobs are regular files and symlinks, as the work tree lists them.
        let mut names = self
            .in_tree(rel, |dir| {
                dir.iter()
                    .filter(|e| e.kind() == Some(kind))
                    .filter_map(|e| e.name().ok().map(str::to_owned))
                    .collect::<Vec<String>>()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `read` of the tree at directory `rel`; `None` when there is none.
    fn in_tree<R>(&self, rel: &str, read: impl FnOnce(&git2::Tree<'_>) -> R) -> Option<R> {
        let repo = self.repo.lock().ok()?;
        let found = self.resolve(&repo, rel).ok()??;
        let dir = found
            .is_tree
            .then(|| repo.find_tree(found.id).ok())
            .flatten()?;
        Some(read(&dir))
    }

    /// Opens revision `rev` (a commit, branch, tag, `HEAD~2`, …) of the Git
    /// repository that contains `dir`; `dir`'s place in it is kept, so a
    /// control-center repository in a subdirectory works.
    pub fn open(dir: &Path, rev: &str) -> Result<Self, RevisionError> {
        let (repo, prefix) = discover(dir)?;
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

/// The Git repository that contains `dir`, and `dir`'s path inside its
/// work tree (`""` at the top level).
pub fn discover(dir: &Path) -> Result<(Repository, String), RevisionError> {
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
    Ok((repo, prefix))
}

/// Where a path of the snapshot leads, symlinks followed.
struct Found {
    /// The path with every symlink resolved, relative to the repository.
    real: String,
    /// The object there.
    id: Oid,
    /// Whether it is a tree (a directory).
    is_tree: bool,
}

impl GitRevision {
    /// Resolves `rel` component by component, following a symlink at any
    /// position (a linked directory too), as the file system does for the
    /// work tree, and never above the repository. `Ok(None)`: nothing there.
    fn resolve(&self, repo: &Repository, rel: &str) -> Result<Option<Found>, ReadError> {
        let rel = normalize(rel).ok_or(ReadError::OutsideRepo)?;
        let tree = repo
            .find_tree(self.tree)
            .map_err(|e| ReadError::Io(e.message().to_owned()))?;
        let mut todo: Vec<String> = rel.split('/').rev().map(str::to_owned).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        let mut last = None;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop().ok_or(ReadError::OutsideRepo)?;
                    last = None;
                    continue;
                }
                _ => {}
            }
            done.push(part);
            let path = self.full_path(&done.join("/"));
            let Ok(entry) = tree.get_path(Path::new(&path)) else {
                return Ok(None);
            };
            if entry.filemode() == 0o120000 {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(ReadError::Io("too many levels of symbolic links".into()));
                }
                let blob = repo
                    .find_blob(entry.id())
                    .map_err(|e| ReadError::Io(e.message().to_owned()))?;
                let target = String::from_utf8_lossy(blob.content()).into_owned();
                if Path::new(&target).is_absolute() {
                    return Err(ReadError::OutsideRepo);
                }
                // The link's target replaces it, relative to its directory.
                done.pop();
                todo.extend(target.split('/').rev().map(str::to_owned));
                last = None;
                continue;
            }
            last = Some((entry.id(), entry.kind() == Some(ObjectType::Tree)));
        }
        Ok(Some(match last {
            Some((id, is_tree)) => Found {
                real: done.join("/"),
                id,
                is_tree,
            },
            // The repository itself.
            None => {
                let id = if self.prefix.is_empty() {
                    self.tree
                } else {
                    match tree.get_path(Path::new(&self.prefix)) {
                        Ok(e) => e.id(),
                        Err(_) => return Ok(None),
                    }
                };
                Found {
                    real: done.join("/"),
                    id,
                    is_tree: true,
                }
            }
        }))
    }
}

impl RepoFiles for GitRevision {
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.read_real(rel)?.map(|(_, bytes)| bytes))
    }

    fn read_real(&self, rel: &str) -> Result<Option<(String, Vec<u8>)>, ReadError> {
        let repo = self
            .repo
            .lock()
            .map_err(|_| ReadError::Io("repository lock poisoned".into()))?;
        let Some(found) = self.resolve(&repo, rel)? else {
            return Ok(None);
        };
        if found.is_tree {
            return Err(ReadError::NotAFile);
        }
        let blob = repo.find_blob(found.id).map_err(|_| ReadError::NotAFile)?;
        if blob.size() as u64 > MAX_FILE_BYTES {
            return Err(ReadError::TooLarge(blob.size() as u64));
        }
        Ok(Some((found.real, blob.content().to_vec())))
    }

    fn list_files(&self, rel: &str) -> Vec<String> {
        self.entries(rel, ObjectType::Blob)
    }

    fn list_dirs(&self, rel: &str) -> Vec<String> {
        self.entries(rel, ObjectType::Tree)
    }

    fn list_entries(&self, rel: &str) -> Result<Vec<(String, super::EntryKind)>, String> {
        let mut all = self
            .in_tree(rel, |dir| {
                dir.iter()
                    .map(|e| {
                        let kind = match e.kind() {
                            Some(ObjectType::Blob) => super::EntryKind::File,
                            Some(ObjectType::Tree) => super::EntryKind::Dir,
                            _ => super::EntryKind::Other,
                        };
                        (String::from_utf8_lossy(e.name_bytes()).into_owned(), kind)
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        all.sort();
        Ok(all)
    }
}
