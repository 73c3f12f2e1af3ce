//! Rules: every policy a render must follow, one file each, in one
//! registry ([`RULES`]). A rule owns its id (what `settings.policies`
//! switches off), its diagnostic code, the stages it runs at, its check,
//! and its documentation, from which `docs/rules.md` is generated.
//!
//! To add a rule: write `src/rules/<rule>.rs` with a `pub const RULE:
//! Rule`, and add its module name to the `rules!` list below.
//!
//! A repository adds its own rules under `policies/*.yaml`
//! ([`repo_policies`]); they run at [`Stage::Check`].

pub mod repo_policies;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic, FileId, Span};
use crate::evaluate::blame::locate;
use crate::process::{Findings, Object, Resource};
use crate::settings::Settings;

/// Declares the built-in rules: one module each, registered in order.
macro_rules! rules {
    ($($rule:ident),* $(,)?) => {
        $(pub mod $rule;)*
        /// Every built-in rule, in documentation order.
        pub const RULES: &[&Rule] = &[$(&$rule::RULE),*];
    };
}

rules! {
    memory_limits,
    no_mutable_images,
    no_plain_secrets,
    pdb_replicas,
}

/// When in the pipeline a check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// While a service resolves: at the input that causes the problem.
    Resolve,
    /// On the extracted objects, whatever else post-processing found:
    /// reported together with its object checks.
    Process,
    /// On the whole, valid render.
    Check,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve (at the input, before any template runs)",
            Stage::Process => "process (on each rendered object)",
            Stage::Check => "check (on the whole render)",
        }
    }
}

/// A rule's check of rendered objects, by what it needs to see at once.
#[derive(Clone, Copy)]
pub enum Check {
    /// Each object alone: it runs on the objects of each template value
    /// as they are made, on every worker.
    Each(fn(&[Object], &RenderContext<'_>) -> Vec<Diagnostic>),
    /// Every object of some kinds of the whole render, once it is made.
    Render {
        /// The kinds it reads.
        kinds: &'static [&'static str],
        /// The paths it reads: of each object, only what is there (and
        /// its name, namespace and labels, to locate problems) is kept, as
        /// compact JSON, for the check to parse one at a time.
        paths: &'static [&'static [&'static str]],
        /// The check.
        check: fn(&[Resource], &RenderContext<'_>) -> Vec<Diagnostic>,
    },
}

/// What every check of the whole render may read of an object.
const LOCATING: [&[&str]; 3] = [
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "labels"],
];

/// A check of rendered objects.
pub type ObjectCheck = fn(&[Object], &RenderContext<'_>) -> Vec<Diagnostic>;

/// A rule's documentation, as ruff writes it.
pub struct Doc {
    /// What it checks.
    pub what: &'static str,
    /// Why it matters.
    pub why: &'static str,
    /// A violation, as YAML or Jsonnet.
    pub example: &'static str,
    /// How to fix a violation.
    pub fix: &'static str,
}

/// An image a service resolves to through tags.yaml, checked at resolve.
pub struct TagImage<'a> {
    /// The service key.
    pub service: &'a str,
    /// The environment.
    pub env: &'a str,
    /// The image reference.
    pub image: &'a str,
    /// The service's `git_rev` value.
    pub rev_span: Span,
    /// The image in tags.yaml.
    pub image_span: Span,
}

/// What a rule over rendered objects knows about the render.
pub struct RenderContext<'a> {
    /// Environment name.
    pub env: &'a str,
    /// Whether the environment is protected.
    pub protected: bool,
    /// Which rules are on.
    pub settings: &'a Settings,
    /// Service DNS name → its controlcenter.yaml key span.
    pub service_spans: &'a BTreeMap<String, Span>,
    /// The template entry point.
    pub entry: Option<Span>,
    /// The Jsonnet files the render loaded, to point at a value's literal.
    pub templates: &'a [(FileId, Arc<str>)],
    /// The repository's own policies.
    pub repo_policies: &'a [repo_policies::RepoPolicy],
}

/// One rule.
pub struct Rule {
    /// Its id: `settings.policies: {<id>: false}` switches it off.
    pub id: &'static str,
    /// The codes of its diagnostics.
    pub codes: &'static [Code],
    /// Whether it applies only to protected environments.
    pub protected_only: bool,
    /// Its documentation.
    pub doc: Doc,
    /// Its check of an image from tags.yaml ([`Stage::Resolve`]).
    pub on_tag_image: Option<fn(&TagImage<'_>) -> Option<Diagnostic>>,
    /// Its check of the rendered objects, the stage it runs at and what
    /// it must see at once.
    pub on_resources: Option<(Stage, Check)>,
}

impl Rule {
    fn applies(&self, settings: &Settings, protected: bool) -> bool {
        settings.policy_on(self.id) && (protected || !self.protected_only)
    }

    /// The stages it runs at, in pipeline order.
    pub fn stages(&self) -> Vec<Stage> {
        let mut stages = Vec::new();
        if self.on_tag_image.is_some() {
            stages.push(Stage::Resolve);
        }
        if let Some((stage, _)) = self.on_resources {
            stages.push(stage);
        }
        stages
    }
}

/// Runs every rule that is on against an image a service resolves to.
pub fn check_tag_image(
    image: &TagImage<'_>,
    settings: &Settings,
    protected: bool,
) -> Vec<Diagnostic> {
    RULES
        .iter()
        .filter(|r| r.applies(settings, protected))
        .filter_map(|r| (r.on_tag_image?)(image))
        .collect()
}

/// The checks of rendered objects that are on, at `stage`.
fn checks<'c>(stage: Stage, ctx: &'c RenderContext<'_>) -> impl Iterator<Item = Check> + 'c {
    RULES
        .iter()
        .filter(|r| r.applies(ctx.settings, ctx.protected))
        .filter_map(move |r| r.on_resources.filter(|(s, _)| *s == stage))
        .map(|(_, check)| check)
}

/// A digest of everything [`check_objects`] and post-processing's object
/// checks depend on besides the objects: the build of the checks, the
/// environment, whether it is protected, the settings and the repository's
/// policies (their files' text). Objects found clean under one digest are clean under it again,
/// which is what lets the cache keep records of them.
pub fn verdicts(
    env: &str,
    protected: bool,
    settings: &Settings,
    policies: &[repo_policies::RepoPolicy],
    sources: &crate::diagnostics::Sources,
) -> String {
    // The checks themselves: this build of them (a rebuilt binary checks
    // every object again, whatever its version says).
    let mut text = format!(
        "{}\0{env}\0{protected}\0{settings:?}\0",
        crate::evaluate::cache::build_id()
    );
    for policy in policies {
        text.push_str(&sources.get(policy.span.file).text);
        text.push('\0');
    }
    crate::evaluate::cache::digest(text.as_bytes())
}

/// Runs every rule that is on and looks at each object alone against some
/// objects of the render: what [`Stage::Process`] finds, and what
/// [`Stage::Check`] finds (the repository's policies included); keeps what
/// the rules of the whole render read of them.
pub fn check_objects(objects: &[Object], ctx: &RenderContext<'_>) -> Findings {
    if objects.is_empty() {
        return Findings::default();
    }
    let run = |stage| -> Vec<Diagnostic> {
        checks(stage, ctx)
            .flat_map(|check| match check {
                Check::Each(check) => check(objects, ctx),
                Check::Render { .. } => Vec::new(),
            })
            .collect()
    };
    let mut later = run(Stage::Check);
    later.extend(repo_policies::check(objects, ctx));
    let reads: Vec<(&[&str], &[&[&str]])> = [Stage::Process, Stage::Check]
        .into_iter()
        .flat_map(|stage| checks(stage, ctx))
        .filter_map(|check| match check {
            Check::Render { kinds, paths, .. } => Some((kinds, paths)),
            Check::Each(_) => None,
        })
        .collect();
    let kept = objects
        .iter()
        .filter_map(|o| {
            let mut paths: Vec<&[&str]> = LOCATING.to_vec();
            for (kinds, read) in &reads {
                if kinds.contains(&o.id.kind.as_str()) {
                    paths.extend(read.iter().copied());
                }
            }
            (paths.len() > LOCATING.len()).then(|| {
                let value = crate::process::pruned(&o.value, &paths);
                Resource::new(o.id.clone(), &value, o.origin.clone())
            })
        })
        .collect();
    Findings {
        problems: run(Stage::Process),
        later,
        kept,
    }
}

/// Runs every rule that is on, runs at `stage` and must see the whole
/// render against what [`check_objects`] kept for it.
pub fn check_render(stage: Stage, kept: &[Resource], ctx: &RenderContext<'_>) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for check in checks(stage, ctx) {
        let Check::Render { kinds, check, .. } = check else {
            continue;
        };
        if kept.iter().all(|r| kinds.contains(&r.id.kind.as_str())) {
            diags.extend(check(kept, ctx));
        } else {
            let read: Vec<Resource> = kept
                .iter()
                .filter(|r| kinds.contains(&r.id.kind.as_str()))
                .cloned()
                .collect();
            diags.extend(check(&read, ctx));
        }
    }
    diags
}

/// A policy violation about a rendered object, located at the service it
/// was rendered for (else the template entry point).
pub fn violation(
    policy: &str,
    message: String,
    r: &Object,
    ctx: &RenderContext<'_>,
    defined_at: Option<Span>,
    note: String,
) -> Diagnostic {
    let mut d = Diagnostic::error(Code::PolicyViolation, format!("policy `{policy}`: {message}"))
        .note(note)
        .help(format!(
            "fix the service, or switch the policy off for this repository with settings.policies: {{{policy}: false}}"
        ));
    if let Some(span) = defined_at {
        d = d.related(span, "policy defined here");
    }
    locate(d, &r.value, ctx.service_spans, ctx.entry)
}

/// The pod spec of a workload: every kind that runs containers.
pub fn pod_spec(r: &Object) -> Option<&Json> {
    match r.id.kind.as_str() {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController"
        | "Rollout" => crate::process::at(&r.value, &["spec", "template", "spec"]),
        "PodTemplate" => crate::process::at(&r.value, &["template", "spec"]),
        "CronJob" => crate::process::at(
            &r.value,
            &["spec", "jobTemplate", "spec", "template", "spec"],
        ),
        "Pod" => r.value.get("spec"),
        _ => None,
    }
}

/// The containers of the given lists of a pod spec.
pub fn containers<'a>(
    spec: &'a Json,
    lists: &'static [&'static str],
) -> impl Iterator<Item = &'a Json> {
    lists.iter().flat_map(|list| {
        spec.get(list)
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
    })
}

/// `docs/rules.md`, generated from the rules' own documentation.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Rules\n\n\
         <!-- Generated from src/rules/*.rs by `UPDATE_DOCS=1 cargo test rules_doc`; do not edit. -->\n\n\
         Every rule is on by default; `settings.policies: {<id>: false}` in\n\
         controlcenter.yaml switches one off for the repository. A repository adds\n\
         its own under `policies/*.yaml` (see the README).\n\n",
    );
    for rule in RULES {
        let stages: Vec<&str> = rule.stages().iter().map(|s| s.describe()).collect();
        out.push_str(&format!(
            "## `{}`\n\n- codes: {}\n- runs at: {}\n- applies to: {}\n\n",
            rule.id,
            rule.codes
                .iter()
                .map(|c| format!("{c} ({})", c.summary()))
                .collect::<Vec<_>>()
                .join(", "),
            stages.join("; "),
            if rule.protected_only {
                "protected environments (`settings.protected_envs`)"
            } else {
                "every environment"
            },
        ));
        out.push_str(&format!(
            "### What it does\n\n{}\n\n### Why is this bad\n\n{}\n\n### Example\n\n```\n{}\n```\n\n### How to fix\n\n{}\n\n",
            rule.doc.what, rule.doc.why, rule.doc.example.trim_end(), rule.doc.fix
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_doc_is_generated_from_the_rules() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rules.md");
        let expected = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/rules.md is out of date: run `UPDATE_DOCS=1 cargo test rules_doc`"
        );
    }

    #[test]
    fn rule_ids_are_unique_kebab_case_and_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for rule in RULES {
            assert!(seen.insert(rule.id), "{} registered twice", rule.id);
            assert!(
                crate::names::is_dns1123_label(rule.id),
                "{}: ids are kebab-case",
                rule.id
            );
            assert!(
                !rule.stages().is_empty(),
                "{}: a rule checks something",
                rule.id
            );
            for text in [rule.doc.what, rule.doc.why, rule.doc.example, rule.doc.fix] {
                assert!(
                    !text.trim().is_empty(),
                    "{}: every doc section is written",
                    rule.id
                );
            }
        }
    }
}
