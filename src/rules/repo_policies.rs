//! The repository's own rules: `policies/<name>.yaml`, each a name, a
//! message, the environments and kinds it applies to, and a JSON Schema
//! every matching manifest must satisfy. They run at the check stage, and
//! `settings.policies: {<name>: false}` switches one off like a built-in.

use jsonschema::Validator;
use serde_json::Value as Json;

use super::{violation, RenderContext};
use crate::diagnostics::{Code, Diagnostic, Sources, Span};
use crate::load::{load_yaml, Sensitivity};
use crate::process::Object;
use crate::repo::RepoFiles;

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
pub fn load(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
) -> Result<Vec<RepoPolicy>, Vec<Diagnostic>> {
    let shape = jsonschema::draft202012::new(
        &serde_json::from_str::<Json>(POLICY_FILE_SCHEMA).unwrap_or_default(),
    )
    .map_err(|e| vec![Diagnostic::error(Code::PolicyInvalid, e.to_string())])?;
    let mut policies = Vec::new();
    let mut diags = Vec::new();
    // A policy file is never passed over without a word: a directory or a
    // link to nothing where policies are is an error (other files, such
    // as a README, are not policies).
    let entries = crate::repo::dir_entries(repo, POLICY_DIR).unwrap_or_else(|what| {
            diags.push(
                Diagnostic::error(Code::PolicyInvalid, format!("{POLICY_DIR} {what}"))
                    .help("make policies/ a directory of *.yaml files in the repository itself: its policies would not be checked"),
            );
            Vec::new()
        });
    for (name, kind) in entries {
        let path = format!("{POLICY_DIR}/{name}");
        let unread = |what: &str| {
            Diagnostic::error(
                Code::PolicyInvalid,
                format!("{} {what}", crate::names::clip(&path)),
            )
            .help(format!(
                "policies are the *.yaml files directly in {POLICY_DIR}/"
            ))
        };
        match kind {
            _ if name.starts_with('.') => continue,
            _ if name.contains('\u{fffd}') || name.chars().any(char::is_control) => {
                diags.push(unread(
                    "has a name that is not valid UTF-8 or holds a control character",
                ));
                continue;
            }
            crate::repo::EntryKind::Dir => {
                diags.push(unread("is a directory: its files are not read as policies"));
                continue;
            }
            crate::repo::EntryKind::File if name.ends_with(".yaml") || name.ends_with(".yml") => {}
            // Named like a policy, yet not one that is read.
            crate::repo::EntryKind::Other if name.ends_with(".yaml") || name.ends_with(".yml") => {
                diags.push(unread("is not a regular file"));
                continue;
            }
            crate::repo::EntryKind::File if name.ends_with(".json") => {
                diags.push(unread(
                    "is not read: policies are written in YAML, as *.yaml files",
                ));
                continue;
            }
            _ => continue,
        }
        let input = match load_yaml(repo, sources, &path, Sensitivity::Plain) {
            Ok(Some(i)) => i,
            Ok(None) => {
                diags.push(unread("cannot be read: it is a link to nothing"));
                continue;
            }
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

/// Checks every repository policy that is on against the rendered objects.
pub fn check(resources: &[Object], ctx: &RenderContext<'_>) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
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
