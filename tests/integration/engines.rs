//! The library is engine-neutral and the output survives YAML 1.1 readers.
//!
//! - go-jsonnet (PyPI `gojsonnet`) evaluating the same entry point on the
//!   output of `controlcenter state` must produce exactly the manifests of
//!   `render --format json`, after the same sort.
//! - Parsing `render` output with PyYAML (a YAML 1.1 reader, like Argo CD's)
//!   must give back the strings `yes`, `no`, `on`, `0755`, `1e3`, `1.10`,
//!   `null`, `~` … as strings.
//!
//! Both need Python packages that `.ci/run` installs: they are `#[ignore]`d,
//! run with `cargo test -- --include-ignored`, and fail when a package is
//! missing.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{envs_of, examples, run, transcript};

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails the test when a Python module it drives is missing: tests that
/// need one are `#[ignore]`d, run by `cargo test -- --include-ignored`
/// (what .ci/run does), never silently passed.
fn require(module: &str) {
    assert!(
        python_has(module),
        "python3 module {module} is not installed: pip install -r tests/requirements.txt"
    );
}

fn python(script: &str, stdin: &str) -> (bool, String, String) {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Evaluates the entry point with go-jsonnet; the state JSON comes on stdin.
const GO_JSONNET: &str = r#"
import json, sys, _gojsonnet
repo, lib = sys.argv[1], sys.argv[2]
import os
entry = os.path.join(repo, "jsonnet", "main.jsonnet")
if not os.path.exists(entry):
    entry = os.path.join(lib, "main.jsonnet")
# go-jsonnet searches the last directory first: this is controlcenter's
# order (jsonnet/, lib/, vendor/, the repository, the library).
jpath = [lib, repo] + [os.path.join(repo, d) for d in ("vendor", "lib", "jsonnet")]
out = _gojsonnet.evaluate_file(entry, jpathdir=jpath,
                               tla_codes={"state": sys.stdin.read()})
print(out)
"#;

fn go_jsonnet(repo: &Path, state: &str) -> String {
    let lib = common::root().join("lib-jsonnet");
    let mut child = Command::new("python3")
        .args([
            "-c",
            GO_JSONNET,
            repo.to_str().unwrap(),
            lib.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(state.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "go-jsonnet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Flattens arrays and `*List` kinds like `render`, then sorts by identity.
fn objects(v: serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Array(items) => items.into_iter().for_each(|i| objects(i, out)),
        serde_json::Value::Object(ref m)
            if m.contains_key("apiVersion") && m.contains_key("kind") =>
        {
            let is_list = m["kind"].as_str().is_some_and(|k| k.ends_with("List"))
                && m.get("items").is_some_and(|i| i.is_array());
            if is_list {
                objects(m["items"].clone(), out);
            } else {
                out.push(v);
            }
        }
        serde_json::Value::Object(m) => m.into_iter().for_each(|(_, v)| objects(v, out)),
        _ => {}
    }
}

fn sorted(mut objs: Vec<serde_json::Value>) -> Vec<String> {
    let mut lines: Vec<String> = objs
        .drain(..)
        .map(|o| serde_json::to_string(&o).unwrap())
        .collect();
    lines.sort();
    lines
}

#[test]
#[ignore = "needs go-jsonnet (tests/requirements.txt; .ci/run installs it)"]
fn go_jsonnet_renders_the_same_manifests_from_the_state() {
    require("_gojsonnet");
    let mut compared = 0;
    for repo in examples() {
        for env in envs_of(&repo) {
            let r = repo.to_str().unwrap();
            let state = run(&["--repo", r, "state", "--env", &env]);
            assert_eq!(state.status.code(), Some(0), "{}", transcript(&state));
            let rendered = run(&["--repo", r, "render", "--env", &env, "--format", "json"]);
            assert_eq!(rendered.status.code(), Some(0), "{}", transcript(&rendered));
            let ours: Vec<String> = String::from_utf8(rendered.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            let mut theirs = Vec::new();
            objects(
                serde_json::from_str(&go_jsonnet(
                    &repo,
                    &String::from_utf8(state.stdout).unwrap(),
                ))
                .unwrap(),
                &mut theirs,
            );
            let (mut ours_sorted, theirs_sorted) = (ours.clone(), sorted(theirs));
            ours_sorted.sort();
            assert_eq!(
                ours_sorted.len(),
                theirs_sorted.len(),
                "{r}/{env}: object count"
            );
            for (a, b) in ours_sorted.iter().zip(&theirs_sorted) {
                assert_eq!(a, b, "{r}/{env}: jrsonnet and go-jsonnet differ");
            }
            compared += ours.len();
        }
    }
    assert!(compared > 50, "compared {compared} objects");
}

const YAML_11_STRINGS: &[&str] = &[
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "True",
    "NO",
    "0755",
    "1e3",
    "1.10",
    "null",
    "~",
    "",
    "0x1F",
    "1_000",
    "1:20",
    "2001-12-14",
    ".inf",
    "-.5",
    "+1",
    "=",
    "<<",
    "- x",
    "#x",
    "a: b",
    " lead",
    "trail ",
    "multi\nline\n",
];

#[test]
#[ignore = "needs PyYAML (tests/requirements.txt; .ci/run installs it)"]
fn yaml_1_1_readers_get_the_strings_back() {
    require("yaml");
    let repo = tempfile::tempdir().unwrap();
    let mut env_block = String::new();
    for (i, s) in YAML_11_STRINGS.iter().enumerate() {
        env_block.push_str(&format!(
            "      V{i:02}: {}\n",
            serde_json::to_string(s).unwrap()
        ));
    }
    std::fs::write(
        repo.path().join("controlcenter.yaml"),
        format!("dev:\n  svc:\n    git_rev: v1\n    memory_min: 64Mi\n    memory_max: 64Mi\n    env:\n{env_block}"),
    )
    .unwrap();
    std::fs::write(
        repo.path().join("tags.yaml"),
        "svc:\n  v1: registry.example.com/svc:1\n",
    )
    .unwrap();
    std::fs::write(repo.path().join("env-dev.yaml"), "{}\n").unwrap();
    let out = run(&[
        "--repo",
        repo.path().to_str().unwrap(),
        "render",
        "--env",
        "dev",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let script = r#"
import sys, json, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
cm = [d for d in docs if d["kind"] == "ConfigMap"][0]
print(json.dumps({k: v for k, v in cm["data"].items() if k.startswith("V")}))
"#;
    let (ok, stdout, stderr) = python(script, &String::from_utf8(out.stdout).unwrap());
    assert!(ok, "{stderr}");
    let data: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for (i, s) in YAML_11_STRINGS.iter().enumerate() {
        assert_eq!(
            data[format!("V{i:02}")],
            serde_json::json!(s),
            "V{i:02} = {s:?} after a YAML 1.1 round trip"
        );
    }
}
