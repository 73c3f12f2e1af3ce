//! `--out-dir`: one file per resource, `<namespace>/<kind>-<name>.yaml`
//! (`_cluster/` for objects without a namespace). The directory is built
//! beside the target and swapped in with renames, so readers see the old
//! tree or the new one, never a mix; stale files disappear with the old
//! tree. A directory that controlcenter did not write is never replaced.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::yaml_document;
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::process::Resource;

/// The longest file name most file systems accept, in bytes.
const MAX_FILE_NAME_BYTES: usize = 255;

/// Marker file that says a directory is controlcenter's output.
pub const MARKER: &str = ".controlcenter-out";

/// Held while a staging directory exists: the interrupt handler waits on
/// it, so the directory is gone before the process exits.
static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Set by the interrupt handler; the writer stops at the next file.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called from the Ctrl-C / SIGTERM handler: asks a write in progress to
/// stop and waits until it has removed its staging directory.
pub fn interrupt_and_wait() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let _done = WRITING.lock();
}

/// Whether an interrupt stopped the write.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// The file a resource is written to, relative to the output directory.
pub fn file_name(r: &Resource) -> String {
    let ns = if r.id.namespace.is_empty() {
        "_cluster"
    } else {
        &r.id.namespace
    };
    format!("{ns}/{}-{}.yaml", r.id.kind.to_ascii_lowercase(), r.id.name)
}

/// Writes `resources` into `dir`, replacing its previous content
/// atomically. `origin` is where the resources came from (the template
/// entry point), to locate a file-name collision.
pub fn write(dir: &Path, resources: &[Resource], origin: Option<Span>) -> Result<(), Diagnostic> {
    let files = files(resources, origin)?;
    if dir.exists() && !is_ours(dir) {
        return Err(fail(
            dir,
            "it exists and was not written by controlcenter (no .controlcenter-out marker), so it will not be replaced",
        )
        .help("point --out-dir at a new or empty directory, or one controlcenter wrote before"));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| fail(dir, &e.to_string()))?;
    // Held until the staging directory is gone (dropped before this guard).
    let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let base = dir
        .file_name()
        .map_or_else(|| "out".to_owned(), |n| n.to_string_lossy().into_owned());
    // Dropped (and deleted) on any error: no half-written tree stays behind.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{base}.new-"))
        .tempdir_in(&parent)
        .map_err(|e| fail(dir, &e.to_string()))?;
    for (name, r) in &files {
        if interrupted() {
            return Err(fail(dir, "interrupted"));
        }
        let path = staging.path().join(name);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).map_err(|e| fail(dir, &e.to_string()))?;
        }
        write_file(&path, yaml_document(r).as_bytes()).map_err(|e| fail(dir, &e.to_string()))?;
    }
    write_file(&staging.path().join(MARKER), b"").map_err(|e| fail(dir, &e.to_string()))?;

    // Swap: old → backup, new → dir, drop backup. Restore on failure.
    let backup = if dir.exists() {
        let b = tempfile::Builder::new()
            .prefix(&format!(".{base}.old-"))
            .tempdir_in(&parent)
            .map_err(|e| fail(dir, &e.to_string()))?
            .keep();
        fs::remove_dir(&b).map_err(|e| fail(dir, &e.to_string()))?;
        fs::rename(dir, &b).map_err(|e| fail(dir, &e.to_string()))?;
        Some(b)
    } else {
        None
    };
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, dir) {
        let _ = fs::remove_dir_all(&staged);
        if let Some(b) = &backup {
            let _ = fs::rename(b, dir);
        }
        return Err(fail(dir, &e.to_string()));
    }
    if let Some(b) = backup {
        let _ = fs::remove_dir_all(b);
    }
    Ok(())
}

/// The file of each resource, by file name; refuses collisions and any
/// name that is not two plain path components. `origin` locates a
/// collision (the template entry point).
pub fn files(
    resources: &[Resource],
    origin: Option<Span>,
) -> Result<BTreeMap<String, &Resource>, Diagnostic> {
    let mut files: BTreeMap<String, &Resource> = BTreeMap::new();
    for r in resources {
        let name = file_name(r);
        // Identities are validated in post-processing; never trust that
        // here: a file name is two plain components or nothing is written.
        let components: Vec<_> = Path::new(&name).components().collect();
        let plain = components.len() == 2
            && components
                .iter()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
            && name.split('/').count() == 2;
        // Most file systems (and so every checkout of a hydrated branch)
        // refuse a file name over 255 bytes.
        if name.split('/').any(|c| c.len() > MAX_FILE_NAME_BYTES) {
            return Err(Diagnostic::error(
                Code::OutputFailed,
                format!(
                    "{}: its file name would be longer than {MAX_FILE_NAME_BYTES} bytes",
                    r.id.display()
                ),
            )
            .help("shorten the object's name"));
        }
        if !plain {
            return Err(Diagnostic::error(
                Code::OutputFailed,
                format!("{} would be written outside its directory", r.id.display()),
            ));
        }
        if let Some(other) = files.insert(name.clone(), r) {
            let mut d = Diagnostic::error(
                Code::OutputCollision,
                format!(
                    "{} ({}) and {} ({}) would both be written to {name}",
                    other.id.display(),
                    other.id.api_version,
                    r.id.display(),
                    r.id.api_version
                ),
            )
            .help("they differ only by API group; rename one of them");
            if let Some(span) = origin {
                d = d.at(span, "rendered by this template");
            }
            return Err(d);
        }
    }
    Ok(files)
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // No fsync per file: the output is regenerable; the rename is what
    // makes the new tree appear at once.
    fs::File::create(path)?.write_all(bytes)
}

fn is_ours(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
        || fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

fn fail(dir: &Path, why: &str) -> Diagnostic {
    Diagnostic::error(
        Code::OutputFailed,
        format!("cannot write {}: {why}", dir.display()),
    )
}
