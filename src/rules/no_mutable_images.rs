//! `no-mutable-images`: no `latest` or untagged image in a protected
//! environment, checked twice: at the image tags.yaml gives a service
//! (`CC0305`, at its `git_rev`), and on every container the templates
//! render (at the image's literal in the templates).

use serde_json::Value as Json;

use super::{Check, containers, pod_spec, Doc, RenderContext, Rule, Stage, TagImage};
use crate::diagnostics::{Code, Diagnostic};
use crate::evaluate::blame::locate;
use crate::image::ImageRef;
use crate::process::Object;
use crate::names::clip;

/// The rule.
pub const RULE: Rule = Rule {
    id: "no-mutable-images",
    codes: &[Code::MutableImage, Code::PolicyViolation],
    protected_only: true,
    doc: Doc {
        what: "Refuses an image tagged `latest`, or not tagged at all, unless pinned by a `@sha256` digest: first where tags.yaml gives it to a service, then in every container of every rendered workload.",
        why: "A mutable tag can change under a running environment: what runs can no longer be reproduced, reviewed or rolled back, and two pods of one Deployment may run different code.",
        example: "# tags.yaml\napi:\n  v1.2.0: registry.example.com/api:latest",
        fix: "Pin a version tag or a digest (`registry.example.com/api:1.2.0`, `…@sha256:…`) in tags.yaml or the template.",
    },
    on_tag_image: Some(tag_image),
    on_resources: Some((Stage::Check, Check::Each(rendered))),
};

fn tag_image(image: &TagImage<'_>) -> Option<Diagnostic> {
    if !ImageRef::split(image.image).is_mutable() {
        return None;
    }
    Some(
        Diagnostic::error(
            Code::MutableImage,
            format!(
                "`{}` would run a mutable image (`latest` or untagged) in protected environment `{}`",
                image.service, image.env
            ),
        )
        .at(image.rev_span, "this revision")
        .related(image.image_span, "resolves to this image")
        .help("pin an immutable tag or a @sha256 digest in tags.yaml for this revision"),
    )
}

fn rendered(resources: &[Object], ctx: &RenderContext<'_>) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for r in resources {
        let Some(spec) = pod_spec(r) else { continue };
        for c in containers(spec, &["initContainers", "containers", "ephemeralContainers"]) {
            let Some(image) = c.get("image").and_then(Json::as_str) else {
                continue;
            };
            if !ImageRef::split(image).is_mutable() {
                continue;
            }
            let name = c.get("name").and_then(Json::as_str).unwrap_or("?");
            let mut d = Diagnostic::error(
                Code::PolicyViolation,
                format!(
                    "policy `{}`: {} container `{name}` runs the mutable image `{}` in protected environment `{}`",
                    RULE.id,
                    r.id.display(),
                    clip(image),
                    ctx.env
                ),
            )
            .note("a mutable tag can change under a running environment; what runs can no longer be reproduced or rolled back")
            .help(format!(
                "pin the image to a version tag or a digest (@sha256:…); or switch the policy off with settings.policies: {{{}: false}}",
                RULE.id
            ));
            if let Some(span) = crate::evaluate::blame::literal_span(ctx.templates, image) {
                d = d.at(span, "this image");
            }
            diags.push(locate(d, &r.value, ctx.service_spans, ctx.entry));
        }
    }
    diags
}
