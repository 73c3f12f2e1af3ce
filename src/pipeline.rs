//! The pipeline as a recipe, one call per stage:
//!
//! load → validate → resolve → evaluate → process → check → emit
//!
//! [`Project::load`] runs the stages that concern the whole repository
//! (load, validate) once; [`Project::render`] runs the rest for one
//! environment. Emitting is the commands' part (`emit/`). Every problem is
//! a [`Diagnostic`] with a file span; nothing is printed here.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::diagnostics::{Code, Diagnostic, Outcome, Sources, Span};
use crate::evaluate::{
    Cache, CacheUse, Evaluation, Limits, OutputsSource, Plan, Templates, UnitCounts,
    ENVIRONMENT_OBJECTS,
};
use crate::load::yaml::Value;
use crate::load::{self, RepoInputs, DEFAULTS_KEY, SETTINGS_KEY};
use crate::process::{self, Resource};
use crate::repo::guard::{Guarded, InputGuard};
use crate::repo::layout::env_file_name;
use crate::repo::RepoFiles;
use crate::resolve::{self, ResolvedEnv};
use crate::rules::{self, repo_policies::RepoPolicy, RenderContext, Stage};
use crate::settings::Settings;
use crate::validate::outputs::{self, Contract};
use crate::validate::{self, schema::SchemaSet};

/// What a render reads and how: fixed before loading, never changed after.
#[derive(Clone)]
pub struct RenderOptions {
    /// The repository (work tree, Git revision, promotion).
    pub repo: Arc<dyn RepoFiles>,
    /// The Jsonnet library (built in, or `--lib`).
    pub lib: Arc<dyn RepoFiles>,
    /// Evaluation bounds.
    pub limits: Limits,
    /// Namespace for environments whose section sets none (default: the
    /// environment name). The Argo CD plugin passes the Application's.
    pub default_namespace: Option<String>,
    /// Evaluation threads; 0 for one per core.
    pub workers: usize,
    /// The evaluation cache, if one is used.
    pub cache: Option<Arc<Cache>>,
    /// Render only these services (keys in controlcenter.yaml); `None`
    /// for the whole environment.
    pub services: Option<BTreeSet<String>>,
    /// The one environment this run renders, when known before loading:
    /// the project is narrowed to it ([`Project::narrow_to`]), and, with a
    /// cache, the other environments' sections whose exact text was found
    /// valid before are not parsed again (`validate::verdicts`).
    pub env: Option<String>,
}

impl RenderOptions {
    /// Options that read `repo` with the built-in library and default
    /// limits, on every core, without a cache.
    pub fn new(repo: Arc<dyn RepoFiles>) -> Self {
        RenderOptions {
            repo,
            lib: Arc::new(crate::evaluate::library::EmbeddedLibrary),
            limits: Limits::default(),
            default_namespace: None,
            workers: 0,
            cache: None,
            services: None,
            env: None,
        }
    }
}

/// Threads to evaluate on when asked for `0`: one per core.
fn workers(asked: usize) -> usize {
    if asked > 0 {
        return asked;
    }
    crate::parallel::cores()
}

/// A loaded repository whose shared inputs match their schemas.
pub struct Project {
    /// Every file read so far, for rendering diagnostics.
    pub sources: Sources,
    /// The repository-wide inputs.
    pub inputs: RepoInputs,
    /// Repository settings.
    pub settings: Settings,
    schemas: SchemaSet,
    policies: Vec<RepoPolicy>,
    repo: Arc<dyn RepoFiles>,
    templates: Templates,
    default_namespace: Option<String>,
    services: Option<BTreeSet<String>>,
    units: UnitCounts,
    timings: Timings,
    /// The Terraform-outputs contract, once read: whether it was looked
    /// for with derivation from the env files, and what was found.
    contract: Option<(bool, Option<Contract>)>,
    /// Where the environment being rendered got its Terraform outputs.
    outputs: Option<OutputsSource>,
    /// The one environment this project still renders, once it let go of
    /// the others' sections ([`Project::narrow_to`]).
    narrowed: Option<String>,
    /// The env file (or placeholders) of the last environment resolved.
    env_file: Option<crate::load::Input>,
    /// Services the last render took from the memo unresolved.
    memoized: usize,
    /// Services whose units are not in the cache after the last render.
    uncached: Vec<String>,
    /// The memo of the environment this project was loaded to render,
    /// opened to validate its section (`resolve::memo`).
    memo: Option<(String, resolve::memo::ServiceMemo)>,
    /// The validity key of each entry of that section.
    validity: Vec<[u8; 32]>,
    /// Entries of that section found valid before, not validated again.
    entries_found_valid: usize,
}

/// Objects from which the checks of the whole render run on a thread of
/// their own while the objects are ordered.
const PARALLEL_CHECKS_FROM: usize = 1024;

/// Renders whose template output is larger than this (compact JSON) keep
/// no records of what post-processing made of their units: holding every
/// object's record and YAML document until the render is written would
/// cost as much memory again (a 20,000-service render is about 110 MB).
pub const RECORD_MAX_BYTES: usize = 64 << 20;

/// Environment variable that makes `render` print its stage timings.
pub const TIMINGS_VAR: &str = "CONTROLCENTER_TIMINGS";

/// How long one stage took.
#[derive(Clone, Copy, Debug)]
pub struct StageTiming {
    /// The stage (`load`, `evaluate`, ...).
    pub stage: &'static str,
    /// Its wall-clock time.
    pub took: Duration,
    /// Peak resident memory of the process once it ended, in KiB, when
    /// measured ([`TIMINGS_VAR`]) and the system says (Linux).
    pub peak_kib: Option<u64>,
}

/// The stages timed so far.
struct Timings {
    stages: Vec<StageTiming>,
    /// Whether to record peak memory too ([`TIMINGS_VAR`] is set).
    measure_peak: bool,
}

impl Timings {
    fn record(&mut self, stage: &'static str, took: Duration) {
        let peak_kib = if self.measure_peak { peak_kib() } else { None };
        self.stages.push(StageTiming {
            stage,
            took,
            peak_kib,
        });
    }
}

/// Peak resident memory of this process so far, in KiB (Linux).
pub fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Where a render's Terraform outputs came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TerraformOutputs {
    /// The environment's env-<env>.yaml.
    EnvFile,
    /// Placeholders built from the contract (described: its file, or the
    /// env files it was derived from), with each placeholder value by
    /// output path.
    Placeholders {
        /// The contract, for messages.
        contract: String,
        /// Each placeholder value by output path (sensitive ones left out).
        values: Vec<(String, serde_json::Value)>,
    },
}

/// Diagnostics of a failed step, with the files they point into.
pub struct Failure {
    /// Files the diagnostics refer to.
    pub sources: Sources,
    /// What went wrong (at least one error).
    pub diagnostics: Vec<Diagnostic>,
}

impl Project {
    /// Loads the repository and validates controlcenter.yaml, tags.yaml,
    /// secrets.yaml and the repository's policies. All problems at once.
    pub fn load(options: RenderOptions) -> Result<Project, Failure> {
        let start = Instant::now();
        // Every read of the run, loaders and templates alike, goes through
        // the guard: an input file's bytes only under its own name.
        let guard = Arc::new(InputGuard::of(options.repo.as_ref()));
        let repo: Arc<dyn RepoFiles> = Arc::new(Guarded::new(options.repo, guard.clone(), true));
        let lib: Arc<dyn RepoFiles> = Arc::new(Guarded::new(options.lib, guard, false));
        let mut sources = Sources::default();
        let fail = |sources, diagnostics| Failure {
            sources,
            diagnostics,
        };

        let verdicts = match (&options.env, &options.cache) {
            (Some(env), Some(cache)) => {
                crate::validate::verdicts::SectionVerdicts::new(repo.as_ref(), cache.clone(), env)
            }
            _ => None,
        };
        let leave_out = |_: &str, text: &str| {
            verdicts
                .as_ref()
                .map(|v| v.leave_out(text))
                .unwrap_or_default()
        };
        let inputs = match load::load_repo_leaving_out(repo.as_ref(), &mut sources, &leave_out) {
            Ok(i) => i,
            Err(d) => return Err(fail(sources, d)),
        };
        let loaded = start.elapsed();
        let loaded_peak = peak_kib().filter(|_| std::env::var_os(TIMINGS_VAR).is_some());
        // Entries of the section rendered found valid before are not
        // validated again (`resolve::memo`).
        let memo = match (&options.env, &options.cache) {
            (Some(env), Some(cache)) if options.services.is_none() => {
                resolve::memo::ServiceMemo::open(cache.clone(), &inputs, &sources, env)
                    .map(|m| (env.clone(), m))
            }
            _ => None,
        };
        let validity = memo
            .as_ref()
            .and_then(|(env, _)| resolve::memo::validity_keys(&inputs, &sources, env))
            .unwrap_or_default();
        let found_valid: Vec<bool> = match &memo {
            Some((_, m)) => validity.iter().map(|k| m.found_valid(k)).collect(),
            None => Vec::new(),
        };
        let known = memo
            .as_ref()
            .filter(|_| !validity.is_empty())
            .map(|(env, _)| (env.as_str(), found_valid.as_slice()));
        let validated = validate::repo(&inputs, &mut sources, known);
        let policies = rules::repo_policies::load(repo.as_ref(), &mut sources);
        let (schemas, policies) = match (validated, policies) {
            (Ok(s), Ok(p)) => (s, p),
            (s, p) => {
                let diagnostics = [s.err(), p.err()].into_iter().flatten().flatten().collect();
                return Err(fail(sources, diagnostics));
            }
        };
        // Left out of validation only when it goes in parts.
        let entries_found_valid = match schemas.validates_in_parts() {
            true => found_valid.iter().filter(|v| **v).count(),
            false => 0,
        };
        let mut project = Project {
            settings: Settings::from_inputs(&inputs),
            sources,
            inputs,
            schemas,
            policies,
            repo: repo.clone(),
            templates: Templates {
                repo,
                lib,
                limits: options.limits,
                workers: workers(options.workers),
                cache: options.cache,
            },
            default_namespace: options.default_namespace,
            services: options.services,
            units: UnitCounts::default(),
            timings: Timings {
                stages: Vec::new(),
                measure_peak: std::env::var_os(TIMINGS_VAR).is_some(),
            },
            contract: None,
            outputs: None,
            env_file: None,
            narrowed: None,
            memoized: 0,
            uncached: Vec::new(),
            entries_found_valid,
            memo,
            validity,
        };
        project.timings.stages.push(StageTiming {
            stage: "load",
            took: loaded,
            peak_kib: loaded_peak,
        });
        if let Some(verdicts) = &verdicts {
            verdicts.store(&project.inputs);
        }
        if let Some(env) = &options.env {
            project.narrow_to(env);
        }
        project.timings.record("validate", start.elapsed() - loaded);
        Ok(project)
    }

    /// Lets go of what only other environments' renders read: their
    /// sections of controlcenter.yaml, already validated, which are most
    /// of a large repository's tree. They are freed on a thread of their
    /// own, beside the render. The project renders `env` only from then.
    pub fn narrow_to(&mut self, env: &str) {
        let Value::Map(entries) = &mut self.inputs.controlcenter.root.value else {
            return;
        };
        let others: Vec<Value> = entries
            .iter_mut()
            .filter(|e| e.key != env && e.key != DEFAULTS_KEY && e.key != SETTINGS_KEY)
            .map(|e| std::mem::replace(&mut e.value.value, Value::Null))
            .collect();
        self.narrowed = Some(env.to_owned());
        crate::parallel::drop_beside(others);
    }

    /// Warnings about the repository's vendored Jsonnet libraries
    /// (jsonnet-bundler's `vendor/` against its lock file).
    pub fn check_vendor(&mut self) -> Vec<Diagnostic> {
        crate::validate::vendor::check(self.repo.as_ref(), &mut self.sources)
    }

    /// Environment names, in file order.
    pub fn envs(&self) -> Vec<String> {
        self.inputs
            .env_names()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// Renders `env`: resolve, evaluate, process, check. The resources
    /// are checked and sorted, ready to emit. The environment's env file
    /// must be present: placeholders never reach this output.
    pub fn render(&mut self, env: &str) -> Outcome<Vec<Resource>> {
        self.render_with(env, false).map(|(resources, _)| resources)
    }

    /// Renders `env`; with `placeholders`, an env file absent from this
    /// branch is replaced by typed placeholders from the contract (for
    /// `validate` and review, never for a cluster). Says which it used.
    pub fn render_with(
        &mut self,
        env: &str,
        placeholders: bool,
    ) -> Outcome<(Vec<Resource>, TerraformOutputs)> {
        let start = Instant::now();
        let memo = self.memo(env);
        // Every entry of the section was validated (or known valid): the
        // memo keeps them all.
        let mut validity = match &memo {
            Some((true, _)) => Some(std::mem::take(&mut self.validity)),
            _ => None,
        };
        let memo = memo.map(|(_, m)| m);
        let (mut resolved, outputs) = self.resolve_using(env, placeholders, memo.as_ref())?;
        self.timings.record("resolve", start.elapsed());
        self.memoized = resolved.memoized.len();
        let rendered = self.render_resolved(&resolved);
        if let (Some(memo), Ok(_)) = (&memo, &rendered) {
            // A service whose unit is not in the cache is not memoized: its
            // unit may never be (it holds a secret in clear), and every
            // render would then resolve them all again.
            let uncached: std::collections::HashSet<[u8; 32]> = self
                .uncached
                .iter()
                .filter_map(|k| resolved.digests.get(k).copied())
                .collect();
            memo.store(
                &mut resolved.memo_entries,
                &uncached,
                validity.as_deref_mut(),
            );
        }
        self.outputs = None;
        // The state of thousands of services is freed beside what follows
        // (writing the output), not before it.
        crate::parallel::drop_beside(resolved);
        match (rendered, &outputs) {
            (Ok(resources), _) => Ok((resources, outputs)),
            (Err(d), TerraformOutputs::Placeholders { contract, .. }) => Err(d
                .into_iter()
                .map(|d| {
                    d.note(format!(
                        "`{env}` was rendered with placeholder Terraform outputs from {contract} ({} is not on this branch)",
                        env_file_name(env)
                    ))
                })
                .collect()),
            (Err(d), TerraformOutputs::EnvFile) => Err(d),
        }
    }

    /// How long each stage of this project's renders took, in order
    /// (`load`, `validate`, then per render `resolve`, `evaluate`,
    /// `process`, `check`).
    pub fn timings(&self) -> &[StageTiming] {
        &self.timings.stages
    }

    /// Validates `env`'s env-<env>.yaml and resolves `env` into the state
    /// the library receives.
    pub fn resolve(&mut self, env: &str) -> Outcome<ResolvedEnv> {
        self.resolve_with(env, false).map(|(resolved, _)| resolved)
    }

    /// Resolves `env`; with `placeholders`, against typed placeholders
    /// from the contract when its env file is not on this branch.
    pub fn resolve_with(
        &mut self,
        env: &str,
        placeholders: bool,
    ) -> Outcome<(ResolvedEnv, TerraformOutputs)> {
        self.resolve_using(env, placeholders, None)
    }

    /// What services of `env` resolved to in earlier renders, when this
    /// render can use it (every service rendered per service, with a cache
    /// to find their units in), and whether it is the one opened at load
    /// to validate `env`'s section (whose validity keys the project holds).
    fn memo(&mut self, env: &str) -> Option<(bool, resolve::memo::ServiceMemo)> {
        let cache = self.templates.cache.clone()?;
        if self.services.is_some() || self.settings.evaluation != Evaluation::PerService {
            return None;
        }
        match self.memo.take() {
            Some((opened_for, memo)) if opened_for == env => Some((true, memo)),
            _ => resolve::memo::ServiceMemo::open(cache, &self.inputs, &self.sources, env)
                .map(|m| (false, m)),
        }
    }

    /// [`Self::resolve_with`], leaving unresolved the services whose
    /// inputs `memo` knows (none against placeholders: such a render is
    /// never cached).
    fn resolve_using(
        &mut self,
        env: &str,
        placeholders: bool,
        memo: Option<&resolve::memo::ServiceMemo>,
    ) -> Outcome<(ResolvedEnv, TerraformOutputs)> {
        if let Some(only) = self.narrowed.as_ref().filter(|only| *only != env) {
            return Err(vec![resolve::unknown_env(&self.inputs, env)
                .note(format!("this run renders `{only}` only"))]);
        }
        if self.inputs.controlcenter.root.get(env).is_none()
            || env == DEFAULTS_KEY
            || env == SETTINGS_KEY
        {
            return Err(vec![resolve::unknown_env(&self.inputs, env)]);
        }
        self.load_contract(false)?;
        let contract = self.contract.as_ref().and_then(|(_, c)| c.as_ref());
        let env_file = validate::env_file(
            self.repo.as_ref(),
            &self.schemas,
            contract,
            &mut self.sources,
            env,
        )?;
        if env_file.is_none() {
            if let Some(d) = validate::env_file_misnamed(self.repo.as_ref(), env) {
                return Err(vec![d]);
            }
        }
        if env_file.is_none() && placeholders {
            // No contract file: one derived from the env files present.
            self.load_contract(true)?;
        }
        let contract = self.contract.as_ref().and_then(|(_, c)| c.as_ref());
        let (env_file, outputs, source) = match (env_file, contract) {
            (Some(file), _) => {
                let source = OutputsSource {
                    file: file.path.clone(),
                    declared: contract.filter(|c| c.is_file()).map(Contract::describe),
                    span: Some(Span::new(
                        file.root.span.file,
                        file.root.span.start,
                        file.root.span.start,
                    )),
                    placeholders: false,
                };
                (file, TerraformOutputs::EnvFile, source)
            }
            (None, Some(contract)) if placeholders => {
                let made = contract.placeholders(&mut self.sources, env);
                let source = OutputsSource {
                    file: contract.describe(),
                    declared: Some(contract.describe()),
                    span: Some(contract.span()),
                    placeholders: true,
                };
                let outputs = TerraformOutputs::Placeholders {
                    contract: contract.describe(),
                    values: made.values,
                };
                (made.input, outputs, source)
            }
            (None, _) => {
                let mut d = validate::env_file_missing(&self.inputs, env);
                if placeholders {
                    d = d.note(format!(
                        "no Terraform-outputs contract to make placeholders from: add {} (or any env-<env>.yaml) to this branch",
                        crate::repo::layout::OUTPUTS_CONTRACT_FILE
                    ));
                }
                return Err(vec![d]);
            }
        };
        let memo = memo.filter(|_| !source.placeholders);
        let resolved = resolve::resolve_env(&resolve::ResolveInput {
            inputs: &self.inputs,
            env_file: &env_file,
            sources: &self.sources,
            settings: &self.settings,
            extra_fields: self.schemas.extra_service_fields(),
            secret_fields: self.schemas.secret_service_fields(),
            env,
            default_namespace: self.default_namespace.as_deref(),
            // A service's unit sees no other service's state (only its
            // name): per service, a selection resolves only what it renders.
            only: self
                .services
                .as_ref()
                .filter(|_| self.settings.evaluation == Evaluation::PerService),
            memo,
        })?;
        self.outputs = Some(source);
        self.env_file = Some(env_file);
        Ok((resolved, outputs))
    }

    /// The repository's Terraform-outputs contract: its file, else (with
    /// `derive`) one derived from the env files on this branch.
    fn load_contract(&mut self, derive: bool) -> Outcome<()> {
        let loaded = matches!(&self.contract, Some((d, c)) if *d || !derive || c.is_some());
        if !loaded {
            let envs = if derive { self.envs() } else { Vec::new() };
            let contract = outputs::load(self.repo.as_ref(), &mut self.sources, &envs)?;
            self.contract = Some((derive, contract));
        }
        Ok(())
    }

    /// Evaluates, processes and checks an already resolved environment.
    pub fn render_resolved(&mut self, resolved: &ResolvedEnv) -> Outcome<Vec<Resource>> {
        let unknown = self.unknown_services(resolved);
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let rendered = match self.evaluate_and_check(resolved, CacheUse::ReadWrite) {
            // Memoized services have no state to evaluate again with: the
            // render is made again from every service's (below).
            Err(_) if !resolved.memoized.is_empty() => Ok(None),
            // Problems are located in the templates that made the objects:
            // when cached units loaded none, evaluate them again to show
            // where. Should that pass, what the cache held was wrong: it is
            // stored again.
            Err(_) if self.units.cached > 0 => self.evaluate_and_check(resolved, CacheUse::Rewrite),
            result => result,
        }?;
        match rendered {
            Some(resources) => Ok(resources),
            // A memoized service must be evaluated after all (its unit is
            // not in the cache, or the render failed): every service is
            // resolved, and the render made again. (Services are memoized
            // only when the env file gave the Terraform outputs, so this
            // resolves against it too.)
            None => {
                self.memoized = 0;
                let (full, _) = self.resolve_with(&resolved.state.env, false)?;
                let rendered = self.render_resolved(&full);
                crate::parallel::drop_beside(full);
                rendered
            }
        }
    }

    /// Evaluates, processes and checks `resolved`; `Ok(None)` when
    /// memoized services need their state
    /// ([`crate::evaluate::RenderOutcome::NeedsState`]).
    fn evaluate_and_check(
        &mut self,
        resolved: &ResolvedEnv,
        cache: CacheUse,
    ) -> Outcome<Option<Vec<Resource>>> {
        let placeholders = self.outputs.as_ref().is_some_and(|o| o.placeholders);
        // What the checks depend on, for records: only with a cache.
        let verdicts = self.templates.cache.as_ref().map(|_| {
            rules::verdicts(
                &resolved.state.env,
                resolved.state.protected,
                &self.settings,
                &self.policies,
                &self.sources,
            )
        });
        let plan = Plan {
            evaluation: self.settings.evaluation,
            services: self.services.as_ref(),
            // Placeholder renders are never stored: no cached unit may
            // hold a made-up value.
            cache: if placeholders { CacheUse::Off } else { cache },
            outputs: self.outputs.as_ref(),
            verdicts: verdicts.as_deref(),
        };
        let start = Instant::now();
        let mut rendered = match self.templates.render(
            resolved,
            &self.inputs.controlcenter.root,
            &mut self.sources,
            plan,
        )? {
            crate::evaluate::RenderOutcome::Rendered(rendered) => rendered,
            crate::evaluate::RenderOutcome::NeedsState => return Ok(None),
        };
        self.units = rendered.units;
        self.uncached = std::mem::take(&mut rendered.uncached);
        self.timings.record("evaluate", start.elapsed());
        let start = Instant::now();
        let entry = self.entry_span();
        let service_spans = resolved.spans_by_name();
        let ctx = RenderContext {
            env: &resolved.state.env,
            protected: resolved.state.protected,
            settings: &self.settings,
            service_spans: &service_spans,
            entry,
            templates: &rendered.files,
            repo_policies: &self.policies,
        };
        // A unit's values are taken from its record when it has one.
        let bodies: Vec<Option<(Arc<crate::text::Buffer>, std::ops::Range<usize>)>> = rendered
            .records
            .iter_mut()
            .map(|unit| unit.found.take())
            .collect();
        let decoded = crate::parallel::map(&bodies, self.templates.workers, |body| {
            let (buf, range) = body.as_ref()?;
            process::record::decode(buf, range.clone())
        });
        let mut records: Vec<Option<Vec<process::CheckedObject>>> =
            Vec::with_capacity(rendered.output.len());
        for (unit, found) in rendered.records.iter().zip(decoded) {
            let Some(found) = found else {
                continue;
            };
            if found.len() == unit.values.len() {
                records.resize(unit.values.end, None);
                for (slot, record) in records[unit.values.clone()].iter_mut().zip(found) {
                    *slot = Some(record);
                }
            }
        }
        // What the render holds: the values evaluated or read, and the
        // records that stand for the others.
        let output_bytes: usize = rendered.output.iter().map(|(_, t)| t.len()).sum::<usize>()
            + bodies
                .iter()
                .flatten()
                .map(|(_, range)| range.len())
                .sum::<usize>();
        let keep_records = !rendered.records.is_empty() && output_bytes <= RECORD_MAX_BYTES;
        // Objects are checked as they are parsed, a share at a time; the
        // checks that need the whole render then run on what was kept of
        // them while the objects are ordered.
        let opts = process::ProcessOptions {
            env: &resolved.state.env,
            // A selection of services renders what they have, maybe nothing.
            allow_empty: self.services.is_some()
                || self.settings.allow_empty_envs.contains(&resolved.state.env),
            service_spans: &service_spans,
            entry,
            env_span: Some(resolved.env_span),
            per_service: self.settings.evaluation == Evaluation::PerService,
            workers: self.templates.workers,
            records: keep_records,
            // Records hold each object's YAML document (made once,
            // then taken from the cache).
            yaml: keep_records,
        };
        let mut processed = process::process_values(rendered.output, records, &opts, |objects| {
            rules::check_objects(objects, &ctx)
        });
        let kept = std::mem::take(&mut processed.kept);
        let whole = |stage| rules::check_render(stage, &kept, &ctx);
        // Beside a large ordering, the checks of the checks stage run too,
        // whether or not they will be reported (they are reported only
        // when nothing else is).
        let beside =
            processed.resources.len() >= PARALLEL_CHECKS_FROM && self.templates.workers > 1;
        let (at_process, at_check) = if beside {
            std::thread::scope(|s| {
                let checks = s.spawn(|| (whole(Stage::Process), Some(whole(Stage::Check))));
                process::finish(&mut processed.resources, &mut processed.problems, &opts);
                checks
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
        } else {
            process::finish(&mut processed.resources, &mut processed.problems, &opts);
            (whole(Stage::Process), None)
        };
        let (resources, mut diagnostics) = (processed.resources, processed.problems);
        diagnostics.extend(at_process);
        self.timings.record("process", start.elapsed());
        let start = Instant::now();
        if diagnostics.is_empty() {
            diagnostics.extend(processed.later);
            diagnostics.extend(at_check.unwrap_or_else(|| whole(Stage::Check)));
        }
        self.timings.record("check", start.elapsed());
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        self.store_records(resolved, &rendered.records, &processed.records);
        Ok(Some(resources))
    }

    /// Stores the records of the units of a clean render that had none,
    /// each once every value of its unit has one.
    fn store_records(
        &self,
        resolved: &ResolvedEnv,
        units: &[crate::evaluate::UnitRecord],
        made: &[Option<Vec<process::CheckedObject>>],
    ) {
        let Some(cache) = &self.templates.cache else {
            return;
        };
        // No record may hold a secret in clear, whatever the cache held
        // before the value became one.
        let secrets = crate::evaluate::unstorable_secrets(self.sources.secrets(), &resolved.state);
        // Encoded on every core a few hundred units at a time, written as
        // they come: never all held at once.
        let encode = |unit: &crate::evaluate::UnitRecord| {
            if unit.had_record {
                return None;
            }
            let values: Vec<&[process::CheckedObject]> = made
                .get(unit.values.clone())?
                .iter()
                .map(|r| r.as_deref())
                .collect::<Option<_>>()?;
            let body = String::from_utf8(process::record::encode(&values)).ok()?;
            if secrets.found_in(&body) {
                return None;
            }
            let record = crate::evaluate::cache::Record {
                array: unit.array,
                depends: unit.depends.clone(),
                values: unit.values.len(),
                body_range: 0..body.len(),
                body: crate::text::Buffer::string(body),
            };
            let bytes = crate::evaluate::cache::encode_record(&unit.key, &record)?;
            Some((unit.key.clone(), bytes))
        };
        let mut pack = units
            .chunks(512)
            .flat_map(|chunk| crate::parallel::map(chunk, self.templates.workers, encode))
            .flatten()
            .peekable();
        if pack.peek().is_some() {
            let _ = cache.write_pack(pack, &|bytes| secrets.found_in_bytes(bytes));
        }
    }

    /// Each selected service (`--service`) the environment does not have.
    fn unknown_services(&self, resolved: &ResolvedEnv) -> Vec<Diagnostic> {
        let Some(selected) = self.services.as_ref() else {
            return Vec::new();
        };
        let known = &resolved.state.services;
        selected
            .iter()
            .filter(|k| !known.contains_key(*k) && *k != ENVIRONMENT_OBJECTS)
            .map(|missing| {
                let d = Diagnostic::error(
                    Code::UnknownService,
                    format!(
                        "environment `{}` has no enabled service `{missing}`",
                        resolved.state.env
                    ),
                )
                .at(resolved.env_span, "in this environment");
                // Every enabled service, resolved or not, can be suggested.
                let closest = known
                    .keys()
                    .chain(&resolved.unresolved)
                    .map(|k| (strsim::jaro_winkler(k, missing), k))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                match closest {
                    Some((_, k)) => d.help(format!("did you mean `{k}`? `--service` takes a service key of controlcenter.yaml")),
                    None => d.help("`--service` takes the key of an enabled service of this environment in controlcenter.yaml, or `@environment` for the objects of no service"),
                }
            })
            .collect()
    }

    /// The env file (or its placeholders) of the last environment resolved.
    pub fn env_file(&self) -> Option<&crate::load::Input> {
        self.env_file.as_ref()
    }

    /// The templates this project renders with.
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// Sections of controlcenter.yaml that were neither parsed nor
    /// validated: other environments' whose exact text was found valid
    /// before (`validate::verdicts`).
    pub fn sections_found_valid_before(&self) -> usize {
        self.inputs.left_out.len()
    }

    /// Entries of the rendered environment's section found valid before
    /// (their text unchanged), not validated again (`resolve::memo`).
    pub fn entries_found_valid_before(&self) -> usize {
        self.entries_found_valid
    }

    /// Services the last render left unresolved, their inputs unchanged
    /// since a render that resolved them (`resolve::memo`).
    pub fn services_memoized(&self) -> usize {
        self.memoized
    }

    /// Units evaluated and taken from the cache by the last render.
    pub fn units(&self) -> UnitCounts {
        self.units
    }

    /// The start of the template entry point, registered for snippets:
    /// where problems of the rendered output as a whole are shown.
    pub fn entry_span(&mut self) -> Option<crate::diagnostics::Span> {
        self.templates.entry_span(&mut self.sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article() -> Project {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/controlcenter-examples/article"
        );
        let repo = crate::repo::WorkTree::open(std::path::Path::new(dir)).expect("the example");
        Project::load(RenderOptions::new(Arc::new(repo)))
            .unwrap_or_else(|_| panic!("the example loads"))
    }

    /// With a cache, a second load for one environment leaves the others'
    /// sections out of the tree (found valid by the first), yet still
    /// knows them, and renders the same.
    #[test]
    fn other_sections_found_valid_before_are_left_out_and_still_known() {
        let cache = tempfile::tempdir().expect("a cache directory");
        let load = || {
            let dir = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/controlcenter-examples/article"
            );
            let repo = crate::repo::WorkTree::open(std::path::Path::new(dir)).expect("the example");
            let mut options = RenderOptions::new(Arc::new(repo));
            options.cache = Some(Arc::new(Cache::new(cache.path().to_path_buf())));
            options.env = Some("prod".to_owned());
            Project::load(options).unwrap_or_else(|_| panic!("the example loads"))
        };
        let mut first = load();
        assert_eq!(first.sections_found_valid_before(), 0);
        let mut second = load();
        assert_eq!(second.sections_found_valid_before(), 2);
        assert_eq!(second.envs(), article().envs());
        let json = |resources: Vec<Resource>| -> Vec<String> {
            resources.iter().map(|r| r.json().to_owned()).collect()
        };
        assert_eq!(
            json(second.render("prod").unwrap_or_else(|_| panic!("renders"))),
            json(first.render("prod").unwrap_or_else(|_| panic!("renders")))
        );
        let Err(refused) = second.render("dev") else {
            panic!("a section left out was rendered");
        };
        assert!(refused[0]
            .notes
            .iter()
            .any(|n| n.contains("renders `prod` only")));
    }

    /// A project narrowed to one environment renders it as before, and
    /// refuses the others rather than render them from emptied sections.
    #[test]
    fn a_narrowed_project_renders_its_environment_only() {
        let json = |resources: Vec<Resource>| -> Vec<String> {
            resources.iter().map(|r| r.json().to_owned()).collect()
        };
        let whole = json(
            article()
                .render("dev")
                .unwrap_or_else(|_| panic!("renders")),
        );
        let mut narrowed = article();
        narrowed.narrow_to("dev");
        assert_eq!(
            json(narrowed.render("dev").unwrap_or_else(|_| panic!("renders"))),
            whole
        );
        let Err(refused) = narrowed.render("prod") else {
            panic!("prod was let go of");
        };
        assert_eq!(refused[0].code, Code::UnknownEnv);
        assert!(refused[0]
            .notes
            .iter()
            .any(|n| n.contains("renders `dev` only")));
        assert_eq!(narrowed.envs(), article().envs());
    }
}
