//! Rendering Git revisions and diffing them, on real repositories built
//! with git2 in temporary directories: a history of commits on `dev` and an
//! environment branch `preprod`.

use crate::common;

use std::path::Path;

use git2::{IndexAddOption, Oid, Repository, Signature};

use common::{root, run, transcript};

/// Writes `files` into the work tree and commits them on the current branch.
fn commit(repo: &Repository, files: &[(&str, String)], message: &str) -> Oid {
    let dir = repo.workdir().unwrap();
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"].iter(), IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::new("dev", "dev@example.com", &git2::Time::new(1_700_000_000, 0)).unwrap();
    let parents: Vec<git2::Commit<'_>> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parent_refs)
        .unwrap()
}

fn checkout_branch(repo: &Repository, name: &str, from: Oid) {
    let c = repo.find_commit(from).unwrap();
    repo.branch(name, &c, true).unwrap();
    repo.set_head(&format!("refs/heads/{name}")).unwrap();
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .unwrap();
}

fn article(file: &str) -> String {
    std::fs::read_to_string(root().join("controlcenter-examples/article").join(file)).unwrap()
}

/// dev: A (the article example) → B (dev bumps service_rpps to v1.0.151)
/// → C (the preprod section takes v1.0.150, ready to promote).
/// preprod, prod: branches at A.
struct History {
    dir: tempfile::TempDir,
    a: Oid,
    b: Oid,
    c: Oid,
}

fn history() -> History {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    repo.set_head("refs/heads/dev").unwrap();
    let files: Vec<(&str, String)> = [
        "controlcenter.yaml",
        "tags.yaml",
        "env-dev.yaml",
        "env-preprod.yaml",
        "env-prod.yaml",
    ]
    .iter()
    .map(|f| (*f, article(f)))
    .collect();
    let a = commit(&repo, &files, "article example");
    let cc_b = article("controlcenter.yaml").replacen("git_rev: v1.0.150", "git_rev: v1.0.151", 1);
    let tags_b = article("tags.yaml").replace(
        "service_rpps:\n",
        "service_rpps:\n  v1.0.151: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:60\n",
    );
    let b = commit(
        &repo,
        &[("controlcenter.yaml", cc_b.clone()), ("tags.yaml", tags_b)],
        "dev: service_rpps v1.0.151",
    );
    let cc_c = cc_b.replacen("git_rev: v1.0.148", "git_rev: v1.0.150", 1);
    let c = commit(
        &repo,
        &[("controlcenter.yaml", cc_c)],
        "preprod: service_rpps v1.0.150",
    );
    checkout_branch(&repo, "prod", a);
    checkout_branch(&repo, "preprod", a);
    checkout_branch(&repo, "dev", c);
    History { dir, a, b, c }
}

fn cc(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--repo", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn render_of_an_old_revision_equals_its_checkout() {
    let h = history();
    let at_rev = cc(
        h.dir.path(),
        &["render", "--env", "dev", "--rev", &h.a.to_string()],
    );
    assert_eq!(at_rev.status.code(), Some(0), "{}", transcript(&at_rev));
    let checkout = tempfile::tempdir().unwrap();
    let repo = Repository::clone(h.dir.path().to_str().unwrap(), checkout.path()).unwrap();
    repo.set_head_detached(h.a).unwrap();
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .unwrap();
    let checked_out = cc(checkout.path(), &["render", "--env", "dev"]);
    assert_eq!(at_rev.stdout, checked_out.stdout);
    let head = cc(h.dir.path(), &["render", "--env", "dev"]);
    assert_ne!(at_rev.stdout, head.stdout, "the revisions really differ");
    // Branch names work too.
    let preprod = cc(
        h.dir.path(),
        &["render", "--env", "preprod", "--rev", "preprod"],
    );
    assert_eq!(preprod.status.code(), Some(0), "{}", transcript(&preprod));
}

fn scrub(text: &str, h: &History) -> String {
    text.replace(&h.a.to_string(), "[A]")
        .replace(&h.b.to_string(), "[B]")
        .replace(&h.c.to_string(), "[C]")
}

#[test]
fn diff_between_two_commits_shows_exactly_the_bumped_service() {
    let h = history();
    let out = cc(
        h.dir.path(),
        &[
            "--color",
            "never",
            "diff",
            "--env",
            "dev",
            "--from",
            &h.a.to_string(),
            "--to",
            &h.b.to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    insta::assert_snapshot!(scrub(&String::from_utf8_lossy(&out.stdout), &h));
    let stat = cc(
        h.dir.path(),
        &[
            "diff",
            "--env",
            "dev",
            "--from",
            &h.a.to_string(),
            "--to",
            &h.b.to_string(),
            "--stat",
        ],
    );
    insta::assert_snapshot!("stat", scrub(&String::from_utf8_lossy(&stat.stdout), &h));
    // prod is untouched by these commits.
    let prod = cc(
        h.dir.path(),
        &[
            "diff",
            "--env",
            "prod",
            "--from",
            &h.a.to_string(),
            "--to",
            &h.b.to_string(),
            "--exit-code",
        ],
    );
    assert_eq!(prod.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&prod.stdout)
        .ends_with("0 changed, 0 added, 0 removed, 8 unchanged\n"));
}

#[test]
fn diff_against_the_work_tree_and_exit_code() {
    let h = history();
    let d = h.dir.path();
    let clean = cc(d, &["diff", "--env", "dev", "--exit-code"]);
    assert_eq!(clean.status.code(), Some(0), "{}", transcript(&clean));
    let cc_path = d.join("controlcenter.yaml");
    let text = std::fs::read_to_string(&cc_path).unwrap();
    std::fs::write(&cc_path, text.replacen("replicas: 1", "replicas: 3", 1)).unwrap();
    let dirty = cc(
        d,
        &["--color", "never", "diff", "--env", "dev", "--exit-code"],
    );
    assert_eq!(
        dirty.status.code(),
        Some(1),
        "--exit-code: differences exit 1"
    );
    insta::assert_snapshot!(String::from_utf8_lossy(&dirty.stdout));
    let json = cc(d, &["diff", "--env", "dev", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["summary"],
        serde_json::json!({"changed": 1, "added": 0, "removed": 0, "unchanged": 7})
    );
    assert_eq!(v["changes"][0]["resource"], "Deployment/dev/service-rpps");
    assert_eq!(v["to"], "the work tree");
    // A noisy path can be ignored.
    let ignored = cc(
        d,
        &[
            "diff",
            "--env",
            "dev",
            "--exit-code",
            "--ignore",
            "/spec/replicas",
        ],
    );
    assert_eq!(ignored.status.code(), Some(0), "{}", transcript(&ignored));
}

#[test]
fn when_both_sides_fail_their_errors_come_in_order() {
    let h = history();
    let d = h.dir.path();
    let cc_path = d.join("controlcenter.yaml");
    let text = std::fs::read_to_string(&cc_path).unwrap();
    // Revisions tags.yaml has no image for, one in each section.
    let broken = text
        .replacen("git_rev: v1.0.151", "git_rev: v8.8.8", 1)
        .replacen("git_rev: v1.0.146", "git_rev: v9.9.9", 1);
    std::fs::write(&cc_path, broken).unwrap();
    let args = [
        "diff",
        "--env",
        "dev",
        "--against-env",
        "prod",
        "--no-cache",
    ];
    let first = cc(d, &args);
    assert_eq!(first.status.code(), Some(1), "{}", transcript(&first));
    let stderr = String::from_utf8_lossy(&first.stderr);
    let (dev, prod) = (stderr.find("v8.8.8"), stderr.find("v9.9.9"));
    assert!(dev.is_some() && prod.is_some() && dev < prod, "{stderr}");
    // The two sides are rendered at once; what they report is not.
    for _ in 0..8 {
        assert_eq!(cc(d, &args).stderr, first.stderr);
    }
}

#[test]
fn an_option_error_of_a_comparison_is_reported_once() {
    let h = history();
    for args in [
        &["diff", "--env", "dev", "--against-env", "prod"][..],
        &["promote", "--from", "dev", "--to", "preprod", "--dry-run"][..],
    ] {
        let out = common::controlcenter()
            .arg("--repo")
            .arg(h.dir.path())
            .args(args)
            .env("CONTROLCENTER_CACHE_SIZE_MB", "lots")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.matches("CONTROLCENTER_CACHE_SIZE_MB").count(),
            1,
            "{stderr}"
        );
    }
}

#[test]
fn two_environments_of_one_revision() {
    let h = history();
    let out = cc(
        h.dir.path(),
        &[
            "--color",
            "never",
            "diff",
            "--env",
            "preprod",
            "--against-env",
            "prod",
            "--stat",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn promotion_preview_between_branches() {
    let h = history();
    let out = cc(
        h.dir.path(),
        &[
            "--color",
            "never",
            "promote",
            "--from",
            "dev",
            "--to",
            "preprod",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("preprod → dev promoted into preprod\n"),
        "{text}"
    );
    assert!(
        text.contains("service_rpps:59"),
        "v1.0.150's image reaches preprod: {text}"
    );
    insta::assert_snapshot!(text);
    let without = cc(
        h.dir.path(),
        &["promote", "--from", "dev", "--to", "preprod"],
    );
    assert_eq!(without.status.code(), Some(2), "promote only previews");
    // An environment with no branch is named as one.
    let out = cc(
        h.dir.path(),
        &["promote", "--from", "dev", "--to", "nope", "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("environment `nope` has no branch here"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn unknown_revisions_and_revisions_without_inputs_are_clear_errors() {
    let h = history();
    let out = cc(
        h.dir.path(),
        &["render", "--env", "dev", "--rev", "no-such-branch"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown revision: `no-such-branch`"),
        "{}",
        transcript(&out)
    );

    let repo = Repository::open(h.dir.path()).unwrap();
    checkout_branch(&repo, "docs", h.a);
    let mut index = repo.index().unwrap();
    index.clear().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::new("dev", "dev@example.com", &git2::Time::new(1_700_000_000, 0)).unwrap();
    let empty = repo.commit(None, &sig, &sig, "empty", &tree, &[]).unwrap();
    let out = cc(
        h.dir.path(),
        &["render", "--env", "dev", "--rev", &empty.to_string()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("controlcenter.yaml not found"),
        "{}",
        transcript(&out)
    );
    let not_git = tempfile::tempdir().unwrap();
    let out = cc(not_git.path(), &["render", "--env", "dev", "--rev", "HEAD"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Git repository"));
}

#[test]
fn markdown_diff_and_promotion_for_a_pull_request_comment() {
    let h = history();
    let out = cc(
        h.dir.path(),
        &[
            "diff",
            "--env",
            "dev",
            "--from",
            &h.a.to_string(),
            "--to",
            &h.b.to_string(),
            "--format",
            "markdown",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    insta::assert_snapshot!(
        "markdown",
        scrub(&String::from_utf8_lossy(&out.stdout), &h)
            .replace(&h.dir.path().display().to_string(), "[REPO]")
    );
    let promote = cc(
        h.dir.path(),
        &[
            "promote",
            "--from",
            "dev",
            "--to",
            "preprod",
            "--dry-run",
            "--format",
            "markdown",
        ],
    );
    assert_eq!(promote.status.code(), Some(0), "{}", transcript(&promote));
    insta::assert_snapshot!(
        "markdown-promote",
        String::from_utf8_lossy(&promote.stdout)
            .replace(&h.dir.path().display().to_string(), "[REPO]")
    );
}

/// A repository of `n` services on dev, every image at `build`.
fn many_services(n: usize, build: u32, secret: &str) -> Vec<(&'static str, String)> {
    let mut cc = String::from("dev:\n");
    let mut tags = String::new();
    for i in 0..n {
        cc.push_str(&format!(
            "  svc_{i:03}:\n    git_rev: v1\n    memory_min: 64Mi\n    memory_max: 128Mi\n"
        ));
        tags.push_str(&format!(
            "svc_{i:03}:\n  v1: registry.example.com/acme/svc-{i:03}:{build}\n"
        ));
    }
    let secrets =
        format!("dev:\n  db-credentials:\n    encryptedData:\n      password: {secret}\n");
    vec![
        ("controlcenter.yaml", cc),
        ("tags.yaml", tags),
        ("env-dev.yaml", "db_endpoint: db.dev.internal\n".to_owned()),
        ("secrets.yaml", secrets),
    ]
}

#[test]
fn markdown_diff_stays_under_github_s_comment_limit_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    // Two real ciphertexts from the platform example.
    let sealed: Vec<String> =
        std::fs::read_to_string(root().join("controlcenter-examples/platform/secrets.yaml"))
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("password: ").map(str::to_owned))
            .collect();
    let (old_secret, new_secret) = (sealed[0].clone(), sealed[1].clone());
    let a = commit(&repo, &many_services(400, 1, &old_secret), "400 services");
    let b = commit(
        &repo,
        &many_services(400, 2, &new_secret),
        "every image rebuilt, password rotated",
    );
    let out = cc(
        dir.path(),
        &[
            "diff",
            "--env",
            "dev",
            "--from",
            &a.to_string(),
            "--to",
            &b.to_string(),
            "--format",
            "markdown",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.chars().count() <= 65_536,
        "{} characters",
        md.chars().count()
    );
    assert!(md.contains("| Deployment | 0 | 0 | 400 |"), "{md}");
    assert!(md.contains("not shown here to keep this comment under GitHub's size limit"));
    assert!(md.contains(&format!(
        "See them all with `controlcenter --repo {} diff --env dev --from {a} --to {b}`",
        dir.path().display()
    )));
    // The rotated password shows as a changed hash, never as ciphertext.
    assert!(md.contains("SealedSecret"), "the SealedSecret is listed");
    assert!(
        !md.contains(&old_secret[..24]) && !md.contains(&new_secret[..24]),
        "no ciphertext in the comment"
    );
    // Every fence opened is closed: the sections shown are whole.
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
    let lines: Vec<&str> = md.lines().collect();
    let tail = lines[lines.len() - 3..].join("\n");
    insta::assert_snapshot!(
        "markdown-capped-tail",
        tail.replace(&dir.path().display().to_string(), "[REPO]")
            .replace(&a.to_string(), "[A]")
            .replace(&b.to_string(), "[B]")
    );
}
