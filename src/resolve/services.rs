//! One service of one environment: git_rev → image, knobs defaulted, names
//! made DNS-safe, values the user wrote kept as written.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::redact::{MaybeSecret, Secret};
use serde_json::Value as Json;

use super::state::{Autoscaling, CloudResource, Ingress, Probes, SecretRef, ServiceState};
use crate::diagnostics::{Code, Diagnostic, Sources, Span};
use crate::load::yaml::{Node, Value};
use crate::load::Input;
use crate::names;
use crate::repo::layout::TAGS_FILE;

/// Default container port.
pub const DEFAULT_PORT: u16 = 8080;
/// Default probe path.
pub const DEFAULT_PROBE_PATH: &str = "/healthz";
/// Default target CPU utilisation of an HPA, in percent.
pub const DEFAULT_CPU_UTILIZATION: u32 = 80;

/// What every service of one environment resolves against.
pub struct Context<'a> {
    /// Environment name.
    pub env: &'a str,
    /// Whether the environment is protected.
    pub protected: bool,
    /// Which rules are on.
    pub settings: &'a crate::settings::Settings,
    /// tags.yaml.
    pub tags: Option<&'a Input>,
    /// tags.yaml's services by key (a lookup per service must not scan
    /// the file: that is quadratic in the number of services).
    pub tags_index: &'a foldhash::HashMap<&'a str, &'a Node>,
    /// For the text of plain scalars.
    pub sources: &'a Sources,
    /// params.terraform.
    pub terraform: Option<&'a Json>,
    /// Service fields the repo's schema adds.
    pub extra_fields: &'a BTreeSet<String>,
    /// Of those, the ones it marks secret (`writeOnly`).
    pub secret_fields: &'a BTreeSet<String>,
}

/// The typed knobs (already schema-checked; fields the resolver reads raw,
/// like `env` and quantities, are taken from the node instead).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Knobs {
    git_rev: Option<String>,
    enabled: Option<bool>,
    replicas: Option<u32>,
    port: Option<u16>,
    flags: BTreeMap<String, bool>,
    probes: Option<ProbesKnob>,
    autoscaling: Option<AutoscalingKnob>,
    disruption_budget: Option<BTreeMap<String, Json>>,
    ingress: Option<IngressKnob>,
    irsa_role_arn: Option<String>,
    secrets: BTreeMap<String, SecretKnob>,
    resources: BTreeMap<String, ResourceKnob>,
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct AutoscalingKnob {
    min_replicas: Option<u32>,
    max_replicas: u32,
    cpu_utilization: Option<u32>,
}

#[derive(Deserialize)]
struct IngressKnob {
    host: String,
    path: Option<String>,
    class: Option<String>,
    tls_secret: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct SecretKnob {
    store: String,
    key: String,
    property: Option<String>,
}

#[derive(Deserialize)]
struct ResourceKnob {
    module: String,
    #[serde(default)]
    variables: BTreeMap<String, Json>,
}

#[derive(Deserialize, Default)]
struct ProbesKnob {
    path: Option<String>,
    initial_delay_seconds: Option<u32>,
}

/// The Kubernetes name of a service, unless it is disabled (or its key
/// makes no name): what a service left out of a render still claims.
pub fn enabled_name(key: &str, node: &Node) -> Option<String> {
    if node
        .get("enabled")
        .is_some_and(|n| n.value == crate::load::yaml::Value::Bool(false))
    {
        return None;
    }
    names::dns_label(key)
}

/// Resolves one service; `Ok(None)` when it is disabled.
pub fn resolve_service(
    ctx: &Context<'_>,
    key: &str,
    key_span: Span,
    node: &Node,
) -> Result<Option<ServiceState>, Vec<Diagnostic>> {
    let knobs: Knobs = serde_json::from_value(strip_raw_fields(node.to_json(), ctx.extra_fields))
        .map_err(|e| {
        vec![
            Diagnostic::error(Code::SchemaViolation, format!("service `{key}`: {e}"))
                .at(key_span, "in this service"),
        ]
    })?;
    if knobs.enabled == Some(false) {
        return Ok(None);
    }
    let mut diags = Vec::new();
    let name = names::dns_label(key);
    if name.is_none() {
        diags.push(
            Diagnostic::error(
                Code::InvalidName,
                format!("service `{key}` cannot be turned into a Kubernetes name"),
            )
            .at(key_span, "service key")
            .help("use letters, digits, `-` or `_`, start with a letter, end with a letter or digit, at most 63 characters"),
        );
    }
    let image = match (&knobs.git_rev, node.get("git_rev")) {
        (Some(rev), Some(rev_node)) => match lookup_image(ctx, key, rev, rev_node.span) {
            Ok((image, image_span)) => {
                let checked = crate::rules::TagImage {
                    service: key,
                    env: ctx.env,
                    image: &image,
                    rev_span: rev_node.span,
                    image_span,
                };
                let refused = crate::rules::check_tag_image(&checked, ctx.settings, ctx.protected);
                let ok = refused.is_empty();
                diags.extend(refused);
                Some(image).filter(|_| ok)
            }
            Err(d) => {
                diags.push(d);
                None
            }
        },
        _ => {
            diags.push(
                Diagnostic::error(
                    Code::MissingGitRev,
                    format!("service `{key}` has no `git_rev` in environment `{}`", ctx.env),
                )
                .at(key_span, "this service")
                .help("add `git_rev: <tag, branch or commit>`, or `enabled: false` to leave it out of this environment"),
            );
            None
        }
    };

    let replicas = knobs.replicas.unwrap_or(1);
    let autoscaling = knobs.autoscaling.map(|a| Autoscaling {
        min_replicas: a.min_replicas.unwrap_or(replicas.max(1)),
        max_replicas: a.max_replicas,
        cpu_utilization: a.cpu_utilization.unwrap_or(DEFAULT_CPU_UTILIZATION),
    });
    if let Some(a) = &autoscaling {
        if a.min_replicas > a.max_replicas {
            let span = node.get("autoscaling").map_or(key_span, |n| n.span);
            diags.push(
                Diagnostic::error(
                    Code::SchemaViolation,
                    format!(
                        "service `{key}`: autoscaling min_replicas ({}) is above max_replicas ({})",
                        a.min_replicas, a.max_replicas
                    ),
                )
                .at(span, "autoscaling")
                .help("min_replicas defaults to replicas; set it explicitly or raise max_replicas"),
            );
        }
    }
    // Read from the node: serde cannot tell `probes: null` (off) from absent.
    let probes = match node.get("probes").map(|n| &n.value) {
        Some(Value::Null) => None,
        _ => {
            let p = knobs.probes.unwrap_or(ProbesKnob {
                path: None,
                initial_delay_seconds: None,
            });
            Some(Probes {
                path: p.path.unwrap_or_else(|| DEFAULT_PROBE_PATH.to_owned()),
                initial_delay_seconds: p.initial_delay_seconds.unwrap_or(5),
            })
        }
    };
    let irsa_role_arn = knobs.irsa_role_arn.or_else(|| {
        ctx.terraform
            .and_then(|t| t.get("irsa_role_arns"))
            .and_then(|m| m.get(key))
            .and_then(Json::as_str)
            .map(str::to_owned)
    });
    let extra = node
        .as_map()
        .unwrap_or_default()
        .iter()
        .filter(|e| ctx.extra_fields.contains(&e.key))
        .map(|e| {
            let value = e.value.to_json();
            let value = if ctx.secret_fields.contains(&e.key) {
                MaybeSecret::Secret(Secret::new(value))
            } else {
                MaybeSecret::Plain(value)
            };
            (e.key.clone(), value)
        })
        .collect();

    if !diags.is_empty() {
        return Err(diags);
    }
    let (Some(name), Some(image), Some(git_rev)) = (name, image, knobs.git_rev) else {
        return Err(diags);
    };
    Ok(Some(ServiceState {
        key: key.to_owned(),
        name,
        version: names::label_value(&git_rev),
        git_rev,
        image,
        replicas,
        port: knobs.port.unwrap_or(DEFAULT_PORT),
        memory_min: written_text(ctx.sources, node.get("memory_min")),
        memory_max: written_text(ctx.sources, node.get("memory_max")),
        cpu_min: written_text(ctx.sources, node.get("cpu_min")),
        cpu_max: written_text(ctx.sources, node.get("cpu_max")),
        env: node
            .get("env")
            .and_then(Node::as_map)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| Some((e.key.clone(), written_text(ctx.sources, Some(&e.value))?)))
            .collect(),
        flags: knobs.flags,
        probes,
        autoscaling,
        disruption_budget: knobs.disruption_budget,
        ingress: knobs.ingress.map(|i| Ingress {
            host: i.host,
            path: i.path.unwrap_or_else(|| "/".to_owned()),
            class: i.class,
            tls_secret: i.tls_secret,
            annotations: i.annotations,
        }),
        irsa_role_arn,
        secrets: knobs
            .secrets
            .into_iter()
            .map(|(k, s)| {
                (
                    k,
                    SecretRef {
                        store: s.store,
                        key: s.key,
                        property: s.property,
                    },
                )
            })
            .collect(),
        resources: knobs
            .resources
            .into_iter()
            .map(|(k, r)| {
                (
                    k,
                    CloudResource {
                        module: r.module,
                        variables: r.variables,
                    },
                )
            })
            .collect(),
        annotations: knobs.annotations,
        extra,
    }))
}

/// Drops fields read raw (and repo extensions) before typed decoding.
fn strip_raw_fields(mut v: Json, extra: &BTreeSet<String>) -> Json {
    if let Some(m) = v.as_object_mut() {
        for k in ["env", "memory_min", "memory_max", "cpu_min", "cpu_max"] {
            m.remove(k);
        }
        m.retain(|k, _| !extra.contains(k));
    }
    v
}

/// A scalar as the user wrote it: strings as they are, plain numbers and
/// booleans by their source text (`0755` stays `0755`, `1.10` stays `1.10`).
fn written_text(sources: &Sources, node: Option<&Node>) -> Option<String> {
    let node = node?;
    match &node.value {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Bool(_) | Value::Number(_) if node.plain => {
            let text = &sources.get(node.span.file).text;
            text.get(node.span.start..node.span.end).map(str::to_owned)
        }
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Seq(_) | Value::Map(_) => None,
    }
}

/// `tags.yaml[service][rev]` and where it is written.
fn lookup_image(
    ctx: &Context<'_>,
    key: &str,
    rev: &str,
    rev_span: Span,
) -> Result<(String, Span), Diagnostic> {
    let Some(tags) = ctx.tags else {
        return Err(Diagnostic::error(
            Code::MissingTag,
            format!("no image for `{key}` at `{rev}`: {TAGS_FILE} does not exist"),
        )
        .at(rev_span, "this revision")
        .help(format!("CI writes {TAGS_FILE} after each build (`controlcenter tags set`); commit it at the repository root")));
    };
    let Some(service) = ctx.tags_index.get(key) else {
        return Err(Diagnostic::error(
            Code::MissingTag,
            format!("{TAGS_FILE} has no images for service `{key}`"),
        )
        .at(rev_span, "no image for this revision")
        .help(format!(
            "CI adds `{key}:` to {TAGS_FILE} after its first build; check the service name"
        )));
    };
    let Some(entry) = service.entry(rev) else {
        let known: Vec<String> = service
            .as_map()
            .unwrap_or_default()
            .iter()
            .map(|e| e.key.clone())
            .collect();
        return Err(Diagnostic::error(
            Code::MissingTag,
            format!("{TAGS_FILE} has no image for `{key}` at revision `{rev}`"),
        )
        .at(rev_span, "no image for this revision")
        .related(
            tags_key_span(tags, key),
            format!("known revisions of `{key}`"),
        )
        .note(format!("known revisions: {}", super::display_list(&known)))
        .help(
            "CI may not have built this revision yet; wait for the build, or pick a known revision",
        ));
    };
    let image = entry.value.as_str().unwrap_or_default().to_owned();
    Ok((image, entry.value.span))
}
fn tags_key_span(tags: &Input, key: &str) -> Span {
    tags.root.entry(key).map_or(tags.root.span, |e| e.key_span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Sources;
    use crate::load::yaml::parse;

    /// Every knob of the service schema, with a valid value. The schema is
    /// the one list of knobs: adding one there fails this table until the
    /// knob is decoded, reaches the state and is documented.
    const EVERY_KNOB: &[(&str, &str)] = &[
        ("git_rev", "v1"),
        ("enabled", "true"),
        ("replicas", "2"),
        ("port", "9090"),
        ("memory_min", "1Gi"),
        ("memory_max", "2Gi"),
        ("cpu_min", "100m"),
        ("cpu_max", "1"),
        ("env", "{A: b}"),
        ("flags", "{beta: true}"),
        ("probes", "{path: /ready}"),
        ("autoscaling", "{max_replicas: 4}"),
        ("disruption_budget", "{min_available: 1}"),
        ("ingress", "{host: svc.example.com}"),
        ("irsa_role_arn", "arn:aws:iam::123456789012:role/svc"),
        ("secrets", "{DB_PASSWORD: {store: vault, key: db}}"),
        ("resources", "{db: {module: rds}}"),
        ("annotations", "{a: b}"),
    ];

    #[test]
    fn every_schema_knob_is_decoded_reaches_the_state_and_is_documented() {
        let schema: serde_json::Value =
            serde_json::from_str(crate::validate::schema::CONTROLCENTER_SCHEMA).unwrap();
        let in_schema: BTreeSet<&str> = schema["$defs"]["service"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let in_table: BTreeSet<&str> = EVERY_KNOB.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            in_schema, in_table,
            "EVERY_KNOB lists the schema's service properties"
        );

        let yaml: String = EVERY_KNOB
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        // Valid for the schema, decoded (Knobs refuses unknown fields) and resolved.
        let mut sources = Sources::default();
        let text = format!(
            "dev:\n  svc:\n{}",
            yaml.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        );
        let file = sources.add("controlcenter.yaml", text.as_str());
        let problems = crate::validate::schema::SchemaSet::new(None)
            .unwrap()
            .check(
                crate::validate::schema::InputKind::ControlCenter,
                &parse(&text, file).unwrap(),
            );
        assert!(problems.is_empty(), "{problems:?}");
        let state = serde_json::to_value(resolve(&yaml)).unwrap();
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/state.md")).unwrap();
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        for knob in in_schema {
            // `enabled` decides whether the service is in the state at all.
            if knob != "enabled" {
                assert!(
                    !state[knob].is_null(),
                    "knob `{knob}` does not reach the state: {state}"
                );
                assert!(
                    docs.contains(&format!("\"{knob}\"")),
                    "docs/state.md does not document `{knob}`"
                );
            }
            assert!(
                readme.contains(knob),
                "README.md does not mention the knob `{knob}`"
            );
        }
    }

    fn resolve(service_yaml: &str) -> ServiceState {
        let mut sources = Sources::default();
        let tags_text = "svc:\n  v1: reg.io/svc:1\n";
        let tags_file = sources.add("tags.yaml", tags_text);
        let tags = Input {
            copies: Default::default(),
            file: tags_file,
            path: "tags.yaml".into(),
            root: parse(tags_text, tags_file).unwrap(),
        };
        let f = sources.add("c.yaml", service_yaml);
        let node = parse(service_yaml, f).unwrap();
        let extra = BTreeSet::new();
        let settings = crate::settings::Settings::default();
        let tags_index = super::super::tags_index(Some(&tags));
        let ctx = Context {
            env: "dev",
            protected: false,
            settings: &settings,
            tags: Some(&tags),
            tags_index: &tags_index,
            sources: &sources,
            terraform: None,
            extra_fields: &extra,
            secret_fields: &BTreeSet::new(),
        };
        resolve_service(&ctx, "svc", node.span, &node)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn probes_default_on_and_null_turns_them_off() {
        assert_eq!(resolve("git_rev: v1\n").probes.unwrap().path, "/healthz");
        assert!(resolve("git_rev: v1\nprobes: null\n").probes.is_none());
        assert_eq!(
            resolve("git_rev: v1\nprobes: {path: /ready}\n")
                .probes
                .unwrap()
                .path,
            "/ready"
        );
    }

    #[test]
    fn env_values_keep_the_text_written() {
        let s =
            resolve("git_rev: v1\nenv: {A: 0755, B: 1.10, C: yes, D: \"~\", E: true, F: 8080}\n");
        let got: Vec<(&str, &str)> = s
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "0755"),
                ("B", "1.10"),
                ("C", "yes"),
                ("D", "~"),
                ("E", "true"),
                ("F", "8080")
            ]
        );
    }
}
