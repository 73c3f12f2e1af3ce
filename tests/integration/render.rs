//! Rendering the shipped example repositories end to end: snapshots of
//! every environment, the JSON-lines contract, byte-identical output when
//! input keys are reordered, and the --out-dir directory swap.

use crate::common;

use std::path::Path;

use common::{envs_of, examples, run, transcript};

fn render(repo: &Path, env: &str, format: &str) -> String {
    let out = run(&[
        "--repo",
        repo.to_str().unwrap(),
        "render",
        "--env",
        env,
        "--format",
        format,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_example_environment_matches_its_snapshot() {
    let repos = examples();
    assert!(repos.len() >= 2, "at least two example repositories");
    for repo in repos {
        let name = repo.file_name().unwrap().to_string_lossy().into_owned();
        let envs = envs_of(&repo);
        assert!(!envs.is_empty(), "{name} has environments");
        for env in envs {
            let yaml = render(&repo, &env, "yaml");
            insta::assert_snapshot!(format!("{name}-{env}"), yaml);
        }
    }
}

#[test]
fn json_format_is_one_compact_object_per_line_in_the_same_order() {
    for repo in examples() {
        for env in envs_of(&repo) {
            let json = render(&repo, &env, "json");
            let yaml = render(&repo, &env, "yaml");
            let lines: Vec<&str> = json.lines().collect();
            assert_eq!(
                lines.len(),
                yaml.matches("\n---\n").count() + 1,
                "one line per document"
            );
            for line in &lines {
                assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(v["apiVersion"].is_string() && v["kind"].is_string());
                assert!(v["metadata"]["name"].is_string());
                assert_eq!(
                    serde_json::to_string(&v).unwrap(),
                    *line,
                    "compact, keys sorted"
                );
            }
        }
    }
}

/// Reverses the order of mapping entries at every indentation level of a
/// block-style YAML file (list items keep their order; entries that define
/// an anchor move first, so aliases still follow them).
fn reverse_mappings(text: &str) -> String {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    if first.is_some_and(|l| l.starts_with('{') || l.starts_with('[')) {
        return text.to_owned(); // flow style (JSON): left as is
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    reverse_block(&lines, 0, &mut out);
    out.join("\n") + "\n"
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn reverse_block<'a>(lines: &[&'a str], indent: usize, out: &mut Vec<&'a str>) {
    // Split into entries starting at `indent`; comments and blank lines stick
    // to the entry that follows them.
    let mut entries: Vec<Vec<&str>> = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for &line in lines {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            pending.push(line);
        } else if indent_of(line) == indent {
            let mut entry = std::mem::take(&mut pending);
            entry.push(line);
            entries.push(entry);
        } else if let Some(last) = entries.last_mut() {
            last.append(&mut pending);
            last.push(line);
        } else {
            pending.push(line);
        }
    }
    let is_list = entries.iter().any(|e| {
        e.iter()
            .any(|l| l.trim_start().starts_with("- ") && indent_of(l) == indent)
    });
    if !is_list {
        // Entries that define an anchor must stay before its aliases.
        let (mut anchored, mut rest): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|e| e.iter().any(|l| l.contains(": &") || l.contains("- &")));
        rest.reverse();
        anchored.append(&mut rest);
        entries = anchored;
    }
    for entry in entries {
        let head = entry.iter().position(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#') && indent_of(l) == indent
        });
        let Some(head) = head else {
            out.extend(entry);
            continue;
        };
        out.extend(&entry[..=head]);
        let body = &entry[head + 1..];
        let child = body
            .iter()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| indent_of(l));
        match child {
            Some(c) if c > indent && !is_list => reverse_block(body, c, out),
            _ => out.extend(body),
        }
    }
    out.extend(pending);
}

#[test]
fn output_is_byte_identical_when_input_keys_are_reordered() {
    for repo in examples() {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&repo, copy.path());
        let mut reordered = 0;
        for entry in std::fs::read_dir(copy.path()).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let rev = reverse_mappings(&text);
                if rev != text {
                    reordered += 1;
                }
                std::fs::write(&path, rev).unwrap();
            }
        }
        assert!(reordered >= 3, "the test really reorders inputs");
        for env in envs_of(&repo) {
            for format in ["yaml", "json"] {
                let a = render(&repo, &env, format);
                let b = render(copy.path(), &env, format);
                let c = render(&repo, &env, format);
                assert!(
                    a == b,
                    "{}/{env}: reordering inputs changed the output; first difference:\n{}",
                    repo.display(),
                    first_difference(&a, &b)
                );
                assert!(a == c, "{}/{env}: two runs differ", repo.display());
            }
        }
    }
}

fn first_difference(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let i = la
        .iter()
        .zip(&lb)
        .position(|(x, y)| x != y)
        .unwrap_or(la.len().min(lb.len()));
    let context = |l: &[&str]| l[i.saturating_sub(3)..(i + 2).min(l.len())].join("\n");
    format!(
        "line {}:\n--- original\n{}\n--- reordered\n{}",
        i + 1,
        context(&la),
        context(&lb)
    )
}

#[test]
fn reverse_mappings_really_reverses() {
    let text = "a:\n  x: 1\n  y: [1, 2]\n  l:\n    - p\n    - q\nb: 2\n";
    assert_eq!(
        reverse_mappings(text),
        "b: 2\na:\n  l:\n    - p\n    - q\n  y: [1, 2]\n  x: 1\n"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn out_dir_is_replaced_whole_and_stale_files_disappear() {
    let repo = common::root().join("controlcenter-examples/article");
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("rendered");
    let out = run(&[
        "--repo",
        repo.to_str().unwrap(),
        "render",
        "--env",
        "dev",
        "--out-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(dir.join(".controlcenter-out").is_file());
    let deployment = dir.join("dev/deployment-service-rpps.yaml");
    assert!(deployment.is_file());
    let stale = dir.join("dev/configmap-old-service.yaml");
    std::fs::write(&stale, "stale").unwrap();
    let out = run(&[
        "--repo",
        repo.to_str().unwrap(),
        "render",
        "--env",
        "dev",
        "--out-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(!stale.exists(), "stale files are removed");
    assert!(deployment.is_file());
    let leftovers: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("rendered")],
        "no staging directories left"
    );
    // Every file is one document of the YAML stream.
    let files = walk(&dir);
    let stream = render(&repo, "dev", "yaml");
    assert_eq!(files.len(), stream.matches("---\n").count());
}

#[test]
fn out_dir_refuses_to_replace_a_directory_it_did_not_write() {
    let repo = common::root().join("controlcenter-examples/article");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let out = run(&[
        "--repo",
        repo.to_str().unwrap(),
        "render",
        "--env",
        "dev",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CC0601"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious.txt")).unwrap(),
        "keep me"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else if p.extension().is_some_and(|e| e == "yaml") {
            files.push(p);
        }
    }
    files
}

/// A repository with `n` services, enough output to interrupt mid-write.
fn generated_repo(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cc = String::from("dev:\n");
    let mut tags = String::new();
    for i in 0..n {
        cc.push_str(&format!(
            "  svc_{i}:\n    git_rev: v1\n    memory_min: 64Mi\n    memory_max: 64Mi\n    env: {{A: \"1\"}}\n"
        ));
        tags.push_str(&format!("svc_{i}:\n  v1: reg.example.com/svc:{i}\n"));
    }
    std::fs::write(dir.path().join("controlcenter.yaml"), cc).unwrap();
    std::fs::write(dir.path().join("tags.yaml"), tags).unwrap();
    std::fs::write(dir.path().join("env-dev.yaml"), "{}\n").unwrap();
    dir
}

#[cfg(unix)]
#[test]
fn an_interrupted_out_dir_write_leaves_no_temporary_files() {
    let repo = generated_repo(1500);
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    for attempt in 0..5 {
        let mut child = common::controlcenter()
            .args([
                "--repo",
                repo.path().to_str().unwrap(),
                "render",
                "--env",
                "dev",
                "--out-dir",
                out.to_str().unwrap(),
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the staging directory, then interrupt.
        let started = std::time::Instant::now();
        let mut seen = false;
        while started.elapsed().as_secs() < 60 {
            let staging = std::fs::read_dir(parent.path())
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".out.new-"));
            if staging {
                seen = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        if !seen {
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&out);
            eprintln!("attempt {attempt}: finished before it could be interrupted");
            continue;
        }
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        let left: Vec<String> = std::fs::read_dir(parent.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if status.code() == Some(0) {
            // Finished between our check and the signal: try again.
            let _ = std::fs::remove_dir_all(&out);
            continue;
        }
        assert_eq!(status.code(), Some(130));
        assert!(
            left.iter().all(|n| !n.starts_with(".out.")),
            "left behind: {left:?}"
        );
        return;
    }
    panic!("could not interrupt a write in 5 attempts");
}

#[test]
fn a_failing_write_leaves_the_previous_output_intact() {
    let repo = common::root().join("controlcenter-examples/article");
    let parent = tempfile::tempdir().unwrap();
    // The parent of --out-dir is a file: nothing can be created there.
    let blocker = parent.path().join("blocker");
    std::fs::write(&blocker, "x").unwrap();
    let out = run(&[
        "--repo",
        repo.to_str().unwrap(),
        "render",
        "--env",
        "dev",
        "--out-dir",
        blocker.join("out").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CC0601"));
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "x");
    // A render that fails validation never touches an existing output.
    let good = parent.path().join("good");
    let ok = run(&[
        "--repo",
        repo.to_str().unwrap(),
        "render",
        "--env",
        "dev",
        "--out-dir",
        good.to_str().unwrap(),
    ]);
    assert_eq!(ok.status.code(), Some(0));
    let before = walk(&good).len();
    let bad = common::root().join("tests/fixtures/errors/missing-tag");
    let out = run(&[
        "--repo",
        bad.to_str().unwrap(),
        "render",
        "--env",
        "dev",
        "--out-dir",
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(walk(&good).len(), before);
}
