//! Emit: the sorted resources as a YAML stream, as JSON lines (what the
//! Argo CD plugin prints), or as one file per resource in a directory that
//! is replaced atomically.

pub mod atomic;
pub mod hydrate;
pub mod out_dir;
mod yaml_writer;

use std::io::Write;

use crate::process::Resource;

#[cfg(test)]
mod tests {
    /// Translating the held text gives what serializing the parsed value
    /// gave, byte for byte, whatever the values.
    #[test]
    fn yaml_from_text_is_yaml_from_the_value() {
        let objects = [
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#,
            r#"{"a":[],"b":{},"c":[{}],"d":[[1,2],[]],"e":null,"f":true,"g":-0.0,"h":1e20,"i":18446744073709551615,"j":-9223372036854775808,"k":0.1,"l":1.5e-7}"#,
            r##"{"s":["yes","on","0755","1e3","1.10","~","","  lead","trail ","a: b","- x","#c","multi\nline\n","tab\there","é ü 日本","null","True","0x1F",".inf","'q'","\"dq\"","{x}","[y]","*a","&b","!t","%d","@e","`f"]}"##,
            r#"{"deep":{"a":{"b":{"c":[{"d":[{"e":"f"}]}]}}},"k":"v"}"#,
        ];
        // The identity is not part of the document.
        let id = crate::process::ResourceId::of(
            &serde_json::json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}}),
        )
        .unwrap();
        for text in objects {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let resource = crate::process::Resource::new(id.clone(), &value, String::new());
            assert_eq!(
                super::yaml_document(&resource),
                serde_saphyr::to_string(&value).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn rounds_cover_the_resources_in_order_within_their_size() {
        let resources: Vec<crate::process::Resource> = (0..7)
            .map(|i| {
                let name = "n".repeat(1 + i * 10);
                crate::process::Resource::of_value(
                    &serde_json::json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": name}}),
                )
                .unwrap()
            })
            .collect();
        for max in [0, 60, 150, 1 << 20] {
            let rounds: Vec<&[crate::process::Resource]> = super::rounds(&resources, max).collect();
            assert_eq!(
                rounds.iter().map(|r| r.len()).sum::<usize>(),
                resources.len()
            );
            for round in &rounds {
                let bytes: usize = round.iter().map(|r| r.json().len()).sum();
                assert!(round.len() == 1 || bytes <= max, "{max}: {bytes}");
            }
            let joined = rounds.concat();
            let names: Vec<&str> = joined.iter().map(|r| r.id.name.as_str()).collect();
            let all: Vec<&str> = resources.iter().map(|r| r.id.name.as_str()).collect();
            assert_eq!(names, all);
        }
        assert_eq!(super::rounds(&resources, 1 << 20).count(), 1);
        assert_eq!(super::rounds(&resources[..0], 10).count(), 0);
    }

    #[test]
    fn placeholder_lines_are_marked_and_listed() {
        let values = vec![
            ("nat_ips[0]".to_owned(), serde_json::json!("192.0.2.1")),
            ("db".to_owned(), serde_json::json!("PLACEHOLDER:db")),
            ("port".to_owned(), serde_json::json!(5432)),
        ];
        let yaml = "a: 192.0.2.1\nb: 192.0.2.10\nc: PLACEHOLDER:db\n";
        let out = super::mark_placeholders(yaml, "prod", "x.json", &values);
        assert!(
            out.contains("a: 192.0.2.1  # PLACEHOLDER:nat_ips[0]\n"),
            "{out}"
        );
        assert!(out.contains("b: 192.0.2.10\n"), "{out}");
        assert!(out.contains("c: PLACEHOLDER:db\n"), "{out}");
        assert!(out.contains("#   port = 5432\n"), "{out}");
    }
}

/// Output format of `render`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A YAML stream, documents separated by `---`.
    Yaml,
    /// One compact JSON object per line.
    Json,
}

/// One resource as a YAML document (no leading `---`). Keys sorted; strings
/// a YAML 1.1 reader would take for something else (`yes`, `on`, `0755`,
/// `1e3`, `1.10`, `~`) are quoted.
pub fn yaml_document(r: &Resource) -> String {
    let mut out = String::new();
    append_yaml_document(&mut out, r);
    out
}

/// Appends [`yaml_document`] of `r` to `out`: a stream's documents are
/// written where they go, not each made apart and copied.
fn append_yaml_document(out: &mut String, r: &Resource) {
    if let Some(yaml) = r.yaml() {
        out.push_str(yaml);
        return;
    }
    if yaml_writer::write_document(r.json(), out).is_some() {
        return;
    }
    // The held text's keys are already sorted: it is translated as it is
    // read, never parsed into a value first.
    let from = out.len();
    let mut json = serde_json::Deserializer::from_str(r.json());
    if serde_saphyr::to_fmt_writer(out, &serde_transcode::Transcoder::new(&mut json)).is_err() {
        // The text was made from a value, so this cannot fail in
        // practice; fall back to JSON, which is valid YAML, rather than
        // lose the resource.
        out.truncate(from);
        out.push_str(&serde_json::to_string_pretty(&r.value()).unwrap_or_default());
        out.push('\n');
    }
}

/// [`yaml_document`] of an object's compact JSON text (as
/// `serde_json::to_string` writes a parsed object: its maps' keys sorted).
pub fn yaml_of_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 2);
    if yaml_writer::write_document(json, &mut out).is_some() {
        return out;
    }
    let mut de = serde_json::Deserializer::from_str(json);
    match serde_saphyr::to_string(&serde_transcode::Transcoder::new(&mut de)) {
        Ok(s) => s,
        Err(_) => json.to_owned() + "\n",
    }
}

/// A YAML stream of all resources.
pub fn yaml_stream(resources: &[Resource]) -> String {
    in_shares(resources, yaml_entry)
}

/// One compact JSON object per line.
pub fn json_lines(resources: &[Resource]) -> String {
    in_shares(resources, json_line)
}

fn yaml_entry(out: &mut String, r: &Resource) {
    out.push_str("---\n");
    append_yaml_document(out, r);
}

fn json_line(out: &mut String, r: &Resource) {
    out.push_str(r.json());
    out.push('\n');
}

/// Writes the resources in `format` to `out` as they are serialized, so
/// the text of a large render is never held whole. JSON is each resource's
/// text as held; YAML, made from the parsed object, a round at a time on
/// every core.
pub fn write(resources: &[Resource], format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    match format {
        Format::Json => {
            for r in resources {
                out.write_all(r.json().as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        Format::Yaml => {
            for round in rounds(resources, ROUND_BYTES) {
                // Documents already made (taken from the cache) are written
                // as they are held; the others are made on every core.
                if round.iter().all(|r| r.yaml().is_some()) {
                    for yaml in round.iter().filter_map(Resource::yaml) {
                        out.write_all(b"---\n")?;
                        out.write_all(yaml.as_bytes())?;
                    }
                } else {
                    for share in shares(round, yaml_entry) {
                        out.write_all(share.as_bytes())?;
                    }
                }
            }
        }
    }
    out.flush()
}

/// Compact JSON written per round of [`write`], at most (a round's YAML
/// is held whole): a render of a few thousand objects is one round, made
/// on every core at once.
const ROUND_BYTES: usize = 32 << 20;

/// `resources` in rounds of at most `max_bytes` of JSON (a larger
/// resource is a round of its own).
fn rounds(resources: &[Resource], max_bytes: usize) -> impl Iterator<Item = &[Resource]> {
    let mut rest = resources;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let len = rest
            .iter()
            .position(|r| {
                bytes += r.json().len();
                bytes > max_bytes
            })
            .unwrap_or(rest.len())
            .max(1);
        let (round, after) = rest.split_at(len);
        rest = after;
        Some(round)
    })
}

/// Resources under which one thread writes them all.
const PARALLEL_FROM: usize = 512;

/// The text `write` makes of each resource, in order; large outputs are
/// written in shares on every core.
fn in_shares(resources: &[Resource], write: impl Fn(&mut String, &Resource) + Sync) -> String {
    shares(resources, write).concat()
}

/// The text `write` makes of each resource, in contiguous shares, in
/// order: one share per core for large outputs, else one.
fn shares(resources: &[Resource], write: impl Fn(&mut String, &Resource) + Sync) -> Vec<String> {
    let workers = if resources.len() < PARALLEL_FROM {
        1
    } else {
        crate::parallel::cores()
    };
    let shares: Vec<&[Resource]> = resources
        .chunks(resources.len().div_ceil(workers).max(1))
        .collect();
    crate::parallel::map(&shares, workers, |share| {
        // Sized for its documents (YAML runs about a third longer than
        // compact JSON): a share is not copied as it grows.
        let json: usize = share.iter().map(|r| r.json().len() + 1).sum();
        let mut out = String::with_capacity(json + json / 2);
        for r in *share {
            write(&mut out, r);
        }
        out
    })
}

/// Renders in `format`.
pub fn render(resources: &[Resource], format: Format) -> String {
    match format {
        Format::Yaml => yaml_stream(resources),
        Format::Json => json_lines(resources),
    }
}

/// Marks a YAML stream rendered against placeholder Terraform outputs so
/// no reader mistakes it for a real one: a header naming the contract and
/// listing every placeholder value, and `# PLACEHOLDER:<output>` after
/// each line showing a placeholder string that does not say so itself.
pub fn mark_placeholders(
    stream: &str,
    env: &str,
    contract: &str,
    values: &[(String, serde_json::Value)],
) -> String {
    use crate::validate::outputs::PLACEHOLDER;
    let mut out = format!(
        "# {PLACEHOLDER} RENDER: not for a cluster. env-{env}.yaml is not on this branch;\n# its Terraform outputs are placeholders from {contract}:\n"
    );
    for (path, value) in values {
        out.push_str(&format!("#   {path} = {value}\n"));
    }
    // Made-up values are marked where they show; `examples` values of the
    // contract are only listed (they may be ordinary words).
    let strings: Vec<(&str, &str)> = values
        .iter()
        .filter_map(|(path, v)| Some((path.as_str(), v.as_str()?)))
        .filter(|(_, v)| !v.contains(PLACEHOLDER) && crate::validate::outputs::is_made_up(v))
        .collect();
    for line in stream.lines() {
        out.push_str(line);
        if !line.contains(PLACEHOLDER) {
            if let Some((path, _)) = strings.iter().find(|(_, v)| contains_token(line, v)) {
                out.push_str(&format!("  # {PLACEHOLDER}:{path}"));
            }
        }
        out.push('\n');
    }
    out
}

/// Whether `text` holds `token` not as part of a longer word or number.
fn contains_token(text: &str, token: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.match_indices(token).any(|(i, _)| {
        !word(text[..i].chars().next_back()) && !word(text[i + token.len()..].chars().next())
    })
}
