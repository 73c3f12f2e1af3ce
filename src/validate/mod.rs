//! Validate: every input file against its JSON Schema, before anything is
//! resolved. The repository-wide files once per run; an environment's
//! env-<env>.yaml when that environment is rendered. (Rules over the
//! rendered manifests live in `rules/`.)

pub mod outputs;
pub mod schema;
pub mod vendor;
pub mod verdicts;

use crate::diagnostics::{Code, Diagnostic, Outcome, Sources, Span};
use crate::load::{self, Input, RepoInputs};
use crate::names;
use crate::repo::layout::{env_file_name, SERVICE_SCHEMA_FILE};
use crate::repo::RepoFiles;
use schema::{InputKind, SchemaSet};

/// Checks controlcenter.yaml, tags.yaml and secrets.yaml against their
/// schemas (with the repository's extension), and environment names. The
/// values of fields the schema marks secret are registered as secrets
/// first, so no snippet shows them. All problems are reported at once.
/// `known`: which entries of one section were found valid before
/// ([`schema::SchemaSet::check_knowing`]).
pub fn repo(
    inputs: &RepoInputs,
    sources: &mut Sources,
    known: Option<(&str, &[bool])>,
) -> Outcome<SchemaSet> {
    let schemas = SchemaSet::new(inputs.service_schema.as_ref())
        .map_err(|why| vec![extension_invalid(why, sources)])?;
    let mut diags = mask_secret_fields(inputs, &schemas, sources);
    diags.extend(schemas.check_knowing(
        InputKind::ControlCenter,
        &inputs.controlcenter.root,
        known,
    ));
    diags.extend(env_names(inputs));
    if let Some(tags) = &inputs.tags {
        diags.extend(schemas.check(InputKind::Tags, &tags.root));
    }
    if let Some(secrets) = &inputs.secrets {
        diags.extend(schemas.check(InputKind::Secrets, &secrets.root));
    }
    if diags.iter().any(Diagnostic::is_error) {
        Err(diags)
    } else {
        Ok(schemas)
    }
}

/// Loads env-<env>.yaml and checks it against its schema and the
/// repository's Terraform-outputs contract; `Ok(None)` when this branch
/// does not carry it (environment branches carry only their own).
pub fn env_file(
    repo: &dyn RepoFiles,
    schemas: &SchemaSet,
    contract: Option<&outputs::Contract>,
    sources: &mut Sources,
    env: &str,
) -> Outcome<Option<Input>> {
    let Some(file) = load::load_env_file(repo, sources, env)? else {
        return Ok(None);
    };
    // An output the contract declares secret is masked before anything
    // can show it, whether or not the file marks it sensitive; unmarked,
    // it is refused.
    let unmarked = contract
        .map(|c| c.unmarked_secrets(&file))
        .unwrap_or_default();
    let spans: Vec<(usize, usize)> = unmarked
        .iter()
        .map(|e| (e.value.span.start, e.value.span.end))
        .collect();
    sources.redact(file.file, &spans);
    for output in &unmarked {
        sources
            .secrets_mut()
            .add_json(&load::output_value(&output.value).to_json());
    }
    let unmarked: Vec<Diagnostic> = contract
        .map(|c| {
            unmarked
                .iter()
                .map(|e| c.unmarked_secret(&file, e))
                .collect()
        })
        .unwrap_or_default();
    let mut diags = schemas.check(InputKind::Env, &file.root);
    diags.extend(unmarked);
    if diags.is_empty() {
        diags.extend(
            contract
                .map(|c| c.check(schemas, &file))
                .unwrap_or_default(),
        );
    }
    if diags.is_empty() {
        Ok(Some(file))
    } else {
        Err(diags)
    }
}

/// `CC0302`: the environment's env file is not on this branch.
pub fn env_file_missing(inputs: &RepoInputs, env: &str) -> Diagnostic {
    let name = env_file_name(env);
    let mut d = Diagnostic::error(Code::EnvFileMissing, format!("{name} not found"));
    if let Some(e) = inputs.controlcenter.root.entry(env) {
        d = d.at(e.key_span, format!("`{env}` needs {name}"));
    }
    d.help(format!(
        "environment branches carry only their own Terraform outputs; render `{env}` on its branch, add {name}, or preview with `render --placeholders`"
    ))
}

/// `CC0102` when the environment's env file is missing but one spelled
/// `.yml` is there: it is not read, and the environment is not skipped
/// (nor rendered against placeholders) as one whose outputs are on
/// another branch.
pub fn env_file_misnamed(repo: &dyn crate::repo::RepoFiles, env: &str) -> Option<Diagnostic> {
    let name = env_file_name(env);
    let spelled = format!("{}.yml", name.strip_suffix(".yaml")?);
    repo.list_files("").contains(&spelled).then(|| {
        Diagnostic::error(
            Code::FileUnreadable,
            format!(
                "{} is not read: input files are named `*.yaml`",
                crate::names::clip(&spelled)
            ),
        )
        .help(format!(
            "rename it `{}`: `{env}` is rendered from its Terraform outputs",
            crate::names::clip(&name)
        ))
    })
}

/// `CC0204`, at the offending property name of the extension (else the
/// file's start).
fn extension_invalid(why: schema::ExtensionError, sources: &Sources) -> Diagnostic {
    let d = Diagnostic::error(
        Code::RepoSchemaInvalid,
        format!(
            "{SERVICE_SCHEMA_FILE} is not a usable extension: {}",
            why.message
        ),
    )
    .help("it must be a JSON Schema object whose `properties` add new service fields");
    let Some(file) = sources.find(SERVICE_SCHEMA_FILE) else {
        return d;
    };
    // The extension is parsed as plain JSON: find the property by its
    // quoted name.
    let text = &sources.get(file).text;
    let (start, end) = why
        .field
        .and_then(|f| {
            let quoted = format!("\"{f}\"");
            text.find(&quoted).map(|i| (i, i + quoted.len()))
        })
        .unwrap_or((0, 0));
    d.at(Span::new(file, start, end), "here")
}

/// Registers the values of service fields the schema marks secret
/// (`writeOnly`) and masks them in controlcenter.yaml's snippets; an alias
/// may not copy one into a field that is shown.
fn mask_secret_fields(
    inputs: &RepoInputs,
    schemas: &SchemaSet,
    sources: &mut Sources,
) -> Vec<Diagnostic> {
    let secret_fields = schemas.secret_service_fields();
    if secret_fields.is_empty() {
        return Vec::new();
    }
    let spans: Vec<Span> = inputs
        .controlcenter
        .root
        .as_map()
        .unwrap_or_default()
        .iter()
        .flat_map(|section| section.value.as_map().unwrap_or_default())
        .flat_map(|service| service.value.as_map().unwrap_or_default())
        .filter(|field| secret_fields.contains(&field.key))
        .map(|field| {
            sources.secrets_mut().add_json(&field.value.to_json());
            field.value.span
        })
        .collect();
    let ranges: Vec<(usize, usize)> = spans.iter().map(|s| (s.start, s.end)).collect();
    sources.redact(inputs.controlcenter.file, &ranges);
    let overlaps = |a: Span, b: Span| a.start < b.end && b.start < a.end;
    inputs
        .controlcenter
        .copies
        .aliases
        .iter()
        .filter(|alias| spans.iter().any(|s| overlaps(*s, alias.anchor)))
        .map(|alias| {
            Diagnostic::error(
                Code::YamlUnsupported,
                "a YAML alias copies the value of a secret (writeOnly) field",
            )
            .at(alias.used_at, "alias")
            .help("write the secret only where its field is; an alias could copy it into a field that is shown")
        })
        .collect()
}

/// Environment names must be lowercase DNS labels (they name branches,
/// files and namespaces).
fn env_names(inputs: &RepoInputs) -> Vec<Diagnostic> {
    inputs
        .env_names()
        .into_iter()
        .filter(|(name, _)| !is_env_name(name))
        .map(|(name, span)| {
            Diagnostic::error(
                Code::InvalidEnvName,
                format!("`{name}` is not a valid environment name"),
            )
            .at(span, "environment section")
            .help(format!(
                "environment names match ^[a-z][a-z0-9-]*$ (they name branches and env-<env>.yaml); try `{}`",
                names::dns_label(&name).unwrap_or_else(|| "dev".to_owned())
            ))
        })
        .collect()
}

fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}
