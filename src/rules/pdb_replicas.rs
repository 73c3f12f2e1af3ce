//! `pdb-replicas`: in a protected environment, a workload a
//! PodDisruptionBudget covers runs at least 2 replicas.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::{violation, Doc, RenderContext, Rule, Stage};
use crate::diagnostics::{Code, Diagnostic};
use crate::process::Resource;

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
    on_resources: Some((Stage::Check, check)),
};

fn check(resources: &[Resource], ctx: &RenderContext<'_>) -> Vec<Diagnostic> {
    // Computed once: every workload's pod labels, and every HPA's minimum
    // by target (a PDB per service makes the naive scan quadratic).
    let workloads: Vec<(&Resource, &serde_json::Map<String, Json>)> = resources
        .iter()
        .filter(|r| matches!(r.id.kind.as_str(), "Deployment" | "StatefulSet"))
        .filter_map(|r| {
            Some((
                r,
                crate::process::at(&r.value, &["spec", "template", "metadata", "labels"])?
                    .as_object()?,
            ))
        })
        .collect();
    let hpa_min: BTreeMap<(&str, &str, &str), u64> = resources
        .iter()
        .filter(|h| h.id.kind == "HorizontalPodAutoscaler")
        .filter_map(|h| {
            let kind = crate::process::at(&h.value, &["spec", "scaleTargetRef", "kind"])?.as_str()?;
            let name = crate::process::at(&h.value, &["spec", "scaleTargetRef", "name"])?.as_str()?;
            let min = crate::process::at(&h.value, &["spec", "minReplicas"])
                .and_then(Json::as_u64)
                .unwrap_or(1);
            Some(((h.id.namespace.as_str(), kind, name), min))
        })
        .collect();
    // Workloads by (namespace, pod label): a PDB per service would make a
    // scan of every workload per PDB quadratic.
    let mut by_label: HashMap<(&str, &str, &Json), Vec<usize>> = HashMap::new();
    for (i, (w, labels)) in workloads.iter().enumerate() {
        for (k, v) in labels.iter() {
            by_label
                .entry((w.id.namespace.as_str(), k.as_str(), v))
                .or_default()
                .push(i);
        }
    }
    let all: Vec<usize> = (0..workloads.len()).collect();
    let mut diags = Vec::new();
    for pdb in resources
        .iter()
        .filter(|r| r.id.kind == "PodDisruptionBudget")
    {
        let Some(selector) = crate::process::at(&pdb.value, &["spec", "selector", "matchLabels"])
            .and_then(Json::as_object)
        else {
            continue;
        };
        // Only workloads carrying the selector's first label can match.
        let candidates: &[usize] = match selector.iter().next() {
            Some((k, v)) => by_label
                .get(&(pdb.id.namespace.as_str(), k.as_str(), v))
                .map_or(&[], Vec::as_slice),
            None => &all,
        };
        for (w, labels) in candidates.iter().map(|i| &workloads[*i]) {
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
                    crate::process::at(&w.value, &["spec", "replicas"])
                        .and_then(Json::as_u64)
                        .unwrap_or(1)
                });
            if replicas < 2 {
                diags.push(violation(
                    RULE.id,
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
    diags
}
