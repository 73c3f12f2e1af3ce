//! Every example repository's rendered output must satisfy the upstream
//! Kubernetes API schemas, strictly (no unknown fields, right types, checked
//! formats).
//!
//! The schemas are vendored in `tests/fixtures/k8s-schemas/` (see the README
//! there: kubernetes-validate's `*-local-strict` schemas). Each kind schema
//! refers to `/api/_definitions.json`, which is vendored next to it and
//! registered under its own `$id`; the validators are built offline, so a
//! reference outside the vendored set fails the build of the validator
//! instead of being fetched or ignored.
//!
//! Tests:
//! - `rendered_examples_match_k8s_schemas`: renders every (example repo, env)
//!   with the real binary and validates every resource.
//! - `strict_*`: prove the vendored schemas and the validator set-up really
//!   reject bad resources, so the test above cannot pass vacuously.
//!   Run them alone with `cargo test --test integration k8s_schemas::`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use jsonschema::{Draft, Registry, Validator};
use serde_json::{json, Value};

const SCHEMA_ROOT: &str = "tests/fixtures/k8s-schemas";
const DEFINITIONS_FILE: &str = "_definitions.json";

/// The kinds the shipped library renders and that have an upstream schema.
/// Each one must be vendored; `strict_vendored_schemas_are_complete_closed_and_strict`
/// checks it.
const VENDORED: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "LimitRange"),
];

/// Custom resources with no upstream Kubernetes schema: rendered resources of
/// exactly these (apiVersion, kind) pairs are not schema-checked. Any other
/// kind without a vendored schema fails the test.
const CUSTOM_RESOURCES: &[(&str, &str)] = &[
    ("bitnami.com/v1alpha1", "SealedSecret"),
    ("external-secrets.io/v1", "ExternalSecret"),
    ("app.terraform.io/v1alpha2", "Workspace"),
    ("app.terraform.io/v1alpha2", "Module"),
];

// ---------------------------------------------------------------------------
// Schema loading
// ---------------------------------------------------------------------------

/// File name kubernetes-validate uses for a kind: `kind-<group>-<version>.json`,
/// where the group is cut at its first dot and the core group is omitted
/// (`networking.k8s.io/v1` Ingress -> `ingress-networking-v1.json`,
/// `v1` Service -> `service-v1.json`).
fn schema_file_name(api_version: &str, kind: &str) -> String {
    let api = match api_version.split_once('/') {
        Some((group, version)) => {
            let group = group.split('.').next().unwrap_or(group);
            format!("{group}-{version}")
        }
        None => api_version.to_string(),
    };
    format!("{}-{}.json", kind.to_ascii_lowercase(), api)
}

fn schema_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_ROOT);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs.len(),
        1,
        "expected exactly one vendored Kubernetes version under {}, found {dirs:?}",
        root.display()
    );
    dirs.pop().unwrap()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The draft a schema declares with `$schema`; the validator is built with
/// exactly that draft rather than a guess.
fn declared_draft(schema: &Value, what: &str) -> Draft {
    let uri = schema
        .get("$schema")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what} has no $schema"));
    match uri.trim_end_matches('#') {
        "https://json-schema.org/draft/2020-12/schema" => Draft::Draft202012,
        "https://json-schema.org/draft/2019-09/schema" => Draft::Draft201909,
        "http://json-schema.org/draft-07/schema" => Draft::Draft7,
        "http://json-schema.org/draft-06/schema" => Draft::Draft6,
        "http://json-schema.org/draft-04/schema" => Draft::Draft4,
        other => panic!("{what}: unsupported $schema {other:?}"),
    }
}

/// Kubernetes' OpenAPI puts `format: int32` / `int64` on integer fields. The
/// crate's format checks only ever see strings, so the ranges those formats
/// mean are added as `minimum`/`maximum` (in memory; the files stay verbatim).
fn add_integer_format_bounds(node: &mut Value) {
    match node {
        Value::Object(map) => {
            let bounds = match map.get("format").and_then(Value::as_str) {
                Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
                _ => None,
            };
            if let Some((min, max)) = bounds {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            for value in map.values_mut() {
                add_integer_format_bounds(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(add_integer_format_bounds),
        _ => {}
    }
}

/// Standard base64 with padding, what Kubernetes expects for `format: byte`
/// (`Secret.data`, `ConfigMap.binaryData`).
fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    padding <= 2
        && bytes[..bytes.len() - padding]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Format handling: formats are asserted (`should_validate_formats(true)`),
/// and a format the set-up does not know is a build error
/// (`should_ignore_unknown_formats(false)`), so a refreshed schema with a new
/// format fails loudly instead of silently losing a check. `date-time` is the
/// crate's RFC 3339 check; the Kubernetes formats are registered here. A
/// registered check only sees string values: for `int32`/`int64`/`double`
/// (on integer/number fields) the range is enforced by
/// `add_integer_format_bounds` and the check applies only if a schema ever
/// allows a string there.
fn with_kubernetes_formats(
    options: jsonschema::ValidationOptions<'_>,
) -> jsonschema::ValidationOptions<'_> {
    options
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_format("int32", |s: &str| s.parse::<i32>().is_ok())
        .with_format("int64", |s: &str| s.parse::<i64>().is_ok())
        .with_format("double", |s: &str| {
            s.parse::<f64>().is_ok_and(f64::is_finite)
        })
        .with_format("byte", is_base64)
        // An int-or-string field accepts any string (integers are typed).
        .with_format("int-or-string", |_: &str| true)
}

struct Schemas {
    dir: PathBuf,
    /// Built once per kind schema file, keyed by file name.
    validators: BTreeMap<String, Validator>,
}

impl Schemas {
    fn load() -> Schemas {
        let dir = schema_dir();
        let mut definitions = read_json(&dir.join(DEFINITIONS_FILE));
        let definitions_id = definitions
            .get("$id")
            .and_then(Value::as_str)
            .expect("_definitions.json has an $id")
            .to_string();
        let definitions_draft = declared_draft(&definitions, DEFINITIONS_FILE);
        add_integer_format_bounds(&mut definitions);
        let registry = Registry::new()
            .draft(definitions_draft)
            .add(&definitions_id, definitions)
            .and_then(|builder| builder.prepare())
            .unwrap_or_else(|e| panic!("cannot register {DEFINITIONS_FILE}: {e}"));

        let mut validators = BTreeMap::new();
        for (api_version, kind) in VENDORED {
            let name = schema_file_name(api_version, kind);
            let path = dir.join(&name);
            let mut schema = read_json(&path);
            let draft = declared_draft(&schema, &name);
            add_integer_format_bounds(&mut schema);
            let options = jsonschema::options()
                .with_draft(draft)
                .with_registry(&registry)
                .offline();
            let validator = with_kubernetes_formats(options)
                .build(&schema)
                .unwrap_or_else(|e| {
                    panic!("cannot build a validator from {}: {e}", path.display())
                });
            validators.insert(name, validator);
        }
        Schemas { dir, validators }
    }

    /// The validator for a resource, `Ok(None)` for an allow-listed custom
    /// resource, `Err` for a kind nothing covers.
    fn validator_for(&self, api_version: &str, kind: &str) -> Result<Option<&Validator>, String> {
        let name = schema_file_name(api_version, kind);
        if let Some(validator) = self.validators.get(&name) {
            return Ok(Some(validator));
        }
        if CUSTOM_RESOURCES.contains(&(api_version, kind)) {
            return Ok(None);
        }
        Err(format!(
            "no vendored schema for apiVersion {api_version:?} kind {kind:?} (looked for {name} in {}); \
             vendor it (tests/fixtures/k8s-schemas/refresh.py) or, if it is a custom resource, \
             add it to CUSTOM_RESOURCES in tests/integration/k8s_schemas.rs",
            self.dir.display()
        ))
    }
}

/// One schema violation: instance path, schema path, message.
struct Violation {
    instance_path: String,
    schema_path: String,
    message: String,
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn violations(validator: &Validator, resource: &Value) -> Vec<Violation> {
    // Secret values must never be printed, even by a failing test.
    let mask = resource.get("kind").and_then(Value::as_str) == Some("Secret");
    validator
        .iter_errors(resource)
        .map(|error| Violation {
            instance_path: error.instance_path().as_str().to_string(),
            schema_path: error.schema_path().as_str().to_string(),
            message: truncate(
                if mask {
                    error.masked().to_string()
                } else {
                    error.to_string()
                },
                400,
            ),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The examples
// ---------------------------------------------------------------------------

struct Example {
    dir: PathBuf,
    envs: Vec<String>,
}

fn examples() -> Vec<Example> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("controlcenter-examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_dir() && p.join("controlcenter.yaml").is_file())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let mut envs: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
                .filter_map(|entry| {
                    let entry = entry.expect("directory entry");
                    if !entry.path().is_file() {
                        return None;
                    }
                    let name = entry.file_name().into_string().ok()?;
                    let env = name.strip_prefix("env-")?.strip_suffix(".yaml")?;
                    (!env.is_empty()).then(|| env.to_string())
                })
                .collect();
            envs.sort();
            Example { dir, envs }
        })
        .collect()
}

/// Runs `controlcenter render --format json`; Ok(stdout) or Err(report).
fn render(repo: &Path, env: &str) -> Result<String, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_controlcenter"));
    command
        .args(["render", "--repo"])
        .arg(repo)
        .args(["--env", env, "--format", "json"]);
    // The environment must come from --env, not from a CMP variable that
    // happens to be set where the tests run.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("ARGOCD_ENV_")) {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO_BIN_EXE_controlcenter")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "`controlcenter render --repo {} --env {env} --format json` failed ({}); stderr:\n{stderr}",
            repo.display(),
            output.status
        ));
    }
    String::from_utf8(output.stdout)
        .map_err(|e| format!("stdout is not UTF-8: {e}; stderr:\n{stderr}"))
}

#[test]
fn rendered_examples_match_k8s_schemas() {
    let schemas = Schemas::load();
    let examples = examples();
    assert!(
        !examples.is_empty(),
        "no example repository (a directory with controlcenter.yaml) under controlcenter-examples/"
    );

    let mut failures: Vec<String> = Vec::new();
    let mut summary: Vec<String> = Vec::new();
    let mut custom_seen: BTreeSet<String> = BTreeSet::new();
    for example in &examples {
        let repo_name = example
            .dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if example.envs.is_empty() {
            failures.push(format!(
                "{repo_name}: no env-<env>.yaml file, so none of its environments is checked"
            ));
            continue;
        }
        for env in &example.envs {
            let stdout = match render(&example.dir, env) {
                Ok(stdout) => stdout,
                Err(report) => {
                    failures.push(format!("{repo_name} [{env}]: {report}"));
                    continue;
                }
            };
            let mut checked = 0usize;
            let mut skipped = 0usize;
            for (index, line) in stdout.lines().enumerate() {
                let line_no = index + 1;
                if line.trim().is_empty() {
                    continue;
                }
                let resource: Value = match serde_json::from_str(line) {
                    Ok(value) => value,
                    Err(e) => {
                        failures.push(format!(
                            "{repo_name} [{env}] stdout line {line_no}: not a JSON object: {e}"
                        ));
                        continue;
                    }
                };
                let api_version = resource.get("apiVersion").and_then(Value::as_str);
                let kind = resource.get("kind").and_then(Value::as_str);
                let name = resource
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("<no metadata.name>");
                let (Some(api_version), Some(kind)) = (api_version, kind) else {
                    failures.push(format!(
                        "{repo_name} [{env}] stdout line {line_no} ({name}): missing string apiVersion/kind"
                    ));
                    continue;
                };
                let who = format!("{repo_name} [{env}] {kind}/{name} ({api_version})");
                match schemas.validator_for(api_version, kind) {
                    Err(message) => failures.push(format!("{who}: {message}")),
                    Ok(None) => {
                        skipped += 1;
                        custom_seen.insert(format!("{api_version} {kind}"));
                    }
                    Ok(Some(validator)) => {
                        checked += 1;
                        for v in violations(validator, &resource) {
                            failures.push(format!(
                                "{who} at {}: {} (schema {})",
                                if v.instance_path.is_empty() {
                                    "/"
                                } else {
                                    &v.instance_path
                                },
                                v.message,
                                v.schema_path
                            ));
                        }
                    }
                }
            }
            if checked == 0 {
                failures.push(format!(
                    "{repo_name} [{env}]: no resource was checked against a Kubernetes schema \
                     ({skipped} allow-listed custom resources)"
                ));
            }
            summary.push(format!(
                "{repo_name} [{env}]: {checked} checked, {skipped} custom resources"
            ));
        }
    }

    eprintln!(
        "schemas: {}\n{}\ncustom resources not checked: {custom_seen:?}",
        schemas.dir.display(),
        summary.join("\n")
    );
    if !failures.is_empty() {
        let mut report = format!("{} problem(s) in the rendered examples:\n", failures.len());
        for failure in &failures {
            let _ = writeln!(report, "- {failure}");
        }
        panic!("{report}");
    }
}

// ---------------------------------------------------------------------------
// Self-tests: the set-up is strict, so the test above cannot pass vacuously.
// ---------------------------------------------------------------------------

/// Every example, committed to a fresh Git repository and hydrated with
/// `hydrate --all`: each file of each hydrated branch is one YAML document
/// (what `kubectl apply -f DIR` reads), equal to the rendered resource and
/// valid under the strict schemas.
#[test]
fn hydrated_examples_match_k8s_schemas() {
    let schemas = Schemas::load();
    let mut failures: Vec<String> = Vec::new();
    for example in examples() {
        let name = example
            .dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let dir = tempfile::tempdir().unwrap();
        crate::common::copy_tree(&example.dir, dir.path());
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "-A"],
            &["commit", "-q", "-m", "example"],
        ] {
            crate::common::git(dir.path(), args);
        }
        let out = crate::common::run(&["--repo", dir.path().to_str().unwrap(), "hydrate", "--all"]);
        assert!(
            out.status.success(),
            "{name}: {}",
            crate::common::transcript(&out)
        );
        let repo = git2::Repository::open(dir.path()).unwrap();
        for env in &example.envs {
            let rendered: BTreeSet<String> = render(dir.path(), env)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            let tree = repo
                .revparse_single(&format!("environment/{env}"))
                .and_then(|o| o.peel_to_tree())
                .unwrap_or_else(|e| panic!("{name}: environment/{env} not hydrated: {e}"));
            let mut hydrated: BTreeSet<String> = BTreeSet::new();
            tree.walk(git2::TreeWalkMode::PreOrder, |parent, entry| {
                let file = format!("{parent}{}", entry.name().unwrap_or_default());
                if !file.ends_with(".yaml") {
                    return git2::TreeWalkResult::Ok;
                }
                let blob = repo.find_blob(entry.id()).unwrap();
                let text = String::from_utf8_lossy(blob.content()).into_owned();
                let mut sources = controlcenter::diagnostics::Sources::default();
                let id = sources.add(&file, text.as_str());
                let value = match controlcenter::load::yaml::parse(&text, id) {
                    Ok(node) => node.to_json(),
                    Err(d) => {
                        failures.push(format!(
                            "{name} [{env}] {file}: not one YAML document: {d:?}"
                        ));
                        return git2::TreeWalkResult::Ok;
                    }
                };
                let (api, kind) = (
                    value["apiVersion"].as_str().unwrap_or_default(),
                    value["kind"].as_str().unwrap_or_default(),
                );
                match schemas.validator_for(api, kind) {
                    Err(message) => failures.push(format!("{name} [{env}] {file}: {message}")),
                    Ok(None) => {}
                    Ok(Some(validator)) => {
                        for v in violations(validator, &value) {
                            failures.push(format!(
                                "{name} [{env}] {file} at {}: {}",
                                v.instance_path, v.message
                            ));
                        }
                    }
                }
                hydrated.insert(serde_json::to_string(&value).unwrap());
                git2::TreeWalkResult::Ok
            })
            .unwrap();
            if hydrated != rendered {
                failures.push(format!(
                    "{name} [{env}]: the hydrated files ({}) differ from the render ({})",
                    hydrated.len(),
                    rendered.len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn valid_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "service-rpps",
            "namespace": "dev",
            "labels": {"app.kubernetes.io/name": "service-rpps"},
            "creationTimestamp": null
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "service-rpps"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "service-rpps"}},
                "spec": {
                    "serviceAccountName": "service-rpps",
                    "containers": [{
                        "name": "service-rpps",
                        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/service-rpps:59",
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "ELK_ENDPOINT", "value": "https://search-example-dev.example.com"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                        "resources": {
                            "requests": {"memory": "2Gi", "cpu": "250m"},
                            "limits": {"memory": "4Gi"}
                        }
                    }]
                }
            }
        }
    })
}

fn check(schemas: &Schemas, resource: &Value) -> Vec<Violation> {
    let api_version = resource["apiVersion"].as_str().unwrap();
    let kind = resource["kind"].as_str().unwrap();
    let validator = schemas
        .validator_for(api_version, kind)
        .unwrap()
        .expect("a vendored kind");
    violations(validator, resource)
}

/// Asserts the resource is rejected with a violation at `path`.
fn assert_rejected_at(schemas: &Schemas, resource: &Value, path: &str) {
    let found = check(schemas, resource);
    assert!(
        found.iter().any(|v| v.instance_path == path),
        "expected a violation at {path}, got: {:?}",
        found
            .iter()
            .map(|v| format!("{}: {}", v.instance_path, v.message))
            .collect::<Vec<_>>()
    );
}

#[test]
fn strict_schema_accepts_a_valid_deployment() {
    let schemas = Schemas::load();
    let found = check(&schemas, &valid_deployment());
    assert!(
        found.is_empty(),
        "a valid Deployment was rejected: {:?}",
        found
            .iter()
            .map(|v| format!("{}: {}", v.instance_path, v.message))
            .collect::<Vec<_>>()
    );
}

#[test]
fn strict_schema_rejects_unknown_field() {
    let schemas = Schemas::load();
    let mut deployment = valid_deployment();
    deployment["spec"]["replica"] = json!(1);
    assert_rejected_at(&schemas, &deployment, "/spec");

    // Deep inside the pod template too (closed definitions from _definitions.json).
    let mut deployment = valid_deployment();
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
    assert_rejected_at(&schemas, &deployment, "/spec/template/spec/containers/0");

    // And at the top level.
    let mut deployment = valid_deployment();
    deployment["sepc"] = json!({});
    assert_rejected_at(&schemas, &deployment, "");
}

#[test]
fn strict_schema_rejects_wrong_type() {
    let schemas = Schemas::load();
    let mut deployment = valid_deployment();
    deployment["spec"]["replicas"] = json!("two");
    assert_rejected_at(&schemas, &deployment, "/spec/replicas");

    let mut deployment = valid_deployment();
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] =
        json!("8080");
    assert_rejected_at(
        &schemas,
        &deployment,
        "/spec/template/spec/containers/0/ports/0/containerPort",
    );

    // apiVersion/kind are pinned by the schema (validated against the
    // Deployment schema directly: the lookup would already refuse them).
    let mut deployment = valid_deployment();
    deployment["apiVersion"] = json!("apps/v1beta1");
    deployment["kind"] = json!("Deploymnet");
    let found = violations(&schemas.validators["deployment-apps-v1.json"], &deployment);
    for path in ["/apiVersion", "/kind"] {
        assert!(
            found.iter().any(|v| v.instance_path == path),
            "no violation at {path}"
        );
    }
}

#[test]
fn strict_schema_checks_formats() {
    let schemas = Schemas::load();

    // int32: replicas beyond 2^31-1.
    let mut deployment = valid_deployment();
    deployment["spec"]["replicas"] = json!(3_000_000_000_i64);
    assert_rejected_at(&schemas, &deployment, "/spec/replicas");

    // date-time.
    let mut deployment = valid_deployment();
    deployment["metadata"]["creationTimestamp"] = json!("yesterday");
    assert_rejected_at(&schemas, &deployment, "/metadata/creationTimestamp");

    // byte: Secret data must be base64; the value must not leak into the message.
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "type": "Opaque",
        "data": {"ok": "aHVudGVyMg==", "password": "hunter2!"}
    });
    assert_rejected_at(&schemas, &secret, "/data/password");
    let found = check(&schemas, &secret);
    assert!(found.iter().all(|v| v.instance_path != "/data/ok"));
    assert!(
        found.iter().all(|v| !v.message.contains("hunter2")),
        "a Secret value leaked into a message"
    );

    // int-or-string accepts both, and nothing else.
    let mut deployment = valid_deployment();
    deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = json!(1);
    assert!(check(&schemas, &deployment).is_empty());
    deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = json!(true);
    assert_rejected_at(
        &schemas,
        &deployment,
        "/spec/strategy/rollingUpdate/maxSurge",
    );
}

#[test]
fn strict_unknown_kinds_are_not_skipped() {
    let schemas = Schemas::load();
    for (api_version, kind) in CUSTOM_RESOURCES {
        assert!(matches!(schemas.validator_for(api_version, kind), Ok(None)));
    }
    // A kind with an upstream schema that is not vendored, a custom resource
    // that is not allow-listed, and an allow-listed kind at another version.
    for (api_version, kind) in [
        ("batch/v1", "CronJob"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("external-secrets.io/v1beta1", "ExternalSecret"),
    ] {
        let err = schemas.validator_for(api_version, kind).err();
        assert!(
            err.is_some(),
            "{api_version} {kind} must not pass unchecked"
        );
    }
}

/// Walks every `$ref` of a schema document.
fn collect_refs<'a>(node: &'a Value, out: &mut Vec<&'a str>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Every object schema that lists properties is closed.
fn open_objects(node: &Value, at: &str, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if map.contains_key("properties")
                && map.get("additionalProperties") != Some(&Value::Bool(false))
            {
                out.push(at.to_string());
            }
            for (key, value) in map {
                open_objects(value, &format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                open_objects(value, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn strict_vendored_schemas_are_complete_closed_and_strict() {
    let dir = schema_dir();
    let definitions = read_json(&dir.join(DEFINITIONS_FILE));
    let defs = definitions["$defs"].as_object().expect("$defs");
    let mut problems = Vec::new();
    open_objects(&definitions, DEFINITIONS_FILE, &mut problems);

    let mut documents = vec![(DEFINITIONS_FILE.to_string(), definitions.clone())];
    for (api_version, kind) in VENDORED {
        let name = schema_file_name(api_version, kind);
        let schema = read_json(&dir.join(&name));
        assert_eq!(
            schema["additionalProperties"],
            json!(false),
            "{name} is not strict"
        );
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            json!(kind),
            "{name} is not the schema of {kind}"
        );
        open_objects(&schema, &name, &mut problems);
        documents.push((name, schema));
    }
    // Only JSON files the test uses, plus the licence and nothing else large.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let known = name == DEFINITIONS_FILE
            || name.starts_with("LICENSE")
            || VENDORED.iter().any(|(a, k)| schema_file_name(a, k) == name);
        assert!(known, "unexpected file {name} in {}", dir.display());
    }
    // Self-contained as a set: every $ref points into the vendored definitions.
    for (name, document) in &documents {
        let mut refs = Vec::new();
        collect_refs(document, &mut refs);
        for r in refs {
            let target = r
                .strip_prefix("/api/_definitions.json#/$defs/")
                .or_else(|| {
                    r.strip_prefix("#/$defs/")
                        .filter(|_| name == DEFINITIONS_FILE)
                });
            match target {
                Some(def) if defs.contains_key(def) => {}
                _ => problems.push(format!(
                    "{name}: $ref {r:?} does not resolve inside the vendored set"
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "vendored schemas are not closed/strict:\n{}",
        problems.join("\n")
    );
    // And the validators build offline with every format known.
    let schemas = Schemas::load();
    assert_eq!(schemas.validators.len(), VENDORED.len());
}

#[test]
fn strict_schema_file_names_follow_the_package() {
    assert_eq!(
        schema_file_name("apps/v1", "Deployment"),
        "deployment-apps-v1.json"
    );
    assert_eq!(
        schema_file_name("v1", "ServiceAccount"),
        "serviceaccount-v1.json"
    );
    assert_eq!(
        schema_file_name("autoscaling/v2", "HorizontalPodAutoscaler"),
        "horizontalpodautoscaler-autoscaling-v2.json"
    );
    assert_eq!(
        schema_file_name("networking.k8s.io/v1", "Ingress"),
        "ingress-networking-v1.json"
    );
    assert_eq!(
        schema_file_name("policy/v1", "PodDisruptionBudget"),
        "poddisruptionbudget-policy-v1.json"
    );
}
