//! Emit: the sorted resources as a YAML stream, as JSON lines (what the
//! Argo CD plugin prints), or as one file per resource in a directory that
//! is replaced atomically.

pub mod atomic;
pub mod hydrate;
pub mod out_dir;

use crate::process::Resource;

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
    // serde_json::Value maps are BTreeMaps: keys come out sorted.
    match serde_saphyr::to_string(&r.value) {
        Ok(s) => s,
        // Serializing a JSON value cannot fail in practice; fall back to
        // JSON, which is valid YAML, rather than lose the resource.
        Err(_) => serde_json::to_string_pretty(&r.value).unwrap_or_default() + "\n",
    }
}

/// A YAML stream of all resources.
pub fn yaml_stream(resources: &[Resource]) -> String {
    let mut out = String::new();
    for r in resources {
        out.push_str("---\n");
        out.push_str(&yaml_document(r));
    }
    out
}

/// One compact JSON object per line.
pub fn json_lines(resources: &[Resource]) -> String {
    let mut out = String::new();
    for r in resources {
        out.push_str(&serde_json::to_string(&r.value).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Renders in `format`.
pub fn render(resources: &[Resource], format: Format) -> String {
    match format {
        Format::Yaml => yaml_stream(resources),
        Format::Json => json_lines(resources),
    }
}
