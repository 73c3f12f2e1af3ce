//! Helpers shared by the end-to-end tests: run the real binary, find the
//! example repositories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root of this crate.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `controlcenter` command with no inherited Argo CD parameters and no colour.
pub fn controlcenter() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_controlcenter"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ARGOCD_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    // One evaluation cache for the test run, never the user's.
    cmd.env(
        "CONTROLCENTER_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("cache"),
    );
    cmd
}

/// Runs `controlcenter` with `args`.
pub fn run(args: &[&str]) -> Output {
    controlcenter()
        .args(args)
        .output()
        .expect("run controlcenter")
}

/// Example repositories under controlcenter-examples/, sorted.
pub fn examples() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("controlcenter-examples"))
        .expect("controlcenter-examples exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("controlcenter.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// The environments of an example: its env-<env>.yaml files, sorted.
pub fn envs_of(repo: &Path) -> Vec<String> {
    let mut envs: Vec<String> = std::fs::read_dir(repo)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some(name.strip_prefix("env-")?.strip_suffix(".yaml")?.to_owned())
        })
        .collect();
    envs.sort();
    envs
}

/// Output as text with the exit code, for snapshots.
pub fn transcript(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// [`transcript`] with the repository's temporary path replaced by `[REPO]`.
pub fn normalize_transcript(out: &Output, repo: &Path) -> String {
    transcript(out).replace(repo.to_str().unwrap(), "[REPO]")
}

/// Runs `validate --error-format json` on `repo`: the output and the
/// diagnostics, one JSON object per stdout line.
pub fn validate_json(repo: &Path) -> (Output, Vec<serde_json::Value>) {
    let out = run(&[
        "--repo",
        repo.to_str().unwrap(),
        "--error-format",
        "json",
        "validate",
    ]);
    let diagnostics = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    (out, diagnostics)
}

/// Runs `git args` in `dir` as a test author; panics on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies a directory tree; symlinks stay symlinks (jsonnet-bundler's
/// local packages are links).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &t).unwrap();
        } else if kind.is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Runs `controlcenter --repo REPO args`.
pub fn run_in(repo: &Path, args: &[&str]) -> Output {
    controlcenter()
        .arg("--repo")
        .arg(repo)
        .args(args)
        .output()
        .expect("run controlcenter")
}

/// Replaces the first `from` with `to` in a file of the repository
/// (which must hold it).
pub fn edit(repo: &Path, file: &str, from: &str, to: &str) {
    let path = repo.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no `{from}`");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}
