//! Load: read the repository's input files into spanned YAML trees.
//!
//! Nothing here interprets the documents; it only guarantees that what the
//! later stages get is a mapping, decoded, within limits, with no duplicate
//! keys, and registered in [`Sources`] for diagnostics.

pub mod git;
pub mod repo;
pub mod yaml;

use crate::diagnostics::{Code, Diagnostic, FileId, Sources, Span};
use repo::{ReadError, RepoFiles};
use yaml::Node;

/// `controlcenter.yaml`
pub const CONTROLCENTER_FILE: &str = "controlcenter.yaml";
/// `tags.yaml`
pub const TAGS_FILE: &str = "tags.yaml";
/// `secrets.yaml`
pub const SECRETS_FILE: &str = "secrets.yaml";
/// The repo's own service schema extension.
pub const SERVICE_SCHEMA_FILE: &str = "schemas/service.schema.json";

/// The Terraform outputs file of an environment.
pub fn env_file_name(env: &str) -> String {
    format!("env-{env}.yaml")
}

/// One parsed input file.
#[derive(Debug, Clone)]
pub struct Input {
    /// Its id in [`Sources`].
    pub file: FileId,
    /// Repo-relative path.
    pub path: String,
    /// The document.
    pub root: Node,
}

/// The repository-wide input files (environment files are loaded per env).
#[derive(Debug)]
pub struct RepoInputs {
    /// `controlcenter.yaml`
    pub controlcenter: Input,
    /// `tags.yaml`, if present.
    pub tags: Option<Input>,
    /// `secrets.yaml`, if present.
    pub secrets: Option<Input>,
    /// The repo's `schemas/service.schema.json`, parsed, if present.
    pub service_schema: Option<serde_json::Value>,
}

/// Reads a file's text, registering it in `sources`. `Ok(None)` if absent.
pub fn read_text(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    path: &str,
) -> Result<Option<(FileId, std::sync::Arc<str>)>, Diagnostic> {
    let bytes = match repo.read(path) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(Diagnostic::error(
                Code::FileUnreadable,
                format!("cannot read {path}: {e}"),
            )
            .help(match e {
                ReadError::TooLarge(_) => "input files are small hand- or CI-written YAML; check that the right file is committed",
                ReadError::OutsideRepo => "inputs must live inside the repository; replace the symlink with the file",
                _ => "check the file's type and permissions",
            }))
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => {
            let text: std::sync::Arc<str> = text.into();
            let id = sources.add(path, text.clone());
            Ok(Some((id, text)))
        }
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            // Show the readable prefix so the position can be rendered.
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let id = sources.add(path, lossy);
            Err(
                Diagnostic::error(Code::FileUnreadable, format!("{path} is not valid UTF-8"))
                    .at(Span::new(id, valid, valid + 1), "invalid byte here")
                    .help("save the file as UTF-8"),
            )
        }
    }
}

/// Whether a file may hold secret values, which must never be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensitivity {
    /// Ordinary input.
    Plain,
    /// secrets.yaml: every encryptedData value.
    SealedSecrets,
    /// env-<env>.yaml: values of outputs marked `sensitive: true`.
    TerraformOutputs,
}

/// Loads and parses a YAML input; the top level must be a mapping. Secret
/// values of sensitive files are masked in `sources` before any diagnostic
/// can show them.
pub fn load_yaml(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    path: &str,
    sensitivity: Sensitivity,
) -> Result<Option<Input>, Vec<Diagnostic>> {
    let Some((file, text)) = read_text(repo, sources, path).map_err(|d| vec![d])? else {
        return Ok(None);
    };
    let root = match yaml::parse(&text, file) {
        Ok(root) => root,
        Err(d) => {
            if sensitivity != Sensitivity::Plain {
                sources.redact(file, &value_parts(&text));
            }
            return Err(d);
        }
    };
    match sensitivity {
        Sensitivity::Plain => {}
        Sensitivity::SealedSecrets => sources.redact(file, &sealed_value_spans(&root)),
        Sensitivity::TerraformOutputs => sources.redact(file, &sensitive_output_spans(&root)),
    }
    if !root.is_map() {
        let what = if matches!(root.value, yaml::Value::Null) {
            "is empty".to_owned()
        } else {
            format!("holds {} at the top level", root.type_name())
        };
        return Err(vec![Diagnostic::error(
            Code::SchemaViolation,
            format!("{path} {what}; expected a mapping"),
        )
        .at(root.span, "expected `key: value` entries")
        .help(format!(
            "see `controlcenter schema export` for the shape of {path}"
        ))]);
    }
    Ok(Some(Input {
        file,
        path: path.to_owned(),
        root,
    }))
}

/// Loads the repository-wide inputs, reporting every problem found.
pub fn load_repo(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
) -> Result<RepoInputs, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let controlcenter = match load_yaml(repo, sources, CONTROLCENTER_FILE, Sensitivity::Plain) {
        Ok(Some(i)) => Some(i),
        Ok(None) => {
            diags.push(
                Diagnostic::error(Code::FileMissing, format!("{CONTROLCENTER_FILE} not found"))
                    .help("run controlcenter at the root of the control-center repository, or pass --repo DIR"),
            );
            None
        }
        Err(d) => {
            diags.extend(d);
            None
        }
    };
    let mut optional = |path: &str, sensitivity| match load_yaml(repo, sources, path, sensitivity) {
        Ok(i) => i,
        Err(d) => {
            diags.extend(d);
            None
        }
    };
    let tags = optional(TAGS_FILE, Sensitivity::Plain);
    let secrets = optional(SECRETS_FILE, Sensitivity::SealedSecrets);
    let service_schema = match read_text(repo, sources, SERVICE_SCHEMA_FILE) {
        Ok(None) => None,
        Ok(Some((file, text))) => match serde_json::from_str(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                let offset = line_col_to_offset(&text, e.line(), e.column());
                diags.push(
                    Diagnostic::error(Code::RepoSchemaInvalid, format!("invalid JSON: {e}"))
                        .at(Span::new(file, offset, offset + 1), "here"),
                );
                None
            }
        },
        Err(d) => {
            diags.push(d);
            None
        }
    };
    match controlcenter {
        Some(controlcenter) if diags.is_empty() => Ok(RepoInputs {
            controlcenter,
            tags,
            secrets,
            service_schema,
        }),
        _ => Err(diags),
    }
}

/// Loads `env-<env>.yaml`; `Ok(None)` when this branch does not carry it.
pub fn load_env_file(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    env: &str,
) -> Result<Option<Input>, Vec<Diagnostic>> {
    load_yaml(
        repo,
        sources,
        &env_file_name(env),
        Sensitivity::TerraformOutputs,
    )
}

/// Spans of every encryptedData value in secrets.yaml.
fn sealed_value_spans(root: &Node) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for env in root.as_map().unwrap_or_default() {
        for secret in env.value.as_map().unwrap_or_default() {
            for value in secret
                .value
                .get("encryptedData")
                .and_then(Node::as_map)
                .unwrap_or_default()
            {
                spans.push((value.value.span.start, value.value.span.end));
            }
        }
    }
    spans
}

/// Spans of the values of outputs marked `sensitive: true`.
fn sensitive_output_spans(root: &Node) -> Vec<(usize, usize)> {
    root.as_map()
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            e.value
                .get("sensitive")
                .is_some_and(|s| s.value == yaml::Value::Bool(true))
        })
        .filter_map(|e| e.value.get("value").map(|v| (v.span.start, v.span.end)))
        .collect()
}

/// For a sensitive file that does not parse: everything after the first
/// `:` or `- ` of every line, since no value can be told apart.
fn value_parts(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let start = body
            .find(':')
            .map(|i| i + 1)
            .or_else(|| body.find("- ").map(|i| i + 2));
        if let Some(start) = start {
            spans.push((offset + start, offset + body.len()));
        }
        offset += line.len();
    }
    spans
}

fn line_col_to_offset(text: &str, line: usize, col: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + col.saturating_sub(1)).min(text.len())
}
