//! `controlcenter cmp generate|discover`: what the Argo CD
//! config-management-plugin sidecar runs (see deploy/argocd/plugin.yaml).
//!
//! `generate` prints compact JSON, one resource per line, and nothing else
//! on stdout; on any error it exits non-zero with at most 20 short lines on
//! stderr, which the Argo CD UI shows.

use std::collections::BTreeMap;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{print_stdout, Cli, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::commands::cmp::{annotate_revision, find_repo_root, select_env, NAMESPACE_VAR, REVISION_VAR};
use crate::diagnostics::render::short;
use crate::diagnostics::{Diagnostic, Diagnostics, Sources};
use crate::emit::json_lines;
use crate::repo::WorkTree;
use crate::resolve::Settings;
use crate::Project;

/// Most lines of error text the plugin prints (Argo CD shows them in the UI).
pub const MAX_ERROR_LINES: usize = 20;

/// Most `std.trace` lines the plugin prints (plus one saying the rest was
/// suppressed); errors get what is left of [`MAX_ERROR_LINES`].
pub const MAX_TRACE_LINES: usize = 9;

/// Arguments of `cmp`.
#[derive(Args, Debug)]
#[command(
    after_help = "Example (what plugin.yaml runs):\n  ARGOCD_ENV_CC_ENV=dev controlcenter cmp generate"
)]
pub struct CmpArgs {
    /// Plugin action.
    #[command(subcommand)]
    pub action: CmpAction,
}

/// Plugin actions.
#[derive(Subcommand, Debug)]
pub enum CmpAction {
    /// Render the Application's environment as JSON lines (Argo CD's generate command).
    #[command(
        after_help = "Example:\n  ARGOCD_APP_SOURCE_TARGET_REVISION=preprod controlcenter cmp generate"
    )]
    Generate,
    /// Print the path of controlcenter.yaml when this is a control-center repository (Argo CD's discover command).
    #[command(after_help = "Example:\n  controlcenter cmp discover")]
    Discover,
}

pub(super) fn run(cli: &Cli, args: &CmpArgs) -> i32 {
    let Ok(cwd) = std::env::current_dir() else {
        eprintln!("error: the current directory is not readable");
        return EXIT_USAGE;
    };
    let start = if cli.repo.as_os_str() == "." {
        cwd
    } else {
        cli.repo.clone()
    };
    match args.action {
        CmpAction::Discover => {
            if let Some(root) = find_repo_root(&start) {
                print_stdout(&format!(
                    "{}\n",
                    root.join(crate::repo::layout::CONTROLCENTER_FILE).display()
                ));
            }
            EXIT_OK
        }
        CmpAction::Generate => generate(cli, &start),
    }
}

fn generate(cli: &Cli, start: &std::path::Path) -> i32 {
    // Argo CD shows stderr in its UI: traces share the short budget.
    crate::evaluate::engine::set_trace_budget(MAX_TRACE_LINES);
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let Some(root) = find_repo_root(start) else {
        eprintln!(
            "error: no controlcenter.yaml in {} or any parent directory",
            start.display()
        );
        return EXIT_INVALID;
    };
    let repo = match WorkTree::open(&root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", root.display());
            return EXIT_USAGE;
        }
    };
    let lib = match cli.library() {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut project = match Project::load(Arc::new(repo), lib, cli.limits()) {
        Ok(p) => p,
        Err(f) => return fail(&f.sources, f.diagnostics),
    };
    let env = match select_env(&vars, &project.envs()) {
        Ok((env, _)) => env,
        Err(d) => return fail(&project.sources, vec![d]),
    };
    project.default_namespace = vars.get(NAMESPACE_VAR).filter(|v| !v.is_empty()).cloned();
    let mut resources = match project.render(&env) {
        Ok(r) => r,
        Err(d) => return fail(&project.sources, d),
    };
    if Settings::from_inputs(&project.inputs).revision_annotation {
        if let Some(rev) = vars.get(REVISION_VAR).filter(|v| !v.is_empty()) {
            annotate_revision(&mut resources, rev);
        }
    }
    print_stdout(&json_lines(&resources))
}

/// Prints at most [`MAX_ERROR_LINES`] short lines to stderr; exit 1.
fn fail(sources: &Sources, diagnostics: Vec<Diagnostic>) -> i32 {
    let mut all = Diagnostics::default();
    all.extend(diagnostics);
    let sorted = all.into_sorted(sources);
    let lines: Vec<String> = sorted
        .iter()
        .flat_map(|d| {
            short(
                &crate::diagnostics::render::clipped(d, sources.secrets()),
                sources,
            )
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
        })
        .collect();
    // Trace lines already printed count against the plugin's budget.
    let budget = MAX_ERROR_LINES
        .saturating_sub(crate::evaluate::engine::trace_lines_printed().min(MAX_TRACE_LINES + 1))
        .max(2);
    let mut text: Vec<String> = lines.iter().take(budget).cloned().collect();
    if lines.len() > budget {
        text.truncate(budget - 1);
        text.push(format!(
            "… {} problems in all; run `controlcenter validate` on the repository for every detail",
            sorted.len()
        ));
    }
    eprintln!("{}", sources.secrets().scrub(&text.join("\n")));
    EXIT_INVALID
}
