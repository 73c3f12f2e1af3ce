//! `no-plain-secrets`: no plain `Secret` is emitted.

use super::{Check, Doc, RenderContext, Rule, Stage};
use crate::diagnostics::{Code, Diagnostic};
use crate::evaluate::blame::locate;
use crate::process::Object;

/// The rule.
pub const RULE: Rule = Rule {
    id: "no-plain-secrets",
    codes: &[Code::PlainSecret],
    protected_only: false,
    doc: Doc {
        what: "Refuses a rendered core `v1` `Secret`.",
        why: "Rendered manifests are committed to Git and shown by Argo CD: a plain Secret's data (base64, not encryption) would be readable by everyone who can read either.",
        example: "// a template\n{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, data: { password: 'aHVudGVyMg==' } }",
        fix: "Use a SealedSecret (`secrets.yaml`) or an ExternalSecret (the service's `secrets:` knob).",
    },
    on_tag_image: None,
    on_resources: Some((Stage::Process, Check::Each(check))),
};

fn check(resources: &[Object], ctx: &RenderContext<'_>) -> Vec<Diagnostic> {
    resources
        .iter()
        .filter(|r| r.id.kind == "Secret" && r.id.group.is_empty())
        .map(|r| {
            locate(
                Diagnostic::error(
                    Code::PlainSecret,
                    format!("{} is a plain Secret; its data would sit unencrypted in Git and in Argo CD", r.id.display()),
                )
                .help("use a SealedSecret (secrets.yaml) or an ExternalSecret (service `secrets:`); switch the policy off only if you must: settings.policies: {no-plain-secrets: false}"),
                &r.value,
                ctx.service_spans,
                ctx.entry,
            )
        })
        .collect()
}
