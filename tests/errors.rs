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
        "latest-in-prod" => "prod",
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

/// Problems that have no single place in a file (the file itself is missing,
/// or the environment does not exist): the message names the file instead.
fn located_elsewhere(case: &str) -> bool {
    matches!(case, "unknown-env" | "missing-env-file")
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
    let out = run(&[
        "--repo",
        case.to_str().unwrap(),
        "--error-format",
        "json",
        "validate",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
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
