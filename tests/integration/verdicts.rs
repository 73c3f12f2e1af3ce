//! Other environments' sections found valid before: a render with a cache
//! does not parse or validate them again, yet any change to one, or to
//! what its validation reads, is validated as before. The count comes
//! from `CONTROLCENTER_TIMINGS`.

use std::path::Path;
use std::process::Output;

use crate::common::{self, controlcenter, transcript};

fn copy_of(example: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(
        &common::root().join("controlcenter-examples").join(example),
        dir.path(),
    );
    dir
}

/// `render --env dev` of `repo` with the cache in `cache`, and `vars`.
fn render_dev(repo: &Path, cache: &Path, vars: &[(&str, &str)]) -> Output {
    controlcenter()
        .arg("--repo")
        .arg(repo)
        .args(["render", "--env", "dev"])
        .env("CONTROLCENTER_TIMINGS", "1")
        .env("CONTROLCENTER_CACHE_DIR", cache)
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

/// How many sections the render found valid before.
fn found_valid_before(out: &Output) -> usize {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("timings:"))
        .unwrap_or_else(|| panic!("no timings line\n{}", transcript(out)));
    let end = line.find(" sections found valid before").unwrap();
    line[..end].rsplit(' ').next().unwrap().parse().unwrap()
}

fn ok(out: &Output) -> &[u8] {
    assert_eq!(out.status.code(), Some(0), "{}", transcript(out));
    &out.stdout
}

/// Replaces the first `from` after `section:` in controlcenter.yaml.
fn edit_in(repo: &Path, section: &str, from: &str, to: &str) {
    let path = repo.join("controlcenter.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find(&format!("\n{section}:\n")).unwrap();
    let i = at + text[at..].find(from).unwrap();
    let text = format!("{}{to}{}", &text[..i], &text[i + from.len()..]);
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_section_found_valid_before_is_not_parsed_again_and_any_change_to_it_is() {
    let repo = copy_of("platform");
    let cache = tempfile::tempdir().unwrap();
    let first = render_dev(repo.path(), cache.path(), &[]);
    assert_eq!(found_valid_before(&first), 0);
    let again = render_dev(repo.path(), cache.path(), &[]);
    assert_eq!(found_valid_before(&again), 2, "preprod and prod");
    assert_eq!(ok(&again), ok(&first));

    // A broken prod section fails the dev render, as without a cache.
    edit_in(
        repo.path(),
        "prod",
        "    git_rev:",
        "    replica: 2\n    git_rev:",
    );
    let broken = render_dev(repo.path(), cache.path(), &[]);
    assert_eq!(broken.status.code(), Some(1), "{}", transcript(&broken));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("unknown field `replica`"), "{stderr}");
    assert!(stderr.contains("prod."), "{stderr}");
    let uncached = controlcenter()
        .arg("--repo")
        .arg(repo.path())
        .args(["--no-cache", "render", "--env", "dev"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uncached.stderr),
        stderr,
        "the same report as without a cache"
    );

    // Mended, it is found valid again.
    edit_in(repo.path(), "prod", "    replica: 2\n", "");
    assert_eq!(ok(&render_dev(repo.path(), cache.path(), &[])), ok(&first));
    assert_eq!(
        found_valid_before(&render_dev(repo.path(), cache.path(), &[])),
        2
    );
}

#[test]
fn a_verdict_holds_only_under_the_schema_it_was_found_with() {
    let repo = copy_of("article");
    let cache = tempfile::tempdir().unwrap();
    let schema = repo.path().join("schemas/service.schema.json");
    std::fs::write(&schema, r#"{"properties": {"team": {"type": "integer"}}}"#).unwrap();
    edit_in(
        repo.path(),
        "prod",
        "    git_rev:",
        "    team: 5\n    git_rev:",
    );
    ok(&render_dev(repo.path(), cache.path(), &[]));
    assert_eq!(
        found_valid_before(&render_dev(repo.path(), cache.path(), &[])),
        2
    );

    // Under another extension prod's `team: 5` is wrong: found again.
    std::fs::write(&schema, r#"{"properties": {"team": {"type": "string"}}}"#).unwrap();
    let out = render_dev(repo.path(), cache.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prod.service_common.team"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn no_section_is_left_out_that_an_alias_or_a_secret_field_reaches_into() {
    let cache = tempfile::tempdir().unwrap();
    // prod copies a value anchored in defaults: its validation reads more
    // than its own text.
    let repo = copy_of("article");
    edit_in(
        repo.path(),
        "defaults",
        "memory_min: 256Mi",
        "memory_min: &low 256Mi",
    );
    edit_in(
        repo.path(),
        "prod",
        "    git_rev:",
        "    memory_min: *low\n    git_rev:",
    );
    ok(&render_dev(repo.path(), cache.path(), &[]));
    let verdicts = || {
        std::fs::read_dir(cache.path().join("verdicts"))
            .unwrap()
            .count()
    };
    assert_eq!(verdicts(), 1, "preprod's, not prod's");
    // Nor is preprod left out: prod, parsed apart from defaults, would
    // lose its anchor (the whole file is parsed then).
    assert_eq!(
        found_valid_before(&render_dev(repo.path(), cache.path(), &[])),
        0
    );

    // Secret fields are registered from every section.
    let repo = copy_of("article");
    std::fs::write(
        repo.path().join("schemas/service.schema.json"),
        r#"{"properties": {"token": {"type": "string", "writeOnly": true}}}"#,
    )
    .unwrap();
    ok(&render_dev(repo.path(), cache.path(), &[]));
    assert_eq!(
        found_valid_before(&render_dev(repo.path(), cache.path(), &[])),
        0
    );
    assert_eq!(verdicts(), 1, "none more");

    // A cache that may hold nothing holds no verdict.
    let repo = copy_of("article");
    let none = tempfile::tempdir().unwrap();
    let vars = [("CONTROLCENTER_CACHE_SIZE_MB", "0")];
    ok(&render_dev(repo.path(), none.path(), &vars));
    assert_eq!(
        found_valid_before(&render_dev(repo.path(), none.path(), &vars)),
        0
    );
}

#[test]
fn no_verdict_for_a_section_whose_parse_counts_more_than_its_tree() {
    // An anchor never aliased and a merge key are charged against the
    // document's limits for more than the tree keeps: a verdict counting
    // the tree alone would let a section over the limits through.
    let verdicts =
        |cache: &Path| std::fs::read_dir(cache.join("verdicts")).map_or(0, |d| d.count());
    for (from, to) in [
        ("    git_rev:", "    env: &unused {TEAM: web}\n    git_rev:"),
        ("    git_rev:", "    env: {<<: {TEAM: web}}\n    git_rev:"),
        // Spelled so that no scan of bytes sees them.
        (
            "    git_rev:",
            "    env: {\"TEAM\":&unused web}\n    git_rev:",
        ),
        (
            "    git_rev:",
            "    env: {\"\\x3c\\x3c\": {TEAM: web}}\n    git_rev:",
        ),
    ] {
        let repo = copy_of("article");
        let cache = tempfile::tempdir().unwrap();
        edit_in(repo.path(), "prod", from, to);
        let first = render_dev(repo.path(), cache.path(), &[]);
        assert_eq!(verdicts(cache.path()), 1, "preprod's, not prod's: {to}");
        let again = render_dev(repo.path(), cache.path(), &[]);
        assert_eq!(found_valid_before(&again), 1, "{to}");
        assert_eq!(ok(&again), ok(&first));
    }
}

#[test]
fn what_a_scan_of_lines_cannot_see_is_parsed_whole() {
    // Each edit follows a render that found preprod and prod valid.
    let edits: [(&str, &str); 2] = [
        // A carriage return alone breaks a line: a second `prod`.
        ("\npreprod:", "\rprod:\r  y: 2\npreprod:"),
        // A merge key at the top level supplies a section.
        ("\npreprod:", "\n<<: {prod: {svc_x: {bogus: 1}}}\npreprod:"),
    ];
    for (from, to) in edits {
        let repo = copy_of("article");
        let cache = tempfile::tempdir().unwrap();
        ok(&render_dev(repo.path(), cache.path(), &[]));
        let path = repo.path().join("controlcenter.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let cached = render_dev(repo.path(), cache.path(), &[]);
        let uncached = controlcenter()
            .arg("--repo")
            .arg(repo.path())
            .args(["--no-cache", "render", "--env", "dev"])
            .output()
            .unwrap();
        assert_eq!(cached.status.code(), uncached.status.code(), "{to:?}");
        assert_eq!(cached.stdout, uncached.stdout, "{to:?}");
        let report = |out: &Output| {
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.starts_with("timings:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(report(&cached), report(&uncached), "{to:?}");
    }
}

#[test]
fn a_section_that_ends_the_file_is_not_the_one_before_another() {
    // prod's last value, `git_rev: |`, is a line break at the end of the
    // file, and empty (refused) before another section.
    let repo = tempfile::tempdir().unwrap();
    let cc = "dev:\n  web:\n    git_rev: v1\n    memory_min: 64Mi\n    memory_max: 64Mi\nprod:\n  web:\n    memory_min: 64Mi\n    git_rev: |\n";
    std::fs::write(repo.path().join("controlcenter.yaml"), cc).unwrap();
    std::fs::write(
        repo.path().join("tags.yaml"),
        "web:\n  v1: registry.example.com/web:1\n",
    )
    .unwrap();
    std::fs::write(repo.path().join("env-dev.yaml"), "vpc_id: vpc-1\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    ok(&render_dev(repo.path(), cache.path(), &[]));
    let again = render_dev(repo.path(), cache.path(), &[]);
    assert_eq!(found_valid_before(&again), 1);
    std::fs::write(
        repo.path().join("controlcenter.yaml"),
        format!("{cc}staging:\n  x: 1\n"),
    )
    .unwrap();
    let after = render_dev(repo.path(), cache.path(), &[]);
    assert_eq!(after.status.code(), Some(1), "{}", transcript(&after));
    let stderr = String::from_utf8_lossy(&after.stderr);
    assert!(stderr.contains("prod.web.git_rev"), "{stderr}");
}
