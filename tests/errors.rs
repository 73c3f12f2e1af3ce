//! Every error users see, end to end: each fixture under
//! tests/fixtures/errors/ is a small repository with one problem (its
//! README.md says which). Rendering it must exit 1, name file:line:column,
//! write nothing to --out-dir, and print exactly the snapshotted diagnostic.

mod common;

use std::path::Path;

use common::{run, transcript};

/// The environment each fixture renders (most use dev).
fn env_for(case: &str) -> &'static str {
    match case {
        "latest-in-prod" | "untagged-image-in-prod" => "prod",
        "unknown-env" => "staging",
        _ => "dev",
    }
}

#[test]
fn every_error_fixture_fails_cleanly_with_a_located_diagnostic() {
    let fixtures = common::root().join("tests/fixtures/errors");
    let mut cases: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 25,
        "expected the whole corpus, found {}",
        cases.len()
    );
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            case.join("README.md").is_file(),
            "{name}: every fixture says what it tests"
        );
        let out_parent = tempfile::tempdir().unwrap();
        let out_dir = out_parent.path().join("out");
        let started = std::time::Instant::now();
        let out = run(&[
            "--repo",
            case.to_str().unwrap(),
            "render",
            "--env",
            env_for(&name),
            "--out-dir",
            out_dir.to_str().unwrap(),
        ]);
        let elapsed = started.elapsed();
        let text = transcript(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: exit code\n{text}");
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout\n{text}");
        assert!(!out_dir.exists(), "{name}: --out-dir must not be written");
        assert_eq!(
            std::fs::read_dir(out_parent.path()).unwrap().count(),
            0,
            "{name}: no temporary files left behind"
        );
        assert!(elapsed.as_secs() < 5, "{name}: took {elapsed:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name}: panic\n{text}");
        assert!(
            has_location(&stderr) || located_elsewhere(&name),
            "{name}: the diagnostic names file:line:col\n{text}"
        );
        insta::assert_snapshot!(name.clone(), scrub(&stderr, &case));
    }
}

/// A problem with no place in any file (the file itself is missing): the
/// message names the file instead.
fn located_elsewhere(case: &str) -> bool {
    case == "file-missing"
}

fn has_location(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("--> ")
            && l.rsplit(':')
                .take(2)
                .all(|n| n.trim().parse::<u32>().is_ok())
    })
}

fn scrub(text: &str, case: &Path) -> String {
    text.replace(case.to_str().unwrap(), "[CASE]")
}

#[test]
fn the_plaintext_secret_is_never_echoed() {
    let case = common::root().join("tests/fixtures/errors/plaintext-secret");
    for format in ["human", "json", "github"] {
        let out = run(&[
            "--repo",
            case.to_str().unwrap(),
            "--error-format",
            format,
            "validate",
        ]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(all.contains("CC0309"), "{all}");
        assert!(!all.contains("hunter2"), "{format} leaks the value:\n{all}");
    }
}

#[test]
fn json_diagnostics_carry_the_same_locations_as_the_human_form() {
    let case = common::root().join("tests/fixtures/errors/many-errors");
    let (out, lines) = common::validate_json(&case);
    assert_eq!(out.status.code(), Some(1));
    let found: Vec<(String, u64, u64)> = lines
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_owned(),
                d["location"]["line"].as_u64().unwrap(),
                d["location"]["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("CC0202".to_owned(), 4, 5),
            ("CC0201".to_owned(), 5, 11),
            ("CC0201".to_owned(), 9, 17)
        ]
    );
    let human = run(&["--repo", case.to_str().unwrap(), "validate"]);
    let stderr = String::from_utf8_lossy(&human.stderr);
    for (_, line, col) in &found {
        assert!(
            stderr.contains(&format!("controlcenter.yaml:{line}:{col}")),
            "{stderr}"
        );
    }
}

#[test]
fn a_50_mb_input_is_refused_quickly_without_reading_it_whole() {
    let repo = tempfile::tempdir().unwrap();
    let mut text = String::from("dev:\n  svc:\n    git_rev: v1\n    env:\n");
    let line = format!("      K: \"{}\"\n", "x".repeat(1000));
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(&line);
    }
    std::fs::write(repo.path().join("controlcenter.yaml"), text).unwrap();
    let started = std::time::Instant::now();
    let out = run(&[
        "--repo",
        repo.path().to_str().unwrap(),
        "render",
        "--env",
        "dev",
    ]);
    assert!(started.elapsed().as_secs() < 5);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CC0102") && stderr.contains("limit"),
        "{stderr}"
    );
}

/// Values of outputs marked `sensitive: true` in an env file.
fn sensitive_values(env_file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(env_file).unwrap();
    let mut sources = controlcenter::diagnostics::Sources::default();
    let id = sources.add("env.yaml", text.as_str());
    let root = controlcenter::load::yaml::parse(&text, id).unwrap();
    let mut out = Vec::new();
    for e in root.as_map().unwrap_or_default() {
        if e.value
            .get("sensitive")
            .is_some_and(|s| s.to_json() == serde_json::json!(true))
        {
            let v = e.value.get("value").unwrap().to_json();
            out.push(v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        }
    }
    out
}

#[test]
fn planted_secrets_never_appear_in_any_output() {
    let root = common::root();
    let cases = [
        (
            root.join("tests/fixtures/errors/sensitive-in-error"),
            "dev",
            "env-dev.yaml",
        ),
        (
            root.join("controlcenter-examples/platform"),
            "prod",
            "env-prod.yaml",
        ),
        (
            root.join("controlcenter-examples/article"),
            "prod",
            "env-prod.yaml",
        ),
    ];
    for (repo, env, env_file) in cases {
        let secrets = sensitive_values(&repo.join(env_file));
        assert!(
            !secrets.is_empty(),
            "{}: the case plants a secret",
            repo.display()
        );
        let r = repo.to_str().unwrap();
        let mut runs = vec![
            vec!["--repo", r, "render", "--env", env],
            vec!["--repo", r, "render", "--env", env, "--format", "json"],
            vec!["--repo", r, "state", "--env", env],
        ];
        for format in ["human", "json", "github"] {
            runs.push(vec!["--repo", r, "--error-format", format, "validate"]);
        }
        for args in runs {
            let out = run(&args);
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            for s in &secrets {
                assert!(
                    !all.contains(s.as_str()),
                    "{args:?} printed a sensitive value"
                );
            }
        }
    }
}
