//! JSON Schema validation of the input files, with every violation mapped
//! back to the YAML line and column it comes from.
//!
//! The schemas live in `schemas/` and are compiled into the binary. A repo
//! may add service fields with its own `schemas/service.schema.json`; the
//! service object stays closed, so a typo is still an error.

use std::collections::BTreeSet;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::image::ImageRef;
use crate::load::yaml::{pointer_tokens, Entry, Node};

/// The built-in schema of `controlcenter.yaml`.
pub const CONTROLCENTER_SCHEMA: &str = include_str!("../../schemas/controlcenter.schema.json");
/// The built-in schema of `tags.yaml`.
pub const TAGS_SCHEMA: &str = include_str!("../../schemas/tags.schema.json");
/// The built-in schema of `env-<env>.yaml`.
pub const ENV_SCHEMA: &str = include_str!("../../schemas/env.schema.json");
/// The built-in schema of `secrets.yaml`.
pub const SECRETS_SCHEMA: &str = include_str!("../../schemas/secrets.schema.json");

/// Which input file a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `controlcenter.yaml`
    ControlCenter,
    /// `tags.yaml`
    Tags,
    /// `env-<env>.yaml`
    Env,
    /// `secrets.yaml`
    Secrets,
}

/// Why a repo's schema extension cannot be used.
#[derive(Debug)]
pub struct ExtensionError {
    /// What is wrong.
    pub message: String,
    /// The offending field, when one is.
    pub field: Option<String>,
}

impl From<String> for ExtensionError {
    fn from(message: String) -> Self {
        ExtensionError {
            message,
            field: None,
        }
    }
}

impl From<&str> for ExtensionError {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// Compiled validators for every input file.
pub struct SchemaSet {
    controlcenter: Validator,
    tags: Validator,
    env: Validator,
    secrets: Validator,
    /// Every property name the schemas know, for "did you mean" hints.
    known_fields: BTreeSet<String>,
    /// Service fields added by the repo (they reach templates under `extra`).
    extra_service_fields: BTreeSet<String>,
    /// Service fields whose values are secret (`writeOnly: true`).
    secret_service_fields: BTreeSet<String>,
    /// Whether controlcenter.yaml may be validated a few entries of a
    /// section at a time (see [`sections_split`]).
    split_sections: bool,
    /// Whether tags.yaml may be validated a few services at a time (its
    /// schema judges each service apart from the others).
    split_tags: bool,
}

impl SchemaSet {
    /// The built-in schemas, extended by a repo's service schema if given.
    ///
    /// `extension` is the parsed `schemas/service.schema.json`: its
    /// `properties` are added to the service object. Errors become a
    /// [`Code::RepoSchemaInvalid`] diagnostic.
    pub fn new(extension: Option<&Json>) -> Result<Self, ExtensionError> {
        let mut controlcenter: Json =
            serde_json::from_str(CONTROLCENTER_SCHEMA).map_err(|e| e.to_string())?;
        let mut extra_service_fields = BTreeSet::new();
        let mut secret_service_fields = BTreeSet::new();
        if let Some(ext) = extension {
            let props = ext
                .get("properties")
                .and_then(Json::as_object)
                .ok_or("it must be an object with a `properties` mapping")?;
            // Only `properties` are added: a field matched by another
            // keyword would be an unknown field, its value shown.
            if let Some(key) = [
                "patternProperties",
                "additionalProperties",
                "dependentSchemas",
                "unevaluatedProperties",
            ]
            .into_iter()
            .find(|k| ext.get(*k).is_some())
            {
                return Err(ExtensionError {
                    message: format!(
                        "`{key}` is not supported; declare each field under `properties`"
                    ),
                    field: Some(key.to_owned()),
                });
            }
            let service_props = controlcenter
                .pointer_mut("/$defs/service/properties")
                .and_then(Json::as_object_mut)
                .ok_or("built-in schema has no service properties")?;
            for (name, schema) in props {
                if service_props.contains_key(name) {
                    return Err(ExtensionError {
                        message: format!(
                            "it redefines the built-in service field `{name}`; choose another name"
                        ),
                        field: Some(name.clone()),
                    });
                }
                service_props.insert(name.clone(), schema.clone());
                extra_service_fields.insert(name.clone());
                // `writeOnly` anywhere in a field's schema (a nested
                // property, `items`, `allOf`) makes the whole field secret.
                if declares_write_only(schema) {
                    secret_service_fields.insert(name.clone());
                }
            }
        }
        let mut known_fields = BTreeSet::new();
        collect_property_names(&controlcenter, &mut known_fields);
        let split_sections = sections_split(&controlcenter);
        let tags: Json = serde_json::from_str(TAGS_SCHEMA).map_err(|e| e.to_string())?;
        Ok(SchemaSet {
            split_sections,
            split_tags: per_entry(Some(&tags)),
            controlcenter: compile(&controlcenter)?,
            tags: compile(&tags)?,
            env: compile(&serde_json::from_str(ENV_SCHEMA).map_err(|e| e.to_string())?)?,
            secrets: compile(&serde_json::from_str(SECRETS_SCHEMA).map_err(|e| e.to_string())?)?,
            known_fields,
            extra_service_fields,
            secret_service_fields,
        })
    }

    /// Service fields declared by the repo's own schema.
    pub fn extra_service_fields(&self) -> &BTreeSet<String> {
        &self.extra_service_fields
    }

    /// Whether controlcenter.yaml is validated a few entries at a time
    /// (which lets entries found valid before be left out).
    pub fn validates_in_parts(&self) -> bool {
        self.split_sections
    }

    /// Service fields the repo's schema marks secret (`writeOnly: true`):
    /// their values are masked in every snippet.
    pub fn secret_service_fields(&self) -> &BTreeSet<String> {
        &self.secret_service_fields
    }

    /// Validates a document; every violation becomes a located diagnostic.
    /// Values are never quoted in messages (they may be secrets).
    pub fn check(&self, kind: InputKind, root: &Node) -> Vec<Diagnostic> {
        self.check_knowing(kind, root, None)
    }

    /// [`Self::check`], knowing which entries of one section of
    /// controlcenter.yaml were found valid before (`(section, valid)`,
    /// one flag per entry, in order): those are not validated again. The
    /// document is validated whole, every entry, when the rest is not valid.
    pub fn check_knowing(
        &self,
        kind: InputKind,
        root: &Node,
        known: Option<(&str, &[bool])>,
    ) -> Vec<Diagnostic> {
        let validator = match kind {
            InputKind::ControlCenter => &self.controlcenter,
            InputKind::Tags => &self.tags,
            InputKind::Env => &self.env,
            InputKind::Secrets => &self.secrets,
        };
        let valid_in_parts = match kind {
            InputKind::ControlCenter => {
                self.split_sections && valid_in_parts(validator, root, known)
            }
            InputKind::Tags => {
                self.split_tags
                    && root
                        .as_map()
                        .is_some_and(|entries| entries_valid_in_parts(validator, entries))
            }
            _ => false,
        };
        if valid_in_parts {
            return Vec::new();
        }
        let instance = root.to_json();
        // Valid input, the rule, is told apart fastest.
        if validator.is_valid(&instance) {
            return Vec::new();
        }
        validator
            .iter_errors(&instance)
            .flat_map(|e| self.diagnose(&e, root))
            .collect()
    }

    /// One violation as located diagnostics (values never quoted).
    pub(crate) fn diagnose(
        &self,
        err: &jsonschema::ValidationError<'_>,
        root: &Node,
    ) -> Vec<Diagnostic> {
        let pointer = err.instance_path().as_str();
        let Some(node) = root.pointer(pointer) else {
            return vec![
                Diagnostic::error(Code::SchemaViolation, err.masked().to_string())
                    .at(root.span, "in this file"),
            ];
        };
        let path = dotted(pointer);
        let mut diags = match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
                .iter()
                .map(|field| {
                    let span = node.entry(field).map_or(node.span, |e| e.key_span);
                    let mut d = Diagnostic::error(
                        Code::UnknownField,
                        format!("unknown field `{field}` in `{path}`"),
                    )
                    .at(span, "not a known field here");
                    d = match self.suggest(field) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help(
                            "remove it, or declare it in the repo's schemas/service.schema.json",
                        ),
                    };
                    d
                })
                .collect(),
            ValidationErrorKind::PropertyNames { error } => {
                let key = error.instance().as_str().unwrap_or_default().to_owned();
                let span = node.entry(&key).map_or(node.span, |e| e.key_span);
                vec![Diagnostic::error(
                    Code::SchemaViolation,
                    format!(
                        "invalid key `{key}` in `{path}`: {}",
                        error.masked_with("it")
                    ),
                )
                .at(span, "this key")]
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                vec![Diagnostic::error(
                    Code::SchemaViolation,
                    format!("`{path}` is missing the required field `{name}`"),
                )
                .at(
                    key_or_node_span(root, pointer),
                    format!("add `{name}` here"),
                )]
            }
            ValidationErrorKind::Type { .. } => {
                let mut d = Diagnostic::error(
                    Code::SchemaViolation,
                    err.masked_with(format!("`{path}`")).to_string(),
                )
                .at(node.span, format!("found {}", node.type_name()));
                if let Some(s) = node.as_str() {
                    if s.parse::<f64>().is_ok() {
                        d = d.help("remove the quotes to write a number");
                    }
                } else if node.plain && !node.is_map() {
                    d = d.help("quote the value to write a string");
                }
                vec![d]
            }
            ValidationErrorKind::Pattern { pattern } => {
                let form = pattern_name(pattern);
                vec![
                    Diagnostic::error(Code::SchemaViolation, format!("`{path}` is not {form}"))
                        .at(node.span, "this value")
                        .note(format!("expected pattern: {pattern}")),
                ]
            }
            ValidationErrorKind::Format { format } if format == IMAGE_REFERENCE_FORMAT => {
                let why = node.as_str().map_or_else(
                    || "not a string".to_owned(),
                    |s| ImageRef::parse(s).err().unwrap_or_default(),
                );
                vec![Diagnostic::error(
                    Code::SchemaViolation,
                    format!("`{path}` is not an image reference (registry/repository:tag or registry/repository@sha256:digest)"),
                )
                .at(node.span, "this value")
                .note(why)]
            }
            ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
                vec![Diagnostic::error(
                    Code::SchemaViolation,
                    format!("`{path}` has an invalid value"),
                )
                .at(node.span, format!("found {}", node.type_name()))]
            }
            _ => vec![Diagnostic::error(
                Code::SchemaViolation,
                err.masked_with(format!("`{path}`")).to_string(),
            )
            .at(node.span, "this value")],
        };
        let field = pointer_tokens(pointer).last().unwrap_or_default();
        for d in &mut diags {
            if d.help.is_none() {
                d.help = expectation(&field).map(str::to_owned);
            }
        }
        diags
    }

    fn suggest(&self, field: &str) -> Option<&str> {
        self.known_fields
            .iter()
            .map(|k| (strsim::damerau_levenshtein(field, k), k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < field.len())
            .min()
            .map(|(_, k)| k.as_str())
    }
}

/// Whether a schema says `writeOnly: true` anywhere inside it.
/// Keywords that judge each entry of an object apart from the others: an
/// object they alone constrain is valid exactly when every part of it is.
const PER_ENTRY_KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$comment",
    "title",
    "description",
    "type",
    "properties",
    "additionalProperties",
    "patternProperties",
];

/// Whether the document root and an environment section are constrained
/// entry by entry, so that controlcenter.yaml is valid exactly when every
/// section is, and a section when every part of its entries is.
fn sections_split(schema: &Json) -> bool {
    per_entry(Some(schema)) && per_entry(schema.pointer("/$defs/env_section"))
}

/// Whether a schema constrains an object entry by entry only
/// ([`PER_ENTRY_KEYWORDS`]).
fn per_entry(schema: Option<&Json>) -> bool {
    schema
        .and_then(Json::as_object)
        .is_some_and(|o| o.keys().all(|k| PER_ENTRY_KEYWORDS.contains(&k.as_str())))
}

/// A run of a mapping's entries as an object of its own.
fn object_of<'e>(entries: impl IntoIterator<Item = &'e Entry>) -> Json {
    Json::Object(
        entries
            .into_iter()
            .map(|e| (e.key.clone(), e.value.to_json()))
            .collect(),
    )
}

/// Validates a mapping (tags.yaml) [`ENTRIES_PER_PART`] entries at a time
/// on every core, each run a document of its own.
fn entries_valid_in_parts(validator: &Validator, entries: &[Entry]) -> bool {
    let runs: Vec<&[Entry]> = entries.chunks(ENTRIES_PER_PART).collect();
    crate::parallel::map(&runs, crate::parallel::cores(), |run| {
        validator.is_valid(&object_of(*run))
    })
    .into_iter()
    .all(|v| v)
}

/// Entries of a section validated together.
const ENTRIES_PER_PART: usize = 256;

/// Validates controlcenter.yaml a part at a time on every core: each
/// section's entries in runs, each run a document of its own, so a
/// document of tens of thousands of services is never converted whole.
/// `settings` is validated whole. The entries `known` says were found
/// valid before are left out of their section's runs (each entry is
/// judged apart from the others, so they are valid still).
fn valid_in_parts(validator: &Validator, root: &Node, known: Option<(&str, &[bool])>) -> bool {
    let Some(sections) = root.as_map() else {
        return validator.is_valid(&root.to_json());
    };
    let mut parts: Vec<(&str, Option<Vec<&Entry>>, &Node)> = Vec::new();
    for e in sections {
        let found = known.filter(|(section, _)| *section == e.key).map(|k| k.1);
        match e.value.as_map() {
            Some(entries)
                if e.key != "settings"
                    && (found.is_some_and(|f| f.len() == entries.len())
                        || entries.len() > ENTRIES_PER_PART) =>
            {
                let unknown: Vec<&Entry> = match found.filter(|f| f.len() == entries.len()) {
                    Some(found) => entries
                        .iter()
                        .zip(found)
                        .filter(|(_, valid)| !**valid)
                        .map(|(e, _)| e)
                        .collect(),
                    None => entries.iter().collect(),
                };
                // A section with nothing left to validate is still one.
                if unknown.is_empty() {
                    parts.push((&e.key, Some(Vec::new()), &e.value));
                }
                for run in unknown.chunks(ENTRIES_PER_PART) {
                    parts.push((&e.key, Some(run.to_vec()), &e.value));
                }
            }
            _ => parts.push((&e.key, None, &e.value)),
        }
    }
    let valid = crate::parallel::map(&parts, crate::parallel::cores(), |(key, run, node)| {
        let value = match run {
            Some(run) => object_of(run.iter().copied()),
            None => node.to_json(),
        };
        let part = Json::Object([((*key).to_owned(), value)].into_iter().collect());
        validator.is_valid(&part)
    });
    valid.into_iter().all(|v| v)
}

pub fn declares_write_only(schema: &Json) -> bool {
    match schema {
        Json::Object(map) => {
            map.get("writeOnly") == Some(&Json::Bool(true)) || map.values().any(declares_write_only)
        }
        Json::Array(items) => items.iter().any(declares_write_only),
        _ => false,
    }
}

/// The JSON Schema `format` of image references, checked by [`ImageRef::parse`].
pub const IMAGE_REFERENCE_FORMAT: &str = "image-reference";

/// Compiles a draft 2020-12 schema, formats asserted (with the image
/// reference, ARN and CIDR formats).
pub(crate) fn compile(schema: &Json) -> Result<Validator, String> {
    use super::outputs::{is_arn, is_cidr, ARN_FORMAT, CIDR_FORMAT};
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .with_format(IMAGE_REFERENCE_FORMAT, |s: &str| ImageRef::parse(s).is_ok())
        .with_format(ARN_FORMAT, is_arn)
        .with_format(CIDR_FORMAT, is_cidr)
        .build(schema)
        .map_err(|e| e.to_string())
}

fn collect_property_names(schema: &Json, out: &mut BTreeSet<String>) {
    match schema {
        Json::Object(map) => {
            for (k, v) in map {
                if k == "properties" {
                    if let Some(props) = v.as_object() {
                        out.extend(props.keys().cloned());
                    }
                }
                collect_property_names(v, out);
            }
        }
        Json::Array(items) => items.iter().for_each(|v| collect_property_names(v, out)),
        _ => {}
    }
}

/// A readable name for the patterns the built-in schemas use.
fn pattern_name(pattern: &str) -> &'static str {
    if pattern.starts_with("^arn:") {
        "an IAM role ARN"
    } else if pattern == "^/" {
        "a path starting with `/`"
    } else if pattern.starts_with("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$") {
        "a lowercase DNS label"
    } else if pattern.starts_with("^[A-Za-z_][A-Za-z0-9_]*$") {
        "an environment variable name (letters, digits and `_`)"
    } else {
        "in the expected form"
    }
}

/// What a well-known field expects, as a hint.
fn expectation(field: &str) -> Option<&'static str> {
    Some(match field {
        "memory_min" | "memory_max" => "write a memory quantity such as `512Mi` or `2Gi`",
        "cpu_min" | "cpu_max" => "write a CPU quantity such as `250m` or `1`",
        "port" => "write a port number from 1 to 65535",
        "replicas" | "min_replicas" | "max_replicas" => "write a whole number, such as `2`",
        "cpu_utilization" => "write a percentage from 1 to 100",
        "git_rev" => "write the revision as a string: a tag, branch or commit",
        "enabled" | "revision_annotation" => "write `true` or `false`",
        "irsa_role_arn" => "write an IAM role ARN: arn:aws:iam::<account-id>:role/<name>",
        "host" => "write a DNS host name such as `app.example.com`",
        "namespace" => "write a lowercase DNS label such as `payments`",
        "path" => "write a path starting with `/`",
        _ => return None,
    })
}

/// `/dev/service_rpps/replicas` as `dev.service_rpps.replicas`.
pub fn dotted(pointer: &str) -> String {
    let tokens: Vec<String> = pointer_tokens(pointer).collect();
    if tokens.is_empty() {
        "(top level)".to_owned()
    } else {
        tokens.join(".")
    }
}

/// The key span of the entry at `pointer` (falls back to the node).
fn key_or_node_span(root: &Node, pointer: &str) -> Span {
    let tokens: Vec<String> = pointer_tokens(pointer).collect();
    if let Some((last, parent)) = tokens.split_last() {
        let parent_ptr: String = parent.iter().map(|t| format!("/{}", escape(t))).collect();
        if let Some(entry) = root.pointer(&parent_ptr).and_then(|p| p.entry(last)) {
            return entry.key_span;
        }
    }
    root.pointer(pointer).map_or(root.span, |n| n.span)
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Sources;
    use crate::load::yaml;

    fn check(kind: InputKind, text: &str) -> Vec<Diagnostic> {
        let mut sources = Sources::default();
        let f = sources.add("x.yaml", text);
        let root = yaml::parse(text, f).unwrap();
        SchemaSet::new(None).unwrap().check(kind, &root)
    }

    #[test]
    fn typo_in_a_service_field_is_an_unknown_field_with_a_suggestion() {
        let text = "dev:\n  svc:\n    git_rev: v1\n    replica: 2\n";
        let d = check(InputKind::ControlCenter, text);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].code, Code::UnknownField);
        let span = d[0].primary.as_ref().unwrap().span;
        assert_eq!(&text[span.start..span.end], "replica");
        assert_eq!(d[0].help.as_deref(), Some("did you mean `replicas`?"));
    }

    #[test]
    fn wrong_type_points_at_the_value_and_never_quotes_it() {
        let text = "dev:\n  svc:\n    git_rev: v1\n    replicas: \"two\"\n";
        let d = check(InputKind::ControlCenter, text);
        assert_eq!(d.len(), 1, "{d:?}");
        let span = d[0].primary.as_ref().unwrap().span;
        assert_eq!(&text[span.start..span.end], "\"two\"");
        assert!(
            d[0].message.contains("dev.svc.replicas"),
            "{}",
            d[0].message
        );
        assert!(!d[0].message.contains("two"), "{}", d[0].message);
    }

    #[test]
    fn every_violation_is_reported() {
        let text =
            "dev:\n  a:\n    replica: 1\n  b:\n    port: x\nprod:\n  c:\n    memory_max: lots\n";
        assert_eq!(check(InputKind::ControlCenter, text).len(), 3);
    }

    #[test]
    fn scalars_and_lists_are_parameters() {
        let text = "dev:\n  elk_endpoint: https://x\n  nat: [a, b]\n  svc:\n    git_rev: v1\n";
        assert!(check(InputKind::ControlCenter, text).is_empty());
    }

    #[test]
    fn tags_must_be_image_references() {
        let d = check(
            InputKind::Tags,
            "svc:\n  v1: \"not an image\"\n  v2: reg.io/a/b:1\n",
        );
        assert_eq!(d.len(), 1, "{d:?}");
    }

    #[test]
    fn repo_extension_adds_service_fields_but_not_redefinitions() {
        let ext = serde_json::json!({"properties": {"team": {"type": "string"}}});
        let set = SchemaSet::new(Some(&ext)).unwrap();
        let mut sources = Sources::default();
        let text = "dev:\n  svc:\n    git_rev: v1\n    team: payments\n";
        let f = sources.add("x.yaml", text);
        assert!(set
            .check(InputKind::ControlCenter, &yaml::parse(text, f).unwrap())
            .is_empty());
        let clash = serde_json::json!({"properties": {"replicas": {"type": "string"}}});
        assert!(SchemaSet::new(Some(&clash)).is_err());
    }

    #[test]
    fn controlcenter_yaml_is_judged_entry_by_entry() {
        // Validating in parts is exact only while the root and a section
        // constrain each entry apart from the others.
        let set = SchemaSet::new(None).unwrap();
        assert!(set.split_sections);
        let extension = serde_json::json!({"properties": {"team": {"type": "string"}}});
        assert!(SchemaSet::new(Some(&extension)).unwrap().split_sections);
        let mut schema: Json = serde_json::from_str(CONTROLCENTER_SCHEMA).unwrap();
        schema["$defs"]["env_section"]["required"] = serde_json::json!(["namespace"]);
        assert!(!sections_split(&schema));
    }

    #[test]
    fn a_document_in_parts_is_valid_exactly_when_whole() {
        let services = |n: usize, bad: Option<usize>| {
            (0..n)
                .map(|i| {
                    let replicas = if Some(i) == bad { "many" } else { "2" };
                    format!("  svc_{i}:\n    git_rev: v1\n    replicas: {replicas}\n")
                })
                .collect::<String>()
        };
        let set = SchemaSet::new(None).unwrap();
        let docs = [
            format!("settings:\n  part_of: x\ndev:\n{}", services(600, None)),
            format!("dev:\n{}", services(600, Some(0))),
            format!("dev:\n{}", services(600, Some(300))),
            format!("dev:\n{}", services(600, Some(599))),
            format!("dev:\n  namespace: Not_A_Label\n{}", services(600, None)),
            format!("settings:\n  nope: 1\ndev:\n{}", services(600, None)),
            format!("dev: 3\nprod:\n{}", services(300, None)),
        ];
        parts_agree_with_whole(
            &set,
            InputKind::ControlCenter,
            &set.controlcenter,
            &docs,
            |root| valid_in_parts(&set.controlcenter, root, None),
        );
    }

    /// Each document is valid in parts exactly when whole, `check` agrees,
    /// and only the first is valid.
    fn parts_agree_with_whole(
        set: &SchemaSet,
        kind: InputKind,
        validator: &Validator,
        docs: &[String],
        in_parts: impl Fn(&Node) -> bool,
    ) {
        for (i, text) in docs.iter().enumerate() {
            let mut sources = Sources::default();
            let root = yaml::parse(text, sources.add("x.yaml", text.as_str())).unwrap();
            let whole = validator.is_valid(&root.to_json());
            assert_eq!(in_parts(&root), whole, "document {i}");
            assert_eq!(set.check(kind, &root).is_empty(), whole, "document {i}");
            assert_eq!(whole, i == 0, "document {i}");
        }
    }

    #[test]
    fn tags_in_parts_are_valid_exactly_when_whole() {
        let set = SchemaSet::new(None).unwrap();
        assert!(set.split_tags);
        let tags = |n: usize, bad: Option<usize>| {
            (0..n)
                .map(|i| {
                    let image = if Some(i) == bad {
                        "[not an image]"
                    } else {
                        "registry.example.com/app:1.0"
                    };
                    format!("svc_{i}:\n  v1: \"{image}\"\n")
                })
                .collect::<String>()
        };
        let docs = [
            tags(600, None),
            tags(600, Some(0)),
            tags(600, Some(300)),
            tags(600, Some(599)),
            format!("{}svc_x: [1]\n", tags(600, None)),
        ];
        parts_agree_with_whole(&set, InputKind::Tags, &set.tags, &docs, |root| {
            root.as_map()
                .is_some_and(|entries| entries_valid_in_parts(&set.tags, entries))
        });
    }
}
