//! The command line: clap definitions and dispatch. Each command lives in
//! its own file and only turns arguments into one library call and its
//! result into output and an exit code.

mod cmp;
mod diff;
mod eval;
mod promote;
mod render;
mod schema;
mod state;
mod tags;
mod validate;
mod watchdog;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::diagnostics::render::{render_all, ErrorFormat};
use crate::diagnostics::{Diagnostic, Diagnostics, Sources};
use crate::evaluate::library::EmbeddedLibrary;
use crate::evaluate::Limits;
use crate::repo::git::GitRevision;
use crate::repo::{RepoFiles, WorkTree};
use crate::redact::SecretValues;
use crate::{Failure, Project};

/// Everything went well.
pub const EXIT_OK: i32 = 0;
/// The inputs are invalid (diagnostics were printed).
pub const EXIT_INVALID: i32 = 1;
/// Usage error or internal failure.
pub const EXIT_USAGE: i32 = 2;
/// Stopped by Ctrl-C or SIGTERM (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Compile a GitOps control-center repository into Kubernetes manifests.
#[derive(Parser, Debug)]
#[command(name = "controlcenter", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  controlcenter render --env dev\n  controlcenter validate --repo path/to/repo\n  controlcenter state --env prod | jq .services"
)]
pub struct Cli {
    /// The control-center repository.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// Use this lib-jsonnet directory instead of the built-in library.
    #[arg(long, global = true, value_name = "DIR")]
    pub lib: Option<PathBuf>,
    /// How to print problems.
    #[arg(long, global = true, value_enum, default_value_t = ErrorFormat::Human)]
    pub error_format: ErrorFormat,
    /// Colour in human diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Stop after this many seconds of Jsonnet evaluation, in all (every
    /// environment and revision the command renders).
    #[arg(long, global = true, default_value_t = 20.0, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: f64,
    /// Maximum Jsonnet call depth.
    #[arg(long, global = true, default_value_t = 500, value_name = "FRAMES")]
    pub max_stack: usize,
    /// Stop with an error when the command's resident memory passes this
    /// many MiB.
    #[arg(long, global = true, env = "CONTROLCENTER_MAX_MEMORY", default_value_t = watchdog::DEFAULT_MAX_MEMORY_MIB, value_name = "MIB", value_parser = clap::value_parser!(u64).range(64..))]
    pub max_memory: u64,
    /// Show at most this many problems (all are still counted).
    #[arg(long, global = true, default_value_t = 200, value_name = "N")]
    pub max_errors: usize,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour human diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// When stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the manifests of one environment.
    Render(render::RenderArgs),
    /// Check every environment: schemas, resolution, rendering, policies.
    Validate(validate::ValidateArgs),
    /// Print the resolved state of one environment: what the library receives (secret fields redacted).
    State(state::StateArgs),
    /// Evaluate a Jsonnet file with the library on the import path.
    Eval(eval::EvalArgs),
    /// Export the JSON Schemas of the input files.
    Schema(schema::SchemaArgs),
    /// The Argo CD config-management plugin (generate, discover).
    Cmp(cmp::CmpArgs),
    /// Read and write tags.yaml (the CI write-back).
    Tags(tags::TagsArgs),
    /// Compare the manifests of two revisions, the work tree, or two environments.
    Diff(diff::DiffArgs),
    /// Preview promoting one environment branch into another.
    Promote(promote::PromoteArgs),
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> i32 {
    // The command's deadline starts now; its memory is watched from now.
    let _ = cli.limits();
    let over = Diagnostic::error(
        crate::diagnostics::Code::MemoryLimit,
        format!(
            "the command used more than {} MiB of memory and was stopped",
            cli.max_memory
        ),
    )
    .help("look for a template that multiplies objects or strings; raise --max-memory (or CONTROLCENTER_MAX_MEMORY) only if the repository really needs it");
    let plugin = matches!(cli.command, Command::Cmp(_));
    let report = if plugin {
        crate::diagnostics::render::short(&over, &Sources::default())
    } else {
        cli.format_report(&Sources::default(), vec![over])
    };
    let machine = cli.error_format != ErrorFormat::Human;
    watchdog::start(
        cli.max_memory,
        report,
        !plugin && machine && matches!(cli.command, Command::Validate(_)),
    );
    match &cli.command {
        Command::Render(a) => render::run(&cli, a),
        Command::Validate(a) => validate::run(&cli, a),
        Command::State(a) => state::run(&cli, a),
        Command::Eval(a) => eval::run(&cli, a),
        Command::Schema(a) => schema::run(&cli, a),
        Command::Cmp(a) => cmp::run(&cli, a),
        Command::Tags(a) => tags::run(&cli, a),
        Command::Diff(a) => diff::run(&cli, a),
        Command::Promote(a) => promote::run(&cli, a),
    }
}

impl Cli {
    /// The command's limits: one deadline from the start of the command.
    fn limits(&self) -> Limits {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        Limits::new(
            self.max_stack.max(1),
            Duration::from_secs_f64(self.timeout),
            *START.get_or_init(Instant::now),
        )
    }

    /// The embedded library, or `--lib DIR`; on failure prints and
    /// returns the exit code.
    fn library(&self) -> Result<Arc<dyn RepoFiles>, i32> {
        match &self.lib {
            None => Ok(Arc::new(EmbeddedLibrary)),
            Some(dir) => WorkTree::open(dir)
                .map(|w| Arc::new(w) as Arc<dyn RepoFiles>)
                .map_err(|e| {
                    eprintln!("error: --lib {}: {e}", dir.display());
                    EXIT_USAGE
                }),
        }
    }

    /// Opens and validates the repository; on failure prints and returns the exit code.
    fn project(&self) -> Result<Project, i32> {
        let (repo, _) = self.snapshot(None)?;
        self.project_of(repo)
    }

    /// The repository's work tree (`rev` = None) or a Git revision of it,
    /// with a label for messages.
    fn snapshot(&self, rev: Option<&str>) -> Result<(Arc<dyn RepoFiles>, String), i32> {
        match rev {
            None => WorkTree::open(&self.repo)
                .map(|w| (Arc::new(w) as Arc<dyn RepoFiles>, "the work tree".to_owned()))
                .map_err(|e| {
                    eprintln!("error: cannot open repository {}: {e}", self.repo.display());
                    EXIT_USAGE
                }),
            Some(rev) => GitRevision::open(&self.repo, rev)
                .map(|g| (Arc::new(g) as Arc<dyn RepoFiles>, rev.to_owned()))
                .map_err(|e| {
                    eprintln!("error[CC0101]: {e}");
                    eprintln!("  help: name a commit, branch or tag of the repository's Git history (git log --oneline)");
                    EXIT_INVALID
                }),
        }
    }

    /// Renders `env` of a snapshot, with the secret values it read (so a
    /// report about the result can scrub them); failures are reported
    /// under a header naming the snapshot.
    fn render_snapshot(
        &self,
        repo: Arc<dyn RepoFiles>,
        env: &str,
        label: &str,
    ) -> Result<(Vec<crate::process::Resource>, SecretValues), i32> {
        let mut project = self
            .project_of(repo)
            .inspect_err(|_| eprintln!("(while loading {label})"))?;
        match project.render(env) {
            Ok(resources) => Ok((resources, project.sources.secrets().clone())),
            Err(d) => {
                self.report(&project.sources, d);
                eprintln!("(while rendering `{env}` at {label})");
                Err(EXIT_INVALID)
            }
        }
    }

    /// Loads and validates a snapshot; on failure prints and returns the exit code.
    fn project_of(&self, repo: Arc<dyn RepoFiles>) -> Result<Project, i32> {
        let lib = self.library()?;
        Project::load(repo, lib, self.limits()).map_err(
            |Failure {
                 sources,
                 diagnostics,
             }| {
                self.report(&sources, diagnostics);
                EXIT_INVALID
            },
        )
    }

    fn color(&self) -> bool {
        match self.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }

    /// Prints diagnostics in the chosen format: to stderr, except the
    /// machine formats of `validate`, which go to stdout where CI reads them
    /// (render's stdout is reserved for manifests).
    fn report(&self, sources: &Sources, diagnostics: Vec<Diagnostic>) {
        let text = self.format_report(sources, diagnostics);
        let machine = self.error_format != ErrorFormat::Human;
        if machine && matches!(self.command, Command::Validate(_)) {
            print_stdout(&text);
        } else {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }

    fn format_report(&self, sources: &Sources, diagnostics: Vec<Diagnostic>) -> String {
        let mut all = Diagnostics::default();
        all.extend(diagnostics);
        let mut sorted = all.into_sorted(sources);
        let errors = sorted.iter().filter(|d| d.is_error()).count();
        let hidden = sorted.len().saturating_sub(self.max_errors.max(1));
        sorted.truncate(self.max_errors.max(1));
        let mut text = render_all(&sorted, sources, self.error_format, self.color());
        if self.error_format == ErrorFormat::Human {
            if hidden > 0 {
                text.push_str(&format!(
                    "note: {hidden} more not shown (--max-errors {})\n",
                    self.max_errors
                ));
            }
            if errors > 0 {
                text.push_str(&format!(
                    "error: {errors} problem{} found\n",
                    if errors == 1 { "" } else { "s" }
                ));
            }
        }
        text
    }
}

/// `--timeout`: a finite number of seconds, more than 0, at most a day.
fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(format!(
            "`{s}` is not a time limit: give seconds, more than 0 and at most 86400"
        ))
    }
}

/// Writes to stdout, treating a closed pipe (`| head`) as success.
fn print_stdout(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => EXIT_OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            EXIT_USAGE
        }
    }
}
