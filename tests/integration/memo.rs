//! Services memoized: a render with a cache leaves unresolved the services
//! whose inputs did not change since a render resolved them, yet any
//! change to what resolving one reads (its entry, its tags, `settings`,
//! `defaults`, the Terraform outputs, the schema) is seen, and a memo whose
//! units left the cache, or that is damaged, is never trusted. Every render
//! is compared with a render without a cache; the count comes from
//! `CONTROLCENTER_TIMINGS`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;

use crate::common::{controlcenter, transcript};

/// Services of the generated repository.
const SERVICES: usize = 40;

/// A repository of [`SERVICES`] services in `dev`, some with an IRSA role
/// from the Terraform outputs, and one in `prod`.
fn generated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cc = String::from("settings:\n  part_of: shop\ndefaults:\n  log_level: info\ndev:\n");
    let mut tags = String::new();
    let mut env = String::from("vpc_id: vpc-1\nirsa_role_arns:\n");
    for i in 0..SERVICES {
        let _ = write!(
            cc,
            "  svc_{i:02}:\n    git_rev: v{i}\n    replicas: 2\n    memory_min: 64Mi\n    memory_max: 64Mi\n    env: {{INDEX: \"{i}\"}}\n"
        );
        let _ = writeln!(tags, "svc_{i:02}:\n  v{i}: registry.example.com/svc:{i}");
        if i % 4 == 0 {
            let _ = writeln!(
                env,
                "  svc_{i:02}: arn:aws:iam::123456789012:role/svc-{i:02}"
            );
        }
    }
    // Another environment after it: once found valid, it is left out of
    // the load, and dev's last entry runs to its key.
    cc.push_str("prod:\n  svc_00:\n    git_rev: v0\n    memory_min: 64Mi\n    memory_max: 64Mi\n");
    std::fs::write(dir.path().join("controlcenter.yaml"), cc).unwrap();
    std::fs::write(dir.path().join("tags.yaml"), tags).unwrap();
    std::fs::write(dir.path().join("env-dev.yaml"), env).unwrap();
    dir
}

/// The command `args` on `repo` with the cache in `cache` (or none),
/// timed.
fn run(repo: &Path, cache: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = controlcenter();
    cmd.arg("--repo").arg(repo).args(args);
    cmd.env("CONTROLCENTER_TIMINGS", "1");
    match cache {
        Some(dir) => cmd.env("CONTROLCENTER_CACHE_DIR", dir),
        None => cmd.arg("--no-cache"),
    };
    cmd.output().unwrap()
}

/// `render --env dev` of `repo` with the cache in `cache` (or none), and
/// `extra` arguments.
fn render(repo: &Path, cache: Option<&Path>, extra: &[&str]) -> Output {
    run(repo, cache, &[&["render", "--env", "dev"], extra].concat())
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", transcript(out));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The count before `what` on the render's timings line.
fn count(out: &Output, what: &str) -> usize {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("timings:"))
        .unwrap_or_else(|| panic!("no timings line\n{}", transcript(out)));
    let end = line.find(what).unwrap();
    line[..end].rsplit(' ').next().unwrap().parse().unwrap()
}

/// Services the render memoized.
fn memoized(out: &Output) -> usize {
    count(out, " services memoized")
}

/// Entries of the section the render found valid before.
fn found_valid(out: &Output) -> usize {
    count(out, " entries found valid before")
}

/// Renders with the cache, checks the output is the one a render without
/// a cache makes, and says how many services were memoized.
fn render_checked(repo: &Path, cache: &Path) -> (usize, String) {
    let warm = render(repo, Some(cache), &[]);
    let cold = render(repo, None, &[]);
    assert_eq!(ok(&warm), ok(&cold), "{}", transcript(&warm));
    (memoized(&warm), ok(&warm))
}

/// Replaces the first `from` after `after` in `file` of `repo`.
fn edit(repo: &Path, file: &str, after: &str, from: &str, to: &str) {
    let path = repo.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .find(after)
        .unwrap_or_else(|| panic!("{after} in {file}"));
    let i = at + text[at..].find(from).unwrap();
    let text = format!("{}{to}{}", &text[..i], &text[i + from.len()..]);
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_service_whose_inputs_did_not_change_is_not_resolved_again_and_any_change_is_seen() {
    let repo = generated();
    let repo = repo.path();
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    let (first, mut before) = render_checked(repo, cache);
    assert_eq!(first, 0);
    assert_eq!(render_checked(repo, cache).0, SERVICES);

    // Each change, and how many services it leaves memoized: the
    // service's own entry, its tags, its entry's text alone (a comment),
    // then what every service reads.
    let changes: [(&str, &str, &str, &str, usize, bool); 9] = [
        // The last entry of dev, before prod's key.
        (
            "controlcenter.yaml",
            "svc_39:",
            "memory_max: 64Mi",
            "memory_max: 65Mi",
            SERVICES - 1,
            true,
        ),
        // A comment before the first key: what comes before the keys is
        // part of every key (a directive would be too).
        (
            "controlcenter.yaml",
            "",
            "settings:",
            "# the shop\nsettings:",
            0,
            false,
        ),
        (
            "controlcenter.yaml",
            "svc_05:",
            "replicas: 2",
            "replicas: 3",
            SERVICES - 1,
            true,
        ),
        (
            "tags.yaml",
            "svc_07:",
            "svc:7",
            "svc:7b",
            SERVICES - 1,
            true,
        ),
        (
            "controlcenter.yaml",
            "svc_09:",
            "replicas: 2",
            "replicas: 2 # two",
            SERVICES - 1,
            false,
        ),
        (
            "env-dev.yaml",
            "svc_04:",
            "role/svc-04",
            "role/other",
            0,
            true,
        ),
        (
            "controlcenter.yaml",
            "defaults:",
            "log_level: info",
            "log_level: info\n  svc_11: {port: 9090}",
            0,
            true,
        ),
        (
            "controlcenter.yaml",
            "settings:",
            "part_of: shop",
            "part_of: shop2",
            0,
            true,
        ),
        (
            "controlcenter.yaml",
            "dev:",
            "dev:\n",
            "dev:\n  namespace: shop\n",
            0,
            true,
        ),
    ];
    for (file, after, from, to, left, changes_output) in changes {
        edit(repo, file, after, from, to);
        let (count, output) = render_checked(repo, cache);
        assert_eq!(count, left, "after changing {from} to {to} in {file}");
        assert_eq!(
            output != before,
            changes_output,
            "after changing {from} to {to} in {file}"
        );
        before = output;
        // And the render after it takes every service from the memo.
        assert_eq!(render_checked(repo, cache).0, SERVICES);
    }

    // A service added: every unit sees the services' names, so each is
    // evaluated again, its service resolved again.
    edit(
        repo,
        "controlcenter.yaml",
        "dev:",
        "  svc_00:",
        "  svc_new:\n    git_rev: v0\n    memory_min: 64Mi\n    memory_max: 64Mi\n  svc_00:",
    );
    edit(
        repo,
        "tags.yaml",
        "",
        "svc_00:",
        "svc_new:\n  v0: registry.example.com/new:0\nsvc_00:",
    );
    let (count, _) = render_checked(repo, cache);
    assert_eq!(count, 0);
    assert_eq!(render_checked(repo, cache).0, SERVICES + 1);
}

#[test]
fn a_memo_whose_units_left_the_cache_or_that_is_damaged_is_not_trusted() {
    let repo = generated();
    let repo = repo.path();
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    render_checked(repo, cache);
    assert_eq!(render_checked(repo, cache).0, SERVICES);

    // The units are gone, the memo stays: its services are resolved
    // again (the render says none was memoized), and stored.
    std::fs::remove_dir_all(cache.join("packs")).unwrap();
    edit(
        repo,
        "controlcenter.yaml",
        "svc_03:",
        "replicas: 2",
        "replicas: 4",
    );
    assert_eq!(render_checked(repo, cache).0, 0);
    assert_eq!(render_checked(repo, cache).0, SERVICES);

    // Damaged memos: cut short, a byte changed, or not a file.
    let memos: Vec<_> = std::fs::read_dir(cache.join("memos"))
        .unwrap()
        .flatten()
        .map(|f| f.path())
        .collect();
    assert_eq!(memos.len(), 1);
    let memo = &memos[0];
    let bytes = std::fs::read(memo).unwrap();
    let flipped = {
        let mut b = bytes.clone();
        let at = b.len() / 2;
        b[at] ^= 1;
        b
    };
    for damaged in [bytes[..bytes.len() - 10].to_vec(), flipped, Vec::new()] {
        std::fs::write(memo, damaged).unwrap();
        assert_eq!(render_checked(repo, cache).0, 0);
        // Written again whole.
        assert_eq!(render_checked(repo, cache).0, SERVICES);
    }
    std::fs::remove_file(memo).unwrap();
    std::fs::create_dir(memo).unwrap();
    assert_eq!(render_checked(repo, cache).0, 0);
}

#[test]
fn nothing_is_memoized_that_an_alias_a_secret_field_or_a_selection_reaches() {
    let cases: [(&str, &str, &str, &str); 3] = [
        // An anchor in a service (an alias could copy it elsewhere), in
        // tags.yaml, and a merge key.
        (
            "controlcenter.yaml",
            "svc_01:",
            "replicas: 2",
            "replicas: &two 2",
        ),
        ("tags.yaml", "svc_01:", "v1:", "v1: &image"),
        (
            "controlcenter.yaml",
            "svc_02:",
            "replicas: 2",
            "<<: {port: 8081}\n    replicas: 2",
        ),
    ];
    for (file, after, from, to) in cases {
        let repo = generated();
        let cache = tempfile::tempdir().unwrap();
        edit(repo.path(), file, after, from, to);
        ok(&render(repo.path(), Some(cache.path()), &[]));
        let second = render(repo.path(), Some(cache.path()), &[]);
        assert_eq!(memoized(&second), 0, "{from} → {to} in {file}");
        assert_eq!(ok(&second), ok(&render(repo.path(), None, &[])));
    }

    // A secret (writeOnly) field in the schema: nothing is memoized.
    let repo = generated();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("schemas")).unwrap();
    std::fs::write(
        repo.path().join("schemas/service.schema.json"),
        r#"{"properties": {"token": {"type": "string", "writeOnly": true}}}"#,
    )
    .unwrap();
    render(repo.path(), Some(cache.path()), &[]);
    let again = render(repo.path(), Some(cache.path()), &[]);
    assert_eq!(memoized(&again), 0, "{}", transcript(&again));

    // controlcenter.d/ parts: a part can add to any section, so nothing
    // is memoized, and a change to a part is seen.
    let repo = generated();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir(repo.path().join("controlcenter.d")).unwrap();
    let part = repo.path().join("controlcenter.d/team.yaml");
    std::fs::write(&part, "defaults:\n  svc_03: {port: 9000}\n").unwrap();
    render(repo.path(), Some(cache.path()), &[]);
    let before = render(repo.path(), Some(cache.path()), &[]);
    assert_eq!(memoized(&before), 0, "{}", transcript(&before));
    std::fs::write(&part, "defaults:\n  svc_03: {port: 9001}\n").unwrap();
    let after = render(repo.path(), Some(cache.path()), &[]);
    assert_eq!(memoized(&after), 0, "{}", transcript(&after));
    assert_ne!(ok(&after), ok(&before));
    assert_eq!(ok(&after), ok(&render(repo.path(), None, &[])));

    // A selection resolves the services it renders, and no memo.
    let repo = generated();
    let cache = tempfile::tempdir().unwrap();
    render(repo.path(), Some(cache.path()), &[]);
    let one = render(repo.path(), Some(cache.path()), &["--service", "svc_01"]);
    assert_eq!(
        ok(&one),
        ok(&render(repo.path(), None, &["--service", "svc_01"]))
    );
}

/// Stderr without the timings line.
fn problems(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("timings:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_entry_found_valid_before_is_not_validated_again_and_a_change_to_it_is() {
    let repo = generated();
    let repo = repo.path();
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    let first = render(repo, Some(cache), &[]);
    assert_eq!(found_valid(&first), 0, "{}", transcript(&first));
    let again = render(repo, Some(cache), &[]);
    assert_eq!(found_valid(&again), SERVICES, "{}", transcript(&again));

    // A broken entry is refused, as without a cache; fixed, it is the one
    // entry validated again.
    edit(
        repo,
        "controlcenter.yaml",
        "svc_05:",
        "replicas: 2",
        "replica: 2",
    );
    let broken = render(repo, Some(cache), &[]);
    let uncached = render(repo, None, &[]);
    assert_eq!(broken.status.code(), Some(1), "{}", transcript(&broken));
    assert_eq!(uncached.status.code(), Some(1));
    assert_eq!(problems(&broken), problems(&uncached));
    assert!(problems(&broken).contains("unknown field `replica`"));
    edit(
        repo,
        "controlcenter.yaml",
        "svc_05:",
        "replica: 2",
        "replicas: 3",
    );
    let fixed = render(repo, Some(cache), &[]);
    assert_eq!(found_valid(&fixed), SERVICES - 1, "{}", transcript(&fixed));
    assert_eq!(ok(&fixed), ok(&render(repo, None, &[])));

    // An entry found valid under a schema extension that admitted its
    // field is validated again once the extension changes.
    std::fs::create_dir_all(repo.join("schemas")).unwrap();
    let schema = repo.join("schemas/service.schema.json");
    std::fs::write(&schema, r#"{"properties": {"team": {"type": "string"}}}"#).unwrap();
    edit(
        repo,
        "controlcenter.yaml",
        "svc_06:",
        "replicas: 2",
        "replicas: 2\n    team: a",
    );
    ok(&render(repo, Some(cache), &[]));
    let known = render(repo, Some(cache), &[]);
    assert_eq!(found_valid(&known), SERVICES, "{}", transcript(&known));
    std::fs::write(&schema, r#"{"properties": {"owner": {"type": "string"}}}"#).unwrap();
    let refused = render(repo, Some(cache), &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", transcript(&refused));
    assert!(problems(&refused).contains("unknown field `team`"));
    assert_eq!(problems(&refused), problems(&render(repo, None, &[])));
}

#[test]
fn a_service_whose_unit_is_never_stored_is_not_memoized_again() {
    // svc_01's objects hold a sensitive Terraform output's value in clear:
    // its unit is never stored.
    let repo = generated();
    let repo = repo.path();
    let env = repo.join("env-dev.yaml");
    let mut outputs = std::fs::read_to_string(&env).unwrap();
    outputs.push_str("db_password:\n  value: hunter2hunter2\n  sensitive: true\n");
    std::fs::write(&env, outputs).unwrap();
    edit(
        repo,
        "controlcenter.yaml",
        "svc_01:",
        "env: {",
        "env: {PW: hunter2hunter2, ",
    );
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    assert_eq!(render_checked(repo, cache).0, 0);
    // Left out of the memo: memoized, its unit would never be found, and
    // every render would resolve every service again.
    for _ in 0..2 {
        assert_eq!(render_checked(repo, cache).0, SERVICES - 1);
    }
}

#[test]
fn repositories_sharing_a_cache_keep_a_memo_each() {
    let a = generated();
    let b = generated();
    edit(
        b.path(),
        "controlcenter.yaml",
        "settings:",
        "part_of: shop",
        "part_of: other",
    );
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    for repo in [a.path(), b.path()] {
        render_checked(repo, cache);
    }
    for repo in [a.path(), b.path(), a.path()] {
        assert_eq!(render_checked(repo, cache).0, SERVICES);
    }
}

/// An entry point that fails for a service with 13 replicas.
const FAILS_AT_13: &str = "local cc = import 'controlcenter/lib.libsonnet';\nfunction(state)\n  local own = if std.objectHas(state, 'unit_service') then state.services[state.unit_service] else null;\n  assert own == null || own.replicas != 13 : 'thirteen replicas';\n  cc.new(state).manifests\n";

#[test]
fn a_render_that_fails_beside_memoized_services_fails_as_without_a_cache() {
    let repo = generated();
    let repo = repo.path();
    std::fs::create_dir_all(repo.join("jsonnet")).unwrap();
    std::fs::write(repo.join("jsonnet/main.jsonnet"), FAILS_AT_13).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    render_checked(repo, cache);
    assert_eq!(render_checked(repo, cache).0, SERVICES);
    // A unit that fails; a policy the objects break; each fixed after.
    let failures = [
        (
            "svc_07:",
            "replicas: 2",
            "replicas: 13",
            "thirteen replicas",
        ),
        (
            "svc_08:",
            "    memory_max: 64Mi\n",
            "",
            "has no memory limit",
        ),
    ];
    let path = repo.join("controlcenter.yaml");
    for (after, from, to, message) in failures {
        let before = std::fs::read_to_string(&path).unwrap();
        edit(repo, "controlcenter.yaml", after, from, to);
        let warm = render(repo, Some(cache), &[]);
        let cold = render(repo, None, &[]);
        assert_eq!(warm.status.code(), Some(1), "{}", transcript(&warm));
        assert_eq!(cold.status.code(), Some(1));
        assert!(problems(&warm).contains(message), "{}", transcript(&warm));
        assert_eq!(problems(&warm), problems(&cold));
        assert_eq!(warm.stdout, cold.stdout);
        std::fs::write(&path, before).unwrap();
        let (_, fixed) = render_checked(repo, cache);
        assert!(!fixed.is_empty());
    }
    assert_eq!(render_checked(repo, cache).0, SERVICES);
}

#[test]
fn an_empty_block_scalar_at_the_end_of_the_file_is_not_the_one_before_a_key() {
    // `FOO: |` reads as a line break at the end of the file, and as empty
    // before another key: the same text, another value.
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path();
    let service = "dev:\n  web:\n    git_rev: v1\n    memory_min: 64Mi\n    memory_max: 64Mi\n    env:\n      FOO: |\n";
    std::fs::write(repo.join("controlcenter.yaml"), service).unwrap();
    std::fs::write(
        repo.join("tags.yaml"),
        "web:\n  v1: registry.example.com/web:1\n",
    )
    .unwrap();
    std::fs::write(repo.join("env-dev.yaml"), "vpc_id: vpc-1\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    let (_, at_end) = render_checked(repo, cache);
    render_checked(repo, cache);
    // A section after it, then none again.
    let with_prod = format!("{service}prod:\n  x: 1\n");
    std::fs::write(repo.join("controlcenter.yaml"), &with_prod).unwrap();
    let (_, before_key) = render_checked(repo, cache);
    assert_ne!(at_end, before_key);
    std::fs::write(repo.join("controlcenter.yaml"), service).unwrap();
    assert_eq!(render_checked(repo, cache).1, at_end);

    // Validation: a field that may not be empty, empty only before a key.
    std::fs::create_dir_all(repo.join("schemas")).unwrap();
    std::fs::write(
        repo.join("schemas/service.schema.json"),
        r#"{"properties": {"team": {"type": "string", "minLength": 2}}}"#,
    )
    .unwrap();
    let team = service.replace("    env:\n      FOO: |\n", "    team: |\n");
    std::fs::write(repo.join("controlcenter.yaml"), &team).unwrap();
    let first = render(repo, Some(cache), &[]);
    let again = render(repo, Some(cache), &[]);
    assert_eq!(first.status.code(), again.status.code());
    std::fs::write(
        repo.join("controlcenter.yaml"),
        format!("{team}prod:\n  x: 1\n"),
    )
    .unwrap();
    let warm = render(repo, Some(cache), &[]);
    let cold = render(repo, None, &[]);
    assert_eq!(cold.status.code(), Some(1), "{}", transcript(&cold));
    assert_eq!(warm.status.code(), Some(1), "{}", transcript(&warm));
    assert_eq!(problems(&warm), problems(&cold));
}

/// `validate --env dev` of `repo` with the cache in `cache` (or none).
fn validate(repo: &Path, cache: Option<&Path>) -> Output {
    run(repo, cache, &["validate", "--env", "dev"])
}

#[test]
fn validate_uses_the_memo_and_says_what_it_says_without_a_cache() {
    let repo = generated();
    let repo = repo.path();
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    let same = |repo: &Path| {
        let warm = validate(repo, Some(cache));
        let cold = validate(repo, None);
        assert_eq!(
            warm.status.code(),
            cold.status.code(),
            "{}",
            transcript(&warm)
        );
        assert_eq!(warm.stdout, cold.stdout);
        assert_eq!(problems(&warm), problems(&cold));
        warm.status.code()
    };
    assert_eq!(same(repo), Some(0));
    assert_eq!(same(repo), Some(0));
    // What validate stored, a render takes.
    assert_eq!(render_checked(repo, cache).0, SERVICES);
    edit(
        repo,
        "controlcenter.yaml",
        "svc_05:",
        "replicas: 2",
        "replica: 2",
    );
    assert_eq!(same(repo), Some(1));
    edit(
        repo,
        "controlcenter.yaml",
        "svc_05:",
        "replica: 2",
        "replicas: 3",
    );
    assert_eq!(same(repo), Some(0));
    assert_eq!(render_checked(repo, cache).0, SERVICES);
}
