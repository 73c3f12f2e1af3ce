//! `controlcenter tags set|get|prune`: tags.yaml for CI and scripts.

use clap::{Args, Subcommand};

use super::{Cli, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::commands::tags::{self, SetOutcome};
use crate::diagnostics::{Code, Diagnostic, Sources};
use crate::emit::atomic;
use crate::load;
use crate::repo::{layout::TAGS_FILE, WorkTree};
use crate::validate::schema::{InputKind, SchemaSet};

/// Arguments of `tags`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples (CI, after a build):\n  controlcenter tags set billing v1.21.4 123456789012.dkr.ecr.us-east-1.amazonaws.com/billing:1.21.4\n  controlcenter tags get billing v1.21.4"
)]
pub struct TagsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: TagsAction,
}

/// tags.yaml actions.
#[derive(Subcommand, Debug)]
pub enum TagsAction {
    /// Record the image CI built for a service's revision.
    #[command(
        after_help = "Example:\n  controlcenter tags set service_rpps v1.0.151 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:60"
    )]
    Set {
        /// Service key, as in controlcenter.yaml.
        service: String,
        /// Revision: tag, branch or commit.
        rev: String,
        /// Image reference: registry/repository:tag or …@sha256:digest.
        image: String,
        /// Repoint a revision that already has another image.
        #[arg(long)]
        force: bool,
    },
    /// Print the image of a service's revision.
    #[command(after_help = "Example:\n  controlcenter tags get service_rpps v1.0.150")]
    Get {
        /// Service key.
        service: String,
        /// Revision.
        rev: String,
    },
    /// Remove revisions no environment uses, keeping the newest N per service.
    #[command(after_help = "Example:\n  controlcenter tags prune --keep 5 --dry-run")]
    Prune {
        /// Revisions to keep per service besides those in use (newest by natural order of names).
        #[arg(long, default_value_t = 5)]
        keep: usize,
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(super) fn run(cli: &Cli, args: &TagsArgs) -> i32 {
    let repo = match WorkTree::open(&cli.repo) {
        Ok(r) => r,
        Err(e) => {
            return cli.fail(
                Diagnostic::error(
                    Code::DirUnreadable,
                    format!("cannot open repository {}: {e}", cli.repo.display()),
                )
                .help("--repo names the control-center repository's directory"),
                EXIT_USAGE,
            );
        }
    };
    let path = repo.root().join(TAGS_FILE);
    let mut sources = Sources::default();
    let (file, text) = match load::read_text(&repo, &mut sources, TAGS_FILE) {
        Ok(Some((file, text))) => (file, text.to_string()),
        // A first build: tags.yaml does not exist yet.
        Ok(None) => (sources.add(TAGS_FILE, ""), String::new()),
        Err(d) => {
            cli.output().report(&sources, vec![d]);
            return EXIT_INVALID;
        }
    };
    match &args.action {
        TagsAction::Get { service, rev } => match crate::load::yaml::parse(&text, file) {
            Ok(root) => match tags::get(&root, service, rev) {
                Some(image) => cli.output().stdout(&format!("{image}\n")),
                None => {
                    let d = Diagnostic::error(
                        Code::MissingTag,
                        format!("{TAGS_FILE} has no image for `{service}` at `{rev}`"),
                    );
                    cli.output().report(&sources, vec![d]);
                    EXIT_INVALID
                }
            },
            Err(d) => {
                cli.output().report(&sources, d);
                EXIT_INVALID
            }
        },
        TagsAction::Set {
            service,
            rev,
            image,
            force,
        } => {
            let mut problems = Vec::new();
            if let Err(why) = tags::check_image(image) {
                problems.push(
                    Diagnostic::error(
                        Code::InvalidImage,
                        format!("`{image}` is not an image reference: {why}"),
                    )
                    .help("write registry/repository:tag or registry/repository@sha256:<digest>"),
                );
            }
            if let Err(why) = tags::check_service(service) {
                problems.push(
                    Diagnostic::error(Code::InvalidName, why)
                        .help("use the service key of controlcenter.yaml"),
                );
            }
            if !problems.is_empty() {
                cli.output().report(&sources, problems);
                return EXIT_INVALID;
            }
            let (new_text, outcome) = match tags::set(&text, file, service, rev, image, *force) {
                Ok(r) => r,
                Err(d) => {
                    cli.output().report(&sources, d);
                    return EXIT_INVALID;
                }
            };
            if outcome == SetOutcome::Unchanged {
                cli.output()
                    .status(&format!("{service} {rev}: already {image}"));
                return EXIT_OK;
            }
            if let Err(code) = write_validated(cli, &mut sources, &path, &new_text) {
                return code;
            }
            match outcome {
                SetOutcome::Repointed { previous } => cli.output().status(&format!(
                    "{service} {rev}: repointed from {previous} to {image}"
                )),
                _ => cli
                    .output()
                    .status(&format!("{service} {rev}: added {image}")),
            }
            EXIT_OK
        }
        TagsAction::Prune { keep, dry_run } => {
            let inputs = match load::load_repo(&repo, &mut sources) {
                Ok(i) => i,
                Err(d) => {
                    cli.output().report(&sources, d);
                    return EXIT_INVALID;
                }
            };
            let referenced = crate::resolve::referenced_revisions(&inputs);
            let (new_text, removed) = match tags::prune(&text, file, &referenced, *keep) {
                Ok(r) => r,
                Err(d) => {
                    cli.output().report(&sources, d);
                    return EXIT_INVALID;
                }
            };
            let verb = if *dry_run { "would remove" } else { "removed" };
            let listing: String = removed
                .iter()
                .map(|(s, r)| format!("{verb} {s} {r}\n"))
                .collect();
            let code = cli.output().stdout(&listing);
            if code != EXIT_OK {
                return code;
            }
            if removed.is_empty() || *dry_run {
                return EXIT_OK;
            }
            match write_validated(cli, &mut sources, &path, &new_text) {
                Ok(()) => EXIT_OK,
                Err(code) => code,
            }
        }
    }
}

/// Parses and schema-checks the new tags.yaml, then replaces the file
/// atomically; the old file stays if anything fails.
fn write_validated(
    cli: &Cli,
    sources: &mut Sources,
    path: &std::path::Path,
    text: &str,
) -> Result<(), i32> {
    let file = sources.add(format!("{TAGS_FILE} (new)"), text);
    let problems = match crate::load::yaml::parse(text, file) {
        Ok(root) => SchemaSet::new(None)
            .map(|s| s.check(InputKind::Tags, &root))
            .unwrap_or_default(),
        Err(d) => d,
    };
    if !problems.is_empty() {
        cli.output().report(sources, problems);
        return Err(EXIT_INVALID);
    }
    atomic::write_file(path, text.as_bytes()).map_err(|e| {
        let d = Diagnostic::error(
            Code::OutputFailed,
            format!("cannot write {}: {e}", path.display()),
        )
        .help("the previous tags.yaml is unchanged");
        cli.output().report(sources, vec![d]);
        EXIT_INVALID
    })
}
