//! Evaluate: run the Jsonnet entry point on the resolved state.
//!
//! The entry is the repo's `jsonnet/main.jsonnet` when it exists, else the
//! library's `main.jsonnet`. Imports resolve next to the importing file,
//! then in the repo's `jsonnet/`, the repo root and the library, and
//! nowhere else. The state goes in as the top-level argument `state`.

pub mod blame;
pub mod cache;
pub mod engine;
pub mod imports;
pub mod library;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use foldhash::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic, FileId, Sources, Span};
use crate::load::yaml::Node;
use crate::redact::SecretValues;
use crate::repo::layout::JSONNET_PATH;
use crate::repo::RepoFiles;
use crate::resolve::{ResolvedEnv, ServiceState, State};
pub use cache::Cache;
pub use engine::{
    ArgValue, EvalFailure, EvalJob, Evaluated, FailureKind, FieldWriter, PathStep, TracedObject,
    UnitInput, UnitOutput,
};
use imports::Root;

/// The repo's own entry point, when it has one.
pub const REPO_ENTRY: &str = "jsonnet/main.jsonnet";

/// Bounds on evaluation. One deadline covers every evaluation of a
/// command (renders, re-runs that locate a failure, every environment of
/// `validate`): once it has passed, no evaluation starts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Maximum Jsonnet call depth.
    pub max_stack: usize,
    /// The time the whole command may take (for messages).
    pub timeout: Duration,
    /// When that time is up.
    pub deadline: Instant,
}

impl Limits {
    /// Limits whose deadline is `timeout` after `start`.
    pub fn new(max_stack: usize, timeout: Duration, start: Instant) -> Self {
        Limits {
            max_stack,
            timeout,
            deadline: start + timeout,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(500, Duration::from_secs(20), Instant::now())
    }
}

/// Largest template output accepted (JSON text, all units together): 1000
/// services render to 3 to 8 MB. (The memory limit bounds a render too.)
pub const MAX_OUTPUT_BYTES: usize = 512 * 1024 * 1024;

/// Most elements a template's top-level arrays may have, all units
/// together (about ten per service is usual; 20,000 services fit).
pub const MAX_OUTPUT_ITEMS: usize = 1_000_000;

/// Display prefix of library files in messages.
pub const LIB_LABEL: &str = "<lib>/";

/// How an environment's templates are evaluated (`settings.evaluation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Evaluation {
    /// One unit per service plus one for environment-level objects, in
    /// parallel and cached: a unit sees the environment and its own
    /// service only.
    #[default]
    PerService,
    /// The whole environment in one evaluation: for templates that need
    /// every service at once.
    Environment,
}

/// What `--service` names to select the environment-level objects
/// (SealedSecrets, `extraManifests`), which belong to no service.
pub const ENVIRONMENT_OBJECTS: &str = "@environment";

/// The field of the unit state that tells the library which objects a
/// unit renders (absent: all of them).
pub const UNIT_FIELD: &str = "unit";

/// The field of a service unit's state naming its service (a key of
/// `services`).
pub const UNIT_SERVICE_FIELD: &str = "unit_service";

/// Every enabled service's key, sorted: those resolved and those a
/// selection left unresolved. Every unit of a per-service render sees
/// them all as the names of `state.services`.
fn service_names(resolved: &ResolvedEnv) -> Arc<Vec<String>> {
    let mut names: Vec<String> = resolved
        .rendered_keys()
        .into_iter()
        .chain(&resolved.unresolved)
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    Arc::new(names)
}

/// The templates of a render: the repository's and the library's Jsonnet,
/// evaluated within limits.
#[derive(Clone)]
pub struct Templates {
    /// The repository (its `jsonnet/`, and its root).
    pub repo: Arc<dyn RepoFiles>,
    /// The library.
    pub lib: Arc<dyn RepoFiles>,
    /// Evaluation bounds.
    pub limits: Limits,
    /// Evaluation threads (at least 1).
    pub workers: usize,
    /// Where unit outputs are kept between runs, if anywhere.
    pub cache: Option<Arc<Cache>>,
}

/// What a render does with the evaluation cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// Neither read nor write it.
    Off,
    /// Take what it holds, store what is evaluated.
    ReadWrite,
    /// Evaluate every unit and store them all: what it holds was found
    /// wrong.
    Rewrite,
}

/// What to evaluate of one environment.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    /// Per service, or the whole environment at once.
    pub evaluation: Evaluation,
    /// Only these services' objects (service keys); `None` for everything.
    pub services: Option<&'a BTreeSet<String>>,
    /// What to do with the cache (when there is one).
    pub cache: CacheUse,
    /// Where `params.terraform` comes from, for a template that reads an
    /// output it lacks.
    pub outputs: Option<&'a OutputsSource>,
    /// What post-processing's checks depend on, when records of what it
    /// made of each unit are kept in the cache beside the unit's output.
    pub verdicts: Option<&'a str>,
}

/// Where an environment's Terraform outputs (`params.terraform`) come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputsSource {
    /// The env file, or the contract the placeholders come from.
    pub file: String,
    /// The contract file that declares the outputs, when there is one.
    pub declared: Option<String>,
    /// Where that is, for a related note.
    pub span: Option<Span>,
    /// Whether the outputs are placeholders.
    pub placeholders: bool,
}

/// What [`Templates::render`] came to.
pub enum RenderOutcome {
    /// The templates' output.
    Rendered(Rendered),
    /// Memoized services ([`ResolvedEnv::memoized`]), which have no state
    /// here, must be evaluated (their units are not in the cache) or
    /// explained (a unit failed).
    NeedsState,
}

/// What the templates made of one environment.
pub struct Rendered {
    /// Every value the templates returned, as compact JSON, with where it
    /// sits in the output (`[3]`, or `""` for a non-array result), in
    /// output order.
    pub output: Vec<(String, String)>,
    /// Every Jsonnet file the render loaded, registered for snippets.
    pub files: Vec<(FileId, Arc<str>)>,
    /// Units evaluated, and units taken from the cache.
    pub units: UnitCounts,
    /// Each unit's part of `output`, with its record when records are
    /// kept (empty otherwise).
    pub records: Vec<UnitRecord>,
    /// With a cache, the services whose units are not in it after this
    /// render (an output holding a secret in clear is never stored).
    pub uncached: Vec<String>,
}

/// One unit's values in a render's output, and where what post-processing
/// made of them is kept.
#[derive(Clone, Debug)]
pub struct UnitRecord {
    /// The unit's values in [`Rendered::output`].
    pub values: std::ops::Range<usize>,
    /// The key its record is stored under.
    pub key: String,
    /// Whether the unit evaluated to an array.
    pub array: bool,
    /// Repository files outside the template trees the unit loaded.
    pub depends: Vec<(String, String)>,
    /// The record found under it, if any, and where in that buffer it
    /// is: the unit's values are then empty, the record stands for them.
    pub found: Option<(Arc<crate::text::Buffer>, std::ops::Range<usize>)>,
    /// Whether a record was found (it needs no storing again).
    pub had_record: bool,
}

/// How much of a render was evaluated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnitCounts {
    /// Units evaluated now.
    pub evaluated: usize,
    /// Units whose output came from the cache.
    pub cached: usize,
}

/// One unit of a render: whose objects, and its input.
struct Unit {
    /// The service key, `None` for the environment-level unit (or the
    /// whole environment).
    service: Option<String>,
    input: UnitInput,
}

impl Templates {
    /// Evaluates the entry point on the resolved state, unit by unit. A
    /// failure is a diagnostic at the failing template, pointing at the
    /// input of the service that causes it when one does.
    pub fn render(
        &self,
        resolved: &ResolvedEnv,
        controlcenter: &Node,
        sources: &mut Sources,
        plan: Plan<'_>,
    ) -> Result<RenderOutcome, Vec<Diagnostic>> {
        // Which units, and their keys: hashed from the state itself, so
        // a hit builds no input (a warm render of thousands of units is
        // mostly this).
        let planned = planned_units(&resolved.rendered_keys(), plan);
        let names = service_names(resolved);
        let secrets = sources.secrets().clone();
        let cache = self.cache.as_ref().filter(|_| plan.cache != CacheUse::Off);
        // The call depth allowed is part of what evaluates a unit: a unit
        // that needs more than a later render allows fails then, cached or
        // not.
        let digest = cache
            .and_then(|_| cache::templates_digest(self.repo.as_ref(), self.lib.as_ref()))
            .map(|d| format!("{d} max-stack {}", self.limits.max_stack));
        let lib_dirs = self.lib.list_dirs("");
        let mut dependency_digests: BTreeMap<String, String> = BTreeMap::new();

        let keys: Vec<Option<String>> = match &digest {
            Some(d) => unit_keys(
                (&resolved.state, &resolved.digests),
                (plan.evaluation, &names),
                &planned,
                d,
                self.workers,
            ),
            None => vec![None; planned.len()],
        };
        // Records are kept when each value stays its unit's: not when a
        // whole-environment render is narrowed to some services.
        let verdicts = plan
            .verdicts
            .filter(|_| plan.evaluation == Evaluation::PerService || plan.services.is_none());
        // Hashed on every core when there are many (a thread costs more
        // than a few dozen hashes).
        let workers = if keys.len() < 256 { 1 } else { self.workers };
        let record_keys: Vec<Option<String>> = crate::parallel::map(&keys, workers, |k| {
            Some(cache::record_key(k.as_ref()?, verdicts?))
        });
        let wanted: HashSet<&str> = keys
            .iter()
            .chain(&record_keys)
            .flatten()
            .map(String::as_str)
            .collect();
        let packs = cache
            .filter(|_| plan.cache == CacheUse::ReadWrite && !wanted.is_empty())
            .map(|c| c.open(&wanted));
        // A unit's record stands for its output: a unit that has one reads
        // nothing else of the cache.
        let mut found_records = crate::parallel::map(&record_keys, self.workers, |key| {
            packs.as_ref()?.get_record(key.as_ref()?)
        });
        let entry_keys: Vec<Option<&String>> = keys
            .iter()
            .zip(&found_records)
            .map(|(key, record)| key.as_ref().filter(|_| record.is_none()))
            .collect();
        if let Some(packs) = &packs {
            for (key, record) in keys.iter().zip(&found_records) {
                if let (Some(key), Some(_)) = (key, record) {
                    packs.mark_used(key);
                }
            }
        }
        let looked_up = crate::parallel::map(&entry_keys, self.workers, |key| {
            let entry = packs.as_ref()?.get(key.as_ref()?)?;
            Some((entry.depends, entry.array, entry.items))
        });
        if let Some(packs) = &packs {
            packs.touch_used();
        }
        let mut outputs: Vec<Option<UnitOutput>> = vec![None; planned.len()];
        // Each unit's dependencies outside the template trees, and its
        // record's text, for the units in the cache.
        let mut unit_depends: Vec<Vec<(String, String)>> = vec![Vec::new(); planned.len()];
        let mut record_bodies: Vec<Option<(Arc<crate::text::Buffer>, std::ops::Range<usize>)>> =
            vec![None; planned.len()];
        let mut counts = UnitCounts::default();
        for (i, found) in looked_up.into_iter().enumerate() {
            let (depends, array, items, body) = match (found_records[i].take(), found) {
                (Some(record), _) => (
                    record.depends,
                    record.array,
                    vec![String::new(); record.values],
                    Some((record.body, record.body_range)),
                ),
                (None, Some((depends, array, items))) => (depends, array, items, None),
                (None, None) => continue,
            };
            let fresh = depends.iter().all(|(path, d)| {
                dependency_digests
                    .entry(path.clone())
                    .or_insert_with(|| cache::file_digest(self.repo.as_ref(), path))
                    == d
            });
            if fresh {
                counts.cached += 1;
                outputs[i] = Some(UnitOutput {
                    items,
                    values: Vec::new(),
                    array,
                });
                unit_depends[i] = depends;
                record_bodies[i] = body;
            }
        }
        let misses: Vec<usize> = (0..planned.len())
            .filter(|i| outputs[*i].is_none())
            .collect();
        let memoized = |i: &usize| {
            planned[*i]
                .as_ref()
                .is_some_and(|k| resolved.memoized.contains(k))
        };
        if misses.iter().any(memoized) {
            return Ok(RenderOutcome::NeedsState);
        }
        // Units whose output is in the cache: hits, and misses once stored.
        let mut in_cache: Vec<bool> = outputs.iter().map(Option::is_some).collect();
        let mut files = Vec::new();
        if !misses.is_empty() {
            counts.evaluated = misses.len();
            let mut job = self
                .job(&secrets, true)
                .map_err(|f| vec![diagnose(f, sources)])?;
            // Outputs stay text until process parses them a share at a
            // time: a render never holds every object parsed at once.
            job.keep_text = true;
            job.parse_values = false;
            // Inputs are built for the misses alone, in the order planned,
            // and go to the workers, which drop each once used: the state
            // is not held twice while the outputs pile up.
            let missed: BTreeSet<String> = misses
                .iter()
                .map(|&i| {
                    planned[i]
                        .clone()
                        .unwrap_or_else(|| ENVIRONMENT_OBJECTS.to_owned())
                })
                .collect();
            let inputs = plan_units(
                &resolved.state,
                Plan {
                    services: Some(&missed),
                    ..plan
                },
                &names,
                StateForm::Text,
            )
            .into_iter()
            .map(|u| u.input)
            .collect();
            // A render that evaluates most of its units is mostly a
            // churning heap: small pages suit it.
            if engine::small_pages_suit(misses.len(), planned.len()) {
                engine::use_small_pages();
            }
            let evaluated = engine::evaluate_units(job, inputs, self.workers);
            files = evaluated.files;
            let probed = evaluated.probed;
            let mut failed: Vec<(usize, EvalFailure)> = Vec::new();
            for (&i, result) in misses.iter().zip(evaluated.results) {
                match result {
                    Ok(out) => outputs[i] = Some(out),
                    Err(f) => failed.push((i, f)),
                }
            }
            // Explaining a failure reads the units' inputs again, every
            // service's.
            if !failed.is_empty() && !resolved.memoized.is_empty() {
                return Ok(RenderOutcome::NeedsState);
            }
            let units = if failed.is_empty() {
                Vec::new()
            } else {
                plan_units(&resolved.state, plan, &names, StateForm::Values)
            };
            // One mistake in a template fails every unit: say it once, and
            // blame a service only for what fails in some services alone.
            let mut failures: Vec<Diagnostic> = Vec::new();
            let mut said: BTreeSet<String> = BTreeSet::new();
            let service_units = units.iter().filter(|u| u.service.is_some()).count();
            for (i, f) in &failed {
                if !said.insert(f.message.clone()) {
                    continue;
                }
                let alike: Vec<&Unit> = failed
                    .iter()
                    .filter(|(_, g)| g.message == f.message)
                    .map(|(j, _)| &units[*j])
                    .collect();
                let of_services = alike.iter().all(|u| u.service.is_some())
                    && (alike.len() < service_units || service_units == 1);
                failures.push(self.explain_failure(
                    f.clone(),
                    &units[*i],
                    plan,
                    of_services,
                    resolved,
                    controlcenter,
                    sources,
                ));
            }
            if !failures.is_empty() {
                return Err(failures);
            }
            // Store what was evaluated, except outputs holding a secret in
            // clear: SealedSecret ciphertexts are made to be published.
            if let (Some(cache), Some(_)) = (cache, &digest) {
                let secrets = unstorable_secrets(&secrets, &resolved.state);
                // What was loaded, and where imports looked in vain first
                // (recorded absent: a file created there is a miss).
                let depends: Vec<(String, String)> = files
                    .iter()
                    .map(|(path, _)| path)
                    .chain(&probed)
                    .filter(|path| !cache::in_template_trees(path, LIB_LABEL, &lib_dirs))
                    .map(|path| {
                        let d = dependency_digests
                            .entry(path.clone())
                            .or_insert_with(|| cache::file_digest(self.repo.as_ref(), path))
                            .clone();
                        (path.clone(), d)
                    })
                    .collect();
                // One pack of what was evaluated, each output encoded as the
                // pack is written. Hits stay in their packs (older packs are
                // carried forward, not dropped).
                let pack = misses.iter().filter_map(|&i| {
                    let (key, out) = (keys[i].as_ref()?, outputs[i].as_ref()?);
                    if out.items.iter().any(|item| secrets.found_in(item)) {
                        return None;
                    }
                    let bytes = cache::encode_unit(key, out.array, &depends, &out.items)?;
                    in_cache[i] = true;
                    Some((key.clone(), bytes))
                });
                // A pack given up (over the bound, a full disk) stored none.
                if !cache.write_pack(pack, &|bytes| secrets.found_in_bytes(bytes)) {
                    misses.iter().for_each(|&i| in_cache[i] = false);
                }
                for &i in &misses {
                    if in_cache[i] {
                        unit_depends[i] = depends.clone();
                    }
                }
            }
        }

        let uncached = match cache {
            Some(_) => (0..planned.len())
                .filter(|i| !in_cache[*i])
                .filter_map(|i| planned[i].clone())
                .collect(),
            None => Vec::new(),
        };
        // The units' outputs, in order, as one output: the indices are
        // those of the whole environment's array.
        // Sized once: grown by doubling, each step would copy the whole
        // and take fresh memory (thousands of units).
        let mut output = Vec::with_capacity(outputs.iter().flatten().map(|o| o.items.len()).sum());
        let mut records = Vec::with_capacity(outputs.iter().flatten().count());
        let mut index = 0;
        // A whole-environment render narrowed to some services picks
        // each object by its owner.
        let owners = plan
            .services
            .filter(|_| plan.evaluation == Evaluation::Environment)
            .map(|selected| (owners_by_name(&resolved.state), selected));
        for (i, out) in outputs.into_iter().enumerate() {
            let Some(out) = out else { continue };
            let (first, array) = (output.len(), out.array);
            for item in out.items {
                let path = if out.array {
                    format!("[{index}]")
                } else {
                    String::new()
                };
                index += 1;
                if let Some((owners, selected)) = &owners {
                    if !serde_json::from_str(&item)
                        .is_ok_and(|value| of_selected(&value, owners, selected))
                    {
                        continue;
                    }
                }
                output.push((path, item));
            }
            // A record is kept only beside the unit's output: a unit
            // that is not in the cache is evaluated again anyway.
            if let (Some(key), true) = (&record_keys[i], in_cache[i]) {
                records.push(UnitRecord {
                    values: first..output.len(),
                    key: key.clone(),
                    array,
                    depends: std::mem::take(&mut unit_depends[i]),
                    had_record: record_bodies[i].is_some(),
                    found: record_bodies[i].take(),
                });
            }
        }
        let files = files
            .into_iter()
            .map(|(path, text)| (sources.add(path, text.clone()), text))
            .collect();
        Ok(RenderOutcome::Rendered(Rendered {
            output,
            files,
            units: counts,
            records,
            uncached,
        }))
    }

    /// A unit's failure as a diagnostic, at the service that causes it.
    fn explain_failure(
        &self,
        f: EvalFailure,
        unit: &Unit,
        plan: Plan<'_>,
        of_one_service: bool,
        resolved: &ResolvedEnv,
        controlcenter: &Node,
        sources: &mut Sources,
    ) -> Diagnostic {
        let culprit = match (&unit.service, plan.evaluation, &f.kind) {
            // Which unit was running when time ran out says nothing.
            (_, _, FailureKind::Timeout) => None,
            (Some(key), Evaluation::PerService, _) if of_one_service => Some(key.clone()),
            (_, Evaluation::Environment, FailureKind::Runtime) => {
                blame::culprit_service(resolved, |keys| {
                    let mut state = resolved.state.clone();
                    state.services.retain(|k, _| keys.contains(k));
                    matches!(self.run_whole(&state, sources.secrets()), Err(g) if g.message == f.message)
                })
            }
            _ => None,
        };
        let other = match plan.evaluation {
            Evaluation::PerService => reads_other_service(&f, unit.service.as_deref(), resolved),
            Evaluation::Environment => None,
        };
        let missing = plan.outputs.and_then(|o| {
            self.missing_output(&f, unit, resolved)
                .map(|name| (o, name))
        });
        let mut d = diagnose(f, sources);
        if let Some((outputs, name)) = missing {
            d = missing_output_diagnostic(d, outputs, &name, &resolved.state);
        }
        if let Some(other) = other {
            let note = match &unit.service {
                Some(_) => format!(
                    "`{other}` is another service: with per-service evaluation, a service's templates see the environment, that service, and the other services' names only"
                ),
                None => "with per-service evaluation, environment-level objects (SealedSecrets, extraManifests) see the environment and the services' names only".to_owned(),
            };
            d = d.note(note).help(
                "read only `svc` and the environment (a unit's own service is `state.services[state.unit_service]`), or set `settings.evaluation: environment` in controlcenter.yaml to evaluate every service at once",
            );
        }
        match culprit {
            Some(key) => {
                let failing = d.primary.as_ref().and_then(|p| {
                    let s = p.span;
                    sources
                        .get(s.file)
                        .text
                        .get(s.start..s.end)
                        .map(str::to_owned)
                });
                blame::point_at_service(d, failing.as_deref(), resolved, controlcenter, &key)
            }
            None => d,
        }
    }

    /// The Terraform output a failure reads that `params.terraform` does
    /// not have: the unit's failure goes away (or changes) once the output
    /// is there.
    fn missing_output(
        &self,
        f: &EvalFailure,
        unit: &Unit,
        resolved: &ResolvedEnv,
    ) -> Option<String> {
        if f.kind != FailureKind::Runtime {
            return None;
        }
        let name = f.message.lines().next()?.strip_prefix("no such field: ")?;
        let terraform = resolved.state.params.get("terraform")?.as_object()?;
        if terraform.contains_key(name) {
            return None;
        }
        let mut shared = (*unit.input.shared).clone();
        let params = shared.get_mut("params")?.as_object_mut()?;
        let outputs = params.get_mut("terraform")?.as_object_mut()?;
        outputs.insert(
            name.to_owned(),
            Json::from(format!("{}:{name}", crate::validate::outputs::PLACEHOLDER)),
        );
        let input = UnitInput {
            shared: Arc::new(shared),
            ..unit.input.clone()
        };
        let job = self.job(&SecretValues::default(), false).ok()?;
        let again = engine::evaluate_units(job, vec![input], 1).results.pop()?;
        match again {
            Err(g) if g.message == f.message => None,
            _ => Some(name.to_owned()),
        }
    }

    /// The input of the unit that renders `service`'s objects (`None`: the
    /// environment-level objects), as a render evaluates it.
    pub fn unit_input(
        &self,
        resolved: &ResolvedEnv,
        evaluation: Evaluation,
        service: Option<&str>,
    ) -> Option<UnitInput> {
        let selected = service.map_or(ENVIRONMENT_OBJECTS, |s| s).to_owned();
        let services = BTreeSet::from([selected]);
        let plan = Plan {
            evaluation,
            services: Some(&services),
            cache: CacheUse::Off,
            outputs: None,
            verdicts: None,
        };
        plan_units(
            &resolved.state,
            plan,
            &service_names(resolved),
            StateForm::Values,
        )
        .into_iter()
        .next()
        .map(|u| u.input)
    }

    /// Evaluates one unit with field locations tracked: the output objects
    /// `pick` chooses, each with where its leaves are written, and how many
    /// objects the unit returned.
    pub fn trace(
        &self,
        input: UnitInput,
        pick: Arc<dyn Fn(&Json) -> bool + Send + Sync>,
        sources: &mut Sources,
    ) -> Result<Vec<TracedObject>, Diagnostic> {
        let job = self
            .job(sources.secrets(), false)
            .map_err(|f| diagnose(f, sources))?;
        let (objects, files) =
            engine::trace_objects(job, input, pick).map_err(|f| diagnose(f, sources))?;
        for (path, text) in files {
            sources.add(path, text);
        }
        Ok(objects)
    }

    /// Evaluates units silently, on this render's workers (for comparing
    /// outputs).
    pub fn evaluate_inputs(
        &self,
        inputs: Vec<UnitInput>,
        secrets: &SecretValues,
    ) -> Vec<Result<UnitOutput, EvalFailure>> {
        match self.job(secrets, false) {
            Ok(job) => engine::evaluate_units(job, inputs, self.workers).results,
            Err(f) => inputs.iter().map(|_| Err(f.clone())).collect(),
        }
    }

    /// Evaluates the whole environment of `state` in one unit, silently
    /// (for locating a failure).
    fn run_whole(&self, state: &State, secrets: &SecretValues) -> Result<UnitOutput, EvalFailure> {
        let job = self.job(secrets, false)?;
        let Json::Object(fields) = state_json(state) else {
            return Ok(UnitOutput::default());
        };
        let input = UnitInput {
            shared: Arc::new(fields),
            own: Arc::default(),
            service_text: None,
            withheld: Vec::new(),
            service_names: None,
        };
        engine::evaluate_units(job, vec![input], 1)
            .results
            .pop()
            .unwrap_or_else(|| Ok(UnitOutput::default()))
    }

    /// The evaluation of the entry point, without its top-level argument.
    fn job(&self, secrets: &SecretValues, trace: bool) -> Result<EvalJob, EvalFailure> {
        // A repo entry point that exists but cannot be read is an error:
        // falling back to the library would silently drop what it adds.
        let entry = match self.repo.read(REPO_ENTRY) {
            Ok(Some(_)) => (0, REPO_ENTRY.to_owned()),
            Ok(None) => (1, library::LIB_ENTRY.to_owned()),
            Err(e) => {
                return Err(EvalFailure {
                    kind: FailureKind::Unreadable,
                    message: format!("cannot read {REPO_ENTRY}: {e}"),
                    frames: vec![engine::Frame {
                        desc: "the repository's entry point".to_owned(),
                        location: Some(engine::FrameLocation {
                            path: REPO_ENTRY.to_owned(),
                            code: "".into(),
                            start: 0,
                            end: 0,
                        }),
                    }],
                })
            }
        };
        Ok(EvalJob {
            roots: vec![
                Root {
                    label: String::new(),
                    files: self.repo.clone(),
                    hides_inputs: true,
                },
                Root {
                    label: LIB_LABEL.to_owned(),
                    files: self.lib.clone(),
                    hides_inputs: false,
                },
            ],
            jpaths: JSONNET_PATH
                .iter()
                .map(|dir| (0, (*dir).to_owned()))
                .chain([(0, String::new()), (1, String::new())])
                .collect(),
            entry,
            tla: Vec::new(),
            ext: Vec::new(),
            max_stack: self.limits.max_stack,
            timeout: self.limits.timeout,
            deadline: self.limits.deadline,
            indent: 0,
            secrets: secrets.clone(),
            trace,
            keep_text: true,
            parse_values: true,
        })
    }

    /// The start of the entry point, registered for snippets: where
    /// problems of the rendered output as a whole are shown.
    pub fn entry_span(&self, sources: &mut Sources) -> Option<Span> {
        let (files, path, label) = match self.repo.read(REPO_ENTRY) {
            Ok(Some(_)) => (&self.repo, REPO_ENTRY, ""),
            _ => (&self.lib, library::LIB_ENTRY, LIB_LABEL),
        };
        let text = String::from_utf8(files.read(path).ok()??).ok()?;
        let id = sources.add(format!("{label}{path}"), text);
        Some(Span::new(id, 0, 0))
    }
}

/// The state as the library receives it: secret fields holding their
/// values. Never printed.
fn state_json(state: &State) -> Json {
    crate::redact::exposed(|| serde_json::to_value(state).unwrap_or_default())
}

/// The environment's part of the state: every field but `services` and
/// `sealed_secrets`, which units see apart.
#[derive(serde::Serialize)]
struct EnvironmentPart<'a> {
    env: &'a String,
    namespace: &'a String,
    protected: &'a bool,
    part_of: &'a String,
    params: &'a BTreeMap<String, Json>,
    labels: &'a BTreeMap<String, String>,
}

impl<'a> EnvironmentPart<'a> {
    fn of(state: &'a State) -> Self {
        // Listed field by field (no `..`): a field added to `State` must
        // be placed here or in a unit's own fields.
        let State {
            env,
            namespace,
            protected,
            part_of,
            params,
            services: _,
            sealed_secrets: _,
            labels,
        } = state;
        EnvironmentPart {
            env,
            namespace,
            protected,
            part_of,
            params,
            labels,
        }
    }
}

/// [`EnvironmentPart`] as the library receives it. Never printed.
fn environment_json(state: &State) -> serde_json::Map<String, Json> {
    match crate::redact::exposed(|| serde_json::to_value(EnvironmentPart::of(state))) {
        Ok(Json::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    }
}

/// The secret values the cache must never hold: every one the run has
/// seen but the environment's SealedSecret ciphertexts, which are made to
/// be published.
pub fn unstorable_secrets(seen: &SecretValues, state: &State) -> SecretValues {
    let mut ciphertexts = SecretValues::default();
    for s in state.sealed_secrets.values() {
        s.encrypted_data.values().for_each(|v| ciphertexts.add(v));
    }
    seen.without(&ciphertexts)
}

/// The units [`plan_units`] makes, in its order, without their inputs:
/// each one's service key (`None` for the environment-level unit, or the
/// whole environment).
fn planned_units(services: &[&String], plan: Plan<'_>) -> Vec<Option<String>> {
    if plan.evaluation == Evaluation::Environment {
        return vec![None];
    }
    let mut units: Vec<Option<String>> = services
        .iter()
        .filter(|k| plan.services.is_none_or(|s| s.contains(**k)))
        .map(|k| Some((*k).clone()))
        .collect();
    if plan
        .services
        .is_none_or(|s| s.contains(ENVIRONMENT_OBJECTS))
    {
        units.push(None);
    }
    units
}

/// The cache key of each planned unit, under the templates' digest; a
/// service's state is hashed by its digest, taken from `digests` where
/// known ([`crate::resolve::memo`]).
fn unit_keys(
    (state, digests): (&State, &foldhash::HashMap<String, [u8; 32]>),
    (evaluation, names): (Evaluation, &[String]),
    planned: &[Option<String>],
    templates: &str,
    workers: usize,
) -> Vec<Option<String>> {
    // The environment's part (Terraform outputs and all) is hashed once,
    // not once per unit. A part that cannot be written leaves its units
    // without a key: they are evaluated, not cached.
    let mut shared = Vec::new();
    let Ok(()) = write_environment_key_part(state, evaluation, names, &mut shared) else {
        return vec![None; planned.len()];
    };
    let shared = cache::digest(&shared);
    crate::parallel::map(planned, workers, |service| {
        cache::unit_key_with(templates, &mut |out| {
            out.write_all(shared.as_bytes())?;
            write_unit_key_part((state, digests), evaluation, service.as_deref(), out)
        })
    })
}

/// What every unit's key hashes of the state: the environment's part and
/// the services' names (per service), or the whole state (whole
/// environment). Serialized from
/// the state itself, secrets included (they are hashed), and which values
/// are secret ([`crate::redact::write_keyed`]).
fn write_environment_key_part(
    state: &State,
    evaluation: Evaluation,
    names: &[String],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if evaluation == Evaluation::Environment {
        crate::redact::write_keyed(state, out)
    } else {
        // Every unit sees every service's name.
        crate::redact::write_keyed(&(EnvironmentPart::of(state), names), out)
    }
}

/// What one unit's key hashes of the state besides the environment's
/// part: its service, or the SealedSecrets of the environment-level unit.
fn write_unit_key_part(
    (state, digests): (&State, &foldhash::HashMap<String, [u8; 32]>),
    evaluation: Evaluation,
    service: Option<&str>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if evaluation == Evaluation::Environment {
        return Ok(());
    }
    let Some(key) = service else {
        return crate::redact::write_keyed(&("environment", &state.sealed_secrets), out);
    };
    // A service's state is hashed by its digest: a memoized service has
    // that alone.
    let digest = match digests.get(key) {
        Some(d) => *d,
        None => state
            .services
            .get(key)
            .and_then(|svc| crate::resolve::memo::service_digest(key, svc))
            .ok_or_else(|| std::io::Error::other("a service without a state"))?,
    };
    out.write_all(b"service ")?;
    out.write_all(&digest)
}

/// How a unit's service state is handed over.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum StateForm {
    /// As a JSON value in `own` (what explaining a unit changes).
    Values,
    /// As compact JSON text ([`UnitInput::service_text`]): what a render
    /// evaluates.
    Text,
}

/// The units of a render. Per service: one per (selected) service, in key
/// order, then the environment-level unit (unless services are selected).
/// Whole environment: one unit with the full state.
fn plan_units(
    state: &State,
    plan: Plan<'_>,
    names: &Arc<Vec<String>>,
    form: StateForm,
) -> Vec<Unit> {
    if plan.evaluation == Evaluation::Environment {
        let Json::Object(base) = state_json(state) else {
            return Vec::new();
        };
        // Every service stays visible (selected ones' objects are picked
        // from the output).
        return vec![Unit {
            service: None,
            input: UnitInput {
                shared: Arc::new(base),
                own: Arc::default(),
                service_text: None,
                withheld: Vec::new(),
                service_names: None,
            },
        }];
    }
    // Each service's state is serialized on its own, on every core, and
    // only for the services rendered.
    let selected: Vec<(&String, &ServiceState)> = state
        .services
        .iter()
        .filter(|(k, _)| plan.services.is_none_or(|s| s.contains(*k)))
        .collect();
    let services = crate::parallel::map(&selected, crate::parallel::cores(), |(_, svc)| {
        crate::redact::exposed(|| match form {
            StateForm::Values => (Some(serde_json::to_value(svc).unwrap_or_default()), None),
            StateForm::Text => (None, Some(serde_json::to_string(svc).unwrap_or_default())),
        })
    });
    let shared = Arc::new(environment_json(state));
    let mut units: Vec<Unit> = selected
        .into_iter()
        .zip(services)
        .map(|((key, _), (value, text))| Unit {
            input: UnitInput {
                shared: shared.clone(),
                own: Arc::new(
                    [
                        (UNIT_FIELD.to_owned(), Json::from("service")),
                        (UNIT_SERVICE_FIELD.to_owned(), Json::from(key.as_str())),
                    ]
                    .into_iter()
                    .chain(value.map(|svc| {
                        (
                            "services".to_owned(),
                            Json::Object([(key.clone(), svc)].into_iter().collect()),
                        )
                    }))
                    .collect(),
                ),
                service_text: text.map(|text| (key.clone(), text)),
                withheld: vec![(
                    "sealed_secrets".to_owned(),
                    "state.sealed_secrets is not visible to a service's objects: with per-service evaluation, a service's templates see the environment, that service and the other services' names only; set `settings.evaluation: environment` to evaluate every service at once".to_owned(),
                )],
                service_names: Some(names.clone()),
            },
            service: Some(key.clone()),
        })
        .collect();
    if plan
        .services
        .is_none_or(|s| s.contains(ENVIRONMENT_OBJECTS))
    {
        units.push(Unit {
            service: None,
            input: UnitInput {
                shared,
                own: Arc::new(vec![
                    (UNIT_FIELD.to_owned(), Json::from("environment")),
                    (
                        "sealed_secrets".to_owned(),
                        crate::redact::exposed(|| {
                            serde_json::to_value(&state.sealed_secrets).unwrap_or_default()
                        }),
                    ),
                ]),
                service_text: None,
                withheld: Vec::new(),
                service_names: Some(names.clone()),
            },
        });
    }
    units
}

/// Each service's key by its name (`app.kubernetes.io/name` of its
/// objects).
fn owners_by_name(state: &State) -> std::collections::HashMap<&str, &str> {
    state
        .services
        .iter()
        .map(|(key, s)| (s.name.as_str(), key.as_str()))
        .collect()
}

/// Whether an object of a whole-environment render is selected: a
/// service's object (its `app.kubernetes.io/name` label names the service)
/// when that service is, any other object when the environment-level
/// objects are. So every object belongs to exactly one selection, and
/// one Application per selection drops none.
fn of_selected(
    value: &Json,
    owners: &std::collections::HashMap<&str, &str>,
    selected: &BTreeSet<String>,
) -> bool {
    let owner = crate::process::at(value, &["metadata", "labels"])
        .and_then(|l| l.get("app.kubernetes.io/name"))
        .and_then(Json::as_str)
        .and_then(|name| owners.get(name));
    match owner {
        Some(key) => selected.contains(*key),
        None => selected.contains(ENVIRONMENT_OBJECTS),
    }
}

/// The other service whose state a unit's failure reads (`own`: the
/// unit's service, if any).
fn reads_other_service(
    f: &EvalFailure,
    own: Option<&str>,
    resolved: &ResolvedEnv,
) -> Option<String> {
    resolved
        .state
        .services
        .keys()
        .chain(&resolved.unresolved)
        .filter(|k| Some(k.as_str()) != own)
        .find(|k| {
            f.message
                .contains(&format!("{}`{k}` is not visible", engine::OTHER_SERVICE))
        })
        .cloned()
}

/// A failure to read a Terraform output, said as such: at the template
/// line that reads it, naming the contract or env file that lacks it.
fn missing_output_diagnostic(
    mut d: Diagnostic,
    outputs: &OutputsSource,
    name: &str,
    state: &State,
) -> Diagnostic {
    let sensitive = state
        .params
        .get("sensitive_outputs")
        .and_then(Json::as_array)
        .is_some_and(|s| s.iter().any(|n| n.as_str() == Some(name)));
    d.code = Code::UndeclaredOutput;
    let (message, help) = if sensitive {
        (
            format!("the template reads the sensitive Terraform output `{name}`"),
            "sensitive outputs never reach templates (or manifests); read the secret from the cluster, e.g. with an ExternalSecret".to_owned(),
        )
    } else if outputs.placeholders {
        (
            format!(
                "the template reads the Terraform output `{name}`, which {} does not declare",
                outputs.file
            ),
            format!(
                "declare `{name}` in {} (with an `examples` value if its shape matters), or read only declared outputs",
                crate::repo::layout::OUTPUTS_CONTRACT_FILE
            ),
        )
    } else {
        (
            format!(
                "the template reads the Terraform output `{name}`, which {} does not have",
                outputs.file
            ),
            match &outputs.declared {
                Some(contract) => format!("add `{name}` to the Terraform stack's outputs and declare it in {contract}, or read it with std.get(state.params.terraform, '{name}', <default>)"),
                None => format!("add `{name}` to the Terraform stack's outputs, or read it with std.get(state.params.terraform, '{name}', <default>)"),
            },
        )
    };
    d.message = message;
    d.help = Some(help);
    if let Some(span) = outputs.span {
        d = d.related(span, "the Terraform outputs come from here");
    }
    d
}

/// Most frames shown under a Jsonnet error.
const MAX_FRAMES: usize = 12;

/// A Jsonnet failure as a diagnostic located at the innermost frame that
/// has a place in a file.
pub fn diagnose(f: EvalFailure, sources: &mut Sources) -> Diagnostic {
    let (code, help) = match f.kind {
        FailureKind::Runtime => (
            Code::JsonnetError,
            "fix the template, or the input value it reports on",
        ),
        FailureKind::ImportDenied => (
            Code::ImportDenied,
            "templates may import only files of the repository and the library",
        ),
        FailureKind::StackOverflow => (
            Code::JsonnetLimit,
            "look for unbounded recursion; raise --max-stack only if the depth is legitimate",
        ),
        FailureKind::OutputTooLarge => (
            Code::JsonnetLimit,
            "look for a comprehension that multiplies objects; no environment needs this much output",
        ),
        FailureKind::ImportNotFound => (
            Code::JsonnetError,
            "check the path: an import resolves next to the importing file, then along the search path noted above",
        ),
        FailureKind::TooDeep => (
            Code::JsonnetLimit,
            "flatten the expression; no template needs this nesting",
        ),
        FailureKind::Unreadable => (
            Code::FileUnreadable,
            "Jsonnet files are UTF-8 text inside the repository, within the size limit",
        ),
        FailureKind::Timeout => (
            Code::JsonnetLimit,
            "look for unbounded recursion or very large comprehensions; raise --timeout only if the work is legitimate",
        ),
    };
    // Scrubbed whole, before it is split into lines: a secret of several
    // lines would escape a per-line scrub.
    let scrubbed = sources.secrets().scrub(&f.message);
    let first = scrubbed.lines().next().unwrap_or("Jsonnet error");
    // The code already says it is a Jsonnet error.
    let message = first
        .strip_prefix("runtime error: ")
        .unwrap_or(first)
        .to_owned();
    let mut d = Diagnostic::error(code, message).help(help);
    for line in scrubbed.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        d = d.note(line.trim().to_owned());
    }
    // Frames below the primary, consecutive repeats folded (recursion).
    let mut stack: Vec<(String, usize)> = Vec::new();
    for frame in &f.frames {
        let Some(loc) = &frame.location else {
            continue;
        };
        if loc.path.contains("<inline code>") {
            continue;
        }
        let file = sources.add(loc.path.clone(), loc.code.clone());
        let span = Span::new(file, loc.start, loc.end);
        if d.primary.is_none() {
            d = d.at(span, frame.desc.clone());
            continue;
        }
        let (line, col) = sources.line_col(file, loc.start);
        let text = format!("at {}:{line}:{col}: {}", loc.path, frame.desc);
        match stack.last_mut() {
            Some((last, n)) if *last == text => *n += 1,
            _ => stack.push((text, 1)),
        }
    }
    let hidden = stack.len().saturating_sub(MAX_FRAMES);
    for (text, n) in stack.into_iter().take(MAX_FRAMES) {
        d = d.note(if n > 1 {
            format!("{text} (×{n})")
        } else {
            text
        });
    }
    if hidden > 0 {
        d = d.note(format!("… {hidden} more frames"));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Project, RenderOptions};

    /// Every unit of a per-service render, without cache.
    fn every_service() -> Plan<'static> {
        Plan {
            evaluation: Evaluation::PerService,
            services: None,
            cache: CacheUse::Off,
            outputs: None,
            verdicts: None,
        }
    }

    /// The platform example's `dev`, resolved.
    fn platform_dev() -> ResolvedEnv {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/controlcenter-examples/platform"
        );
        let repo = crate::repo::WorkTree::open(std::path::Path::new(dir)).expect("the example");
        let mut project = Project::load(RenderOptions::new(Arc::new(repo)))
            .unwrap_or_else(|_| panic!("the example loads"));
        project
            .resolve("dev")
            .unwrap_or_else(|_| panic!("the example resolves"))
    }

    /// A unit's key changes with what the unit sees, and only then.
    #[test]
    fn unit_keys_change_with_what_each_unit_sees() {
        let state = platform_dev().state;
        let plan = every_service();
        let planned = planned_units(&state.services.keys().collect::<Vec<_>>(), plan);
        let names: Vec<String> = state.services.keys().cloned().collect();
        let keys = |state: &State, evaluation| {
            let names: Vec<String> = state.services.keys().cloned().collect();
            unit_keys(
                (state, &foldhash::HashMap::default()),
                (evaluation, &names),
                &planned,
                "t",
                2,
            )
        };
        let base = keys(&state, Evaluation::PerService);
        assert_eq!(base.len(), state.services.len() + 1);
        assert_eq!(base.iter().collect::<HashSet<_>>().len(), base.len());
        assert_eq!(keys(&state, Evaluation::PerService), base);

        // One service's replicas: its unit alone.
        let first = state.services.keys().next().cloned().unwrap();
        let mut one = state.clone();
        one.services.get_mut(&first).unwrap().replicas += 1;
        let changed: Vec<bool> = keys(&one, Evaluation::PerService)
            .iter()
            .zip(&base)
            .map(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.iter().filter(|c| **c).count(), 1);
        assert!(changed[0]);

        // An environment parameter: every unit. A SealedSecret: the
        // environment's unit alone.
        let mut env = state.clone();
        env.params.insert("x".into(), Json::from(1));
        assert!(keys(&env, Evaluation::PerService)
            .iter()
            .zip(&base)
            .all(|(a, b)| a != b));
        let mut sealed = state.clone();
        let secret = sealed.sealed_secrets.values_mut().next().unwrap();
        secret.encrypted_data.insert("k".into(), "v".into());
        let changed: Vec<bool> = keys(&sealed, Evaluation::PerService)
            .iter()
            .zip(&base)
            .map(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            (0..base.len())
                .map(|i| i == base.len() - 1)
                .collect::<Vec<_>>()
        );

        // A field that turns secret with the same value: its unit's key.
        let mut plain = state.clone();
        let mut secret = state.clone();
        let field = |s: &mut State, v| {
            s.services
                .get_mut(&first)
                .unwrap()
                .extra
                .insert("x".into(), v);
        };
        field(
            &mut plain,
            crate::redact::MaybeSecret::Plain(Json::from("v")),
        );
        field(
            &mut secret,
            crate::redact::MaybeSecret::Secret(crate::redact::Secret::new(Json::from("v"))),
        );
        assert_ne!(
            keys(&plain, Evaluation::PerService)[0],
            keys(&secret, Evaluation::PerService)[0]
        );
        assert_eq!(
            keys(&plain, Evaluation::PerService)[1..],
            keys(&secret, Evaluation::PerService)[1..]
        );

        // The services' names (a service added, or removed): every unit,
        // as each sees them.
        let mut more = names.clone();
        more.push("zz_new".to_owned());
        let renamed = unit_keys(
            (&state, &foldhash::HashMap::default()),
            (Evaluation::PerService, &more),
            &planned,
            "t",
            2,
        );
        assert!(renamed.iter().zip(&base).all(|(a, b)| a != b));

        // Whole environment: one key, which any change moves.
        let whole = |state: &State| {
            unit_keys(
                (state, &foldhash::HashMap::default()),
                (Evaluation::Environment, &names),
                &[None],
                "t",
                1,
            )
        };
        assert_ne!(whole(&state), whole(&one));
        assert_ne!(whole(&state), whole(&sealed));
    }

    /// A unit's input put back together is the whole state: no field of
    /// `State` is lost or added by splitting it into units.
    #[test]
    fn units_split_the_state_without_losing_a_field() {
        let resolved = platform_dev();
        let state = &resolved.state;
        assert!(state.services.len() > 1 && !state.sealed_secrets.is_empty());
        let plan = every_service();
        let mut whole = serde_json::Map::new();
        let mut services = serde_json::Map::new();
        for unit in plan_units(state, plan, &service_names(&resolved), StateForm::Values) {
            whole.extend(unit.input.shared.as_ref().clone());
            for (name, value) in unit.input.own.iter() {
                match (name.as_str(), value) {
                    (UNIT_FIELD | UNIT_SERVICE_FIELD, _) => {}
                    ("services", Json::Object(one)) => services.extend(one.clone()),
                    _ => {
                        whole.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        whole.insert("services".to_owned(), Json::Object(services));
        assert_eq!(Json::Object(whole), state_json(state));
    }
}
