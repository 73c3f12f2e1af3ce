//! The command line: clap definitions and dispatch. Each command lives in
//! its own file and only turns arguments into one library call and its
//! result into output and an exit code.

mod cmp;
mod diff;
mod eval;
mod explain;
mod hydrate;
pub mod output;
mod promote;
mod render;
mod schema;
mod state;
mod tags;
mod validate;
mod watchdog;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::diagnostics::render::ErrorFormat;
use crate::diagnostics::{Code, Diagnostic, Sources};
use crate::evaluate::library::EmbeddedLibrary;
use crate::evaluate::{cache, Cache, Limits};
use crate::redact::SecretValues;
use crate::repo::git::GitRevision;
use crate::repo::{RepoFiles, WorkTree};
use crate::{Failure, Project, RenderOptions};
use output::Output;

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
    #[arg(long, global = true, value_enum, default_value_t = ErrorFormatArg::Human)]
    pub error_format: ErrorFormatArg,
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
    /// many MiB [default: 640, plus 16 per MiB of input YAML].
    #[arg(long, global = true, env = "CONTROLCENTER_MAX_MEMORY", value_name = "MIB", value_parser = clap::value_parser!(u64).range(64..))]
    pub max_memory: Option<u64>,
    /// Show at most this many problems (all are still counted).
    #[arg(long, global = true, default_value_t = 200, value_name = "N")]
    pub max_errors: usize,
    /// Evaluation threads (default: one per core).
    #[arg(
        long,
        short = 'j',
        global = true,
        env = "CONTROLCENTER_JOBS",
        default_value_t = 0,
        value_name = "N",
        hide_default_value = true
    )]
    pub jobs: usize,
    /// Evaluate every unit, neither reading nor writing the evaluation
    /// cache ($CONTROLCENTER_CACHE_DIR, else $XDG_CACHE_HOME/controlcenter,
    /// else ~/.cache/controlcenter).
    #[arg(long, global = true, env = "CONTROLCENTER_NO_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_cache: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Environment variables that set options of [`Cli`].
const OPTION_VARS: [&str; 3] = [
    "CONTROLCENTER_JOBS",
    "CONTROLCENTER_NO_CACHE",
    "CONTROLCENTER_MAX_MEMORY",
];

/// Unsets the option variables set to nothing (`CONTROLCENTER_JOBS=`), as
/// a pod spec or CI file often leaves them: empty means not set, not a
/// value every command refuses. Called before the arguments are parsed,
/// while the process has one thread.
pub fn unset_empty_option_vars() {
    for name in OPTION_VARS {
        if std::env::var_os(name).is_some_and(|v| v.to_string_lossy().trim().is_empty()) {
            std::env::remove_var(name);
        }
    }
}

/// `--error-format`: how problems are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ErrorFormatArg {
    /// Source snippets with file:line:col, colour on a terminal.
    Human,
    /// One JSON object per line.
    Json,
    /// GitHub Actions workflow annotations (`::error file=…`).
    Github,
    /// One line per problem and its hint.
    Short,
}

impl From<ErrorFormatArg> for ErrorFormat {
    fn from(a: ErrorFormatArg) -> Self {
        match a {
            ErrorFormatArg::Human => ErrorFormat::Human,
            ErrorFormatArg::Json => ErrorFormat::Json,
            ErrorFormatArg::Github => ErrorFormat::Github,
            ErrorFormatArg::Short => ErrorFormat::Short,
        }
    }
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
    /// Where each value of a rendered object comes from: input lines and template lines.
    Explain(explain::ExplainArgs),
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
    /// Commit an environment's rendered manifests to a branch (rendered manifests in Git).
    Hydrate(hydrate::HydrateArgs),
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> i32 {
    // The command's deadline starts now; its memory is watched from now.
    let _ = cli.limits();
    let out = cli.output();
    let to_stdout = out.problems_to_stdout && out.format != ErrorFormat::Human && !out.plugin;
    let report = move |limit: u64| {
        let over = Diagnostic::error(
            crate::diagnostics::Code::MemoryLimit,
            format!("the command used more than {limit} MiB of memory and was stopped"),
        )
        .help("look for a template that multiplies objects or strings; raise --max-memory (or CONTROLCENTER_MAX_MEMORY) only if the repository really needs it");
        out.format(&Sources::default(), vec![over])
    };
    watchdog::start(cli.max_memory, report, to_stdout);
    match &cli.command {
        Command::Render(a) => render::run(&cli, a),
        Command::Validate(a) => validate::run(&cli, a),
        Command::State(a) => state::run(&cli, a),
        Command::Eval(a) => eval::run(&cli, a),
        Command::Explain(a) => explain::run(&cli, a),
        Command::Schema(a) => schema::run(&cli, a),
        Command::Cmp(a) => cmp::run(&cli, a),
        Command::Tags(a) => tags::run(&cli, a),
        Command::Diff(a) => diff::run(&cli, a),
        Command::Promote(a) => promote::run(&cli, a),
        Command::Hydrate(a) => hydrate::run(&cli, a),
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

    /// How this command reports.
    pub fn output(&self) -> Output {
        let plugin = matches!(self.command, Command::Cmp(_));
        Output {
            format: if plugin {
                ErrorFormat::Short
            } else {
                self.error_format.into()
            },
            color: self.color(),
            max_errors: self.max_errors,
            problems_to_stdout: matches!(self.command, Command::Validate(_)),
            plugin,
        }
    }

    /// Reports one problem that no file explains; returns `exit`.
    fn fail(&self, d: Diagnostic, exit: i32) -> i32 {
        self.output().report(&Sources::default(), vec![d]);
        exit
    }

    /// `controlcenter [--repo R] [--lib L] <words>`: a command line that
    /// runs `words` on this repository, for messages that say what to run.
    fn command_line(&self, words: &[&str]) -> String {
        let mut all: Vec<String> = vec!["controlcenter".into()];
        if self.repo != std::path::Path::new(".") {
            all.extend(["--repo".into(), self.repo.to_string_lossy().into_owned()]);
        }
        if let Some(lib) = &self.lib {
            all.extend(["--lib".into(), lib.to_string_lossy().into_owned()]);
        }
        all.extend(words.iter().map(|w| (*w).to_owned()));
        crate::commands::markdown::shell_words(&all)
    }

    /// The embedded library, or `--lib DIR`; on failure reports and
    /// returns the exit code.
    fn library(&self) -> Result<Arc<dyn RepoFiles>, i32> {
        match &self.lib {
            None => Ok(Arc::new(EmbeddedLibrary)),
            Some(dir) => WorkTree::open(dir)
                .map(|w| Arc::new(w) as Arc<dyn RepoFiles>)
                .map_err(|e| {
                    self.fail(
                        Diagnostic::error(
                            Code::DirUnreadable,
                            format!("--lib {}: {e}", dir.display()),
                        )
                        .help("--lib names a lib-jsonnet directory (with main.jsonnet)"),
                        EXIT_USAGE,
                    )
                }),
        }
    }

    /// Opens and validates the repository; on failure reports and returns the exit code.
    fn project(&self) -> Result<Project, i32> {
        let (repo, _) = self.snapshot(None)?;
        self.project_of(repo, None, &[], None)
    }

    /// The repository's work tree (`rev` = None) or a Git revision of it,
    /// with a label for messages.
    fn snapshot(&self, rev: Option<&str>) -> Result<(Arc<dyn RepoFiles>, String), i32> {
        match rev {
            None => WorkTree::open(&self.repo)
                .map(|w| (Arc::new(w) as Arc<dyn RepoFiles>, "the work tree".to_owned()))
                .map_err(|e| {
                    self.fail(
                        Diagnostic::error(
                            Code::DirUnreadable,
                            format!("cannot open repository {}: {e}", self.repo.display()),
                        )
                        .help("--repo names the control-center repository's directory"),
                        EXIT_USAGE,
                    )
                }),
            Some(rev) => GitRevision::open(&self.repo, rev)
                .map(|g| (Arc::new(g) as Arc<dyn RepoFiles>, rev.to_owned()))
                .map_err(|e| {
                    self.fail(
                        Diagnostic::error(Code::UnknownRevision, e.to_string()).help(
                            "name a commit, branch or tag of the repository's Git history (git log --oneline)",
                        ),
                        EXIT_INVALID,
                    )
                }),
        }
    }

    /// Renders `env` of a snapshot read with `options`, with the secret
    /// values it read (so a report about the result can scrub them); a
    /// failure comes back to report, with a note naming the snapshot.
    fn render_snapshot(
        &self,
        options: RenderOptions,
        env: &str,
        label: &str,
    ) -> Result<(Vec<crate::process::Resource>, SecretValues), SideFailure> {
        let mut options = options;
        options.env = Some(env.to_owned());
        let mut project = match Project::load(options) {
            Ok(p) => p,
            Err(Failure {
                sources,
                diagnostics,
            }) => {
                let noted = diagnostics
                    .into_iter()
                    .map(|d| d.note(format!("while loading {label}")))
                    .collect();
                return Err(SideFailure(sources, noted));
            }
        };
        match project.render(env) {
            Ok(resources) => Ok((resources, project.sources.secrets().clone())),
            Err(d) => {
                let noted = d
                    .into_iter()
                    .map(|d| d.note(format!("while rendering `{env}` at {label}")))
                    .collect();
                Err(SideFailure(project.sources, noted))
            }
        }
    }

    /// What a render of `repo` reads, with this command line's library and
    /// limits; on failure reports and returns the exit code.
    fn render_options(
        &self,
        repo: Arc<dyn RepoFiles>,
        default_namespace: Option<String>,
        services: &[String],
    ) -> Result<RenderOptions, i32> {
        Ok(RenderOptions {
            repo,
            lib: self.library()?,
            limits: self.limits(),
            default_namespace,
            workers: self.jobs,
            cache: self.cache()?,
            services: (!services.is_empty()).then(|| services.iter().cloned().collect()),
            env: None,
        })
    }

    /// The evaluation cache, unless `--no-cache` (or no home directory);
    /// a size bound that is not one fails the command.
    fn cache(&self) -> Result<Option<Arc<Cache>>, i32> {
        if self.no_cache {
            return Ok(None);
        }
        if let Err(why) = cache::size_bound() {
            return Err(self.fail(
                Diagnostic::error(Code::Usage, why).help(
                    "set it to the cache's size in MiB (0 stores nothing), or unset it for 256 MiB",
                ),
                EXIT_USAGE,
            ));
        }
        Ok(cache::default_dir().map(|dir| Arc::new(Cache::new(dir))))
    }

    /// Loads and validates a snapshot (to render `env` only, when given);
    /// on failure reports and returns the exit code.
    fn project_of(
        &self,
        repo: Arc<dyn RepoFiles>,
        default_namespace: Option<String>,
        services: &[String],
        env: Option<&str>,
    ) -> Result<Project, i32> {
        let mut options = self.render_options(repo, default_namespace, services)?;
        options.env = env.map(str::to_owned);
        Project::load(options).map_err(
            |Failure {
                 sources,
                 diagnostics,
             }| {
                self.output().report(&sources, diagnostics);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_variable_is_one_an_empty_value_unsets() {
        use clap::CommandFactory as _;
        let mut from_clap: Vec<String> = Cli::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        from_clap.sort();
        let mut listed: Vec<String> = OPTION_VARS.iter().map(|v| (*v).to_owned()).collect();
        listed.sort();
        assert_eq!(listed, from_clap);
    }
}

/// Why one side of a comparison did not render, not yet reported: the
/// caller reports the sides in their order, however they were rendered.
pub(super) struct SideFailure(Sources, Vec<Diagnostic>);

impl SideFailure {
    /// Reports the failure; the exit code.
    pub(super) fn report(self, cli: &Cli) -> i32 {
        cli.output().report(&self.0, self.1);
        EXIT_INVALID
    }
}
