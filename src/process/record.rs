//! Records of post-processing: what one value of the template output was
//! made into (each object's identity, origin, YAML document, and what the
//! checks of the whole render keep of it), once it was found clean. The
//! cache stores a unit's records beside its output, under a key that also
//! covers everything the checks depend on; a later render of the same
//! unit under the same checks takes the objects from the record instead
//! of parsing and checking them again.
//!
//! Encoded as length-prefixed text: per value a count of objects, per
//! object one line of lengths followed by the bytes they measure. Read
//! back, each object's texts stay parts of the record's one buffer.

use std::sync::Arc;

use super::{display_origin, Resource, ResourceId, Text};
use crate::text::Buffer;

/// One object of a value, as a record holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedObject {
    /// Where it sits in its value: appended to the value's path, its
    /// origin.
    pub suffix: String,
    /// Identity.
    pub id: ResourceId,
    /// Its compact JSON.
    pub json: Text,
    /// Its YAML document, when it was made.
    pub yaml: Option<Text>,
    /// What the checks of the whole render keep of it, as compact JSON.
    pub kept: Option<Text>,
}

/// The record of a value at `path` that was found clean: its objects
/// (`resources`), with what the checks kept of them. `None` when an
/// origin does not come from the path (nothing is recorded then).
pub fn make(path: &str, resources: &[Resource], kept: &[Resource]) -> Option<Vec<CheckedObject>> {
    resources
        .iter()
        .map(|r| {
            Some(CheckedObject {
                suffix: suffix(path, &r.origin)?,
                id: r.id.clone(),
                json: r.json.clone(),
                yaml: r.yaml.clone(),
                kept: kept
                    .iter()
                    .find(|k| k.origin == r.origin && k.id == r.id)
                    .map(|k| k.json.clone()),
            })
        })
        .collect()
}

/// Adds the objects of a value at `path` as its record has them, and what
/// the checks keep of them.
pub fn restore(
    path: &str,
    record: Vec<CheckedObject>,
    resources: &mut Vec<Resource>,
    kept: &mut Vec<Resource>,
) {
    for o in record {
        let origin = if o.suffix.is_empty() {
            display_origin(path)
        } else {
            display_origin(&format!("{path}{}", o.suffix))
        };
        if let Some(k) = o.kept {
            kept.push(Resource::of_text(o.id.clone(), k, origin.clone(), None));
        }
        resources.push(Resource::of_text(o.id, o.json, origin, o.yaml));
    }
}

/// What `origin` (the display of a path) adds to `path`.
fn suffix(path: &str, origin: &str) -> Option<String> {
    if origin == display_origin(path) {
        return Some(String::new());
    }
    let suffix = origin.strip_prefix("output")?.strip_prefix(path)?;
    (display_origin(&format!("{path}{suffix}")) == origin).then(|| suffix.to_owned())
}

/// The records of a unit's values, in order, as bytes.
pub fn encode(values: &[&[CheckedObject]]) -> Vec<u8> {
    // Sized once: a unit's records run to tens of KB, grown by doubling
    // they were copied several times over.
    let texts: usize = values
        .iter()
        .flat_map(|objects| objects.iter())
        .map(|o| {
            o.suffix.len()
                + o.id.api_version.len()
                + o.id.kind.len()
                + o.id.namespace.len()
                + o.id.name.len()
                + o.json.as_str().len()
                + o.yaml.as_ref().map_or(0, |t| t.as_str().len())
                + o.kept.as_ref().map_or(0, |t| t.as_str().len())
                + 8 * 8
        })
        .sum();
    let mut out = Vec::with_capacity(texts + 16 * (values.len() + 1));
    out.extend_from_slice(format!("{}\n", values.len()).as_bytes());
    for objects in values {
        out.extend_from_slice(format!("{}\n", objects.len()).as_bytes());
        for o in *objects {
            let len = |part: Option<&str>| part.map_or("-".to_owned(), |p| p.len().to_string());
            let parts: [Option<&str>; 8] = [
                Some(&o.suffix),
                Some(&o.id.api_version),
                Some(&o.id.kind),
                Some(&o.id.namespace),
                Some(&o.id.name),
                Some(o.json.as_str()),
                o.yaml.as_ref().map(Text::as_str),
                o.kept.as_ref().map(Text::as_str),
            ];
            let lengths: Vec<String> = parts.iter().map(|p| len(*p)).collect();
            out.extend_from_slice(lengths.join(" ").as_bytes());
            out.push(b'\n');
            for part in parts.into_iter().flatten() {
                out.extend_from_slice(part.as_bytes());
            }
        }
    }
    out
}

/// The records [`encode`] wrote, in `range` of `buf`, their texts parts of
/// `buf` (nothing is copied); `None` for anything else.
pub fn decode(buf: &Arc<Buffer>, range: std::ops::Range<usize>) -> Option<Vec<Vec<CheckedObject>>> {
    let bytes = buf.bytes().get(range.clone())?;
    // Offsets below are into `bytes`; `range.start` makes them the buffer's.
    let mut at = 0;
    let line = |at: &mut usize| -> Option<&str> {
        let rest = bytes.get(*at..)?;
        let end = rest.iter().position(|&b| b == b'\n')?;
        *at += end + 1;
        std::str::from_utf8(&rest[..end]).ok()
    };
    // Sized from the counts: grown by doubling, a warm render's thousands
    // of lists would take fresh memory twice over. A value takes two bytes
    // at least (its count's line) and an object sixteen (its line of
    // lengths), so a damaged count reserves no more than the record holds.
    let count: usize = line(&mut at)?.parse().ok()?;
    let mut values = Vec::with_capacity(count.min(bytes.len() / 2));
    for _ in 0..count {
        let objects: usize = line(&mut at)?.parse().ok()?;
        let mut decoded = Vec::with_capacity(objects.min((bytes.len() - at) / 16));
        for _ in 0..objects {
            let mut lengths = [None; 8];
            let mut words = line(&mut at)?.split(' ');
            for length in &mut lengths {
                *length = match words.next()? {
                    "-" => None,
                    w => Some(w.parse::<usize>().ok()?),
                };
            }
            if words.next().is_some() {
                return None;
            }
            // The identity is read where it lies; the texts stay parts of
            // the buffer.
            let mut word = |len: Option<usize>| -> Option<&str> {
                let end = at.checked_add(len?)?;
                let text = std::str::from_utf8(bytes.get(at..end)?).ok()?;
                at = end;
                Some(text)
            };
            let suffix = word(lengths[0])?.to_owned();
            let id = ResourceId::from_parts(
                word(lengths[1])?,
                word(lengths[2])?,
                word(lengths[3])?,
                word(lengths[4])?,
            );
            let mut text = |len: Option<usize>| -> Option<Option<Text>> {
                let Some(len) = len else {
                    return Some(None);
                };
                let end = at.checked_add(len)?;
                let part = Text::part(buf, range.start + at..range.start + end)?;
                at = end;
                Some(Some(part))
            };
            let json = text(lengths[5])??;
            let yaml = text(lengths[6])?;
            let kept = text(lengths[7])?;
            decoded.push(CheckedObject {
                suffix,
                id,
                json,
                yaml,
                kept,
            });
        }
        values.push(decoded);
    }
    (at == bytes.len()).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Text {
        Text::new(s.to_owned())
    }

    fn object(suffix: &str, json: &str) -> CheckedObject {
        CheckedObject {
            suffix: suffix.to_owned(),
            id: ResourceId::from_parts("apps/v1", "Deployment", "prod", "web"),
            json: text(json),
            yaml: Some(text("a: |\n  two\n  lines\n")),
            kept: Some(text(r#"{"metadata":{"name":"web"}}"#)),
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let one = [object("", "{}")];
        let many = [
            object(".a b\nc", "{}"),
            CheckedObject {
                yaml: None,
                kept: None,
                ..object("[1]", r#"{"x":"é"}"#)
            },
        ];
        let none: [CheckedObject; 0] = [];
        let values: [&[CheckedObject]; 3] = [&one, &many, &none];
        let bytes = String::from_utf8(encode(&values)).unwrap();
        let whole = |text: &str| {
            let buf = Buffer::string(text.to_owned());
            decode(&buf, 0..text.len())
        };
        let back = whole(&bytes).unwrap();
        assert_eq!(back, vec![one.to_vec(), many.to_vec(), Vec::new()]);
        assert_eq!(back[0][0].id.group, "apps");
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(whole(bytes.get(..cut).unwrap_or("")), None);
        }
        assert_eq!(whole(&format!("{bytes}x")), None);
        // A length that cuts a character in two.
        assert_eq!(whole("1\n1\n0 0 0 0 0 1 - -\né"), None);
        // Read where it lies in a larger buffer.
        let framed = format!("header\n{bytes}trailer");
        let buf = Buffer::string(framed.clone());
        assert_eq!(decode(&buf, 7..7 + bytes.len()), Some(back));
    }

    #[test]
    fn an_origin_gives_back_its_suffix() {
        assert_eq!(suffix("[3]", "output[3]").as_deref(), Some(""));
        assert_eq!(
            suffix("[3]", "output[3].items[0]").as_deref(),
            Some(".items[0]")
        );
        assert_eq!(suffix("", "the top level").as_deref(), Some(""));
        assert_eq!(suffix("", "output.web").as_deref(), Some(".web"));
        assert_eq!(suffix("[3]", "output[4]"), None);
    }
}
