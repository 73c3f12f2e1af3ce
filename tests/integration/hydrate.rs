//! `hydrate` on real Git repositories (made with the git CLI, inspected
//! with git2): one commit per change of the manifests, none when they are
//! equal, metadata and notes naming the dry commit, files outside the path
//! kept, the branch unmoved on any failure.

use std::collections::BTreeSet;
use std::path::Path;

use git2::{Oid, Repository};

use crate::common::{self, git, root, run, transcript};

const URL: &str = "https://git.example.com/acme/control-center.git";

/// A dry repository on branch `dev` with the article example committed.
fn dry_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "controlcenter.yaml",
        "tags.yaml",
        "env-dev.yaml",
        "env-preprod.yaml",
        "env-prod.yaml",
    ] {
        std::fs::copy(
            root().join("controlcenter-examples/article").join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    git(dir.path(), &["init", "-q", "-b", "dev"]);
    commit_all(dir.path(), "article example");
    dir
}

fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no `{from}`");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn hydrate(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "--repo",
        dir.to_str().unwrap(),
        "hydrate",
        "--repo-url",
        URL,
    ];
    all.extend_from_slice(args);
    run(&all)
}

fn tip(dir: &Path, branch: &str) -> Option<Oid> {
    let repo = Repository::open(dir).unwrap();
    let r = repo.find_reference(&format!("refs/heads/{branch}")).ok()?;
    r.target()
}

fn head(dir: &Path) -> String {
    let repo = Repository::open(dir).unwrap();
    let id = repo.head().unwrap().target().unwrap();
    id.to_string()
}

/// Paths of every file in a commit's tree.
fn files_of(dir: &Path, commit: Oid) -> BTreeSet<String> {
    let repo = Repository::open(dir).unwrap();
    let tree = repo.find_commit(commit).unwrap().tree().unwrap();
    let mut out = BTreeSet::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |parent, e| {
        if e.kind() == Some(git2::ObjectType::Blob) {
            out.insert(format!("{parent}{}", e.name().unwrap()));
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    out
}

fn blob(dir: &Path, commit: Oid, path: &str) -> String {
    let repo = Repository::open(dir).unwrap();
    let tree = repo.find_commit(commit).unwrap().tree().unwrap();
    let entry = tree.get_path(Path::new(path)).unwrap();
    let blob = repo.find_blob(entry.id()).unwrap();
    String::from_utf8(blob.content().to_vec()).unwrap()
}

/// Files that differ between a commit and its parent.
fn changed_files(dir: &Path, commit: Oid) -> BTreeSet<String> {
    let repo = Repository::open(dir).unwrap();
    let c = repo.find_commit(commit).unwrap();
    let parent = c.parent(0).unwrap().tree().unwrap();
    let diff = repo
        .diff_tree_to_tree(Some(&parent), Some(&c.tree().unwrap()), None)
        .unwrap();
    diff.deltas()
        .map(|d| {
            let f = d.new_file().path().or(d.old_file().path()).unwrap();
            f.to_string_lossy().into_owned()
        })
        .collect()
}

fn note(dir: &Path, commit: Oid) -> serde_json::Value {
    let repo = Repository::open(dir).unwrap();
    let n = repo
        .find_note(Some("refs/notes/hydrator.metadata"), commit)
        .expect("the hydrated commit has a note");
    serde_json::from_str(n.message().unwrap()).expect("the note is JSON")
}

#[test]
fn the_same_dry_commit_hydrates_to_one_commit_with_the_same_tree_anywhere() {
    let dry = dry_repo();
    let d = dry.path();
    let first = hydrate(d, &["--env", "dev", "--to", "environment/dev"]);
    assert_eq!(first.status.code(), Some(0), "{}", transcript(&first));
    let c1 = tip(d, "environment/dev").expect("the branch is created");
    let repo = Repository::open(d).unwrap();
    assert_eq!(
        repo.find_commit(c1).unwrap().parent_count(),
        0,
        "an orphan branch"
    );
    assert_eq!(
        repo.head().unwrap().shorthand().unwrap(),
        "dev",
        "nothing checked out"
    );

    let again = hydrate(d, &["--env", "dev", "--to", "environment/dev"]);
    assert_eq!(again.status.code(), Some(0), "{}", transcript(&again));
    assert_eq!(tip(d, "environment/dev"), Some(c1), "no second commit");
    assert!(String::from_utf8_lossy(&again.stderr).contains("unchanged dev"));

    // Another machine: a clone, another time, the same commit and tree.
    let other = tempfile::tempdir().unwrap();
    git(other.path(), &["clone", "-q", d.to_str().unwrap(), "."]);
    let there = hydrate(other.path(), &["--env", "dev", "--to", "environment/dev"]);
    assert_eq!(there.status.code(), Some(0), "{}", transcript(&there));
    assert_eq!(tip(other.path(), "environment/dev"), Some(c1));
    // Without --repo-url: the clone's `origin` is a path on this machine,
    // which is no repoURL, so the trees still agree.
    for dir in [d, other.path()] {
        let out = run(&[
            "--repo",
            dir.to_str().unwrap(),
            "hydrate",
            "--env",
            "dev",
            "--to",
            "x",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    }
    assert_eq!(tip(d, "x"), tip(other.path(), "x"));

    // The git CLI reads what git2 wrote: the pack, the branch, the note
    // (GitOps Promoter runs `git notes --ref=… show`).
    git(d, &["fsck", "--no-dangling"]);
    let shown = std::process::Command::new("git")
        .args([
            "notes",
            "--ref=refs/notes/hydrator.metadata",
            "show",
            "environment/dev",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let note: serde_json::Value =
        serde_json::from_slice(&shown.stdout).expect("git shows the note");
    assert_eq!(note["drySha"], head(d).as_str());
    let ls = std::process::Command::new("git")
        .args(["ls-tree", "-r", "--name-only", "environment/dev"])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout).lines().count(),
        10,
        "8 manifests, README, metadata"
    );

    // Each file is one YAML document, as `kubectl apply -f` reads them.
    let files = files_of(d, c1);
    assert!(files.contains("README.md") && files.contains("hydrator.metadata"));
    let manifests: Vec<&String> = files.iter().filter(|f| f.ends_with(".yaml")).collect();
    assert_eq!(manifests.len(), 8, "{files:?}");
    for f in manifests {
        let text = blob(d, c1, f);
        assert!(
            !text.starts_with("---") && !text.contains("\n---"),
            "{f}: one document"
        );
        let mut sources = controlcenter::diagnostics::Sources::default();
        let id = sources.add(f, text.as_str());
        let v = controlcenter::load::yaml::parse(&text, id)
            .unwrap_or_else(|d| panic!("{f}: {d:?}"))
            .to_json();
        assert!(v["kind"].is_string(), "{f}");
    }
}

#[test]
fn metadata_and_note_name_the_dry_commit_and_a_no_op_only_adds_a_note() {
    let dry = dry_repo();
    let d = dry.path();
    let out = hydrate(d, &["--env", "prod"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let c1 = tip(d, "environment/prod").expect("default branch environment/<env>");
    let sha = head(d);
    let meta: serde_json::Value =
        serde_json::from_str(&blob(d, c1, "hydrator.metadata")).expect("metadata is JSON");
    assert_eq!(meta["drySha"], sha.as_str());
    assert_eq!(meta["repoURL"], URL);
    assert_eq!(meta["subject"], "article example");
    assert_eq!(meta["author"], "t <t@example.com>");
    assert!(meta["date"].as_str().unwrap().ends_with('Z'), "{meta}");
    let command = meta["commands"][0].as_str().unwrap();
    assert!(
        command.contains(&format!(
            "--env prod --to environment/prod --path . --rev {sha}"
        )),
        "{command}"
    );
    let refs: Vec<&str> = meta["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["controlcenter.yaml", "tags.yaml", "env-prod.yaml"]);
    assert_eq!(note(d, c1)["drySha"], sha.as_str());
    let readme = blob(d, c1, "README.md");
    assert!(
        readme.contains(&sha) && readme.contains(command),
        "{readme}"
    );

    // A comment-only change and a tags.yaml entry prod does not use: new
    // dry commit, same manifests. No commit; the tip is noted instead.
    std::fs::write(
        d.join("controlcenter.yaml"),
        format!(
            "# reviewed\n{}",
            std::fs::read_to_string(d.join("controlcenter.yaml")).unwrap()
        ),
    )
    .unwrap();
    edit(
        d,
        "tags.yaml",
        "service_rpps:\n",
        "service_rpps:\n  v9.9.9: registry.example.com/rpps:999\n",
    );
    commit_all(d, "comment and an unused tag");
    let noop = hydrate(d, &["--env", "prod"]);
    assert_eq!(noop.status.code(), Some(0), "{}", transcript(&noop));
    assert_eq!(
        tip(d, "environment/prod"),
        Some(c1),
        "a no-op hydration does not move the branch"
    );
    assert_eq!(
        note(d, c1)["drySha"],
        head(d).as_str(),
        "the new dry commit is noted"
    );
    assert_ne!(head(d), sha);
}

#[test]
fn a_changed_service_touches_its_files_and_a_removed_service_loses_them() {
    let dry = dry_repo();
    let d = dry.path();
    assert_eq!(hydrate(d, &["--env", "dev"]).status.code(), Some(0));
    let c1 = tip(d, "environment/dev").unwrap();

    edit(d, "controlcenter.yaml", "replicas: 1", "replicas: 3");
    commit_all(d, "dev: service_rpps to 3 replicas");
    let out = hydrate(d, &["--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let c2 = tip(d, "environment/dev").unwrap();
    let repo = Repository::open(d).unwrap();
    assert_eq!(repo.find_commit(c2).unwrap().parent_id(0).unwrap(), c1);
    let changed = changed_files(d, c2);
    assert_eq!(
        changed,
        BTreeSet::from([
            "README.md".to_owned(),
            "dev/deployment-service-rpps.yaml".to_owned(),
            "hydrator.metadata".to_owned()
        ]),
    );

    // Removing service_common from dev removes its files.
    let before: BTreeSet<String> = files_of(d, c2);
    assert!(before.iter().any(|f| f.contains("service-common")));
    let text = std::fs::read_to_string(d.join("controlcenter.yaml")).unwrap();
    let trimmed = text.replacen(
        "  service_common:\n    git_rev: v1.0.86\n",
        "  service_common:\n    enabled: false\n",
        1,
    );
    assert_ne!(trimmed, text);
    std::fs::write(d.join("controlcenter.yaml"), trimmed).unwrap();
    commit_all(d, "dev: drop service_common");
    let out = hydrate(d, &["--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let after = files_of(d, tip(d, "environment/dev").unwrap());
    assert!(
        !after.iter().any(|f| f.contains("service-common")),
        "{after:?}"
    );
    assert!(after.contains("dev/deployment-service-rpps.yaml"));
}

#[test]
fn files_outside_the_path_and_foreign_files_inside_it_survive() {
    let dry = dry_repo();
    let d = dry.path();
    // The target branch already exists with files of its own.
    let wt = tempfile::tempdir().unwrap();
    git(wt.path(), &["clone", "-q", d.to_str().unwrap(), "."]);
    git(
        wt.path(),
        &["checkout", "-q", "--orphan", "environment/dev-next"],
    );
    git(wt.path(), &["rm", "-rqf", "."]);
    for (f, text) in [
        (".github/workflows/ci.yml", "on: push\n"),
        ("apps/other/keep.yaml", "kind: ConfigMap\n"),
        ("apps/dev/notes.txt", "hand-written\n"),
        ("apps/dev/.argocd/values.yaml", "x: 1\n"),
    ] {
        let p = wt.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    commit_all(wt.path(), "branch files");
    git(wt.path(), &["push", "-q", "origin", "environment/dev-next"]);

    let out = hydrate(
        d,
        &[
            "--env",
            "dev",
            "--to",
            "environment/dev-next",
            "--path",
            "apps/dev",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let files = files_of(d, tip(d, "environment/dev-next").unwrap());
    for kept in [
        ".github/workflows/ci.yml",
        "apps/other/keep.yaml",
        "apps/dev/notes.txt",
        "apps/dev/.argocd/values.yaml",
        "apps/dev/hydrator.metadata",
        "apps/dev/README.md",
        "apps/dev/dev/deployment-service-rpps.yaml",
    ] {
        assert!(files.contains(kept), "{kept} missing from {files:?}");
    }
}

#[test]
fn files_git_ignores_are_not_hydrated_from_the_work_tree() {
    // The dry commit lacks what .gitignore hides: an env file, and a
    // template an entry point imports.
    let dry = dry_repo();
    let d = dry.path();
    std::fs::write(
        d.join(".gitignore"),
        "env-dev.yaml\njsonnet/extra.libsonnet\n",
    )
    .unwrap();
    git(d, &["rm", "-q", "--cached", "env-dev.yaml"]);
    commit_all(d, "env-dev.yaml is ignored");
    let out = hydrate(d, &["--env", "dev"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(transcript(&out).contains("CC0302"), "{}", transcript(&out));
    assert_eq!(tip(d, "environment/dev"), None);

    std::fs::write(d.join(".gitignore"), "jsonnet/extra.libsonnet\n").unwrap();
    std::fs::create_dir_all(d.join("jsonnet")).unwrap();
    std::fs::write(
        d.join("jsonnet/main.jsonnet"),
        "local cc = import 'controlcenter/lib.libsonnet';\nfunction(state) (cc.new(state) + { extraManifests:: [import 'extra.libsonnet'] }).manifests\n",
    )
    .unwrap();
    std::fs::write(
        d.join("jsonnet/extra.libsonnet"),
        "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ignored', namespace: 'dev' } }\n",
    )
    .unwrap();
    commit_all(d, "a template imports an ignored file");
    let out = hydrate(d, &["--env", "dev"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("extra.libsonnet"),
        "{}",
        transcript(&out)
    );
    assert_eq!(tip(d, "environment/dev"), None);
}

#[test]
fn a_failing_render_or_a_refused_target_leaves_the_branch_where_it_was() {
    let dry = dry_repo();
    let d = dry.path();
    assert_eq!(hydrate(d, &["--all"]).status.code(), Some(0));
    let tips: Vec<Option<Oid>> = ["dev", "preprod", "prod"]
        .iter()
        .map(|e| tip(d, &format!("environment/{e}")))
        .collect();
    assert!(
        tips.iter().all(Option::is_some),
        "--all hydrates every environment"
    );

    // prod's service loses its image: nothing is hydrated, not even dev.
    edit(d, "controlcenter.yaml", "replicas: 1", "replicas: 2");
    edit(
        d,
        "controlcenter.yaml",
        "git_rev: v1.0.146",
        "git_rev: v0.0.0",
    );
    commit_all(d, "broken prod");
    let out = hydrate(d, &["--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let after: Vec<Option<Oid>> = ["dev", "preprod", "prod"]
        .iter()
        .map(|e| tip(d, &format!("environment/{e}")))
        .collect();
    assert_eq!(tips, after);
    insta::assert_snapshot!("render-fails", common::normalize_transcript(&out, d));

    // The dry branch itself, checked out: refused.
    let out = hydrate(d, &["--env", "dev", "--to", "dev"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    insta::assert_snapshot!("checked-out", common::normalize_transcript(&out, d));

    // A hydrated branch checked out in a linked work tree: refused too.
    let linked = tempfile::tempdir().unwrap();
    let wt = linked.path().join("wt");
    git(
        d,
        &[
            "worktree",
            "add",
            "-q",
            wt.to_str().unwrap(),
            "environment/dev",
        ],
    );
    let out = hydrate(d, &["--env", "dev"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is checked out in a work tree"));
    git(d, &["worktree", "remove", "--force", wt.to_str().unwrap()]);

    // Uncommitted changes: no dry commit describes the work tree.
    edit(
        d,
        "tags.yaml",
        "service_rpps:\n",
        "service_rpps:\n  v9.9.9: registry.example.com/rpps:999\n",
    );
    let out = hydrate(d, &["--env", "dev"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    insta::assert_snapshot!("uncommitted", common::normalize_transcript(&out, d));
    // ... but a commit can be hydrated whatever the work tree holds.
    let out = hydrate(d, &["--env", "dev", "--rev", "HEAD~1"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));

    let out = hydrate(d, &["--env", "dev", "--to", "bad..branch"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let out = hydrate(d, &["--env", "dev", "--path", "../up"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
}

#[test]
fn settings_choose_each_environment_s_branch_and_path() {
    let dry = dry_repo();
    let d = dry.path();
    let text = std::fs::read_to_string(d.join("controlcenter.yaml")).unwrap();
    std::fs::write(
        d.join("controlcenter.yaml"),
        format!("settings:\n  hydrate:\n    prod: {{branch: environment/prod-next, path: clusters/prod}}\n{text}"),
    )
    .unwrap();
    commit_all(d, "hydrate prod to the -next branch");
    let out = hydrate(d, &["--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let prod = files_of(
        d,
        tip(d, "environment/prod-next").expect("settings.hydrate.prod.branch"),
    );
    assert!(prod.contains("clusters/prod/hydrator.metadata"), "{prod:?}");
    assert!(tip(d, "environment/dev").is_some() && tip(d, "environment/prod").is_none());
}
