//! Policies: rules every rendered manifest must follow.
//!
//! Built in, on by default, each switched off with
//! `settings.policies: {<id>: false}`:
//! - `memory-limits`: every container has a memory request and limit;
//! - `no-mutable-images`: no `latest` or untagged image in a protected
//!   environment: checked when tags resolve (`CC0305`, at the git_rev),
//!   then on every container of every rendered workload (at the image's
//!   literal in the templates);
//! - `no-plain-secrets`: no plain `Secret` (checked in post-processing,
//!   `CC0505`);
//! - `pdb-replicas`: in protected environments, a workload a
//!   PodDisruptionBudget covers runs at least 2 replicas (else the budget
//!   blocks every node drain).
//!
//! A repository adds its own under `policies/*.yaml`: a name, a message,
//! the environments and kinds it applies to, and a JSON Schema every
//! matching manifest must satisfy.

use std::collections::BTreeMap;

use jsonschema::Validator;
use serde_json::Value as Json;

use std::sync::Arc;

use crate::diagnostics::{Code, Diagnostic, FileId, Sources, Span};
use crate::repo::RepoFiles;
use crate::load::{self, Sensitivity};
use crate::process::{locate, Resource};

/// Built-in policy: containers have memory requests and limits.
pub const MEMORY_LIMITS: &str = "memory-limits";
/// Built-in policy: no mutable images in protected environments.
pub const NO_MUTABLE_IMAGES: &str = "no-mutable-images";
/// Built-in policy: no plain Secrets.
pub const NO_PLAIN_SECRETS: &str = "no-plain-secrets";
/// Built-in policy: workloads under a PDB run 2+ replicas in protected envs.
pub const PDB_REPLICAS: &str = "pdb-replicas";

/// Directory of the repository's own policies.
pub const POLICY_DIR: &str = "policies";

/// A policy from `policies/<name>.yaml`.
pub struct RepoPolicy {
    /// Its name (the id that switches it off).
    pub name: String,
    /// What a violation means.
    pub message: String,
    /// Environments it applies to (all when `None`).
    pub envs: Option<Vec<String>>,
    /// Kinds it applies to (all when `None`).
    pub kinds: Option<Vec<String>>,
    validator: Validator,
    /// Where the policy is defined.
    pub span: Span,
}

/// The shape of a policy file.
const POLICY_FILE_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "required": ["name", "message", "schema"],
  "properties": {
    "name": { "type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" },
    "message": { "type": "string", "minLength": 1 },
    "envs": { "type": "array", "items": { "type": "string" } },
    "kinds": { "type": "array", "items": { "type": "string" } },
    "schema": { "type": ["object", "boolean"] }
  }
}"#;

/// Loads and compiles every `policies/*.yaml` (and `.yml`).
pub fn load_repo_policies(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
) -> Result<Vec<RepoPolicy>, Vec<Diagnostic>> {
    let shape = jsonschema::draft202012::new(
        &serde_json::from_str::<Json>(POLICY_FILE_SCHEMA).unwrap_or_default(),
    )
    .map_err(|e| vec![Diagnostic::error(Code::PolicyInvalid, e.to_string())])?;
    let mut policies = Vec::new();
    let mut diags = Vec::new();
    for name in repo.list_files(POLICY_DIR) {
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let path = format!("{POLICY_DIR}/{name}");
        let input = match load::load_yaml(repo, sources, &path, Sensitivity::Plain) {
            Ok(Some(i)) => i,
            Ok(None) => continue,
            Err(d) => {
                diags.extend(d);
                continue;
            }
        };
        let doc = input.root.to_json();
        let problems: Vec<String> = shape.iter_errors(&doc).map(|e| e.to_string()).collect();
        if !problems.is_empty() {
            diags.push(
                Diagnostic::error(Code::PolicyInvalid, format!("{path} is not a valid policy: {}", problems.join("; ")))
                    .at(input.root.span, "this policy")
                    .help("a policy has `name`, `message`, optional `envs` and `kinds`, and a JSON Schema under `schema`"),
            );
            continue;
        }
        let schema_node = input.root.get("schema").map_or(input.root.span, |n| n.span);
        let validator = match jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&doc["schema"])
        {
            Ok(v) => v,
            Err(e) => {
                diags.push(
                    Diagnostic::error(
                        Code::PolicyInvalid,
                        format!("{path}: the schema does not compile: {e}"),
                    )
                    .at(schema_node, "this schema"),
                );
                continue;
            }
        };
        let strings = |key: &str| {
            doc.get(key).and_then(Json::as_array).map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
        };
        policies.push(RepoPolicy {
            name: doc["name"].as_str().unwrap_or_default().to_owned(),
            message: doc["message"].as_str().unwrap_or_default().to_owned(),
            envs: strings("envs"),
            kinds: strings("kinds"),
            validator,
            span: input
                .root
                .entry("name")
                .map_or(input.root.span, |e| e.value.span),
        });
    }
    if diags.is_empty() {
        Ok(policies)
    } else {
        Err(diags)
    }
}

/// What the policy checks need to know about the render.
pub struct PolicyContext<'a> {
    /// Environment name.
    pub env: &'a str,
    /// Whether the environment is protected.
    pub protected: bool,
    /// Which policies are on.
    pub settings: &'a crate::resolve::Settings,
    /// Service DNS name → its controlcenter.yaml key span.
    pub service_spans: &'a BTreeMap<String, Span>,
    /// The template entry point.
    pub entry: Option<Span>,
    /// The repository's policies.
    pub repo_policies: &'a [RepoPolicy],
    /// The Jsonnet files the render loaded, to point at a value's literal.
    pub templates: &'a [(FileId, Arc<str>)],
}

/// Checks every policy that is on against the rendered resources.
pub fn check(resources: &[Resource], ctx: &PolicyContext<'_>) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    if ctx.settings.policy_on(MEMORY_LIMITS) {
        memory_limits(resources, ctx, &mut diags);
    }
    if ctx.protected && ctx.settings.policy_on(NO_MUTABLE_IMAGES) {
        mutable_images(resources, ctx, &mut diags);
    }
    if ctx.protected && ctx.settings.policy_on(PDB_REPLICAS) {
        pdb_replicas(resources, ctx, &mut diags);
    }
    for policy in ctx.repo_policies {
        if !ctx.settings.policy_on(&policy.name)
            || policy
                .envs
                .as_ref()
                .is_some_and(|e| !e.iter().any(|x| x == ctx.env))
        {
            continue;
        }
        for r in resources {
            if policy
                .kinds
                .as_ref()
                .is_some_and(|k| !k.contains(&r.id.kind))
            {
                continue;
            }
            for err in policy.validator.iter_errors(&r.value) {
                let at = err.instance_path().as_str();
                diags.push(violation(
                    &policy.name,
                    format!("{}: {}", r.id.display(), policy.message),
                    r,
                    ctx,
                    Some(policy.span),
                    format!(
                        "at {}: {}",
                        if at.is_empty() { "/" } else { at },
                        err.masked_with("the value")
                    ),
                ));
            }
        }
    }
    diags
}

fn violation(
    policy: &str,
    message: String,
    r: &Resource,
    ctx: &PolicyContext<'_>,
    defined_at: Option<Span>,
    note: String,
) -> Diagnostic {
    let mut d = Diagnostic::error(Code::PolicyViolation, format!("policy `{policy}`: {message}"))
        .note(note)
        .help(format!(
            "fix the service, or switch the policy off for this repository with settings.policies: {{{policy}: false}}"
        ));
    if let Some(span) = defined_at {
        d = d.related(span, "policy defined here");
    }
    locate(d, &r.value, ctx.service_spans, ctx.entry)
}

/// The pod spec of a workload: every kind that runs containers.
fn pod_spec(r: &Resource) -> Option<&Json> {
    match r.id.kind.as_str() {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController"
        | "Rollout" => r.value.pointer("/spec/template/spec"),
        "PodTemplate" => r.value.pointer("/template/spec"),
        "CronJob" => r.value.pointer("/spec/jobTemplate/spec/template/spec"),
        "Pod" => r.value.get("spec"),
        _ => None,
    }
}

/// Every container of a pod spec, of every list that holds containers.
fn containers(spec: &Json) -> impl Iterator<Item = &Json> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|list| {
            spec.get(list)
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
        })
}

/// Where a string is written as a literal in the templates.
fn literal_span(templates: &[(FileId, Arc<str>)], value: &str) -> Option<Span> {
    templates.iter().find_map(|(file, text)| {
        ['\'', '"'].iter().find_map(|q| {
            let literal = format!("{q}{value}{q}");
            text.find(&literal)
                .map(|i| Span::new(*file, i, i + literal.len()))
        })
    })
}

/// No `latest` or untagged image in a protected environment, in whatever
/// workload the templates render (images from tags.yaml are refused
/// earlier, at their git_rev, as CC0305).
fn mutable_images(resources: &[Resource], ctx: &PolicyContext<'_>, diags: &mut Vec<Diagnostic>) {
    for r in resources {
        let Some(spec) = pod_spec(r) else { continue };
        for c in containers(spec) {
            let Some(image) = c.get("image").and_then(Json::as_str) else {
                continue;
            };
            if !crate::resolve::names::is_mutable_image(image) {
                continue;
            }
            let name = c.get("name").and_then(Json::as_str).unwrap_or("?");
            let mut d = Diagnostic::error(
                Code::PolicyViolation,
                format!(
                    "policy `{NO_MUTABLE_IMAGES}`: {} container `{name}` runs the mutable image `{}` in protected environment `{}`",
                    r.id.display(),
                    crate::resolve::names::clip(image),
                    ctx.env
                ),
            )
            .note("a mutable tag can change under a running environment; what runs can no longer be reproduced or rolled back")
            .help(format!(
                "pin the image to a version tag or a digest (@sha256:…); or switch the policy off with settings.policies: {{{NO_MUTABLE_IMAGES}: false}}"
            ));
            if let Some(span) = literal_span(ctx.templates, image) {
                d = d.at(span, "this image");
            }
            diags.push(locate(d, &r.value, ctx.service_spans, ctx.entry));
        }
    }
}

fn memory_limits(resources: &[Resource], ctx: &PolicyContext<'_>, diags: &mut Vec<Diagnostic>) {
    for r in resources {
        let Some(spec) = pod_spec(r) else { continue };
        for list in ["initContainers", "containers"] {
            for c in spec
                .get(list)
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let name = c.get("name").and_then(Json::as_str).unwrap_or("?");
                let missing: Vec<&str> = [
                    ("request", "/resources/requests/memory"),
                    ("limit", "/resources/limits/memory"),
                ]
                .into_iter()
                .filter(|(_, p)| c.pointer(p).is_none())
                .map(|(what, _)| what)
                .collect();
                if !missing.is_empty() {
                    let d = violation(
                        MEMORY_LIMITS,
                        format!("{} container `{name}` has no memory {}", r.id.display(), missing.join(" or ")),
                        r,
                        ctx,
                        None,
                        "without both, one pod can starve its node, or be killed first under pressure".to_owned(),
                    );
                    diags.push(d.help(format!(
                        "set memory_min and memory_max on the service (or under defaults); or switch the policy off with settings.policies: {{{MEMORY_LIMITS}: false}}"
                    )));
                }
            }
        }
    }
}

fn pdb_replicas(resources: &[Resource], ctx: &PolicyContext<'_>, diags: &mut Vec<Diagnostic>) {
    // Computed once: every workload's pod labels, and every HPA's minimum
    // by target (a PDB per service makes the naive scan quadratic).
    let workloads: Vec<(&Resource, &serde_json::Map<String, Json>)> = resources
        .iter()
        .filter(|r| matches!(r.id.kind.as_str(), "Deployment" | "StatefulSet"))
        .filter_map(|r| {
            Some((
                r,
                r.value
                    .pointer("/spec/template/metadata/labels")?
                    .as_object()?,
            ))
        })
        .collect();
    let hpa_min: BTreeMap<(&str, &str, &str), u64> = resources
        .iter()
        .filter(|h| h.id.kind == "HorizontalPodAutoscaler")
        .filter_map(|h| {
            let kind = h.value.pointer("/spec/scaleTargetRef/kind")?.as_str()?;
            let name = h.value.pointer("/spec/scaleTargetRef/name")?.as_str()?;
            let min = h
                .value
                .pointer("/spec/minReplicas")
                .and_then(Json::as_u64)
                .unwrap_or(1);
            Some(((h.id.namespace.as_str(), kind, name), min))
        })
        .collect();
    for pdb in resources
        .iter()
        .filter(|r| r.id.kind == "PodDisruptionBudget")
    {
        let Some(selector) = pdb
            .value
            .pointer("/spec/selector/matchLabels")
            .and_then(Json::as_object)
        else {
            continue;
        };
        for (w, labels) in &workloads {
            if w.id.namespace != pdb.id.namespace
                || !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            {
                continue;
            }
            let replicas = hpa_min
                .get(&(
                    w.id.namespace.as_str(),
                    w.id.kind.as_str(),
                    w.id.name.as_str(),
                ))
                .copied()
                .unwrap_or_else(|| {
                    w.value
                        .pointer("/spec/replicas")
                        .and_then(Json::as_u64)
                        .unwrap_or(1)
                });
            if replicas < 2 {
                diags.push(violation(
                    PDB_REPLICAS,
                    format!(
                        "{} runs {replicas} replica under {} in protected environment `{}`",
                        w.id.display(),
                        pdb.id.display(),
                        ctx.env
                    ),
                    w,
                    ctx,
                    None,
                    "a disruption budget over a single pod blocks every node drain, or gives no protection".to_owned(),
                ));
            }
        }
    }
}
