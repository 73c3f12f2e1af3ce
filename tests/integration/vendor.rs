//! Jsonnet libraries vendored with jsonnet-bundler: the `vendored` example
//! imports its package `k8s-extra` through `vendor/` (a link to `libs/`,
//! as `jb install` leaves a local package), from the work tree and from a
//! Git revision alike, and `validate` warns when `vendor/` does not hold
//! what the lock file locks.

use crate::common;

use common::{copy_tree, git, normalize_transcript, run_in};

/// The example as a Git repository with one commit.
fn committed_example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &common::root().join("controlcenter-examples/vendored"),
        dir.path(),
    );
    git(dir.path(), &["init", "-q", "-b", "dev"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "vendored example"]);
    dir
}

#[test]
fn the_vendored_library_renders_the_same_from_git_and_from_the_work_tree() {
    let repo = committed_example();
    let work = run_in(repo.path(), &["render", "--env", "dev"]);
    let at_rev = run_in(repo.path(), &["render", "--env", "dev", "--rev", "HEAD"]);
    assert!(
        at_rev.status.success(),
        "{}",
        String::from_utf8_lossy(&at_rev.stderr)
    );
    assert_eq!(work.stdout, at_rev.stdout);
    assert!(String::from_utf8_lossy(&at_rev.stdout).contains("kind: LimitRange"));
}

#[test]
fn a_change_inside_the_vendored_library_shows_in_diff_at_a_revision() {
    let repo = committed_example();
    let lib = repo.path().join("libs/k8s-extra/main.libsonnet");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        text.replace(
            "spec: { limits: [] }",
            "spec: { limits: [{ type: 'Pod', max: { memory: '16Gi' } }] }",
        ),
    )
    .unwrap();
    // The work tree against the commit: through vendor/'s link in both.
    let out = run_in(repo.path(), &["diff", "--env", "dev", "--from", "HEAD"]);
    insta::assert_snapshot!(normalize_transcript(&out, repo.path()));
    git(repo.path(), &["commit", "-qam", "pod limit"]);
    let revs = run_in(
        repo.path(),
        &["diff", "--env", "dev", "--from", "HEAD~1", "--to", "HEAD"],
    );
    // The same change between the two commits (the first line names the sides).
    let body = |o: &std::process::Output| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.split_once('\n')
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default()
    };
    assert!(revs.status.success());
    assert_eq!(body(&revs), body(&out));
}

#[test]
fn validate_warns_when_vendor_does_not_hold_the_locked_packages() {
    let repo = committed_example();
    std::fs::remove_file(repo.path().join("vendor/k8s-extra")).unwrap();
    let lock = repo.path().join("jsonnetfile.json");
    let text = std::fs::read_to_string(&lock).unwrap();
    std::fs::write(
        &lock,
        text.replace(
            "  ],\n  \"legacyImports\"",
            "    ,{ \"source\": { \"git\": { \"remote\": \"https://github.com/example/lib.git\", \"subdir\": \"jsonnet\" } }, \"version\": \"main\" }\n  ],\n  \"legacyImports\"",
        ),
    )
    .unwrap();
    let out = run_in(repo.path(), &["validate", "--env", "dev"]);
    insta::assert_snapshot!(normalize_transcript(&out, repo.path()));
}

#[test]
fn the_vendored_example_validates_without_warnings() {
    let out = run_in(
        &common::root().join("controlcenter-examples/vendored"),
        &["validate"],
    );
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty() || !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
