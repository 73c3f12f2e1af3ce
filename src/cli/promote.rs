//! `controlcenter promote --from dev --to preprod --dry-run`: what promoting
//! one environment branch into another would change in the target.

use std::sync::Arc;

use clap::Args;

use super::diff::{print_report, DiffOutputArgs};
use super::{Cli, EXIT_USAGE};
use crate::commands::diff::{diff, DiffOptions};
use crate::repo::promotion::Promotion;
use crate::repo::RepoFiles;

/// Arguments of `promote`.
#[derive(Args, Debug)]
#[command(
    after_help = "Takes controlcenter.yaml, tags.yaml, schemas/, policies/ and jsonnet/ from the\nsource branch, and env-<target>.yaml and secrets.yaml from the target branch,\nthen diffs the target environment's manifests against what it runs now.\n\nExamples:\n  controlcenter promote --from dev --to preprod --dry-run\n  controlcenter promote --from dev --to preprod --dry-run --from-rev origin/dev --to-rev origin/preprod"
)]
pub struct PromoteArgs {
    /// Source environment (its branch is the source by default).
    #[arg(long)]
    pub from: String,
    /// Target environment (its branch is the target by default).
    #[arg(long)]
    pub to: String,
    /// Only show what would change (required: promotion itself is a Git merge).
    #[arg(long)]
    pub dry_run: bool,
    /// Source revision (default: the branch named like --from, else origin/<from>).
    #[arg(long, value_name = "REV")]
    pub from_rev: Option<String>,
    /// Target revision (default: the branch named like --to, else origin/<to>).
    #[arg(long, value_name = "REV")]
    pub to_rev: Option<String>,
    /// Output options.
    #[command(flatten)]
    pub output: DiffOutputArgs,
}

pub(super) fn run(cli: &Cli, args: &PromoteArgs) -> i32 {
    if !args.dry_run {
        return cli.fail(
            crate::diagnostics::Diagnostic::error(
                crate::diagnostics::Code::Usage,
                "promote only previews; pass --dry-run",
            )
            .help(format!(
                "the promotion itself is a merge of the {} branch into {}",
                args.from, args.to
            )),
            EXIT_USAGE,
        );
    }
    let (source, source_label) = match branch(cli, args.from_rev.as_deref(), &args.from) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (target, target_label) = match branch(cli, args.to_rev.as_deref(), &args.to) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let promoted: Arc<dyn RepoFiles> = Arc::new(Promotion {
        source,
        target: target.clone(),
    });
    let before_options = match cli.render_options(target, None, &[]) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let after_options = match cli.render_options(promoted, None, &[]) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (before, mut secrets) = match cli.render_snapshot(before_options, &args.to, &target_label) {
        Ok(r) => r,
        Err(failed) => return failed.report(cli),
    };
    let label = format!("{source_label} promoted into {target_label}");
    let after = match cli.render_snapshot(after_options, &args.to, &label) {
        Ok((r, s)) => {
            secrets.extend(&s);
            r
        }
        Err(failed) => return failed.report(cli),
    };
    let opts = DiffOptions {
        ignore: args.output.ignore.clone(),
        ignore_namespace: false,
        context: args.output.context,
        secrets: secrets.clone(),
    };
    let mut rerun = vec![
        "promote",
        "--from",
        &args.from,
        "--to",
        &args.to,
        "--dry-run",
    ];
    if let Some(r) = &args.from_rev {
        rerun.extend(["--from-rev", r]);
    }
    if let Some(r) = &args.to_rev {
        rerun.extend(["--to-rev", r]);
    }
    print_report(
        cli,
        &diff(&before, &after, &opts),
        (&target_label, &label),
        &args.output,
        &secrets,
        &cli.command_line(&rerun),
    )
}

/// An explicit revision, else the branch named like the environment, else
/// its remote-tracking branch.
fn branch(cli: &Cli, rev: Option<&str>, env: &str) -> Result<(Arc<dyn RepoFiles>, String), i32> {
    if let Some(r) = rev {
        return cli.snapshot(Some(r));
    }
    let remote = format!("origin/{env}");
    // Only a revision that is not there says the branch is missing; any
    // other failure (no repository) is reported as it is.
    let missing = |rev: &str| {
        matches!(
            crate::repo::git::GitRevision::open(&cli.repo, rev),
            Err(crate::repo::git::RevisionError::UnknownRevision(_))
        )
    };
    if !missing(env) {
        return cli.snapshot(Some(env));
    }
    if missing(&remote) {
        return Err(cli.fail(
            crate::diagnostics::Diagnostic::error(
                crate::diagnostics::Code::UnknownRevision,
                format!(
                    "environment `{}` has no branch here: neither `{}` nor `{}` names a revision of the repository",
                    crate::names::clip(env),
                    crate::names::clip(env),
                    crate::names::clip(&remote)
                ),
            )
            .help("promote names environments by their branches (dev, preprod, prod); fetch them, or give revisions with --from-rev / --to-rev"),
            super::EXIT_INVALID,
        ));
    }
    cli.snapshot(Some(&remote))
}
