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
use jrsonnet_evaluator::{
    apply_tla, error::ErrorKind, val::ThunkValue, NumValue, ObjValue, ObjValueBuilder, State,
    Thunk, Val,
};
use jrsonnet_interner::IStr;
use serde_json::Value as Json;

use super::imports::{
    FailedImportSlot, ImportFailure, LoadedFiles, ProbedFiles, Root, Sandbox, UndecodableFiles,
    DENIED,
};
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
    /// Whether unit outputs keep their JSON text next to the parsed values
    /// (to be cached); without it the text is dropped on the worker.
    pub keep_text: bool,
    /// Whether unit outputs are parsed on the worker. A render takes the
    /// text alone: its objects are parsed a share at a time as they are
    /// checked, never all at once.
    pub parse_values: bool,
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

/// Takes `std.trace` output: located, secrets scrubbed, and printed
/// ([`print_traces`]) at once, or, when units are evaluated at once, in
/// unit order ([`UnitTraces`]).
struct TraceSink {
    secrets: SecretValues,
    print: bool,
    units: Option<(Rc<std::cell::Cell<usize>>, Arc<UnitTraces>)>,
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
        match &self.units {
            Some((unit, traces)) => traces.trace(unit.get(), text),
            None => print_traces(std::iter::once(text)),
        }
    }
}

/// The trace output of units evaluated at once, printed in unit order
/// (as it came, the order would change from run to run): the first unit
/// not done prints as it traces, later ones are held until it is. What is
/// held is no more than what the budget can still print, whatever the
/// units trace.
struct UnitTraces {
    order: std::sync::Mutex<TraceOrder>,
}

#[derive(Default)]
struct TraceOrder {
    /// The first unit not done.
    next: usize,
    done: std::collections::BTreeSet<usize>,
    /// Lines of later units, by unit.
    held: std::collections::BTreeMap<usize, Vec<String>>,
    held_lines: usize,
}

impl UnitTraces {
    fn new() -> Self {
        UnitTraces {
            order: std::sync::Mutex::new(TraceOrder::default()),
        }
    }

    fn trace(&self, unit: usize, text: String) {
        let Ok(mut order) = self.order.lock() else {
            return;
        };
        if unit == order.next {
            print_traces(std::iter::once(text));
            return;
        }
        // Only the first lines in unit order can print: past what the
        // budget leaves, the last held go (this text's own, or a later
        // unit's).
        let budget = TRACE_BUDGET.load(Ordering::SeqCst);
        let room = (budget + 1).saturating_sub(TRACE_PRINTED.load(Ordering::SeqCst));
        let order = &mut *order;
        for line in text.lines() {
            let line: String = line.chars().take(MAX_TRACE_LINE_CHARS + 1).collect();
            order.held.entry(unit).or_default().push(line);
            order.held_lines += 1;
            while order.held_lines > room {
                let Some(mut last) = order.held.last_entry() else {
                    break;
                };
                last.get_mut().pop();
                if last.get().is_empty() {
                    last.remove();
                }
                order.held_lines -= 1;
            }
        }
    }

    /// Unit `unit` is done: the next ones' held lines print, up to the
    /// first unit still running.
    fn done(&self, unit: usize) {
        let Ok(mut order) = self.order.lock() else {
            return;
        };
        order.done.insert(unit);
        while order.done.contains(&order.next) {
            order.next += 1;
            let next = order.next;
            if let Some(lines) = order.held.remove(&next) {
                order.held_lines -= lines.len();
                print_traces(lines);
            }
        }
    }

    /// Prints whatever is held, in unit order (once the render is over,
    /// or its time is up).
    fn flush(&self) {
        if let Ok(mut order) = self.order.lock() {
            order.held_lines = 0;
            print_traces(std::mem::take(&mut order.held).into_values().flatten());
        }
    }
}

/// Prints trace texts to stderr, long lines cut, at most
/// [`set_trace_budget`] lines per process.
fn print_traces(texts: impl IntoIterator<Item = String>) {
    let mut out = String::new();
    'texts: for text in texts {
        for line in text.lines() {
            let budget = TRACE_BUDGET.load(Ordering::SeqCst);
            let n = TRACE_PRINTED.fetch_add(1, Ordering::SeqCst);
            if n > budget {
                break 'texts;
            }
            if n == budget {
                out.push_str(&format!(
                    "TRACE: … further std.trace output suppressed (at most {budget} lines)\n"
                ));
                break 'texts;
            }
            // A traced value may hold escape sequences (a state value):
            // shown escaped, as in messages.
            let whole = crate::diagnostics::render::escape_controls(line);
            let mut line: String = whole.chars().take(MAX_TRACE_LINE_CHARS).collect();
            if line.len() < whole.len() {
                line.push_str(" …");
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !out.is_empty() {
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
    let entry = EntryPlace::of(&job);
    let left = job
        .deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero());
    let result = match left {
        // Nothing starts after the deadline, so nothing piles up.
        None => Err(timed_out(job.timeout)),
        Some(left) => on_thread(job, left),
    };
    result.map_err(|f| entry.locate(f))
}

fn timed_out(timeout: Duration) -> EvalFailure {
    EvalFailure {
        kind: FailureKind::Timeout,
        message: format!(
            "the command did not finish within its {} s time limit",
            timeout.as_secs_f64()
        ),
        frames: Vec::new(),
    }
}

/// The entry point: where to point when a failure itself has no place.
#[derive(Clone)]
struct EntryPlace {
    display: String,
    files: Arc<dyn crate::repo::RepoFiles>,
    rel: String,
}

impl EntryPlace {
    fn of(job: &EvalJob) -> Self {
        let root = &job.roots[job.entry.0];
        EntryPlace {
            display: format!("{}{}", root.label, job.entry.1),
            files: root.files.clone(),
            rel: job.entry.1.clone(),
        }
    }

    /// Every failure names a file: the entry point when nothing better is
    /// known (a timeout, an error jrsonnet raised outside any frame).
    fn locate(&self, mut f: EvalFailure) -> EvalFailure {
        if f.frames.iter().all(|fr| fr.location.is_none()) {
            let code = self
                .files
                .read(&self.rel)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            f.frames.insert(
                0,
                Frame {
                    desc: "while evaluating this entry point".to_owned(),
                    location: Some(FrameLocation {
                        path: self.display.clone(),
                        code: code.into(),
                        start: 0,
                        end: 0,
                    }),
                },
            );
        }
        f
    }
}

/// Runs `job` on its own thread (a large stack; jrsonnet's State is not
/// Send), waiting at most `left`.
fn on_thread(job: EvalJob, left: Duration) -> Result<Evaluated, EvalFailure> {
    let timeout = job.timeout;
    on_eval_thread(timeout, left, move || evaluate_here(job))
}

/// Runs `work` on an evaluation thread, waiting at most `left`.
fn on_eval_thread<T: Send + 'static>(
    timeout: Duration,
    left: Duration,
    work: impl FnOnce() -> Result<T, EvalFailure> + Send + 'static,
) -> Result<T, EvalFailure> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("jsonnet".into())
        .stack_size(EVAL_STACK_BYTES)
        .spawn(move || {
            let _ = tx.send(work());
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
        Err(mpsc::RecvTimeoutError::Timeout) => Err(timed_out(timeout)),
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

/// A jrsonnet `State` set up for one job on the current thread, with what
/// its sandbox records.
struct Session {
    state: State,
    failed_import: FailedImportSlot,
    /// Failed imports seen by earlier units, by the error jrsonnet raised:
    /// it remembers a failed import (the file's locals are evaluated once)
    /// and raises the same error again without asking the sandbox.
    import_failures: std::cell::RefCell<HashMap<String, super::imports::FailedImport>>,
    loaded: LoadedFiles,
    probed: ProbedFiles,
    undecodable: UndecodableFiles,
    entry: super::imports::SandboxPath,
    /// The unit being evaluated, when traces go in unit order.
    unit: Rc<std::cell::Cell<usize>>,
}

impl Session {
    /// A jrsonnet state for `job`; `std.trace` output goes to `traces`
    /// in unit order ([`Session::unit`]), else straight to stderr.
    fn new(job: &EvalJob, traces: Option<Arc<UnitTraces>>) -> Self {
        let failed_import = FailedImportSlot::default();
        let loaded = LoadedFiles::default();
        let probed = ProbedFiles::default();
        let undecodable = UndecodableFiles::default();
        let sandbox = Sandbox::new(
            job.roots.clone(),
            job.jpaths.clone(),
            failed_import.clone(),
            (loaded.clone(), probed.clone()),
            undecodable.clone(),
            job.secrets.clone(),
        );
        let entry = sandbox.path(job.entry.0, &job.entry.1);
        let std = jrsonnet_stdlib::ContextInitializer::new(PathResolver::Absolute);
        let unit = Rc::new(std::cell::Cell::new(0));
        std.settings_mut().trace_printer = Rc::new(TraceSink {
            secrets: job.secrets.clone(),
            print: job.trace,
            units: traces.map(|t| (unit.clone(), t)),
        });
        for (name, value) in &job.ext {
            std.settings_mut()
                .ext_vars
                .insert(name.as_str().into(), arg(value));
        }
        let mut builder = State::builder();
        builder.import_resolver(sandbox).context_initializer(std);
        Session {
            state: builder.build(),
            failed_import,
            import_failures: Default::default(),
            loaded,
            probed,
            undecodable,
            entry,
            unit,
        }
    }

    /// The entry point's value (imports are cached: a second call is free).
    fn entry(&self) -> jrsonnet_evaluator::Result<Val> {
        self.state
            .import_resolved(jrsonnet_ir::SourcePath::new(self.entry.clone()))
    }

    /// A jrsonnet error as plain data, located as well as the sandbox can.
    fn failure(&self, e: &jrsonnet_evaluator::Error) -> EvalFailure {
        let mut f = failure(e);
        // A failed import is the cause whatever jrsonnet says after it (a
        // lazy field that imported it reads as "infinite recursion"), and
        // jrsonnet gives it no location: point at the import literal.
        let fresh = self.failed_import.borrow_mut().take();
        let known = match fresh {
            Some(fi) => {
                self.import_failures
                    .borrow_mut()
                    .insert(f.message.clone(), fi.clone());
                Some(fi)
            }
            None => match e.error() {
                ErrorKind::ImportBadFileUtf8(path) => {
                    self.undecodable.borrow().get(&path.to_string()).cloned()
                }
                _ => self.import_failures.borrow().get(&f.message).cloned(),
            },
        };
        if let Some(fi) = known.as_ref() {
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
            let in_the_file = matches!(
                fi.failure,
                ImportFailure::Unreadable | ImportFailure::TooDeep
            ) && fi.span.1 > fi.span.0;
            let mut location = FrameLocation {
                path: fi.file.clone(),
                code: fi.code.clone(),
                start: fi.span.0,
                end: fi.span.1,
            };
            // The import expression itself, when the trace has it: the
            // literal found by text may be another import of the same path.
            if !in_the_file {
                if let Some(at) = f.frames.first().filter(|fr| fr.desc == "import") {
                    if let Some(expr) = at.location.clone().filter(|l| l.path == fi.file) {
                        location = import_expression(expr);
                        f.frames.remove(0);
                    }
                }
            }
            f.frames.insert(
                0,
                Frame {
                    desc: if in_the_file { "here" } else { "imported here" }.to_owned(),
                    location: Some(location),
                },
            );
        }
        if f.frames.iter().all(|fr| fr.location.is_none()) {
            if let ErrorKind::NoSuchField(field, _) = e.error() {
                if let Some(location) = find_field_access(&self.loaded.borrow(), field) {
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
    }
}

/// The span of a whole `import 'path'` expression, from the span of its
/// keyword.
fn import_expression(mut keyword: FrameLocation) -> FrameLocation {
    let rest = keyword.code.get(keyword.end..).unwrap_or("");
    let literal = rest.trim_start();
    let skipped = rest.len() - literal.len();
    let quote = literal.chars().next().filter(|q| matches!(q, '\'' | '"'));
    if let Some(q) = quote {
        if let Some(close) = literal[1..].find(q) {
            keyword.end += skipped + close + 2;
        }
    }
    keyword
}

fn evaluate_here(job: EvalJob) -> Result<Evaluated, EvalFailure> {
    let _depth = limit_stack_depth(job.max_stack);
    let session = Session::new(&job, None);
    let _entered = session.state.enter();
    let result = (|| {
        let val = session.entry()?;
        let tla: HashMap<IStr, TlaArg> = job
            .tla
            .iter()
            .map(|(k, v)| (IStr::from(k.as_str()), arg(v)))
            .collect();
        let val = apply_tla(&tla, val)?;
        let text = manifest_bounded(&val, job.indent)?;
        Ok(Evaluated {
            json: text,
            files: session.loaded.borrow().clone(),
        })
    })();
    result.map_err(|e| session.failure(&e))
}

/// The input of one evaluation unit: the top-level argument `state`, an
/// object made of fields shared by every unit of a render (converted into
/// engine values once per worker, however many units use them) and the
/// unit's own.
#[derive(Clone, Debug, Default)]
pub struct UnitInput {
    /// Fields every unit of the render has (the environment).
    pub shared: Arc<serde_json::Map<String, Json>>,
    /// The unit's own fields; they win over shared ones. Shared, so that
    /// handing a unit to a worker copies no state.
    pub own: Arc<Vec<(String, Json)>>,
    /// The unit's service's state as compact JSON (its key, the text),
    /// when a render hands it over so: `services` then holds it. Made as
    /// text, a service's state takes a tenth of the fresh memory it takes
    /// as a value, and the worker reads it straight into engine values.
    pub service_text: Option<(String, String)>,
    /// Fields present in name only: reading one fails with the given
    /// message (what the unit must not see).
    pub withheld: Vec<(String, String)>,
    /// When set, `services` holds every one of these service keys: those
    /// of services the unit has no state for fail when read (so a count
    /// or a test of a name is the whole environment's, and a read of
    /// another service fails instead of finding nothing). Shared by the
    /// units of a render.
    pub service_names: Option<Arc<Vec<String>>>,
}

/// What one unit returned: each element of the array it evaluated to, as
/// compact JSON (one element holding the whole value when it is not an
/// array).
#[derive(Clone, Debug, Default)]
pub struct UnitOutput {
    /// Compact JSON texts; empty when the job does not keep them.
    pub items: Vec<String>,
    /// The same, parsed (on the worker, so parsing runs in parallel);
    /// empty when the job does not parse them.
    pub values: Vec<Json>,
    /// Whether the value was an array.
    pub array: bool,
}

/// Every unit's result, in unit order, and the Jsonnet files loaded.
pub struct UnitsEvaluated {
    /// One result per unit.
    pub results: Vec<Result<UnitOutput, EvalFailure>>,
    /// Every Jsonnet file loaded (display path, text), first load order.
    pub files: Vec<(String, Arc<str>)>,
    /// Every place an import looked in vain before finding its file
    /// (display paths): the output depends on their staying absent.
    pub probed: Vec<String>,
}

/// Whether a render that evaluates `evaluated` of its `units` should have
/// its memory backed by small pages from then on ([`use_small_pages`]):
/// when it evaluates most of its units, and enough of them for the pages
/// to matter.
pub fn small_pages_suit(evaluated: usize, units: usize) -> bool {
    evaluated >= 64 && evaluated * 2 >= units
}

/// Has the kernel back this process's memory with small pages from here
/// on (for the rest of the process: later renders of it too). Evaluating
/// many units churns a heap that each thread's allocator spreads thinly
/// over its pages: backed by 2 MiB pages it touches half as much again
/// (rich 1000: 96 vs 65 MiB peak), every fresh huge page is zeroed whole,
/// and on a virtual machine whose host has taken its free memory back a
/// huge page costs 20 times what it does once the host provides it again
/// (docs/performance.md). A render that reads most of its output from the
/// cache keeps huge pages: its memory is mostly large buffers, which they
/// fault in five times faster. Best effort: nothing happens where the
/// kernel has no such switch.
pub fn use_small_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process that
    // the kernel reads at its next page faults; no memory is touched.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Evaluates the entry point of `job` once per unit, with the unit's
/// state as the top-level argument `state`, on up to `workers` threads.
/// Each worker has its own jrsonnet `State` (they are not `Send`) that
/// parses the library once and reuses it for every unit it takes.
pub fn evaluate_units(job: EvalJob, units: Vec<UnitInput>, workers: usize) -> UnitsEvaluated {
    let count = units.len();
    let entry = EntryPlace::of(&job);
    let timeout = job.timeout;
    let left = job
        .deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero());
    let mut files: Vec<(String, Arc<str>)> = Vec::new();
    let mut probed: Vec<String> = Vec::new();
    if left.is_none() || count == 0 {
        let results = (0..count)
            .map(|_| Err(entry.locate(timed_out(timeout))))
            .collect();
        return UnitsEvaluated {
            results: if count == 0 { Vec::new() } else { results },
            files,
            probed,
        };
    }
    let queue = Arc::new(UnitQueue {
        units: std::sync::Mutex::new(units.into_iter().map(Some).collect()),
        next: AtomicUsize::new(0),
        budget: OutputBudget::default(),
        results: std::sync::Mutex::new(vec![None; count]),
        traces: Arc::new(UnitTraces::new()),
    });
    let job = Arc::new(job);
    let (tx, rx) = mpsc::channel::<WorkerDone>();
    let workers = workers.clamp(1, count);
    let mut running = 0;
    for _ in 0..workers {
        let task = Task {
            job: job.clone(),
            queue: queue.clone(),
            tx: tx.clone(),
        };
        if pool::run(task) {
            running += 1;
        }
    }
    drop(tx);
    if running == 0 {
        let stopped = EvalFailure {
            kind: FailureKind::Runtime,
            message: "cannot start an evaluation thread".to_owned(),
            frames: Vec::new(),
        };
        return UnitsEvaluated {
            results: (0..count)
                .map(|_| Err(entry.locate(stopped.clone())))
                .collect(),
            files,
            probed,
        };
    }
    let mut seen = std::collections::HashSet::new();
    while running > 0 {
        let left = job.deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(WorkerDone(loaded, looked)) => {
                running -= 1;
                for (path, text) in loaded {
                    if seen.insert(path.clone()) {
                        files.push((path, text));
                    }
                }
                probed.extend(looked);
            }
            // jrsonnet cannot be interrupted: the workers are left behind,
            // take no further unit, and the command ends right after
            // reporting.
            Err(_) => break,
        }
    }
    queue.traces.flush();
    // Taken, not cloned: a worker left behind by the deadline finds no
    // slot for what it finishes later.
    let mut results = queue
        .results
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    results.resize_with(count, || None);
    let results = results
        .into_iter()
        .map(|r| match r {
            Some(r) => r.map_err(|f| entry.locate(f)),
            None => Err(entry.locate(timed_out(timeout))),
        })
        .collect();
    probed.sort();
    probed.dedup();
    UnitsEvaluated {
        results,
        files,
        probed,
    }
}

/// Units not yet taken, shared by the workers, and the results of those
/// done. A worker puts each result in its slot rather than sending it:
/// waking the waiting thread once per unit cost a context switch per
/// service on two cores.
struct UnitQueue {
    units: std::sync::Mutex<Vec<Option<UnitInput>>>,
    next: AtomicUsize,
    budget: OutputBudget,
    results: std::sync::Mutex<Vec<Option<Result<UnitOutput, EvalFailure>>>>,
    /// The units' trace output, printed in unit order.
    traces: Arc<UnitTraces>,
}

/// The output limits, counted over every unit of a render.
#[derive(Default)]
struct OutputBudget {
    bytes: AtomicUsize,
    items: AtomicUsize,
}

/// What a worker sends once it takes no further unit: the Jsonnet files
/// it loaded (display path, text) and the places its imports probed.
struct WorkerDone(Vec<(String, Arc<str>)>, Vec<String>);

/// A share of one render for one worker.
struct Task {
    job: Arc<EvalJob>,
    queue: Arc<UnitQueue>,
    tx: mpsc::Sender<WorkerDone>,
}

/// Evaluation threads, kept for the life of the process and reused by
/// every render of it (`validate` renders each environment, `diff` two
/// revisions).
///
/// jrsonnet frees cyclic garbage only in a cycle collection, which at a
/// few thousand services costs more than the whole render (the jrsonnet
/// CLI skips the one at exit too). A worker therefore never exits, so the
/// collection at thread exit never runs, and collects after a task only
/// when the task was small (cheap, and it keeps a long-running process
/// that renders many small repositories, like the test suite, bounded).
mod pool {
    use std::sync::{mpsc, Mutex};

    use super::{work, Task, EVAL_STACK_BYTES};

    /// Idle workers, each waiting on its own channel.
    static IDLE: Mutex<Vec<mpsc::Sender<Task>>> = Mutex::new(Vec::new());

    /// Hands `task` to an idle worker, or a new one; false when no thread
    /// can be started.
    pub(super) fn run(task: Task) -> bool {
        let idle = IDLE.lock().ok().and_then(|mut idle| idle.pop());
        let task = match idle {
            Some(worker) => match worker.send(task) {
                Ok(()) => return true,
                Err(mpsc::SendError(task)) => task,
            },
            None => task,
        };
        let (tx, rx) = mpsc::channel::<Task>();
        if tx.send(task).is_err() {
            return false;
        }
        std::thread::Builder::new()
            .name("jsonnet".into())
            .stack_size(EVAL_STACK_BYTES)
            .spawn(move || {
                // The worker holds its own sender, so it waits here for
                // the next task for as long as the process lives.
                while let Ok(task) = rx.recv() {
                    if work(&task.job, &task.queue, &task.tx) {
                        jrsonnet_gcmodule::collect_thread_cycles();
                    }
                    drop(task);
                    if let Ok(mut idle) = IDLE.lock() {
                        idle.push(tx.clone());
                    }
                }
            })
            .is_ok()
    }
}

/// When a worker frees the garbage of the units it evaluated. Every unit
/// leaves cyclic garbage (about 330 objects and 100 KB for a plain
/// service) that only a collection frees. Collected right after a small
/// unit, that garbage is still in the processor's cache, and a young
/// collection (a patch to the collector) looks at it alone, not at the
/// few thousand objects of the library and the standard library that
/// every unit shares; the garbage of a few thousand units costs about 1 µs
/// per object in cache misses instead, and meanwhile takes hundreds of MB
/// of fresh pages. So a worker collects after every small unit; after
/// large ones (a whole environment) only once a large share of output has
/// piled up, and never for more than a fifth of its time.
struct Collector {
    made: usize,
    since: Instant,
    last: Duration,
}

/// Output of a unit small enough to collect its garbage right after it.
const SMALL_UNIT_BYTES: usize = 1 << 20;

/// Output of large units a worker makes between two collections at least.
const COLLECT_AFTER_BYTES: usize = 12 << 20;

impl Collector {
    fn new() -> Self {
        Collector {
            made: 0,
            since: Instant::now(),
            last: Duration::ZERO,
        }
    }

    /// After a unit that made `made` bytes of output.
    fn after(&mut self, made: usize) {
        if made < SMALL_UNIT_BYTES {
            jrsonnet_gcmodule::collect_thread_young_cycles();
            return;
        }
        self.made += made;
        if self.made < COLLECT_AFTER_BYTES || self.since.elapsed() < self.last * 4 {
            return;
        }
        let start = Instant::now();
        jrsonnet_gcmodule::collect_thread_cycles();
        self.last = start.elapsed();
        self.since = Instant::now();
        self.made = 0;
    }
}

/// Output bytes under which a worker collects its garbage after a task.
const SMALL_TASK_BYTES: usize = 256 << 10;

/// One worker's share of a render: takes units until none is left or the
/// deadline has passed. Returns whether the share was small.
fn work(job: &EvalJob, queue: &UnitQueue, tx: &mpsc::Sender<WorkerDone>) -> bool {
    let _depth = limit_stack_depth(job.max_stack);
    let session = Session::new(job, Some(queue.traces.clone()));
    let mut bytes = 0;
    let mut shared = WorkerShared::default();
    let mut gc = Collector::new();
    {
        let _entered = session.state.enter();
        loop {
            let i = queue.next.fetch_add(1, Ordering::SeqCst);
            let Some(unit) = queue
                .units
                .lock()
                .ok()
                .and_then(|mut u| u.get_mut(i).and_then(Option::take))
            else {
                break;
            };
            if Instant::now() >= job.deadline {
                break;
            }
            session.unit.set(i);
            let result = evaluate_unit(
                &session,
                &unit,
                &mut shared,
                &queue.budget,
                job.parse_values,
            )
            .map_err(|e| session.failure(&e));
            queue.traces.done(i);
            drop(unit);
            // A failure says nothing of how much it made: left to the
            // next collection.
            let made = result.as_ref().map_or(SMALL_UNIT_BYTES, |out| {
                out.items.iter().map(String::len).sum::<usize>()
            });
            bytes += made;
            gc.after(made);
            let result = result.map(|mut out| {
                if !job.keep_text {
                    out.items = Vec::new();
                }
                out
            });
            match queue.results.lock() {
                Ok(mut results) => match results.get_mut(i) {
                    Some(slot) => *slot = Some(result),
                    // Taken: the render has ended without this worker.
                    None => break,
                },
                Err(_) => break,
            }
        }
    }
    let loaded = session.loaded.borrow().clone();
    let probed = session.probed.borrow().clone();
    let _ = tx.send(WorkerDone(loaded, probed));
    bytes < SMALL_TASK_BYTES
}

fn evaluate_unit(
    session: &Session,
    unit: &UnitInput,
    shared: &mut WorkerShared,
    budget: &OutputBudget,
    parse_values: bool,
) -> jrsonnet_evaluator::Result<UnitOutput> {
    let entry = session.entry()?;
    let state = unit_state(unit, shared);
    let mut tla: HashMap<IStr, TlaArg> = HashMap::with_capacity(1);
    tla.insert(IStr::from("state"), TlaArg::Val(state));
    let val = apply_tla(&tla, entry)?;
    let too_large = |what: String| -> jrsonnet_evaluator::Error {
        ErrorKind::RuntimeError(format!("{OUTPUT_LIMIT}{what}").into()).into()
    };
    let take = |text: String| -> jrsonnet_evaluator::Result<String> {
        let bytes = budget.bytes.fetch_add(text.len(), Ordering::Relaxed) + text.len();
        if bytes > super::MAX_OUTPUT_BYTES {
            return Err(too_large(format!(
                "the output is more than the {} MiB limit",
                super::MAX_OUTPUT_BYTES >> 20
            )));
        }
        Ok(text)
    };
    let Val::Arr(items) = &val else {
        let text = val.manifest(JsonFormat::cli(0))?;
        let values = if parse_values {
            vec![parse(&text)?]
        } else {
            Vec::new()
        };
        return Ok(UnitOutput {
            values,
            items: vec![take(text)?],
            array: false,
        });
    };
    let mut out = Vec::with_capacity(items.len() as usize);
    let mut values = Vec::with_capacity(items.len() as usize);
    for i in 0..items.len() {
        let total = budget.items.fetch_add(1, Ordering::Relaxed) + 1;
        if total > super::MAX_OUTPUT_ITEMS {
            return Err(too_large(format!(
                "the output has more than the {} elements limit",
                super::MAX_OUTPUT_ITEMS
            )));
        }
        let item = items.get(i)?.unwrap_or(Val::Null);
        let text = item.manifest(JsonFormat::cli(0))?;
        if parse_values {
            values.push(parse(&text)?);
        }
        out.push(take(text)?);
    }
    Ok(UnitOutput {
        values,
        items: out,
        array: true,
    })
}

/// A manifested value as JSON data (what jrsonnet prints is JSON).
fn parse(text: &str) -> jrsonnet_evaluator::Result<Json> {
    serde_json::from_str(text).map_err(|e| {
        ErrorKind::RuntimeError(format!("the template output is not valid JSON: {e}").into()).into()
    })
}

/// What every unit of a render has in common, as engine values, made
/// once per worker: the shared fields, and the `services` object holding
/// every service's name (see [`UnitInput::service_names`]). Each is kept
/// with the address of what it was made from.
#[derive(Default)]
struct WorkerShared {
    fields: Option<(usize, Vec<(IStr, Val)>)>,
    names: Option<(usize, ObjValue)>,
}

/// A service's state in a unit that does not see it: reading it fails,
/// naming the service.
struct OtherService(IStr);
trace_acyclic!(OtherService);

impl ThunkValue for OtherService {
    type Output = Val;

    fn get(&self) -> jrsonnet_evaluator::Result<Val> {
        Err(ErrorKind::RuntimeError(
            format!("{OTHER_SERVICE}`{}` is not visible to this unit", self.0).into(),
        )
        .into())
    }
}

/// Start of the message for a read of another service's state in a unit.
pub const OTHER_SERVICE: &str = "the state of service ";

/// The unit's state as an engine value: built from the JSON tree (never
/// through text, and never through `Val::from_serde`, which turns integers
/// into strings), withheld fields failing when read.
fn unit_state(unit: &UnitInput, shared: &mut WorkerShared) -> Val {
    let key = Arc::as_ptr(&unit.shared) as usize;
    if shared.fields.as_ref().is_none_or(|(k, _)| *k != key) {
        let fields = unit
            .shared
            .iter()
            .map(|(k, v)| (IStr::from(k.as_str()), json_val(v)))
            .collect();
        shared.fields = Some((key, fields));
    }
    let names = unit.service_names.as_ref().map(|names| {
        let key = Arc::as_ptr(names) as usize;
        match &shared.names {
            Some((k, obj)) if *k == key => obj.clone(),
            _ => {
                let mut obj = ObjValueBuilder::with_capacity(names.len());
                for name in names.iter() {
                    let name = IStr::from(name.as_str());
                    obj.field(name.clone())
                        .thunk(Thunk::new(OtherService(name)));
                }
                let obj = obj.build();
                shared.names = Some((key, obj.clone()));
                obj
            }
        }
    });
    let fields = shared
        .fields
        .as_ref()
        .map(|(_, f)| f.as_slice())
        .unwrap_or_default();
    let mut obj =
        ObjValueBuilder::with_capacity(fields.len() + unit.own.len() + unit.withheld.len() + 1);
    let own = |k: &str| {
        (names.is_some() && k == "services")
            || unit.own.iter().any(|(o, _)| o == k)
            || unit.withheld.iter().any(|(o, _)| o == k)
    };
    for (k, v) in fields {
        if !own(k) {
            obj.field(k.clone()).value(v.clone());
        }
    }
    for (k, v) in unit.own.iter() {
        if names.is_none() || k != "services" {
            obj.field(k.as_str()).value(json_val(v));
        }
    }
    if let Some(names) = names {
        // Every name, failing when read, under the unit's own services.
        let mut services = ObjValueBuilder::new();
        services.with_super(names);
        if let Some((_, Json::Object(seen))) = unit.own.iter().find(|(k, _)| k == "services") {
            for (k, v) in seen {
                services.field(k.as_str()).value(json_val(v));
            }
        }
        if let Some((key, text)) = &unit.service_text {
            match text_val(text) {
                Ok(value) => services.field(key.as_str()).value(value),
                Err(e) => {
                    let message = format!("the state of service `{key}` cannot be read: {e}");
                    let error: jrsonnet_evaluator::Error =
                        ErrorKind::RuntimeError(message.into()).into();
                    services.field(key.as_str()).thunk(Thunk::errored(error));
                }
            }
        }
        obj.field("services").value(Val::Obj(services.build()));
    }
    for (k, message) in &unit.withheld {
        let error: jrsonnet_evaluator::Error =
            ErrorKind::RuntimeError(message.as_str().into()).into();
        obj.field(k.as_str()).thunk(Thunk::errored(error));
    }
    Val::Obj(obj.build())
}

/// A JSON value as an engine value.
fn json_val(v: &Json) -> Val {
    match v {
        Json::Null => Val::Null,
        Json::Bool(b) => Val::Bool(*b),
        // JSON numbers are finite; as in every Jsonnet engine, a number is
        // a double.
        Json::Number(n) => n
            .as_f64()
            .and_then(NumValue::new)
            .map_or(Val::Null, Val::Num),
        Json::String(s) => Val::string(s.as_str()),
        Json::Array(items) => Val::arr(items.iter().map(json_val).collect::<Vec<Val>>()),
        Json::Object(fields) => {
            let mut obj = ObjValueBuilder::with_capacity(fields.len());
            for (k, v) in fields {
                obj.field(k.as_str()).value(json_val(v));
            }
            Val::Obj(obj.build())
        }
    }
}

/// JSON text as an engine value, read straight into one (no JSON tree
/// between): numbers as [`json_val`] makes them. As deep as the text is
/// (the state is as deep as its YAML, which is bounded).
fn text_val(text: &str) -> Result<Val, serde_json::Error> {
    let mut reader = serde_json::Deserializer::from_str(text);
    reader.disable_recursion_limit();
    serde::de::Deserializer::deserialize_any(&mut reader, ValVisitor)
}

/// Builds engine values from what a JSON reader finds.
struct ValVisitor;

impl<'de> serde::de::Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Val, E> {
        Ok(Val::Bool(b))
    }
    // As `serde_json::Number::as_f64` does for `json_val`.
    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Val, E> {
        self.visit_f64(n as f64)
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Val, E> {
        self.visit_f64(n as f64)
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Val, E> {
        Ok(NumValue::new(n).map_or(Val::Null, Val::Num))
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Val, E> {
        Ok(Val::string(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(ValSeed)? {
            items.push(item);
        }
        Ok(Val::arr(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut obj = ObjValueBuilder::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value = map.next_value_seed(ValSeed)?;
            obj.field(key.as_ref()).value(value);
        }
        Ok(Val::Obj(obj.build()))
    }
}

/// [`ValVisitor`] as a seed, for the values inside arrays and objects.
struct ValSeed;

impl<'de> serde::de::DeserializeSeed<'de> for ValSeed {
    type Value = Val;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        d.deserialize_any(ValVisitor)
    }
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
            location: el.location.as_ref().map(span_location),
        });
    }
    EvalFailure {
        kind,
        message,
        frames,
    }
}

/// One step of a path into a JSON value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathStep {
    /// An object field.
    Field(String),
    /// An array element.
    Index(usize),
}

/// Where a template writes one field: the field's name in its file, and
/// whether it is written with `+:` (extending what is below).
#[derive(Clone, Debug)]
pub struct FieldWriter {
    /// The field's name where it is written.
    pub location: FrameLocation,
    /// Written with `+:`.
    pub plus: bool,
}

/// An output object the templates made, with where each of its leaves is
/// written.
#[derive(Clone, Debug)]
pub struct TracedObject {
    /// Its place in the unit's output array.
    pub index: usize,
    /// The object.
    pub value: Json,
    /// Each leaf's path and the fields that write it, the winner first
    /// (the layers it replaced after it). Elements of an array are written
    /// where the array is.
    pub leaves: Vec<(Vec<PathStep>, Vec<FieldWriter>)>,
}

/// Most nesting of an output object walked for its field locations.
const MAX_TRACE_DEPTH: usize = 200;

/// Evaluates one unit with field locations tracked and returns the output
/// objects `pick` chooses (by their JSON), each with where every leaf is
/// written. Only the embedded engine does this: the templates stay plain
/// Jsonnet.
pub fn trace_objects(
    job: EvalJob,
    unit: UnitInput,
    pick: Arc<dyn Fn(&Json) -> bool + Send + Sync>,
) -> Result<(Vec<TracedObject>, Vec<(String, Arc<str>)>), EvalFailure> {
    let entry = EntryPlace::of(&job);
    let Some(left) = job
        .deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    else {
        return Err(entry.locate(timed_out(job.timeout)));
    };
    let timeout = job.timeout;
    on_eval_thread(timeout, left, move || {
        let _depth = limit_stack_depth(job.max_stack);
        let session = Session::new(&job, None);
        let _entered = session.state.enter();
        jrsonnet_evaluator::track_field_locations(true);
        let result = (|| {
            let entry = session.entry()?;
            let state = unit_state(&unit, &mut WorkerShared::default());
            let mut tla: HashMap<IStr, TlaArg> = HashMap::with_capacity(1);
            tla.insert(IStr::from("state"), TlaArg::Val(state));
            let val = apply_tla(&tla, entry)?;
            let items: Vec<Val> = match &val {
                Val::Arr(items) => (0..items.len())
                    .map(|i| items.get(i).map(|v| v.unwrap_or(Val::Null)))
                    .collect::<jrsonnet_evaluator::Result<_>>()?,
                other => vec![other.clone()],
            };
            let mut picked = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let value = parse(&item.manifest(JsonFormat::cli(0))?)?;
                if !pick(&value) {
                    continue;
                }
                let mut leaves = Vec::new();
                walk_fields(item, &mut Vec::new(), &[], &mut leaves)?;
                picked.push(TracedObject {
                    index,
                    value,
                    leaves,
                });
            }
            Ok(picked)
        })();
        jrsonnet_evaluator::track_field_locations(false);
        let files = session.loaded.borrow().clone();
        result
            .map(|picked| (picked, files))
            .map_err(|e| session.failure(&e))
    })
    .map_err(|f| entry.locate(f))
}

/// Every leaf under `val` (as manifesting sees them: visible fields only),
/// with the fields that write it.
fn walk_fields(
    val: &Val,
    path: &mut Vec<PathStep>,
    writers: &[FieldWriter],
    out: &mut Vec<(Vec<PathStep>, Vec<FieldWriter>)>,
) -> jrsonnet_evaluator::Result<()> {
    if path.len() > MAX_TRACE_DEPTH {
        return Ok(());
    }
    match val {
        Val::Obj(obj) if !obj.is_empty() => {
            for key in obj.fields_ex(false) {
                let value = obj.get(key.clone())?.unwrap_or(Val::Null);
                let own: Vec<FieldWriter> = obj
                    .field_origins(&key)
                    .into_iter()
                    .filter_map(|(span, plus)| {
                        Some(FieldWriter {
                            location: span_location(&span?),
                            plus,
                        })
                    })
                    .collect();
                path.push(PathStep::Field(key.to_string()));
                walk_fields(
                    &value,
                    path,
                    if own.is_empty() { writers } else { &own },
                    out,
                )?;
                path.pop();
            }
        }
        Val::Arr(items) if !items.is_empty() => {
            for i in 0..items.len() {
                let item = items.get(i)?.unwrap_or(Val::Null);
                path.push(PathStep::Index(i as usize));
                walk_fields(&item, path, writers, out)?;
                path.pop();
            }
        }
        _ => out.push((path.clone(), writers.to_vec())),
    }
    Ok(())
}

/// A jrsonnet span as a place in a file.
fn span_location(span: &jrsonnet_evaluator::Span) -> FrameLocation {
    FrameLocation {
        path: span.0.source_path().to_string(),
        code: span.0.code().into(),
        start: span.1 as usize,
        end: span.2 as usize,
    }
}

#[cfg(test)]
mod trace_order_tests {
    use super::*;

    #[test]
    fn later_units_hold_no_more_than_the_budget_can_print_and_earlier_lines_win() {
        let traces = UnitTraces::new();
        let held = |unit: usize| {
            let order = traces.order.lock().unwrap();
            (order.held.get(&unit).map_or(0, Vec::len), order.held_lines)
        };
        let room = (TRACE_BUDGET.load(Ordering::SeqCst) + 1)
            .saturating_sub(TRACE_PRINTED.load(Ordering::SeqCst));
        // Unit 0 runs (and would print); units 3 and 9 trace meanwhile.
        for _ in 0..10_000 {
            traces.trace(9, "TRACE: x.jsonnet:1 nine\nsecond line".to_owned());
        }
        assert_eq!(held(9), (room, room));
        for _ in 0..10 {
            traces.trace(3, "TRACE: x.jsonnet:1 three".to_owned());
        }
        // The first lines in unit order are kept: unit 3's, then unit 9's.
        assert_eq!(held(3).0, room.min(10));
        assert_eq!(held(9).0, room - room.min(10));
        let long = "y".repeat(10 * MAX_TRACE_LINE_CHARS);
        traces.trace(3, long);
        let order = traces.order.lock().unwrap();
        assert!(order
            .held
            .values()
            .flatten()
            .all(|l| l.chars().count() <= MAX_TRACE_LINE_CHARS + 1));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::Value as Json;

    use super::{small_pages_suit, use_small_pages};

    use jrsonnet_gcmodule::{
        collect_thread_cycles, collect_thread_young_cycles, count_thread_tracked, trace_acyclic,
        Cc, Trace, TraceBox,
    };

    /// The state a render hands over as text is the value it would hand
    /// over as JSON: the same numbers, strings and nesting.
    #[test]
    fn state_read_from_text_is_the_state_made_from_values() {
        let mut deep = String::new();
        for _ in 0..70 {
            deep.push_str("{\"a\":[");
        }
        for _ in 0..70 {
            deep.push_str("]}");
        }
        let texts = [
            r#"{"replicas":3,"big":18446744073709551615,"neg":-9223372036854775808,"f":0.1,"e":1e300,"z":-0.0}"#.to_owned(),
            r#"{"s":"é\u00e9\n\"q\"","empty":{},"list":[],"n":null,"t":true,"nested":{"x":[1,{"y":"z"}]}}"#.to_owned(),
            r#"[1,"two",[3],{"four":4}]"#.to_owned(),
            deep,
        ];
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                for text in &texts {
                    let json: Json = {
                        let mut reader = serde_json::Deserializer::from_str(text);
                        reader.disable_recursion_limit();
                        serde::Deserialize::deserialize(&mut reader).unwrap()
                    };
                    let from_text = super::text_val(text).unwrap();
                    let from_value = super::json_val(&json);
                    let manifest = |v: &super::Val| v.manifest(super::JsonFormat::cli(0)).unwrap();
                    assert_eq!(manifest(&from_text), manifest(&from_value), "{text}");
                }
                assert!(super::text_val("{\"a\":").is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// An object that may point at others (a type the collector can walk
    /// without recursing into its own definition).
    type Node = Cc<RefCell<Vec<TraceBox<dyn Trace>>>>;

    fn node() -> Node {
        Cc::new(RefCell::new(Vec::new()))
    }

    fn point(from: &Node, to: &Node) {
        from.borrow_mut().push(TraceBox(Box::new(to.clone())));
    }

    fn cycle() -> (Node, Node) {
        let (a, b) = (node(), node());
        point(&a, &b);
        point(&b, &a);
        (a, b)
    }

    #[test]
    fn small_pages_are_for_renders_that_evaluate_most_of_many_units() {
        assert!(small_pages_suit(1000, 1001));
        assert!(small_pages_suit(64, 128));
        assert!(!small_pages_suit(63, 63), "a small render keeps huge pages");
        assert!(!small_pages_suit(1, 5001), "a warm render keeps huge pages");
        assert!(!small_pages_suit(2000, 5001));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn small_pages_are_asked_of_the_kernel() {
        use_small_pages();
        // SAFETY: PR_GET_THP_DISABLE reads a flag of this process.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }

    /// Panics when dropped.
    struct Bomb;
    trace_acyclic!(Bomb);
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("a drop that fails");
        }
    }

    #[test]
    fn a_collection_whose_garbage_panics_when_dropped_still_frees_the_rest() {
        std::thread::spawn(|| {
            let mut cycles = Vec::new();
            for _ in 0..3 {
                cycles.push(cycle());
            }
            cycles[1].0.borrow_mut().push(TraceBox(Box::new(Bomb)));
            drop(cycles);
            assert_eq!(count_thread_tracked(), 6);
            let quiet = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let collected = std::panic::catch_unwind(collect_thread_young_cycles);
            std::panic::set_hook(quiet);
            assert!(collected.is_err());
            // The references the collection held were given back as the
            // panic unwound: what it had not dropped yet is garbage the
            // next collection frees, and nothing is held for good.
            let (a, b) = cycle();
            drop((a, b));
            assert!(collect_thread_young_cycles() >= 2);
            assert_eq!(count_thread_tracked(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn young_collections_free_new_cycles_and_leave_old_garbage_to_full_ones() {
        // A thread of its own: the collector's lists are per thread.
        std::thread::spawn(|| {
            let kept = node();
            assert_eq!(collect_thread_young_cycles(), 0);
            assert_eq!(count_thread_tracked(), 1);

            // New garbage goes in the next young collection.
            drop(cycle());
            assert_eq!(collect_thread_young_cycles(), 2);
            assert_eq!(count_thread_tracked(), 1);

            // Reachable from an old object: survives and becomes old.
            let (c, _) = cycle();
            point(&kept, &c);
            drop(c);
            assert_eq!(collect_thread_young_cycles(), 0);
            assert_eq!(count_thread_tracked(), 3);

            // Old garbage waits for a full collection.
            kept.borrow_mut().clear();
            assert_eq!(collect_thread_young_cycles(), 0);
            assert_eq!(count_thread_tracked(), 3);
            assert_eq!(collect_thread_cycles(), 2);
            assert_eq!(count_thread_tracked(), 1);
            drop(kept);
            assert_eq!(count_thread_tracked(), 0);
        })
        .join()
        .unwrap();
    }
}
