//! Provenance: which input a failure or a rendered object comes from.
//! Jsonnet values carry no origin, so it is recovered here: a rendered
//! object by its `app.kubernetes.io/name` label, a failing template by
//! re-evaluating halves of the services, a value by its literal.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::diagnostics::{Diagnostic, FileId, Span};
use crate::load::yaml::Node;
use crate::load::DEFAULTS_KEY;
use crate::resolve::ResolvedEnv;

/// Points a diagnostic about a rendered object at the controlcenter.yaml
/// service it was rendered for (by its `app.kubernetes.io/name` label),
/// else at the template entry point. A diagnostic already located keeps
/// its place.
pub fn locate(
    d: Diagnostic,
    value: &Json,
    service_spans: &BTreeMap<String, Span>,
    entry: Option<Span>,
) -> Diagnostic {
    let name = crate::process::at(value, &["metadata", "labels", "app.kubernetes.io/name"])
        .and_then(Json::as_str);
    if d.primary.is_some() {
        return d;
    }
    match (name.and_then(|n| service_spans.get(n)), entry) {
        (Some(span), _) => d.at(*span, "rendered for this service"),
        (None, Some(entry)) => d.at(entry, "rendered by this template"),
        (None, None) => d,
    }
}

/// Where a string is written as a literal in the templates.
pub fn literal_span(templates: &[(FileId, Arc<str>)], value: &str) -> Option<Span> {
    templates.iter().find_map(|(file, text)| {
        ['\'', '"'].iter().find_map(|q| {
            let literal = format!("{q}{value}{q}");
            text.find(&literal)
                .map(|i| Span::new(*file, i, i + literal.len()))
        })
    })
}

/// The one service whose values make the templates fail, by bisecting the
/// services (they render independently): `fails(keys)` re-evaluates with
/// only those services and says whether the same failure happens. `None`
/// when no service or only a combination causes it.
pub fn culprit_service(
    resolved: &ResolvedEnv,
    fails: impl Fn(&[String]) -> bool,
) -> Option<String> {
    let mut suspects: Vec<String> = resolved.state.services.keys().cloned().collect();
    if suspects.is_empty() || fails(&[]) {
        return None; // not caused by any one service
    }
    while suspects.len() > 1 {
        let right = suspects.split_off(suspects.len() / 2);
        if fails(&suspects) {
            continue;
        } else if fails(&right) {
            suspects = right;
        } else {
            return None; // only a combination fails
        }
    }
    suspects.pop()
}

/// Adds the failing service's input to a template failure: the field the
/// failing expression reads (`svc.replicas`, `svc.extra.team`) where it is
/// written for service `key` (the environment section, else `defaults`),
/// else the service itself.
pub fn point_at_service(
    d: Diagnostic,
    failing_text: Option<&str>,
    resolved: &ResolvedEnv,
    controlcenter: &Node,
    key: &str,
) -> Diagnostic {
    let field = failing_text.and_then(|text| {
        ["svc.extra.", "svc."].iter().find_map(|prefix| {
            let rest = &text[text.find(prefix)? + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            Some(&rest[..end]).filter(|f| !f.is_empty())
        })
    });
    let written = field.and_then(|field| {
        [resolved.state.env.as_str(), DEFAULTS_KEY]
            .iter()
            .find_map(|section| controlcenter.get(section)?.get(key)?.get(field))
            .map(|n| n.span)
    });
    match (written, resolved.service_spans.get(key)) {
        (Some(span), _) => d.related(span, format!("the failing value, from service `{key}`")),
        (None, Some(span)) => d.related(*span, "the failing value comes from this service"),
        (None, None) => d,
    }
}
