//! `tags set|get|prune`, the CI write-back, end to end.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{run, transcript};

const TAGS: &str = "\
# tags.yaml: written by CI after each build (controlcenter tags set).
# Do not edit by hand.

service_common:
  test: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_common:17   # smoke build
  v1.0.84: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_common:57
  v1.0.86: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_common:59

# payments
service_rpps:
  v1.0.146: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:55
  v1.0.150: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:59
";

fn repo_with(tags: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tags.yaml"), tags).unwrap();
    std::fs::write(
        dir.path().join("controlcenter.yaml"),
        "dev:\n  service_common:\n    git_rev: v1.0.86\n  service_rpps:\n    git_rev: v1.0.150\nprod:\n  service_rpps:\n    git_rev: v1.0.146\n",
    )
    .unwrap();
    dir
}

fn tags(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--repo", dir.to_str().unwrap(), "tags"];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn set_changes_only_the_new_line() {
    let repo = repo_with(TAGS);
    let out = tags(
        repo.path(),
        &[
            "set",
            "service_rpps",
            "v1.0.151",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:60",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let after = std::fs::read_to_string(repo.path().join("tags.yaml")).unwrap();
    let added = "  v1.0.151: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:60\n";
    assert_eq!(
        after.replacen(added, "", 1),
        TAGS,
        "every other byte unchanged"
    );
    insta::assert_snapshot!(after);
    // And the new revision renders.
    let got = tags(repo.path(), &["get", "service_rpps", "v1.0.151"]);
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:60\n"
    );
}

#[test]
fn a_new_service_is_inserted_in_sorted_position() {
    let repo = repo_with(TAGS);
    let out = tags(
        repo.path(),
        &["set", "service_lookup", "v1", "reg.example.com/lookup:1"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let after = std::fs::read_to_string(repo.path().join("tags.yaml")).unwrap();
    assert!(after.contains("service_common:59\n\nservice_lookup:\n  v1: reg.example.com/lookup:1\n# payments\nservice_rpps:"), "{after}");
}

#[test]
fn revisions_are_immutable_and_images_are_checked() {
    let repo = repo_with(TAGS);
    let out = tags(
        repo.path(),
        &["set", "service_rpps", "v1.0.150", "reg.example.com/rpps:99"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CC0701"),
        "{}",
        transcript(&out)
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("tags.yaml")).unwrap(),
        TAGS
    );
    let same = tags(
        repo.path(),
        &[
            "set",
            "service_rpps",
            "v1.0.150",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:59",
        ],
    );
    assert_eq!(
        same.status.code(),
        Some(0),
        "setting the same image again is a no-op"
    );
    let forced = tags(
        repo.path(),
        &[
            "set",
            "--force",
            "service_rpps",
            "v1.0.150",
            "reg.example.com/rpps:99",
        ],
    );
    assert_eq!(forced.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("tags.yaml")).unwrap(),
        TAGS.replace(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:59",
            "reg.example.com/rpps:99"
        )
    );
    for bad in [
        "reg.example.com/rpps",
        "reg.example.com/RPPS:1",
        "rpps:latest@sha256:12",
    ] {
        let out = tags(repo.path(), &["set", "service_rpps", "v2", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("CC0702"),
            "{bad}: {}",
            transcript(&out)
        );
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "ci")
        .env("GIT_AUTHOR_EMAIL", "ci@example.com")
        .env("GIT_COMMITTER_NAME", "ci")
        .env("GIT_COMMITTER_EMAIL", "ci@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_ci_jobs_writing_different_services_merge_cleanly() {
    let repo = repo_with(TAGS);
    let d = repo.path();
    git(d, &["init", "-q", "-b", "dev"]);
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "base"]);
    git(d, &["checkout", "-q", "-b", "build-a"]);
    assert!(tags(
        d,
        &[
            "set",
            "service_common",
            "v1.0.87",
            "reg.example.com/common:60"
        ]
    )
    .status
    .success());
    git(d, &["commit", "-q", "-am", "service_common v1.0.87"]);
    git(d, &["checkout", "-q", "dev"]);
    git(d, &["checkout", "-q", "-b", "build-b"]);
    assert!(tags(
        d,
        &["set", "service_rpps", "v1.0.151", "reg.example.com/rpps:60"]
    )
    .status
    .success());
    assert!(
        tags(d, &["set", "service_zeta", "v1", "reg.example.com/zeta:1"])
            .status
            .success()
    );
    git(
        d,
        &[
            "commit",
            "-q",
            "-am",
            "service_rpps v1.0.151, service_zeta v1",
        ],
    );
    git(d, &["checkout", "-q", "dev"]);
    git(d, &["merge", "-q", "--no-edit", "build-a"]);
    git(d, &["merge", "-q", "--no-edit", "build-b"]); // panics on a conflict
    let merged = std::fs::read_to_string(d.join("tags.yaml")).unwrap();
    for image in [
        "reg.example.com/common:60",
        "reg.example.com/rpps:60",
        "reg.example.com/zeta:1",
    ] {
        assert!(merged.contains(image), "{merged}");
    }
    assert!(tags(d, &["get", "service_zeta", "v1"]).status.success());
}

#[test]
fn a_failed_write_leaves_the_old_file_intact() {
    let repo = repo_with(TAGS);
    let d = repo.path();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    // Root ignores permissions: run the write as an unprivileged user.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let out = if is_root {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_controlcenter"))
            .args([
                "--repo",
                d.to_str().unwrap(),
                "tags",
                "set",
                "service_rpps",
                "v9",
                "reg.example.com/rpps:9",
            ])
            .output()
            .unwrap()
    } else {
        tags(d, &["set", "service_rpps", "v9", "reg.example.com/rpps:9"])
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CC0601"),
        "{}",
        transcript(&out)
    );
    assert_eq!(std::fs::read_to_string(d.join("tags.yaml")).unwrap(), TAGS);
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        2,
        "no temporary file left"
    );
}

#[test]
fn prune_removes_unused_old_revisions_only() {
    let repo = repo_with(TAGS);
    let out = tags(repo.path(), &["prune", "--keep", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Kept: the revisions in use (v1.0.86, v1.0.150, v1.0.146) and the newest
    // of each service by natural order, which for service_common is v1.0.86.
    assert_eq!(
        stdout,
        "removed service_common test\nremoved service_common v1.0.84\n"
    );
    let after = std::fs::read_to_string(repo.path().join("tags.yaml")).unwrap();
    let expected = TAGS
        .replace("  test: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_common:17   # smoke build\n", "")
        .replace("  v1.0.84: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_common:57\n", "");
    assert_eq!(after, expected);
    let dry = tags(repo.path(), &["prune", "--keep", "0", "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&dry.stdout).is_empty(),
        "everything left is in use"
    );
}
