//! `controlcenter eval FILE`: plain Jsonnet with the library on the import
//! path, for debugging templates and checking engine compatibility. Accepts
//! the usual jsonnet flags and prints the JSON result.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{Cli, EXIT_INVALID, EXIT_USAGE};
use crate::diagnostics::{Code, Diagnostic, Sources};
use crate::evaluate::imports::Root;
use crate::evaluate::{diagnose, engine, ArgValue, EvalJob, LIB_LABEL};
use crate::load::{load_yaml, Sensitivity};
use crate::repo::guard::{Guarded, InputGuard};
use crate::repo::{RepoFiles, WorkTree};

/// Arguments of `eval`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  controlcenter eval -J vendor --tla-code-file state=state.json lib-jsonnet/main.jsonnet\n  controlcenter eval --ext-str env=dev --tla-code replicas=3 my.jsonnet"
)]
pub struct EvalArgs {
    /// The Jsonnet file.
    pub file: PathBuf,
    /// Add a library search directory (imports may read it).
    #[arg(short = 'J', long = "jpath", value_name = "DIR")]
    pub jpath: Vec<PathBuf>,
    /// External variable as a string: NAME=VALUE (or NAME to read $NAME).
    #[arg(short = 'V', long, value_name = "NAME[=VALUE]", value_parser = parse_var)]
    pub ext_str: Vec<(String, String)>,
    /// External variable as code: NAME=CODE (or NAME to read $NAME).
    #[arg(long, value_name = "NAME[=CODE]", value_parser = parse_var)]
    pub ext_code: Vec<(String, String)>,
    /// Top-level argument as a string: NAME=VALUE (or NAME to read $NAME).
    #[arg(short = 'A', long, value_name = "NAME[=VALUE]", value_parser = parse_var)]
    pub tla_str: Vec<(String, String)>,
    /// Top-level argument as code: NAME=CODE (or NAME to read $NAME).
    #[arg(long, value_name = "NAME[=CODE]", value_parser = parse_var)]
    pub tla_code: Vec<(String, String)>,
    /// Top-level argument as code read from a file: NAME=PATH.
    #[arg(long, value_name = "NAME=PATH", value_parser = parse_file_var)]
    pub tla_code_file: Vec<(String, String)>,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
        None => std::env::var(s)
            .map(|v| (s.to_owned(), v))
            .map_err(|_| format!("no `=` and no environment variable ${s}")),
    }
}

fn parse_file_var(s: &str) -> Result<(String, String), String> {
    use std::io::Read as _;
    let (k, path) = s.split_once('=').ok_or("expected NAME=PATH")?;
    let limit = crate::repo::MAX_FILE_BYTES;
    let mut code = String::new();
    // Bounded: `/dev/zero` or a runaway pipe must not fill memory.
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_string(&mut code))
        .map_err(|e| format!("{path}: {e}"))?;
    if code.len() as u64 > limit {
        return Err(format!(
            "{path}: larger than the {} MiB limit for an input file",
            limit >> 20
        ));
    }
    Ok((k.to_owned(), code))
}

pub(super) fn run(cli: &Cli, args: &EvalArgs) -> i32 {
    let file = match args.file.canonicalize() {
        Ok(f) => f,
        Err(e) => {
            return cli.fail(
                Diagnostic::error(Code::FileMissing, format!("{}: {e}", args.file.display()))
                    .help("name a Jsonnet file to evaluate"),
                EXIT_USAGE,
            );
        }
    };
    // The file's tree: the repository when the file is inside it, else its directory.
    let repo_root = cli.repo.canonicalize().ok().filter(|r| file.starts_with(r));
    let root_dir =
        repo_root.unwrap_or_else(|| file.parent().map(PathBuf::from).unwrap_or_default());
    let rel = file
        .strip_prefix(&root_dir)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    let mut dirs = vec![root_dir.clone()];
    dirs.extend(args.jpath.iter().cloned());
    // One sandbox, as go-jsonnet sees it: a link in one directory may lead
    // into another (jsonnet-bundler links local packages into vendor/).
    let sandbox: Vec<PathBuf> = dirs.iter().filter_map(|d| d.canonicalize().ok()).collect();
    let mut trees = Vec::new();
    for dir in &dirs {
        match WorkTree::open_in_sandbox(dir, &sandbox) {
            Ok(w) => trees.push(Arc::new(w) as Arc<dyn RepoFiles>),
            Err(e) => {
                return cli.fail(
                    Diagnostic::error(Code::DirUnreadable, format!("-J {}: {e}", dir.display()))
                        .help("-J names a directory of Jsonnet libraries"),
                    EXIT_USAGE,
                );
            }
        }
    }
    // The input files of every control-center repository in reach (on
    // the path, or --repo) are never read as Jsonnet, as in `render`.
    let is_repo = |t: &Arc<dyn RepoFiles>| {
        matches!(t.read(crate::repo::layout::CONTROLCENTER_FILE), Ok(Some(_)))
    };
    let mut guard = InputGuard::default();
    // Their secret values too: no Jsonnet file may hold one, and no
    // message may show one.
    let mut sources = Sources::default();
    let mut guard_repo = |tree: &dyn RepoFiles, sources: &mut Sources| {
        guard.add(tree);
        for name in tree.list_files("") {
            if name.starts_with("env-") && crate::repo::layout::is_input_file(&name) {
                let _ = load_yaml(tree, sources, &name, Sensitivity::TerraformOutputs);
            }
        }
        let _ = load_yaml(
            tree,
            sources,
            crate::repo::layout::SECRETS_FILE,
            Sensitivity::SealedSecrets,
        );
    };
    for tree in trees.iter().filter(|t| is_repo(t)) {
        guard_repo(tree.as_ref(), &mut sources);
    }
    if let Ok(repo) = WorkTree::open(&cli.repo) {
        guard_repo(&repo, &mut sources);
    }
    let guard = Arc::new(guard);
    if let Some((name, _)) = args.tla_code_file.iter().find(|(_, code)| {
        guard
            .input_behind("", code.as_bytes(), false, None)
            .is_some()
    }) {
        return cli.fail(
            Diagnostic::error(
                Code::ImportDenied,
                format!("--tla-code-file {name}=…: that file is an input file of the repository"),
            )
            .help("templates read inputs through the state (`controlcenter state --env E`)"),
            EXIT_USAGE,
        );
    }
    let mut roots: Vec<Root> = trees
        .into_iter()
        .zip(&dirs)
        .enumerate()
        .map(|(i, (tree, dir))| {
            let in_repo = is_repo(&tree);
            Root {
                label: if i == 0 {
                    String::new()
                } else {
                    format!("{}/", dir.display())
                },
                files: Arc::new(Guarded::new(tree, guard.clone(), in_repo)),
                hides_inputs: in_repo,
            }
        })
        .collect();
    let lib = match cli.library() {
        Ok(l) => l,
        Err(code) => return code,
    };
    roots.push(Root {
        label: LIB_LABEL.to_owned(),
        files: Arc::new(Guarded::new(lib, guard, false)),
        hides_inputs: false,
    });
    let jpaths = (1..roots.len()).map(|i| (i, String::new())).collect();
    let args_of = |strs: &[(String, String)], codes: &[(String, String)]| {
        strs.iter()
            .map(|(k, v)| (k.clone(), ArgValue::Str(v.clone())))
            .chain(
                codes
                    .iter()
                    .map(|(k, v)| (k.clone(), ArgValue::Code(v.clone()))),
            )
            .collect::<Vec<_>>()
    };
    let mut tla = args_of(&args.tla_str, &args.tla_code);
    tla.extend(
        args.tla_code_file
            .iter()
            .map(|(k, v)| (k.clone(), ArgValue::Code(v.clone()))),
    );
    let limits = cli.limits();
    let job = EvalJob {
        roots,
        jpaths,
        entry: (0, rel),
        tla,
        ext: args_of(&args.ext_str, &args.ext_code),
        max_stack: limits.max_stack,
        timeout: limits.timeout,
        deadline: limits.deadline,
        indent: 3,
        secrets: sources.secrets().clone(),
        trace: true,
        keep_text: true,
        parse_values: true,
    };
    match engine::evaluate(job) {
        Ok(done) => cli.output().stdout(&(done.json + "\n")),
        Err(f) => {
            let d = diagnose(f, &mut sources);
            cli.output().report(&sources, vec![d]);
            EXIT_INVALID
        }
    }
}
