//! `controlcenter hydrate`: commit an environment's rendered manifests to
//! a branch (the rendered-manifests pattern), for Argo CD, Flux or
//! `kubectl apply` to sync as a plain directory.

use std::collections::BTreeMap;

use clap::Args;
use git2::{Repository, Signature};

use super::{Cli, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::commands::markdown::shell_words;
use crate::diagnostics::{Code, Diagnostic};
use crate::emit::hydrate::{
    hydrate, public_url, CommitInfo, FileReference, Hydrated, Hydration, Metadata, Reference,
    Refusal, Target,
};
use crate::emit::{out_dir, yaml_document};
use crate::process::Resource;
use crate::repo::layout::{
    env_file_name, CONTROLCENTER_DIR, CONTROLCENTER_FILE, SECRETS_FILE, TAGS_FILE,
};

/// Arguments of `hydrate`.
#[derive(Args, Debug)]
#[command(
    after_help = "Commits to a local branch without checking it out; push it yourself:\n  git push origin environment/prod refs/notes/hydrator.metadata\n\nExamples:\n  controlcenter hydrate --env prod\n  controlcenter hydrate --env prod --to environment/prod-next --path apps/platform\n  controlcenter hydrate --all --rev origin/dev"
)]
pub struct HydrateArgs {
    /// Environment to hydrate.
    #[arg(long, short, required_unless_present = "all", conflicts_with = "all")]
    pub env: Option<String>,
    /// Every environment whose env-<env>.yaml is on this branch, each to its
    /// settings.hydrate target.
    #[arg(long)]
    pub all: bool,
    /// Branch to commit to, created when absent (default:
    /// settings.hydrate.<env>.branch, else environment/<env>).
    #[arg(long, value_name = "BRANCH", conflicts_with = "all")]
    pub to: Option<String>,
    /// Directory inside the branch (default: settings.hydrate.<env>.path,
    /// else the branch's root).
    #[arg(long, value_name = "DIR", conflicts_with = "all")]
    pub path: Option<String>,
    /// Hydrate this commit (default: HEAD, which the work tree must equal).
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Commit message (default: the environment and the dry commit).
    #[arg(long, short, value_name = "TEXT")]
    pub message: Option<String>,
    /// Author, `Name <email>` (default: the dry commit's author).
    #[arg(long, value_name = "NAME <EMAIL>")]
    pub author: Option<String>,
    /// Committer, `Name <email>` (default: the dry commit's committer).
    #[arg(long, value_name = "NAME <EMAIL>")]
    pub committer: Option<String>,
    /// Date the commit with the clock (default: the dry commit's dates, so
    /// the same dry commit hydrates to the same commit anywhere).
    #[arg(long)]
    pub now: bool,
    /// repoURL in hydrator.metadata (default: the `origin` remote's URL,
    /// credentials removed).
    #[arg(long, value_name = "URL")]
    pub repo_url: Option<String>,
}

pub(super) fn run(cli: &Cli, args: &HydrateArgs) -> i32 {
    let refused = |message: String, help: &str| {
        cli.fail(
            Diagnostic::error(Code::HydrateRefused, message).help(help.to_owned()),
            EXIT_INVALID,
        )
    };
    let bad_target = |env: &str, why: String| {
        cli.fail(
            Diagnostic::error(Code::Usage, format!("cannot hydrate {env}: {why}"))
                .help("--to names a local branch, --path a directory inside it"),
            EXIT_USAGE,
        )
    };
    // The flags first: a typo costs no render.
    if args.to.is_some() || args.path.is_some() {
        let (branch, path) = (
            args.to.as_deref().unwrap_or("x"),
            args.path.as_deref().unwrap_or("."),
        );
        if let Err(why) = Target::new(branch, path) {
            return bad_target(args.env.as_deref().unwrap_or_default(), why);
        }
    }
    let (repo, prefix) = match crate::repo::git::discover(&cli.repo) {
        Ok(r) => r,
        Err(e) => {
            return cli.fail(
                Diagnostic::error(Code::UnknownRevision, e.to_string())
                    .help("hydrate commits to a branch of the Git repository that holds --repo"),
                EXIT_INVALID,
            )
        }
    };
    let dry_rev = args.rev.as_deref().unwrap_or("HEAD");
    let dry = match repo
        .revparse_single(dry_rev)
        .and_then(|o| o.peel_to_commit())
    {
        Ok(c) => c,
        Err(e) => {
            return cli.fail(
                Diagnostic::error(
                    Code::UnknownRevision,
                    format!("`{dry_rev}` is not a commit: {}", e.message()),
                )
                .help(if args.rev.is_some() {
                    "--rev names a commit, branch or tag of the repository's history (git log --oneline)"
                } else {
                    "hydrate renders a commit (the dry commit); commit the repository first"
                }),
                EXIT_INVALID,
            )
        }
    };
    if args.rev.is_none() {
        if let Some(changed) = uncommitted(&repo, &prefix) {
            return cli.fail(
                Diagnostic::error(
                    Code::UncommittedChanges,
                    format!(
                        "the work tree differs from HEAD ({changed}); a hydrated commit must name the commit it was rendered from"
                    ),
                )
                .help("commit or stash the changes, or hydrate the last commit with --rev HEAD"),
                EXIT_INVALID,
            );
        }
    }
    // The dry commit is what is rendered, even when the work tree is
    // checked to equal it: files Git ignores (an env file, an imported
    // template) are in the work tree and not in the commit.
    let dry_id = dry.id().to_string();
    let (files, _) = match cli.snapshot(Some(&dry_id)) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut project = match cli.project_of(files, None, &[], None) {
        Ok(p) => p,
        Err(code) => return code,
    };

    // Render everything first: one failure and nothing is committed.
    let envs = match &args.env {
        Some(env) => vec![env.clone()],
        None => project.envs(),
    };
    let mut rendered: Vec<(String, Vec<Resource>)> = Vec::new();
    let mut diagnostics = Vec::new();
    for env in envs {
        match project.render(&env) {
            Ok(r) => rendered.push((env, r)),
            Err(d) if args.all && d.len() == 1 && d[0].code == Code::EnvFileMissing => {
                cli.output().status(&format!(
                    "skipped   {env}: {} is not on this branch",
                    env_file_name(&env)
                ));
            }
            Err(d) => diagnostics.extend(d),
        }
    }
    if !diagnostics.is_empty() {
        cli.output().report(&project.sources, diagnostics);
        cli.output()
            .status("nothing hydrated: the render failed, no branch moved");
        return EXIT_INVALID;
    }

    if rendered.is_empty() {
        return cli.fail(
            Diagnostic::error(
                Code::EnvFileMissing,
                "no environment of controlcenter.yaml has its env-<env>.yaml on this branch: nothing to hydrate",
            )
            .help("run hydrate on an environment branch, or name one with --env"),
            EXIT_INVALID,
        );
    }

    // Targets, checked before anything is written.
    let mut targets: Vec<Target> = Vec::new();
    for (env, _) in &rendered {
        let (branch, path) = project.settings.hydrate_target(env);
        let branch = args.to.clone().unwrap_or(branch);
        let path = args.path.clone().unwrap_or(path);
        match Target::new(&branch, &path) {
            Ok(t) if targets.iter().any(|other| other.overlaps(&t)) => {
                return refused(
                    format!(
                        "two environments would be hydrated to {}:{} or a directory inside it",
                        t.branch,
                        t.path_label()
                    ),
                    "give each environment its own branch, or sibling paths on one branch, in settings.hydrate",
                )
            }
            Ok(t) => targets.push(t),
            // Flags were checked first: this target comes from settings.
            Err(why) => {
                let mut d = Diagnostic::error(
                    Code::HydrateRefused,
                    format!("settings.hydrate.{env}: {why}"),
                )
                .help("branch names a local branch, path a directory inside it");
                let node = project
                    .inputs
                    .controlcenter
                    .root
                    .get(crate::load::SETTINGS_KEY)
                    .and_then(|s| s.get("hydrate"))
                    .and_then(|h| h.entry(env));
                if let Some(entry) = node {
                    d = d.at(entry.key_span, "this target");
                }
                cli.output().report(&project.sources, vec![d]);
                return EXIT_INVALID;
            }
        }
    }

    let dry_info = CommitInfo::of(&dry);
    let repo_url = match &args.repo_url {
        Some(url) => public_url(url),
        None => repo
            .find_remote("origin")
            .ok()
            .and_then(|r| r.url().ok().and_then(public_url)),
    };
    let (author, committer) = match signatures(args, &dry) {
        Ok(s) => s,
        Err(why) => {
            return cli.fail(
                Diagnostic::error(Code::Usage, why)
                    .help("write --author and --committer as `Name <email>`"),
                EXIT_USAGE,
            )
        }
    };
    let origin = project.entry_span();
    for ((env, resources), target) in rendered.iter().zip(&targets) {
        let manifests = match out_dir::files(resources, origin) {
            Ok(files) => files
                .into_iter()
                .map(|(name, r)| (name, yaml_document(r).into_bytes()))
                .collect::<BTreeMap<_, _>>(),
            Err(d) => {
                cli.output().report(&project.sources, vec![d]);
                return EXIT_INVALID;
            }
        };
        let command = reproduce(cli, env, target, &prefix, &dry_info.sha);
        let metadata = Metadata {
            repo_url: repo_url.clone(),
            dry: dry_info.clone(),
            commands: vec![command.clone()],
            references: references(&repo, &dry, &prefix, env),
        };
        let short = &dry_info.sha[..7.min(dry_info.sha.len())];
        let message = args.message.clone().unwrap_or_else(|| {
            format!(
                "hydrate {env} from {short}: {}\n\nDry commit: {}\nReproduce: {command}\n",
                dry_info.subject, dry_info.sha
            )
        });
        let hydration = Hydration {
            target,
            manifests,
            metadata: &metadata,
            readme: readme(env, target, &metadata, &command),
            message,
            author: author.clone(),
            committer: committer.clone(),
            dry_prefix: prefix.clone(),
        };
        let where_ = format!("{}:{}", target.branch, target.path_label());
        match hydrate(&repo, &hydration) {
            Ok(Hydrated::Committed {
                commit,
                files_changed,
                created,
            }) => cli.output().status(&format!(
                "hydrated  {env} → {where_}: {} resources, {files_changed} files changed, commit {}{}",
                resources.len(),
                &commit.to_string()[..7],
                if created { " (new branch)" } else { "" }
            )),
            Ok(Hydrated::Unchanged { commit }) => cli.output().status(&format!(
                "unchanged {env} → {where_}: the manifests equal {}; no commit, dry commit {short} noted on it",
                &commit.to_string()[..7]
            )),
            Err(Refusal { why, help }) => {
                return refused(format!("cannot hydrate {env} to {where_}: {why}"), help)
            }
        }
    }
    EXIT_OK
}

/// The first path under `prefix` that differs from HEAD (modified, staged,
/// deleted or untracked; ignored files do not count), if any.
fn uncommitted(repo: &Repository, prefix: &str) -> Option<String> {
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    if !prefix.is_empty() {
        opts.pathspec(prefix);
    }
    let statuses = match repo.statuses(Some(&mut opts)) {
        Ok(s) => s,
        Err(e) => return Some(format!("cannot read its status: {}", e.message())),
    };
    let changed: Vec<String> = statuses
        .iter()
        .filter(|s| s.status() != git2::Status::CURRENT)
        .filter_map(|s| s.path().ok().map(str::to_owned))
        .collect();
    let first = changed.first()?;
    Some(match changed.len() {
        1 => first.clone(),
        n => format!("{first} and {} more", n - 1),
    })
}

/// Author and committer: the flags, else the dry commit's, dated like the
/// dry commit unless `--now`.
fn signatures(
    args: &HydrateArgs,
    dry: &git2::Commit<'_>,
) -> Result<(Signature<'static>, Signature<'static>), String> {
    let now = || {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        git2::Time::new(secs, 0)
    };
    let make = |flag: &Option<String>,
                which: &str,
                from: Signature<'_>|
     -> Result<Signature<'static>, String> {
        let (name, email) = match flag {
            Some(text) => parse_person(text)
                .ok_or_else(|| format!("--{which} `{text}` is not `Name <email>`"))?,
            None => (
                String::from_utf8_lossy(from.name_bytes()).into_owned(),
                String::from_utf8_lossy(from.email_bytes()).into_owned(),
            ),
        };
        let when = if args.now { now() } else { from.when() };
        Signature::new(&name, &email, &when).map_err(|e| format!("--{which}: {}", e.message()))
    };
    Ok((
        make(&args.author, "author", dry.author())?,
        make(&args.committer, "committer", dry.committer())?,
    ))
}

/// `Name <email>` → (name, email).
fn parse_person(text: &str) -> Option<(String, String)> {
    let (name, rest) = text.split_once('<')?;
    let email = rest.strip_suffix('>')?;
    let name = name.trim();
    (!name.is_empty() && !email.is_empty() && !email.contains(['<', '>']))
        .then(|| (name.to_owned(), email.to_owned()))
}

/// The command that hydrates the same directory from the same commit.
fn reproduce(cli: &Cli, env: &str, target: &Target, prefix: &str, sha: &str) -> String {
    let mut words: Vec<String> = vec!["controlcenter".into(), "hydrate".into()];
    if !prefix.is_empty() {
        words.extend(["--repo".into(), prefix.to_owned()]);
    }
    if let Some(lib) = &cli.lib {
        words.extend(["--lib".into(), lib.to_string_lossy().into_owned()]);
    }
    words.extend([
        "--env".into(),
        env.to_owned(),
        "--to".into(),
        target.branch.clone(),
        "--path".into(),
        target.path_label().to_owned(),
        "--rev".into(),
        sha.to_owned(),
    ]);
    shell_words(&words)
}

/// The input files of `env` in the dry commit, by blob id.
fn references(
    repo: &Repository,
    dry: &git2::Commit<'_>,
    prefix: &str,
    env: &str,
) -> Vec<Reference> {
    let Ok(tree) = dry.tree() else {
        return Vec::new();
    };
    let at = |rel: &str| {
        if prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{prefix}/{rel}")
        }
    };
    let mut paths: Vec<String> = vec![at(CONTROLCENTER_FILE)];
    if let Ok(entry) = tree.get_path(std::path::Path::new(&at(CONTROLCENTER_DIR))) {
        if let Ok(obj) = entry.to_object(repo) {
            if let Some(dir) = obj.as_tree() {
                paths.extend(
                    dir.iter()
                        .filter_map(|e| e.name().ok().map(str::to_owned))
                        .filter(|n| n.ends_with(".yaml"))
                        .map(|n| at(&format!("{CONTROLCENTER_DIR}/{n}"))),
                );
            }
        }
    }
    paths.extend([at(TAGS_FILE), at(&env_file_name(env)), at(SECRETS_FILE)]);
    paths
        .into_iter()
        .filter_map(|path| {
            let entry = tree.get_path(std::path::Path::new(&path)).ok()?;
            Some(Reference {
                file: FileReference {
                    sha: entry.id().to_string(),
                    path,
                },
            })
        })
        .collect()
}

/// `README.md` of the hydrated directory.
fn readme(env: &str, target: &Target, metadata: &Metadata, command: &str) -> String {
    let dry = &metadata.dry;
    let clone = metadata
        .repo_url
        .as_deref()
        .map(|u| format!("git clone {}\n", shell_words(&[u.to_owned()])))
        .unwrap_or_default();
    format!(
        "# Hydrated manifests: `{env}`\n\n\
         Generated by `controlcenter hydrate`; do not edit. These are the Kubernetes\n\
         manifests of environment `{env}`, one file per resource\n\
         (`<namespace>/<kind>-<name>.yaml`, `_cluster/` for cluster-scoped objects),\n\
         rendered from dry commit `{sha}` ({subject}).\n\
         Every hydration of `{branch}` replaces these files; `hydrator.metadata`\n\
         names the dry commit and the input files it read.\n\n\
         To reproduce this directory:\n\n\
         ```shell\n{clone}git checkout {sha}\n{command}\n```\n",
        sha = dry.sha,
        subject = dry.subject.replace('`', "'"),
        branch = target.branch,
    )
}

#[cfg(test)]
mod tests {
    use super::parse_person;

    #[test]
    fn people_are_name_and_email() {
        assert_eq!(
            parse_person("CI Bot <ci@example.com>"),
            Some(("CI Bot".into(), "ci@example.com".into()))
        );
        assert_eq!(parse_person("nobody"), None);
        assert_eq!(parse_person("<x@y>"), None);
    }
}
