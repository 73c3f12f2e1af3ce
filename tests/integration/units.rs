//! Evaluation units and the cache: per-service, single-worker and
//! whole-environment renders agree byte for byte; the cache hits, misses
//! when a template changes, survives damage and concurrent use; a unit
//! that reads another service fails clearly; `--service` and
//! `controlcenter.d/` work. Unit counts come from `CONTROLCENTER_TIMINGS`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{self, controlcenter, transcript};

/// A copy of `src` in a new temporary directory.
fn copy_repo(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(src, dir.path());
    dir
}

/// Makes `main` the entry point of `repo`.
fn set_entry_point(repo: &Path, main: &str) {
    std::fs::create_dir_all(repo.join("jsonnet")).unwrap();
    std::fs::write(repo.join("jsonnet/main.jsonnet"), main).unwrap();
}

/// A copy of the example `name` whose entry point is `main`.
fn example_with_entry_point(name: &str, main: &str) -> tempfile::TempDir {
    let repo = copy_repo(&common::root().join("controlcenter-examples").join(name));
    set_entry_point(repo.path(), main);
    repo
}

/// A repository of `n` services in `dev`, with HPAs, PDBs, ingresses,
/// secrets and a sealed secret.
fn generated(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cc = String::from("dev:\n");
    let mut tags = String::new();
    for i in 0..n {
        let _ = write!(
            cc,
            "  svc_{i:04}:\n    git_rev: v{i}\n    replicas: 2\n    memory_min: 64Mi\n    memory_max: 64Mi\n    env: {{INDEX: \"{i}\"}}\n    flags: {{newCheckout: true}}\n"
        );
        if i % 3 == 0 {
            let _ = write!(
                cc,
                "    autoscaling: {{min_replicas: 2, max_replicas: 4}}\n    cpu_min: 100m\n    disruption_budget: {{min_available: 1}}\n    ingress: {{host: s{i}.example.com}}\n    secrets: {{TOKEN: {{store: vault, key: t/{i}}}}}\n"
            );
        }
        let _ = writeln!(tags, "svc_{i:04}:\n  v{i}: registry.example.com/svc:{i}");
    }
    std::fs::write(dir.path().join("controlcenter.yaml"), cc).unwrap();
    std::fs::write(dir.path().join("tags.yaml"), tags).unwrap();
    std::fs::write(dir.path().join("env-dev.yaml"), "vpc: vpc-1\n").unwrap();
    dir
}

/// `render --env ENV` of `repo` with the cache in `cache` (or none).
fn render(repo: &Path, env: &str, cache: Option<&Path>, extra: &[&str]) -> Output {
    let mut cmd = controlcenter();
    cmd.arg("--repo").arg(repo).args(["render", "--env", env]);
    cmd.args(extra).env("CONTROLCENTER_TIMINGS", "1");
    match cache {
        Some(dir) => cmd.env("CONTROLCENTER_CACHE_DIR", dir),
        None => cmd.arg("--no-cache"),
    };
    cmd.output().unwrap()
}

/// (units evaluated, units cached) of a render.
fn units(out: &Output) -> (usize, usize) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("timings:"))
        .unwrap_or_else(|| panic!("no timings line\n{}", transcript(out)));
    let number = |after: &str| -> usize {
        let end = line.find(after).unwrap();
        line[..end]
            .rsplit(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (number(" units evaluated"), number(" cached"))
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", transcript(out));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn set_evaluation(repo: &Path, mode: &str) {
    let path = repo.join("controlcenter.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = match text.find("settings:\n") {
        Some(i) => format!(
            "{}settings:\n  evaluation: {mode}\n{}",
            &text[..i],
            &text[i + "settings:\n".len()..]
        ),
        None => format!("settings:\n  evaluation: {mode}\n{text}"),
    };
    std::fs::write(path, text).unwrap();
}

#[test]
fn parallel_single_worker_and_whole_environment_renders_are_identical() {
    let big = generated(1000);
    let mut repos: Vec<(PathBuf, String)> = Vec::new();
    for example in common::examples() {
        for env in common::envs_of(&example) {
            repos.push((example.clone(), env));
        }
    }
    repos.push((big.path().to_path_buf(), "dev".to_owned()));
    for (repo, env) in repos {
        let parallel = ok(&render(&repo, &env, None, &["--jobs", "2"]));
        let single = ok(&render(&repo, &env, None, &["--jobs", "1"]));
        let whole = copy_repo(&repo);
        set_evaluation(whole.path(), "environment");
        let whole_out = render(whole.path(), &env, None, &[]);
        assert_eq!(units(&whole_out).0, 1, "{}", transcript(&whole_out));
        let whole_out = ok(&whole_out);
        assert!(!parallel.is_empty());
        assert!(
            parallel == single,
            "{}/{env}: -j2 and -j1 differ",
            repo.display()
        );
        assert!(
            parallel == whole_out,
            "{}/{env}: per-service and whole-environment differ",
            repo.display()
        );
    }
}

#[test]
fn the_cache_hits_misses_on_template_changes_and_survives_damage() {
    let repo = copy_repo(&common::root().join("controlcenter-examples/platform"));
    let cache = tempfile::tempdir().unwrap();
    let lib = copy_repo(&common::root().join("lib-jsonnet"));
    let lib_arg = lib.path().to_str().unwrap().to_owned();
    let lib_args = ["--lib", lib_arg.as_str()];
    let reference = ok(&render(repo.path(), "prod", None, &lib_args));

    let cold = render(repo.path(), "prod", Some(cache.path()), &lib_args);
    let (evaluated, cached) = units(&cold);
    assert!(evaluated > 1 && cached == 0, "{}", transcript(&cold));
    assert_eq!(ok(&cold), reference);
    // Files per render, not per unit: the units, then (the render being
    // clean) the records of what was made of them.
    let packs = std::fs::read_dir(cache.path().join("packs")).unwrap();
    assert_eq!(packs.count(), 2);

    let warm = render(repo.path(), "prod", Some(cache.path()), &lib_args);
    assert_eq!(units(&warm), (0, evaluated), "{}", transcript(&warm));
    assert_eq!(ok(&warm), reference);

    // One service changes: one unit is evaluated.
    let cc = repo.path().join("controlcenter.yaml");
    let text = std::fs::read_to_string(&cc).unwrap();
    let (section, rest) = text.split_at(text.find("\nprod:\n").unwrap());
    let first_replicas = rest.find("replicas: ").unwrap();
    let mut changed = rest.to_owned();
    changed.replace_range(
        first_replicas..first_replicas + "replicas: ".len() + 1,
        "replicas: 7",
    );
    std::fs::write(&cc, format!("{section}{changed}")).unwrap();
    let one = render(repo.path(), "prod", Some(cache.path()), &lib_args);
    assert_eq!(units(&one), (1, evaluated - 1), "{}", transcript(&one));
    assert_eq!(ok(&one), ok(&render(repo.path(), "prod", None, &lib_args)));
    std::fs::write(&cc, &text).unwrap();

    // A library change (even a comment) misses every unit.
    let util = lib.path().join("controlcenter/util.libsonnet");
    let mut lib_text = std::fs::read_to_string(&util).unwrap();
    lib_text.push_str("// changed\n");
    std::fs::write(&util, &lib_text).unwrap();
    let after_lib = render(repo.path(), "prod", Some(cache.path()), &lib_args);
    assert_eq!(
        units(&after_lib),
        (evaluated, 0),
        "{}",
        transcript(&after_lib)
    );
    assert_eq!(ok(&after_lib), reference);

    // So does a change to the repository's Jsonnet.
    let policy = repo.path().join("jsonnet/networkpolicy.libsonnet");
    let mut np = std::fs::read_to_string(&policy).unwrap();
    np.push_str("// changed\n");
    std::fs::write(&policy, np).unwrap();
    let after_repo = render(repo.path(), "prod", Some(cache.path()), &lib_args);
    assert_eq!(
        units(&after_repo),
        (evaluated, 0),
        "{}",
        transcript(&after_repo)
    );
    assert_eq!(ok(&after_repo), reference);

    // Damaged entries are never trusted: evaluated again, and rewritten.
    let mut damaged = 0;
    for pack in std::fs::read_dir(cache.path().join("packs"))
        .unwrap()
        .flatten()
    {
        let bytes = std::fs::read(pack.path()).unwrap();
        let bad = match damaged % 3 {
            0 => bytes[..bytes.len() / 2].to_vec(),
            1 => bytes
                .iter()
                .map(|b| if *b == b'a' { b'b' } else { *b })
                .collect(),
            _ => b"{\"kind\": \"Secret\"}\n".to_vec(),
        };
        std::fs::write(pack.path(), bad).unwrap();
        damaged += 1;
    }
    assert!(damaged > 0);
    let repaired = render(repo.path(), "prod", Some(cache.path()), &lib_args);
    assert_eq!(
        units(&repaired),
        (evaluated, 0),
        "{}",
        transcript(&repaired)
    );
    assert_eq!(ok(&repaired), reference);
    let again = render(repo.path(), "prod", Some(cache.path()), &lib_args);
    assert_eq!(units(&again), (0, evaluated), "{}", transcript(&again));
}

/// A policy every Deployment of `prod` breaks.
const NO_DEPLOYMENTS: &str = "name: no-deployments\nmessage: no Deployments here\nenvs: [prod]\nkinds: [Deployment]\nschema: {not: {}}\n";

#[test]
fn objects_taken_from_the_cache_are_checked_again_when_the_checks_change() {
    let repo = copy_repo(&common::root().join("controlcenter-examples/platform"));
    let cache = tempfile::tempdir().unwrap();
    let reference = ok(&render(repo.path(), "prod", None, &[]));
    let cold = render(repo.path(), "prod", Some(cache.path()), &[]);
    let (evaluated, _) = units(&cold);
    assert_eq!(ok(&cold), reference);
    // Warm: every unit and what was made of it from the cache, the same
    // bytes; nothing new to keep, so nothing written.
    let packs = || {
        std::fs::read_dir(cache.path().join("packs"))
            .unwrap()
            .count()
    };
    let written = packs();
    let warm = render(repo.path(), "prod", Some(cache.path()), &[]);
    assert_eq!(units(&warm), (0, evaluated), "{}", transcript(&warm));
    assert_eq!(ok(&warm), reference);
    assert_eq!(packs(), written);
    let warm = render(
        repo.path(),
        "prod",
        Some(cache.path()),
        &["--format", "json"],
    );
    assert_eq!(
        ok(&warm),
        ok(&render(repo.path(), "prod", None, &["--format", "json"]))
    );

    // A new policy of the repository: the cached objects break it.
    std::fs::create_dir_all(repo.path().join("policies")).unwrap();
    std::fs::write(repo.path().join("policies/no.yaml"), NO_DEPLOYMENTS).unwrap();
    let out = render(repo.path(), "prod", Some(cache.path()), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Deployments here"));
    // Switched off in the settings: the render passes again, from the
    // cache.
    let cc = repo.path().join("controlcenter.yaml");
    let text = std::fs::read_to_string(&cc).unwrap();
    let off = text.replacen(
        "settings:\n",
        "settings:\n  policies:\n    no-deployments: false\n",
        1,
    );
    assert_ne!(off, text, "the example has settings");
    std::fs::write(&cc, off).unwrap();
    let out = render(repo.path(), "prod", Some(cache.path()), &[]);
    assert_eq!(units(&out), (0, evaluated), "{}", transcript(&out));
    assert_eq!(ok(&out), reference);
}

#[test]
fn a_file_created_where_an_import_looked_in_vain_is_a_miss() {
    let repo = copy_repo(&common::root().join("controlcenter-examples/article"));
    let cache = tempfile::tempdir().unwrap();
    let dir = repo.path();
    std::fs::create_dir_all(dir.join("jsonnet")).unwrap();
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(
        dir.join("jsonnet/main.jsonnet"),
        "local cc = import 'controlcenter/lib.libsonnet';\nlocal x = import 'a/x.libsonnet';\nfunction(state) (cc.new(state) + { deployment(svc):: super.deployment(svc) + { metadata+: { annotations+: { marker: x.v } } } }).manifests\n",
    )
    .unwrap();
    // `a/x.libsonnet` imports `y.libsonnet`: not beside it, so from the
    // repository's root.
    std::fs::write(dir.join("a/x.libsonnet"), "(import 'y.libsonnet')\n").unwrap();
    std::fs::write(dir.join("y.libsonnet"), "{ v: 'root' }\n").unwrap();
    assert!(ok(&render(dir, "prod", Some(cache.path()), &[])).contains("marker: root"));
    // Now one beside it: what the import means changed.
    std::fs::write(dir.join("a/y.libsonnet"), "{ v: 'beside' }\n").unwrap();
    let out = render(dir, "prod", Some(cache.path()), &[]);
    assert!(ok(&out).contains("marker: beside"), "{}", transcript(&out));
    assert_eq!(ok(&out), ok(&render(dir, "prod", None, &[])));
}

#[test]
fn a_field_that_turns_secret_misses_and_the_call_depth_is_part_of_the_key() {
    let repo = copy_repo(&common::root().join("controlcenter-examples/platform"));
    let cache = tempfile::tempdir().unwrap();
    let dir = repo.path();
    let edit = |path: &str, from: &str, to: &str| {
        let text = std::fs::read_to_string(dir.join(path)).unwrap();
        assert!(text.contains(from), "{path}");
        std::fs::write(dir.join(path), text.replacen(from, to, 1)).unwrap();
    };
    edit(
        "schemas/service.schema.json",
        "\"properties\": {",
        "\"properties\": {\n    \"token\": {\"type\": \"string\"},",
    );
    edit(
        "controlcenter.yaml",
        "\n  api_gateway:\n    git_rev: v2.13.1\n",
        "\n  api_gateway:\n    git_rev: v2.13.1\n    token: tok-0123456789abcdef\n",
    );
    let cold = render(dir, "prod", Some(cache.path()), &[]);
    let (evaluated, _) = units(&cold);
    assert_eq!(
        units(&render(dir, "prod", Some(cache.path()), &[])),
        (0, evaluated)
    );
    // Marked secret, same value: that service's unit is evaluated again.
    edit(
        "schemas/service.schema.json",
        "{\"type\": \"string\"}",
        "{\"type\": \"string\", \"writeOnly\": true}",
    );
    let out = render(dir, "prod", Some(cache.path()), &[]);
    assert_eq!(units(&out), (1, evaluated - 1), "{}", transcript(&out));

    // A call depth too small fails from a warm cache as it does without.
    let shallow = ["--max-stack", "3"];
    let cold = render(dir, "prod", None, &shallow);
    assert_eq!(cold.status.code(), Some(1), "{}", transcript(&cold));
    let warm = render(dir, "prod", Some(cache.path()), &shallow);
    assert_eq!(warm.status.code(), Some(1), "{}", transcript(&warm));
}

#[test]
fn renders_of_one_service_never_push_the_others_out_of_the_cache() {
    let repo = copy_repo(&common::root().join("controlcenter-examples/platform"));
    let cache = tempfile::tempdir().unwrap();
    let full = render(repo.path(), "prod", Some(cache.path()), &[]);
    let (evaluated, _) = units(&full);
    // Many one-service renders, each of a new revision of that service:
    // each stores a pack, more than the cache keeps.
    let cc = repo.path().join("controlcenter.yaml");
    let text = std::fs::read_to_string(&cc).unwrap();
    let at = text.find("\nprod:\n").unwrap()
        + text[text.find("\nprod:\n").unwrap()..]
            .find("  api_gateway:\n    git_rev: v2.13.1\n    replicas: 3")
            .unwrap();
    for replicas in 10..22 {
        let mut changed = text.clone();
        let line = "  api_gateway:\n    git_rev: v2.13.1\n    replicas: 3";
        changed.replace_range(
            at..at + line.len(),
            &format!("  api_gateway:\n    git_rev: v2.13.1\n    replicas: {replicas}"),
        );
        std::fs::write(&cc, changed).unwrap();
        let one = render(
            repo.path(),
            "prod",
            Some(cache.path()),
            &["--service", "api_gateway"],
        );
        assert_eq!(units(&one).0, 1, "{}", transcript(&one));
    }
    let packs = std::fs::read_dir(cache.path().join("packs")).unwrap();
    assert!(packs.count() <= 8);
    // The full render finds every unit: the others were carried forward.
    let again = render(repo.path(), "prod", Some(cache.path()), &[]);
    assert_eq!(units(&again), (0, evaluated), "{}", transcript(&again));
}

#[test]
fn two_processes_share_one_cache_directory() {
    let repo = generated(200);
    let cache = tempfile::tempdir().unwrap();
    let reference = ok(&render(repo.path(), "dev", None, &[]));
    let spawn = || {
        controlcenter()
            .arg("--repo")
            .arg(repo.path())
            .args(["render", "--env", "dev"])
            .env("CONTROLCENTER_CACHE_DIR", cache.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    for _ in 0..3 {
        let (a, b) = (spawn(), spawn());
        assert_eq!(ok(&a.wait_with_output().unwrap()), reference);
        assert_eq!(ok(&b.wait_with_output().unwrap()), reference);
    }
    let warm = render(repo.path(), "dev", Some(cache.path()), &[]);
    assert_eq!(units(&warm).0, 0, "{}", transcript(&warm));
    assert_eq!(ok(&warm), reference);
    // No temporary file is left behind.
    for pack in std::fs::read_dir(cache.path().join("packs"))
        .unwrap()
        .flatten()
    {
        assert!(!pack.file_name().to_string_lossy().starts_with(".tmp-"));
    }
}

/// A repo entry point whose objects read another service.
const READS_ANOTHER_SERVICE: &str = "local cc = import 'controlcenter/lib.libsonnet';\nfunction(state)\n  (cc.new(state) + {\n    configMap(svc):: super.configMap(svc) + { data+: { PEER: state.services.service_common.name } },\n  }).manifests\n";

#[test]
fn a_template_that_reads_another_service_fails_clearly_unless_the_environment_is_whole() {
    let repo = example_with_entry_point("article", READS_ANOTHER_SERVICE);
    let out = render(repo.path(), "dev", None, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(repo.path().to_str().unwrap(), "[REPO]");
    let stderr: String = stderr
        .lines()
        .filter(|l| !l.starts_with("timings:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(stderr.contains("another service"), "{stderr}");
    assert!(
        stderr.contains("settings.evaluation: environment"),
        "{stderr}"
    );
    insta::assert_snapshot!("reads-another-service", stderr);
    // Selected alone, the service still learns that the field it lacks
    // is another service's.
    let out = render(repo.path(), "dev", None, &["--service", "service_rpps"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`service_common` is another service"),
        "{stderr}"
    );

    set_evaluation(repo.path(), "environment");
    let out = render(repo.path(), "dev", None, &[]);
    assert!(ok(&out).contains("PEER: service-common"));
}

#[test]
fn traces_of_units_evaluated_at_once_come_in_unit_order() {
    let repo = generated(40);
    set_entry_point(
        repo.path(),
        "local cc = import 'controlcenter/lib.libsonnet';\nfunction(state)\n  (cc.new(state) + {\n    serviceManifests(svc):: std.trace('unit ' + svc.key, super.serviceManifests(svc)),\n    extraManifests:: std.trace('environment', []),\n  }).manifests\n",
    );
    let traces = |extra: &[&str]| -> String {
        let out = render(repo.path(), "dev", None, extra);
        ok(&out);
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("TRACE:"))
            .map(|l| format!("{}\n", l.rsplit(' ').next().unwrap()))
            .collect()
    };
    let expected: String = (0..40)
        .map(|i| format!("svc_{i:04}\n"))
        .chain(["environment\n".to_owned()])
        .collect();
    for _ in 0..4 {
        assert_eq!(traces(&["--jobs", "2"]), expected);
    }
    assert_eq!(traces(&["--jobs", "1"]), expected);
}

#[test]
fn traces_before_a_unit_runs_out_of_time_are_printed_in_order() {
    let repo = generated(4);
    set_entry_point(
        repo.path(),
        "local cc = import 'controlcenter/lib.libsonnet';\nfunction(state)\n  (cc.new(state) + {\n    serviceManifests(svc):: std.trace('unit ' + svc.key, if svc.key == 'svc_0001' then [std.foldl(function(a, b) a + b, std.range(1, 1000000000), 0)] else super.serviceManifests(svc)),\n  }).manifests\n",
    );
    let out = render(repo.path(), "dev", None, &["--timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = |key: &str| stderr.find(&format!("unit {key}\n"));
    let (first, stuck) = (at("svc_0000"), at("svc_0001"));
    assert!(
        first.is_some() && stuck.is_some() && first < stuck,
        "{stderr}"
    );
    if let Some(later) = at("svc_0002") {
        assert!(stuck < Some(later), "{stderr}");
    }
}

#[test]
fn environment_level_objects_see_the_services_names_only_in_per_service_mode() {
    let repo = copy_repo(&common::root().join("controlcenter-examples/article"));
    std::fs::create_dir_all(repo.path().join("jsonnet")).unwrap();
    let main = repo.path().join("jsonnet/main.jsonnet");
    let entry = |data: &str| {
        format!("local cc = import 'controlcenter/lib.libsonnet';\nfunction(state)\n  (cc.new(state) + {{\n    extraManifests:: [{{ apiVersion: 'v1', kind: 'ConfigMap', metadata: {{ name: 'count', namespace: state.namespace }}, data: {data} }}],\n  }}).manifests\n")
    };
    // How many services there are: the whole environment's answer.
    std::fs::write(
        &main,
        entry("{ count: std.toString(std.length(state.services)) }"),
    )
    .unwrap();
    assert!(ok(&render(repo.path(), "dev", None, &[])).contains("count: \"2\""));
    // What one of them holds: not visible.
    std::fs::write(&main, entry("{ peer: state.services.service_rpps.name }")).unwrap();
    let out = render(repo.path(), "dev", None, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the state of service `service_rpps` is not visible to this unit"),
        "{stderr}"
    );
    assert!(
        stderr.contains("environment-level objects (SealedSecrets, extraManifests) see the environment and the services' names only"),
        "{stderr}"
    );
    assert!(stderr.contains("jsonnet/main.jsonnet:4:"), "{stderr}");
    set_evaluation(repo.path(), "environment");
    assert!(ok(&render(repo.path(), "dev", None, &[])).contains("peer: service-rpps"));
}

#[test]
fn what_a_unit_sees_of_other_services_is_the_whole_environment_s_or_an_error() {
    // Names, counts and tests of a name need no other service's state:
    // per service, as one, or as a whole environment, the same objects.
    let repo = example_with_entry_point(
        "article",
        "local cc = import 'controlcenter/lib.libsonnet';\nfunction(state) (cc.new(state) + {\n  serviceManifests(svc):: super.serviceManifests(svc) + [{\n    apiVersion: 'v1', kind: 'ConfigMap',\n    metadata: { name: svc.name + '-peers', namespace: state.namespace, labels: { 'app.kubernetes.io/name': svc.name } },\n    data: {\n      count: std.toString(std.length(state.services)),\n      has_common: std.toString(std.objectHas(state.services, 'service_common')),\n      names: std.join(',', std.objectFields(state.services)),\n    },\n  }],\n}).manifests\n",
    );
    let per_service = ok(&render(repo.path(), "dev", None, &[]));
    assert!(per_service.contains("count: \"2\""), "{per_service}");
    assert!(
        per_service.contains("has_common: \"true\""),
        "{per_service}"
    );
    assert!(per_service.contains("names: service_common,service_rpps"));
    let one = ok(&render(
        repo.path(),
        "dev",
        None,
        &["--service", "service_rpps"],
    ));
    set_evaluation(repo.path(), "environment");
    let whole = ok(&render(repo.path(), "dev", None, &[]));
    assert_eq!(per_service, whole);
    assert_eq!(
        one,
        ok(&render(
            repo.path(),
            "dev",
            None,
            &["--service", "service_rpps"]
        ))
    );
}

#[test]
fn service_selection_renders_that_service_only() {
    let repo = common::root().join("controlcenter-examples/platform");
    let full = ok(&render(&repo, "prod", None, &[]));
    let cache = tempfile::tempdir().unwrap();
    let one = render(
        &repo,
        "prod",
        Some(cache.path()),
        &["--service", "accounts"],
    );
    assert_eq!(units(&one), (1, 0), "{}", transcript(&one));
    let one = ok(&one);
    let docs: Vec<&str> = one.split("---\n").filter(|d| !d.is_empty()).collect();
    assert!(docs.len() >= 4);
    for doc in &docs {
        assert!(doc.contains("app.kubernetes.io/name: accounts"), "{doc}");
        assert!(full.contains(doc), "not in the full render:\n{doc}");
    }
    // Every service and `@environment` together: the whole render.
    let everything = ok(&render(&repo, "prod", None, &["--service", "@environment"]));
    assert!(everything.contains("kind: SealedSecret"));
    assert!(!everything.contains("kind: Deployment"));
    let out = render(&repo, "prod", None, &["--service", "acounts"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("timings:"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("unknown-service", stderr);
    // Every unknown name is reported, not the first alone.
    let out = render(
        &repo,
        "prod",
        None,
        &[
            "--service",
            "nope-1",
            "--service",
            "accounts",
            "--service",
            "nope-2",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["nope-1", "nope-2"] {
        assert!(
            stderr.contains(&format!("no enabled service `{name}`")),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("service `accounts`"), "{stderr}");
    // An out-dir holds a whole render: a selection would delete the rest.
    let out_dir = tempfile::tempdir().unwrap();
    let out = render(
        &repo,
        "prod",
        None,
        &[
            "--service",
            "accounts",
            "--out-dir",
            out_dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with '--out-dir"));
}

#[test]
fn selections_of_every_service_and_the_environment_partition_the_render() {
    // One Application per selection (an ApplicationSet) deploys every
    // object exactly once, per service or as a whole environment, even an
    // object that names no service.
    let repo = example_with_entry_point(
        "platform",
        "local cc = import 'controlcenter/lib.libsonnet';\nfunction(state) (cc.new(state) + {\n  extraManifests:: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unlabelled', namespace: state.namespace } }],\n}).manifests\n",
    );
    let state = controlcenter()
        .arg("--repo")
        .arg(repo.path())
        .args(["state", "--env", "prod"])
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    let mut selections: Vec<String> = state["services"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    selections.push("@environment".to_owned());
    let docs = |text: String| -> Vec<String> {
        let mut docs: Vec<String> = text
            .split("---\n")
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        docs.sort();
        docs
    };
    let cc_path = repo.path().join("controlcenter.yaml");
    let per_service = std::fs::read_to_string(&cc_path).unwrap();
    for mode in ["per-service", "environment"] {
        std::fs::write(&cc_path, &per_service).unwrap();
        if mode == "environment" {
            set_evaluation(repo.path(), mode);
        }
        let full = docs(ok(&render(repo.path(), "prod", None, &[])));
        let mut parts: Vec<String> = Vec::new();
        for selection in &selections {
            let part = ok(&render(
                repo.path(),
                "prod",
                None,
                &["--service", selection],
            ));
            parts.extend(docs(part));
        }
        parts.sort();
        assert_eq!(parts, full, "{mode}");
        assert!(full.iter().any(|d| d.contains("name: unlabelled")));
    }
}

#[test]
fn a_selection_resolves_its_services_and_still_names_every_other() {
    let repo = generated(3);
    let cc_path = repo.path().join("controlcenter.yaml");
    let cc = std::fs::read_to_string(&cc_path).unwrap();
    // svc_0002 asks for a revision tags.yaml does not have.
    let broken = cc.replace("git_rev: v2\n", "git_rev: v99\n");
    std::fs::write(&cc_path, &broken).unwrap();
    let one = render(repo.path(), "dev", None, &["--service", "svc_0001"]);
    assert!(ok(&one).contains("name: svc-0001"));
    let out = render(repo.path(), "dev", None, &["--service", "svc_0002"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("v99"));

    // A service left out still claims its name: one that collides with
    // the selected service is an error, not a silently shadowed object.
    std::fs::write(&cc_path, format!("{cc}  svc-0001:\n    git_rev: v1\n")).unwrap();
    let mut tags = std::fs::read_to_string(repo.path().join("tags.yaml")).unwrap();
    tags.push_str("svc-0001:\n  v1: registry.example.com/svc:1\n");
    std::fs::write(repo.path().join("tags.yaml"), tags).unwrap();
    let out = render(repo.path(), "dev", None, &["--service", "svc_0001"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("both become `svc-0001`"), "{stderr}");
}

#[test]
fn controlcenter_d_parts_merge_and_a_key_defined_twice_names_both_files() {
    let repo = copy_repo(&common::root().join("controlcenter-examples/article"));
    let reference = ok(&render(repo.path(), "dev", None, &[]));
    // Move the dev section's services into two parts.
    let cc = std::fs::read_to_string(repo.path().join("controlcenter.yaml")).unwrap();
    let start = cc.find("\ndev:\n").unwrap() + 1;
    let end = cc[start + 5..]
        .find("\n\n")
        .map_or(cc.len(), |i| start + 5 + i + 1);
    let section = &cc[start..end];
    std::fs::write(
        repo.path().join("controlcenter.yaml"),
        format!("{}{}", &cc[..start], &cc[end..]),
    )
    .unwrap();
    std::fs::create_dir_all(repo.path().join("controlcenter.d")).unwrap();
    std::fs::write(repo.path().join("controlcenter.d/10-dev.yaml"), section).unwrap();
    assert_eq!(ok(&render(repo.path(), "dev", None, &[])), reference);

    std::fs::write(repo.path().join("controlcenter.d/20-again.yaml"), section).unwrap();
    let out = render(repo.path(), "dev", None, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("controlcenter.d/20-again.yaml:"),
        "{stderr}"
    );
    assert!(stderr.contains("controlcenter.d/10-dev.yaml:"), "{stderr}");
    assert!(stderr.contains("CC0104"), "{stderr}");
    // The message itself names both files: short formats show only it.
    let out = render(repo.path(), "dev", None, &["--error-format", "github"]);
    let stdout = transcript(&out);
    assert!(
        stdout.contains(
            "defined in both controlcenter.d/10-dev.yaml and controlcenter.d/20-again.yaml"
        ),
        "{stdout}"
    );
}

#[test]
fn a_controlcenter_d_that_is_a_git_submodule_is_an_error_at_a_revision() {
    let repo = copy_repo(&common::root().join("controlcenter-examples/article"));
    let dir = repo.path();
    common::git(dir, &["init", "-q", "-b", "dev"]);
    common::git(dir, &["add", "-A"]);
    common::git(dir, &["commit", "-q", "-m", "article"]);
    // A gitlink (mode 160000) named controlcenter.d, as a submodule adds.
    let head = String::from_utf8(
        std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(dir)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let gitlink = format!("160000,{},controlcenter.d", head.trim());
    common::git(dir, &["update-index", "--add", "--cacheinfo", &gitlink]);
    common::git(dir, &["commit", "-q", "-m", "split files as a submodule"]);
    let out = render(dir, "dev", None, &["--rev", "HEAD"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("controlcenter.d is not a directory of the repository"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn root_inputs_spelled_yml_are_errors() {
    // Each would otherwise be passed over: the sealed secrets, an
    // environment's outputs missing from the render.
    let repo = copy_repo(&common::root().join("controlcenter-examples/article"));
    std::fs::write(repo.path().join("secrets.yml"), "{}\n").unwrap();
    // Not named like an input: not a concern of controlcenter.
    std::fs::write(repo.path().join("mkdocs.yml"), "site_name: x\n").unwrap();
    let out = render(repo.path(), "dev", None, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    insta::assert_snapshot!(transcript(&out));

    // Beside the file it would be, it is another file, not read.
    std::fs::remove_file(repo.path().join("secrets.yml")).unwrap();
    std::fs::copy(
        repo.path().join("controlcenter.yaml"),
        repo.path().join("controlcenter.yml"),
    )
    .unwrap();
    // Of no environment the configuration has.
    std::fs::write(repo.path().join("env-sample.yml"), "{}\n").unwrap();
    let out = render(repo.path(), "dev", None, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));

    // An environment's env file: refused when that environment renders,
    // never skipped as one whose outputs are on another branch.
    std::fs::rename(
        repo.path().join("env-prod.yaml"),
        repo.path().join("env-prod.yml"),
    )
    .unwrap();
    let out = render(repo.path(), "prod", None, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    insta::assert_snapshot!("root_inputs_spelled_yml_env_file", transcript(&out));
    let out = render(repo.path(), "dev", None, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let out = controlcenter()
        .arg("--repo")
        .arg(repo.path())
        .args(["validate", "--no-cache"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(transcript(&out).contains("rename it `env-prod.yaml`"));
}

#[test]
fn controlcenter_d_entries_that_would_not_be_read_are_errors() {
    let repo = copy_repo(&common::root().join("controlcenter-examples/article"));
    let parts = repo.path().join("controlcenter.d");
    std::fs::create_dir_all(parts.join("team-a")).unwrap();
    let service = "dev:\n  extra:\n    git_rev: v1.0.0\n";
    std::fs::write(parts.join("team-a/extra.yaml"), service).unwrap();
    std::fs::write(parts.join("extra.yml"), service).unwrap();
    std::fs::write(parts.join("extra.yaml~"), service).unwrap();
    // Hidden files are left alone.
    std::fs::write(parts.join(".gitkeep"), "").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("nowhere.yaml", parts.join("gone.yaml")).unwrap();
    let out = controlcenter()
        .arg("--repo")
        .arg(repo.path())
        .args(["render", "--env", "dev", "--no-cache"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    insta::assert_snapshot!(transcript(&out));

    // Not a directory of the repository.
    let fails_saying = |what: &str| {
        let out = render(repo.path(), "dev", None, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        assert!(transcript(&out).contains(what), "{}", transcript(&out));
    };
    std::fs::remove_dir_all(&parts).unwrap();
    std::fs::write(&parts, service).unwrap();
    fails_saying("controlcenter.d is a file");
    #[cfg(unix)]
    {
        std::fs::remove_file(&parts).unwrap();
        std::os::unix::fs::symlink("/", &parts).unwrap();
        fails_saying("controlcenter.d leads outside the repository");
        std::fs::remove_file(&parts).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&parts).status();
        if made.is_ok_and(|s| s.success()) {
            fails_saying("controlcenter.d is not a directory of the repository");
        }
        std::fs::remove_file(&parts).unwrap();
        std::os::unix::fs::symlink("renamed-away", &parts).unwrap();
        fails_saying("controlcenter.d is a link to nothing");
    }
}
