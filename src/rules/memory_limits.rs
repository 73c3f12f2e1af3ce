//! `memory-limits`: every container has a memory request and limit.

use serde_json::Value as Json;

use super::{Check, containers, pod_spec, violation, Doc, RenderContext, Rule, Stage};
use crate::diagnostics::{Code, Diagnostic};
use crate::process::Object;

/// The rule.
pub const RULE: Rule = Rule {
    id: "memory-limits",
    codes: &[Code::PolicyViolation],
    protected_only: false,
    doc: Doc {
        what: "Checks that every container and init container of every workload sets both a memory request and a memory limit.",
        why: "Without a request the scheduler packs pods blindly and one pod can starve its node; without a limit a leak grows until the node kills something else. A pod with neither is the first to be evicted under pressure.",
        example: "# controlcenter.yaml\ndev:\n  api:\n    git_rev: v1.2.0   # no memory_min / memory_max",
        fix: "Set `memory_min` and `memory_max` on the service, or once under `defaults`.",
    },
    on_tag_image: None,
    on_resources: Some((Stage::Check, Check::Each(check))),
};

fn check(resources: &[Object], ctx: &RenderContext<'_>) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for r in resources {
        let Some(spec) = pod_spec(r) else { continue };
        for c in containers(spec, &["initContainers", "containers"]) {
            let name = c.get("name").and_then(Json::as_str).unwrap_or("?");
            let missing: Vec<&str> = [
                ("request", "/resources/requests/memory"),
                ("limit", "/resources/limits/memory"),
            ]
            .into_iter()
            .filter(|(_, p)| c.pointer(p).is_none())
            .map(|(what, _)| what)
            .collect();
            if !missing.is_empty() {
                let d = violation(
                    RULE.id,
                    format!("{} container `{name}` has no memory {}", r.id.display(), missing.join(" or ")),
                    r,
                    ctx,
                    None,
                    "without both, one pod can starve its node, or be killed first under pressure".to_owned(),
                );
                diags.push(d.help(format!(
                    "set memory_min and memory_max on the service (or under defaults); or switch the policy off with settings.policies: {{{}: false}}",
                    RULE.id
                )));
            }
        }
    }
    diags
}
