//! `explain`: where each value of a rendered object comes from, input
//! lines and template lines, on the examples.

use crate::common;

use std::path::Path;

use common::{copy_tree, edit, git, normalize_transcript, run_in};

/// `explain --env prod TARGET` on `repo`.
fn explain_prod(repo: &Path, target: &str) -> std::process::Output {
    run_in(repo, &["explain", "--env", "prod", target])
}

fn example(name: &str) -> std::path::PathBuf {
    common::root().join("controlcenter-examples").join(name)
}

/// A copy of an example, `edit` applied to it.
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&example(name), dir.path());
    dir
}

#[test]
fn an_image_comes_from_tags_chosen_by_git_rev() {
    let repo = example("article");
    let out = explain_prod(
        &repo,
        "Deployment/service-rpps.spec.template.spec.containers[0].image",
    );
    assert!(out.status.success());
    let text = normalize_transcript(&out, &repo);
    assert!(text.contains("from       tags.yaml:"), "{text}");
    assert!(
        text.contains("chosen by  controlcenter.yaml:40:14"),
        "{text}"
    );
    assert!(
        text.contains("set by     <lib>/controlcenter/k8s/deployment.libsonnet:"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn a_replica_count_from_the_env_section_names_the_default_it_replaces() {
    let repo = copy_of("article");
    edit(
        repo.path(),
        "controlcenter.yaml",
        "defaults:\n",
        "defaults:\n  service_rpps:\n    replicas: 2\n",
    );
    edit(
        repo.path(),
        "controlcenter.yaml",
        "    git_rev: v1.0.146\n",
        "    git_rev: v1.0.146\n    replicas: 4\n",
    );
    let out = explain_prod(repo.path(), "Deployment/service-rpps.spec.replicas");
    let text = normalize_transcript(&out, repo.path());
    assert!(text.contains("\n4\n"), "{text}");
    assert!(text.contains("prod.service_rpps.replicas: 4"), "{text}");
    assert!(text.contains("defaults.service_rpps.replicas: 2"), "{text}");
    insta::assert_snapshot!(text);
    // In dev, the default itself.
    let dev = run_in(
        repo.path(),
        &[
            "explain",
            "--env",
            "dev",
            "Deployment/service-rpps.spec.replicas",
        ],
    );
    assert!(String::from_utf8_lossy(&dev.stdout).contains("dev.service_rpps.replicas: 1"));
}

#[test]
fn a_repo_override_shows_the_library_line_it_replaces() {
    let repo = copy_of("article");
    std::fs::create_dir_all(repo.path().join("jsonnet")).unwrap();
    std::fs::write(
        repo.path().join("jsonnet/main.jsonnet"),
        "local cc = import 'controlcenter/lib.libsonnet';\n\nfunction(state)\n  (cc.new(state) + {\n     deployment(svc):: super.deployment(svc) + {\n       spec+: { replicas: 3, revisionHistoryLimit: 5 },\n     },\n   }).manifests\n",
    )
    .unwrap();
    let out = explain_prod(repo.path(), "Deployment/service-rpps.spec");
    let text = normalize_transcript(&out, repo.path());
    assert!(text.contains("spec.replicas: 3\n  set by    jsonnet/main.jsonnet:6:17\n  replaces  <lib>/controlcenter/k8s/deployment.libsonnet:"), "{text}");
    insta::assert_snapshot!(text);
    // The platform example's own template.
    let platform = example("platform");
    let out = explain_prod(
        &platform,
        "Deployment/accounts.spec.template.spec.terminationGracePeriodSeconds",
    );
    insta::assert_snapshot!(
        "platform-termination-grace",
        normalize_transcript(&out, &platform)
    );
}

#[test]
fn the_checksum_annotation_names_every_input_it_hashes() {
    let repo = example("platform");
    let out = explain_prod(
        &repo,
        "Deployment/accounts.spec.template.metadata.annotations[\"checksum/config\"]",
    );
    let text = normalize_transcript(&out, &repo);
    assert!(text.contains("defaults.accounts.env.LOG_FORMAT"), "{text}");
    assert!(
        text.contains("prod.accounts.flags.profile_photos"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn secret_values_are_redacted() {
    let repo = example("platform");
    let out = explain_prod(&repo, "SealedSecret/db-credentials.spec.encryptedData");
    let text = normalize_transcript(&out, &repo);
    assert!(text.contains("password: <redacted>"), "{text}");
    let secrets = std::fs::read_to_string(repo.join("secrets.yaml")).unwrap();
    let cipher = secrets
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap();
    assert!(!text.contains(cipher.trim()), "{text}");
    insta::assert_snapshot!(text);
    let json = run_in(
        &repo,
        &[
            "explain",
            "--env",
            "prod",
            "SealedSecret/db-credentials",
            "--format",
            "json",
        ],
    );
    assert!(!String::from_utf8_lossy(&json.stdout).contains(cipher.trim()));
}

#[test]
fn a_whole_object_in_json_lists_every_leaf() {
    let repo = example("article");
    let out = run_in(
        &repo,
        &[
            "explain",
            "--env",
            "prod",
            "Deployment/service-rpps",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let render = run_in(&repo, &["render", "--env", "prod", "--format", "json"]);
    let deployment: serde_json::Value = String::from_utf8_lossy(&render.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["kind"] == "Deployment" && v["metadata"]["name"] == "service-rpps")
        .unwrap();
    let fields = doc["fields"].as_array().unwrap();
    let image = fields
        .iter()
        .find(|f| f["path"] == "spec.template.spec.containers[0].image")
        .unwrap();
    assert_eq!(
        image["value"],
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    );
    assert_eq!(image["origins"][0]["file"], "tags.yaml");
    assert_eq!(image["origins"][0]["kind"], "input");
    // Every leaf has a template line.
    for f in fields {
        assert!(
            f["origins"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["kind"] == "template"),
            "{f}"
        );
    }
}

#[test]
fn explain_works_at_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&example("article"), dir.path());
    git(dir.path(), &["init", "-q", "-b", "dev"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "article"]);
    edit(
        dir.path(),
        "controlcenter.yaml",
        "    git_rev: v1.0.146\n",
        "    git_rev: v1.0.148\n",
    );
    let field = "Deployment/service-rpps.spec.template.spec.containers[0].image";
    let head = run_in(
        dir.path(),
        &["explain", "--env", "prod", field, "--rev", "HEAD"],
    );
    let work = explain_prod(dir.path(), field);
    let (head, work) = (
        String::from_utf8_lossy(&head.stdout),
        String::from_utf8_lossy(&work.stdout),
    );
    assert!(head.contains("git_rev: v1.0.146"), "{head}");
    assert!(work.contains("git_rev: v1.0.148"), "{work}");
}

#[test]
fn unknown_objects_and_fields_are_errors_with_a_suggestion() {
    let repo = example("article");
    for target in [
        "Deployment/service-rpp",
        "Deployment/service-rpps.spec.replica",
        "Deployment/service-rpps.spec[",
    ] {
        let out = explain_prod(&repo, target);
        assert_eq!(out.status.code(), Some(1), "{target}");
        insta::assert_snapshot!(
            format!("unknown-{}", target.replace(['/', '.', '['], "_")),
            normalize_transcript(&out, &repo)
        );
    }
}
