//! Regression tests for #10, one per class of hostile input: nothing
//! written outside --out-dir, nothing silently dropped, every run bounded,
//! every Jsonnet error located, Git revisions read like the work tree.
//! (Secrets have their own canary test in tests/integration/errors.rs, and the fuzz
//! harness in tests/integration/fuzz.rs runs the classes open-endedly.)

use crate::common;

use std::path::Path;

use common::{controlcenter, run, transcript};

/// A copy of the article example (plus `extra` files) in a temp dir.
fn article(extra: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(
        &common::root().join("controlcenter-examples/article"),
        dir.path(),
    );
    for (path, bytes) in extra {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    dir
}

fn repo_args<'a>(dir: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--repo", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    all
}

/// Files and directories directly in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The first diagnostic of a JSON-format run.
fn first_json_diagnostic(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{}", transcript(out)));
    serde_json::from_str(line).unwrap()
}

#[test]
fn nothing_is_written_outside_the_out_dir() {
    let escaping_name = b"local cc = import 'controlcenter/lib.libsonnet';\nfunction(state) cc.new(state).manifests + [{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: '../../../x', namespace: state.namespace}}]\n";
    let escaping_kind = b"local cc = import 'controlcenter/lib.libsonnet';\nfunction(state) cc.new(state).manifests + [{apiVersion: 'v1', kind: '../../K', metadata: {name: 'x', namespace: state.namespace}}]\n";
    let escaping_ns = b"local cc = import 'controlcenter/lib.libsonnet';\nfunction(state) cc.new(state).manifests + [{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'x', namespace: '../..'}}]\n";
    let cases: Vec<(&str, Vec<(&str, &[u8])>, Vec<&str>, Vec<(&str, &str)>)> = vec![
        (
            "--namespace ../escape",
            vec![],
            vec!["--namespace", "../escape"],
            vec![],
        ),
        (
            "--namespace /abs",
            vec![],
            vec!["--namespace", "/tmp/cc-abs"],
            vec![],
        ),
        (
            "--namespace a/b",
            vec![],
            vec!["--namespace", "a/b"],
            vec![],
        ),
        (
            "template name",
            vec![("jsonnet/main.jsonnet", escaping_name.as_slice())],
            vec![],
            vec![],
        ),
        (
            "template kind",
            vec![("jsonnet/main.jsonnet", escaping_kind.as_slice())],
            vec![],
            vec![],
        ),
        (
            "template namespace",
            vec![("jsonnet/main.jsonnet", escaping_ns.as_slice())],
            vec![],
            vec![],
        ),
    ];
    for (name, files, extra_args, _) in cases {
        let repo = article(&files);
        let parent = tempfile::tempdir().unwrap();
        let out_dir = parent.path().join("a/b/out");
        let mut args = vec![
            "render",
            "--env",
            "dev",
            "--out-dir",
            out_dir.to_str().unwrap(),
        ];
        args.extend(extra_args);
        let out = run(&repo_args(repo.path(), &args));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", transcript(&out));
        assert!(!out_dir.exists(), "{name}: nothing is written");
        assert_eq!(entries(parent.path()), Vec::<String>::new(), "{name}");
        assert!(!Path::new("/tmp/cc-abs").exists(), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("CC0306") || stderr.contains("CC0506"),
            "{name}: {stderr}"
        );
        // Whatever the output mode.
        let mut args = vec!["render", "--env", "dev"];
        if name.starts_with("--namespace") {
            args.extend(["--namespace", &name[12..]]);
        }
        assert_eq!(
            run(&repo_args(repo.path(), &args)).status.code(),
            Some(1),
            "{name}"
        );
    }
    // The plugin: Argo CD's namespace is validated as one.
    let repo = article(&[]);
    let out = controlcenter()
        .args(["cmp", "generate"])
        .current_dir(repo.path())
        .env("ARGOCD_ENV_CC_ENV", "dev")
        .env("ARGOCD_APP_NAMESPACE", "../escape")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CC0306"));
}

#[test]
fn a_nul_byte_is_an_error_at_its_place_not_a_lost_service() {
    let mut cc =
        std::fs::read(common::root().join("controlcenter-examples/article/controlcenter.yaml"))
            .unwrap();
    let at = cc.windows(6).position(|w| w == b"\nprod:").unwrap() + 1;
    cc.insert(at, 0);
    let repo = article(&[("controlcenter.yaml", &cc)]);
    let out = run(&repo_args(
        repo.path(),
        &["--error-format", "json", "render", "--env", "dev"],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let d = first_json_diagnostic(&out);
    assert_eq!(d["code"], "CC0103");
    assert_eq!(d["location"]["file"], "controlcenter.yaml");
    let line = cc[..at].iter().filter(|b| **b == b'\n').count() + 1;
    assert_eq!(d["location"]["line"], line);
    assert_eq!(d["location"]["column"], 1);
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let root = common::root().join("controlcenter-examples/article");
    let mut files = Vec::new();
    for f in ["controlcenter.yaml", "tags.yaml", "env-dev.yaml"] {
        let mut bytes = "\u{feff}".as_bytes().to_vec();
        bytes.extend(std::fs::read(root.join(f)).unwrap());
        files.push((f, bytes));
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(f, b)| (*f, b.as_slice())).collect();
    let repo = article(&refs);
    let with_bom = run(&repo_args(repo.path(), &["render", "--env", "dev"]));
    let without = run(&["--repo", root.to_str().unwrap(), "render", "--env", "dev"]);
    assert_eq!(with_bom.status.code(), Some(0), "{}", transcript(&with_bom));
    assert_eq!(with_bom.stdout, without.stdout);
}

#[test]
fn an_unreadable_repo_entry_point_is_an_error_not_the_library() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("main.jsonnet"), "function(state) []").unwrap();
    let big = vec![b' '; 33 * 1024 * 1024];
    let cases: Vec<(&str, Vec<(&str, &[u8])>)> = vec![
        (
            "not UTF-8",
            vec![(
                "jsonnet/main.jsonnet",
                b"function(state) [\xff]\n".as_slice(),
            )],
        ),
        ("too large", vec![("jsonnet/main.jsonnet", big.as_slice())]),
        ("a symlink out", vec![]),
        (
            "a directory",
            vec![("jsonnet/main.jsonnet/x", b"".as_slice())],
        ),
    ];
    for (name, files) in cases {
        let repo = article(&files);
        if name == "a symlink out" {
            std::fs::create_dir_all(repo.path().join("jsonnet")).unwrap();
            std::os::unix::fs::symlink(
                outside.path().join("main.jsonnet"),
                repo.path().join("jsonnet/main.jsonnet"),
            )
            .unwrap();
        }
        let out = run(&repo_args(
            repo.path(),
            &["--error-format", "json", "render", "--env", "dev"],
        ));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", transcript(&out));
        assert!(out.stdout.is_empty(), "{name}");
        let d = first_json_diagnostic(&out);
        assert_eq!(d["location"]["file"], "jsonnet/main.jsonnet", "{name}: {d}");
        assert!(d["code"] == "CC0102", "{name}: {d}");
        if name == "not UTF-8" {
            assert_eq!(
                (
                    d["location"]["line"].as_u64(),
                    d["location"]["column"].as_u64()
                ),
                (Some(1), Some(18))
            );
        }
    }
}

#[test]
fn time_limits_are_usage_errors_unless_finite_and_positive() {
    for bad in ["nan", "inf", "-1", "0", "1e9", "x"] {
        let arg = format!("--timeout={bad}");
        let out = run(&[&arg, "validate", "--repo", "."]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--timeout {bad}: {}",
            transcript(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--timeout"),
            "{bad}"
        );
    }
}

#[test]
fn one_deadline_covers_every_environment() {
    // Every environment loops forever: validate must report each as out
    // of time and end, not run three timeouts back to back (or pile up).
    let repo = article(&[(
        "jsonnet/main.jsonnet",
        b"function(state) std.foldl(function(a, b) a + b, std.range(1, 1000000000), 0)\n",
    )]);
    let out = run(&repo_args(
        repo.path(),
        &["--timeout", "1", "--error-format", "json", "validate"],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    // The same located diagnostic for each environment, printed once.
    let diagnostics: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(diagnostics.len(), 1, "{}", transcript(&out));
    assert_eq!(diagnostics[0]["code"], "CC0403");
    assert_eq!(diagnostics[0]["location"]["file"], "jsonnet/main.jsonnet");
    let failed = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("failed"))
        .count();
    assert_eq!(failed, 3, "{}", transcript(&out));
}

#[test]
fn eval_reads_at_most_the_input_limit_from_a_code_file() {
    let out = run(&[
        "eval",
        "--tla-code-file",
        "x=/dev/zero",
        "lib-jsonnet/main.jsonnet",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limit"));
}

#[test]
fn deep_source_nesting_is_a_located_error_not_an_abort() {
    for (name, text) in [
        ("brackets", "[".repeat(6_000_000)),
        (
            "prefix operators",
            format!("function(state) {}1", "-".repeat(6_000_000)),
        ),
    ] {
        let repo = article(&[("jsonnet/main.jsonnet", text.as_bytes())]);
        let out = run(&repo_args(
            repo.path(),
            &["--error-format", "json", "render", "--env", "dev"],
        ));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", transcript(&out));
        let d = first_json_diagnostic(&out);
        assert_eq!(d["code"], "CC0403", "{name}: {d}");
        assert_eq!(d["location"]["file"], "jsonnet/main.jsonnet", "{name}");
        assert!(d["message"].as_str().unwrap().contains(name), "{d}");
    }
}

/// Runs `controlcenter args`, watching its peak resident memory (KiB).
fn run_measured(args: &[&str]) -> (std::process::Output, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = controlcenter()
        .args(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let hwm = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .unwrap_or(0);
        peak = peak.max(hwm);
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let output = std::process::Output {
        status,
        stdout: std::fs::read(out_path).unwrap(),
        stderr: std::fs::read(err_path).unwrap(),
    };
    (output, peak)
}

#[test]
fn memory_bombs_stop_with_an_error_well_under_a_gibibyte() {
    let mut anchors = String::new();
    for i in 0..30 {
        anchors.push_str(&format!("{}k{i}: &a{i}\n", "  ".repeat(i)));
    }
    anchors.push_str(&format!(
        "{}leaf: [{}]\n",
        "  ".repeat(30),
        vec!["x"; 150_000].join(", ")
    ));
    let list = |n| vec!["0"; n].join(",");
    let article_cc = std::fs::read_to_string(
        crate::common::root().join("controlcenter-examples/article/controlcenter.yaml"),
    )
    .unwrap();
    let dense = article_cc
        .replace(
            "dev:\n  elk_endpoint",
            &format!(
                "dev:\n  params:\n    big: [{}]\n  elk_endpoint",
                list(2_100_000)
            ),
        )
        .replace(
            "\nprod:\n  elk_endpoint",
            &format!(
                "\nprod:\n  params:\n    big: [{}]\n  elk_endpoint",
                list(2_000_000)
            ),
        );
    assert!(dense.len() > 8_000_000);
    let cases: Vec<(&str, Vec<(&str, &[u8])>, &[&str])> = vec![
        (
            "a million objects",
            vec![(
                "jsonnet/main.jsonnet",
                b"function(state) [{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'c' + i, namespace: 'dev'}} for i in std.range(1, 1000000)]\n".as_slice(),
            )],
            &["CC0403", "CC0901"],
        ),
        (
            "a string bomb",
            vec![("jsonnet/main.jsonnet", b"function(state) [std.repeat('x', 1e9)]\n".as_slice())],
            &["CC0403", "CC0901"],
        ),
        ("nested anchors", vec![("tags.yaml", anchors.as_bytes())], &["CC0105"]),
        // The densest text past the value limit: the limit, located, not
        // the memory guard (each parser's tree goes before the next).
        (
            "values past the limit",
            vec![("controlcenter.yaml", dense.as_bytes())],
            &["CC0105"],
        ),
    ];
    for (name, files, codes) in cases {
        let repo = article(&files);
        let (out, peak_kib) = run_measured(&repo_args(
            repo.path(),
            &["--error-format", "json", "render", "--env", "dev"],
        ));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", transcript(&out));
        let d = first_json_diagnostic(&out);
        assert!(codes.iter().any(|c| d["code"] == *c), "{name}: {d}");
        assert!(out.stdout.is_empty(), "{name}");
        assert!(
            peak_kib < 800 * 1024,
            "{name}: peak resident memory {} MiB",
            peak_kib / 1024
        );
    }
}

#[test]
fn std_trace_output_is_capped_and_the_plugin_keeps_20_lines() {
    let repo = article(&[(
        "jsonnet/main.jsonnet",
        b"local cc = import 'controlcenter/lib.libsonnet';\nfunction(state) std.foldl(function(acc, i) std.trace('line ' + i, acc), std.range(1, 100000), cc.new(state).manifests)\n",
    )]);
    // Cached units are not evaluated again, so they trace nothing.
    let out = controlcenter()
        .args(["cmp", "generate"])
        .current_dir(repo.path())
        .env("ARGOCD_ENV_CC_ENV", "dev")
        .env("CONTROLCENTER_NO_CACHE", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().count() <= 20, "{stderr}");
    assert!(stderr.contains("suppressed"), "{stderr}");
    let out = run(&repo_args(repo.path(), &["render", "--env", "dev"]));
    let lines = String::from_utf8_lossy(&out.stderr).lines().count();
    assert!(lines <= 101, "render printed {lines} trace lines");
}

#[test]
fn escape_sequences_in_traces_and_errors_reach_no_terminal() {
    // A template (or a value it prints) writing terminal escapes and line
    // breaks: shown escaped, in traces and in messages.
    let repo = article(&[(
        "jsonnet/main.jsonnet",
        b"local cc = import 'controlcenter/lib.libsonnet';\nfunction(state) std.trace('\\u001b[2J\\u001b]0;owned\\u0007', error 'bad\\u001b[31m\\nfake: line')\n",
    )]);
    for format in ["human", "short", "github"] {
        let out = run(&repo_args(
            repo.path(),
            &[
                "--error-format",
                format,
                "render",
                "--env",
                "dev",
                "--no-cache",
            ],
        ));
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        assert!(
            !all.contains(&0x1b) && !all.contains(&0x07),
            "{format}: {}",
            transcript(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("\\u{1b}[2J"), "{format}: {stderr}");
        assert!(
            !stderr.lines().any(|l| l.starts_with("fake: line")),
            "{format}: {stderr}"
        );
    }
}

#[test]
fn an_error_on_a_huge_line_prints_a_bounded_message() {
    let long = format!("function(state) error '{}'\n", "a".repeat(7_000_000));
    let repo = article(&[("jsonnet/main.jsonnet", long.as_bytes())]);
    for format in ["human", "json", "github", "short"] {
        let out = run(&repo_args(
            repo.path(),
            &["--error-format", format, "render", "--env", "dev"],
        ));
        assert_eq!(out.status.code(), Some(1));
        assert!(
            out.stderr.len() < 4096,
            "{format}: {} bytes",
            out.stderr.len()
        );
    }
}

#[test]
fn jsonnet_errors_are_located() {
    let cases: [(&str, &[u8], &str, u64); 4] = [
        (
            "missing import used in a lazy field",
            b"local cc = import 'controlcenter/lib.libsonnet';\nlocal k = import 'github.com/acme/kube/lib/main.libsonnet';\nfunction(state) (cc.new(state) + { extraManifests:: [k.quota(1)] }).manifests\n",
            "github.com/acme/kube/lib/main.libsonnet",
            2,
        ),
        (
            "missing import used directly",
            b"local k = import 'github.com/acme/kube/lib/main.libsonnet';\nfunction(state) k.all\n",
            "github.com/acme/kube/lib/main.libsonnet",
            1,
        ),
        ("missing field at the top", b"function(state)\n  {a: 1}.render\n", "render", 2),
        ("non-UTF-8", b"function(state)\n  ['\xff']\n", "UTF-8", 2),
    ];
    for (name, text, says, line) in cases {
        let repo = article(&[("jsonnet/main.jsonnet", text)]);
        let out = run(&repo_args(
            repo.path(),
            &["--error-format", "json", "render", "--env", "dev"],
        ));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", transcript(&out));
        let d = first_json_diagnostic(&out);
        assert_eq!(d["location"]["file"], "jsonnet/main.jsonnet", "{name}: {d}");
        assert_eq!(d["location"]["line"], line, "{name}: {d}");
        assert!(d["message"].as_str().unwrap().contains(says), "{name}: {d}");
        assert!(
            !d["message"]
                .as_str()
                .unwrap()
                .contains("infinite recursion"),
            "{name}: {d}"
        );
        if name.starts_with("missing import") {
            assert!(
                d["notes"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("searched: jsonnet/github.com/"),
                "{name}: {d}"
            );
        }
    }
}

#[test]
fn git_revisions_follow_directory_symlinks_like_the_work_tree() {
    let repo = common::root().join("controlcenter-examples/platform");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path();
    let status = std::process::Command::new("cp")
        .args([
            "-r",
            &format!("{}/.", repo.display()),
            copy.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    // jsonnet-bundler style: vendor/ holds a link to a directory, and the
    // entry point imports through it.
    std::fs::create_dir_all(copy.join("lib/netpol")).unwrap();
    std::fs::rename(
        copy.join("jsonnet/networkpolicy.libsonnet"),
        copy.join("lib/netpol/networkpolicy.libsonnet"),
    )
    .unwrap();
    std::fs::create_dir_all(copy.join("vendor")).unwrap();
    std::os::unix::fs::symlink("../lib/netpol", copy.join("vendor/netpol")).unwrap();
    let main = std::fs::read_to_string(copy.join("jsonnet/main.jsonnet")).unwrap();
    std::fs::write(
        copy.join("jsonnet/main.jsonnet"),
        main.replace(
            "import 'networkpolicy.libsonnet'",
            "import '../vendor/netpol/networkpolicy.libsonnet'",
        ),
    )
    .unwrap();
    let git = |args: &[&str]| common::git(copy, args);
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "vendored"]);
    let work_tree = run(&["--repo", copy.to_str().unwrap(), "render", "--env", "prod"]);
    let head = run(&[
        "--repo",
        copy.to_str().unwrap(),
        "render",
        "--env",
        "prod",
        "--rev",
        "HEAD",
    ]);
    assert_eq!(
        work_tree.status.code(),
        Some(0),
        "{}",
        transcript(&work_tree)
    );
    assert_eq!(head.status.code(), Some(0), "{}", transcript(&head));
    assert_eq!(work_tree.stdout, head.stdout);
    let diff = run(&[
        "--repo",
        copy.to_str().unwrap(),
        "diff",
        "--env",
        "prod",
        "--from",
        "HEAD",
        "--exit-code",
    ]);
    assert_eq!(diff.status.code(), Some(0), "{}", transcript(&diff));
}

/// Regression (#10): `eval` read input files as code or as its entry point.
#[test]
fn eval_never_reads_an_input_file() {
    let repo = common::root().join("controlcenter-examples/platform");
    let env = repo.join("env-prod.yaml");
    let secret = "pR7#vQ2!mZ9wK4xT8nL3bY6c";
    assert!(std::fs::read_to_string(&env).unwrap().contains(secret));
    let r = repo.to_str().unwrap();
    for args in [
        vec!["--repo", r, "eval", env.to_str().unwrap()],
        vec![
            "--repo",
            r,
            "eval",
            "--tla-code-file",
            &format!("x={}", env.display()),
            "lib-jsonnet/main.jsonnet",
        ],
    ] {
        let out = run(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            !transcript(&out).contains(secret),
            "{args:?}: {}",
            transcript(&out)
        );
    }
}
