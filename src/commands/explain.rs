//! `explain`: where each field of a rendered object comes from.
//!
//! Two halves. The Jsonnet half: the object's unit is evaluated again with
//! the embedded engine remembering where every object field is written, so
//! each output leaf names the template line that set it, and the lines it
//! replaced (a repository override over the library). The input half: each
//! value of the unit's state is changed in turn and the unit evaluated
//! again; the output leaves that change depend on that value, which
//! `resolve::provenance` maps back to its YAML line. A value computed from
//! several inputs (a checksum, a name derived from a key) names them all.
//! Templates stay plain Jsonnet: nothing in them is tagged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic, Outcome, Span};
use crate::evaluate::{Evaluation, FieldWriter, PathStep, UnitInput};
use crate::pipeline::Project;
use crate::process::{Resource, ResourceId};
use crate::resolve::provenance::{self, Origin};

/// Most state values changed to find what a unit's output depends on.
const MAX_PROBES: usize = 4000;

/// What to explain.
#[derive(Clone, Debug)]
pub struct Target {
    /// Kind of the object.
    pub kind: String,
    /// `metadata.name`, with any field path after it (`name.spec.replicas`).
    pub rest: String,
}

impl Target {
    /// `KIND/NAME[.field.path]`.
    pub fn parse(text: &str) -> Option<Target> {
        let (kind, rest) = text.split_once('/')?;
        (!kind.is_empty() && !rest.is_empty()).then(|| Target {
            kind: kind.to_owned(),
            rest: rest.to_owned(),
        })
    }
}

/// One input or template line a value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// What it did: `from`, `chosen by`, `set by`, `replaces`, …
    pub role: &'static str,
    /// Where, when it is written somewhere.
    pub span: Option<Span>,
    /// The input's path, or empty for a template line.
    pub input: String,
}

/// One leaf of the object and where it comes from.
#[derive(Clone, Debug)]
pub struct ExplainedField {
    /// Its path in the object.
    pub path: Vec<PathStep>,
    /// Its value.
    pub value: Json,
    /// The inputs it depends on, then the template lines that write it.
    pub sources: Vec<Source>,
}

/// The explanation of one object (or one field of it).
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The object, as `Kind/name`.
    pub object: String,
    /// The field asked about (empty for the whole object).
    pub field: Vec<PathStep>,
    /// Every leaf asked about, in path order.
    pub fields: Vec<ExplainedField>,
}

/// Explains `target` in `env`'s render (`placeholders`: as `render
/// --placeholders` would render it).
pub fn explain(
    project: &mut Project,
    env: &str,
    target: &Target,
    placeholders: bool,
) -> Outcome<Explanation> {
    let (resolved, _) = project.resolve_with(env, placeholders)?;
    let resources = project.render_resolved(&resolved)?;
    let (resource, field) = find(&resources, target)?;
    let object = resource.value();
    let leaves: Vec<(Vec<PathStep>, Json)> = leaves(&object)
        .into_iter()
        .filter(|(p, _)| p.starts_with(&field))
        .collect();
    if leaves.is_empty() {
        return Err(vec![no_such_field(resource, &field)]);
    }

    // Which unit made the object: its service's, by name, else the
    // environment's.
    let label = crate::process::at(&object, &["metadata", "labels", "app.kubernetes.io/name"])
        .and_then(Json::as_str);
    let service = resolved
        .state
        .services
        .values()
        .find(|s| Some(s.name.as_str()) == label)
        .map(|s| s.key.clone());
    let evaluation = project.settings.evaluation;
    let templates = project.templates().clone();
    let Some(input) = templates.unit_input(&resolved, evaluation, service.as_deref()) else {
        return Err(vec![not_rendered_here(resource)]);
    };
    let id = resource.id.clone();
    let pick_id = id.clone();
    let pick: Arc<dyn Fn(&Json) -> bool + Send + Sync> =
        Arc::new(move |v| ResourceId::of(v).is_some_and(|o| o.same_object(&pick_id)));
    let traced = templates
        .trace(input.clone(), pick, &mut project.sources)
        .map_err(|d| vec![d])?;
    let traced = traced.into_iter().next();
    let writers: BTreeMap<Vec<PathStep>, Vec<FieldWriter>> = traced
        .as_ref()
        .map(|t| t.leaves.iter().cloned().collect())
        .unwrap_or_default();

    // What each leaf depends on: a part of the state is changed whole;
    // where the object changes, its parts are changed one by one, down to
    // single values (most of the state is not read by any one object).
    let secrets = project.sources.secrets().clone();
    let index = traced.as_ref().map(|t| t.index);
    let baseline: BTreeMap<Vec<PathStep>, Json> = leaves.iter().cloned().collect();
    let mut depends: BTreeMap<Vec<PathStep>, Vec<Vec<String>>> = BTreeMap::new();
    let mut frontier = state_roots(&input, service.as_deref(), evaluation);
    let mut probed = 0;
    while !frontier.is_empty() && probed < MAX_PROBES {
        frontier.truncate(MAX_PROBES - probed);
        probed += frontier.len();
        let inputs: Vec<UnitInput> = frontier
            .iter()
            .map(|(_, changed)| changed.clone())
            .collect();
        let results = templates.evaluate_inputs(inputs, &secrets);
        let mut next = Vec::new();
        for ((path, _), result) in frontier.iter().zip(results) {
            let value = state_value(&input, path);
            let is_scalar = !matches!(value, Some(Json::Object(_) | Json::Array(_)));
            let changed = match result {
                Ok(out) => {
                    let object = changed_object(&out.values, &out.items, index, &id);
                    let now: BTreeMap<Vec<PathStep>, Json> = object
                        .as_ref()
                        .map(|v| self::leaves(v).into_iter().collect())
                        .unwrap_or_default();
                    baseline
                        .iter()
                        .filter(|(p, v)| object.is_none() || now.get(*p) != Some(*v))
                        .map(|(p, _)| p.clone())
                        .collect::<Vec<_>>()
                }
                // A failing change says nothing about a single value; a
                // part that fails is looked at value by value.
                Err(_) if is_scalar => Vec::new(),
                Err(_) => vec![Vec::new()],
            };
            if changed.is_empty() {
                continue;
            }
            if is_scalar {
                for leaf in changed {
                    depends.entry(leaf).or_default().push(path.clone());
                }
            } else if let Some(value) = value {
                next.extend(children(value).into_iter().filter_map(|step| {
                    let mut p = path.clone();
                    p.push(step);
                    let changed = changed_input(&input, &p)?;
                    Some((p, changed))
                }));
            }
        }
        frontier = next;
    }

    let env_file = project.env_file().cloned();
    let inputs = env_file.as_ref().map(|env_file| provenance::Inputs {
        repo: &project.inputs,
        env_file,
        env,
    });
    let fields = leaves
        .into_iter()
        .map(|(path, value)| {
            let mut sources: Vec<Source> = Vec::new();
            let mut seen = BTreeSet::new();
            for state_path in depends.get(&path).into_iter().flatten() {
                let origins = inputs
                    .as_ref()
                    .map(|i| provenance::origins(i, state_path))
                    .unwrap_or_default();
                for Origin { role, span, input } in origins {
                    if seen.insert((span.map(|s| (s.file, s.start)), input.clone())) {
                        sources.push(Source { role, span, input });
                    }
                }
            }
            // Inputs first: "from" before "chosen by" and "instead of".
            sources.sort_by_key(|s| input_rank(s.role));
            sources.extend(template_sources(
                writers.get(&path).map(Vec::as_slice).unwrap_or_default(),
                &mut project.sources,
            ));
            ExplainedField {
                path,
                value,
                sources,
            }
        })
        .collect();
    Ok(Explanation {
        object: format!("{}/{}", id.kind, id.name),
        field,
        fields,
    })
}

/// The order inputs are listed in.
fn input_rank(role: &str) -> usize {
    match role {
        "from" | "placeholder from" => 0,
        "derived from" => 1,
        "chosen by" => 2,
        "instead of" => 3,
        _ => 4,
    }
}

/// The template lines that write a leaf: the winner, then the layers
/// below it down to the first one it replaces (`+:` layers extend what is
/// below them; below a replaced layer nothing counts).
fn template_sources(
    writers: &[FieldWriter],
    sources: &mut crate::diagnostics::Sources,
) -> Vec<Source> {
    let mut out = Vec::new();
    let mut above: Option<&FieldWriter> = None;
    for w in writers {
        let role = match above {
            None => "set by",
            Some(a) if a.plus => "extends",
            Some(_) => "replaces",
        };
        let file = sources.add(w.location.path.clone(), w.location.code.clone());
        out.push(Source {
            role,
            span: Some(Span::new(file, w.location.start, w.location.end)),
            input: String::new(),
        });
        if role == "replaces" {
            break;
        }
        above = Some(w);
    }
    out
}

/// The object the probe's unit output holds in the place of the one
/// explained: the same index when the output has as many objects, else
/// the one with the same identity.
fn changed_object(
    values: &[Json],
    items: &[String],
    index: Option<usize>,
    id: &ResourceId,
) -> Option<Json> {
    let parsed: Vec<Json>;
    let values = if values.len() == items.len() {
        values
    } else {
        parsed = items
            .iter()
            .filter_map(|i| serde_json::from_str(i).ok())
            .collect();
        &parsed
    };
    index
        .and_then(|i| values.get(i))
        .filter(|v| ResourceId::of(v).is_some_and(|o| o.kind == id.kind))
        .or_else(|| {
            values
                .iter()
                .find(|v| ResourceId::of(v).is_some_and(|o| o.same_object(id)))
        })
        .cloned()
}

/// The parts of the unit's state its objects may read, each with the
/// unit's input where that part is changed whole: every field of the
/// state; of `services`, in a whole-environment unit, only the object's
/// own service.
fn state_roots(
    input: &UnitInput,
    service: Option<&str>,
    evaluation: Evaluation,
) -> Vec<(Vec<String>, UnitInput)> {
    let own = input.own.iter().map(|(k, _)| k.as_str());
    let shared = input.shared.keys().map(String::as_str);
    let fields: BTreeSet<&str> = own.chain(shared).collect();
    fields
        .into_iter()
        .filter(|f| *f != crate::evaluate::UNIT_FIELD && *f != crate::evaluate::UNIT_SERVICE_FIELD)
        .flat_map(|f| match (f, evaluation, service) {
            ("services", Evaluation::Environment, Some(key)) => {
                vec![vec![f.to_owned(), key.to_owned()]]
            }
            ("services", Evaluation::Environment, None) => Vec::new(),
            _ => vec![vec![f.to_owned()]],
        })
        .filter_map(|path| {
            let changed = changed_input(input, &path)?;
            Some((path, changed))
        })
        .collect()
}

/// The value at `path` of the unit's state (own fields win).
fn state_value<'i>(input: &'i UnitInput, path: &[String]) -> Option<&'i Json> {
    let (head, rest) = path.split_first()?;
    let mut at = input
        .own
        .iter()
        .find(|(k, _)| k == head)
        .map(|(_, v)| v)
        .or_else(|| input.shared.get(head))?;
    for step in rest {
        at = match at {
            Json::Object(m) => m.get(step)?,
            Json::Array(items) => items.get(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// The steps to the children of an object or array.
fn children(value: &Json) -> Vec<String> {
    match value {
        Json::Object(m) => m.keys().cloned().collect(),
        Json::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The unit's input with every scalar under `path` changed; `None` when
/// nothing there can change (no scalar but `null`).
fn changed_input(input: &UnitInput, path: &[String]) -> Option<UnitInput> {
    let (head, rest) = path.split_first()?;
    let mut value = state_value(input, std::slice::from_ref(head))?.clone();
    let target = walk_mut(&mut value, rest)?;
    let changes = changes(target);
    if changes.is_empty() {
        return None;
    }
    for (p, v) in changes {
        set(target, &p, v);
    }
    let mut changed = input.clone();
    if let Some(slot) = Arc::make_mut(&mut changed.own)
        .iter_mut()
        .find(|(k, _)| k == head)
    {
        slot.1 = value;
    } else {
        let mut shared = (*input.shared).clone();
        shared.insert(head.clone(), value);
        changed.shared = Arc::new(shared);
    }
    Some(changed)
}

/// The value at `path` under `value`, mutably.
fn walk_mut<'v>(value: &'v mut Json, path: &[String]) -> Option<&'v mut Json> {
    let mut at = value;
    for step in path {
        at = match at {
            Json::Object(m) => m.get_mut(step)?,
            Json::Array(items) => items.get_mut(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Every scalar under `value` with a different value of the same type.
fn changes(value: &Json) -> Vec<(Vec<String>, Json)> {
    let mut out = Vec::new();
    let mut todo = vec![(Vec::new(), value)];
    while let Some((path, v)) = todo.pop() {
        match v {
            Json::Object(m) => todo.extend(m.iter().map(|(k, v)| {
                let mut p = path.clone();
                p.push(k.clone());
                (p, v)
            })),
            Json::Array(items) => todo.extend(items.iter().enumerate().map(|(i, v)| {
                let mut p = path.clone();
                p.push(i.to_string());
                (p, v)
            })),
            Json::Null => {}
            Json::Bool(b) => out.push((path, Json::Bool(!b))),
            Json::Number(n) => out.push((
                path,
                match n.as_i64() {
                    Some(i) => Json::from(i.wrapping_add(1)),
                    None => Json::from(n.as_f64().unwrap_or(0.0) * 2.0 + 1.0),
                },
            )),
            Json::String(s) => out.push((path, Json::from(format!("{s}x")))),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Sets the value at `path` (object keys and array indices); `None` when
/// the path is not there.
fn set(value: &mut Json, path: &[String], new: Json) -> Option<()> {
    *walk_mut(value, path)? = new;
    Some(())
}

/// Every leaf of a JSON value (empty objects and arrays are leaves).
pub fn leaves(value: &Json) -> Vec<(Vec<PathStep>, Json)> {
    let mut out = Vec::new();
    let mut todo = vec![(Vec::new(), value)];
    while let Some((path, v)) = todo.pop() {
        match v {
            Json::Object(m) if !m.is_empty() => todo.extend(m.iter().map(|(k, v)| {
                let mut p = path.clone();
                p.push(PathStep::Field(k.clone()));
                (p, v)
            })),
            Json::Array(items) if !items.is_empty() => {
                todo.extend(items.iter().enumerate().map(|(i, v)| {
                    let mut p = path.clone();
                    p.push(PathStep::Index(i));
                    (p, v)
                }))
            }
            _ => out.push((path, v.clone())),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A path as written: `spec.template.spec.containers[0].image`, keys that
/// are not identifiers quoted (`metadata.labels["app.kubernetes.io/name"]`).
pub fn display_path(path: &[PathStep]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            PathStep::Index(i) => out.push_str(&format!("[{i}]")),
            PathStep::Field(k)
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathStep::Field(k) => {
                out.push_str(&format!("[{}]", Json::from(k.as_str())));
            }
        }
    }
    out
}

/// Parses a field path (`spec.containers[0].image`,
/// `metadata.labels["app.kubernetes.io/name"]`); `None` when malformed.
pub fn parse_path(text: &str) -> Option<Vec<PathStep>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let close = if r.starts_with('"') || r.starts_with('\'') {
                let q = r.chars().next()?;
                let end = r[1..].find(q)? + 1;
                let key = &r[1..end];
                out.push(PathStep::Field(key.to_owned()));
                end + 1
            } else {
                let end = r.find(']')?;
                out.push(PathStep::Index(r[..end].trim().parse().ok()?));
                end
            };
            rest = r[close..].strip_prefix(']')?;
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            out.push(PathStep::Field(r[..end].to_owned()));
            rest = &r[end..];
        }
    }
    Some(out)
}

/// The object `target` names, and the field path after its name. A name
/// may hold dots: the longest name of an object of that kind wins.
fn find<'r>(resources: &'r [Resource], target: &Target) -> Outcome<(&'r Resource, Vec<PathStep>)> {
    let of_kind: Vec<&Resource> = resources
        .iter()
        .filter(|r| r.id.kind.eq_ignore_ascii_case(&target.kind))
        .collect();
    let found = of_kind
        .iter()
        .filter_map(|r| {
            let after = target.rest.strip_prefix(r.id.name.as_str())?;
            (after.is_empty() || after.starts_with('.') || after.starts_with('['))
                .then_some((*r, after))
        })
        .max_by_key(|(r, _)| r.id.name.len());
    let Some((resource, after)) = found else {
        let wanted = format!("{}/{}", target.kind, target.rest);
        let closest = resources
            .iter()
            .map(|r| format!("{}/{}", r.id.kind, r.id.name))
            .map(|n| (strsim::jaro_winkler(&n, &wanted), n))
            .filter(|(score, _)| *score > 0.7)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let d = Diagnostic::error(
            Code::NotRendered,
            format!("the render has no object {}", crate::names::clip(&wanted)),
        );
        return Err(vec![match closest {
            Some((_, n)) => d.help(format!("did you mean `{n}`? Name an object as KIND/NAME (its kind and metadata.name), as `render` prints it")),
            None => d.help("name an object as KIND/NAME (its kind and metadata.name), as `render` prints it"),
        }]);
    };
    let Some(field) = parse_path(after) else {
        return Err(vec![Diagnostic::error(
            Code::NotRendered,
            format!("`{}` is not a field path", crate::names::clip(after)),
        )
        .help("write fields as spec.template.spec.containers[0].image; quote keys holding dots: metadata.labels[\"app.kubernetes.io/name\"]")]);
    };
    Ok((resource, field))
}

fn no_such_field(resource: &Resource, field: &[PathStep]) -> Diagnostic {
    let wanted = display_path(field);
    let closest = leaves(&resource.value())
        .into_iter()
        .map(|(p, _)| display_path(&p))
        .map(|p| (strsim::jaro_winkler(&p, &wanted), p))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let d = Diagnostic::error(
        Code::NotRendered,
        format!(
            "{}/{} has no field {}",
            resource.id.kind,
            resource.id.name,
            crate::names::clip(&wanted)
        ),
    );
    match closest {
        Some((_, p)) => d.help(format!("did you mean `{p}`?")),
        None => d,
    }
}

fn not_rendered_here(resource: &Resource) -> Diagnostic {
    Diagnostic::error(
        Code::NotRendered,
        format!(
            "{}/{} belongs to no evaluation unit of this render",
            resource.id.kind, resource.id.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for text in [
            "spec.template.spec.containers[0].image",
            "metadata.labels[\"app.kubernetes.io/name\"]",
            "spec.replicas",
        ] {
            let path = parse_path(text).unwrap();
            assert_eq!(display_path(&path), text);
        }
        assert_eq!(
            parse_path("metadata.labels['a.b']").unwrap(),
            vec![
                PathStep::Field("metadata".into()),
                PathStep::Field("labels".into()),
                PathStep::Field("a.b".into())
            ]
        );
        assert!(parse_path("spec[x]").is_none());
        assert_eq!(parse_path(""), Some(vec![]));
    }

    #[test]
    fn every_scalar_is_changed_once() {
        let v = serde_json::json!({"a": 1, "b": [true, "s"], "c": null, "d": {"e": 1.5}});
        let changed: BTreeMap<Vec<String>, Json> = changes(&v).into_iter().collect();
        assert_eq!(changed.len(), 4);
        assert_eq!(changed[&vec!["a".to_owned()]], 2);
        assert_eq!(changed[&vec!["b".to_owned(), "0".to_owned()]], false);
        assert_eq!(changed[&vec!["b".to_owned(), "1".to_owned()]], "sx");
        assert_eq!(changed[&vec!["d".to_owned(), "e".to_owned()]], 4.0);
    }
}
