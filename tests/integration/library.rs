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

/// Evaluates `code` with the library on the import path; its value.
fn eval_with_library(code: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("case.jsonnet");
    std::fs::write(&file, code).unwrap();
    let out = run(&[
        "--repo",
        root().join("lib-jsonnet").to_str().unwrap(),
        "eval",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn upper_snake_cuts_names_as_the_conversion_character_by_character_does() {
    // Every word of up to three characters over an alphabet of the cases
    // that matter (letters of both cases, digits, '_', '-', '.', a space,
    // '/', a non-ASCII letter), plus real flag names.
    let value = eval_with_library(
        r#"
local util = import 'controlcenter/util.libsonnet';
local slow(s) =
  local cs = std.stringChars(s);
  local isUpper(c) = c >= 'A' && c <= 'Z';
  local isLowerOrDigit(c) = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  std.join('', [
    (if i > 0 && isUpper(cs[i]) && isLowerOrDigit(cs[i - 1]) then '_' else '')
    + (if util.isAlnum(cs[i]) then std.asciiUpper(cs[i]) else '_')
    for i in std.range(0, std.length(cs) - 1)
  ]);
local alphabet = ['a', 'b', 'Z', 'A', '0', '9', '_', '-', '.', ' ', '/', 'é', 'M', 'z'];
local words = [''] + alphabet + [a + b for a in alphabet for b in alphabet]
  + [a + b + c for a in alphabet for b in ['A', '1', '-', 'z'] for c in alphabet]
  + ['darkMode', 'HTTPServer', 'getHTTPResponse', 'new_checkout', 'dark-mode.v2', 'v2Beta', 'aB-Cd.eF_gH'];
{
  checked: std.length(words),
  mismatches: [w for w in words if util.upperSnake(w) != slow(w)],
  examples: [util.upperSnake(w) for w in ['darkMode', 'HTTPServer', 'dark-mode.v2', 'v2Beta']],
}
"#,
    );
    assert_eq!(value["mismatches"], serde_json::json!([]));
    assert!(value["checked"].as_u64().unwrap() > 1000);
    assert_eq!(
        value["examples"],
        serde_json::json!(["DARK_MODE", "HTTPSERVER", "DARK_MODE_V2", "V2_BETA"])
    );
}

#[test]
fn a_service_builds_its_config_map_once_and_a_patched_one_its_own() {
    let state =
        std::fs::read_to_string(root().join("lib-jsonnet/tests/minimal.state.json")).unwrap();
    let value = eval_with_library(&format!(
        "local state = {state};\n{}",
        r#"
local cc = import 'controlcenter/lib.libsonnet';
local lib = cc.new(state);
local svc = lib.services[0];
local patched = svc + { env+: { EXTRA: 'yes' } };
local bare = state.services[std.objectFields(state.services)[0]];
local checksum(d) = d.spec.template.metadata.annotations['checksum/config'];
local md5Of(cm) = std.md5(std.manifestJsonMinified(cm.data));
{
  shared: lib.configMapOf(svc) == lib.configMap(svc),
  own: checksum(lib.deployment(svc)) == md5Of(lib.configMap(svc)),
  patched: checksum(lib.deployment(patched)) == md5Of(lib.configMap(patched)),
  patchedDiffers: checksum(lib.deployment(patched)) != checksum(lib.deployment(svc)),
  patchedHasExtra: lib.configMapOf(patched).data.EXTRA,
  bare: checksum(lib.deployment(bare)) == checksum(lib.deployment(svc)),
}
"#
    ));
    assert_eq!(
        value,
        serde_json::json!({
            "shared": true, "own": true, "patched": true, "patchedDiffers": true,
            "patchedHasExtra": "yes", "bare": true
        })
    );
}
