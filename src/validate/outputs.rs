//! The Terraform-outputs contract: what every environment's env-<env>.yaml
//! provides, so an environment whose env file lives on another branch can
//! still be checked here.
//!
//! The contract is `schemas/terraform-outputs.schema.json`, a JSON Schema
//! of the env file's outputs (unwrapped from `terraform output -json`):
//! names, types, formats and `examples`. Without it, the contract is
//! derived from the env files this branch carries: their output names and
//! types, never their values. From the contract come typed placeholders
//! (an ARN-shaped string for an ARN, an IP for an IP, the first `examples`
//! value when there is one); against it a present env file is checked.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::{json, Map, Value as Json};

use super::schema::{self, SchemaSet};
use crate::diagnostics::{Code, Diagnostic, Sources, Span};
use crate::load::yaml::{self, Entry, Node, Value};
use crate::load::{self, Input};
use crate::repo::layout::{env_file_name, OUTPUTS_CONTRACT_FILE};
use crate::repo::RepoFiles;

/// The marker of placeholder strings (`PLACEHOLDER:db_endpoint`).
pub const PLACEHOLDER: &str = "PLACEHOLDER";

/// JSON Schema `format` of an AWS ARN (`arn:partition:service:…`).
pub const ARN_FORMAT: &str = "arn";
/// JSON Schema `format` of an IPv4 CIDR block (`10.0.0.0/16`).
pub const CIDR_FORMAT: &str = "cidr";

/// Most nesting a placeholder is built to (a `$ref` cycle ends here).
const MAX_DEPTH: usize = 32;

/// Where a contract comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContractSource {
    /// `schemas/terraform-outputs.schema.json`.
    File,
    /// The outputs of these env files (no contract file).
    Derived(Vec<String>),
}

/// The Terraform outputs each environment provides.
pub struct Contract {
    /// Where it comes from.
    pub source: ContractSource,
    /// The schema of the (unwrapped) env file.
    schema: Json,
    /// Where each output is declared.
    spans: BTreeMap<String, Span>,
    /// Where the contract is, for messages.
    span: Span,
    /// Compiled, for a contract file.
    validator: Option<Validator>,
}

/// An environment's Terraform outputs made up from the contract.
pub struct Placeholders {
    /// An env file of the placeholder values (raw `terraform output` shape;
    /// spans point at each output's declaration).
    pub input: Input,
    /// Each placeholder value by output path (`nat_ips[0]`), sensitive
    /// outputs left out, for marking a render.
    pub values: Vec<(String, Json)>,
}

impl Contract {
    /// What the contract is, for messages: its file, or the env files it
    /// was derived from.
    pub fn describe(&self) -> String {
        match &self.source {
            ContractSource::File => OUTPUTS_CONTRACT_FILE.to_owned(),
            ContractSource::Derived(files) => format!("the outputs of {}", files.join(", ")),
        }
    }

    /// The contract as a JSON Schema document.
    pub fn schema(&self) -> &Json {
        &self.schema
    }

    /// Whether the contract is the repository's file (not derived).
    pub fn is_file(&self) -> bool {
        self.source == ContractSource::File
    }

    /// Where the contract is written (the file's start, or the first env
    /// file it was derived from).
    pub fn span(&self) -> Span {
        self.span
    }

    /// Where an output is declared, if it is.
    pub fn declaration(&self, output: &str) -> Option<Span> {
        self.spans.get(output).copied()
    }

    /// The outputs of `env_file` that the contract declares secret
    /// (`writeOnly` anywhere in their schema) but that the file does not
    /// mark `sensitive`: their values would otherwise reach the templates,
    /// messages and the cache as plain ones. Only a contract file
    /// declares: a derived contract only describes what the env files
    /// mark (for placeholders), and each file marks its own outputs, so a
    /// render and `validate` judge a file alike.
    pub fn unmarked_secrets<'f>(&self, env_file: &'f Input) -> Vec<&'f Entry> {
        if !self.is_file() {
            return Vec::new();
        }
        let Some(declared) = self.schema.get("properties").and_then(Json::as_object) else {
            return Vec::new();
        };
        env_file
            .root
            .as_map()
            .unwrap_or_default()
            .iter()
            .filter(|e| {
                declared
                    .get(&e.key)
                    .is_some_and(schema::declares_write_only)
            })
            .filter(|e| !load::is_sensitive_output(&e.value))
            .collect()
    }

    /// `CC0311` for an output the contract declares secret and the env
    /// file holds as a plain value (its value already masked).
    pub fn unmarked_secret(&self, env_file: &Input, output: &Entry) -> Diagnostic {
        let mut d = Diagnostic::error(
            Code::OutputContract,
            format!(
                "{}: Terraform output `{}` is secret (`writeOnly` in {OUTPUTS_CONTRACT_FILE}) but not marked sensitive",
                env_file.path, output.key
            ),
        )
        .at(output.key_span, "a plain value here");
        if let Some(span) = self.declaration(&output.key) {
            d = d.related(span, "declared secret here");
        }
        d.help(
            "mark the output `sensitive = true` in the Terraform stack (`terraform output -json` then writes `{\"value\": …, \"sensitive\": true}`), or drop `writeOnly` from its declaration if it is not a secret",
        )
    }

    /// Checks a present env file against a contract file: a declared
    /// required output missing, a wrong type or format, each at the env
    /// file's line. A derived contract checks nothing (it is what the
    /// files say).
    pub fn check(&self, schemas: &SchemaSet, env_file: &Input) -> Vec<Diagnostic> {
        let Some(validator) = &self.validator else {
            return Vec::new();
        };
        let outputs = unwrapped(&env_file.root);
        let instance = outputs.to_json();
        let mut diags = Vec::new();
        for err in validator.iter_errors(&instance) {
            if let (ValidationErrorKind::Required { property }, "") =
                (err.kind(), err.instance_path().as_str())
            {
                let name = property.as_str().unwrap_or_default();
                let mut d = Diagnostic::error(
                    Code::OutputContract,
                    format!(
                        "{} has no Terraform output `{name}`, which {OUTPUTS_CONTRACT_FILE} requires",
                        env_file.path
                    ),
                )
                .at(
                    Span::new(env_file.file, env_file.root.span.start, env_file.root.span.start),
                    "the outputs of this file",
                );
                if let Some(span) = self.declaration(name) {
                    d = d.related(span, "declared here");
                }
                diags.push(d.help(format!(
                    "add `{name}` to the Terraform stack's outputs, or drop it from `required` in {OUTPUTS_CONTRACT_FILE} if no environment needs it"
                )));
                continue;
            }
            for mut d in schemas.diagnose(&err, &outputs) {
                d.code = match d.code {
                    Code::SchemaViolation => Code::OutputContract,
                    other => other,
                };
                d.message = format!("{}: {}", env_file.path, d.message);
                if d.code == Code::UnknownField {
                    d.help = Some(format!(
                        "declare the output in {OUTPUTS_CONTRACT_FILE}, or remove it"
                    ));
                }
                let output = schema::dotted(err.instance_path().as_str());
                let name = output.split('.').next().unwrap_or_default();
                if let Some(span) = self.declaration(name) {
                    d = d.related(span, format!("`{name}` is declared here"));
                }
                diags.push(d);
            }
        }
        diags
    }

    /// Typed placeholders for every declared output, as an env file.
    pub fn placeholders(&self, sources: &mut Sources, env: &str) -> Placeholders {
        let mut values = Vec::new();
        let mut entries = Vec::new();
        let mut counter = 0;
        let props = self.schema.get("properties").and_then(Json::as_object);
        for (name, schema) in props.into_iter().flatten() {
            let span = self.declaration(name).unwrap_or(self.span);
            let value = placeholder(schema, &self.schema, name, &mut counter, 0);
            let sensitive = schema::declares_write_only(schema);
            if !sensitive {
                list_values(name, &value, &mut values);
            }
            let output = json!({"value": value, "sensitive": sensitive});
            entries.push(Entry {
                key: name.clone(),
                key_span: span,
                value: node_of(&output, span),
            });
        }
        // Registered under its own name: snippets of problems in it show
        // the contract, which is where the values come from.
        let path = format!("{} (placeholders)", env_file_name(env));
        let file = sources.add(path.clone(), "");
        Placeholders {
            input: Input {
                file,
                path,
                root: Node {
                    value: Value::Map(entries),
                    span: self.span,
                    plain: false,
                },
                copies: Default::default(),
            },
            values,
        }
    }
}

/// The repository's contract: its contract file, else one derived from
/// the env files of `envs` present on this branch; `None` when neither
/// exists.
pub fn load(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    envs: &[String],
) -> Result<Option<Contract>, Vec<Diagnostic>> {
    if let Some(contract) = load_file(repo, sources)? {
        return Ok(Some(contract));
    }
    let mut files = Vec::new();
    let mut props = Map::new();
    let mut spans = BTreeMap::new();
    let mut first = None;
    for env in envs {
        // A file that does not load is reported when its env is rendered.
        let Ok(Some(input)) = load::load_env_file(repo, sources, env) else {
            continue;
        };
        first.get_or_insert(input.root.span);
        files.push(input.path.clone());
        for e in input.root.as_map().unwrap_or_default() {
            if props.contains_key(&e.key) {
                continue;
            }
            spans.insert(e.key.clone(), e.key_span);
            props.insert(e.key.clone(), derived_output(&e.value));
        }
    }
    let Some(span) = first else {
        return Ok(None);
    };
    Ok(Some(Contract {
        source: ContractSource::Derived(files),
        schema: json!({"type": "object", "properties": props}),
        spans,
        span,
        validator: None,
    }))
}

/// The contract file, parsed (with its lines) and compiled.
fn load_file(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
) -> Result<Option<Contract>, Vec<Diagnostic>> {
    let (file, text) = match load::read_text(repo, sources, OUTPUTS_CONTRACT_FILE) {
        Ok(Some(read)) => read,
        Ok(None) => return Ok(None),
        Err(d) => return Err(vec![d]),
    };
    let start = Span::new(file, 0, 0);
    let invalid = |message: String, span: Span| {
        vec![Diagnostic::error(
            Code::RepoSchemaInvalid,
            format!("{OUTPUTS_CONTRACT_FILE} is not a usable contract: {message}"),
        )
        .at(span, "here")
        .help("it must be a JSON Schema object whose `properties` declare each Terraform output (type, format, `examples`)")]
    };
    // JSON is YAML: parsed as YAML, every declaration keeps its line.
    let root = yaml::parse(&text, file).map_err(|d| {
        d.into_iter()
            .map(|d| d.note(format!("{OUTPUTS_CONTRACT_FILE} must be JSON")))
            .collect::<Vec<_>>()
    })?;
    let Some(props) = root.get("properties").filter(|p| p.is_map()) else {
        return Err(invalid("it has no `properties` mapping".into(), start));
    };
    let spans = props
        .as_map()
        .unwrap_or_default()
        .iter()
        .map(|e| (e.key.clone(), e.key_span))
        .collect();
    let schema = root.to_json();
    let validator = schema::compile(&schema).map_err(|why| invalid(why, start))?;
    Ok(Some(Contract {
        source: ContractSource::File,
        schema,
        spans,
        span: start,
        validator: Some(validator),
    }))
}

/// The env file with each raw `terraform output -json` entry replaced by
/// its `value` (spans kept): what the contract describes.
pub fn unwrapped(root: &Node) -> Node {
    let entries = root
        .as_map()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let value = load::output_value(&e.value).clone();
            Entry {
                key: e.key.clone(),
                key_span: e.key_span,
                value,
            }
        })
        .collect();
    Node {
        value: Value::Map(entries),
        span: root.span,
        plain: false,
    }
}

/// The schema of one output as an env file has it: its type (and the
/// format its strings look like), never its value. A sensitive output is
/// declared `writeOnly`, its value not even looked at.
fn derived_output(node: &Node) -> Json {
    if load::is_sensitive_output(node) {
        let ty = match node.get("type").and_then(Node::as_str) {
            Some("number") => "number",
            Some("bool") => "boolean",
            _ => "string",
        };
        return json!({"type": ty, "writeOnly": true});
    }
    schema_of(load::output_value(node), 0)
}

/// A schema that `node`'s shape matches.
fn schema_of(node: &Node, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return json!({});
    }
    match &node.value {
        Value::Null => json!({}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(n) if n.is_f64() => json!({"type": "number"}),
        Value::Number(_) => json!({"type": "integer"}),
        Value::String(s) => match string_format(s) {
            Some(f) => json!({"type": "string", "format": f}),
            None => json!({"type": "string"}),
        },
        Value::Seq(items) => match items.first() {
            Some(first) => json!({"type": "array", "items": schema_of(first, depth + 1)}),
            None => json!({"type": "array"}),
        },
        Value::Map(entries) => {
            let props: Map<String, Json> = entries
                .iter()
                .map(|e| (e.key.clone(), schema_of(&e.value, depth + 1)))
                .collect();
            json!({"type": "object", "properties": props})
        }
    }
}

/// The format a string value has, when it has a recognisable one.
fn string_format(s: &str) -> Option<&'static str> {
    if s.starts_with("arn:") {
        Some(ARN_FORMAT)
    } else if s.parse::<Ipv4Addr>().is_ok() {
        Some("ipv4")
    } else if s.parse::<Ipv6Addr>().is_ok() {
        Some("ipv6")
    } else if is_cidr(s) {
        Some(CIDR_FORMAT)
    } else if s.starts_with("https://") || s.starts_with("http://") {
        Some("uri")
    } else if s.contains('.')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        Some("hostname")
    } else {
        None
    }
}

/// `a.b.c.d/n`, n at most 32.
pub fn is_cidr(s: &str) -> bool {
    s.split_once('/').is_some_and(|(ip, bits)| {
        ip.parse::<Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
    })
}

/// `arn:partition:service:region:account:resource`.
pub fn is_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6 && parts[0] == "arn" && !parts[1].is_empty() && !parts[2].is_empty()
}

/// A value `schema` accepts, typed and, where the type allows, marked
/// `PLACEHOLDER`: the first `examples` (or `const`, `enum`, `default`)
/// value when there is one, else one built from `type` and `format`.
fn placeholder(schema: &Json, root: &Json, path: &str, counter: &mut u32, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return Json::Null;
    }
    let Some(s) = schema.as_object() else {
        return json!(format!("{PLACEHOLDER}:{path}"));
    };
    if let Some(target) = s
        .get("$ref")
        .and_then(Json::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| root.pointer(p))
    {
        return placeholder(target, root, path, counter, depth + 1);
    }
    if let Some(v) = s
        .get("examples")
        .and_then(|e| e.as_array()?.first())
        .or_else(|| s.get("const"))
        .or_else(|| s.get("enum").and_then(|e| e.as_array()?.first()))
        .or_else(|| s.get("default"))
    {
        return v.clone();
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(first) = s.get(key).and_then(|a| a.as_array()?.first()) {
            return placeholder(first, root, path, counter, depth + 1);
        }
    }
    let ty = match s.get("type") {
        Some(Json::String(t)) => t.as_str(),
        Some(Json::Array(types)) => types
            .iter()
            .filter_map(Json::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if s.contains_key("properties") => "object",
        _ if s.contains_key("items") => "array",
        _ => "string",
    };
    *counter += 1;
    let n = *counter;
    match ty {
        "boolean" => json!(false),
        "null" => Json::Null,
        "integer" | "number" => {
            let min = s.get("minimum").and_then(Json::as_i64);
            let max = s.get("maximum").and_then(Json::as_i64);
            json!(match (min, max) {
                (Some(min), _) => min,
                (None, Some(max)) => max.min(1),
                (None, None) => 1,
            })
        }
        "array" => {
            let items = s.get("items").unwrap_or(&Json::Null);
            let count = s
                .get("minItems")
                .and_then(Json::as_u64)
                .unwrap_or(1)
                .clamp(1, 8);
            Json::Array(
                (0..count)
                    .map(|i| placeholder(items, root, &format!("{path}[{i}]"), counter, depth + 1))
                    .collect(),
            )
        }
        "object" => Json::Object(
            s.get("properties")
                .and_then(Json::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let value = placeholder(v, root, &format!("{path}.{k}"), counter, depth + 1);
                    (k.clone(), value)
                })
                .collect(),
        ),
        _ => json!(typed_string(s, path, n)),
    }
}

/// A string of the schema's format, carrying the output's name where the
/// format leaves room for it.
fn typed_string(s: &Map<String, Json>, path: &str, n: u32) -> String {
    let dns = crate::names::dns_label(&path.replace(['.', '[', ']'], "-"))
        .unwrap_or_else(|| "output".to_owned());
    let arn_pattern = s
        .get("pattern")
        .and_then(Json::as_str)
        .is_some_and(|p| p.starts_with("^arn:"));
    let host = (n - 1) % 254 + 1;
    match s.get("format").and_then(Json::as_str) {
        Some(ARN_FORMAT) => format!("arn:aws:iam::000000000000:role/{PLACEHOLDER}-{dns}"),
        _ if arn_pattern => format!("arn:aws:iam::000000000000:role/{PLACEHOLDER}-{dns}"),
        // Documentation ranges (RFC 5737, RFC 3849): never a real address.
        Some("ipv4") => format!("192.0.2.{host}"),
        Some("ipv6") => format!("2001:db8::{host:x}"),
        Some(CIDR_FORMAT) => format!("198.51.100.{}/32", host),
        Some("hostname" | "idn-hostname") => format!("{dns}.placeholder.invalid"),
        Some("uri" | "iri" | "uri-reference") => format!("https://{dns}.placeholder.invalid/"),
        Some("email" | "idn-email") => format!("{dns}@placeholder.invalid"),
        Some("uuid") => format!("00000000-0000-4000-8000-{n:012}"),
        Some("date-time") => "1970-01-01T00:00:00Z".to_owned(),
        Some("date") => "1970-01-01".to_owned(),
        _ => format!("{PLACEHOLDER}:{path}"),
    }
}

/// Whether a string is one [`typed_string`] makes up (not an `examples`
/// value): it says `placeholder`, or is a documentation address.
pub fn is_made_up(s: &str) -> bool {
    s.to_ascii_lowercase().contains("placeholder")
        || ["192.0.2.", "198.51.100.", "2001:db8:"]
            .iter()
            .any(|p| s.starts_with(p))
}

/// Every leaf of a placeholder value, by path.
fn list_values(path: &str, value: &Json, out: &mut Vec<(String, Json)>) {
    match value {
        Json::Object(m) => m
            .iter()
            .for_each(|(k, v)| list_values(&format!("{path}.{k}"), v, out)),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| list_values(&format!("{path}[{i}]"), v, out)),
        _ => out.push((path.to_owned(), value.clone())),
    }
}

/// A YAML node of a JSON value, every part located at `span`.
fn node_of(value: &Json, span: Span) -> Node {
    let value = match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.clone()),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Seq(items.iter().map(|v| node_of(v, span)).collect()),
        Json::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| Entry {
                    key: k.clone(),
                    key_span: span,
                    value: node_of(v, span),
                })
                .collect(),
        ),
    };
    Node {
        value,
        span,
        plain: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(text: &str) -> (Contract, Sources) {
        let mut sources = Sources::default();
        let file = sources.add(OUTPUTS_CONTRACT_FILE, text);
        let root = yaml::parse(text, file).unwrap();
        let schema = root.to_json();
        let spans = root
            .get("properties")
            .and_then(Node::as_map)
            .unwrap_or_default()
            .iter()
            .map(|e| (e.key.clone(), e.key_span))
            .collect();
        let c = Contract {
            source: ContractSource::File,
            validator: Some(schema::compile(&schema).unwrap()),
            schema,
            spans,
            span: Span::new(file, 0, 0),
        };
        (c, sources)
    }

    #[test]
    fn placeholders_are_typed_and_marked() {
        let (c, mut sources) = contract(
            r#"{"type": "object", "properties": {
                "db_endpoint": {"type": "string", "format": "hostname"},
                "role": {"type": "string", "format": "arn"},
                "nat_ips": {"type": "array", "items": {"type": "string", "format": "ipv4"}, "minItems": 2},
                "region": {"type": "string", "examples": ["eu-west-1"]},
                "name": {"type": "string"},
                "port": {"type": "integer", "minimum": 1024},
                "password": {"type": "string", "writeOnly": true}
            }}"#,
        );
        let p = c.placeholders(&mut sources, "prod");
        let values: BTreeMap<String, Json> = p.values.into_iter().collect();
        assert_eq!(values["db_endpoint"], "db-endpoint.placeholder.invalid");
        assert!(is_arn(values["role"].as_str().unwrap()));
        assert_eq!(values["nat_ips[0]"], "192.0.2.4");
        assert_eq!(values["nat_ips[1]"], "192.0.2.5");
        assert_eq!(values["region"], "eu-west-1");
        assert_eq!(values["name"], "PLACEHOLDER:name");
        assert_eq!(values["port"], 1024);
        assert!(!values.contains_key("password"));
        // The env file made of them is sensitive where the contract says.
        let out = crate::resolve::terraform_outputs(&p.input.root);
        assert_eq!(out.sensitive, ["password"]);
        assert_eq!(out.values["port"], 1024);
    }

    #[test]
    fn a_derived_contract_keeps_types_not_values() {
        let mut sources = Sources::default();
        let text = "ip: 10.1.2.3\narn: arn:aws:iam::1:role/x\nsecret:\n  value: hunter2\n  sensitive: true\nlist: [a.example.com]\n";
        let f = sources.add("env-dev.yaml", text);
        let root = yaml::parse(text, f).unwrap();
        let schemas: Vec<Json> = root
            .as_map()
            .unwrap()
            .iter()
            .map(|e| derived_output(&e.value))
            .collect();
        let all = serde_json::to_string(&schemas).unwrap();
        assert!(
            !all.contains("hunter2") && !all.contains("10.1.2.3"),
            "{all}"
        );
        assert_eq!(schemas[0]["format"], "ipv4");
        assert_eq!(schemas[1]["format"], ARN_FORMAT);
        assert_eq!(schemas[2]["writeOnly"], true);
        assert_eq!(schemas[3]["items"]["format"], "hostname");
    }

    #[test]
    fn cidr_and_arn_shapes() {
        assert!(is_cidr("10.0.0.0/16") && !is_cidr("10.0.0.0/33") && !is_cidr("x/1"));
        assert!(is_arn("arn:aws:iam::123:role/a") && !is_arn("arn:aws"));
    }
}
