//! `pdb-replicas`: in a protected environment, a workload a
//! PodDisruptionBudget covers runs at least 2 replicas.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::{violation, Check, Doc, RenderContext, Rule, Stage};
use crate::diagnostics::{Code, Diagnostic};
use crate::process::{at, Resource};

/// The rule.
pub const RULE: Rule = Rule {
    id: "pdb-replicas",
    codes: &[Code::PolicyViolation],
    protected_only: true,
    doc: Doc {
        what: "Checks that every Deployment or StatefulSet a PodDisruptionBudget selects runs at least 2 replicas (its HPA's `minReplicas` when it has one).",
        why: "A disruption budget over a single pod either blocks every node drain (`minAvailable: 1`) or protects nothing: cluster upgrades stall, or the service goes down during them.",
        example: "# controlcenter.yaml\nprod:\n  api:\n    replicas: 1\n    disruption_budget: { min_available: 1 }",
        fix: "Run 2 or more replicas (or `autoscaling.min_replicas: 2`), or drop the disruption budget.",
    },
    on_tag_image: None,
    on_resources: Some((
        Stage::Check,
        Check::Render {
            kinds: &[
                "PodDisruptionBudget",
                "Deployment",
                "StatefulSet",
                "HorizontalPodAutoscaler",
            ],
            paths: &[
                &["spec", "selector", "matchLabels"],
                &["spec", "template", "metadata", "labels"],
                &["spec", "replicas"],
                &["spec", "scaleTargetRef", "kind"],
                &["spec", "scaleTargetRef", "name"],
                &["spec", "minReplicas"],
            ],
            check,
        },
    )),
};

/// Labels as read from an object: few, so a list.
type Labels = Vec<(String, Json)>;

fn labels(value: &Json, path: &[&str]) -> Option<Labels> {
    let map = at(value, path)?.as_object()?;
    Some(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// What the rule needs of one object.
enum Fact {
    /// A workload's pod labels and replicas.
    Workload(Labels, Option<u64>),
    /// An HPA's target (kind, name) and minimum.
    Hpa(String, String, u64),
    /// A PDB's selector.
    Pdb(Labels),
    Nothing,
}

fn fact(r: &Resource) -> Fact {
    let value = r.value();
    match r.id.kind.as_str() {
        "Deployment" | "StatefulSet" => {
            match labels(&value, &["spec", "template", "metadata", "labels"]) {
                Some(l) => Fact::Workload(l, at(&value, &["spec", "replicas"]).and_then(Json::as_u64)),
                None => Fact::Nothing,
            }
        }
        "HorizontalPodAutoscaler" => {
            let target = |field| {
                at(&value, &["spec", "scaleTargetRef", field])
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            };
            match (target("kind"), target("name")) {
                (Some(kind), Some(name)) => {
                    let min = at(&value, &["spec", "minReplicas"])
                        .and_then(Json::as_u64)
                        .unwrap_or(1);
                    Fact::Hpa(kind, name, min)
                }
                _ => Fact::Nothing,
            }
        }
        "PodDisruptionBudget" => labels(&value, &["spec", "selector", "matchLabels"])
            .map_or(Fact::Nothing, Fact::Pdb),
        _ => Fact::Nothing,
    }
}

/// Workloads by (namespace, pod label name, value).
type ByLabel<'a> = HashMap<(&'a str, &'a str, &'a Json), Vec<usize>>;

/// The workloads a PDB's selector can match: those carrying its rarest
/// label. Its first label would do, but a label every workload carries
/// (`app.kubernetes.io/part-of`) first in every selector makes the check
/// quadratic.
fn candidates<'a, 'k>(
    namespace: &'k str,
    selector: &'k Labels,
    by_label: &'a ByLabel<'k>,
    all: &'a [usize],
) -> &'a [usize] {
    if selector.is_empty() {
        return all;
    }
    selector
        .iter()
        .map(|(k, v)| {
            by_label
                .get(&(namespace, k.as_str(), v))
                .map_or(&[][..], Vec::as_slice)
        })
        .min_by_key(|c| c.len())
        .unwrap_or(&[])
}

fn check(resources: &[Resource], ctx: &RenderContext<'_>) -> Vec<Diagnostic> {
    // Without a disruption budget there is nothing to check: the kind is
    // known without reading an object.
    if !resources.iter().any(|r| r.id.kind == "PodDisruptionBudget") {
        return Vec::new();
    }
    // Each object is read once, into what the rule needs of it: every
    // workload's pod labels and replicas, every HPA's minimum by target,
    // every PDB's selector.
    let mut workloads: Vec<(&Resource, Labels, Option<u64>)> = Vec::new();
    let mut hpa_min: BTreeMap<(&str, String, String), u64> = BTreeMap::new();
    let mut pdbs: Vec<(&Resource, Labels)> = Vec::new();
    // Read on every core when there are many; gathered in order.
    let workers = if resources.len() < 256 {
        1
    } else {
        crate::parallel::cores()
    };
    let facts = crate::parallel::map(resources, workers, fact);
    for (r, fact) in resources.iter().zip(facts) {
        match fact {
            Fact::Workload(labels, replicas) => workloads.push((r, labels, replicas)),
            Fact::Hpa(kind, name, min) => {
                hpa_min.insert((r.id.namespace.as_str(), kind, name), min);
            }
            Fact::Pdb(selector) => pdbs.push((r, selector)),
            Fact::Nothing => {}
        }
    }
    // Workloads by (namespace, pod label): a PDB per service would make a
    // scan of every workload per PDB quadratic.
    let mut by_label: ByLabel<'_> = HashMap::new();
    for (i, (w, labels, _)) in workloads.iter().enumerate() {
        for (k, v) in labels {
            by_label
                .entry((w.id.namespace.as_str(), k.as_str(), v))
                .or_default()
                .push(i);
        }
    }
    let all: Vec<usize> = (0..workloads.len()).collect();
    let mut diags = Vec::new();
    for (pdb, selector) in &pdbs {
        let candidates = candidates(pdb.id.namespace.as_str(), selector, &by_label, &all);
        for (w, labels, replicas) in candidates.iter().map(|i| &workloads[*i]) {
            if w.id.namespace != pdb.id.namespace
                || !selector
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            {
                continue;
            }
            let key = (
                w.id.namespace.as_str(),
                w.id.kind.clone(),
                w.id.name.clone(),
            );
            let replicas = hpa_min
                .get(&key)
                .copied()
                .unwrap_or_else(|| replicas.unwrap_or(1));
            if replicas < 2 {
                diags.push(violation(
                    RULE.id,
                    format!(
                        "{} runs {replicas} replica under {} in protected environment `{}`",
                        w.id.display(),
                        pdb.id.display(),
                        ctx.env
                    ),
                    &w.to_object(),
                    ctx,
                    None,
                    "a disruption budget over a single pod blocks every node drain, or gives no protection".to_owned(),
                ));
            }
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_selector_is_matched_through_its_rarest_label() {
        let (shared, name_a, name_b) = (json!("bench"), json!("a"), json!("b"));
        let mut by_label: ByLabel<'_> = HashMap::new();
        for (i, name) in [&name_a, &name_b, &name_b].into_iter().enumerate() {
            by_label.entry(("ns", "group", &shared)).or_default().push(i);
            by_label.entry(("ns", "name", name)).or_default().push(i);
        }
        let all = [0, 1, 2];
        // `group` sorts first and every workload carries it.
        let selector = vec![
            ("name".to_owned(), json!("a")),
            ("group".to_owned(), json!("bench")),
        ];
        assert_eq!(candidates("ns", &selector, &by_label, &all), &[0]);
        let selector = vec![("group".to_owned(), json!("bench"))];
        assert_eq!(candidates("ns", &selector, &by_label, &all), &[0, 1, 2]);
        // A label no workload carries matches none; nor does another namespace.
        let selector = vec![
            ("group".to_owned(), json!("bench")),
            ("name".to_owned(), json!("c")),
        ];
        assert!(candidates("ns", &selector, &by_label, &all).is_empty());
        let selector = vec![("name".to_owned(), json!("a"))];
        assert!(candidates("other", &selector, &by_label, &all).is_empty());
        // An empty selector selects every pod of its namespace.
        assert_eq!(candidates("ns", &Vec::new(), &by_label, &all), &all);
    }
}
