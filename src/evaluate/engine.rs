//! The only user of jrsonnet. Evaluates one Jsonnet file in a sandbox on a
//! dedicated thread (jrsonnet's `State` is not `Send`; a large explicit
//! stack plus jrsonnet's depth limit turns runaway recursion into an error,
//! not a crash) and returns the result manifested as JSON text. Data goes in
//! as JSON text through top-level arguments and comes out as JSON text, so
//! no number is converted on the way.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use jrsonnet_evaluator::function::CallLocation;
use jrsonnet_gcmodule::trace_acyclic;
use jrsonnet_stdlib::TracePrinter;

use jrsonnet_evaluator::manifest::JsonFormat;
use jrsonnet_evaluator::stack::limit_stack_depth;
use jrsonnet_evaluator::tla::TlaArg;
use jrsonnet_evaluator::trace::PathResolver;
use jrsonnet_evaluator::{apply_tla, error::ErrorKind, State, Val};
use jrsonnet_interner::IStr;

use super::imports::{FailedImportSlot, ImportFailure, LoadedFiles, Root, Sandbox, DENIED};
use crate::redact::SecretValues;

/// Prefix of the message for an oversized output (mapped to `CC0403`).
const OUTPUT_LIMIT: &str = "output limit: ";

/// Native stack of the evaluation thread. Only touched pages are committed.
const EVAL_STACK_BYTES: usize = 1 << 30;

/// A top-level argument or external variable.
#[derive(Clone, Debug)]
pub enum ArgValue {
    /// A string (`--tla-str`, `--ext-str`).
    Str(String),
    /// Jsonnet code, e.g. JSON text (`--tla-code`, `--ext-code`).
    Code(String),
}

/// One evaluation.
pub struct EvalJob {
    /// Readable trees.
    pub roots: Vec<Root>,
    /// Search path after the importing file's directory.
    pub jpaths: Vec<(usize, String)>,
    /// The file to evaluate: (root, relative path).
    pub entry: (usize, String),
    /// Top-level arguments.
    pub tla: Vec<(String, ArgValue)>,
    /// External variables.
    pub ext: Vec<(String, ArgValue)>,
    /// Maximum Jsonnet call depth.
    pub max_stack: usize,
    /// The command's time limit (for messages).
    pub timeout: Duration,
    /// When it is up: the evaluation gets whatever time is left.
    pub deadline: Instant,
    /// Indentation of the JSON result; 0 for compact.
    pub indent: usize,
    /// Secret values, scrubbed from `std.trace` output.
    pub secrets: SecretValues,
    /// Whether `std.trace` prints (re-runs that only locate an error stay
    /// silent, so nothing is printed twice).
    pub trace: bool,
}

/// `std.trace` lines a process prints at most, unless told otherwise.
pub const DEFAULT_TRACE_LINES: usize = 100;
/// Characters of one trace line shown at most.
const MAX_TRACE_LINE_CHARS: usize = 1000;

static TRACE_BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_TRACE_LINES);
static TRACE_PRINTED: AtomicUsize = AtomicUsize::new(0);

/// Sets how many `std.trace` lines this process may print in all (the
/// Argo CD plugin keeps its stderr short).
pub fn set_trace_budget(lines: usize) {
    TRACE_BUDGET.store(lines, Ordering::SeqCst);
}

/// How many `std.trace` lines this process has printed.
pub fn trace_lines_printed() -> usize {
    TRACE_PRINTED.load(Ordering::SeqCst)
}

/// Prints `std.trace` to stderr: located, secrets scrubbed, long lines
/// cut, at most [`set_trace_budget`] lines per process.
struct TraceSink {
    secrets: SecretValues,
    print: bool,
}
trace_acyclic!(TraceSink);

impl TracePrinter for TraceSink {
    fn print_trace(&self, loc: CallLocation, value: IStr) {
        if !self.print {
            return;
        }
        let place = loc.0.map_or_else(String::new, |span| {
            let line = span.0.map_source_locations(&[span.1])[0].line;
            format!(" {}:{line}", span.0.source_path())
        });
        let text = self.secrets.scrub(&format!("TRACE:{place} {value}"));
        let mut out = String::new();
        for line in text.lines() {
            let budget = TRACE_BUDGET.load(Ordering::SeqCst);
            let n = TRACE_PRINTED.fetch_add(1, Ordering::SeqCst);
            if n > budget {
                break;
            }
            if n == budget {
                out.push_str(&format!(
                    "TRACE: … further std.trace output suppressed (at most {budget} lines)\n"
                ));
                break;
            }
            let mut line: String = line.chars().take(MAX_TRACE_LINE_CHARS).collect();
            if line.len() < text.len() && line.chars().count() == MAX_TRACE_LINE_CHARS {
                line.push_str(" …");
            }
            out.push_str(&line);
            out.push('\n');
        }
        let _ = std::io::Write::write_all(&mut std::io::stderr(), out.as_bytes());
    }
}

/// Why an evaluation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// A Jsonnet error (`error`, assert, type error, missing field, …).
    Runtime,
    /// An import outside the sandbox.
    ImportDenied,
    /// Too deep.
    StackOverflow,
    /// Too long.
    Timeout,
    /// Too much output.
    OutputTooLarge,
    /// A Jsonnet file cannot be read or decoded.
    Unreadable,
    /// An import is nowhere on the search path.
    ImportNotFound,
    /// A file nests deeper than the parser can take.
    TooDeep,
}

/// A source location inside a Jsonnet file.
#[derive(Clone, Debug)]
pub struct FrameLocation {
    /// Display path of the file.
    pub path: String,
    /// The file's text.
    pub code: Arc<str>,
    /// Byte range.
    pub start: usize,
    /// Byte range end.
    pub end: usize,
}

/// One frame of a Jsonnet stack trace.
#[derive(Clone, Debug)]
pub struct Frame {
    /// What was being done.
    pub desc: String,
    /// Where, when known.
    pub location: Option<FrameLocation>,
}

/// A failed evaluation, with plain data only (it crosses threads).
#[derive(Clone, Debug)]
pub struct EvalFailure {
    /// Category.
    pub kind: FailureKind,
    /// The error message.
    pub message: String,
    /// Innermost frame first.
    pub frames: Vec<Frame>,
}

/// A successful evaluation.
#[derive(Clone, Debug)]
pub struct Evaluated {
    /// The result as JSON text.
    pub json: String,
    /// Every Jsonnet file loaded (display path, text), in load order.
    pub files: Vec<(String, Arc<str>)>,
}

/// Evaluates `job` and returns its result as JSON text.
pub fn evaluate(job: EvalJob) -> Result<Evaluated, EvalFailure> {
    let timeout = job.timeout;
    let timed_out = || EvalFailure {
        kind: FailureKind::Timeout,
        message: format!(
            "the command did not finish within its {} s time limit",
            timeout.as_secs_f64()
        ),
        frames: Vec::new(),
    };
    // Where to point when the failure itself has no place.
    let entry_root = &job.roots[job.entry.0];
    let entry = (
        format!("{}{}", entry_root.label, job.entry.1),
        entry_root.files.clone(),
        job.entry.1.clone(),
    );
    let left = job
        .deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero());
    let result = match left {
        // Nothing starts after the deadline, so nothing piles up.
        None => Err(timed_out()),
        Some(left) => on_thread(job, left, timed_out),
    };
    result.map_err(|mut f| {
        // Every failure names a file: the entry point when nothing better
        // is known (a timeout, an error jrsonnet raised outside any frame).
        if f.frames.iter().all(|fr| fr.location.is_none()) {
            let (path, files, rel) = entry;
            let code = files
                .read(&rel)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            f.frames.insert(
                0,
                Frame {
                    desc: "while evaluating this entry point".to_owned(),
                    location: Some(FrameLocation {
                        path,
                        code: code.into(),
                        start: 0,
                        end: 0,
                    }),
                },
            );
        }
        f
    })
}

/// Runs `job` on its own thread (a large stack; jrsonnet's State is not
/// Send), waiting at most `left`.
fn on_thread(
    job: EvalJob,
    left: Duration,
    timed_out: impl Fn() -> EvalFailure,
) -> Result<Evaluated, EvalFailure> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("jsonnet".into())
        .stack_size(EVAL_STACK_BYTES)
        .spawn(move || {
            let _ = tx.send(evaluate_here(job));
        });
    if let Err(e) = spawned {
        return Err(EvalFailure {
            kind: FailureKind::Runtime,
            message: format!("cannot start the evaluation thread: {e}"),
            frames: Vec::new(),
        });
    }
    match rx.recv_timeout(left) {
        Ok(result) => result,
        // jrsonnet cannot be interrupted: the thread is left behind, but the
        // deadline has passed, so no other evaluation starts and the
        // command ends (exiting the process) right after reporting.
        Err(mpsc::RecvTimeoutError::Timeout) => Err(timed_out()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(EvalFailure {
            kind: FailureKind::Runtime,
            message: "the evaluation thread stopped unexpectedly".to_owned(),
            frames: Vec::new(),
        }),
    }
}

/// Where `.field` is accessed in the loaded files: jrsonnet reports a
/// missing field outside any frame without a place.
fn find_field_access(files: &[(String, Arc<str>)], field: &str) -> Option<FrameLocation> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let access = format!(".{field}");
    files.iter().find_map(|(path, code)| {
        code.match_indices(&access).find_map(|(i, _)| {
            let end = i + access.len();
            let next = code[end..].chars().next();
            (!next.is_some_and(is_ident)).then(|| FrameLocation {
                path: path.clone(),
                code: code.clone(),
                start: i + 1,
                end,
            })
        })
    })
}

fn evaluate_here(job: EvalJob) -> Result<Evaluated, EvalFailure> {
    let _depth = limit_stack_depth(job.max_stack);
    let failed_import = FailedImportSlot::default();
    let loaded = LoadedFiles::default();
    let sandbox = Sandbox::new(
        job.roots,
        job.jpaths,
        failed_import.clone(),
        loaded.clone(),
        job.secrets.clone(),
    );
    let entry = sandbox.path(job.entry.0, &job.entry.1);
    let std = jrsonnet_stdlib::ContextInitializer::new(PathResolver::Absolute);
    std.settings_mut().trace_printer = Rc::new(TraceSink {
        secrets: job.secrets.clone(),
        print: job.trace,
    });
    for (name, value) in &job.ext {
        std.settings_mut()
            .ext_vars
            .insert(name.as_str().into(), arg(value));
    }
    let mut builder = State::builder();
    builder.import_resolver(sandbox).context_initializer(std);
    let state = builder.build();
    let _entered = state.enter();
    let indent = job.indent;
    let result = (|| {
        let val = state.import_resolved(jrsonnet_ir::SourcePath::new(entry))?;
        let tla: HashMap<IStr, TlaArg> = job
            .tla
            .iter()
            .map(|(k, v)| (IStr::from(k.as_str()), arg(v)))
            .collect();
        let val = apply_tla(&tla, val)?;
        let text = manifest_bounded(&val, indent)?;
        Ok(Evaluated {
            json: text,
            files: loaded.borrow().clone(),
        })
    })();
    result.map_err(|e| {
        let mut f = failure(&e);
        // A failed import is the cause whatever jrsonnet says after it (a
        // lazy field that imported it reads as "infinite recursion"), and
        // jrsonnet gives it no location: point at the import literal.
        if let Some(fi) = failed_import.borrow().as_ref() {
            f.kind = match fi.failure {
                ImportFailure::Denied => FailureKind::ImportDenied,
                ImportFailure::NotFound => FailureKind::ImportNotFound,
                ImportFailure::Unreadable => FailureKind::Unreadable,
                ImportFailure::TooDeep => FailureKind::TooDeep,
            };
            f.message = std::iter::once(fi.message.clone())
                .chain(fi.notes.iter().cloned())
                .collect::<Vec<_>>()
                .join("\n");
            f.frames.insert(
                0,
                Frame {
                    desc: match fi.failure {
                        ImportFailure::Unreadable | ImportFailure::TooDeep
                            if fi.span.1 > fi.span.0 =>
                        {
                            "here".to_owned()
                        }
                        _ => "imported here".to_owned(),
                    },
                    location: Some(FrameLocation {
                        path: fi.file.clone(),
                        code: fi.code.clone(),
                        start: fi.span.0,
                        end: fi.span.1,
                    }),
                },
            );
        }
        if f.frames.iter().all(|fr| fr.location.is_none()) {
            if let ErrorKind::NoSuchField(field, _) = e.error() {
                if let Some(location) = find_field_access(&loaded.borrow(), field) {
                    f.frames.insert(
                        0,
                        Frame {
                            desc: format!("field <{field}> access"),
                            location: Some(location),
                        },
                    );
                }
            }
        }
        f
    })
}

/// Manifests the result as JSON, within [`super::MAX_OUTPUT_BYTES`] and,
/// for an array (what templates return), [`super::MAX_OUTPUT_ITEMS`]
/// elements checked one by one: a comprehension of a million objects stops
/// at the limit instead of first building them all.
fn manifest_bounded(val: &Val, indent: usize) -> jrsonnet_evaluator::Result<String> {
    let too_large = |what: String| -> jrsonnet_evaluator::Error {
        ErrorKind::RuntimeError(format!("{OUTPUT_LIMIT}{what}").into()).into()
    };
    let check = |len: usize| {
        if len > super::MAX_OUTPUT_BYTES {
            Err(too_large(format!(
                "the output is more than the {} MiB limit",
                super::MAX_OUTPUT_BYTES >> 20
            )))
        } else {
            Ok(())
        }
    };
    let Val::Arr(items) = val else {
        let text = val.manifest(JsonFormat::cli(indent))?;
        check(text.len())?;
        return Ok(text);
    };
    if indent != 0 {
        if items.len() as usize > super::MAX_OUTPUT_ITEMS {
            return Err(too_large(format!(
                "the output has {} elements, more than the {} limit",
                items.len(),
                super::MAX_OUTPUT_ITEMS
            )));
        }
        let text = val.manifest(JsonFormat::cli(indent))?;
        check(text.len())?;
        return Ok(text);
    }
    let mut text = String::from("[");
    for i in 0..items.len() {
        if i as usize >= super::MAX_OUTPUT_ITEMS {
            return Err(too_large(format!(
                "the output has {} elements, more than the {} limit",
                items.len(),
                super::MAX_OUTPUT_ITEMS
            )));
        }
        let item = items.get(i)?.unwrap_or(Val::Null);
        if i > 0 {
            text.push(',');
        }
        text.push_str(&item.manifest(JsonFormat::cli(0))?);
        check(text.len())?;
    }
    text.push(']');
    Ok(text)
}

fn arg(v: &ArgValue) -> TlaArg {
    match v {
        ArgValue::Str(s) => TlaArg::String(s.as_str().into()),
        ArgValue::Code(c) => TlaArg::InlineCode(c.clone()),
    }
}

fn failure(e: &jrsonnet_evaluator::Error) -> EvalFailure {
    let message = e.error().to_string();
    let kind = match e.error() {
        ErrorKind::StackOverflow => FailureKind::StackOverflow,
        _ if message.contains(OUTPUT_LIMIT) => FailureKind::OutputTooLarge,
        _ if message.contains(DENIED) => FailureKind::ImportDenied,
        _ => FailureKind::Runtime,
    };
    let mut frames: Vec<Frame> = Vec::new();
    // A syntax error carries its location in the error itself.
    if let ErrorKind::ImportSyntaxError { path, error } = e.error() {
        frames.push(Frame {
            desc: "parsing".to_owned(),
            location: Some(FrameLocation {
                path: path.source_path().to_string(),
                code: path.code().into(),
                start: error.location.1 as usize,
                end: error.location.2 as usize,
            }),
        });
    }
    for el in &e.trace().0 {
        frames.push(Frame {
            desc: el.desc.clone(),
            location: el.location.as_ref().map(|span| FrameLocation {
                path: span.0.source_path().to_string(),
                code: span.0.code().into(),
                start: span.1 as usize,
                end: span.2 as usize,
            }),
        });
    }
    EvalFailure {
        kind,
        message,
        frames,
    }
}
