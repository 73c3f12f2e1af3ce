//! Post-process: turn what the templates returned into a checked, sorted
//! list of Kubernetes objects. Arrays and `*List` kinds are flattened,
//! objects without `apiVersion`/`kind` are walked (Tanka style, keys in
//! sorted order), `null` is skipped; every object must have apiVersion, kind
//! and metadata.name; duplicates, the Argo CD-owned instance label and
//! empty renders are refused. (Rules about the objects' content, plain
//! Secrets included, live in `rules/`.)

mod canonical;
pub mod identity;

pub mod record;

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt as _};

use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::evaluate::blame::locate;
use crate::names;
pub use crate::text::Text;
pub use identity::{ResourceId, ResourceKey};
pub use record::CheckedObject;

/// Label Argo CD sets on everything it tracks.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// One object of the render, checked, held as compact JSON (keys sorted):
/// a render of thousands of services keeps each object as its text, a
/// tenth of its parsed size, and parses it again only to emit it.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Identity.
    pub id: ResourceId,
    /// Where it was found in the template output (`[3]`, `.web.items[0]`).
    pub origin: String,
    json: Text,
    /// Its YAML document, when made with it (or taken from the cache).
    yaml: Option<Text>,
}

impl Resource {
    /// The resource of an object: its value as compact JSON.
    pub fn new(id: ResourceId, value: &Json, origin: String) -> Self {
        Resource {
            id,
            origin,
            json: Text::new(serde_json::to_string(value).unwrap_or_default()),
            yaml: None,
        }
    }

    /// The resource of an object's compact JSON (keys sorted), as a
    /// record of an earlier render holds it.
    fn of_text(id: ResourceId, json: Text, origin: String, yaml: Option<Text>) -> Self {
        Resource {
            id,
            origin,
            json,
            yaml,
        }
    }

    /// Its YAML document (no leading `---`), when it was made with the
    /// object: what `emit` would make of it.
    pub fn yaml(&self) -> Option<&str> {
        self.yaml.as_ref().map(Text::as_str)
    }

    /// The resource of a value with an identity, for tests and tools.
    pub fn of_value(value: &Json) -> Option<Self> {
        Some(Resource::new(ResourceId::of(value)?, value, String::new()))
    }

    /// The object as compact JSON, keys sorted.
    pub fn json(&self) -> &str {
        self.json.as_str()
    }

    /// The object, parsed. Its text was made from a value: it parses.
    pub fn value(&self) -> Json {
        serde_json::from_str(self.json()).unwrap_or_default()
    }

    /// Replaces the object (its identity is kept).
    pub fn set_value(&mut self, value: &Json) {
        self.json = Text::new(serde_json::to_string(value).unwrap_or_default());
        self.yaml = None;
    }

    /// The object parsed, with its identity and origin, for the rules.
    pub fn to_object(&self) -> Object {
        Object {
            id: self.id.clone(),
            value: self.value(),
            origin: self.origin.clone(),
        }
    }
}

/// One object as the templates made it, parsed: what post-processing and
/// the rules check, a share of the render at a time.
#[derive(Clone, Debug)]
pub struct Object {
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
    /// Threads to process on.
    pub workers: usize,
    /// Make a record of each value found clean (for the cache), its
    /// objects' YAML documents included when `yaml` is set too.
    pub records: bool,
    /// Make each object's YAML document as it is checked.
    pub yaml: bool,
}

/// The value at a path of object keys: [`Json::pointer`] without parsing
/// and unescaping a pointer for every object checked.
pub fn at<'a>(value: &'a Json, path: &[&str]) -> Option<&'a Json> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// What a check reads of an object: the values at `paths` (where present),
/// in an object of the same shape, and nothing else.
pub fn pruned(value: &Json, paths: &[&[&str]]) -> Json {
    let mut out = Json::Object(serde_json::Map::new());
    for path in paths {
        let (Some(found), Some((last, parents))) = (at(value, path), path.split_last()) else {
            continue;
        };
        let mut slot = &mut out;
        for key in parents {
            let Json::Object(map) = slot else { break };
            slot = map
                .entry((*key).to_owned())
                .or_insert_with(|| Json::Object(serde_json::Map::new()));
        }
        if let Json::Object(map) = slot {
            map.insert((*last).to_owned(), found.clone());
        }
    }
    out
}

/// What the checks run as objects are made found about some of them.
#[derive(Default)]
pub struct Findings {
    /// Problems reported with post-processing's own.
    pub problems: Vec<Diagnostic>,
    /// Problems reported only when post-processing found none.
    pub later: Vec<Diagnostic>,
    /// What checks of the whole render will read of these objects (the
    /// parts they read, not the objects whole).
    pub kept: Vec<Resource>,
}

/// What post-processing made of a render.
#[derive(Default)]
pub struct Processed {
    /// When records were asked for: for each value, in output order, the
    /// record of what it was made into, when it was checked now (not taken
    /// from a record) and found clean.
    pub records: Vec<Option<Vec<CheckedObject>>>,
    /// Every object that could be extracted, checked and sorted.
    pub resources: Vec<Resource>,
    /// Problems of the objects, and what the checks of `Stage::Process`
    /// found.
    pub problems: Vec<Diagnostic>,
    /// What the checks run after post-processing found: reported only
    /// when there are no `problems`.
    pub later: Vec<Diagnostic>,
    /// What the checks kept of the objects, for checks of the whole render.
    pub kept: Vec<Resource>,
}

/// Extracts, checks and sorts the objects of a template result: each value
/// as compact JSON with where it sits in the output (`[3]`; `""` for the
/// whole result). Values are parsed and checked a share at a time on every
/// worker, `check` running on each value's objects (its problems, and its
/// later findings), and kept as text once checked: the render is never
/// held parsed whole. Every object that could be extracted is returned,
/// beside every problem found.
///
/// A value with a record (`records`, by output position: what an earlier
/// render of the same unit made of it and found clean under the same
/// checks) is taken from it, not parsed or checked again.
pub fn process(
    output: Vec<(String, String)>,
    records: Vec<Option<Vec<CheckedObject>>>,
    opts: &ProcessOptions<'_>,
    check: impl Fn(&[Object]) -> Findings + Sync,
) -> Processed {
    let mut processed = process_values(output, records, opts, check);
    finish(&mut processed.resources, &mut processed.problems, opts);
    processed
}

/// The first half of [`process`]: every value parsed, extracted and
/// checked (or taken from its record), its objects in output order. What
/// the checks kept is then complete: checks of the whole render can run
/// on it while [`finish`] orders the objects.
pub fn process_values(
    output: Vec<(String, String)>,
    records: Vec<Option<Vec<CheckedObject>>>,
    opts: &ProcessOptions<'_>,
    check: impl Fn(&[Object]) -> Findings + Sync,
) -> Processed {
    let workers = if output.len() < PARALLEL_FROM {
        1
    } else {
        opts.workers
    };
    // A few shares per worker, each made into one list: the bookkeeping of
    // a render of many objects is not one allocation per value. Records
    // are split alike (the same share sizes), when there are any.
    let shares = crate::parallel::split_owned(output, workers * 4);
    let mut records = records.into_iter();
    let shares: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let records: Vec<Option<Vec<CheckedObject>>> =
                records.by_ref().take(share.len()).collect();
            (share, records)
        })
        .collect();
    let shares = crate::parallel::map_owned(shares, workers, |(share, records)| {
        let mut resources = Vec::with_capacity(share.len());
        let mut findings = Findings::default();
        // Records made, one per value, when records are asked for.
        let mut made = Vec::with_capacity(if opts.records { share.len() } else { 0 });
        let mut records = records.into_iter();
        for (path, text) in share {
            let record = match records.next().flatten() {
                Some(record) => {
                    record::restore(&path, record, &mut resources, &mut findings.kept);
                    None
                }
                None => process_value(path, text, opts, &check, &mut resources, &mut findings),
            };
            if opts.records {
                made.push(record);
            }
        }
        (resources, findings, made)
    });
    let mut processed = Processed {
        resources: Vec::with_capacity(shares.iter().map(|(r, _, _)| r.len()).sum()),
        ..Processed::default()
    };
    for (resources, findings, made) in shares {
        processed.problems.extend(findings.problems);
        processed.later.extend(findings.later);
        processed.kept.extend(findings.kept);
        processed.resources.extend(resources);
        processed.records.extend(made);
    }
    processed
}

/// The second half of [`process`], on the objects of [`process_values`]
/// and its problems: an identity seen again is refused (the first stays),
/// an empty render too unless allowed, and the objects are sorted in
/// install order.
pub fn finish(
    resources: &mut Vec<Resource>,
    problems: &mut Vec<Diagnostic>,
    opts: &ProcessOptions<'_>,
) {
    // The first of each identity stays; keys borrow, nothing is copied.
    let mut repeated = Vec::new();
    {
        let all = &*resources;
        let mut seen: HashMap<_, usize> = HashMap::with_capacity(all.len());
        for (i, r) in all.iter().enumerate() {
            let key = r.id.key_parts();
            match seen.get(&key) {
                Some(&first) => {
                    problems.push(duplicate(&all[first], r, opts));
                    repeated.push(i);
                }
                None => {
                    seen.insert(key, i);
                }
            }
        }
    }
    if !repeated.is_empty() {
        let mut i = 0;
        resources.retain(|_| {
            i += 1;
            repeated.binary_search(&(i - 1)).is_err()
        });
    }
    if resources.is_empty() && !opts.allow_empty && problems.is_empty() {
        let mut d = Diagnostic::error(
            Code::EmptyRender,
            format!("environment `{}` renders no resources", opts.env),
        );
        if let Some(span) = opts.env_span {
            d = d.at(span, "this environment renders nothing");
        }
        problems.push(
            d
            .help(format!(
                "an empty render makes Argo CD prune everything; if that is intended, add `{}` to settings.allow_empty_envs",
                opts.env
            )),
        );
    }
    identity::sort_in_output_order(resources, |r| &r.id);
}

/// Parses, extracts and checks one value of the template output, adding
/// its objects (as text) and findings; its record when it was found clean
/// and `opts.records` asks for one.
fn process_value(
    path: String,
    text: String,
    opts: &ProcessOptions<'_>,
    check: &(impl Fn(&[Object]) -> Findings + Sync),
    resources: &mut Vec<Resource>,
    findings: &mut Findings,
) -> Option<Vec<CheckedObject>> {
    let found_before = (findings.problems.len(), findings.later.len());
    let mut found = Vec::new();
    let whole = display_origin(&path);
    // The path is wanted again only for the value's record.
    let record_path = opts.records.then(|| path.clone());
    match serde_json::from_str::<Json>(&text) {
        Ok(value) => extract(value, path, &mut found, &mut findings.problems, opts),
        Err(e) => findings.problems.push(
            Diagnostic::error(
                Code::InvalidResource,
                format!("the value at {whole} is not valid JSON: {e}"),
            )
            .help("the entry point must return an array (or object) of Kubernetes objects"),
        ),
    }
    for object in &found {
        check_object(object, &mut findings.problems, opts);
    }
    let checked = check(&found);
    findings.problems.extend(checked.problems);
    findings.later.extend(checked.later);
    let kept_from = findings.kept.len();
    findings.kept.extend(checked.kept);
    let first = resources.len();
    // Texts a record will share are made shareable.
    let text_of = |s: String| {
        if opts.records {
            Text::shared(s)
        } else {
            Text::new(s)
        }
    };
    // A value that is one object is nearly always written as writing its
    // value would write it: its text is kept as it was made, not written
    // again (nor held twice while the render is processed).
    let as_written =
        matches!(&found[..], [o] if o.origin == whole) && canonical::is_canonical(&text);
    let mut text = Some(text);
    resources.extend(found.into_iter().map(|o| {
        let json = match text.take_if(|_| as_written) {
            Some(text) => text,
            None => serde_json::to_string(&o.value).unwrap_or_default(),
        };
        let yaml = opts.yaml.then(|| text_of(crate::emit::yaml_of_json(&json)));
        Resource::of_text(o.id, text_of(json), o.origin, yaml)
    }));
    // Written again alike all the same (a float, say): the text is kept
    // rather than the copy.
    if let (Some(text), [r]) = (text, &mut resources[first..]) {
        if r.origin == whole && r.json() == text {
            r.json = text_of(text);
        }
    }
    let clean = found_before == (findings.problems.len(), findings.later.len());
    let path = record_path.filter(|_| clean)?;
    record::make(&path, &resources[first..], &findings.kept[kept_from..])
}

/// Values under which one thread processes them all.
const PARALLEL_FROM: usize = 256;

/// `again` repeats the identity of `first`.
fn duplicate(first: &Resource, again: &Resource, opts: &ProcessOptions<'_>) -> Diagnostic {
    locate(
        Diagnostic::error(
            Code::DuplicateResource,
            format!(
                "{} is emitted twice (at {} and at {})",
                again.id.display(),
                first.origin,
                again.origin
            ),
        )
        .help(if opts.per_service {
            "each object must be unique by group, kind, namespace and name. The entry point runs once per service and once for the environment: return objects that belong to no service from the library's `extraManifests` (rendered once), or set `settings.evaluation: environment`"
        } else {
            "each object must be unique by group, kind, namespace and name; rename one or drop the duplicate template"
        }),
        &again.value(),
        opts.service_spans,
        opts.entry,
    )
}

fn extract(
    value: Json,
    path: String,
    out: &mut Vec<Object>,
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
                        out.push(Object {
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

fn check_object(r: &Object, diags: &mut Vec<Diagnostic>, opts: &ProcessOptions<'_>) {
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
        let processed = run_on(vec![(String::new(), v.to_string())], 2);
        if processed.problems.is_empty() {
            Ok(processed.resources)
        } else {
            Err(processed.problems)
        }
    }

    fn run_on(output: Vec<(String, String)>, workers: usize) -> Processed {
        run_with(output, Vec::new(), workers, |objects| Findings {
            later: objects
                .iter()
                .map(|o| Diagnostic::error(Code::PolicyViolation, o.origin.clone()))
                .collect(),
            ..Findings::default()
        })
    }

    /// `process` with records asked for (and given), YAML made.
    fn run_with(
        output: Vec<(String, String)>,
        records: Vec<Option<Vec<CheckedObject>>>,
        workers: usize,
        check: impl Fn(&[Object]) -> Findings + Sync,
    ) -> Processed {
        let spans = BTreeMap::new();
        process(
            output,
            records,
            &ProcessOptions {
                env: "dev",
                allow_empty: false,
                service_spans: &spans,
                entry: None,
                env_span: None,
                per_service: false,
                workers,
                records: true,
                yaml: true,
            },
            check,
        )
    }

    #[test]
    fn a_value_taken_from_its_record_is_what_checking_it_made() {
        // Kept: what a check of the whole render reads of Services.
        let keep_services = |objects: &[Object]| Findings {
            kept: objects
                .iter()
                .filter(|o| o.id.kind == "Service")
                .map(|o| Resource::new(o.id.clone(), &json!({"kind": "Service"}), o.origin.clone()))
                .collect(),
            ..Findings::default()
        };
        let output: Vec<(String, String)> = vec![
            ("[0]".into(), obj("ConfigMap", "a").to_string()),
            ("[1]".into(), json!({"apiVersion": "v1", "kind": "List", "items": [obj("Service", "b"), obj("Service", "c")]}).to_string()),
            ("[2]".into(), "null".into()),
            ("[3]".into(), json!({"web": obj("Deployment", "d")}).to_string()),
            ("[4]".into(), "7".into()),
        ];
        let first = run_with(output.clone(), Vec::new(), 1, keep_services);
        // Every clean value has a record; the one that is not an object none.
        let made: Vec<bool> = first.records.iter().map(Option::is_some).collect();
        assert_eq!(made, [true, true, true, true, false]);
        assert_eq!(first.problems.len(), 1);

        // Records round-trip through their encoding, then stand for the
        // values: whatever the values' text now says, and at other
        // positions of the output.
        let encoded: Vec<&[CheckedObject]> = first.records[..4]
            .iter()
            .map(|r| r.as_deref().unwrap())
            .collect();
        let text = String::from_utf8(record::encode(&encoded)).unwrap();
        let len = text.len();
        let decoded = record::decode(&crate::text::Buffer::string(text), 0..len).unwrap();
        let mut records: Vec<Option<Vec<CheckedObject>>> = vec![None];
        records.extend(decoded.into_iter().map(Some));
        let mut moved: Vec<(String, String)> = vec![("[0]".into(), obj("Secret", "s").to_string())];
        moved.extend((1..5).map(|i| (format!("[{i}]"), String::new())));
        let again = run_with(moved, records, 2, |objects| {
            assert!(
                objects.iter().all(|o| o.id.kind == "Secret"),
                "taken from a record: not checked"
            );
            Findings::default()
        });
        let ids = |p: &Processed| -> Vec<(String, String, Option<String>)> {
            p.resources
                .iter()
                .filter(|r| r.id.kind != "Secret")
                .map(|r| {
                    (
                        r.id.display(),
                        r.json().to_owned(),
                        r.yaml().map(str::to_owned),
                    )
                })
                .collect()
        };
        assert_eq!(ids(&again), ids(&first));
        for r in &first.resources {
            assert_eq!(
                r.yaml().unwrap(),
                serde_saphyr::to_string(&r.value()).unwrap()
            );
        }
        let origins = |p: &Processed| -> Vec<String> {
            p.resources.iter().map(|r| r.origin.clone()).collect()
        };
        assert!(
            origins(&again).contains(&"output[2].items[1]".to_owned()),
            "{:?}",
            origins(&again)
        );
        assert!(
            origins(&again).contains(&"output[4].web".to_owned()),
            "{:?}",
            origins(&again)
        );
        let kept = |p: &Processed| -> Vec<String> {
            let mut k: Vec<String> = p
                .kept
                .iter()
                .map(|r| format!("{} {}", r.id.display(), r.json()))
                .collect();
            k.sort();
            k
        };
        assert_eq!(kept(&again), kept(&first));
        assert_eq!(kept(&first).len(), 2);
        assert!(again.problems.is_empty(), "{:?}", again.problems);
        // Only the value checked now has a new record.
        let made: Vec<bool> = again.records.iter().map(Option::is_some).collect();
        assert_eq!(made, [true, false, false, false, false]);
    }

    #[test]
    fn many_values_are_processed_in_shares_as_on_one_thread() {
        // Enough values for shares on several threads; duplicates across
        // shares, lists, a value that is not an object, and one whose
        // text is not the compact form it is kept in.
        let mut output: Vec<(String, String)> = (0..700)
            .map(|i| {
                (
                    format!("[{i}]"),
                    obj("ConfigMap", &format!("c{}", i % 650)).to_string(),
                )
            })
            .collect();
        output[10].1 = json!({"apiVersion": "v1", "kind": "List", "items": [obj("Service", "a"), obj("Service", "b")]}).to_string();
        output[20].1 = "3".to_owned();
        output[30].1 = serde_json::to_string_pretty(&obj("Secret", "pretty")).unwrap();
        let one = run_on(output.clone(), 1);
        for workers in [2, 3, 8] {
            let many = run_on(output.clone(), workers);
            let ids = |p: &Processed| -> Vec<(String, String, String)> {
                p.resources
                    .iter()
                    .map(|r| (r.id.display(), r.origin.clone(), r.json().to_owned()))
                    .collect()
            };
            assert_eq!(ids(&many), ids(&one), "{workers} workers");
            let messages = |d: &[Diagnostic]| -> Vec<String> {
                let mut m: Vec<String> = d.iter().map(|d| d.message.clone()).collect();
                m.sort();
                m
            };
            assert_eq!(messages(&many.problems), messages(&one.problems));
            assert_eq!(messages(&many.later), messages(&one.later));
        }
        // Names 650.. repeat 0..50, but for the three values replaced;
        // one value is not an object; the list holds two.
        assert_eq!(one.problems.len(), 47 + 1, "{:?}", one.problems);
        assert_eq!(one.resources.len(), 700 - 47 - 1 + 1);
        assert_eq!(one.later.len(), one.resources.len() + 47);
        let secret = one
            .resources
            .iter()
            .find(|r| r.id.name == "pretty")
            .unwrap();
        assert_eq!(secret.json(), obj("Secret", "pretty").to_string());
        assert_eq!(secret.value(), obj("Secret", "pretty"));
    }

    #[test]
    fn pruning_keeps_only_the_paths_read() {
        let v = json!({"kind": "Deployment", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 2, "template": {"spec": {"containers": []}}}});
        let kept = pruned(
            &v,
            &[
                &["metadata", "name"],
                &["spec", "replicas"],
                &["spec", "selector"],
            ],
        );
        assert_eq!(
            kept,
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}})
        );
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
