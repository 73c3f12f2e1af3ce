//! Manifest-level diff between two renders: resources matched by identity
//! (group, kind, namespace, name), then a unified diff of each changed
//! resource's YAML. Secret values never appear: SealedSecret ciphertexts
//! and Secret data are replaced by a short SHA-256 before anything is
//! compared or printed, so a change shows as a changed hash.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::redact::SecretValues;
use similar::TextDiff;

use crate::emit::yaml_document;
use crate::process::Resource;

/// How to compare.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// JSON pointers removed from both sides first (noise such as an annotation).
    pub ignore: Vec<String>,
    /// Match across namespaces (comparing two environments).
    pub ignore_namespace: bool,
    /// Lines of context around each change.
    pub context: usize,
    /// Secret values the renders read: any string holding one is hashed
    /// before the YAML is written (a text scrub would miss a value the
    /// YAML writer folds or escapes).
    pub secrets: SecretValues,
}

/// What happened to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the new render.
    Added,
    /// Only in the old render.
    Removed,
    /// In both, different.
    Changed,
}

/// One resource that differs.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// Added, removed or changed.
    pub change: ChangeKind,
    /// `Kind/namespace/name`.
    pub resource: String,
    /// The resource's kind (for summaries by kind).
    #[serde(skip)]
    pub kind: String,
    /// apiVersion of the resource (the new one when both exist).
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Unified diff of the YAML (redacted), old → new.
    pub diff: String,
    /// Lines added.
    pub insertions: usize,
    /// Lines removed.
    pub deletions: usize,
}

/// The differences between two renders.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    /// Every resource that differs, in output order.
    pub changes: Vec<Change>,
    /// Resources present and equal on both sides.
    pub unchanged: usize,
}

impl DiffReport {
    /// Counts of (changed, added, removed).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |k| self.changes.iter().filter(|c| c.change == k).count();
        (
            n(ChangeKind::Changed),
            n(ChangeKind::Added),
            n(ChangeKind::Removed),
        )
    }

    /// `3 changed, 1 added, 0 removed`.
    pub fn summary(&self) -> String {
        let (c, a, r) = self.counts();
        format!("{c} changed, {a} added, {r} removed")
    }

    /// Whether the renders differ.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// `<redacted sha256:…>` of a value: equal values stay equal, so a diff
/// still says "changed" without showing either.
fn hashed(text: &str) -> Json {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Json::String(format!("<redacted sha256:{hex}>"))
}

/// Replaces secret values by `sha256:<12 hex>` so only "changed" shows.
pub fn redact(value: &mut Json) {
    let kind = value
        .get("kind")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let api = value
        .get("apiVersion")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let pointers: &[&str] = match (api.as_str(), kind.as_str()) {
        (_, "SealedSecret") => &["/spec/encryptedData"],
        ("v1", "Secret") => &["/data", "/stringData"],
        _ => &[],
    };
    for p in pointers {
        if let Some(map) = value.pointer_mut(p).and_then(Json::as_object_mut) {
            for v in map.values_mut() {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                *v = hashed(&text);
            }
        }
    }
}

fn remove_pointer(value: &mut Json, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Json::Object(m)) => {
            m.remove(&key);
        }
        Some(Json::Array(a)) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < a.len() {
                    a.remove(i);
                }
            }
        }
        _ => {}
    }
}

fn prepared(r: &Resource, opts: &DiffOptions) -> Resource {
    let mut value = r.value();
    redact(&mut value);
    if !opts.secrets.is_empty() {
        opts.secrets.redact_json(&mut value, &hashed);
    }
    for p in &opts.ignore {
        remove_pointer(&mut value, p);
    }
    if opts.ignore_namespace {
        remove_pointer(&mut value, "/metadata/namespace");
    }
    let mut r = r.clone();
    r.set_value(&value);
    r
}

fn key(r: &Resource, opts: &DiffOptions) -> crate::process::ResourceKey {
    let mut key = r.id.key();
    if opts.ignore_namespace {
        key.namespace.clear();
    }
    key
}

/// Compares two renders, `old` → `new`.
pub fn diff(old: &[Resource], new: &[Resource], opts: &DiffOptions) -> DiffReport {
    let old_by: BTreeMap<_, _> = old.iter().map(|r| (key(r, opts), r)).collect();
    let new_by: BTreeMap<_, _> = new.iter().map(|r| (key(r, opts), r)).collect();
    let mut changes: Vec<(crate::process::ResourceId, Change)> = Vec::new();
    let mut unchanged = 0;
    let all_keys: std::collections::BTreeSet<_> =
        old_by.keys().chain(new_by.keys()).cloned().collect();
    for k in all_keys {
        let (a, b) = (
            old_by.get(&k).map(|r| prepared(r, opts)),
            new_by.get(&k).map(|r| prepared(r, opts)),
        );
        let (kind, id) = match (&a, &b) {
            (Some(x), Some(y)) if x.json() == y.json() => {
                unchanged += 1;
                continue;
            }
            (Some(_), Some(y)) => (ChangeKind::Changed, y.id.clone()),
            (None, Some(y)) => (ChangeKind::Added, y.id.clone()),
            (Some(x), None) => (ChangeKind::Removed, x.id.clone()),
            (None, None) => continue,
        };
        let before = a.as_ref().map(yaml_document).unwrap_or_default();
        let after = b.as_ref().map(yaml_document).unwrap_or_default();
        let text = TextDiff::from_lines(&before, &after);
        let name = if opts.ignore_namespace {
            format!("{}/{}", id.kind, id.name)
        } else {
            id.display()
        };
        let unified = text
            .unified_diff()
            .context_radius(opts.context)
            .header(&format!("a/{name}"), &format!("b/{name}"))
            .to_string();
        let (mut insertions, mut deletions) = (0, 0);
        for op in text.ops() {
            for change in text.iter_changes(op) {
                match change.tag() {
                    similar::ChangeTag::Insert => insertions += 1,
                    similar::ChangeTag::Delete => deletions += 1,
                    similar::ChangeTag::Equal => {}
                }
            }
        }
        changes.push((
            id.clone(),
            Change {
                change: kind,
                resource: name,
                kind: id.kind.clone(),
                api_version: id.api_version.clone(),
                diff: unified,
                insertions,
                deletions,
            },
        ));
    }
    changes.sort_by(|(a, _), (b, _)| a.output_order(b));
    DiffReport {
        changes: changes.into_iter().map(|(_, c)| c).collect(),
        unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(v: Json) -> Resource {
        Resource::of_value(&v).unwrap()
    }

    #[test]
    fn added_removed_changed_and_unchanged() {
        let cm = |name: &str, v: &str| {
            res(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "dev"}, "data": {"A": v}}),
            )
        };
        let report = diff(
            &[cm("a", "1"), cm("b", "1"), cm("c", "1")],
            &[cm("a", "1"), cm("b", "2"), cm("d", "1")],
            &DiffOptions {
                context: 3,
                ..Default::default()
            },
        );
        assert_eq!(report.summary(), "1 changed, 1 added, 1 removed");
        assert_eq!(report.unchanged, 1);
        let changed = report
            .changes
            .iter()
            .find(|c| c.change == ChangeKind::Changed)
            .unwrap();
        assert!(
            changed.diff.contains("-  A: '1'") || changed.diff.contains("-  A: \"1\""),
            "{}",
            changed.diff
        );
        assert_eq!((changed.insertions, changed.deletions), (1, 1));
    }

    #[test]
    fn secrets_show_only_as_changed_hashes() {
        let ss = |c: &str| {
            res(
                json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "metadata": {"name": "db", "namespace": "dev"}, "spec": {"encryptedData": {"password": c}}}),
            )
        };
        let report = diff(
            &[ss("AgBciphertextOLD")],
            &[ss("AgBciphertextNEW")],
            &DiffOptions::default(),
        );
        let d = &report.changes[0].diff;
        assert!(d.contains("<redacted sha256:"), "{d}");
        assert!(!d.contains("ciphertext"), "{d}");
    }

    #[test]
    fn ignored_paths_are_not_compared() {
        let dep = |sum: &str| {
            res(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "dev", "annotations": {"checksum/config": sum}}}),
            )
        };
        let opts = DiffOptions {
            ignore: vec!["/metadata/annotations/checksum~1config".into()],
            ..Default::default()
        };
        assert!(diff(&[dep("1")], &[dep("2")], &opts).is_empty());
    }
}
