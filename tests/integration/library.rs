//! The library's own cases: each lib-jsonnet/tests/<case>.state.json,
//! evaluated through `controlcenter eval` with lib-jsonnet/main.jsonnet,
//! must give lib-jsonnet/tests/<case>.expected.json (written by go-jsonnet,
//! so this also pins the two engines together).
//!
//! After an intended change: `CC_BLESS=1 cargo test --test integration library`.

use crate::common;

use common::{root, run, transcript};

#[test]
fn library_cases_match_their_expected_output() {
    let dir = root().join("lib-jsonnet/tests");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".state.json").map(str::to_owned)
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 4, "found {cases:?}");
    let main = root().join("lib-jsonnet/main.jsonnet");
    for case in cases {
        let state = dir.join(format!("{case}.state.json"));
        let out = run(&[
            "--repo",
            root().join("lib-jsonnet").to_str().unwrap(),
            "eval",
            "--tla-code-file",
            &format!("state={}", state.display()),
            main.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{case}: {}", transcript(&out));
        let expected_path = dir.join(format!("{case}.expected.json"));
        if std::env::var_os("CC_BLESS").is_some() {
            std::fs::write(&expected_path, &out.stdout).unwrap();
        }
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
        assert!(
            got == expected,
            "{case}: output differs from {}",
            expected_path.display()
        );
    }
}
