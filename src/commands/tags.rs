//! Edits of tags.yaml, the CI write-back: `tags set`, `tags get`,
//! `tags prune`.
//!
//! Edits are surgical: the file is parsed into a spanned tree and only the
//! bytes of the entry being added, changed or removed are touched, so
//! comments, key order and formatting of everything else stay
//! byte-for-byte. New services and revisions go in sorted position, so two
//! CI jobs adding different entries produce diffs Git merges cleanly.
//! Revisions are immutable: repointing one needs `--force`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostics::{Code, Diagnostic, FileId, Span};
use crate::image::ImageRef;
use crate::load::yaml::{self, Entry, Node};
use crate::names;

/// What `set` did.
#[derive(Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// The entry was added.
    Added,
    /// The entry existed with another image and was repointed (`--force`).
    Repointed {
        /// The image it had.
        previous: String,
    },
    /// The entry already had this image: nothing to write.
    Unchanged,
}

/// Checks an image CI writes back: a valid reference
/// ([`ImageRef::parse`]) that is immutable, since a revision's image must
/// never change under it.
pub fn check_image(image: &str) -> Result<(), String> {
    let r = ImageRef::parse(image)?;
    match (r.tag, r.digest) {
        (None, None) => Err(
            "the image has neither a tag nor a digest; CI writes immutable references".into(),
        ),
        _ if r.is_mutable() => Err(
            "`latest` can change under a revision; CI writes immutable references (a version tag or @sha256 digest)".into(),
        ),
        _ => Ok(()),
    }
}

/// Sort order of keys: natural (digit runs compare as numbers), so
/// `v1.0.9` < `v1.0.10` and `svc2` < `svc10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let i = d
        .iter()
        .position(|c| *c != b'0')
        .unwrap_or(d.len().saturating_sub(1));
    &d[i..]
}

/// One `key: value` line (plus newline) as the YAML emitter writes it, so
/// keys and values that need quotes get them.
fn entry_line(key: &str, value: &str, indent: usize) -> String {
    let map = BTreeMap::from([(key.to_owned(), value.to_owned())]);
    let text = serde_saphyr::to_string(&map).unwrap_or_else(|_| format!("{key:?}: {value:?}\n"));
    format!("{}{}", " ".repeat(indent), text)
}

/// A mapping key as the YAML emitter writes it (quoted when it must be).
fn key_text(key: &str) -> String {
    let line = entry_line(key, "x", 0);
    line.trim_end()
        .strip_suffix(": x")
        .unwrap_or(key)
        .to_owned()
}

/// Byte offset of the start of the line holding `offset`.
fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// Start of the line holding `offset`, moved up over the comment lines
/// right above it: they describe that entry and stay with it.
fn entry_start(text: &str, offset: usize) -> usize {
    let mut start = line_start(text, offset);
    while start > 0 {
        let prev = line_start(text, start - 1);
        if text[prev..start].trim_start().starts_with('#') {
            start = prev;
        } else {
            break;
        }
    }
    start
}

/// Byte offset just after the line holding `offset` (after its newline).
fn line_end(text: &str, offset: usize) -> usize {
    text[offset..]
        .find('\n')
        .map_or(text.len(), |i| offset + i + 1)
}

/// Whether a mapping node is written in block style (`key: value` lines).
fn is_block(node: &Node, text: &str) -> bool {
    !text[node.span.start..].starts_with('{')
}

fn flow_style_error(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        Code::SchemaViolation,
        format!("{what} is written in flow style (`{{…}}`); tags edits need block style"),
    )
    .at(span, "flow style")
    .help("rewrite it as one `key: value` per line")
}

/// Adds or repoints `tags[service][rev] = image` in `text`, returning the
/// new text. `file` is the id `text` is registered under (for errors).
pub fn set(
    text: &str,
    file: FileId,
    service: &str,
    rev: &str,
    image: &str,
    force: bool,
) -> Result<(String, SetOutcome), Vec<Diagnostic>> {
    let root = yaml::parse(text, file)?;
    let entries: &[Entry] = match &root.value {
        yaml::Value::Map(m) => m,
        yaml::Value::Null => &[],
        _ => {
            return Err(vec![Diagnostic::error(
                Code::SchemaViolation,
                "tags.yaml must be a mapping of service → revision → image",
            )
            .at(root.span, "not a mapping")])
        }
    };
    if !entries.is_empty() && !is_block(&root, text) {
        return Err(vec![flow_style_error(root.span, "tags.yaml")]);
    }
    let Some(svc) = entries.iter().find(|e| e.key == service) else {
        // New service, in sorted position among the top-level keys.
        let insert = format!("{}:\n{}", key_text(service), entry_line(rev, image, 2));
        let at = match entries
            .iter()
            .find(|e| natural_cmp(&e.key, service) == Ordering::Greater)
        {
            Some(next) => entry_start(text, next.key_span.start),
            None => text.len(),
        };
        let mut out = text.to_owned();
        if at == out.len() && !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let at = at.min(out.len());
        out.insert_str(at, &insert);
        return Ok((out, SetOutcome::Added));
    };
    let revs: &[Entry] = match &svc.value.value {
        yaml::Value::Map(m) => m,
        yaml::Value::Null => &[],
        _ => {
            return Err(vec![Diagnostic::error(
                Code::SchemaViolation,
                format!("tags.yaml: `{service}` must map revisions to images"),
            )
            .at(svc.value.span, "not a mapping")])
        }
    };
    if !revs.is_empty() && !is_block(&svc.value, text) {
        return Err(vec![flow_style_error(
            svc.value.span,
            &format!("`{service}`"),
        )]);
    }
    if let Some(existing) = revs.iter().find(|e| e.key == rev) {
        let current = existing.value.as_str().unwrap_or_default();
        if current == image {
            return Ok((text.to_owned(), SetOutcome::Unchanged));
        }
        if !force {
            return Err(vec![Diagnostic::error(
                Code::ImmutableRevision,
                format!("`{service}` revision `{rev}` already points to another image"),
            )
            .at(existing.value.span, "current image")
            .help("revisions are immutable: build a new revision, or pass --force to repoint this one deliberately")]);
        }
        let line = entry_line(rev, image, 0);
        let value_text = line
            .trim_end()
            .split_once(": ")
            .map_or(image.to_owned(), |(_, v)| v.to_owned());
        let mut out = text.to_owned();
        out.replace_range(
            existing.value.span.start..existing.value.span.end,
            &value_text,
        );
        return Ok((
            out,
            SetOutcome::Repointed {
                previous: current.to_owned(),
            },
        ));
    }
    // New revision of a known service: same indentation as its siblings.
    let (indent, at) = match revs.first() {
        Some(first) => {
            let indent = first.key_span.start - line_start(text, first.key_span.start);
            let at = match revs
                .iter()
                .find(|e| natural_cmp(&e.key, rev) == Ordering::Greater)
            {
                Some(next) => entry_start(text, next.key_span.start),
                None => line_end(
                    text,
                    revs.last().map_or(first.value.span.end, |e| {
                        e.value.span.end.max(e.key_span.end)
                    }),
                ),
            };
            (indent, at)
        }
        None => {
            let key_line_end = line_end(text, svc.key_span.end);
            (2, key_line_end)
        }
    };
    let mut out = text.to_owned();
    if at == out.len() && !out.ends_with('\n') {
        out.push('\n');
    }
    let at = at.min(out.len());
    out.insert_str(at, &entry_line(rev, image, indent));
    Ok((out, SetOutcome::Added))
}

/// The image of `service` at `rev`.
pub fn get(root: &Node, service: &str, rev: &str) -> Option<String> {
    root.get(service)?.get(rev)?.as_str().map(str::to_owned)
}

/// Removes revisions that no environment references, keeping the newest
/// `keep` of each service (natural order of revision names). Returns the
/// new text and the removed (service, revision) pairs.
pub fn prune(
    text: &str,
    file: FileId,
    referenced: &BTreeSet<(String, String)>,
    keep: usize,
) -> Result<(String, Vec<(String, String)>), Vec<Diagnostic>> {
    let root = yaml::parse(text, file)?;
    let mut cuts: Vec<(usize, usize, String, String)> = Vec::new();
    for svc in root.as_map().unwrap_or_default() {
        let Some(revs) = svc.value.as_map() else {
            continue;
        };
        if !is_block(&svc.value, text) {
            return Err(vec![flow_style_error(
                svc.value.span,
                &format!("`{}`", svc.key),
            )]);
        }
        let mut names: Vec<&str> = revs.iter().map(|e| e.key.as_str()).collect();
        names.sort_by(|a, b| natural_cmp(b, a));
        let newest: BTreeSet<&str> = names.into_iter().take(keep).collect();
        for e in revs {
            let used = referenced.contains(&(svc.key.clone(), e.key.clone()));
            if !used && !newest.contains(e.key.as_str()) {
                let start = line_start(text, e.key_span.start);
                let end = line_end(text, e.value.span.end.max(e.key_span.end));
                cuts.push((start, end, svc.key.clone(), e.key.clone()));
            }
        }
    }
    let mut out = text.to_owned();
    for (start, end, _, _) in cuts.iter().rev() {
        out.replace_range(*start..*end, "");
    }
    Ok((out, cuts.into_iter().map(|(_, _, s, r)| (s, r)).collect()))
}

/// Whether `name` can be a service key (it must become a Kubernetes name).
pub fn check_service(name: &str) -> Result<(), String> {
    names::dns_label(name)
        .map(|_| ())
        .ok_or_else(|| format!("`{name}` cannot become a Kubernetes name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Sources;

    const TAGS: &str = "# Written by CI. Do not edit by hand.\nservice1:\n  test: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service1:17  # smoke\n  v1.0.86: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service1:59\n\n# the payments team\nservice3:\n    v2: reg.example.com/s3:2\n";

    fn set_(
        text: &str,
        s: &str,
        r: &str,
        i: &str,
        force: bool,
    ) -> Result<(String, SetOutcome), Vec<Diagnostic>> {
        let mut sources = Sources::default();
        let f = sources.add("tags.yaml", text);
        set(text, f, s, r, i, force)
    }

    #[test]
    fn new_revision_goes_in_natural_order_and_nothing_else_moves() {
        let (out, how) = set_(
            TAGS,
            "service1",
            "v1.0.9",
            "reg.example.com/service1:60",
            false,
        )
        .unwrap();
        assert_eq!(how, SetOutcome::Added);
        assert_eq!(
            out,
            TAGS.replace(
                "  v1.0.86:",
                "  v1.0.9: reg.example.com/service1:60\n  v1.0.86:"
            )
        );
        let (out, _) = set_(
            TAGS,
            "service1",
            "v1.0.100",
            "reg.example.com/service1:61",
            false,
        )
        .unwrap();
        assert!(
            out.contains(
                "service1:59\n  v1.0.100: reg.example.com/service1:61\n\n# the payments team"
            ),
            "{out}"
        );
    }

    #[test]
    fn new_service_goes_in_sorted_position_with_sibling_indentation_kept() {
        let (out, _) = set_(TAGS, "service2", "v1", "reg.example.com/s2:1", false).unwrap();
        assert!(
            out.contains(
                ":59\n\nservice2:\n  v1: reg.example.com/s2:1\n# the payments team\nservice3:"
            ),
            "{out}"
        );
        let (out, _) = set_(TAGS, "service3", "v3", "reg.example.com/s3:3", false).unwrap();
        assert!(
            out.ends_with("    v2: reg.example.com/s3:2\n    v3: reg.example.com/s3:3\n"),
            "{out}"
        );
        let (out, _) = set_(TAGS, "zeta", "v1", "reg.example.com/z:1", false).unwrap();
        assert!(
            out.ends_with("s3:2\nzeta:\n  v1: reg.example.com/z:1\n"),
            "{out}"
        );
    }

    #[test]
    fn revisions_are_immutable_unless_forced() {
        let errs = set_(
            TAGS,
            "service1",
            "test",
            "reg.example.com/service1:18",
            false,
        )
        .unwrap_err();
        assert_eq!(errs[0].code, Code::ImmutableRevision);
        let (out, how) = set_(
            TAGS,
            "service1",
            "test",
            "reg.example.com/service1:18",
            true,
        )
        .unwrap();
        assert!(matches!(how, SetOutcome::Repointed { .. }));
        assert_eq!(
            out,
            TAGS.replace(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/service1:17",
                "reg.example.com/service1:18"
            )
        );
        let (out, how) = set_(
            TAGS,
            "service1",
            "v1.0.86",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/service1:59",
            false,
        )
        .unwrap();
        assert_eq!((out.as_str(), how), (TAGS, SetOutcome::Unchanged));
    }

    #[test]
    fn keys_that_need_quotes_get_them() {
        let (out, _) = set_(TAGS, "service1", "yes", "reg.example.com/service1:1", false).unwrap();
        assert!(
            out.contains("\n  \"yes\": reg.example.com/service1:1\n")
                || out.contains("\n  'yes': reg.example.com/service1:1\n"),
            "{out}"
        );
    }

    #[test]
    fn empty_file_and_flow_style() {
        let (out, _) = set_("", "svc", "v1", "reg.example.com/svc:1", false).unwrap();
        assert_eq!(out, "svc:\n  v1: reg.example.com/svc:1\n");
        assert!(set_(
            "svc: {v1: reg.example.com/svc:1}\n",
            "svc",
            "v2",
            "reg.example.com/svc:2",
            false
        )
        .is_err());
    }

    #[test]
    fn images_are_checked() {
        for ok in [
            "reg.example.com/team/app:1.2.3",
            "app:1",
            "localhost:5000/app:v1",
            "reg.io/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(check_image(ok).is_ok(), "{ok}");
        }
        for bad in [
            "reg.io/app",
            "reg.io/app:latest",
            "reg.io/App:1",
            "reg.io/app:",
            "reg.io/app:-x",
            "reg.io/app@sha256:1234",
            "not an image",
        ] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["v1.0.10", "v1.0.9", "v1.0.100", "main", "v1.0.86"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["main", "v1.0.9", "v1.0.10", "v1.0.86", "v1.0.100"]);
    }

    #[test]
    fn prune_keeps_referenced_and_newest() {
        let text = "a:\n  v1: r.io/a:1\n  v2: r.io/a:2\n  v3: r.io/a:3  # kept: newest\n  v10: r.io/a:10\n";
        let mut sources = Sources::default();
        let f = sources.add("tags.yaml", text);
        let referenced = BTreeSet::from([("a".to_owned(), "v1".to_owned())]);
        let (out, removed) = prune(text, f, &referenced, 2).unwrap();
        assert_eq!(removed, [("a".to_owned(), "v2".to_owned())]);
        assert_eq!(
            out,
            "a:\n  v1: r.io/a:1\n  v3: r.io/a:3  # kept: newest\n  v10: r.io/a:10\n"
        );
    }
}
