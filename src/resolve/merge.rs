//! Deep merge of `defaults` under an environment section, on spanned nodes:
//! maps merge, scalars and lists replace, the environment wins. Each merged
//! value keeps the span it came from, so errors and provenance point at the
//! line that set it (in `defaults` or in the environment).

use std::collections::HashMap;

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
}
