//! Hydration: one environment's rendered manifests committed to a branch of
//! the repository (the rendered-manifests pattern), straight into the
//! object database with git2: no checkout, no network, no clock unless
//! asked. The commit carries `hydrator.metadata` and a `README.md` at its
//! path, and a git note under `refs/notes/hydrator.metadata`, in the shapes
//! Argo CD's Source Hydrator and GitOps Promoter read.
//!
//! Under the path, hydration owns `README.md`, `hydrator.metadata` and
//! every `<dir>/<name>.yaml` whose directory does not start with a dot (the
//! `--out-dir` layout); everything else on the branch is left alone.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid, Repository, Signature, Tree};
use serde::Serialize;

/// The metadata file at the hydrated path.
pub const METADATA_FILE: &str = "hydrator.metadata";
/// What the hydrated directory is, for people browsing the branch.
pub const README_FILE: &str = "README.md";
/// Notes ref of the dry commit each hydrated commit was made from.
pub const NOTES_REF: &str = "refs/notes/hydrator.metadata";

const BLOB_MODE: i32 = 0o100_644;
const TREE_MODE: i32 = 0o040_000;

/// Where an environment is hydrated to: a local branch and a directory in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Branch name (`environment/prod`), without `refs/heads/`.
    pub branch: String,
    /// Directory inside the branch, normalized; empty for its root.
    pub path: String,
}

impl Target {
    /// Checks a branch name and a path; the error says what is wrong.
    pub fn new(branch: &str, path: &str) -> Result<Target, String> {
        let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
        // git's own branch rules (no `HEAD`, no leading `-`), and no name
        // that reads as another ref (`refs/tags/v1` as refs/heads/refs/…).
        let valid = !branch.starts_with("refs/")
            && git2::Branch::name_is_valid(branch).unwrap_or(false)
            && git2::Reference::is_valid_name(&format!("refs/heads/{branch}"));
        if !valid {
            return Err(format!("`{branch}` is not a valid branch name"));
        }
        let normalized = crate::repo::normalize(path)
            .filter(|p| {
                !p.split('/')
                    .any(|c| c.eq_ignore_ascii_case(".git") || c.contains('\\'))
            })
            .ok_or_else(|| {
                format!("`{path}` is not a directory inside the branch (relative, no `..` above the root, no `.git`)")
            })?;
        Ok(Target {
            branch: branch.to_owned(),
            path: normalized,
        })
    }

    /// Whether hydrating both would write into one directory: the same
    /// branch, and one path is the other or inside it.
    pub fn overlaps(&self, other: &Target) -> bool {
        let inside = |a: &str, b: &str| {
            a.is_empty() || a == b || b.strip_prefix(a).is_some_and(|rest| rest.starts_with('/'))
        };
        self.branch == other.branch
            && (inside(&self.path, &other.path) || inside(&other.path, &self.path))
    }

    /// The path as users write it (`.` for the root).
    pub fn path_label(&self) -> &str {
        if self.path.is_empty() {
            "."
        } else {
            &self.path
        }
    }
}

/// A commit the metadata names: who, when, what.
#[derive(Clone, Debug, Serialize)]
pub struct CommitInfo {
    /// Full commit id.
    #[serde(rename = "drySha")]
    pub sha: String,
    /// `Name <email>`.
    pub author: String,
    /// RFC 3339, with the commit's own offset.
    pub date: String,
    /// First paragraph of the message.
    pub subject: String,
    /// The rest of the message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
}

impl CommitInfo {
    /// Reads a commit.
    pub fn of(commit: &git2::Commit<'_>) -> CommitInfo {
        let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
        let (subject, body) = match message.split_once("\n\n") {
            Some((s, b)) => (s.trim().to_owned(), b.trim().to_owned()),
            None => (message.trim().to_owned(), String::new()),
        };
        let author = commit.author();
        CommitInfo {
            sha: commit.id().to_string(),
            author: format!(
                "{} <{}>",
                String::from_utf8_lossy(author.name_bytes()),
                String::from_utf8_lossy(author.email_bytes())
            ),
            date: rfc3339(author.when()),
            subject,
            body,
        }
    }
}

/// A file of the dry commit the render read.
#[derive(Clone, Debug, Serialize)]
pub struct FileReference {
    /// Path in the dry commit.
    pub path: String,
    /// Blob id.
    pub sha: String,
}

/// One entry of `references`. Argo CD defines `commit` entries; readers
/// skip kinds they do not know, so input files are `file` entries.
#[derive(Clone, Debug, Serialize)]
pub struct Reference {
    /// An input file.
    pub file: FileReference,
}

/// `hydrator.metadata`: Argo CD's `HydratorCommitMetadata` fields.
#[derive(Clone, Debug, Serialize)]
pub struct Metadata {
    /// Where the dry commit can be fetched, without credentials.
    #[serde(rename = "repoURL", skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// The dry commit.
    #[serde(flatten)]
    pub dry: CommitInfo,
    /// The command that reproduces this directory from the dry commit.
    pub commands: Vec<String>,
    /// The input files the render read, by blob.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

impl Metadata {
    /// The file's bytes: indented JSON and a final newline, as Argo CD
    /// writes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text.into_bytes()
    }
}

/// What to commit.
pub struct Hydration<'a> {
    /// Branch and path.
    pub target: &'a Target,
    /// Manifest files by path relative to the target path
    /// (`<dir>/<name>.yaml`).
    pub manifests: BTreeMap<String, Vec<u8>>,
    /// Written as `hydrator.metadata` and as the note.
    pub metadata: &'a Metadata,
    /// `README.md` at the path.
    pub readme: String,
    /// Commit message.
    pub message: String,
    /// Author of the hydrated commit.
    pub author: Signature<'static>,
    /// Committer of the hydrated commit (and of the note).
    pub committer: Signature<'static>,
    /// Where the control-center repository sits in the Git tree (`""` at
    /// the top): a branch holding it there is a dry branch, never a target.
    pub dry_prefix: String,
}

/// What a hydration did.
#[derive(Debug, PartialEq, Eq)]
pub enum Hydrated {
    /// A new commit on the branch.
    Committed {
        /// The new tip.
        commit: Oid,
        /// Manifest files added, changed or removed.
        files_changed: usize,
        /// Whether the branch was created.
        created: bool,
    },
    /// The manifests equal the branch's tip: no commit, only a note on
    /// the tip naming the new dry commit.
    Unchanged {
        /// The tip, unmoved.
        commit: Oid,
    },
}

/// Why a hydration made no commit; the branch is where it was.
#[derive(Debug)]
pub struct Refusal {
    /// What is wrong.
    pub why: String,
    /// What to do about it.
    pub help: &'static str,
}

impl From<String> for Refusal {
    /// A Git error: nothing to suggest beyond what it says.
    fn from(why: String) -> Self {
        Refusal {
            why,
            help: "the branch was left where it was; fix what the message names and run again",
        }
    }
}

/// Commits `h` onto its branch, or notes the tip when the manifests are
/// unchanged. The branch moves only if nobody moved it meanwhile.
pub fn hydrate(repo: &Repository, h: &Hydration<'_>) -> Result<Hydrated, Refusal> {
    let refname = format!("refs/heads/{}", h.target.branch);
    let tip = match repo.find_reference(&refname) {
        Ok(r) => Some(r.peel_to_commit().map_err(|e| {
            format!(
                "{} does not point to a commit: {}",
                h.target.branch,
                e.message()
            )
        })?),
        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
        Err(e) => return Err(e.message().to_owned().into()),
    };
    if checked_out(repo, &refname) {
        return Err(Refusal {
            why: format!(
                "{} is checked out in a work tree of this repository; hydrating it would change files under your feet",
                h.target.branch
            ),
            help: "hydrate to a branch of its own (--to, or settings.hydrate), or check out another branch",
        });
    }
    let root = match &tip {
        Some(c) => Some(c.tree().map_err(|e| e.message().to_owned())?),
        None => None,
    };
    if let Some(root) = &root {
        let dry = std::path::Path::new(&h.dry_prefix).join(crate::repo::layout::CONTROLCENTER_FILE);
        if root.get_path(&dry).is_ok()
            || root
                .get_name(crate::repo::layout::CONTROLCENTER_FILE)
                .is_some()
        {
            return Err(Refusal {
                why: format!(
                    "{} holds a control-center repository (a controlcenter.yaml)",
                    h.target.branch
                ),
                help: "hydrated manifests go to a branch of their own: pick another --to",
            });
        }
    }
    let old_dir = match &root {
        Some(t) => subtree(repo, t, &h.target.path)?,
        None => None,
    };
    let old = match &old_dir {
        Some(t) => owned_manifests(repo, t),
        None => BTreeMap::new(),
    };
    let new: BTreeMap<&str, Oid> = h
        .manifests
        .iter()
        .map(|(path, bytes)| {
            Oid::hash_object(ObjectType::Blob, bytes)
                .map(|id| (path.as_str(), id))
                .map_err(|e| e.message().to_owned())
        })
        .collect::<Result<_, _>>()?;
    let files_changed = old
        .iter()
        .filter(|(p, id)| new.get(p.as_str()) != Some(id))
        .count()
        + new.keys().filter(|p| !old.contains_key(**p)).count();

    let note = String::from_utf8_lossy(&h.metadata.to_bytes()).into_owned();
    if let (Some(tip), 0) = (&tip, files_changed) {
        add_note(repo, h, tip.id(), &note)?;
        return Ok(Hydrated::Unchanged { commit: tip.id() });
    }

    // New objects are collected in memory and stored as one pack: a
    // loose file per object would cost more than rendering them.
    let err = |e: git2::Error| e.message().to_owned();
    let staging = Repository::open(repo.path()).map_err(err)?;
    let odb = staging.odb().map_err(err)?;
    let mempack = odb.add_new_mempack_backend(1_000).map_err(err)?;
    // Only what changed is written; the object database keeps the rest.
    let mut by_dir: BTreeMap<&str, Vec<(&str, Oid)>> = BTreeMap::new();
    for (path, bytes) in &h.manifests {
        let id = if old.get(path) == new.get(path.as_str()) {
            new[path.as_str()]
        } else {
            staging.blob(bytes).map_err(err)?
        };
        let (dir, file) = path
            .split_once('/')
            .ok_or_else(|| format!("{path} is not <dir>/<file>"))?;
        by_dir.entry(dir).or_default().push((file, id));
    }
    let old_dir = old_dir
        .map(|t| staging.find_tree(t.id()))
        .transpose()
        .map_err(err)?;
    let root = root
        .map(|t| staging.find_tree(t.id()))
        .transpose()
        .map_err(err)?;
    let dir = write_dir(&staging, old_dir.as_ref(), &by_dir, h)?;
    let tree_id = graft(&staging, root.as_ref(), &components(&h.target.path), dir)?;
    let tree = staging.find_tree(tree_id).map_err(err)?;
    let parent = tip
        .as_ref()
        .map(|t| staging.find_commit(t.id()))
        .transpose()
        .map_err(err)?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let commit = staging
        .commit(None, &h.author, &h.committer, &h.message, &tree, &parents)
        .map_err(err)?;
    let mut pack = git2::Buf::new();
    mempack.dump(&staging, &mut pack).map_err(err)?;
    let repo_odb = repo.odb().map_err(err)?;
    let mut writer = repo_odb.packwriter().map_err(err)?;
    std::io::Write::write_all(&mut writer, &pack).map_err(|e| e.to_string())?;
    writer.commit().map_err(err)?;
    let log = format!("controlcenter hydrate: {}", h.metadata.dry.sha);
    // Compare-and-swap: a concurrent hydration or push that moved (or
    // made) the branch makes this one fail instead of dropping the other's
    // commit.
    compare_and_swap(
        repo,
        &refname,
        tip.as_ref().map(git2::Commit::id),
        commit,
        &log,
    )
    .map_err(|not| match not {
        RefNotMoved::Moved(why) => Refusal {
            why: format!("{} moved while hydrating ({why})", h.target.branch),
            help: "another hydration or a fetch updated the branch meanwhile; run again",
        },
        RefNotMoved::Failed(why) => {
            Refusal::from(format!("cannot move {}: {why}", h.target.branch))
        }
    })?;
    add_note(repo, h, commit, &note)?;
    Ok(Hydrated::Committed {
        commit,
        files_changed,
        created: tip.is_none(),
    })
}

/// Whether a work tree of the repository (the main one or any `git
/// worktree`) has `refname` checked out.
fn checked_out(repo: &Repository, refname: &str) -> bool {
    let has = |r: &Repository| {
        !r.is_bare()
            && r.head()
                .ok()
                .is_some_and(|h| h.is_branch() && h.name().ok() == Some(refname))
    };
    let main = Repository::open(repo.commondir()).ok();
    let linked: Vec<Repository> = main
        .as_ref()
        .and_then(|m| m.worktrees().ok())
        .map(|names| {
            names
                .iter()
                .flatten()
                .flatten()
                .filter_map(|n| main.as_ref()?.find_worktree(n).ok())
                .filter_map(|wt| Repository::open_from_worktree(&wt).ok())
                .collect()
        })
        .unwrap_or_default();
    has(repo) || main.iter().chain(&linked).any(has)
}

/// Why a ref was not moved.
#[derive(Debug)]
enum RefNotMoved {
    /// It is not where it was read, or another process holds its lock:
    /// worth reading it again.
    Moved(String),
    /// Anything else (permissions, a damaged repository).
    Failed(String),
}

/// Moves `refname` to `new` if it is still at `expected` (`None`: if it
/// does not exist), holding the ref's lock from the check to the move.
/// Every Git writer takes that lock, so a branch another process made or
/// moved in between is seen, not overwritten (creating a ref "if absent"
/// checks before it locks).
fn compare_and_swap(
    repo: &Repository,
    refname: &str,
    expected: Option<Oid>,
    new: Oid,
    log: &str,
) -> Result<(), RefNotMoved> {
    let failed = |e: git2::Error| RefNotMoved::Failed(e.message().to_owned());
    let mut locked = repo.transaction().map_err(failed)?;
    locked.lock_ref(refname).map_err(|e| match e.code() {
        git2::ErrorCode::Locked => RefNotMoved::Moved(e.message().to_owned()),
        _ => failed(e),
    })?;
    let now = match repo.find_reference(refname) {
        Ok(r) => r.target(),
        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
        Err(e) => return Err(failed(e)),
    };
    if now != expected {
        return Err(RefNotMoved::Moved(match now {
            Some(at) => format!("it is at {at} now"),
            None => "it was deleted".to_owned(),
        }));
    }
    locked.set_target(refname, new, None, log).map_err(failed)?;
    locked.commit().map_err(failed)
}

/// Attaches `note` to `on` under [`NOTES_REF`]. The notes ref moves by
/// compare-and-swap and the write is retried when another process moved
/// it meanwhile, so concurrent hydrations never drop each other's notes.
fn add_note(repo: &Repository, h: &Hydration<'_>, on: Oid, note: &str) -> Result<(), Refusal> {
    let err = |e: git2::Error| Refusal::from(format!("cannot write the note: {}", e.message()));
    let hex = on.to_string();
    for attempt in 0..50 {
        let tip = match repo.find_reference(NOTES_REF) {
            Ok(r) => Some(r.peel_to_commit().map_err(err)?),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(err(e)),
        };
        let tree = tip
            .as_ref()
            .map(git2::Commit::tree)
            .transpose()
            .map_err(err)?;
        let blob = repo.blob(note.as_bytes()).map_err(err)?;
        if let Some(t) = &tree {
            if t.get_name(&hex).is_some_and(|e| e.id() == blob) {
                return Ok(());
            }
        }
        let mut b = repo.treebuilder(tree.as_ref()).map_err(err)?;
        // git writes `ab/cdef…` once a notes tree grows: drop that form too.
        let (fan, rest) = hex.split_at(2);
        if let Some(sub) = tree
            .as_ref()
            .and_then(|t| t.get_name(fan))
            .filter(|e| e.kind() == Some(ObjectType::Tree))
        {
            let sub = repo.find_tree(sub.id()).map_err(err)?;
            if sub.get_name(rest).is_some() {
                let mut sb = repo.treebuilder(Some(&sub)).map_err(err)?;
                sb.remove(rest).map_err(err)?;
                if sb.len() == 0 {
                    b.remove(fan).map_err(err)?;
                } else {
                    let id = sb.write().map_err(err)?;
                    b.insert(fan, id, TREE_MODE).map_err(err)?;
                }
            }
        }
        b.insert(&hex, blob, BLOB_MODE).map_err(err)?;
        let new_tree = repo.find_tree(b.write().map_err(err)?).map_err(err)?;
        let parents: Vec<&git2::Commit<'_>> = tip.iter().collect();
        let commit = repo
            .commit(
                None,
                &h.committer,
                &h.committer,
                "Notes added by 'controlcenter hydrate'\n",
                &new_tree,
                &parents,
            )
            .map_err(err)?;
        let moved = compare_and_swap(
            repo,
            NOTES_REF,
            tip.as_ref().map(git2::Commit::id),
            commit,
            "controlcenter hydrate: note",
        );
        match moved {
            Ok(()) => return Ok(()),
            // Someone else moved the notes ref (or holds its lock): again.
            Err(RefNotMoved::Moved(_)) => {
                std::thread::sleep(std::time::Duration::from_millis(5 + 3 * attempt));
            }
            Err(RefNotMoved::Failed(why)) => {
                return Err(Refusal::from(format!("cannot write the note: {why}")));
            }
        }
    }
    Err(Refusal {
        why: format!("{NOTES_REF} kept moving; the note on {hex} was not written"),
        help: "other processes are writing notes; run again (a no-op hydration only adds the note)",
    })
}

/// The tree at `path` of `root`, if there is one; an error when a file
/// stands where a directory of the path should be.
fn subtree<'r>(
    repo: &'r Repository,
    root: &Tree<'r>,
    path: &str,
) -> Result<Option<Tree<'r>>, String> {
    if path.is_empty() {
        return Ok(Some(root.clone()));
    }
    match root.get_path(std::path::Path::new(path)) {
        Ok(entry) if entry.kind() == Some(ObjectType::Tree) => repo
            .find_tree(entry.id())
            .map(Some)
            .map_err(|e| e.message().to_owned()),
        Ok(_) => Err(format!("{path} is a file on the branch, not a directory")),
        Err(_) => {
            // Any part of the path that is a file blocks it as well.
            let mut prefix = String::new();
            for c in components(path) {
                prefix = if prefix.is_empty() {
                    c.to_owned()
                } else {
                    format!("{prefix}/{c}")
                };
                if let Ok(e) = root.get_path(std::path::Path::new(&prefix)) {
                    if e.kind() != Some(ObjectType::Tree) {
                        return Err(format!("{prefix} is a file on the branch, not a directory"));
                    }
                }
            }
            Ok(None)
        }
    }
}

fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

/// Whether a top-level directory of the path holds manifests hydration owns.
fn owned_dir(name: &str) -> bool {
    !name.starts_with('.')
}

/// Whether a file in such a directory is a manifest hydration owns.
fn owned_file(name: &str) -> bool {
    name.ends_with(".yaml")
}

/// `<dir>/<file>` → blob of the manifests a previous hydration left in `dir`.
fn owned_manifests(repo: &Repository, dir: &Tree<'_>) -> BTreeMap<String, Oid> {
    let mut out = BTreeMap::new();
    for e in dir.iter() {
        let Some(name) = e.name().ok().filter(|n| owned_dir(n)) else {
            continue;
        };
        if e.kind() != Some(ObjectType::Tree) {
            continue;
        }
        let Ok(sub) = repo.find_tree(e.id()) else {
            continue;
        };
        for f in sub.iter() {
            if let (Some(file), Some(ObjectType::Blob)) = (f.name().ok(), f.kind()) {
                if owned_file(file) {
                    out.insert(format!("{name}/{file}"), f.id());
                }
            }
        }
    }
    out
}

/// The new tree of the hydrated path: what was there minus what hydration
/// owns, plus the new manifests, metadata and README.
fn write_dir(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    by_dir: &BTreeMap<&str, Vec<(&str, Oid)>>,
    h: &Hydration<'_>,
) -> Result<Oid, Refusal> {
    let err = |e: git2::Error| Refusal::from(e.message().to_owned());
    let mut top = repo.treebuilder(old).map_err(err)?;
    let mut dirs: BTreeMap<String, Option<Tree<'_>>> = BTreeMap::new();
    if let Some(old) = old {
        for e in old.iter() {
            let Some(name) = e.name().ok() else { continue };
            if e.kind() == Some(ObjectType::Tree) && owned_dir(name) {
                dirs.insert(name.to_owned(), repo.find_tree(e.id()).ok());
            }
        }
    }
    // Never replace an entry hydration does not own: a file where a
    // manifest directory goes, a directory where a manifest or the
    // metadata goes.
    let foreign = |what: String| Refusal {
        why: format!("{what} on the branch is not hydration's to replace"),
        help: "move it away on the branch, or hydrate to another --path",
    };
    for dir in by_dir.keys() {
        if let Some(e) = old.and_then(|t| t.get_name(dir)) {
            if e.kind() != Some(ObjectType::Tree) {
                return Err(foreign(format!(
                    "the file {dir}, where a manifest directory goes,"
                )));
            }
        }
        dirs.entry((*dir).to_owned()).or_insert(None);
    }
    for file in [METADATA_FILE, README_FILE] {
        if let Some(e) = old.and_then(|t| t.get_name(file)) {
            if e.kind() != Some(ObjectType::Blob) || e.filemode() == 0o120_000 {
                return Err(foreign(format!("{file}, not a regular file,")));
            }
        }
    }
    for (name, old_sub) in &dirs {
        let mut b = repo.treebuilder(old_sub.as_ref()).map_err(err)?;
        if let Some(old_sub) = old_sub {
            for f in old_sub.iter() {
                if let (Some(file), Some(ObjectType::Blob)) = (f.name().ok(), f.kind()) {
                    if owned_file(file) {
                        b.remove(file).map_err(err)?;
                    }
                }
            }
        }
        for (file, id) in by_dir.get(name.as_str()).into_iter().flatten() {
            if let Some(e) = old_sub.as_ref().and_then(|t| t.get_name(file)) {
                if e.kind() != Some(ObjectType::Blob) {
                    return Err(foreign(format!("the directory {name}/{file}")));
                }
            }
            b.insert(file, *id, BLOB_MODE).map_err(err)?;
        }
        if b.len() == 0 {
            if top.get(name).map_err(err)?.is_some() {
                top.remove(name).map_err(err)?;
            }
        } else {
            let id = b.write().map_err(err)?;
            top.insert(name, id, TREE_MODE).map_err(err)?;
        }
    }
    let metadata = repo.blob(&h.metadata.to_bytes()).map_err(err)?;
    top.insert(METADATA_FILE, metadata, BLOB_MODE)
        .map_err(err)?;
    let readme = repo.blob(h.readme.as_bytes()).map_err(err)?;
    top.insert(README_FILE, readme, BLOB_MODE).map_err(err)?;
    top.write().map_err(err)
}

/// `root` with the tree at `path` replaced by `leaf`, intermediate
/// directories created.
fn graft(
    repo: &Repository,
    root: Option<&Tree<'_>>,
    path: &[&str],
    leaf: Oid,
) -> Result<Oid, String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(leaf);
    };
    let err = |e: git2::Error| e.message().to_owned();
    let child = match root.and_then(|t| t.get_name(first)) {
        Some(e) if e.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(e.id()).map_err(err)?),
        _ => None,
    };
    let id = graft(repo, child.as_ref(), rest, leaf)?;
    let mut b = repo.treebuilder(root).map_err(err)?;
    b.insert(first, id, TREE_MODE).map_err(err)?;
    b.write().map_err(err)
}

/// A Git time as RFC 3339 (`2023-11-14T22:13:20+01:00`, `Z` for UTC).
pub fn rfc3339(t: git2::Time) -> String {
    let offset = i64::from(t.offset_minutes());
    let local = t.seconds() + offset * 60;
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let zone = if offset == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60)
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{zone}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A remote URL as `repoURL`, without credentials
/// (`https://user:token@host/x` → `https://host/x`; scp-like `git@host:x`
/// kept). `None` for a path on this machine (`/srv/cc`, `../cc`,
/// `file:///srv/cc`): it means nothing elsewhere, and would make the
/// hydrated tree differ from one machine to the next.
pub fn public_url(url: &str) -> Option<String> {
    match url.split_once("://") {
        Some(("file", _)) => None,
        _ if url.chars().any(|c| c.is_control() || c.is_whitespace()) => None,
        Some((scheme, rest)) => {
            // A query or fragment can carry a token: never kept.
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            Some(format!("{scheme}://{host}{path}"))
        }
        // scp-like `[user@]host:path`: a colon before any slash.
        None if url
            .find(':')
            .is_some_and(|c| !url[..c].contains('/') && c > 1) =>
        {
            Some(url.to_owned())
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_moves_only_from_where_it_was_read_and_one_of_racing_creators_wins() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let sig = git2::Signature::new("t", "t@example.com", &git2::Time::new(0, 0)).unwrap();
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let commit = |message: &str| repo.commit(None, &sig, &sig, message, &tree, &[]).unwrap();
        let (a, b, c) = (commit("a"), commit("b"), commit("c"));
        let branch = "refs/heads/hydrated";
        compare_and_swap(&repo, branch, None, a, "t").unwrap();
        // Made meanwhile: not made again over it.
        assert!(compare_and_swap(&repo, branch, None, b, "t").is_err());
        compare_and_swap(&repo, branch, Some(a), b, "t").unwrap();
        assert!(compare_and_swap(&repo, branch, Some(a), c, "t").is_err());
        assert_eq!(repo.refname_to_id(branch).unwrap(), b);

        // Processes (threads here, each with its own handle) creating the
        // same branch at once: exactly one does.
        let racing = "refs/heads/raced";
        let made: Vec<Oid> = (0..8).map(|i| commit(&format!("racer {i}"))).collect();
        let won: usize = std::thread::scope(|s| {
            let runs: Vec<_> = made
                .iter()
                .map(|&own| {
                    let path = dir.path().to_path_buf();
                    s.spawn(move || {
                        let repo = Repository::open(path).unwrap();
                        compare_and_swap(&repo, racing, None, own, "t").is_ok()
                    })
                })
                .collect();
            runs.into_iter()
                .map(|r| usize::from(r.join().unwrap()))
                .sum()
        });
        assert_eq!(won, 1);
        assert!(made.contains(&repo.refname_to_id(racing).unwrap()));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(git2::Time::new(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(git2::Time::new(1_700_000_000, 60)),
            "2023-11-14T23:13:20+01:00"
        );
        assert_eq!(
            rfc3339(git2::Time::new(951_782_400, -330)),
            "2000-02-28T18:30:00-05:30"
        );
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            public_url("https://x-access-token:ghs_abc@github.com/acme/cc.git").as_deref(),
            Some("https://github.com/acme/cc.git")
        );
        assert_eq!(
            public_url("git@github.com:acme/cc.git").as_deref(),
            Some("git@github.com:acme/cc.git")
        );
        assert_eq!(public_url("file:///srv/cc"), None);
        assert_eq!(
            public_url("https://h/x.git?access_token=s3cr3t#frag").as_deref(),
            Some("https://h/x.git")
        );
        assert_eq!(public_url("https://h/x\n```"), None);
        assert_eq!(public_url("/tmp/cc"), None);
        assert_eq!(public_url("../cc"), None);
        assert_eq!(public_url("C:/work/cc"), None);
    }

    #[test]
    fn targets_are_checked() {
        assert_eq!(Target::new("environment/dev", ".").unwrap().path, "");
        assert_eq!(
            Target::new("refs/heads/x", "a/./b/").unwrap(),
            Target {
                branch: "x".into(),
                path: "a/b".into()
            }
        );
        assert!(Target::new("bad..name", ".").is_err());
        assert!(Target::new("x", "../up").is_err());
        assert!(Target::new("x", "/abs").is_err());
        assert!(Target::new("x", "a/.git/b").is_err());
        let t = |b: &str, p: &str| Target::new(b, p).unwrap();
        assert!(t("x", ".").overlaps(&t("x", "prod")));
        assert!(t("x", "apps/prod").overlaps(&t("x", "apps")));
        assert!(!t("x", "apps/prod").overlaps(&t("x", "apps/production")));
        assert!(!t("x", ".").overlaps(&t("y", ".")));
        for bad in ["HEAD", "-x", "refs/tags/v1", "a b", "a..b"] {
            assert!(Target::new(bad, ".").is_err(), "{bad}");
        }
    }
}
