//! `controlcenter cmp generate|discover`: what the Argo CD
//! config-management-plugin sidecar runs (see deploy/argocd/plugin.yaml).
//!
//! `generate` prints compact JSON, one resource per line, and nothing else
//! on stdout; on any error it exits non-zero with at most 20 short lines on
//! stderr, which the Argo CD UI shows.

use std::collections::BTreeMap;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::output::MAX_PLUGIN_TRACE_LINES;
use super::{Cli, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::commands::cmp::{
    annotate_revision, find_repo_root, select_env, selected_services, NAMESPACE_VAR, REVISION_VAR,
};
use crate::diagnostics::{Code, Diagnostic};
use crate::emit;
use crate::repo::WorkTree;
use crate::Project;

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
        return cli.fail(
            Diagnostic::error(Code::DirUnreadable, "the current directory is not readable")
                .help("Argo CD runs the plugin in the application's directory"),
            EXIT_USAGE,
        );
    };
    let start = if cli.repo.as_os_str() == "." {
        cwd
    } else {
        cli.repo.clone()
    };
    match args.action {
        CmpAction::Discover => {
            if let Some(root) = find_repo_root(&start) {
                cli.output().stdout(&format!(
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
    crate::evaluate::engine::set_trace_budget(MAX_PLUGIN_TRACE_LINES);
    // Lossily: one variable of the sidecar that is not UTF-8 must not
    // stop the plugin (`std::env::vars` panics on it).
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let out = cli.output();
    let Some(root) = find_repo_root(start) else {
        return cli.fail(
            Diagnostic::error(
                Code::DirUnreadable,
                format!(
                    "no controlcenter.yaml in {} or any parent directory",
                    start.display()
                ),
            )
            .help("point the Application's source path at the control-center repository"),
            EXIT_INVALID,
        );
    };
    let repo = match WorkTree::open(&root) {
        Ok(r) => r,
        Err(e) => {
            return cli.fail(
                Diagnostic::error(
                    Code::DirUnreadable,
                    format!("cannot open {}: {e}", root.display()),
                )
                .help("check the repository checkout's permissions"),
                EXIT_USAGE,
            );
        }
    };
    let namespace = vars.get(NAMESPACE_VAR).filter(|v| !v.is_empty()).cloned();
    let services = match selected_services(&vars) {
        Ok(s) => s,
        Err(d) => return cli.fail(d, EXIT_INVALID),
    };
    let mut options = match cli.render_options(Arc::new(repo), namespace, &services) {
        Ok(o) => o,
        Err(code) => return code,
    };
    // Known before loading, the environment narrows the load (it is
    // checked against controlcenter.yaml after).
    options.env = crate::commands::cmp::requested_env(&vars)
        .ok()
        .flatten()
        .map(|(env, _)| env);
    let mut project = match Project::load(options) {
        Ok(p) => p,
        Err(f) => {
            out.report(&f.sources, f.diagnostics);
            return EXIT_INVALID;
        }
    };
    let env = match select_env(&vars, &project.envs()) {
        Ok((env, _)) => env,
        Err(d) => {
            out.report(&project.sources, vec![d]);
            return EXIT_INVALID;
        }
    };
    let mut resources = match project.render(&env) {
        Ok(r) => r,
        Err(d) => {
            out.report(&project.sources, d);
            return EXIT_INVALID;
        }
    };
    if project.settings.revision_annotation {
        if let Some(rev) = vars.get(REVISION_VAR).filter(|v| !v.is_empty()) {
            annotate_revision(&mut resources, rev);
        }
    }
    out.stdout_with(|w| emit::write(&resources, emit::Format::Json, w))
}
