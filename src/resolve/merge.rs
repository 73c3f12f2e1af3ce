//! Deep merge of `defaults` under an environment section, on spanned nodes:
//! maps merge, scalars and lists replace, the environment wins. Each merged
//! value keeps the span it came from, so errors and provenance point at the
//! line that set it (in `defaults` or in the environment).

use foldhash::HashMap;
use std::borrow::Cow;

use crate::load::yaml::{Entry, Node, Value};

/// `base` ⊕ `over`.
pub fn deep_merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (Value::Map(b), Value::Map(o)) => {
            let mut entries: Vec<Entry> = b.clone();
            let mut index: HashMap<String, usize> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.key.clone(), i))
                .collect();
            for e in o {
                match index.get(&e.key) {
                    Some(&i) => {
                        let merged = deep_merge(&entries[i].value, &e.value);
                        entries[i] = Entry {
                            key: e.key.clone(),
                            key_span: e.key_span,
                            value: merged,
                        };
                    }
                    None => {
                        index.insert(e.key.clone(), entries.len());
                        entries.push(e.clone());
                    }
                }
            }
            Node {
                value: Value::Map(entries),
                span: over.span,
                plain: false,
            }
        }
        _ => over.clone(),
    }
}

/// The entries of `base` ⊕ `over` when both are mappings, in
/// [`deep_merge`]'s order: an entry only one side has is borrowed, so
/// merging a few defaults under a section of thousands of services copies
/// only what both define. `None` when `over` is not a mapping.
pub fn merged_entries<'a>(base: Option<&'a Node>, over: &'a Node) -> Option<Vec<Cow<'a, Entry>>> {
    let over_entries = over.as_map()?;
    let Some(base_entries) = base.and_then(Node::as_map) else {
        return Some(over_entries.iter().map(Cow::Borrowed).collect());
    };
    let overrides: HashMap<&str, &Entry> =
        over_entries.iter().map(|e| (e.key.as_str(), e)).collect();
    let mut entries: Vec<Cow<'a, Entry>> = base_entries
        .iter()
        .map(|b| match overrides.get(b.key.as_str()) {
            Some(o) => Cow::Owned(Entry {
                key: o.key.clone(),
                key_span: o.key_span,
                value: deep_merge(&b.value, &o.value),
            }),
            None => Cow::Borrowed(b),
        })
        .collect();
    let in_base: std::collections::HashSet<&str> =
        base_entries.iter().map(|e| e.key.as_str()).collect();
    entries.extend(
        over_entries
            .iter()
            .filter(|e| !in_base.contains(e.key.as_str()))
            .map(Cow::Borrowed),
    );
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Sources;
    use crate::load::yaml::parse;

    #[test]
    fn maps_merge_scalars_and_lists_replace() {
        let mut s = Sources::default();
        let text = "d:\n  a: {x: 1, y: [1, 2]}\n  keep: 1\ne:\n  a: {y: [3]}\n";
        let f = s.add("c.yaml", text);
        let root = parse(text, f).unwrap();
        let merged = deep_merge(root.get("d").unwrap(), root.get("e").unwrap());
        assert_eq!(
            merged.to_json(),
            serde_json::json!({"a": {"x": 1, "y": [3]}, "keep": 1})
        );
        // `x` keeps its span in `d`.
        let x = merged.pointer("/a/x").unwrap();
        assert_eq!(&text[x.span.start..x.span.end], "1");
        assert!(x.span.start < text.find("e:").unwrap());
    }

    #[test]
    fn merged_entries_are_the_entries_of_the_deep_merge() {
        let mut s = Sources::default();
        let text = "d:\n  a: {x: 1}\n  keep: 1\ne:\n  b: 2\n  a: {y: [3]}\n  c: {z: 1}\n";
        let f = s.add("c.yaml", text);
        let root = parse(text, f).unwrap();
        let (d, e) = (root.get("d").unwrap(), root.get("e").unwrap());
        let whole = deep_merge(d, e);
        let entries = merged_entries(Some(d), e).unwrap();
        let entries: Vec<Entry> = entries.into_iter().map(Cow::into_owned).collect();
        assert_eq!(whole.as_map().unwrap(), entries.as_slice());
        let alone = merged_entries(None, e).unwrap();
        assert_eq!(alone.len(), 3);
        assert!(merged_entries(Some(d), root.get("d").unwrap().get("keep").unwrap()).is_none());
    }
}
