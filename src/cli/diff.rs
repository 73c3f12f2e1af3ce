//! `controlcenter diff`: what a change does to the manifests, from Git
//! alone (no cluster).

use std::io::IsTerminal;
use std::sync::Arc;

use clap::Args;

use super::{Cli, EXIT_INVALID, EXIT_OK};
use crate::commands::diff::{diff, ChangeKind, DiffOptions, DiffReport};
use crate::commands::markdown;
use crate::redact::SecretValues;
use crate::repo::RepoFiles;

/// Output of `diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// Change list, unified diffs, summary.
    Text,
    /// Machine-readable change list.
    Json,
    /// A pull-request comment: summary table, one collapsible diff per
    /// resource, under GitHub's comment size limit.
    Markdown,
}

/// Options shared by `diff` and `promote`.
#[derive(Args, Debug, Clone)]
pub struct DiffOutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
    /// One line per resource, no diffs.
    #[arg(long)]
    pub stat: bool,
    /// Exit 1 when there are differences (for CI gates).
    #[arg(long)]
    pub exit_code: bool,
    /// JSON pointer to leave out of the comparison (repeatable), e.g.
    /// /metadata/annotations/checksum~1config
    #[arg(long, value_name = "POINTER")]
    pub ignore: Vec<String>,
    /// Lines of context in unified diffs.
    #[arg(long, default_value_t = 3)]
    pub context: usize,
}

/// Arguments of `diff`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  controlcenter diff --env prod                           # HEAD → work tree\n  controlcenter diff --env prod --from main~1 --to main\n  controlcenter diff --env prod --against-env preprod     # two environments of one revision\n  controlcenter diff --env dev --format json --exit-code"
)]
pub struct DiffArgs {
    /// Environment to compare.
    #[arg(long, short)]
    pub env: String,
    /// Old side: a Git revision.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub from: String,
    /// New side: a Git revision (default: the work tree, uncommitted changes included).
    #[arg(long, value_name = "REV")]
    pub to: Option<String>,
    /// Compare `--env` with this environment, both at `--to`.
    #[arg(long, value_name = "ENV", conflicts_with = "from")]
    pub against_env: Option<String>,
    /// Only this service's objects (its key in controlcenter.yaml); repeatable.
    #[arg(long = "service", short = 's', value_name = "NAME")]
    pub services: Vec<String>,
    /// Output options.
    #[command(flatten)]
    pub output: DiffOutputArgs,
}

pub(super) fn run(cli: &Cli, args: &DiffArgs) -> i32 {
    let (to_files, to_label) = match cli.snapshot(args.to.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    // The two sides are independent: render them at once.
    let (old_side, new_side, ignore_namespace) = match &args.against_env {
        Some(other) => (
            (to_files.clone(), args.env.clone(), to_label.clone()),
            (to_files, other.clone(), to_label),
            true,
        ),
        None => {
            let (from_files, from_label) = match cli.snapshot(Some(&args.from)) {
                Ok(s) => s,
                Err(code) => return code,
            };
            (
                (from_files, args.env.clone(), from_label),
                (to_files, args.env.clone(), to_label),
                false,
            )
        }
    };
    let options = |side: &(Arc<dyn RepoFiles>, String, String)| {
        cli.render_options(side.0.clone(), None, &args.services)
    };
    // One after the other: a failure is reported once.
    let old_options = match options(&old_side) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let new_options = match options(&new_side) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (old, new) = std::thread::scope(|s| {
        let old = s.spawn(|| cli.render_snapshot(old_options, &old_side.1, &old_side.2));
        let new = cli.render_snapshot(new_options, &new_side.1, &new_side.2);
        (old.join(), new)
    });
    // Reported once both are done, the old side first.
    let ((old, mut secrets), (new, new_secrets)) = match (old, new) {
        (Ok(Ok(a)), Ok(b)) => (a, b),
        (Err(_), new) => {
            return new.err().map_or(EXIT_INVALID, |f| f.report(cli));
        }
        (Ok(old), new) => {
            let failed = [old.err(), new.err()].into_iter().flatten();
            return failed.fold(EXIT_INVALID, |_, f| f.report(cli));
        }
    };
    secrets.extend(&new_secrets);
    // Labels: the environments when comparing two, else the revisions.
    let (old_label, new_label) = if ignore_namespace {
        (old_side.1, new_side.1)
    } else {
        (old_side.2, new_side.2)
    };
    let opts = DiffOptions {
        ignore: args.output.ignore.clone(),
        ignore_namespace,
        context: args.output.context,
        secrets: secrets.clone(),
    };
    let mut rerun = vec!["diff", "--env", &args.env];
    match (&args.against_env, &args.to) {
        (Some(other), _) => rerun.extend(["--against-env", other]),
        (None, _) => rerun.extend(["--from", &args.from]),
    }
    if let Some(to) = &args.to {
        rerun.extend(["--to", to]);
    }
    for s in &args.services {
        rerun.extend(["--service", s]);
    }
    print_report(
        cli,
        &diff(&old, &new, &opts),
        (&old_label, &new_label),
        &args.output,
        &secrets,
        &cli.command_line(&rerun),
    )
}

/// Prints a report in the chosen form; the exit code follows `--exit-code`.
pub(super) fn print_report(
    cli: &Cli,
    report: &DiffReport,
    (old, new): (&str, &str),
    out: &DiffOutputArgs,
    secrets: &SecretValues,
    rerun: &str,
) -> i32 {
    let text = match out.format {
        DiffFormat::Json => {
            let (changed, added, removed) = report.counts();
            let doc = serde_json::json!({
                "from": old,
                "to": new,
                "summary": {"changed": changed, "added": added, "removed": removed, "unchanged": report.unchanged},
                "changes": report.changes,
            });
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
        DiffFormat::Text => text_report(report, old, new, out.stat, color(cli)),
        DiffFormat::Markdown => markdown::report(
            report,
            old,
            new,
            out.stat,
            rerun,
            markdown::GITHUB_COMMENT_LIMIT,
        ),
    };
    // Secret data is hashed in the report; a template may still have
    // copied a secret value elsewhere (a writeOnly field into a ConfigMap).
    let code = cli.output().stdout(&secrets.scrub(&text));
    if code != EXIT_OK {
        code
    } else if out.exit_code && !report.is_empty() {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}

fn color(cli: &Cli) -> bool {
    match cli.color {
        super::Color::Always => true,
        super::Color::Never => false,
        super::Color::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    }
}

fn paint(line: &str, on: bool) -> String {
    if !on {
        return line.to_owned();
    }
    let code = if line.starts_with("+++") || line.starts_with("---") {
        "1"
    } else if line.starts_with('+') {
        "32"
    } else if line.starts_with('-') {
        "31"
    } else if line.starts_with("@@") {
        "36"
    } else {
        return line.to_owned();
    };
    format!("\x1b[{code}m{line}\x1b[0m")
}

fn text_report(report: &DiffReport, old: &str, new: &str, stat: bool, color: bool) -> String {
    let mut out = format!("{old} → {new}\n");
    for c in &report.changes {
        let (mark, what) = match c.change {
            ChangeKind::Added => ("+", "added".to_owned()),
            ChangeKind::Removed => ("-", "removed".to_owned()),
            ChangeKind::Changed => ("~", format!("changed, +{} -{}", c.insertions, c.deletions)),
        };
        out.push_str(&paint(
            &format!("{mark} {:<60} ({what})", c.resource),
            color && mark != "~",
        ));
        out.push('\n');
    }
    if !stat {
        for c in report
            .changes
            .iter()
            .filter(|c| c.change == ChangeKind::Changed)
        {
            out.push('\n');
            for line in c.diff.lines() {
                out.push_str(&paint(line, color));
                out.push('\n');
            }
        }
    }
    if !report.changes.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!(
        "{}, {} unchanged\n",
        report.summary(),
        report.unchanged
    ));
    out
}
