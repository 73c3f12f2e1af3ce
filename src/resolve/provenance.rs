//! Where each value of the resolved state comes from in the input files:
//! the inverse of resolving, for `explain`. A state path
//! (`services.service_rpps.replicas`) maps to the lines that set it
//! (controlcenter.yaml's environment section or `defaults`, tags.yaml,
//! env-<env>.yaml, secrets.yaml), or to the built-in default.

use crate::diagnostics::Span;
use crate::load::yaml::Node;
use crate::load::{Input, RepoInputs, DEFAULTS_KEY, SETTINGS_KEY};
use crate::validate::outputs;

/// One input a state value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// What the input did: `from`, `chosen by`, `instead of`,
    /// `derived from`, `default`.
    pub role: &'static str,
    /// Where it is written, when it is.
    pub span: Option<Span>,
    /// The input's path in its file (`prod.service_rpps.replicas`), or
    /// what the default is.
    pub input: String,
}

/// What a state path is looked up in.
pub struct Inputs<'a> {
    /// The repository-wide inputs.
    pub repo: &'a RepoInputs,
    /// The environment's env file (or its placeholders).
    pub env_file: &'a Input,
    /// The environment.
    pub env: &'a str,
}

/// The inputs the state value at `path` comes from (empty for a value no
/// input sets, such as `unit`).
pub fn origins(inputs: &Inputs<'_>, path: &[String]) -> Vec<Origin> {
    let root = &inputs.repo.controlcenter.root;
    let env = inputs.env;
    let steps: Vec<&str> = path.iter().map(String::as_str).collect();
    match steps.as_slice() {
        ["services", key, "name" | "key", ..] => service_key(root, env, key),
        ["services", key, "version", ..] => written(root, env, key, &["git_rev"]),
        ["services", key, "image", ..] => image(inputs, key),
        ["services", key, "irsa_role_arn", ..] => {
            let own = written(root, env, key, &["irsa_role_arn"]);
            if !own.is_empty() {
                return own;
            }
            let output = outputs::unwrapped(&inputs.env_file.root);
            at(
                "from",
                output.get("irsa_role_arns").and_then(|m| m.get(key)),
                format!("irsa_role_arns.{key}"),
            )
            .into_iter()
            .collect()
        }
        ["services", key, "extra", rest @ ..] => or_default(written(root, env, key, rest), rest),
        ["services", key, rest @ ..] => or_default(written(root, env, key, rest), rest),
        ["params", "terraform", rest @ ..] => {
            let output = outputs::unwrapped(&inputs.env_file.root);
            let role = if inputs.env_file.path.contains("placeholders") {
                "placeholder from"
            } else {
                "from"
            };
            at(role, output.pointer(&pointer(rest)), dotted(rest))
                .into_iter()
                .collect()
        }
        ["params", "sensitive_outputs", ..] => vec![Origin {
            role: "from",
            span: Some(Span::new(inputs.env_file.root.span.file, 0, 0)),
            input: "the names of its sensitive outputs".to_owned(),
        }],
        ["params", name, rest @ ..] => {
            let found = section_value(root, env, |s| {
                s.get(name)
                    .or_else(|| s.get("params")?.get(name))
                    .and_then(|n| n.pointer(&pointer(rest)))
            });
            with_defaults(found, &format!("{}.{}", name, dotted(rest)))
        }
        ["namespace"] => {
            let found = section_value(root, env, |s| s.get("namespace"));
            if found.is_empty() {
                return vec![Origin {
                    role: "default",
                    span: root.entry(env).map(|e| e.key_span),
                    input: format!("the environment's name (`{env}`), as no `namespace` is set"),
                }];
            }
            with_defaults(found, "namespace")
        }
        ["env"] => vec![Origin {
            role: "derived from",
            span: root.entry(env).map(|e| e.key_span),
            input: format!("{env} (environment)"),
        }],
        ["labels", "app.kubernetes.io/part-of"] | ["part_of"] => {
            settings(root, "part_of", "`platform`")
        }
        ["labels", label] => vec![Origin {
            role: "default",
            span: None,
            input: format!("the label every object carries (`{label}`)"),
        }],
        ["protected"] => settings(root, "protected_envs", "`prod` is protected"),
        ["sealed_secrets", name, rest @ ..] => {
            let node = inputs
                .repo
                .secrets
                .as_ref()
                .and_then(|s| s.root.get(env)?.get(name)?.pointer(&pointer(rest)));
            at("from", node, format!("{env}.{name}.{}", dotted(rest)))
                .into_iter()
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Where a service's field is written: the environment section, and the
/// `defaults` it replaces (or `defaults` alone).
fn written(root: &Node, env: &str, key: &str, rest: &[&str]) -> Vec<Origin> {
    let path = format!("{key}.{}", dotted(rest));
    let found = section_value(root, env, |s| s.get(key)?.pointer(&pointer(rest)));
    with_defaults(found, &path)
}

/// `found` (per section: the environment's, then `defaults`) as origins:
/// the environment's value wins over the defaults it replaces.
fn with_defaults(found: Vec<(String, &Node)>, path: &str) -> Vec<Origin> {
    let mut out = Vec::new();
    for (section, node) in found {
        let role = if out.is_empty() { "from" } else { "instead of" };
        out.push(Origin {
            role,
            span: Some(node.span),
            input: format!("{section}.{path}"),
        });
    }
    out
}

/// `get` applied to the environment section, then to `defaults`, with
/// the section's name.
fn section_value<'n>(
    root: &'n Node,
    env: &str,
    get: impl Fn(&'n Node) -> Option<&'n Node>,
) -> Vec<(String, &'n Node)> {
    [env, DEFAULTS_KEY]
        .into_iter()
        .filter_map(|section| Some((section.to_owned(), get(root.get(section)?)?)))
        .collect()
}

/// A service's key: its name is derived from it.
fn service_key(root: &Node, env: &str, key: &str) -> Vec<Origin> {
    let entry = root
        .get(env)
        .and_then(|s| s.entry(key))
        .map(|e| (env.to_owned(), e.key_span))
        .or_else(|| {
            root.get(DEFAULTS_KEY)
                .and_then(|s| s.entry(key))
                .map(|e| (DEFAULTS_KEY.to_owned(), e.key_span))
        });
    entry
        .map(|(section, span)| Origin {
            role: "derived from",
            span: Some(span),
            input: format!("{section}.{key} (service key)"),
        })
        .into_iter()
        .collect()
}

/// A service's image: tags.yaml's entry for its git_rev, chosen by the
/// git_rev.
fn image(inputs: &Inputs<'_>, key: &str) -> Vec<Origin> {
    let root = &inputs.repo.controlcenter.root;
    let revs = written(root, inputs.env, key, &["git_rev"]);
    let rev = section_value(root, inputs.env, |s| s.get(key)?.get("git_rev"))
        .first()
        .and_then(|(_, n)| n.as_str().map(str::to_owned));
    let mut out: Vec<Origin> = rev
        .and_then(|rev| {
            let node = inputs.repo.tags.as_ref()?.root.get(key)?.get(&rev)?;
            at("from", Some(node), format!("{key}.{rev}"))
        })
        .into_iter()
        .collect();
    out.extend(revs.into_iter().take(1).map(|o| Origin {
        role: "chosen by",
        ..o
    }));
    out
}

/// A setting of controlcenter.yaml, or its built-in default.
fn settings(root: &Node, name: &str, default: &str) -> Vec<Origin> {
    match root.get(SETTINGS_KEY).and_then(|s| s.get(name)) {
        Some(node) => vec![Origin {
            role: "from",
            span: Some(node.span),
            input: format!("{SETTINGS_KEY}.{name}"),
        }],
        None => vec![Origin {
            role: "default",
            span: None,
            input: format!("settings.{name} is not set: {default}"),
        }],
    }
}

/// The built-in default of a service knob, when nothing sets it.
fn or_default(found: Vec<Origin>, rest: &[&str]) -> Vec<Origin> {
    if !found.is_empty() {
        return found;
    }
    vec![Origin {
        role: "default",
        span: None,
        input: format!("`{}` is not set: controlcenter's default", dotted(rest)),
    }]
}

fn at(role: &'static str, node: Option<&Node>, input: String) -> Option<Origin> {
    node.map(|n| Origin {
        role,
        span: Some(n.span),
        input,
    })
}

/// Path steps as a JSON pointer.
fn pointer(steps: &[&str]) -> String {
    steps
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Path steps joined with `.`.
fn dotted(steps: &[&str]) -> String {
    steps.join(".")
}
