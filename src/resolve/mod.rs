//! Resolve: one environment's inputs become the [`State`] the library
//! renders. `defaults` ⊕ the env section; mappings are services, scalars
//! and lists parameters; `git_rev` → image through tags.yaml; Terraform
//! outputs under `params.terraform`; DNS names; SealedSecrets.
//!
//! Every problem is collected: one bad service does not hide another.

pub mod memo;
pub mod merge;
pub mod provenance;
pub mod secrets;
pub mod services;
pub mod state;

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic, Outcome, Sources, Span};
use crate::load::yaml::{Node, Value};
use crate::load::{Input, RepoInputs, DEFAULTS_KEY};
use crate::names;
use crate::repo::layout::CONTROLCENTER_FILE;
pub use state::{ServiceState, State};

use crate::settings::Settings;

/// One environment, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedEnv {
    /// The state handed to the library.
    pub state: State,
    /// Where each enabled service is declared, for later diagnostics.
    pub service_spans: BTreeMap<String, Span>,
    /// The environment's key in controlcenter.yaml.
    pub env_span: Span,
    /// Keys of the enabled services a selection left unresolved (their
    /// names were still checked for collisions).
    pub unresolved: Vec<String>,
    /// Enabled services left unresolved because the memo knew their
    /// inputs ([`memo`]): not in `state.services`, but rendered.
    pub memoized: std::collections::BTreeSet<String>,
    /// The digest of each service's state ([`memo::service_digest`]) by
    /// key, where known: every memoized service, and, with a memo, every
    /// service resolved.
    pub digests: foldhash::HashMap<String, [u8; 32]>,
    /// What the memo is to hold after this render: each service's input
    /// key and state digest ([`memo::entry`]).
    pub memo_entries: Vec<[u8; memo::ENTRY_BYTES]>,
}

impl ResolvedEnv {
    /// Each enabled service's key span by its Kubernetes name (what
    /// rendered objects carry in `app.kubernetes.io/name`).
    pub fn spans_by_name(&self) -> BTreeMap<String, Span> {
        let resolved = self
            .state
            .services
            .values()
            .map(|s| (&s.key, s.name.clone()));
        let memoized = self
            .memoized
            .iter()
            .filter_map(|k| Some((k, names::dns_label(k)?)));
        resolved
            .chain(memoized)
            .filter_map(|(key, name)| Some((name, *self.service_spans.get(key)?)))
            .collect()
    }

    /// The keys of the services rendered: resolved or memoized, sorted.
    pub fn rendered_keys(&self) -> Vec<&String> {
        let mut keys: Vec<&String> = self.state.services.keys().chain(&self.memoized).collect();
        if !self.memoized.is_empty() {
            keys.sort_unstable();
        }
        keys
    }
}

/// tags.yaml's entries by service key (the first of a repeated key, as
/// [`Node::get`] finds it).
pub fn tags_index(tags: Option<&Input>) -> foldhash::HashMap<&str, &Node> {
    let mut index = foldhash::HashMap::default();
    for e in tags.and_then(|t| t.root.as_map()).unwrap_or_default() {
        index.entry(e.key.as_str()).or_insert(&e.value);
    }
    index
}

/// Every (service, git_rev) some environment of controlcenter.yaml uses,
/// after merging `defaults`: what `tags prune` must keep.
pub fn referenced_revisions(inputs: &RepoInputs) -> std::collections::BTreeSet<(String, String)> {
    let root = &inputs.controlcenter.root;
    let mut out = std::collections::BTreeSet::new();
    for (env, _) in inputs.env_names() {
        let Some(section) = root.get(&env) else {
            continue;
        };
        let merged = merge::merged_entries(root.get(DEFAULTS_KEY), section).unwrap_or_default();
        for e in &merged {
            if let Some(rev) = e.value.get("git_rev").and_then(Node::as_str) {
                out.insert((e.key.clone(), rev.to_owned()));
            }
        }
    }
    out
}

/// The error for an environment that is not in controlcenter.yaml.
pub fn unknown_env(inputs: &RepoInputs, env: &str) -> Diagnostic {
    let envs = inputs.env_names();
    let known: Vec<String> = envs.iter().map(|(n, _)| n.clone()).collect();
    let mut d = Diagnostic::error(
        Code::UnknownEnv,
        format!("environment `{env}` is not defined in {CONTROLCENTER_FILE}"),
    );
    d = match envs.first() {
        Some((_, span)) => d.at(*span, "environments are defined at the top level"),
        None => d.at(inputs.controlcenter.root.span, "no environment is defined"),
    };
    d.note(format!("known environments: {}", display_list(&known)))
        .help(format!(
            "add a `{env}:` section to {CONTROLCENTER_FILE}, or pick a known environment"
        ))
}

/// `a, b, c` or `(none)`.
pub fn display_list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// What resolving one environment reads.
pub struct ResolveInput<'a> {
    /// The repository-wide inputs.
    pub inputs: &'a RepoInputs,
    /// The environment's env-<env>.yaml, validated.
    pub env_file: &'a Input,
    /// For the text of plain scalars.
    pub sources: &'a Sources,
    /// Repository settings.
    pub settings: &'a Settings,
    /// Service fields the repository's schema adds.
    pub extra_fields: &'a std::collections::BTreeSet<String>,
    /// Of those, the ones it marks secret (`writeOnly`).
    pub secret_fields: &'a std::collections::BTreeSet<String>,
    /// The environment (it exists in controlcenter.yaml).
    pub env: &'a str,
    /// Replaces the environment name as the namespace when the section
    /// sets none.
    pub default_namespace: Option<&'a str>,
    /// Resolve only these services (`--service`): the others are only
    /// named, for collisions. `None` for every service.
    pub only: Option<&'a std::collections::BTreeSet<String>>,
    /// What services resolved to before: those whose inputs it knows are
    /// left unresolved ([`ResolvedEnv::memoized`]).
    pub memo: Option<&'a memo::ServiceMemo>,
}

/// Resolves one environment into the state the library receives.
pub fn resolve_env(input: &ResolveInput<'_>) -> Outcome<ResolvedEnv> {
    let ResolveInput {
        inputs,
        env_file,
        sources,
        settings,
        extra_fields,
        secret_fields,
        env,
        default_namespace,
        only,
        memo,
    } = *input;
    let root = &inputs.controlcenter.root;
    let section = root
        .get(env)
        .ok_or_else(|| vec![unknown_env(inputs, env)])?;
    // Defaults merge under the section entry by entry: only what both
    // define is copied.
    let merged = merge::merged_entries(root.get(DEFAULTS_KEY), section).unwrap_or_default();
    let protected = settings.protected_envs.iter().any(|p| p == env);
    let mut diags = Vec::new();

    // Split the section: services, parameters, params:, namespace.
    let mut params: BTreeMap<String, Json> = BTreeMap::new();
    let mut param_spans: BTreeMap<String, Span> = BTreeMap::new();
    let mut service_nodes = Vec::new();
    if let Some(ns) = default_namespace.filter(|ns| !names::is_dns1123_label(ns)) {
        // From --namespace or ARGOCD_APP_NAMESPACE: it names directories.
        return Err(vec![Diagnostic::error(
            Code::InvalidName,
            format!(
                "the namespace `{}` is not a valid Kubernetes namespace",
                names::clip(ns)
            ),
        )
        .help("a namespace is a DNS-1123 label: lowercase letters, digits and `-`, at most 63 characters")]);
    }
    let mut namespace = default_namespace.unwrap_or(env).to_owned();
    for e in &merged {
        match (e.key.as_str(), &e.value.value) {
            ("namespace", Value::String(ns)) => namespace = ns.clone(),
            ("params", Value::Map(_)) => {
                for p in e.value.as_map().unwrap_or_default() {
                    insert_param(
                        &mut params,
                        &mut param_spans,
                        &mut diags,
                        &p.key,
                        p.key_span,
                        p.value.to_json(),
                    );
                }
            }
            (_, Value::Map(_)) => service_nodes.push(e),
            _ => insert_param(
                &mut params,
                &mut param_spans,
                &mut diags,
                &e.key,
                e.key_span,
                e.value.to_json(),
            ),
        }
    }

    // Terraform outputs, never overriding a hand-written key.
    {
        let file = env_file;
        let outputs = terraform_outputs(&file.root);
        let span = file.root.span;
        if let Some(first) = param_spans.get("terraform") {
            diags.push(
                Diagnostic::error(
                    Code::ParamClash,
                    "parameter `terraform` is reserved for env-file outputs",
                )
                .at(*first, "hand-written here")
                .related(
                    Span::new(span.file, 0, 0),
                    "Terraform outputs come from this file",
                )
                .help("rename the parameter; Terraform outputs appear as params.terraform"),
            );
        }
        params.insert(
            "terraform".to_owned(),
            Json::Object(outputs.values.into_iter().collect()),
        );
        if let Some(first) = param_spans.get("sensitive_outputs") {
            diags.push(
                Diagnostic::error(Code::ParamClash, "parameter `sensitive_outputs` is reserved")
                    .at(*first, "hand-written here")
                    .help("rename the parameter; params.sensitive_outputs lists the names of sensitive Terraform outputs"),
            );
        }
        params.insert(
            "sensitive_outputs".to_owned(),
            Json::Array(outputs.sensitive.into_iter().map(Json::String).collect()),
        );
    }

    let tags_index = tags_index(inputs.tags.as_ref());
    let ctx = services::Context {
        env,
        protected,
        settings,
        tags: inputs.tags.as_ref(),
        tags_index: &tags_index,
        sources,
        terraform: params.get("terraform"),
        extra_fields,
        secret_fields,
    };
    // Gathered boxed, then sorted and moved into the map once: inserting
    // each (a large value) into a growing map moved them again and again.
    let mut resolved_services: Vec<(String, Box<ServiceState>)> = Vec::new();
    let mut service_spans = BTreeMap::new();
    let mut unresolved = Vec::new();
    let mut by_name: BTreeMap<String, (String, Span)> = BTreeMap::new();
    // Services resolve independently, on every core; collisions are
    // found after, in file order. A service a selection leaves out is
    // only named: its name can still collide with a selected one's.
    let memo = memo.filter(|_| only.is_none()).and_then(|m| {
        Some((
            m,
            memo::MemoContext::new(inputs, sources, env, ctx.terraform)?,
        ))
    });
    let mut memoized = Vec::new();
    let mut digests = foldhash::HashMap::default();
    let mut memo_entries = Vec::new();
    let resolved = crate::parallel::map(&service_nodes, crate::parallel::cores(), |e| {
        if only.is_some_and(|o| !o.contains(&e.key)) {
            return (
                Ok(services::enabled_name(&e.key, &e.value).map(Named::Only)),
                None,
            );
        }
        let memo_key = memo.as_ref().and_then(|(_, c)| c.key(&e.key));
        let known = memo_key.and_then(|k| Some((k, memo.as_ref()?.0.get(&k)?)));
        if let Some((key, digest)) = known {
            if let Some(name) = names::dns_label(&e.key) {
                return (Ok(Some(Named::Memoized(name))), Some((key, digest)));
            }
        }
        let resolved = services::resolve_service(&ctx, &e.key, e.key_span, &e.value);
        let digest = match (&resolved, memo_key) {
            (Ok(Some(svc)), Some(key)) => memo::service_digest(&e.key, svc).map(|d| (key, d)),
            _ => None,
        };
        (
            resolved.map(|s| s.map(|s| Named::Resolved(Box::new(s)))),
            digest,
        )
    });
    for (e, (result, digest)) in service_nodes.iter().zip(resolved) {
        match result {
            Ok(None) => {}
            Ok(Some(named)) => {
                let name = match &named {
                    Named::Only(name) | Named::Memoized(name) => name,
                    Named::Resolved(svc) => &svc.name,
                };
                if let Some((other, other_span)) = by_name.get(name) {
                    diags.push(
                        Diagnostic::error(
                            Code::NameCollision,
                            format!("services `{other}` and `{}` both become `{name}`", e.key),
                        )
                        .at(e.key_span, "this service")
                        .related(*other_span, "collides with this one")
                        .help("rename one of them; `_` and `.` turn into `-` and letters are lowercased"),
                    );
                    continue;
                }
                by_name.insert(name.clone(), (e.key.clone(), e.key_span));
                if let Some((key, digest)) = digest {
                    digests.insert(e.key.clone(), digest);
                    memo_entries.push(memo::entry(&key, &digest));
                }
                match named {
                    Named::Only(_) => unresolved.push(e.key.clone()),
                    Named::Memoized(_) => {
                        service_spans.insert(e.key.clone(), e.key_span);
                        memoized.push(e.key.clone());
                    }
                    Named::Resolved(svc) => {
                        service_spans.insert(e.key.clone(), e.key_span);
                        resolved_services.push((e.key.clone(), svc));
                    }
                }
            }
            Err(d) => diags.extend(d),
        }
    }

    resolved_services.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let services: BTreeMap<String, ServiceState> = resolved_services
        .into_iter()
        .map(|(key, svc)| (key, *svc))
        .collect();

    let sealed_secrets = match &inputs.secrets {
        Some(file) => match secrets::sealed_secrets(file, env, &namespace) {
            Ok(s) => s,
            Err(d) => {
                diags.extend(d);
                BTreeMap::new()
            }
        },
        None => BTreeMap::new(),
    };

    if !diags.is_empty() {
        return Err(diags);
    }
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "controlcenter".to_owned(),
        ),
        (
            "app.kubernetes.io/part-of".to_owned(),
            names::label_value(&settings.part_of),
        ),
    ]);
    Ok(ResolvedEnv {
        state: State {
            env: env.to_owned(),
            namespace,
            protected,
            part_of: settings.part_of.clone(),
            params,
            services,
            sealed_secrets,
            labels,
        },
        service_spans,
        env_span: root.entry(env).map_or(root.span, |e| e.key_span),
        unresolved,
        memoized: memoized.into_iter().collect(),
        digests,
        memo_entries,
    })
}

/// A service of the environment: resolved, or (left out by a selection)
/// only named.
enum Named {
    Resolved(Box<ServiceState>),
    /// Left unresolved: the memo knew its inputs (its name).
    Memoized(String),
    Only(String),
}

fn insert_param(
    params: &mut BTreeMap<String, Json>,
    spans: &mut BTreeMap<String, Span>,
    diags: &mut Vec<Diagnostic>,
    key: &str,
    span: Span,
    value: Json,
) {
    if let Some(first) = spans.get(key) {
        diags.push(
            Diagnostic::error(Code::ParamClash, format!("parameter `{key}` is defined twice"))
                .at(span, "defined again here")
                .related(*first, "first defined here")
                .help("a parameter is either written in the environment section or under `params:`, not both"),
        );
        return;
    }
    spans.insert(key.to_owned(), span);
    params.insert(key.to_owned(), value);
}

/// Terraform outputs of an env file, unwrapped.
pub struct TerraformOutputs {
    /// Non-sensitive outputs.
    pub values: BTreeMap<String, Json>,
    /// Names of sensitive outputs (their values are dropped here).
    pub sensitive: Vec<String>,
}

/// Reads env-<env>.yaml: a free mapping, the raw `terraform output -json`
/// shape (`{name: {value, type, sensitive}}`), or a mix of the two; each
/// entry is read by its own shape. An output marked `sensitive: true`, at
/// any depth, is dropped whatever the rest of the file looks like: its
/// value never leaves this function, only its name.
pub fn terraform_outputs(root: &Node) -> TerraformOutputs {
    let mut out = TerraformOutputs {
        values: BTreeMap::new(),
        sensitive: Vec::new(),
    };
    for e in root.as_map().unwrap_or_default() {
        if crate::load::is_sensitive_output(&e.value) {
            out.sensitive.push(e.key.clone());
            continue;
        }
        let value = crate::load::output_value(&e.value);
        let v = without_sensitive(value, &e.key, &mut out.sensitive);
        out.values.insert(e.key.clone(), v);
    }
    out.sensitive.sort();
    out
}

/// The JSON of `node` with every nested sensitive output left out (its
/// dotted name goes to `sensitive`).
fn without_sensitive(node: &Node, path: &str, sensitive: &mut Vec<String>) -> Json {
    match &node.value {
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .filter_map(|e| {
                    let name = format!("{path}.{}", e.key);
                    if crate::load::is_sensitive_output(&e.value) {
                        sensitive.push(name);
                        return None;
                    }
                    Some((e.key.clone(), without_sensitive(&e.value, &name, sensitive)))
                })
                .collect(),
        ),
        // A sensitive element is left out as `null`: the others keep
        // their places.
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let name = format!("{path}[{i}]");
                    if crate::load::is_sensitive_output(n) {
                        sensitive.push(name);
                        return Json::Null;
                    }
                    without_sensitive(n, &name, sensitive)
                })
                .collect(),
        ),
        _ => node.to_json(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Sources;
    use crate::load::yaml::parse;

    #[test]
    fn raw_terraform_shape_is_unwrapped_and_sensitive_values_dropped() {
        let mut s = Sources::default();
        let text = "nat_ips:\n  value: [1.2.3.4]\n  type: [list, string]\n  sensitive: false\ndb_password:\n  value: hunter2\n  type: string\n  sensitive: true\n";
        let f = s.add("env-prod.yaml", text);
        let out = terraform_outputs(&parse(text, f).unwrap());
        assert_eq!(out.values["nat_ips"], serde_json::json!(["1.2.3.4"]));
        assert!(!out.values.contains_key("db_password"));
        assert_eq!(out.sensitive, vec!["db_password".to_owned()]);
    }

    #[test]
    fn a_sensitive_output_is_dropped_whatever_shape_the_file_has() {
        let mut sources = crate::diagnostics::Sources::default();
        // One plain key beside raw outputs; a nested output; extra fields.
        let text = "region: eu-west-1\ndb:\n  value: canary-1\n  type: string\n  sensitive: true\nnested:\n  inner:\n    value: canary-2\n    sensitive: true\n  plain: 1\nodd:\n  value: canary-3\n  sensitive: true\n  description: extra\nip:\n  value: 10.0.0.1\n  sensitive: false\n";
        let f = sources.add("env-dev.yaml", text);
        let out = terraform_outputs(&parse(text, f).unwrap());
        let all = serde_json::to_string(&out.values).unwrap();
        assert!(!all.contains("canary"), "{all}");
        assert_eq!(out.sensitive, ["db", "nested.inner", "odd"]);
        assert_eq!(out.values["ip"], "10.0.0.1");
        assert_eq!(out.values["region"], "eu-west-1");
        assert_eq!(out.values["nested"], serde_json::json!({"plain": 1}));
        // As an element of a list, plain or inside a raw output's value: left
        // out as null, the other elements in place.
        let text = "extra:\n  - value: canary-4\n    sensitive: true\n  - kept\nraw:\n  value:\n    - sensitive: true\n      password: canary-5\n  sensitive: false\n";
        let f = sources.add("env-prod.yaml", text);
        let out = terraform_outputs(&parse(text, f).unwrap());
        let all = serde_json::to_string(&out.values).unwrap();
        assert!(!all.contains("canary"), "{all}");
        assert_eq!(out.sensitive, ["extra[0]", "raw[0]"]);
        assert_eq!(out.values["extra"], serde_json::json!([null, "kept"]));
    }

    #[test]
    fn free_mapping_is_kept_as_is() {
        let mut s = Sources::default();
        let text = "db_endpoint: db.example.com\nirsa_role_arns:\n  svc: arn\n";
        let f = s.add("env-dev.yaml", text);
        let out = terraform_outputs(&parse(text, f).unwrap());
        assert_eq!(out.values["db_endpoint"], "db.example.com");
        assert!(out.sensitive.is_empty());
    }
}
