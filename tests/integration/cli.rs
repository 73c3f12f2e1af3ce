//! The command-line contract: help with an example on every command, exit
//! codes (0 ok, 1 invalid input, 2 usage or internal error), validate's
//! report of skipped environments, schema export, eval's jsonnet flags.

use crate::common;

use common::{root, run, transcript};

/// The subcommands a `--help` text lists under `Commands:` (not `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   ")) // wrapped descriptions
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_command_has_help_with_an_example() {
    let top = run(&["--help"]);
    let top_text = String::from_utf8_lossy(&top.stdout).into_owned();
    assert!(top_text.contains("controlcenter render --env dev"));
    let mut todo: Vec<Vec<String>> = subcommands(&top_text)
        .into_iter()
        .map(|c| vec![c])
        .collect();
    for known in [
        "render", "validate", "state", "eval", "schema", "cmp", "tags", "diff", "promote",
    ] {
        assert!(
            todo.iter().any(|c| c[0] == known),
            "`{known}` is listed in --help:\n{top_text}"
        );
    }
    let mut checked = 0;
    while let Some(cmd) = todo.pop() {
        let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(&args);
        let name = cmd.join(" ");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name} --help\n{}",
            transcript(&out)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Usage: controlcenter"),
            "{name} --help shows usage:\n{text}"
        );
        assert!(
            text.contains("Example"),
            "{name} --help shows an example:\n{text}"
        );
        // Nested commands (`cmp generate`, `tags set`, …) too.
        todo.extend(subcommands(&text).into_iter().map(|sub| {
            let mut c = cmd.clone();
            c.push(sub);
            c
        }));
        checked += 1;
    }
    assert!(checked >= 15, "every command and subcommand: {checked}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["render"]).status.code(), Some(2), "missing --env");
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        run(&["--repo", "/nonexistent/dir", "validate"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn an_option_variable_set_to_nothing_is_not_set() {
    let article = root().join("controlcenter-examples/article");
    let render_with = |name: &str, value: &str| {
        common::controlcenter()
            .env(name, value)
            .arg("--repo")
            .arg(&article)
            .args(["render", "--env", "dev", "--no-cache"])
            .output()
            .unwrap()
    };
    for name in [
        "CONTROLCENTER_JOBS",
        "CONTROLCENTER_NO_CACHE",
        "CONTROLCENTER_MAX_MEMORY",
    ] {
        let out = render_with(name, "");
        assert_eq!(out.status.code(), Some(0), "{name}: {}", transcript(&out));
    }
    // A value that is not one is still refused.
    let out = render_with("CONTROLCENTER_JOBS", "many");
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    // So is a cache bound that is not a whole number of MiB.
    let cache = tempfile::tempdir().unwrap();
    let out = common::controlcenter()
        .env("CONTROLCENTER_CACHE_SIZE_MB", "0.5")
        .env("CONTROLCENTER_CACHE_DIR", cache.path())
        .arg("--repo")
        .arg(&article)
        .args(["render", "--env", "dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("not a whole number of MiB"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn validate_renders_present_envs_and_reports_skipped_ones() {
    // No env file of preprod or prod, and nothing to make placeholders of
    // (no contract, no env file at all): those are skipped, said so.
    let repo = tempfile::tempdir().unwrap();
    let src = root().join("controlcenter-examples/article");
    for f in ["controlcenter.yaml", "tags.yaml"] {
        std::fs::copy(src.join(f), repo.path().join(f)).unwrap();
    }
    let out = run(&["--repo", repo.path().to_str().unwrap(), "validate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        stderr.contains("skipped dev: env-dev.yaml is not on this branch"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped preprod: env-preprod.yaml is not on this branch"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped prod: env-prod.yaml is not on this branch"),
        "{stderr}"
    );
    // Asking for a skipped environment explicitly is an error.
    let out = run(&[
        "--repo",
        repo.path().to_str().unwrap(),
        "validate",
        "--env",
        "prod",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CC0302"));
}

#[test]
fn validate_reports_errors_of_every_environment_at_once() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("controlcenter.yaml"),
        "dev:\n  svc:\n    git_rev: v9\nprod:\n  svc:\n    git_rev: v8\n",
    )
    .unwrap();
    std::fs::write(
        repo.path().join("tags.yaml"),
        "svc:\n  v1: reg.example.com/svc:1\n",
    )
    .unwrap();
    std::fs::write(repo.path().join("env-dev.yaml"), "{}\n").unwrap();
    std::fs::write(repo.path().join("env-prod.yaml"), "{}\n").unwrap();
    let (out, lines) = common::validate_json(repo.path());
    assert_eq!(out.status.code(), Some(1));
    let lines_at: Vec<u64> = lines
        .iter()
        .map(|d| d["location"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines_at, [3, 6], "one missing tag per environment");
    assert!(lines.iter().all(|d| d["code"] == "CC0304"));
}

#[test]
fn github_format_prints_workflow_annotations() {
    let case = root().join("tests/fixtures/errors/typo-field");
    let out = run(&[
        "--repo",
        case.to_str().unwrap(),
        "--error-format",
        "github",
        "validate",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("::error file=controlcenter.yaml,line=4,col=5,endLine=4,endColumn=12,title=CC0202::unknown field `replica`"),
        "{stdout}"
    );
}

#[test]
fn state_is_what_the_library_receives() {
    let repo = root().join("controlcenter-examples/article");
    let out = run(&["--repo", repo.to_str().unwrap(), "state", "--env", "prod"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["env"], "prod");
    assert_eq!(state["protected"], true);
    assert_eq!(state["services"]["service_rpps"]["name"], "service-rpps");
    assert_eq!(state["services"]["service_rpps"]["memory_max"], "4Gi");
    assert_eq!(
        state["params"]["elk_endpoint"],
        "https://search-example-prod.example.com"
    );
    // Sensitive Terraform outputs: the name is listed, the value never appears.
    assert_eq!(
        state["params"]["sensitive_outputs"],
        serde_json::json!(["db_password"])
    );
    let env_prod = std::fs::read_to_string(repo.join("env-prod.yaml")).unwrap();
    let secret = env_prod
        .lines()
        .skip_while(|l| !l.starts_with("db_password:"))
        .find_map(|l| {
            l.trim()
                .strip_prefix("value:")
                .map(|v| v.trim().trim_matches('"').to_owned())
        })
        .expect("the example has a sensitive value");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&secret));
}

#[test]
fn schema_export_writes_every_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["schema", "export", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    for name in ["controlcenter", "tags", "env", "secrets"] {
        let text = std::fs::read_to_string(dir.path().join(format!("{name}.schema.json"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    }
}

#[test]
fn eval_accepts_the_usual_jsonnet_flags() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("vendor");
    std::fs::create_dir(&lib).unwrap();
    std::fs::write(
        lib.join("greet.libsonnet"),
        "{ greet(who):: 'hello ' + who }",
    )
    .unwrap();
    let file = dir.path().join("main.jsonnet");
    std::fs::write(
        &file,
        "local g = import 'greet.libsonnet';\nfunction(n, m) { a: g.greet(std.extVar('who')), b: std.extVar('c') + n, c: m, names: std.objectHasAll(import 'controlcenter/lib.libsonnet', 'new') }",
    )
    .unwrap();
    let out = run(&[
        "eval",
        "-J",
        lib.to_str().unwrap(),
        "--ext-str",
        "who=world",
        "--ext-code",
        "c=40",
        "--tla-code",
        "n=2",
        "--tla-str",
        "m=x",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"a": "hello world", "b": 42, "c": "x", "names": true})
    );
}

#[test]
fn eval_refuses_imports_outside_its_roots() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.jsonnet");
    std::fs::write(&file, "importstr '../../../../../../../etc/passwd'").unwrap();
    let out = run(&[
        "--repo",
        dir.path().to_str().unwrap(),
        "eval",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CC0402"));
}

#[test]
fn max_errors_caps_what_is_shown_but_counts_everything() {
    let case = root().join("tests/fixtures/errors/many-errors");
    let out = run(&[
        "--repo",
        case.to_str().unwrap(),
        "--max-errors",
        "1",
        "validate",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("error[CC").count(), 1, "{stderr}");
    assert!(
        stderr.contains("note: 2 more not shown (--max-errors 1)"),
        "{stderr}"
    );
    assert!(stderr.contains("error: 3 problems found"), "{stderr}");
}

#[test]
fn ci_examples_are_valid_yaml_and_call_real_commands() {
    let dir = root().join("deploy/ci");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let mut sources = controlcenter::diagnostics::Sources::default();
        let id = sources.add("ci.yaml", text.as_str());
        let doc = controlcenter::load::yaml::parse(&text, id)
            .unwrap_or_else(|d| panic!("{}: {d:?}", entry.path().display()))
            .to_json();
        assert!(
            doc["jobs"].is_object(),
            "{}: a workflow",
            entry.path().display()
        );
        for line in text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("run: controlcenter "))
        {
            let sub = line.split_whitespace().next().unwrap();
            assert!(
                run(&[sub, "--help"]).status.success(),
                "`controlcenter {sub}` exists"
            );
        }
        seen += 1;
    }
    assert_eq!(seen, 4);
}

/// Failures outside any input file (a revision, a directory, a flag) are
/// diagnostics with a code in every error format; issue #11 found an
/// unknown revision printed as human text with the wrong code under json.
#[test]
fn command_line_failures_are_diagnostics_in_every_format() {
    let repo = tempfile::tempdir().unwrap();
    let src = root().join("controlcenter-examples/article");
    for f in ["controlcenter.yaml", "tags.yaml", "env-dev.yaml"] {
        std::fs::copy(src.join(f), repo.path().join(f)).unwrap();
    }
    common::git(repo.path(), &["init", "-q", "-b", "dev"]);
    common::git(repo.path(), &["add", "."]);
    common::git(repo.path(), &["commit", "-q", "-m", "init"]);
    let r = repo.path().to_str().unwrap();
    std::fs::write(repo.path().join("x.jsonnet"), "{}").unwrap();
    let entry = repo.path().join("x.jsonnet");
    let entry = entry.to_str().unwrap();
    let platform = root().join("controlcenter-examples/platform");
    let platform = platform.to_str().unwrap();
    let input = format!("s={platform}/secrets.yaml");
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_str().unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "eval -J missing",
            &["--repo", r, "eval", entry, "-J", "/nonexistent/jpath"],
        ),
        (
            "eval --tla-code-file an input file",
            &["--repo", platform, "eval", entry, "--tla-code-file", &input],
        ),
        (
            "schema export into a file",
            &["schema", "export", "/dev/null/schemas"],
        ),
        (
            "plugin outside a repository",
            &["--repo", empty, "cmp", "generate"],
        ),
        (
            "unknown revision",
            &[
                "--repo",
                r,
                "render",
                "--env",
                "dev",
                "--rev",
                "no-such-branch",
            ],
        ),
        (
            "missing --repo",
            &["--repo", "/nonexistent/dir", "validate"],
        ),
        (
            "missing --lib",
            &[
                "--repo",
                r,
                "--lib",
                "/nonexistent/lib",
                "render",
                "--env",
                "dev",
            ],
        ),
        (
            "promote without --dry-run",
            &["--repo", r, "promote", "--from", "dev", "--to", "prod"],
        ),
    ];
    let mut shown = String::new();
    for (what, args) in cases {
        for format in ["human", "json"] {
            let mut full = vec!["--error-format", format];
            full.extend_from_slice(args);
            let out = run(&full);
            let text = transcript(&out)
                .replace(r, "[REPO]")
                .replace(empty, "[EMPTY]")
                .replace(platform, "[PLATFORM]");
            // The plugin prints short lines whatever the format (Argo CD's UI).
            if format == "json" && !args.contains(&"cmp") {
                let stderr = String::from_utf8_lossy(&out.stderr);
                for line in stderr.lines() {
                    let d: serde_json::Value = serde_json::from_str(line)
                        .unwrap_or_else(|_| panic!("{what}: one JSON object per line:\n{text}"));
                    assert!(
                        d["code"].as_str().is_some_and(|c| c.starts_with("CC")),
                        "{text}"
                    );
                }
            }
            shown.push_str(&format!("## {what} ({format})\n{text}\n"));
        }
    }
    insta::assert_snapshot!(shown);
}
