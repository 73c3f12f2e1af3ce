//! Policies on rendered manifests: every built-in (a violation, and the
//! same repository with the policy switched off) and a repository policy.
//! Diagnostics are snapshotted.

use crate::common;

use std::path::Path;

use common::{run, transcript};

const TAGS: &str = "api:\n  v1: reg.example.com/api:1\n  main: reg.example.com/api:latest\n";

/// A repository with `controlcenter.yaml` = `cc` and optional extra files.
fn repo(cc: &str, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("controlcenter.yaml"), cc).unwrap();
    std::fs::write(dir.path().join("tags.yaml"), TAGS).unwrap();
    for env in ["dev", "prod"] {
        std::fs::write(dir.path().join(format!("env-{env}.yaml")), "{}\n").unwrap();
    }
    for (path, text) in extra {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn render(dir: &Path, env: &str) -> std::process::Output {
    run(&["--repo", dir.to_str().unwrap(), "render", "--env", env])
}

fn violation(name: &str, dir: &Path, env: &str, code: &str) {
    let out = render(dir, env);
    let stderr = String::from_utf8_lossy(&out.stderr).replace(dir.to_str().unwrap(), "[REPO]");
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(stderr.contains(code), "{stderr}");
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(name, stderr);
}

fn passes(dir: &Path, env: &str) {
    let out = render(dir, env);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
}

#[test]
fn memory_limits() {
    let cc = "dev:\n  api:\n    git_rev: v1\n    memory_min: 128Mi\n";
    violation("memory-limits", repo(cc, &[]).path(), "dev", "CC0801");
    passes(
        repo(
            &format!("settings:\n  policies:\n    memory-limits: false\n{cc}"),
            &[],
        )
        .path(),
        "dev",
    );
    passes(
        repo(
            "dev:\n  api:\n    git_rev: v1\n    memory_min: 128Mi\n    memory_max: 256Mi\n",
            &[],
        )
        .path(),
        "dev",
    );
}

#[test]
fn no_mutable_images() {
    let cc = "prod:\n  api:\n    git_rev: main\n    memory_min: 1Gi\n    memory_max: 1Gi\n";
    violation("no-mutable-images", repo(cc, &[]).path(), "prod", "CC0305");
    passes(
        repo(
            &format!("settings:\n  policies:\n    no-mutable-images: false\n{cc}"),
            &[],
        )
        .path(),
        "prod",
    );
}

#[test]
fn no_plain_secrets() {
    let main = "local cc = import 'controlcenter/lib.libsonnet';\nfunction(state) (cc.new(state) + { extraManifests:: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db', namespace: 'dev' } }] }).manifests\n";
    let cc = "dev:\n  api:\n    git_rev: v1\n    memory_min: 1Gi\n    memory_max: 1Gi\n";
    violation(
        "no-plain-secrets",
        repo(cc, &[("jsonnet/main.jsonnet", main)]).path(),
        "dev",
        "CC0505",
    );
    passes(
        repo(
            &format!("settings:\n  policies:\n    no-plain-secrets: false\n{cc}"),
            &[("jsonnet/main.jsonnet", main)],
        )
        .path(),
        "dev",
    );
}

#[test]
fn pdb_replicas_in_protected_envs() {
    let svc = "  api:\n    git_rev: v1\n    memory_min: 1Gi\n    memory_max: 1Gi\n    replicas: 1\n    disruption_budget: {min_available: 1}\n";
    let cc = format!("dev:\n{svc}prod:\n{svc}");
    let r = repo(&cc, &[]);
    violation("pdb-replicas", r.path(), "prod", "CC0801");
    passes(r.path(), "dev"); // not protected
    passes(
        repo(&cc.replace("replicas: 1", "replicas: 2"), &[]).path(),
        "prod",
    );
    // An HPA that keeps at least 2 pods satisfies it.
    let hpa = cc.replace(
        "replicas: 1\n",
        "autoscaling: {min_replicas: 2, max_replicas: 4}\n",
    );
    passes(repo(&hpa, &[]).path(), "prod");
    passes(
        repo(
            &format!("settings:\n  policies:\n    pdb-replicas: false\n{cc}"),
            &[],
        )
        .path(),
        "prod",
    );
}

const TEAM_POLICY: &str = "\
name: team-label
message: production Deployments name their owning team
envs: [prod]
kinds: [Deployment]
schema:
  type: object
  required: [metadata]
  properties:
    metadata:
      type: object
      required: [labels]
      properties:
        labels:
          type: object
          required: [example.com/team]
";

#[test]
fn repo_policy() {
    let cc = "dev:\n  api:\n    git_rev: v1\n    memory_min: 1Gi\n    memory_max: 1Gi\nprod:\n  api:\n    git_rev: v1\n    memory_min: 1Gi\n    memory_max: 1Gi\n";
    let r = repo(cc, &[("policies/team-label.yaml", TEAM_POLICY)]);
    violation("repo-policy", r.path(), "prod", "CC0801");
    passes(r.path(), "dev"); // envs: [prod]
    let off = repo(
        &format!("settings:\n  policies:\n    team-label: false\n{cc}"),
        &[("policies/team-label.yaml", TEAM_POLICY)],
    );
    passes(off.path(), "prod");
    let broken = repo(
        cc,
        &[("policies/team-label.yaml", "name: Team Label\nschema: {}\n")],
    );
    violation("repo-policy-invalid", broken.path(), "dev", "CC0802");
    // A policy put where it is not read is said so, not passed over; a
    // README beside the policies is not one.
    let misplaced = repo(
        cc,
        &[
            ("policies/team/team-label.yaml", TEAM_POLICY),
            ("policies/README.md", "# Our policies\n"),
        ],
    );
    #[cfg(unix)]
    std::os::unix::fs::symlink("gone.yaml", misplaced.path().join("policies/link.yaml")).unwrap();
    let out = render(misplaced.path(), "dev");
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("policies/team is a directory"), "{stderr}");
    #[cfg(unix)]
    assert!(
        stderr.contains("policies/link.yaml cannot be read"),
        "{stderr}"
    );
    assert!(!stderr.contains("README"), "{stderr}");
    // A policy in JSON, and a policies directory that is a link to nothing.
    let json = repo(cc, &[("policies/team-label.json", "{}")]);
    let out = render(json.path(), "dev");
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policies/team-label.json is not read"));
    #[cfg(unix)]
    {
        let gone = repo(cc, &[]);
        std::os::unix::fs::symlink("renamed-away", gone.path().join("policies")).unwrap();
        let out = render(gone.path(), "dev");
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("policies is a link to nothing"));
    }
}

/// Regression (#10): a repo template adding a workload on a mutable image
/// rendered into prod with exit 0; every container of every workload kind
/// is now checked, at the image's place in the template.
#[test]
fn mutable_images_in_rendered_workloads() {
    let cc = "defaults:\n  api:\n    memory_min: 64Mi\n    memory_max: 64Mi\nprod:\n  api:\n    git_rev: v1\ndev:\n  api:\n    git_rev: v1\n";
    let pod = |image: &str| {
        format!("{{spec: {{initContainers: [{{name: 'init', image: 'reg.example.com/init:2', resources: {{requests: {{memory: '1Mi'}}, limits: {{memory: '1Mi'}}}}}}], containers: [{{name: 'main', image: '{image}', resources: {{requests: {{memory: '1Mi'}}, limits: {{memory: '1Mi'}}}}}}]}}}}")
    };
    for (kind, api, wrap) in [
        (
            "CronJob",
            "batch/v1",
            "{spec: {schedule: '@daily', jobTemplate: {spec: {template: POD}}}}",
        ),
        ("Job", "batch/v1", "{spec: {template: POD}}"),
        (
            "DaemonSet",
            "apps/v1",
            "{spec: {selector: {}, template: POD}}",
        ),
        (
            "StatefulSet",
            "apps/v1",
            "{spec: {selector: {}, serviceName: 'x', template: POD}}",
        ),
        ("Rollout", "argoproj.io/v1alpha1", "{spec: {template: POD}}"),
        ("Pod", "v1", "POD"),
    ] {
        for image in ["busybox:latest", "busybox", "reg.example.com:5000/tools"] {
            let body = wrap.replace("POD", &pod(image));
            let main = format!(
                "local cc = import 'controlcenter/lib.libsonnet';\nfunction(state)\n  (cc.new(state) + {{ extraManifests:: [\n    {{apiVersion: '{api}', kind: '{kind}', metadata: {{name: 'extra', namespace: state.namespace}}}} + {body},\n  ] }}).manifests\n"
            );
            let dir = repo(cc, &[("jsonnet/main.jsonnet", &main)]);
            let out = render(dir.path(), "prod");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{kind} {image}: {}",
                transcript(&out)
            );
            assert!(
                stderr.contains("no-mutable-images") && stderr.contains(image),
                "{stderr}"
            );
            assert!(
                stderr.contains("jsonnet/main.jsonnet:4:"),
                "{kind} {image}: located at the literal\n{stderr}"
            );
            // Not protected: fine.
            passes(dir.path(), "dev");
            if kind == "CronJob" && image == "busybox:latest" {
                insta::assert_snapshot!(
                    "no-mutable-images-rendered",
                    stderr.replace(dir.path().to_str().unwrap(), "[REPO]")
                );
            }
        }
    }
}
