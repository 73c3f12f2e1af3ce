//! Load: read the repository's input files into spanned YAML trees.
//!
//! Nothing here interprets the documents; it only guarantees that what the
//! later stages get is a mapping, decoded, within limits, with no duplicate
//! keys, and registered in [`Sources`] for diagnostics.

mod block_yaml;
pub mod yaml;

use crate::diagnostics::{Code, Diagnostic, FileId, Sources, Span};
use crate::repo::layout::{
    env_file_name, is_input_file, CONTROLCENTER_DIR, CONTROLCENTER_FILE, SECRETS_FILE,
    SERVICE_SCHEMA_FILE, TAGS_FILE,
};
use crate::repo::{ReadError, RepoFiles};
use yaml::Node;

/// One parsed input file.
#[derive(Debug, Clone)]
pub struct Input {
    /// Its id in [`Sources`].
    pub file: FileId,
    /// Repo-relative path.
    pub path: String,
    /// The document.
    pub root: Node,
    /// Where aliases copy anchored nodes, and what else the parse copied
    /// or charged beyond the tree (anchors, merges).
    pub copies: yaml::Copies,
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
    /// Sections of controlcenter.yaml not parsed: environments not
    /// rendered whose exact text was found valid before (see
    /// `Project::load`). `controlcenter.root` does not hold them.
    pub left_out: Vec<LeftOut>,
    /// Whether controlcenter.d/ parts were merged into `controlcenter`:
    /// its tree is then not the text of one file.
    pub split: bool,
}

/// A section of controlcenter.yaml left out of its tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    /// Its key: an environment.
    pub key: String,
    /// Where the key is written.
    pub key_span: Span,
}

/// Reserved top-level key of controlcenter.yaml deep-merged under every
/// environment.
pub const DEFAULTS_KEY: &str = "defaults";
/// Reserved top-level key of controlcenter.yaml for repository settings.
pub const SETTINGS_KEY: &str = "settings";

impl RepoInputs {
    /// The environments of controlcenter.yaml with their key spans, in
    /// file order.
    pub fn env_names(&self) -> Vec<(String, Span)> {
        let mut names: Vec<(String, Span)> = self
            .controlcenter
            .root
            .as_map()
            .unwrap_or_default()
            .iter()
            .filter(|e| e.key != DEFAULTS_KEY && e.key != SETTINGS_KEY)
            .map(|e| (e.key.clone(), e.key_span))
            .chain(self.left_out.iter().map(|s| (s.key.clone(), s.key_span)))
            .collect();
        if !self.left_out.is_empty() {
            names.sort_by_key(|(_, span)| span.start);
        }
        names
    }
}

/// Reads a file's text, registering it in `sources`. `Ok(None)` if absent.
/// Bytes of input files read by this process so far.
static INPUT_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes of input files (YAML) this process has read: what the memory a
/// command needs grows with.
pub fn input_bytes_read() -> u64 {
    INPUT_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn read_text(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    path: &str,
) -> Result<Option<(FileId, std::sync::Arc<str>)>, Diagnostic> {
    let bytes = match repo.read_real(path) {
        Ok(Some((_, b))) => {
            INPUT_BYTES.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
            b
        }
        Ok(None) => return Ok(None),
        Err(e) => {
            // Registered empty: the error names the file, and its snippet
            // shows nothing of it.
            let id = sources.add(path, "");
            return Err(Diagnostic::error(
                Code::FileUnreadable,
                format!("cannot read {path}: {e}"),
            )
            .at(Span::new(id, 0, 0), "this file")
            .help(match e {
                ReadError::TooLarge(_) => "input files are small hand- or CI-written YAML; check that the right file is committed",
                ReadError::OutsideRepo => "inputs must live inside the repository; replace the symlink with the file",
                ReadError::InputFile(_) => "each input file is read under its own name only; replace the link or copy with the file it should be",
                _ => "check the file's type and permissions",
            }));
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
    /// secrets.yaml: every value.
    SealedSecrets,
    /// env-<env>.yaml: the values of every output marked `sensitive: true`.
    TerraformOutputs,
}

/// Loads and parses a YAML input; the top level must be a mapping. Secret
/// values of sensitive files are masked in `sources`, and remembered for
/// scrubbing, before any diagnostic can show them; a sensitive file that
/// cannot be decoded or parsed is masked whole.
pub fn load_yaml(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    path: &str,
    sensitivity: Sensitivity,
) -> Result<Option<Input>, Vec<Diagnostic>> {
    load_yaml_files(repo, sources, &[(path, sensitivity)])
        .pop()
        .unwrap_or(Ok(None))
}

/// Which top-level sections of a plain file not to parse, given its path
/// and text: some of what [`yaml::sections`] gives, with the values each
/// holds ([`yaml::count_values`]).
pub type LeaveOut<'a> = dyn Fn(&str, &str) -> Vec<(yaml::Section, usize)> + Sync + 'a;

/// [`load_yaml`] of several files: read and registered in order, parsed
/// side by side (the small ones would otherwise leave cores idle), then
/// checked and masked in order.
pub fn load_yaml_files(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    files: &[(&str, Sensitivity)],
) -> Vec<Result<Option<Input>, Vec<Diagnostic>>> {
    load_yaml_files_leaving_out(repo, sources, files, &|_, _| Vec::new())
        .into_iter()
        .map(|(input, _)| input)
        .collect()
}

/// [`load_yaml_files`], leaving out the sections of a plain file that
/// `leave_out` names when the rest parses exactly on its own: with each
/// file, the ranges left out.
fn load_yaml_files_leaving_out(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    files: &[(&str, Sensitivity)],
    leave_out: &LeaveOut,
) -> Vec<LoadedYaml> {
    let read: Vec<_> = files
        .iter()
        .map(|&(path, sensitivity)| read_text(repo, sources, path).map(|r| (r, sensitivity)))
        .collect();
    // A thread per file, up to a bound: a large file does not hold up
    // the small ones, and thousands of small ones share the cores.
    let workers = read.len().min(crate::parallel::cores().max(8));
    let paths: Vec<&str> = files.iter().map(|(path, _)| *path).collect();
    let read: Vec<_> = read.into_iter().zip(paths).collect();
    let parsed = crate::parallel::map(&read, workers, |(r, path)| match r {
        Ok((Some((file, text)), sensitivity)) => {
            let left_out = match sensitivity {
                Sensitivity::Plain => leave_out(path, text),
                _ => Vec::new(),
            };
            let ranges: Vec<std::ops::Range<usize>> =
                left_out.iter().map(|(s, _)| s.range.clone()).collect();
            let values = left_out.iter().map(|(_, n)| n).sum();
            let partial = (!left_out.is_empty())
                .then(|| yaml::parse_leaving_out(text, *file, &ranges, values))
                .flatten();
            let left_out: Vec<yaml::Section> = left_out.into_iter().map(|(s, _)| s).collect();
            Some(match partial {
                Some(parsed) => (Ok(parsed), left_out),
                None => (
                    yaml::parse_with_aliases(text, *file, *sensitivity != Sensitivity::Plain),
                    Vec::new(),
                ),
            })
        }
        _ => None,
    });
    let read = read.into_iter().map(|(r, _)| r);
    files
        .iter()
        .zip(read)
        .zip(parsed)
        .map(|((&(path, sensitivity), read), parsed)| {
            let (parsed, left_out) = parsed.unzip();
            let input = finish_yaml(sources, path, sensitivity, read.map(|(r, _)| r), parsed);
            (input, left_out.unwrap_or_default())
        })
        .collect()
}

/// A file loaded, and the sections of it left out.
type LoadedYaml = (Result<Option<Input>, Vec<Diagnostic>>, Vec<yaml::Section>);

/// The part of [`load_yaml`] after parsing: masking, secrets, checks.
fn finish_yaml(
    sources: &mut Sources,
    path: &str,
    sensitivity: Sensitivity,
    read: Result<Option<(FileId, std::sync::Arc<str>)>, Diagnostic>,
    parsed: Option<Result<(Node, yaml::Copies), Vec<Diagnostic>>>,
) -> Result<Option<Input>, Vec<Diagnostic>> {
    let (file, parsed) = match (read, parsed) {
        (Ok(Some((file, _))), Some(parsed)) => (file, parsed),
        (Ok(_), _) => return Ok(None),
        (Err(d), _) => {
            if sensitivity != Sensitivity::Plain {
                if let Some(file) = sources.find(path) {
                    sources.mask_unparsed(file);
                }
            }
            return Err(vec![d]);
        }
    };
    let (root, copies) = match parsed {
        Ok(parsed) => parsed,
        Err(d) => {
            if sensitivity != Sensitivity::Plain {
                sources.mask_unparsed(file);
            }
            return Err(d);
        }
    };
    let secret_values = match sensitivity {
        Sensitivity::Plain => Vec::new(),
        Sensitivity::SealedSecrets => sealed_file_values(&root),
        Sensitivity::TerraformOutputs => sensitive_output_values(&root),
    };
    let spans: Vec<(usize, usize)> = secret_values
        .iter()
        .map(|(n, _)| (n.span.start, n.span.end))
        .collect();
    sources.redact(file, &spans);
    for (node, scrub) in secret_values {
        if scrub {
            sources.secrets_mut().add_json(&node.to_json());
        }
    }
    // An alias could copy a secret value into a place that is not secret;
    // Terraform and kubeseal never write one.
    if let (Some(first), false) = (copies.aliases.first(), sensitivity == Sensitivity::Plain) {
        return Err(vec![Diagnostic::error(
            Code::YamlUnsupported,
            format!("{path} uses a YAML alias"),
        )
        .at(first.used_at, "alias")
        .help("this file holds secret values, which an alias could copy into a plain value; write each value out")]);
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
        copies,
    }))
}

/// Loads the repository-wide inputs, reporting every problem found.
pub fn load_repo(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
) -> Result<RepoInputs, Vec<Diagnostic>> {
    load_repo_leaving_out(repo, sources, &|_, _| Vec::new())
}

/// [`load_repo`], leaving out of controlcenter.yaml's tree the sections
/// `leave_out` names (when it is the configuration's one file, and the
/// rest parses exactly on its own): [`RepoInputs::left_out`].
pub fn load_repo_leaving_out(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    leave_out: &LeaveOut,
) -> Result<RepoInputs, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    // Secret values first, so that whatever is loaded after them (a copy
    // pasted into a policy, a schema) is scrubbed from every message. An
    // env file's own problems are reported when its environment resolves.
    // All are parsed side by side, and masked in this order.
    let root_files = repo.list_files("");
    diags.extend(
        root_files
            .iter()
            .filter_map(|name| misnamed_input(name, &root_files)),
    );
    let env_files: Vec<String> = root_files
        .into_iter()
        .filter(|name| name.starts_with("env-") && is_input_file(name))
        .collect();
    let mut files: Vec<(&str, Sensitivity)> = env_files
        .iter()
        .map(|name| (name.as_str(), Sensitivity::TerraformOutputs))
        .collect();
    files.push((SECRETS_FILE, Sensitivity::SealedSecrets));
    files.push((CONTROLCENTER_FILE, Sensitivity::Plain));
    // controlcenter.d/ and tags.yaml in the same batch, in the order they
    // were always read: every file is parsed side by side.
    let mut split_diags = Vec::new();
    let parts = split_file_paths(repo, &mut split_diags);
    files.extend(parts.iter().map(|p| (p.as_str(), Sensitivity::Plain)));
    files.push((TAGS_FILE, Sensitivity::Plain));
    // Sections are left out of controlcenter.yaml only when it is the one
    // file of the configuration.
    let no_split = parts.is_empty() && split_diags.is_empty();
    let leave_out = |path: &str, text: &str| match path {
        CONTROLCENTER_FILE if no_split => leave_out(path, text),
        _ => Vec::new(),
    };
    let mut loaded = load_yaml_files_leaving_out(repo, sources, &files, &leave_out);
    let (tags, _) = loaded.pop().unwrap_or((Ok(None), Vec::new()));
    let parts_loaded = loaded
        .split_off(loaded.len().saturating_sub(parts.len()))
        .into_iter()
        .map(|(input, _)| input)
        .collect();
    let (controlcenter, left_out) = loaded.pop().unwrap_or((Ok(None), Vec::new()));
    let (secrets, _) = loaded.pop().unwrap_or((Ok(None), Vec::new()));
    let left_out: Vec<LeftOut> = match &controlcenter {
        Ok(Some(input)) => left_out
            .into_iter()
            .map(|s| LeftOut {
                key_span: Span::new(input.file, s.key_start, s.key_start + s.key.len()),
                key: s.key,
            })
            .collect(),
        _ => Vec::new(),
    };
    let controlcenter = match controlcenter {
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
    let controlcenter = merge_split_files(
        sources,
        controlcenter,
        (&parts, parts_loaded),
        split_diags,
        &mut diags,
    );
    let tags = match tags {
        Ok(i) => i,
        Err(d) => {
            diags.extend(d);
            None
        }
    };
    let secrets = match secrets {
        Ok(i) => i,
        Err(d) => {
            diags.extend(d);
            None
        }
    };
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
    // Which fields are secret is known only from the schema: if
    // controlcenter.yaml did not parse, no value of it may show.
    if controlcenter.is_none()
        && service_schema
            .as_ref()
            .is_some_and(crate::validate::schema::declares_write_only)
    {
        if let Some(file) = sources.find(CONTROLCENTER_FILE) {
            sources.mask_unparsed(file);
        }
    }
    match controlcenter {
        Some(controlcenter) if diags.is_empty() => Ok(RepoInputs {
            controlcenter,
            tags,
            secrets,
            service_schema,
            left_out,
            split: !no_split,
        }),
        _ => Err(diags),
    }
}

/// Adds `controlcenter.d/*.yaml`, in name order, to controlcenter.yaml:
/// each file's top-level sections (environments, `defaults`, `settings`)
/// merge into the same sections of the others, one level deep. A key that
/// two files both define is an error naming both. A repository may hold
/// only `controlcenter.d/`.
fn merge_split_files(
    sources: &Sources,
    base: Option<Input>,
    (paths, loaded): (&[String], Vec<Result<Option<Input>, Vec<Diagnostic>>>),
    listing: Vec<Diagnostic>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Input> {
    let had_base = base.is_some() || diags.is_empty();
    diags.extend(listing);
    let mut merged = base;
    // Where each key of each section is defined so far: a lookup per key,
    // not a scan of the section (thousands of one-service files).
    let mut defined: Defined = match &merged {
        Some(m) if !paths.is_empty() => defined_in(&m.root),
        _ => Defined::default(),
    };
    for (path, part) in paths.iter().zip(loaded) {
        let part = match part {
            Ok(Some(part)) => part,
            // Listed, yet nothing to read: a link to nothing.
            Ok(None) => {
                diags.push(split_file_problem(
                    path,
                    "cannot be read: it is a link to nothing",
                    "point the link at a file, or remove it",
                ));
                continue;
            }
            Err(d) => {
                diags.extend(d);
                continue;
            }
        };
        let Some(into) = merged.as_mut() else {
            defined = defined_in(&part.root);
            merged = Some(part);
            continue;
        };
        merge_sections(&mut into.root, part.root, &mut defined, sources, diags);
        into.copies.extend(part.copies);
    }
    // controlcenter.yaml missing was reported before the parts were known.
    if merged.is_some() && !had_base {
        diags.retain(|d| d.code != Code::FileMissing);
    }
    merged
}

/// The `controlcenter.d/*.yaml` files to merge, in name order. Anything
/// else there (another extension, a directory, a special file, a name that
/// is not UTF-8), and a `controlcenter.d` that is not a directory of the
/// repository, is an error rather than passed over: a service's file
/// renamed `.yml` would otherwise vanish from the render, and Argo CD
/// prune what it made. Hidden files (`.gitkeep`) are left alone.
fn split_file_paths(repo: &dyn RepoFiles, diags: &mut Vec<Diagnostic>) -> Vec<String> {
    let entries = match crate::repo::dir_entries(repo, CONTROLCENTER_DIR) {
        Ok(entries) => entries,
        Err(what) => {
            diags.push(
                Diagnostic::error(Code::FileUnreadable, format!("{CONTROLCENTER_DIR} {what}"))
                    .help("make controlcenter.d/ a directory of *.yaml files in the repository itself (or remove it and keep every section in controlcenter.yaml): the services in it would be missing from the render"),
            );
            return Vec::new();
        }
    };
    let mut paths = Vec::new();
    for (name, kind) in entries {
        if name.starts_with('.') {
            continue;
        }
        let path = format!("{CONTROLCENTER_DIR}/{name}");
        let (what, help) = match kind {
            _ if name.contains('\u{fffd}') || name.chars().any(char::is_control) => (
                "has a name that is not valid UTF-8 or holds a control character".to_owned(),
                "rename it: split files are named `<anything>.yaml`".to_owned(),
            ),
            crate::repo::EntryKind::File if name.ends_with(".yaml") => {
                paths.push(path);
                continue;
            }
            crate::repo::EntryKind::File => (
                "is not read: split files are named `*.yaml`".to_owned(),
                format!(
                    "rename it `{}.yaml` if it holds sections, or move it out of {CONTROLCENTER_DIR}/",
                    name.rsplit_once('.').map_or(name.as_str(), |(stem, _)| stem)
                ),
            ),
            crate::repo::EntryKind::Dir => (
                "is a directory: only the files directly in controlcenter.d/ are read".to_owned(),
                "move its *.yaml files up into controlcenter.d/".to_owned(),
            ),
            crate::repo::EntryKind::Other => (
                "is not a regular file".to_owned(),
                "remove it, or replace it with a *.yaml file".to_owned(),
            ),
        };
        diags.push(split_file_problem(&path, &what, &help));
    }
    paths
}

/// `CC0102` about a root file named like a repository-wide input but
/// spelled `.yml` (`secrets.yml`, `tags.yml`, `controlcenter.yml`), when
/// the `.yaml` file is not there: only `.yaml` names are read, and such a
/// file passed over would drop the sealed secrets, the image tags or the
/// services from the render without a word. (An env file spelled so is
/// reported when its environment is rendered: `validate::env_file_misnamed`.)
fn misnamed_input(name: &str, root_files: &[String]) -> Option<Diagnostic> {
    let stem = name.strip_suffix(".yml")?;
    let meant = format!("{stem}.yaml");
    if ![CONTROLCENTER_FILE, TAGS_FILE, SECRETS_FILE].contains(&meant.as_str())
        || root_files.contains(&meant)
    {
        return None;
    }
    Some(
        Diagnostic::error(
            Code::FileUnreadable,
            format!(
                "{} is not read: input files are named `*.yaml`",
                crate::names::clip(name)
            ),
        )
        .help(format!("rename it `{}`", crate::names::clip(&meant))),
    )
}

/// `CC0102` about an entry of controlcenter.d/ that is not read.
fn split_file_problem(path: &str, what: &str, help: &str) -> Diagnostic {
    Diagnostic::error(
        Code::FileUnreadable,
        format!("{} {what}", crate::names::clip(path)),
    )
    .help(help.to_owned())
}

/// Section → key → where it is defined.
type Defined = std::collections::HashMap<String, std::collections::HashMap<String, Span>>;

/// The keys of each section of `root`, with where they are defined.
fn defined_in(root: &Node) -> Defined {
    root.as_map()
        .unwrap_or_default()
        .iter()
        .map(|section| (section.key.clone(), defined_in_section(section)))
        .collect()
}

/// Merges `part` into `into`, two levels deep (sections, then their keys);
/// `defined` holds the keys of `into`'s sections, and gains `part`'s.
fn merge_sections(
    into: &mut Node,
    part: Node,
    defined: &mut Defined,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) {
    if matches!(into.value, yaml::Value::Null) {
        *defined = defined_in(&part);
        *into = part;
        return;
    }
    let (yaml::Value::Map(sections), yaml::Value::Map(new)) = (&mut into.value, part.value) else {
        diags.push(
            Diagnostic::error(
                Code::SchemaViolation,
                "a controlcenter.d file is not a mapping of sections",
            )
            .at(
                part.span,
                "expected `<env>:`, `defaults:` or `settings:` sections",
            )
            .help("each controlcenter.d/*.yaml file holds sections like controlcenter.yaml"),
        );
        return;
    };
    for section in new {
        let Some(existing) = sections.iter_mut().find(|e| e.key == section.key) else {
            defined.insert(section.key.clone(), defined_in_section(&section));
            sections.push(section);
            continue;
        };
        let (yaml::Value::Map(keys), yaml::Value::Map(more)) =
            (&mut existing.value.value, section.value.value)
        else {
            diags.push(duplicate(
                &section.key,
                section.key_span,
                existing.key_span,
                sources,
            ));
            continue;
        };
        let known = defined.entry(section.key.clone()).or_default();
        for entry in more {
            match known.get(&entry.key) {
                Some(&first) => diags.push(duplicate(
                    &format!("{}.{}", section.key, entry.key),
                    entry.key_span,
                    first,
                    sources,
                )),
                None => {
                    known.insert(entry.key.clone(), entry.key_span);
                    keys.push(entry);
                }
            }
        }
    }
}

/// The keys of one section, with where they are defined.
fn defined_in_section(section: &yaml::Entry) -> std::collections::HashMap<String, Span> {
    section
        .value
        .as_map()
        .unwrap_or_default()
        .iter()
        .map(|e| (e.key.clone(), e.key_span))
        .collect()
}

/// `CC0104`: `key` is defined at `at` and, before, at `first`; the message
/// names both files (short formats show only the message and `at`).
fn duplicate(key: &str, at: Span, first: Span, sources: &Sources) -> Diagnostic {
    let file = |span: Span| sources.get(span.file).path.clone();
    Diagnostic::error(
        Code::DuplicateKey,
        format!(
            "`{key}` is defined in both {} and {}",
            file(first),
            file(at)
        ),
    )
    .at(at, "defined again here")
    .related(first, "first defined here")
    .help("each key lives in one file: move it, or merge the two definitions")
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

/// Every scalar value of secrets.yaml, whatever its shape: ciphertexts,
/// a `stringData` block, an entry missing its secret-name level. Only the
/// names of keys stay readable. Each comes with whether printed text is
/// scrubbed of it: all but a secret's `namespace` and `type`, which name
/// things that appear in messages for other reasons.
fn sealed_file_values(root: &Node) -> Vec<(&Node, bool)> {
    let mut out = Vec::new();
    let mut todo = vec![(root, true)];
    while let Some((node, scrub)) = todo.pop() {
        match &node.value {
            yaml::Value::Map(entries) => todo.extend(
                entries
                    .iter()
                    .map(|e| (&e.value, !matches!(e.key.as_str(), "namespace" | "type"))),
            ),
            yaml::Value::Seq(items) => todo.extend(items.iter().map(|n| (n, scrub))),
            _ => out.push((node, scrub)),
        }
    }
    out
}

/// Whether a mapping of an env file is a Terraform output marked
/// sensitive. Anything but a clear "no" (`false`, `"false"`, `no`, `off`,
/// `0`) counts: `sensitive: "true"`, `yes` or an empty value declare the
/// intent too.
pub fn is_sensitive_output(node: &Node) -> bool {
    node.get("sensitive").is_some_and(|s| match &s.value {
        yaml::Value::Bool(b) => *b,
        yaml::Value::Null => true,
        yaml::Value::Number(n) => n.as_f64() != Some(0.0),
        yaml::Value::String(t) => !matches!(
            t.trim().to_ascii_lowercase().as_str(),
            "false" | "no" | "off" | "0"
        ),
        yaml::Value::Seq(_) | yaml::Value::Map(_) => true,
    })
}

/// The value of one env-file entry: the `value` of a raw `terraform output
/// -json` entry (`{value, type, sensitive}`), else the entry itself.
pub fn output_value(node: &Node) -> &Node {
    let raw = node.as_map().is_some_and(|m| {
        m.iter().any(|f| f.key == "value")
            && m.iter()
                .all(|f| matches!(f.key.as_str(), "value" | "type" | "sensitive"))
    });
    match node.get("value") {
        Some(v) if raw => v,
        _ => node,
    }
}

/// Fields of a sensitive output that describe it rather than hold it.
pub const OUTPUT_DESCRIPTORS: [&str; 2] = ["sensitive", "type"];

/// The values of every output marked `sensitive: true`, at any depth and
/// whatever the rest of the file looks like: every field of such a mapping
/// but `sensitive` and `type`.
fn sensitive_output_values(root: &Node) -> Vec<(&Node, bool)> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(node) = todo.pop() {
        match &node.value {
            yaml::Value::Map(entries) if is_sensitive_output(node) => out.extend(
                entries
                    .iter()
                    .filter(|e| !OUTPUT_DESCRIPTORS.contains(&e.key.as_str()))
                    .map(|e| (&e.value, true)),
            ),
            yaml::Value::Map(entries) => todo.extend(entries.iter().map(|e| &e.value)),
            yaml::Value::Seq(items) => todo.extend(items),
            _ => {}
        }
    }
    out
}

/// Byte offset of a 1-based line and column in `text` (clamped to its end).
pub fn line_col_to_offset(text: &str, line: usize, col: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + col.saturating_sub(1)).min(text.len())
}
