//! The import sandbox: Jsonnet can read only files under its roots (the
//! repository, the library, `-J` directories of `eval`). Paths are resolved
//! lexically against a root and read through [`RepoFiles`], which also
//! refuses symlinks that lead out, so absolute paths, `..` escapes and
//! escaping symlinks are all refused with an error naming the import.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use jrsonnet_evaluator::{bail, error::ErrorKind, AsPathLike, ImportResolver, ResolvePath, Result};
use jrsonnet_gcmodule::trace_acyclic;
use jrsonnet_ir::{SourceFifo, SourcePath, SourcePathT};

use crate::redact::SecretValues;
use crate::repo::layout::is_input_file;
use crate::repo::{normalize, ReadError, RepoFiles};

/// Prefix of messages for refused imports (mapped to `CC0402`).
pub const DENIED: &str = "import denied: ";

/// A directory tree Jsonnet may read, and how its paths are displayed.
#[derive(Clone)]
pub struct Root {
    /// Display prefix (`""` for the repository, `"<lib>/"` for the library).
    pub label: String,
    /// Its files.
    pub files: Arc<dyn RepoFiles>,
    /// A control-center repository: its input files cannot be imported,
    /// even under their own names; templates receive them through the
    /// state. (Every tree is also read through a
    /// [`crate::repo::guard::Guarded`], which refuses their bytes under
    /// any other name.)
    pub hides_inputs: bool,
}

/// A file inside one of the sandbox roots.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SandboxPath {
    /// Index into the sandbox roots.
    pub root: usize,
    /// Normalized path relative to that root.
    pub rel: String,
    /// How users see it.
    pub display: String,
}
trace_acyclic!(SandboxPath);

impl fmt::Display for SandboxPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl SourcePathT for SandboxPath {
    fn is_default(&self) -> bool {
        false
    }
    fn path(&self) -> Option<&Path> {
        None
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn dyn_hash(&self, mut hasher: &mut dyn std::hash::Hasher) {
        std::hash::Hash::hash(self, &mut hasher);
    }
    fn dyn_eq(&self, other: &dyn SourcePathT) -> bool {
        other.as_any().downcast_ref::<Self>() == Some(self)
    }
    fn dyn_debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why an import failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFailure {
    /// Outside the sandbox, or an input file.
    Denied,
    /// Nowhere on the search path.
    NotFound,
    /// Found but not usable (too large, not UTF-8, unreadable).
    Unreadable,
    /// Nested deeper than the parser can take.
    TooDeep,
}

/// Deepest nesting of brackets, or longest run of prefix operators, a
/// Jsonnet file may have: the parser recurses on each level, and real
/// templates stay far below this.
pub const MAX_SOURCE_NESTING: usize = 1000;

/// Where `code` first nests deeper than [`MAX_SOURCE_NESTING`] (brackets
/// or a run of `-`, `+`, `!`, `~`), outside strings and comments.
pub fn too_deep(code: &str) -> Option<(usize, &'static str)> {
    let bytes = code.as_bytes();
    let (mut depth, mut run, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        let c = bytes[i];
        let rest = &bytes[i..];
        // Skip comments and strings whole.
        let skip_to = |end: &[u8], from: usize| {
            bytes[from..]
                .windows(end.len())
                .position(|w| w == end)
                .map_or(bytes.len(), |p| from + p + end.len())
        };
        let quoted = |q: u8, from: usize, escapes: bool| {
            let mut j = from;
            while j < bytes.len() {
                if escapes && bytes[j] == b'\\' {
                    j += 2;
                    continue;
                }
                if bytes[j] == q {
                    return j + 1;
                }
                j += 1;
            }
            bytes.len()
        };
        let next = match c {
            b'#' => Some(skip_to(b"\n", i)),
            b'/' if rest.starts_with(b"//") => Some(skip_to(b"\n", i)),
            b'/' if rest.starts_with(b"/*") => Some(skip_to(b"*/", i + 2)),
            b'|' if rest.starts_with(b"|||") => Some(skip_to(b"|||", i + 3)),
            b'@' if matches!(rest.get(1), Some(b'\'' | b'"')) => {
                Some(quoted(rest[1], i + 2, false))
            }
            b'\'' | b'"' => Some(quoted(c, i + 1, true)),
            _ => None,
        };
        if let Some(n) = next {
            run = 0;
            i = n;
            continue;
        }
        match c {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_SOURCE_NESTING {
                    return Some((i, "brackets"));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if matches!(c, b'-' | b'+' | b'!' | b'~') {
            run += 1;
            if run > MAX_SOURCE_NESTING {
                return Some((i, "prefix operators"));
            }
        } else if !c.is_ascii_whitespace() {
            run = 0;
        }
        i += 1;
    }
    None
}

/// A failed import. jrsonnet reports these without a location (and a lazy
/// field that imported it later reads as "infinite recursion"), so the
/// sandbox remembers the first one: what and where.
#[derive(Clone, Debug)]
pub struct FailedImport {
    /// Why.
    pub failure: ImportFailure,
    /// The message, naming the import.
    pub message: String,
    /// Display path of the file to point at (the importer, or the file
    /// that cannot be decoded).
    pub file: String,
    /// That file's text.
    pub code: Arc<str>,
    /// Byte range to point at.
    pub span: (usize, usize),
    /// Extra lines (the places searched).
    pub notes: Vec<String>,
}

/// Shared slot for the first failed import of an evaluation.
pub type FailedImportSlot = Rc<RefCell<Option<FailedImport>>>;

/// Every Jsonnet file an evaluation loaded: display path and text.
pub type LoadedFiles = Rc<RefCell<Vec<(String, Arc<str>)>>>;

/// Display paths an import looked for and did not find before the file it
/// found: a file created there later changes what the import means.
pub type ProbedFiles = Rc<RefCell<Vec<String>>>;

/// Files read that are not UTF-8, by display path: fine for `importbin`;
/// `import` and `importstr` of one fail, and this says where it breaks.
pub type UndecodableFiles = Rc<RefCell<HashMap<String, FailedImport>>>;

/// The confined import resolver.
pub struct Sandbox {
    roots: Vec<Root>,
    /// Search path: (root, directory) pairs tried after the importing file's directory.
    jpaths: Vec<(usize, String)>,
    /// Contents read while resolving, handed to the evaluator once.
    cache: RefCell<HashMap<(usize, String), Vec<u8>>>,
    /// The first failed import.
    failed: FailedImportSlot,
    /// What was loaded, for locating values in templates afterwards.
    loaded: LoadedFiles,
    /// Where imports looked in vain before finding their file.
    probed: ProbedFiles,
    /// What was read that is not UTF-8.
    undecodable: UndecodableFiles,
    /// Secret values of the run: no Jsonnet file may hold one.
    secrets: SecretValues,
}

/// Secrets shorter than this are not searched for in Jsonnet files: a
/// short value is likely to be written there for other reasons.
const MIN_SECRET_IN_SOURCE: usize = 12;
trace_acyclic!(Sandbox);

impl Sandbox {
    /// A sandbox over `roots`, searching `jpaths` in order; the first
    /// failed import is recorded in `failed`.
    pub fn new(
        roots: Vec<Root>,
        jpaths: Vec<(usize, String)>,
        failed: FailedImportSlot,
        (loaded, probed): (LoadedFiles, ProbedFiles),
        undecodable: UndecodableFiles,
        secrets: SecretValues,
    ) -> Self {
        Sandbox {
            roots,
            jpaths,
            cache: RefCell::new(HashMap::new()),
            failed,
            loaded,
            probed,
            undecodable,
            secrets,
        }
    }

    /// Records the first failed import, pointing at its literal in the
    /// importing file.
    fn record(
        &self,
        from: &SourcePath,
        import: &str,
        failure: ImportFailure,
        message: &str,
        notes: Vec<String>,
    ) {
        if self.failed.borrow().is_some() {
            return;
        }
        let (file, code) = match from.downcast_ref::<SandboxPath>() {
            Some(from) => (
                from.display.clone(),
                self.roots[from.root]
                    .files
                    .read(&from.rel)
                    .ok()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
            ),
            None => (from.to_string(), String::new()),
        };
        let span = find_import_literal(&code, import);
        *self.failed.borrow_mut() = Some(FailedImport {
            failure,
            message: message.to_owned(),
            file,
            code: code.into(),
            span,
            notes,
        });
    }

    fn deny(&self, from: &SourcePath, import: &str, why: String) -> jrsonnet_evaluator::Error {
        let message = format!("{DENIED}{why}");
        self.record(from, import, ImportFailure::Denied, &message, Vec::new());
        ErrorKind::RuntimeError(message.into()).into()
    }

    /// Refuses a file that holds a secret value or nests deeper than the
    /// parser can take. One that is not UTF-8 is passed on for `importbin`,
    /// its first bad byte noted for the error `import` would raise.
    fn check_source(&self, path: &SandboxPath, bytes: Vec<u8>) -> Result<Vec<u8>> {
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(e) => {
                let lossy = String::from_utf8_lossy(&bytes);
                if let Some(at) = self.secrets.position_in(&lossy, MIN_SECRET_IN_SOURCE) {
                    return Err(self.refuse_secret(path, &bytes, at));
                }
                let at = e.valid_up_to();
                self.undecodable.borrow_mut().insert(
                    path.display.clone(),
                    FailedImport {
                        failure: ImportFailure::Unreadable,
                        message: format!("{} is not valid UTF-8 (byte {at})", path.display),
                        file: path.display.clone(),
                        code: lossy.into_owned().into(),
                        span: (at, at + 1),
                        notes: Vec::new(),
                    },
                );
                return Ok(bytes);
            }
        };
        if let Some(at) = self.secrets.position_in(text, MIN_SECRET_IN_SOURCE) {
            return Err(self.refuse_secret(path, &bytes, at));
        }
        if let Some((at, what)) = too_deep(text) {
            let message = format!(
                "{} nests {what} deeper than {MAX_SOURCE_NESTING} levels",
                path.display
            );
            return Err(self.refuse_file(
                path,
                &bytes,
                ImportFailure::TooDeep,
                message,
                (at, at + 1),
            ));
        }
        self.loaded
            .borrow_mut()
            .push((path.display.clone(), text.into()));
        Ok(bytes)
    }

    /// Refuses a file holding a secret value at byte `at`: a copy of an
    /// input (or a secret pasted into a template) would put the secret
    /// into a manifest.
    fn refuse_secret(
        &self,
        path: &SandboxPath,
        bytes: &[u8],
        at: usize,
    ) -> jrsonnet_evaluator::Error {
        let message = format!(
            "{DENIED}{} holds the value of a secret (a sensitive Terraform output, a secrets.yaml value or a writeOnly field); templates receive secrets through the state only",
            path.display
        );
        self.refuse_file(path, bytes, ImportFailure::Denied, message, (at, at))
    }

    /// Records (if it is the first) and returns the refusal of a file,
    /// pointing at `span` in it.
    fn refuse_file(
        &self,
        path: &SandboxPath,
        bytes: &[u8],
        failure: ImportFailure,
        message: String,
        span: (usize, usize),
    ) -> jrsonnet_evaluator::Error {
        if self.failed.borrow().is_none() {
            *self.failed.borrow_mut() = Some(FailedImport {
                failure,
                message: message.clone(),
                file: path.display.clone(),
                code: String::from_utf8_lossy(bytes).into_owned().into(),
                span,
                notes: Vec::new(),
            });
        }
        ErrorKind::RuntimeError(message.into()).into()
    }

    /// The source path of `rel` in `root`.
    pub fn path(&self, root: usize, rel: &str) -> SandboxPath {
        SandboxPath {
            root,
            rel: rel.to_owned(),
            display: format!("{}{}", self.roots[root].label, rel),
        }
    }

    fn try_file(
        &self,
        from: &SourcePath,
        root: usize,
        rel: &str,
        import: &str,
    ) -> Result<Option<SourcePath>> {
        if self.cache.borrow().contains_key(&(root, rel.to_owned())) {
            return Ok(Some(SourcePath::new(self.path(root, rel))));
        }
        let hides_inputs = self.roots[root].hides_inputs;
        match self.roots[root].files.read_real(rel) {
            // By the name asked for or the file it leads to.
            Ok(Some((real, _))) if hides_inputs && (is_input_file(rel) || is_input_file(&real)) => Err(self.deny(
                from,
                import,
                format!("`{import}` is the input file {real}; templates read inputs through the state, never as files"),
            )),
            Err(ReadError::InputFile(input)) => Err(self.deny(
                from,
                import,
                format!("`{import}` is the input file {input} under another name; templates read inputs through the state, never as files"),
            )),
            Ok(Some((_, bytes))) => {
                self.cache.borrow_mut().insert((root, rel.to_owned()), bytes);
                Ok(Some(SourcePath::new(self.path(root, rel))))
            }
            Ok(None) | Err(ReadError::NotAFile) => Ok(None),
            Err(ReadError::OutsideRepo) => Err(self.deny(
                from,
                import,
                format!("`{import}` resolves through a symlink to a file outside the repository and the library"),
            )),
            Err(e) => {
                let message = format!("cannot read `{import}`: {e}");
                self.record(from, import, ImportFailure::Unreadable, &message, Vec::new());
                bail!(ErrorKind::RuntimeError(message.into()))
            }
        }
    }
}

/// The byte range of the quoted import path in `code` (its first
/// occurrence), or the start of the file.
pub fn find_import_literal(code: &str, import: &str) -> (usize, usize) {
    for quote in ['\'', '"'] {
        let literal = format!("{quote}{import}{quote}");
        if let Some(i) = code.find(&literal) {
            return (i, i + literal.len());
        }
    }
    (0, 0)
}

fn join(dir: &str, path: &str) -> String {
    if dir.is_empty() {
        path.to_owned()
    } else {
        format!("{dir}/{path}")
    }
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(d, _)| d)
}

impl ImportResolver for Sandbox {
    fn resolve_from(&self, from: &SourcePath, path: &dyn AsPathLike) -> Result<SourcePath> {
        let import = match path.as_path() {
            ResolvePath::Str(s) => s.to_owned(),
            ResolvePath::Path(p) => p.to_string_lossy().into_owned(),
        };
        if Path::new(&import).is_absolute() {
            return Err(self.deny(
                from,
                &import,
                format!("`{import}` is an absolute path; import files of the repository or the library by relative path"),
            ));
        }
        let mut searched = Vec::new();
        if let Some(importer) = from.downcast_ref::<SandboxPath>() {
            let Some(rel) = normalize(&join(parent(&importer.rel), &import)) else {
                return Err(self.deny(
                    from,
                    &import,
                    format!("`{import}` leads outside the repository and the library"),
                ));
            };
            if let Some(found) = self.try_file(from, importer.root, &rel, &import)? {
                return Ok(found);
            }
            searched.push(self.path(importer.root, &rel).display);
        }
        for (root, dir) in &self.jpaths {
            if let Some(rel) = normalize(&join(dir, &import)) {
                if let Some(found) = self.try_file(from, *root, &rel, &import)? {
                    self.probed.borrow_mut().extend(searched);
                    return Ok(found);
                }
                searched.push(self.path(*root, &rel).display);
            }
        }
        searched.dedup();
        let message = format!("cannot find `{import}`");
        self.record(
            from,
            &import,
            ImportFailure::NotFound,
            &message,
            vec![format!("searched: {}", searched.join(", "))],
        );
        bail!(ErrorKind::ImportFileNotFound(
            from.clone(),
            path.as_path().to_owned()
        ))
    }

    fn load_file_contents(&self, resolved: &SourcePath) -> Result<Vec<u8>> {
        // Top-level arguments given as code arrive as in-memory sources.
        if let Some(fifo) = resolved.downcast_ref::<SourceFifo>() {
            return Ok(fifo.1.to_vec());
        }
        let Some(p) = resolved.downcast_ref::<SandboxPath>() else {
            bail!(ErrorKind::RuntimeError(
                format!("{DENIED}{resolved}").into()
            ));
        };
        let cached = self.cache.borrow_mut().remove(&(p.root, p.rel.clone()));
        if let Some(bytes) = cached {
            return self.check_source(p, bytes);
        }
        match self.roots[p.root].files.read_real(&p.rel) {
            Ok(Some((real, _)))
                if self.roots[p.root].hides_inputs
                    && (is_input_file(&p.rel) || is_input_file(&real)) =>
            {
                bail!(ErrorKind::RuntimeError(
                    format!("{DENIED}{} is an input file", p.display).into()
                ))
            }
            Err(ReadError::InputFile(_)) => bail!(ErrorKind::RuntimeError(
                format!("{DENIED}{} is an input file", p.display).into()
            )),
            Ok(Some((_, bytes))) => self.check_source(p, bytes),
            Ok(None) => bail!(ErrorKind::ResolvedFileNotFound(resolved.clone())),
            Err(e) => bail!(ErrorKind::RuntimeError(
                format!("cannot read {}: {e}", p.display).into()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings_and_comments() {
        let deep = "[".repeat(MAX_SOURCE_NESTING + 1);
        assert_eq!(too_deep(&deep), Some((MAX_SOURCE_NESTING, "brackets")));
        let fine = format!("{}{}", "[".repeat(500), "]".repeat(500)).repeat(10);
        assert_eq!(too_deep(&fine), None);
        let in_strings = format!(
            "local s = '{0}'; local t = \"{0}\"; local u = |||\n  {0}\n|||; // {0}\n/* {0} */ # {0}\n[s, t, u]",
            "[".repeat(2000)
        );
        assert_eq!(too_deep(&in_strings), None);
        assert_eq!(
            too_deep(&"-".repeat(2000)).map(|d| d.1),
            Some("prefix operators")
        );
        assert_eq!(too_deep("local a = 1 - -1; a + +a"), None);
        // An escaped quote does not end a string.
        assert_eq!(too_deep(&format!("'\\'{}'", "(".repeat(2000))), None);
    }
}
