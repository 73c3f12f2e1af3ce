//! Evaluate: run the Jsonnet entry point on the resolved state.
//!
//! The entry is the repo's `jsonnet/main.jsonnet` when it exists, else the
//! library's `main.jsonnet`. Imports resolve next to the importing file,
//! then in the repo's `jsonnet/`, the repo root and the library, and
//! nowhere else. The state goes in as the top-level argument `state`.

pub mod blame;
pub mod engine;
pub mod imports;
pub mod library;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic, FileId, Sources, Span};
use crate::load::yaml::Node;
use crate::redact::SecretValues;
use crate::repo::RepoFiles;
use crate::resolve::{ResolvedEnv, State};
pub use engine::{ArgValue, EvalFailure, EvalJob, Evaluated, FailureKind};
use imports::Root;

/// The repo's own entry point, when it has one.
pub const REPO_ENTRY: &str = "jsonnet/main.jsonnet";

/// Bounds on evaluation. One deadline covers every evaluation of a
/// command (renders, re-runs that locate a failure, every environment of
/// `validate`): once it has passed, no evaluation starts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Maximum Jsonnet call depth.
    pub max_stack: usize,
    /// The time the whole command may take (for messages).
    pub timeout: Duration,
    /// When that time is up.
    pub deadline: Instant,
}

impl Limits {
    /// Limits whose deadline is `timeout` after `start`.
    pub fn new(max_stack: usize, timeout: Duration, start: Instant) -> Self {
        Limits {
            max_stack,
            timeout,
            deadline: start + timeout,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(500, Duration::from_secs(20), Instant::now())
    }
}

/// Largest template output accepted (JSON text): 1000 services render to
/// about 3 MB. Bounded so that the parsed output stays well under 1 GiB.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// Most elements a template's top-level array may have (about ten per
/// service is usual).
pub const MAX_OUTPUT_ITEMS: usize = 200_000;

/// Display prefix of library files in messages.
pub const LIB_LABEL: &str = "<lib>/";

/// The templates of a render: the repository's and the library's Jsonnet,
/// evaluated within limits.
#[derive(Clone)]
pub struct Templates {
    /// The repository (its `jsonnet/`, and its root).
    pub repo: Arc<dyn RepoFiles>,
    /// The library.
    pub lib: Arc<dyn RepoFiles>,
    /// Evaluation bounds.
    pub limits: Limits,
}

/// What the templates made of one environment.
pub struct Rendered {
    /// The entry point's result.
    pub output: Json,
    /// Every Jsonnet file the render loaded, registered for snippets.
    pub files: Vec<(FileId, Arc<str>)>,
}

impl Templates {
    /// Evaluates the entry point on the resolved state. A failure is one
    /// diagnostic at the failing template, pointing at the input of the
    /// service that causes it when one does.
    pub fn render(
        &self,
        resolved: &ResolvedEnv,
        controlcenter: &Node,
        sources: &mut Sources,
    ) -> Result<Rendered, Diagnostic> {
        let evaluated = self
            .run(&resolved.state, sources.secrets(), true)
            .map_err(|f| {
                let culprit = match f.kind {
                    FailureKind::Runtime => blame::culprit_service(resolved, |keys| {
                        let mut state = resolved.state.clone();
                        state.services.retain(|k, _| keys.contains(k));
                        matches!(self.run(&state, sources.secrets(), false), Err(g) if g.message == f.message)
                    }),
                    _ => None,
                };
                let d = diagnose(f, sources);
                match culprit {
                    Some(key) => {
                        let failing = d.primary.as_ref().and_then(|p| {
                            let s = p.span;
                            sources.get(s.file).text.get(s.start..s.end).map(str::to_owned)
                        });
                        blame::point_at_service(d, failing.as_deref(), resolved, controlcenter, &key)
                    }
                    None => d,
                }
            })?;
        let output = serde_json::from_str(&evaluated.json).map_err(|e| {
            Diagnostic::error(
                Code::JsonnetError,
                format!("the template output is not valid JSON: {e}"),
            )
        })?;
        let files = evaluated
            .files
            .into_iter()
            .map(|(path, text)| (sources.add(path, text.clone()), text))
            .collect();
        Ok(Rendered { output, files })
    }

    fn run(
        &self,
        state: &State,
        secrets: &SecretValues,
        trace: bool,
    ) -> Result<Evaluated, EvalFailure> {
        render_state(
            self.repo.clone(),
            self.lib.clone(),
            engine_input(state),
            self.limits,
            secrets,
            trace,
        )
    }

    /// The start of the entry point, registered for snippets: where
    /// problems of the rendered output as a whole are shown.
    pub fn entry_span(&self, sources: &mut Sources) -> Option<Span> {
        let (files, path, label) = match self.repo.read(REPO_ENTRY) {
            Ok(Some(_)) => (&self.repo, REPO_ENTRY, ""),
            _ => (&self.lib, library::LIB_ENTRY, LIB_LABEL),
        };
        let text = String::from_utf8(files.read(path).ok()??).ok()?;
        let id = sources.add(format!("{label}{path}"), text);
        Some(Span::new(id, 0, 0))
    }
}

/// The state as the library receives it: compact JSON, sorted keys, secret
/// fields holding their values. Never printed.
fn engine_input(state: &State) -> String {
    crate::redact::exposed(|| {
        serde_json::to_value(state)
            .map(|v| v.to_string())
            .unwrap_or_default()
    })
}

/// Evaluates the entry point on `state_json`; returns the result as JSON text.
pub fn render_state(
    repo: Arc<dyn RepoFiles>,
    lib: Arc<dyn RepoFiles>,
    state_json: String,
    limits: Limits,
    secrets: &SecretValues,
    trace: bool,
) -> Result<Evaluated, EvalFailure> {
    // A repo entry point that exists but cannot be read is an error:
    // falling back to the library would silently drop what it adds.
    let entry = match repo.read(REPO_ENTRY) {
        Ok(Some(_)) => (0, REPO_ENTRY.to_owned()),
        Ok(None) => (1, library::LIB_ENTRY.to_owned()),
        Err(e) => {
            return Err(EvalFailure {
                kind: FailureKind::Unreadable,
                message: format!("cannot read {REPO_ENTRY}: {e}"),
                frames: vec![engine::Frame {
                    desc: "the repository's entry point".to_owned(),
                    location: Some(engine::FrameLocation {
                        path: REPO_ENTRY.to_owned(),
                        code: "".into(),
                        start: 0,
                        end: 0,
                    }),
                }],
            })
        }
    };
    engine::evaluate(EvalJob {
        roots: vec![
            Root {
                label: String::new(),
                files: repo,
                hides_inputs: true,
            },
            Root {
                label: LIB_LABEL.to_owned(),
                files: lib,
                hides_inputs: false,
            },
        ],
        jpaths: vec![
            (0, "jsonnet".to_owned()),
            (0, String::new()),
            (1, String::new()),
        ],
        entry,
        tla: vec![("state".to_owned(), ArgValue::Code(state_json))],
        ext: Vec::new(),
        max_stack: limits.max_stack,
        timeout: limits.timeout,
        deadline: limits.deadline,
        indent: 0,
        secrets: secrets.clone(),
        trace,
    })
}

/// Most frames shown under a Jsonnet error.
const MAX_FRAMES: usize = 12;

/// A Jsonnet failure as a diagnostic located at the innermost frame that
/// has a place in a file.
pub fn diagnose(f: EvalFailure, sources: &mut Sources) -> Diagnostic {
    let (code, help) = match f.kind {
        FailureKind::Runtime => (
            Code::JsonnetError,
            "fix the template, or the input value it reports on",
        ),
        FailureKind::ImportDenied => (
            Code::ImportDenied,
            "templates may import only files of the repository and the library",
        ),
        FailureKind::StackOverflow => (
            Code::JsonnetLimit,
            "look for unbounded recursion; raise --max-stack only if the depth is legitimate",
        ),
        FailureKind::OutputTooLarge => (
            Code::JsonnetLimit,
            "look for a comprehension that multiplies objects; no environment needs this much output",
        ),
        FailureKind::ImportNotFound => (
            Code::JsonnetError,
            "check the path: an import resolves next to the importing file, then along the search path noted above",
        ),
        FailureKind::TooDeep => (
            Code::JsonnetLimit,
            "flatten the expression; no template needs this nesting",
        ),
        FailureKind::Unreadable => (
            Code::FileUnreadable,
            "Jsonnet files are UTF-8 text inside the repository, within the size limit",
        ),
        FailureKind::Timeout => (
            Code::JsonnetLimit,
            "look for unbounded recursion or very large comprehensions; raise --timeout only if the work is legitimate",
        ),
    };
    // Scrubbed whole, before it is split into lines: a secret of several
    // lines would escape a per-line scrub.
    let scrubbed = sources.secrets().scrub(&f.message);
    let first = scrubbed.lines().next().unwrap_or("Jsonnet error");
    // The code already says it is a Jsonnet error.
    let message = first
        .strip_prefix("runtime error: ")
        .unwrap_or(first)
        .to_owned();
    let mut d = Diagnostic::error(code, message).help(help);
    for line in scrubbed.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        d = d.note(line.trim().to_owned());
    }
    // Frames below the primary, consecutive repeats folded (recursion).
    let mut stack: Vec<(String, usize)> = Vec::new();
    for frame in &f.frames {
        let Some(loc) = &frame.location else {
            continue;
        };
        if loc.path.contains("<inline code>") {
            continue;
        }
        let file = sources.add(loc.path.clone(), loc.code.clone());
        let span = Span::new(file, loc.start, loc.end);
        if d.primary.is_none() {
            d = d.at(span, frame.desc.clone());
            continue;
        }
        let (line, col) = sources.line_col(file, loc.start);
        let text = format!("at {}:{line}:{col}: {}", loc.path, frame.desc);
        match stack.last_mut() {
            Some((last, n)) if *last == text => *n += 1,
            _ => stack.push((text, 1)),
        }
    }
    let hidden = stack.len().saturating_sub(MAX_FRAMES);
    for (text, n) in stack.into_iter().take(MAX_FRAMES) {
        d = d.note(if n > 1 {
            format!("{text} (×{n})")
        } else {
            text
        });
    }
    if hidden > 0 {
        d = d.note(format!("… {hidden} more frames"));
    }
    d
}
