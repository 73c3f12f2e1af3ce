//! controlcenter compiles a branch-per-environment GitOps repository into
//! the Kubernetes manifests of one environment:
//!
//! load → validate → resolve → evaluate → process → emit.
//!
//! [`Project`] holds a loaded, schema-checked repository and renders any of
//! its environments. Every problem is a [`diagnostics::Diagnostic`] with a
//! file span; nothing is printed here.

pub mod cli;
pub mod commands;
pub mod diagnostics;
pub mod emit;
pub mod evaluate;
pub mod load;
pub mod process;
pub mod redact;
pub mod repo;
pub mod resolve;
pub mod validate;

use std::sync::Arc;

use diagnostics::{Code, Diagnostic, Sources};
use evaluate::Limits;
use repo::RepoFiles;
use load::RepoInputs;
use process::Resource;
use resolve::ResolvedEnv;
use validate::schema::{InputKind, SchemaSet};

/// A loaded repository whose shared inputs match their schemas.
pub struct Project {
    /// Every file read so far, for rendering diagnostics.
    pub sources: Sources,
    /// The repository-wide inputs.
    pub inputs: RepoInputs,
    schemas: SchemaSet,
    repo: Arc<dyn RepoFiles>,
    lib: Arc<dyn RepoFiles>,
    /// Evaluation bounds.
    pub limits: Limits,
    /// Namespace for environments whose section sets none (default: the
    /// environment name). The Argo CD plugin sets the Application's.
    pub default_namespace: Option<String>,
    policies: Vec<validate::policy::RepoPolicy>,
}

/// Diagnostics of a failed step, with the files they point into.
pub struct Failure {
    /// Files the diagnostics refer to.
    pub sources: Sources,
    /// What went wrong (at least one error).
    pub diagnostics: Vec<Diagnostic>,
}

impl Project {
    /// Loads `repo` and validates controlcenter.yaml, tags.yaml and
    /// secrets.yaml against their schemas. All problems are reported at once.
    pub fn load(
        repo: Arc<dyn RepoFiles>,
        lib: Arc<dyn RepoFiles>,
        limits: Limits,
    ) -> Result<Project, Failure> {
        // Every read of the run, loaders and templates alike, goes through
        // the guard: an input file's bytes only under its own name.
        let guard = Arc::new(crate::repo::guard::InputGuard::of(repo.as_ref()));
        let repo: Arc<dyn RepoFiles> =
            Arc::new(crate::repo::guard::Guarded::new(repo, guard.clone(), true));
        let lib: Arc<dyn RepoFiles> = Arc::new(crate::repo::guard::Guarded::new(lib, guard, false));
        let mut sources = Sources::default();
        let inputs = match load::load_repo(repo.as_ref(), &mut sources) {
            Ok(i) => i,
            Err(diagnostics) => {
                return Err(Failure {
                    sources,
                    diagnostics,
                })
            }
        };
        let schemas = match SchemaSet::new(inputs.service_schema.as_ref()) {
            Ok(s) => s,
            Err(why) => {
                let mut d = Diagnostic::error(
                    Code::RepoSchemaInvalid,
                    format!(
                        "{} is not a usable extension: {}",
                        crate::repo::layout::SERVICE_SCHEMA_FILE,
                        why.message
                    ),
                )
                .help("it must be a JSON Schema object whose `properties` add new service fields");
                // Point at the offending property name, else the file's start.
                if let Some(file) = sources.find(crate::repo::layout::SERVICE_SCHEMA_FILE) {
                    let text = sources.get(file).text.clone();
                    let (start, end) = why
                        .field
                        .and_then(|f| {
                            let quoted = format!("\"{f}\"");
                            text.find(&quoted).map(|i| (i, i + quoted.len()))
                        })
                        .unwrap_or((0, 0));
                    d = d.at(diagnostics::Span::new(file, start, end), "here");
                }
                return Err(Failure {
                    sources,
                    diagnostics: vec![d],
                });
            }
        };
        // Values of fields the schema marks secret never show in a snippet,
        // and an alias may not copy one into a field that is not secret.
        let mut diagnostics = Vec::new();
        let secret_fields = schemas.secret_service_fields();
        if !secret_fields.is_empty() {
            let spans: Vec<diagnostics::Span> = inputs
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
            let overlaps =
                |a: diagnostics::Span, b: diagnostics::Span| a.start < b.end && b.start < a.end;
            for alias in &inputs.controlcenter.aliases {
                if spans.iter().any(|s| overlaps(*s, alias.anchor)) {
                    diagnostics.push(
                        Diagnostic::error(
                            Code::YamlUnsupported,
                            "a YAML alias copies the value of a secret (writeOnly) field",
                        )
                        .at(alias.used_at, "alias")
                        .help("write the secret only where its field is; an alias could copy it into a field that is shown"),
                    );
                }
            }
        }
        diagnostics.extend(schemas.check(InputKind::ControlCenter, &inputs.controlcenter.root));
        let policies = match validate::policy::load_repo_policies(repo.as_ref(), &mut sources) {
            Ok(p) => p,
            Err(d) => {
                diagnostics.extend(d);
                Vec::new()
            }
        };
        diagnostics.extend(resolve::check_env_names(&inputs));
        if let Some(tags) = &inputs.tags {
            diagnostics.extend(schemas.check(InputKind::Tags, &tags.root));
        }
        if let Some(secrets) = &inputs.secrets {
            diagnostics.extend(schemas.check(InputKind::Secrets, &secrets.root));
        }
        if diagnostics.iter().any(Diagnostic::is_error) {
            return Err(Failure {
                sources,
                diagnostics,
            });
        }
        Ok(Project {
            sources,
            inputs,
            schemas,
            repo,
            lib,
            limits,
            default_namespace: None,
            policies,
        })
    }

    /// Environment names, in file order.
    pub fn envs(&self) -> Vec<String> {
        resolve::env_names(&self.inputs)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// Resolves `env` into the state the library receives.
    pub fn resolve(&mut self, env: &str) -> Result<ResolvedEnv, Vec<Diagnostic>> {
        if self.inputs.controlcenter.root.get(env).is_none()
            || env == resolve::DEFAULTS_KEY
            || env == resolve::SETTINGS_KEY
        {
            return Err(vec![resolve::unknown_env(&self.inputs, env)]);
        }
        let env_file = match load::load_env_file(self.repo.as_ref(), &mut self.sources, env)? {
            Some(f) => f,
            None => {
                let section = self
                    .inputs
                    .controlcenter
                    .root
                    .entry(env)
                    .map(|e| e.key_span);
                let mut d = Diagnostic::error(
                    Code::EnvFileMissing,
                    format!("{} not found", crate::repo::layout::env_file_name(env)),
                );
                if let Some(span) = section {
                    d = d.at(span, format!("`{env}` needs {}", crate::repo::layout::env_file_name(env)));
                }
                return Err(vec![d
                .help(format!(
                    "environment branches carry only their own Terraform outputs; render `{env}` on its branch, or add {}",
                    crate::repo::layout::env_file_name(env)
                ))]);
            }
        };
        let diags = self.schemas.check(InputKind::Env, &env_file.root);
        if !diags.is_empty() {
            return Err(diags);
        }
        resolve::resolve_env(
            &self.inputs,
            Some(&env_file),
            &self.sources,
            self.schemas.extra_service_fields(),
            self.schemas.secret_service_fields(),
            env,
            self.default_namespace.as_deref(),
        )
    }

    /// Renders `env`: resolve, evaluate, post-process. The resources are
    /// checked and sorted.
    pub fn render(&mut self, env: &str) -> Result<Vec<Resource>, Vec<Diagnostic>> {
        let resolved = self.resolve(env)?;
        self.render_resolved(&resolved)
    }

    /// Evaluates and post-processes an already resolved environment.
    pub fn render_resolved(
        &mut self,
        resolved: &ResolvedEnv,
    ) -> Result<Vec<Resource>, Vec<Diagnostic>> {
        let state_json = engine_input(&resolved.state);
        let output = match evaluate::render_state(
            self.repo.clone(),
            self.lib.clone(),
            state_json,
            self.limits,
            self.sources.secrets(),
            true,
        ) {
            Ok(o) => o,
            Err(f) => {
                let culprit = match f.kind {
                    evaluate::FailureKind::Runtime => self.blame_service(resolved, &f.message),
                    _ => None,
                };
                let mut d = evaluate::diagnose(f, &mut self.sources);
                if let Some(key) = culprit {
                    if let Some(span) = self.blame_field(resolved, &key, &d) {
                        d = d.related(span, format!("the failing value, from service `{key}`"));
                    } else if let Some(span) = resolved.service_spans.get(&key) {
                        d = d.related(*span, "the failing value comes from this service");
                    }
                }
                return Err(vec![d]);
            }
        };
        let value: serde_json::Value = serde_json::from_str(&output.json).map_err(|e| {
            vec![Diagnostic::error(
                Code::JsonnetError,
                format!("the template output is not valid JSON: {e}"),
            )]
        })?;
        let entry = self.entry_span();
        let spans_by_name = resolved
            .state
            .services
            .values()
            .filter_map(|s| Some((s.name.clone(), *resolved.service_spans.get(&s.key)?)))
            .collect();
        let resources = process::process(
            value,
            &process::ProcessOptions {
                env: &resolved.state.env,
                allow_empty: resolved
                    .settings
                    .allow_empty_envs
                    .iter()
                    .any(|e| *e == resolved.state.env),
                allow_plain_secrets: !resolved
                    .settings
                    .policy_on(validate::policy::NO_PLAIN_SECRETS),
                service_spans: &spans_by_name,
                entry,
                env_span: Some(resolved.env_span),
            },
        )?;
        // Templates, to point a policy violation at the value's literal.
        let templates: Vec<(diagnostics::FileId, Arc<str>)> = output
            .files
            .into_iter()
            .map(|(path, text)| (self.sources.add(path, text.clone()), text))
            .collect();
        let violations = validate::policy::check(
            &resources,
            &validate::policy::PolicyContext {
                templates: &templates,
                env: &resolved.state.env,
                protected: resolved.state.protected,
                settings: &resolved.settings,
                service_spans: &spans_by_name,
                entry,
                repo_policies: &self.policies,
            },
        );
        if violations.is_empty() {
            Ok(resources)
        } else {
            Err(violations)
        }
    }

    /// Finds the one service whose values make the templates fail with
    /// `message`, by bisecting the services (they render independently).
    /// Jsonnet values carry no provenance; this recovers the input line.
    fn blame_service(&self, resolved: &ResolvedEnv, message: &str) -> Option<String> {
        let fails = |keys: &[String]| {
            let mut state = resolved.state.clone();
            state.services.retain(|k, _| keys.contains(k));
            let json = engine_input(&state);
            matches!(
                evaluate::render_state(
                    self.repo.clone(),
                    self.lib.clone(),
                    json,
                    self.limits,
                    self.sources.secrets(),
                    false
                ),
                Err(f) if f.message == message
            )
        };
        let mut suspects: Vec<String> = resolved.state.services.keys().cloned().collect();
        if suspects.is_empty() || fails(&[]) {
            return None; // not caused by any one service
        }
        while suspects.len() > 1 {
            let right = suspects.split_off(suspects.len() / 2);
            if fails(&suspects) {
                continue;
            } else if fails(&right) {
                suspects = right;
            } else {
                return None; // only a combination fails
            }
        }
        suspects.pop()
    }

    /// Where the field named by the failing expression (`svc.replicas`,
    /// `svc.extra.team`) is written for service `key`: the environment
    /// section, else `defaults`.
    fn blame_field(
        &self,
        resolved: &ResolvedEnv,
        key: &str,
        d: &Diagnostic,
    ) -> Option<diagnostics::Span> {
        let primary = d.primary.as_ref()?.span;
        let text = self
            .sources
            .get(primary.file)
            .text
            .get(primary.start..primary.end)?;
        let field = ["svc.extra.", "svc."].iter().find_map(|prefix| {
            let rest = &text[text.find(prefix)? + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            Some(&rest[..end]).filter(|f| !f.is_empty())
        })?;
        let root = &self.inputs.controlcenter.root;
        [resolved.state.env.as_str(), resolve::DEFAULTS_KEY]
            .iter()
            .find_map(|section| root.get(section)?.get(key)?.get(field))
            .map(|n| n.span)
    }

    /// The start of the template entry point, registered for snippets:
    /// where problems of the rendered output as a whole are shown.
    pub fn entry_span(&mut self) -> Option<diagnostics::Span> {
        let (files, path, label) = match self.repo.read(evaluate::REPO_ENTRY) {
            Ok(Some(_)) => (&self.repo, evaluate::REPO_ENTRY, ""),
            _ => (&self.lib, evaluate::library::LIB_ENTRY, evaluate::LIB_LABEL),
        };
        let text = String::from_utf8(files.read(path).ok()??).ok()?;
        let id = self.sources.add(format!("{label}{path}"), text);
        Some(diagnostics::Span::new(id, 0, 0))
    }
}

/// The state as compact JSON with sorted keys, secret fields shown as
/// `<redacted>`: what `state` prints.
pub fn state_json(resolved: &ResolvedEnv) -> String {
    // Through Value so every object's keys come out sorted.
    serde_json::to_value(&resolved.state)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The state as the library receives it: [`state_json`] with secret
/// fields holding their values. Never printed.
fn engine_input(state: &resolve::state::State) -> String {
    redact::exposed(|| {
        serde_json::to_value(state)
            .map(|v| v.to_string())
            .unwrap_or_default()
    })
}
