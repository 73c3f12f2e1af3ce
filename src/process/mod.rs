//! Post-process: turn what the templates returned into a checked, sorted
//! list of Kubernetes objects. Arrays and `*List` kinds are flattened,
//! objects without `apiVersion`/`kind` are walked (Tanka style, keys in
//! sorted order), `null` is skipped; every object must have apiVersion, kind
//! and metadata.name; duplicates, the Argo CD-owned instance label and
//! empty renders are refused. (Rules about the objects' content, plain
//! Secrets included, live in `rules/`.)

pub mod identity;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::evaluate::blame::locate;
use crate::names;
pub use identity::{ResourceId, ResourceKey};

/// Label Argo CD sets on everything it tracks.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// One rendered Kubernetes object.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Identity.
    pub id: ResourceId,
    /// The object.
    pub value: Json,
    /// Where it was found in the template output (`[3]`, `.web.items[0]`).
    pub origin: String,
}

/// What post-processing needs to know about the environment.
pub struct ProcessOptions<'a> {
    /// Environment name (for messages).
    pub env: &'a str,
    /// Zero resources is fine.
    pub allow_empty: bool,
    /// Service DNS name → its key span in controlcenter.yaml, to locate problems.
    pub service_spans: &'a BTreeMap<String, Span>,
    /// The template entry point, where problems that no service explains are shown.
    pub entry: Option<Span>,
    /// The environment's section in controlcenter.yaml.
    pub env_span: Option<Span>,
    /// The entry point ran once per service and once for the environment
    /// (`settings.evaluation: per-service`).
    pub per_service: bool,
}

/// The value at a path of object keys: [`Json::pointer`] without parsing
/// and unescaping a pointer for every object checked.
pub fn at<'a>(value: &'a Json, path: &[&str]) -> Option<&'a Json> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Extracts, checks and sorts the objects of a template result: each value
/// with where it sits in the output (`[3]`; `""` for the whole result).
/// Every object that could be extracted is returned, beside every problem
/// found.
pub fn process(
    output: Vec<(String, Json)>,
    opts: &ProcessOptions<'_>,
) -> (Vec<Resource>, Vec<Diagnostic>) {
    let mut found = Vec::with_capacity(output.len());
    let mut diags = Vec::new();
    for (path, value) in output {
        extract(value, path, &mut found, &mut diags, opts);
    }

    let mut resources: Vec<Resource> = Vec::with_capacity(found.len());
    let mut seen: HashMap<ResourceKey, usize> = HashMap::with_capacity(found.len());
    for r in found {
        let key = r.id.key();
        if let Some(&first) = seen.get(&key) {
            let other = &resources[first];
            diags.push(locate(
                Diagnostic::error(
                    Code::DuplicateResource,
                    format!(
                        "{} is emitted twice (at {} and at {})",
                        r.id.display(),
                        other.origin,
                        r.origin
                    ),
                )
                .help(if opts.per_service {
                    "each object must be unique by group, kind, namespace and name. The entry point runs once per service and once for the environment: return objects that belong to no service from the library's `extraManifests` (rendered once), or set `settings.evaluation: environment`"
                } else {
                    "each object must be unique by group, kind, namespace and name; rename one or drop the duplicate template"
                }),
                &r.value,
                opts.service_spans,
                opts.entry,
            ));
            continue;
        }
        check(&r, &mut diags, opts);
        seen.insert(key, resources.len());
        resources.push(r);
    }
    if resources.is_empty() && !opts.allow_empty && diags.is_empty() {
        let mut d = Diagnostic::error(
            Code::EmptyRender,
            format!("environment `{}` renders no resources", opts.env),
        );
        if let Some(span) = opts.env_span {
            d = d.at(span, "this environment renders nothing");
        }
        diags.push(
            d
            .help(format!(
                "an empty render makes Argo CD prune everything; if that is intended, add `{}` to settings.allow_empty_envs",
                opts.env
            )),
        );
    }
    identity::sort_in_output_order(&mut resources, |r| &r.id);
    (resources, diags)
}

fn extract(
    value: Json,
    path: String,
    out: &mut Vec<Resource>,
    diags: &mut Vec<Diagnostic>,
    opts: &ProcessOptions<'_>,
) {
    match value {
        Json::Null => {}
        Json::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                extract(item, format!("{path}[{i}]"), out, diags, opts);
            }
        }
        Json::Object(mut map) => {
            let has_api = map.contains_key("apiVersion");
            let has_kind = map.contains_key("kind");
            if has_api && has_kind {
                let is_list = map
                    .get("kind")
                    .and_then(Json::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && map.get("items").is_some_and(Json::is_array);
                if is_list {
                    let items = map.remove("items").unwrap_or_default();
                    extract(items, format!("{path}.items"), out, diags, opts);
                    return;
                }
                let value = Json::Object(map);
                match ResourceId::of(&value) {
                    Some(id) if !id.name.is_empty() && !id.kind.is_empty() && !id.api_version.is_empty() => {
                        out.push(Resource {
                            id,
                            value,
                            origin: display_origin(&path),
                        });
                    }
                    _ => diags.push(locate(
                        Diagnostic::error(
                            Code::InvalidResource,
                            format!(
                                "the object at {} has no metadata.name (or an empty apiVersion/kind)",
                                display_origin(&path)
                            ),
                        )
                        .help("every Kubernetes object needs apiVersion, kind and metadata.name"),
                        &value,
                        opts.service_spans,
                        opts.entry,
                    )),
                }
            } else if has_api || has_kind {
                let missing = if has_api { "kind" } else { "apiVersion" };
                let value = Json::Object(map);
                diags.push(locate(
                    Diagnostic::error(
                        Code::InvalidResource,
                        format!("the object at {} has no {missing}", display_origin(&path)),
                    )
                    .help("every Kubernetes object needs apiVersion, kind and metadata.name"),
                    &value,
                    opts.service_spans,
                    opts.entry,
                ));
            } else {
                // A plain object groups resources: walk its fields in key order.
                for (k, v) in map {
                    extract(v, format!("{path}.{k}"), out, diags, opts);
                }
            }
        }
        other => diags.push(locate(
            Diagnostic::error(
                Code::InvalidResource,
                format!(
                    "the template output has a {} at {}, not a Kubernetes object",
                    json_type(&other),
                    display_origin(&path)
                ),
            )
            .help("the entry point must return an array (or object) of Kubernetes objects"),
            &other,
            opts.service_spans,
            opts.entry,
        )),
    }
}

/// The identity of an object must be valid Kubernetes: a name of the form
/// its kind requires, a DNS-1123 label as namespace, a plain kind and
/// apiVersion. Output file names are built from these parts only.
fn identity_problem(id: &ResourceId) -> Option<String> {
    if !names::is_api_version(&id.api_version) {
        return Some(format!(
            "its apiVersion `{}` is not `version` or `group/version`",
            names::clip(&id.api_version)
        ));
    }
    if !names::is_kind(&id.kind) {
        return Some(format!(
            "its kind `{}` is not a Kubernetes kind (letters and digits)",
            names::clip(&id.kind)
        ));
    }
    if !id.namespace.is_empty() && !names::is_dns1123_label(&id.namespace) {
        return Some(format!(
            "its namespace `{}` is not a DNS-1123 label (lowercase letters, digits and `-`, at most 63 characters)",
            names::clip(&id.namespace)
        ));
    }
    names::object_name_problem(&id.group, &id.kind, &id.name)
        .map(|form| format!("its name `{}` is not {form}", names::clip(&id.name)))
}

fn check(r: &Resource, diags: &mut Vec<Diagnostic>, opts: &ProcessOptions<'_>) {
    if let Some(problem) = identity_problem(&r.id) {
        diags.push(locate(
            Diagnostic::error(
                Code::InvalidObjectName,
                format!("the object at {}: {problem}", r.origin),
            )
            .help(
                "Kubernetes would refuse the object; fix the template or the input that names it",
            ),
            &r.value,
            opts.service_spans,
            opts.entry,
        ));
    }
    let label_paths: [&[&str]; 3] = [
        &["metadata", "labels"],
        &["spec", "template", "metadata", "labels"],
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "metadata",
            "labels",
        ],
    ];
    for path in label_paths {
        if at(&r.value, path)
            .and_then(|l| l.get(INSTANCE_LABEL))
            .is_some()
        {
            let p = format!("/{}", path.join("/"));
            diags.push(locate(
                Diagnostic::error(
                    Code::ReservedLabel,
                    format!(
                        "{} sets the label {INSTANCE_LABEL} (at {p})",
                        r.id.display()
                    ),
                )
                .help(
                    "Argo CD owns this label to track its resources; remove it from the template",
                ),
                &r.value,
                opts.service_spans,
                opts.entry,
            ));
        }
    }
}

fn display_origin(path: &str) -> String {
    if path.is_empty() {
        "the top level".to_owned()
    } else {
        format!("output{path}")
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: Json) -> Result<Vec<Resource>, Vec<Diagnostic>> {
        let spans = BTreeMap::new();
        let (resources, diags) = process(
            vec![(String::new(), v)],
            &ProcessOptions {
                env: "dev",
                allow_empty: false,
                service_spans: &spans,
                entry: None,
                env_span: None,
                per_service: false,
            },
        );
        if diags.is_empty() {
            Ok(resources)
        } else {
            Err(diags)
        }
    }

    fn obj(kind: &str, name: &str) -> Json {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "dev"}})
    }

    #[test]
    fn lists_and_nested_objects_are_flattened_and_sorted() {
        let out = run(json!([
            {"apiVersion": "v1", "kind": "List", "items": [obj("Service", "b"), obj("ConfigMap", "a")]},
            {"web": {"sa": obj("ServiceAccount", "w")}},
            null
        ]))
        .unwrap();
        let kinds: Vec<&str> = out.iter().map(|r| r.id.kind.as_str()).collect();
        assert_eq!(kinds, ["ServiceAccount", "ConfigMap", "Service"]);
        assert_eq!(out[0].origin, "output[1].web.sa");
    }

    #[test]
    fn duplicates_name_both_origins() {
        let errs = run(json!([obj("Service", "a"), obj("Service", "a")])).unwrap_err();
        assert_eq!(errs[0].code, Code::DuplicateResource);
        assert!(errs[0].message.contains("output[0]") && errs[0].message.contains("output[1]"));
    }

    #[test]
    fn objects_need_identity() {
        let errs = run(
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, {"kind": "X"}, 3]),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3);
        assert!(errs.iter().all(|d| d.code == Code::InvalidResource));
    }

    #[test]
    fn instance_label_and_empty_render_are_refused() {
        let mut labelled = obj("ConfigMap", "a");
        labelled["metadata"]["labels"] = json!({"app.kubernetes.io/instance": "x"});
        assert_eq!(
            run(json!([labelled])).unwrap_err()[0].code,
            Code::ReservedLabel
        );
        assert_eq!(run(json!([])).unwrap_err()[0].code, Code::EmptyRender);
    }
}
