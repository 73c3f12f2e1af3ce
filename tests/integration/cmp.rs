//! Conformance harness for the Argo CD config-management plugin.
//!
//! Reproduces what argocd-cmp-server does with a plugin: it copies the
//! repository into a fresh directory (file modes reset to 0644, no `.git`),
//! runs the generate command in the Application's source path with a clean
//! environment holding only the variables Argo CD passes, under a deadline,
//! and parses stdout the way Argo CD does (a JSON stream when the first
//! non-space byte is `{`, otherwise YAML documents; every document must be
//! an object with `kind`; `items` of List kinds flattened).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{envs_of, examples, root};

/// A repository as the plugin sees it.
struct Checkout {
    dir: tempfile::TempDir,
}

impl Checkout {
    /// Copies `repo` like Argo CD's tar stream: regular files, mode 0644,
    /// symlinks that stay inside the repository kept as links, no `.git`.
    fn of(repo: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy(repo, dir.path());
        Checkout { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn copy(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let target = to.join(&name);
        let path = entry.path();
        if entry.file_type().unwrap().is_symlink() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(std::fs::read_link(&path).unwrap(), &target).unwrap();
        } else if path.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
    }
}

/// The variables Argo CD passes to a plugin command.
fn argo_env(app: &str, env_entry: Option<&str>, target_revision: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::from([
        ("ARGOCD_APP_NAME".to_owned(), app.to_owned()),
        ("ARGOCD_APP_NAMESPACE".to_owned(), String::new()),
        (
            "ARGOCD_APP_REVISION".to_owned(),
            "4f2b8c1d9e0a7b6c5d4e3f2a1b0c9d8e7f6a5b4c".to_owned(),
        ),
        ("ARGOCD_APP_REVISION_SHORT".to_owned(), "4f2b8c1".to_owned()),
        (
            "ARGOCD_APP_SOURCE_REPO_URL".to_owned(),
            "https://git.example.com/platform/control-center.git".to_owned(),
        ),
        ("ARGOCD_APP_SOURCE_PATH".to_owned(), ".".to_owned()),
        (
            "ARGOCD_APP_SOURCE_TARGET_REVISION".to_owned(),
            target_revision.to_owned(),
        ),
        ("KUBE_VERSION".to_owned(), "1.31.0".to_owned()),
        (
            "KUBE_API_VERSIONS".to_owned(),
            "v1,apps/v1,autoscaling/v2,policy/v1,networking.k8s.io/v1".to_owned(),
        ),
        ("ARGOCD_APP_PARAMETERS".to_owned(), "null".to_owned()),
    ]);
    if let Some(e) = env_entry {
        vars.insert("ARGOCD_ENV_CC_ENV".to_owned(), e.to_owned());
    }
    vars
}

/// Runs `controlcenter <args>` in `cwd` with exactly `vars`, killed at `deadline`.
fn exec(cwd: &Path, vars: &BTreeMap<String, String>, args: &[&str], deadline: Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_controlcenter"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(vars)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Drain the pipes on a thread (a full pipe would block the plugin).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("plugin exceeded the {deadline:?} deadline");
        }
    }
}

fn generate(cwd: &Path, vars: &BTreeMap<String, String>) -> Output {
    exec(cwd, vars, &["cmp", "generate"], Duration::from_secs(30))
}

/// Parses plugin stdout as Argo CD does; errors are Argo CD's refusals.
fn argo_parse(stdout: &[u8]) -> Result<Vec<serde_json::Value>, String> {
    let text = std::str::from_utf8(stdout).map_err(|e| e.to_string())?;
    let docs: Vec<serde_json::Value> = if text.trim_start().starts_with('{') {
        serde_json::Deserializer::from_str(text)
            .into_iter::<serde_json::Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?
    } else {
        let mut out = Vec::new();
        let mut sources = controlcenter::diagnostics::Sources::default();
        for (i, doc) in text.split("\n---").enumerate() {
            let doc = doc.trim_start_matches("---");
            if doc.trim().is_empty() {
                continue;
            }
            let id = sources.add(format!("doc{i}"), doc);
            let node = controlcenter::load::yaml::parse(doc, id).map_err(|d| format!("{d:?}"))?;
            out.push(node.to_json());
        }
        out
    };
    let mut objects = Vec::new();
    for d in docs {
        let obj = d.as_object().ok_or("a document is not an object")?;
        let kind = obj
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or("a document has no kind")?;
        match obj.get("items").and_then(|i| i.as_array()) {
            Some(items) if kind.ends_with("List") => objects.extend(items.iter().cloned()),
            _ => objects.push(d),
        }
    }
    Ok(objects)
}

fn assert_failure_contract(out: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "must fail: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on failure, got {} bytes",
        out.stdout.len()
    );
    assert!(!stderr.trim().is_empty(), "a message for the Argo CD UI");
    let lines = stderr.lines().count();
    assert!(lines <= 20, "at most 20 lines, got {lines}:\n{stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in:\n{stderr}");
}

#[test]
fn every_example_env_renders_through_the_plugin_contract() {
    for repo in examples() {
        let checkout = Checkout::of(&repo);
        for env in envs_of(&repo) {
            // Environment from the branch name, upper-cased as some teams name branches.
            let vars = argo_env(&format!("platform-{env}"), None, &env.to_uppercase());
            let out = generate(checkout.path(), &vars);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                repo.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let objects = argo_parse(&out.stdout).unwrap();
            assert!(!objects.is_empty());
            for o in &objects {
                assert!(o["metadata"]["name"].is_string());
                assert!(o
                    .pointer("/metadata/labels/app.kubernetes.io~1instance")
                    .is_none());
                assert!(
                    o.pointer("/metadata/annotations/controlcenter.dev~1git-revision")
                        .is_none(),
                    "no revision annotation unless asked"
                );
            }
            // Same bytes as `render --format json` of the same env.
            let cli = common::run(&[
                "--repo",
                repo.to_str().unwrap(),
                "render",
                "--env",
                &env,
                "--format",
                "json",
            ]);
            assert_eq!(
                out.stdout,
                cli.stdout,
                "{}/{env}: plugin and render agree",
                repo.display()
            );
        }
    }
}

#[test]
fn plugin_env_entry_wins_over_the_branch_and_subdirectory_source_paths_work() {
    let checkout = Checkout::of(&root().join("controlcenter-examples/article"));
    let sub = checkout.path().join("apps/platform");
    std::fs::create_dir_all(&sub).unwrap();
    let vars = argo_env("platform", Some("prod"), "dev");
    let out = generate(&sub, &vars);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = argo_parse(&out.stdout).unwrap();
    assert!(objects.iter().all(|o| o["metadata"]["namespace"] == "prod"));
    let discover = exec(&sub, &vars, &["cmp", "discover"], Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&discover.stdout)
        .trim_end()
        .ends_with("controlcenter.yaml"));
}

#[test]
fn destination_namespace_is_the_default_namespace() {
    let checkout = Checkout::of(&root().join("controlcenter-examples/article"));
    let mut vars = argo_env("platform-dev", None, "dev");
    vars.insert("ARGOCD_APP_NAMESPACE".to_owned(), "team-a".to_owned());
    let out = generate(checkout.path(), &vars);
    let objects = argo_parse(&out.stdout).unwrap();
    assert!(objects
        .iter()
        .all(|o| o["metadata"]["namespace"] == "team-a"));
}

#[test]
fn revision_annotation_only_when_the_repo_asks() {
    let checkout = Checkout::of(&root().join("controlcenter-examples/article"));
    let cc = checkout.path().join("controlcenter.yaml");
    let text = std::fs::read_to_string(&cc).unwrap();
    std::fs::write(
        &cc,
        format!("settings:\n  revision_annotation: true\n{text}"),
    )
    .unwrap();
    let out = generate(checkout.path(), &argo_env("platform-dev", None, "dev"));
    let objects = argo_parse(&out.stdout).unwrap();
    assert!(objects.iter().all(|o| {
        o.pointer("/metadata/annotations/controlcenter.dev~1git-revision")
            == Some(&serde_json::json!(
                "4f2b8c1d9e0a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"
            ))
    }));
}

#[test]
fn failures_follow_the_contract() {
    let fixtures = root().join("tests/fixtures/errors");
    let cases: &[(&str, Option<&str>, &str, &str)] = &[
        ("missing-tag", None, "dev", "CC0304"),
        ("many-errors", None, "dev", "CC0202"),
        ("empty-render", None, "dev", "CC0504"),
        ("plain-secret", None, "dev", "CC0505"),
        ("typo-field", None, "main", "CC0202"),
    ];
    for (case, env, branch, code) in cases {
        let checkout = Checkout::of(&fixtures.join(case));
        let out = generate(checkout.path(), &argo_env("app", *env, branch));
        assert_failure_contract(&out, code);
    }
    // An unknown environment lists the known ones.
    let checkout = Checkout::of(&root().join("controlcenter-examples/article"));
    let out = generate(checkout.path(), &argo_env("app", None, "main"));
    assert_failure_contract(&out, "known environments: dev, preprod, prod");
    // Not a control-center repository at all.
    let empty = tempfile::tempdir().unwrap();
    let out = generate(empty.path(), &argo_env("app", Some("dev"), "dev"));
    assert_failure_contract(&out, "no controlcenter.yaml");
}

#[test]
fn a_runaway_template_times_out_with_the_failure_contract() {
    let checkout = Checkout::of(&root().join("tests/fixtures/errors/missing-tag"));
    std::fs::write(
        checkout.path().join("controlcenter.yaml"),
        "dev:\n  svc:\n    git_rev: v1\n",
    )
    .unwrap();
    std::fs::create_dir_all(checkout.path().join("jsonnet")).unwrap();
    std::fs::write(
        checkout.path().join("jsonnet/main.jsonnet"),
        "function(state) [std.foldl(function(a, b) a + b, std.range(1, 1000000000), 0)]",
    )
    .unwrap();
    let out = exec(
        checkout.path(),
        &argo_env("app", None, "dev"),
        &["--timeout", "1", "cmp", "generate"],
        Duration::from_secs(10),
    );
    assert_failure_contract(&out, "CC0403");
}

#[test]
fn many_errors_are_cut_to_twenty_lines() {
    let checkout = Checkout::of(&root().join("tests/fixtures/errors/missing-tag"));
    let mut cc = String::from("dev:\n");
    for i in 0..40 {
        cc.push_str(&format!("  svc{i}:\n    git_rev: v1\n    replica: 1\n"));
    }
    std::fs::write(checkout.path().join("controlcenter.yaml"), cc).unwrap();
    let out = generate(checkout.path(), &argo_env("app", None, "dev"));
    assert_failure_contract(&out, "40 problems in all");
}

#[test]
fn sixteen_concurrent_runs_give_identical_bytes() {
    let checkout = Checkout::of(&root().join("controlcenter-examples/platform"));
    let path: PathBuf = checkout.path().to_path_buf();
    let outputs: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let path = path.clone();
                s.spawn(move || {
                    let out = generate(&path, &argo_env("platform-prod", None, "prod"));
                    assert_eq!(out.status.code(), Some(0));
                    out.stdout
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        outputs.iter().all(|o| *o == outputs[0]),
        "16 concurrent runs differ"
    );
    assert!(!outputs[0].is_empty());
}

#[test]
fn deploy_manifests_are_valid_and_follow_argo_cd_rules() {
    let dir = root().join("deploy/argocd");
    let mut sources = controlcenter::diagnostics::Sources::default();
    let mut parsed = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let id = sources.add(name.clone(), text.as_str());
            let node = controlcenter::load::yaml::parse(&text, id)
                .unwrap_or_else(|d| panic!("{name}: {d:?}"));
            parsed.insert(name, node.to_json());
        }
    }
    for required in [
        "plugin.yaml",
        "repo-server-patch.yaml",
        "application.yaml",
        "applicationset.yaml",
        "kustomization.yaml",
    ] {
        assert!(parsed.contains_key(required), "deploy/argocd/{required}");
    }
    let plugin = &parsed["plugin.yaml"];
    assert_eq!(plugin["kind"], "ConfigManagementPlugin");
    assert_eq!(
        plugin["spec"]["generate"]["command"],
        serde_json::json!(["controlcenter", "cmp", "generate"]),
        "no shell"
    );
    let sidecar = &parsed["repo-server-patch.yaml"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        sidecar["command"],
        serde_json::json!(["/var/run/argocd/argocd-cmp-server"])
    );
    assert_eq!(sidecar["securityContext"]["runAsUser"], 999);
    let plugin_name = format!(
        "{}-{}",
        plugin["metadata"]["name"].as_str().unwrap(),
        plugin["spec"]["version"].as_str().unwrap()
    );
    assert_eq!(
        parsed["application.yaml"]["spec"]["source"]["plugin"]["name"],
        plugin_name.as_str()
    );
    assert_eq!(
        parsed["applicationset.yaml"]["spec"]["template"]["spec"]["source"]["plugin"]["name"],
        plugin_name.as_str()
    );
    // Hydrated branches: a plain directory, and Argo CD's Source Hydrator
    // on the branches `controlcenter hydrate` writes.
    let hydrated = &parsed["application-hydrated.yaml"]["spec"]["source"];
    assert_eq!(hydrated["targetRevision"], "environment/prod");
    assert!(hydrated.get("plugin").is_none(), "no sidecar");
    let sh = &parsed["application-source-hydrator.yaml"]["spec"]["sourceHydrator"];
    assert_eq!(sh["drySource"]["plugin"]["name"], plugin_name.as_str());
    assert_eq!(sh["hydrateTo"]["targetBranch"], "environment/prod-next");
    let sync_path = sh["syncSource"]["path"].as_str().unwrap();
    assert!(
        sync_path.len() >= 2 && sync_path != "./",
        "Argo CD refuses the root as syncSource.path"
    );
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("USER 999"), "non-root 999");
    assert!(dockerfile.contains("--locked"));
    for from in dockerfile.lines().filter(|l| l.starts_with("FROM ")) {
        let image = from.split_whitespace().nth(1).unwrap();
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
            "pinned base: {from}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_variable_that_is_not_utf8_does_not_stop_the_plugin() {
    use std::os::unix::ffi::OsStringExt;
    let checkout = Checkout::of(&root().join("controlcenter-examples/article"));
    let vars = argo_env("article-dev", Some("dev"), "main");
    let out = Command::new(env!("CARGO_BIN_EXE_controlcenter"))
        .args(["cmp", "generate"])
        .current_dir(checkout.path())
        .env_clear()
        .envs(&vars)
        .env(
            "SIDECAR_NOTE",
            std::ffi::OsString::from_vec(vec![b'x', 0xff]),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::transcript(&out));
    assert!(argo_parse(&out.stdout).is_ok_and(|o| !o.is_empty()));
}
