//! The pre-commit hook, driven by the real `pre-commit` tool (PyPI
//! `pre-commit`, installed by .ci/run) on a temporary Git repository: a bad
//! commit is refused, a good one passes, unrelated changes skip the hook.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::root;

/// Fails the test when pre-commit is missing (the tests that need it are
/// `#[ignore]`d and run with `--include-ignored`, as .ci/run does).
fn require_pre_commit() {
    let ok = Command::new("pre-commit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "pre-commit is not installed: pip install -r tests/requirements.txt"
    );
}

/// PATH with the controlcenter binary first.
fn path_with_binary() -> String {
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_controlcenter"))
        .parent()
        .unwrap()
        .to_path_buf();
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn cmd(dir: &Path, home: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PATH", path_with_binary())
        .env("PRE_COMMIT_HOME", home)
        .env("GIT_AUTHOR_NAME", "dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn platform_repo() -> (tempfile::TempDir, tempfile::TempDir) {
    let repo = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let src = root().join("controlcenter-examples/article");
    crate::common::copy_tree(&src, repo.path());
    let d = repo.path();
    assert!(cmd(d, home.path(), "git", &["init", "-q", "-b", "dev"])
        .status
        .success());
    assert!(cmd(d, home.path(), "git", &["add", "."]).status.success());
    (repo, home)
}

#[test]
#[ignore = "needs pre-commit (tests/requirements.txt; .ci/run installs it)"]
fn try_repo_fails_a_bad_change_and_passes_a_good_one() {
    require_pre_commit();
    let (repo, home) = platform_repo();
    let (d, h) = (repo.path(), home.path());
    let hook_repo = root();
    let hook = hook_repo.to_str().unwrap();
    let good = cmd(
        d,
        h,
        "pre-commit",
        &["try-repo", hook, "controlcenter-validate"],
    );
    assert!(good.status.success(), "{}", text(&good));
    assert!(
        text(&good).contains("controlcenter validate"),
        "{}",
        text(&good)
    );

    let cc = d.join("controlcenter.yaml");
    let broken = std::fs::read_to_string(&cc)
        .unwrap()
        .replacen("replicas: 1", "replica: 1", 1);
    std::fs::write(&cc, broken).unwrap();
    assert!(cmd(d, h, "git", &["add", "controlcenter.yaml"])
        .status
        .success());
    let bad = cmd(
        d,
        h,
        "pre-commit",
        &["try-repo", hook, "controlcenter-validate"],
    );
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(text(&bad).contains("CC0202"), "{}", text(&bad));
}

#[test]
#[ignore = "needs pre-commit (tests/requirements.txt; .ci/run installs it)"]
fn an_installed_hook_refuses_the_bad_commit() {
    require_pre_commit();
    let (repo, home) = platform_repo();
    let (d, h) = (repo.path(), home.path());
    // A local hook with the same definition as .pre-commit-hooks.yaml.
    let hooks = std::fs::read_to_string(root().join(".pre-commit-hooks.yaml")).unwrap();
    let indented: String = hooks.lines().map(|l| format!("      {l}\n")).collect();
    std::fs::write(
        d.join(".pre-commit-config.yaml"),
        format!("repos:\n  - repo: local\n    hooks:\n{indented}"),
    )
    .unwrap();
    assert!(cmd(d, h, "pre-commit", &["install"]).status.success());
    assert!(cmd(d, h, "git", &["add", "."]).status.success());
    let first = cmd(d, h, "git", &["commit", "-q", "-m", "article example"]);
    assert!(
        first.status.success(),
        "a valid repository commits: {}",
        text(&first)
    );

    std::fs::write(
        d.join("tags.yaml"),
        std::fs::read_to_string(d.join("tags.yaml"))
            .unwrap()
            .replace("v1.0.150:", "v1.0.149:"),
    )
    .unwrap();
    assert!(cmd(d, h, "git", &["add", "tags.yaml"]).status.success());
    let refused = cmd(
        d,
        h,
        "git",
        &["commit", "-q", "-m", "drop a built revision"],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("CC0304"), "{}", text(&refused));

    // A change to a file the hook does not watch skips it.
    assert!(cmd(d, h, "git", &["checkout", "--", "."]).status.success());
    assert!(cmd(d, h, "git", &["reset", "-q", "--hard"])
        .status
        .success());
    std::fs::write(d.join("NOTES.md"), "notes\n").unwrap();
    assert!(cmd(d, h, "git", &["add", "NOTES.md"]).status.success());
    let skipped = cmd(d, h, "git", &["commit", "-q", "-m", "notes"]);
    assert!(skipped.status.success(), "{}", text(&skipped));
}
