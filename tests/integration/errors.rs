//! Every error users see, end to end: each fixture under
//! tests/fixtures/errors/ is a small repository with one problem (its
//! README.md says which). Rendering it must exit 1, name file:line:column,
//! write nothing to --out-dir, and print exactly the snapshotted diagnostic.

use crate::common;

use std::path::Path;

use common::{run, transcript};

/// The error formats every fixture is rendered in.
const FORMATS: &[&str] = &["human", "json", "github", "short"];

/// Each fixture directory holds a `case.json`: the environment to render
/// and any extra arguments of `render`.
#[derive(serde::Deserialize)]
struct Case {
    env: String,
    #[serde(default)]
    args: Vec<String>,
}

#[test]
fn every_error_fixture_fails_cleanly_with_a_located_diagnostic_in_every_format() {
    insta::glob!("../fixtures/errors", "*/case.json", |case_file| {
        let case = case_file.parent().unwrap();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            case.join("README.md").is_file(),
            "{name}: every fixture says what it tests"
        );
        let spec: Case = serde_json::from_str(&std::fs::read_to_string(case_file).unwrap())
            .unwrap_or_else(|e| panic!("{name}/case.json: {e}"));
        let mut snapshot = String::new();
        for format in FORMATS {
            let out_parent = tempfile::tempdir().unwrap();
            let out_dir = out_parent.path().join("out");
            let mut args = vec![
                "--repo",
                case.to_str().unwrap(),
                "--error-format",
                format,
                "render",
                "--env",
                &spec.env,
                "--out-dir",
                out_dir.to_str().unwrap(),
            ];
            args.extend(spec.args.iter().map(String::as_str));
            let out = run(&args);
            let text = transcript(&out);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{name} ({format}): exit code\n{text}"
            );
            assert!(
                out.stdout.is_empty(),
                "{name} ({format}): nothing on stdout\n{text}"
            );
            assert!(
                !out_dir.exists(),
                "{name} ({format}): --out-dir must not be written"
            );
            assert_eq!(
                std::fs::read_dir(out_parent.path()).unwrap().count(),
                0,
                "{name} ({format}): no temporary files left behind"
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("panicked"),
                "{name} ({format}): panic\n{text}"
            );
            if *format == "human" {
                assert!(
                    has_location(&stderr) || located_elsewhere(&name),
                    "{name}: the diagnostic names file:line:col\n{text}"
                );
            }
            let scrubbed = |bytes: &[u8]| {
                scrub(&String::from_utf8_lossy(bytes), case)
                    .replace(out_parent.path().to_str().unwrap(), "[TMP]")
            };
            snapshot.push_str(&format!(
                "── --error-format {format} ── exit code: {}\n── stdout ──\n{}── stderr ──\n{}",
                out.status.code().unwrap_or(-1),
                scrubbed(&out.stdout),
                scrubbed(&out.stderr),
            ));
        }
        insta::assert_snapshot!(snapshot);
    });
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
fn a_50_mb_input_is_refused_without_reading_it_whole() {
    let repo = tempfile::tempdir().unwrap();
    let mut text = String::from("dev:\n  svc:\n    git_rev: v1\n    env:\n");
    let line = format!("      K: \"{}\"\n", "x".repeat(1000));
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(&line);
    }
    std::fs::write(repo.path().join("controlcenter.yaml"), text).unwrap();
    let out = run(&[
        "--repo",
        repo.path().to_str().unwrap(),
        "render",
        "--env",
        "dev",
    ]);
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

/// The canary planted in every secret position below.
const CANARY: &str = "CANARYq7Zk3xW9";

/// A copy of the platform example with one secret position planted (and
/// perhaps the input broken around it), committed on top of the clean
/// example so `diff` and `promote` see it too.
fn planted_repo(plant: &dyn Fn(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    copy_tree(
        &common::root().join("controlcenter-examples/platform"),
        repo,
    );
    let git = |args: &[&str]| common::git(repo, args);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "clean"]);
    plant(repo);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "planted"]);
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn edit(path: &Path, f: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, f(bytes)).unwrap();
}

fn replace_once(bytes: Vec<u8>, from: &str, to: &[u8]) -> Vec<u8> {
    let text = bytes;
    let at = text
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("`{from}` not found"));
    [&text[..at], to, &text[at + from.len()..]].concat()
}

/// Sets the first sensitive output of env-prod.yaml (JSON) to the canary,
/// followed by `after` inside the string.
fn plant_sensitive_output(repo: &Path, after: &[u8]) {
    let path = repo.join("env-prod.yaml");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let (_, secret) = doc
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, o)| o["sensitive"] == true)
        .unwrap();
    let old = format!("\"value\": {}", secret["value"]);
    let new = [format!("\"value\": \"{CANARY}").as_bytes(), after, b"\""].concat();
    edit(&path, |b| replace_once(b, &old, &new));
}

/// Adds a `writeOnly` service field `token` holding the canary.
fn plant_write_only_field(repo: &Path) {
    plant_service_field(
        repo,
        "{\"type\": \"string\", \"writeOnly\": true}",
        &format!("token: {CANARY}"),
    );
}

/// Adds a service `tokened` with the field `token` (schema `schema`,
/// written as `yaml` in the service).
fn plant_service_field(repo: &Path, schema: &str, yaml: &str) {
    edit(&repo.join("schemas/service.schema.json"), |b| {
        replace_once(
            b,
            "\"properties\": {",
            format!("\"properties\": {{\n    \"token\": {schema},").as_bytes(),
        )
    });
    edit(&repo.join("controlcenter.yaml"), |b| {
        replace_once(
            b,
            "prod:\n  namespace: acme-prod\n",
            format!("prod:\n  namespace: acme-prod\n  tokened:\n    git_rev: v1\n    memory_min: 64Mi\n    memory_max: 64Mi\n    {yaml}\n")
                .as_bytes(),
        )
    });
    edit(&repo.join("tags.yaml"), |mut b| {
        b.extend_from_slice(b"tokened:\n  v1: registry.example.com/tokened:1\n");
        b
    });
}

/// Makes the repo's entry point run `prefix` first (with `tokens`, the
/// values of every service's `token`, in scope): a template that reads
/// every service, so the repository evaluates the whole environment at once.
fn prefix_entry_point(repo: &Path, prefix: &str) {
    edit(&repo.join("controlcenter.yaml"), |b| {
        replace_once(b, "settings:\n", b"settings:\n  evaluation: environment\n")
    });
    edit(&repo.join("jsonnet/main.jsonnet"), |b| {
        replace_once(
            b,
            "function(state)\n",
            format!("function(state)\n  local tokens = [s.extra.token for s in std.objectValues(state.services) if std.objectHas(s.extra, 'token')];\n  {prefix}\n").as_bytes(),
        )
    });
}

fn append_secret(repo: &Path, yaml: &[u8]) {
    edit(&repo.join("secrets.yaml"), |b| {
        replace_once(b, "prod:\n", &[b"prod:\n".as_slice(), yaml].concat())
    });
}

/// Every file under `dir`, as text. Files that go while it reads (the
/// evaluation cache, shared with tests running at the same time, merges
/// and trims its packs) are passed over.
fn files_text(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push_str(&files_text(&e.path()));
            } else if let Ok(bytes) = std::fs::read(e.path()) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    out
}

#[test]
fn a_planted_secret_never_appears_in_any_output_of_any_command() {
    type Plant = Box<dyn Fn(&Path)>;
    let plants: Vec<(&str, Plant)> = vec![
        (
            "sensitive output",
            Box::new(|r| plant_sensitive_output(r, b"")),
        ),
        (
            "sensitive output + non-UTF-8 byte",
            Box::new(|r| plant_sensitive_output(r, b"\xff")),
        ),
        (
            "sensitive output + JSON syntax error",
            Box::new(|r| plant_sensitive_output(r, b"\", [\"x")),
        ),
        (
            "sensitive output + NUL byte",
            Box::new(|r| plant_sensitive_output(r, b"\0")),
        ),
        (
            "sensitive output + one plain key",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                edit(&r.join("env-prod.yaml"), |b| {
                    replace_once(b, "{", b"{\n  \"plain_extra\": \"x\",")
                });
            }),
        ),
        (
            "secrets.yaml stringData",
            Box::new(|r| {
                append_secret(r, format!("  leaked:\n    namespace: acme-prod\n    stringData:\n      password: {CANARY}\n").as_bytes())
            }),
        ),
        (
            "secrets.yaml without a name level",
            Box::new(|r| {
                append_secret(
                    r,
                    format!("  encryptedData:\n    password: {CANARY}\n").as_bytes(),
                )
            }),
        ),
        (
            "secrets.yaml unsealed value",
            Box::new(|r| {
                append_secret(r, format!("  leaked:\n    namespace: acme-prod\n    encryptedData:\n      password: {CANARY}\n").as_bytes())
            }),
        ),
        (
            "secrets.yaml + non-UTF-8 byte",
            Box::new(|r| {
                append_secret(
                    r,
                    &[
                        format!("  leaked:\n    encryptedData:\n      password: {CANARY}")
                            .as_bytes(),
                        b"\xff\n",
                    ]
                    .concat(),
                )
            }),
        ),
        (
            "secrets.yaml + syntax error",
            Box::new(|r| {
                append_secret(
                    r,
                    format!("  leaked:\n    encryptedData:\n      password: [{CANARY}\n")
                        .as_bytes(),
                )
            }),
        ),
        ("writeOnly field", Box::new(plant_write_only_field)),
        (
            "writeOnly field + broken controlcenter.yaml",
            Box::new(|r| {
                plant_write_only_field(r);
                edit(&r.join("controlcenter.yaml"), |b| {
                    replace_once(
                        b,
                        &format!("    token: {CANARY}\n"),
                        format!("    token: {CANARY}\n\t  bad: [\n").as_bytes(),
                    )
                });
            }),
        ),
        (
            "writeOnly field quoted by a template error",
            Box::new(|r| {
                plant_write_only_field(r);
                prefix_entry_point(
                    r,
                    "if std.length(tokens) > 0 then error 'bad token: ' + tokens[0] else",
                );
            }),
        ),
        (
            "writeOnly field in std.trace",
            Box::new(|r| {
                plant_write_only_field(r);
                prefix_entry_point(r, "assert std.trace('token: ' + tokens[0], true);");
            }),
        ),
        (
            "importstr of the env file",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                prefix_entry_point(r, "local leak = importstr '../env-prod.yaml'; assert std.length(leak) > 0 : leak;");
            }),
        ),
        (
            "importstr of secrets.yaml through a symlink",
            Box::new(|r| {
                append_secret(
                    r,
                    format!("  leaked:\n    encryptedData:\n      password: {CANARY}\n").as_bytes(),
                );
                std::os::unix::fs::symlink("../secrets.yaml", r.join("jsonnet/data.txt")).unwrap();
                prefix_entry_point(
                    r,
                    "local leak = importstr 'data.txt'; assert std.length(leak) < 0 : leak;",
                );
            }),
        ),
        // Other loaders reading a secret file through a link.
        (
            "a policy linking to the env file",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                std::fs::create_dir_all(r.join("policies")).unwrap();
                std::os::unix::fs::symlink("../env-prod.yaml", r.join("policies/p.yaml")).unwrap();
            }),
        ),
        (
            "policies/ linking to the repository",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                std::os::unix::fs::symlink(".", r.join("policies")).unwrap();
            }),
        ),
        (
            "tags.yaml linking to the env file",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                std::fs::remove_file(r.join("tags.yaml")).unwrap();
                std::os::unix::fs::symlink("env-prod.yaml", r.join("tags.yaml")).unwrap();
            }),
        ),
        (
            "the service schema linking to the env file",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                std::fs::remove_file(r.join("schemas/service.schema.json")).unwrap();
                std::os::unix::fs::symlink(
                    "../env-prod.yaml",
                    r.join("schemas/service.schema.json"),
                )
                .unwrap();
            }),
        ),
        // Templates reading a secret file under another name.
        (
            "the env file linking to a template file",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                std::fs::rename(r.join("env-prod.yaml"), r.join("jsonnet/tfdata.txt")).unwrap();
                std::os::unix::fs::symlink("jsonnet/tfdata.txt", r.join("env-prod.yaml")).unwrap();
                prefix_entry_point(
                    r,
                    "local leak = importstr 'tfdata.txt'; assert std.length(leak) < 0 : leak;",
                );
            }),
        ),
        (
            "a hard link to the env file",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                std::fs::hard_link(r.join("env-prod.yaml"), r.join("jsonnet/hl.txt")).unwrap();
                prefix_entry_point(
                    r,
                    "local leak = importstr 'hl.txt'; assert std.length(leak) < 0 : leak;",
                );
            }),
        ),
        (
            "a policy hard-linked to the env file",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                std::fs::create_dir_all(r.join("policies")).unwrap();
                std::fs::hard_link(r.join("env-prod.yaml"), r.join("policies/p.yaml")).unwrap();
            }),
        ),
        (
            "tags.yaml a copy of the env file",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                std::fs::copy(r.join("env-prod.yaml"), r.join("tags.yaml")).unwrap();
            }),
        ),
        (
            "a template holding an edited copy of the env file",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                let mut copy = std::fs::read(r.join("env-prod.yaml")).unwrap();
                copy.extend_from_slice(b"\n\n");
                std::fs::write(r.join("jsonnet/d.txt"), copy).unwrap();
                prefix_entry_point(
                    r,
                    "local leak = importstr 'd.txt'; assert std.length(leak) < 0 : leak;",
                );
            }),
        ),
        (
            "a secret used as a mapping key elsewhere",
            Box::new(|r| {
                plant_service_field(
                    r,
                    "{\"type\": \"string\", \"writeOnly\": true}",
                    &format!("token: {CANARY}\n    env: {{{CANARY}: x}}"),
                );
            }),
        ),
        // Aliases copying a secret into a plain place.
        (
            "an alias copying a sensitive output",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                edit(&r.join("env-prod.yaml"), |b| {
                    let b = replace_once(
                        b,
                        &format!("\"{CANARY}\""),
                        format!("&p \"{CANARY}\"").as_bytes(),
                    );
                    replace_once(
                        b,
                        "{",
                        b"{\n  \"copy\": {\"sensitive\": false, \"value\": *p},",
                    )
                });
            }),
        ),
        (
            "an alias copying a writeOnly field",
            Box::new(|r| {
                plant_service_field(
                    r,
                    "{\"type\": \"string\", \"writeOnly\": true}",
                    &format!("token: &x {CANARY}\n    env: {{X: *x}}"),
                );
            }),
        ),
        // Values quoted by parse errors.
        (
            "a tagged sensitive output",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                edit(&r.join("env-prod.yaml"), |b| {
                    replace_once(
                        b,
                        &format!("\"{CANARY}\""),
                        format!("!!int {CANARY}").as_bytes(),
                    )
                });
            }),
        ),
        (
            "a tagged secrets.yaml value",
            Box::new(|r| {
                append_secret(
                    r,
                    format!("  leaked:\n    encryptedData:\n      password: !!int {CANARY}\n")
                        .as_bytes(),
                )
            }),
        ),
        (
            "a tagged writeOnly field",
            Box::new(|r| {
                plant_service_field(
                    r,
                    "{\"writeOnly\": true}",
                    &format!("token: !!int {CANARY}"),
                )
            }),
        ),
        (
            "a duplicate key inside a sensitive value",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                edit(&r.join("env-prod.yaml"), |b| {
                    replace_once(
                        b,
                        &format!("\"{CANARY}\""),
                        format!("{{\"{CANARY}\": 1, \"{CANARY}\": 2}}").as_bytes(),
                    )
                });
            }),
        ),
        (
            "sensitive: \"true\" as a string",
            Box::new(|r| {
                plant_sensitive_output(r, b"");
                edit(&r.join("env-prod.yaml"), |mut b| {
                    let text = String::from_utf8(b.clone()).unwrap();
                    let at = text.find(CANARY).unwrap();
                    let s = text[..at].rfind("\"sensitive\": true").unwrap();
                    b.splice(s..s + 17, "\"sensitive\": \"true\"".bytes());
                    b
                });
            }),
        ),
        // Secrets a template's error shows in another form.
        (
            "a multi-line writeOnly field in an error",
            Box::new(|r| {
                plant_service_field(
                    r,
                    "{\"type\": \"string\", \"writeOnly\": true}",
                    &format!("token: \"{CANARY}-first\\nsecond-line-{CANARY}\\n\""),
                );
                prefix_entry_point(r, "if std.length(tokens) > 0 then error tokens[0] else");
            }),
        ),
        (
            "an invisible character in a writeOnly field",
            Box::new(|r| {
                plant_service_field(
                    r,
                    "{\"type\": \"string\", \"writeOnly\": true}",
                    &format!("token: \"{CANARY}\\u200bwo\""),
                );
                prefix_entry_point(r, "assert std.parseInt(tokens[0]) > 0;");
            }),
        ),
        (
            "a nested writeOnly property",
            Box::new(|r| {
                plant_service_field(
                r,
                "{\"type\": \"object\", \"properties\": {\"password\": {\"type\": \"string\", \"writeOnly\": true}}}",
                &format!("token: {{password: {CANARY}}}"),
            );
            }),
        ),
        // A template that puts a writeOnly value into a manifest: the render
        // shows it (that is what the template asks), never a diff.
        (
            "a writeOnly field rendered into a ConfigMap",
            Box::new(|r| {
                plant_service_field(r, "{\"type\": \"string\", \"writeOnly\": true}", &format!("token: \"{CANARY} with spaces that a YAML writer may fold when the line gets long enough, {CANARY}\\nand a second line\""));
                prefix_entry_point(r, "local shown = [{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'shown', namespace: state.namespace}, data: {t: tokens[0]}}];");
                edit(&r.join("jsonnet/main.jsonnet"), |b| {
                    replace_once(b, "}).manifests", b"}).manifests + shown")
                });
            }),
        ),
    ];
    // Plants whose template renders the secret on purpose: only diffs,
    // states and errors are checked.
    // (A secret the user also wrote into a plain field, here as an env var
    // name, is rendered where the field goes; state and diffs hide it.)
    let rendered_on_purpose = [
        "a writeOnly field rendered into a ConfigMap",
        "a secret used as a mapping key elsewhere",
    ];
    for (name, plant) in plants {
        let dir = planted_repo(&*plant);
        let repo = dir.path();
        let r = repo.to_str().unwrap();
        let out_dir = repo.join("out");
        let o = out_dir.to_str().unwrap();
        let mut runs: Vec<Vec<&str>> = vec![
            vec!["render", "--env", "prod"],
            vec!["render", "--env", "prod", "--format", "json"],
            vec!["render", "--env", "prod", "--out-dir", o],
            vec!["state", "--env", "prod"],
            vec!["diff", "--env", "prod", "--from", "HEAD~1"],
            vec![
                "diff", "--env", "prod", "--from", "HEAD~1", "--format", "json",
            ],
            vec![
                "promote",
                "--from",
                "dev",
                "--to",
                "prod",
                "--dry-run",
                "--from-rev",
                "HEAD",
                "--to-rev",
                "HEAD~1",
            ],
        ];
        for format in ["human", "json", "github", "short"] {
            runs.push(vec!["--error-format", format, "validate"]);
            runs.push(vec!["--error-format", format, "render", "--env", "prod"]);
        }
        for args in runs {
            let out = common::controlcenter()
                .args(["--repo", r])
                .args(&args)
                .output()
                .unwrap();
            let on_purpose = rendered_on_purpose.contains(&name) && args.contains(&"render");
            if on_purpose && args.len() == 3 {
                // The plant works: the render does show it.
                assert!(
                    String::from_utf8_lossy(&out.stdout).contains(CANARY),
                    "{name}: {}",
                    transcript(&out)
                );
            }
            let all = if on_purpose {
                String::from_utf8_lossy(&out.stderr).into_owned()
            } else {
                format!("{}{}", transcript(&out), files_text(&out_dir))
            };
            assert!(
                !all.contains(CANARY),
                "{name}: {args:?} printed the secret:\n{all}"
            );
            let _ = std::fs::remove_dir_all(&out_dir);
        }
        let out = common::controlcenter()
            .args(["cmp", "generate"])
            .current_dir(repo)
            .env("ARGOCD_ENV_CC_ENV", "prod")
            .output()
            .unwrap();
        let shown = if rendered_on_purpose.contains(&name) {
            String::from_utf8_lossy(&out.stderr).into_owned()
        } else {
            transcript(&out)
        };
        assert!(
            !shown.contains(CANARY),
            "{name}: cmp generate printed the secret"
        );
        // `eval` of a file of the repository, the repository on the path.
        let out = common::controlcenter()
            .args([
                "--repo",
                r,
                "eval",
                "-J",
                r,
                "jsonnet/main.jsonnet",
                "--tla-code",
                "state={}",
            ])
            .current_dir(repo)
            .output()
            .unwrap();
        assert!(
            !transcript(&out).contains(CANARY),
            "{name}: eval printed the secret"
        );
        // Nor does the evaluation cache every run above used.
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cache");
        assert!(
            !files_text(&cache).contains(CANARY),
            "{name}: the evaluation cache holds the secret"
        );
    }
}
