//! `controlcenter eval` gives what the reference engines (go-jsonnet 0.22
//! and C++ jsonnet) give, where the pinned jrsonnet did not: each fixture
//! in tests/fixtures/jsonnet/ has the reference output as its `.golden`
//! (written by go-jsonnet; the ignored test checks that it still agrees).
//! Each case fails without a patch in third_party/ (see its README).

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::controlcenter;

fn fixtures() -> PathBuf {
    common::root().join("tests/fixtures/jsonnet")
}

/// The fixtures with a golden output: (name, golden text).
fn goldens() -> Vec<(String, String)> {
    let mut cases: Vec<(String, String)> = std::fs::read_dir(fixtures())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".golden")?.to_owned();
            Some((name, std::fs::read_to_string(e.path()).ok()?))
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "the fixtures are missing");
    cases
}

/// `controlcenter eval NAME.jsonnet` in the fixtures directory.
fn eval(name: &str, extra: &[&str]) -> std::process::Output {
    controlcenter()
        .current_dir(fixtures())
        .args(extra)
        .args(["eval", &format!("{name}.jsonnet")])
        .output()
        .unwrap()
}

#[test]
fn eval_output_equals_the_reference_engines() {
    for (name, golden) in goldens() {
        let out = eval(&name, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            golden,
            "{name}: output differs from the reference"
        );
    }
}

#[test]
fn std_trace_names_the_file_and_line_of_the_call() {
    let out = eval("trace", &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "TRACE: trace.jsonnet:1 hello\nTRACE: trace.jsonnet:1 inner 1.5\n"
    );
}

/// An array element that fails reports its own error wherever it is
/// read again (it read as "infinite recursion detected").
#[test]
fn a_failed_array_element_reports_its_error() {
    let out = eval("failed_element", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("element two is wrong"), "{stderr}");
    assert!(!stderr.contains("infinite recursion"), "{stderr}");
}

/// A doubling recursion past the stack limit is reported as a stack
/// overflow (the timeout took it before: every frame of the failing
/// path copied the whole trace).
#[test]
fn deep_failing_recursion_reports_the_overflow_not_the_timeout() {
    for max_stack in ["15000", "20000"] {
        let out = eval("bench07", &["--max-stack", max_stack]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.starts_with("error[CC0403]: stack overflow"),
            "--max-stack {max_stack}: {stderr}"
        );
    }
}

/// `tailstrict` calls are bounded too, far above the plain limit.
#[test]
fn endless_tailstrict_recursion_is_a_stack_overflow() {
    let out = eval("tailstrict_endless", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error[CC0403]: stack overflow"),
        "{stderr}"
    );
}

/// `import` of a file that is not UTF-8 points at its first bad byte
/// (`importbin` of it is fine: see the `importbin_binary` fixture).
#[test]
fn import_of_a_binary_file_points_at_the_bad_byte() {
    let out = eval("import_binary", &["--error-format", "short"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "binary.bin:1:1: error[CC0102]: binary.bin is not valid UTF-8 (byte 0)\n  note: at import_binary.jsonnet:1:6: import"
        ),
        "{stderr}"
    );
}

const GO_EVAL: &str = r#"
import sys, _gojsonnet
name = sys.argv[1]
sys.stdout.write(_gojsonnet.evaluate_file(name + ".jsonnet"))
"#;

#[test]
#[ignore = "needs go-jsonnet (tests/requirements.txt; .ci/run installs it)"]
fn the_goldens_are_what_go_jsonnet_gives() {
    for (name, golden) in goldens()
        .into_iter()
        .chain([("trace".to_owned(), String::new())])
    {
        let out = Command::new("python3")
            .current_dir(fixtures())
            .args(["-c", GO_EVAL, &name])
            .stdin(Stdio::null())
            .output()
            .expect("python3");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: go-jsonnet failed: {stderr}");
        if name == "trace" {
            // The same lines, from go-jsonnet itself.
            assert_eq!(stderr, String::from_utf8_lossy(&eval("trace", &[]).stderr));
        } else {
            assert_eq!(String::from_utf8_lossy(&out.stdout), golden, "{name}");
        }
    }
}
