//! Repository settings: the `settings:` section of controlcenter.yaml,
//! read once and defaulted. Every stage that needs a setting takes this
//! value; nothing else reads `settings:`.

use std::collections::{BTreeMap, BTreeSet};

use crate::evaluate::Evaluation;
use crate::load::yaml::{Node, Value};
use crate::load::RepoInputs;
use crate::load::SETTINGS_KEY;

/// `app.kubernetes.io/part-of` when `settings.part_of` is unset. A fixed
/// value: the checkout directory's name would change between Argo CD
/// refreshes (it checks repositories out into random directories).
pub const DEFAULT_PART_OF: &str = "platform";

/// `hydrate` commits environment E to branch `environment/E` unless
/// `settings.hydrate.E.branch` says otherwise (GitOps Promoter's naming;
/// point it at `environment/E-next` when Promoter promotes from there).
pub const DEFAULT_HYDRATE_BRANCH_PREFIX: &str = "environment/";

/// Repository settings (`settings:` in controlcenter.yaml), defaulted.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `app.kubernetes.io/part-of`; [`DEFAULT_PART_OF`] when unset.
    pub part_of: String,
    /// Environments where mutable images are refused.
    pub protected_envs: Vec<String>,
    /// Environments allowed to render nothing.
    pub allow_empty_envs: Vec<String>,
    /// Policies switched off (`settings.policies: {id: false}`).
    pub disabled_policies: BTreeSet<String>,
    /// Whether the Argo CD plugin annotates resources with the commit.
    pub revision_annotation: bool,
    /// How templates are evaluated (`settings.evaluation`).
    pub evaluation: Evaluation,
    /// Where `hydrate` commits each environment (`settings.hydrate`):
    /// environment → (branch, path), each defaulted when unset.
    pub hydrate: BTreeMap<String, (Option<String>, Option<String>)>,
}

impl Default for Settings {
    /// The settings of a repository that writes none.
    fn default() -> Self {
        Settings {
            part_of: DEFAULT_PART_OF.to_owned(),
            protected_envs: vec!["prod".to_owned()],
            allow_empty_envs: Vec::new(),
            disabled_policies: BTreeSet::new(),
            revision_annotation: false,
            evaluation: Evaluation::PerService,
            hydrate: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Whether policy `id` is on (every policy is, unless switched off).
    pub fn policy_on(&self, id: &str) -> bool {
        !self.disabled_policies.contains(id)
    }

    /// The branch and path `hydrate` writes `env` to: `settings.hydrate`,
    /// else branch `environment/<env>` ([`DEFAULT_HYDRATE_BRANCH_PREFIX`])
    /// and the branch's root.
    pub fn hydrate_target(&self, env: &str) -> (String, String) {
        let (branch, path) = self.hydrate.get(env).cloned().unwrap_or_default();
        (
            branch.unwrap_or_else(|| format!("{DEFAULT_HYDRATE_BRANCH_PREFIX}{env}")),
            path.unwrap_or_else(|| ".".to_owned()),
        )
    }

    /// Reads `settings:` (already schema-checked).
    pub fn from_inputs(inputs: &RepoInputs) -> Self {
        let s = inputs.controlcenter.root.get(SETTINGS_KEY);
        let strings = |key: &str| -> Option<Vec<String>> {
            s?.get(key)?.to_json().as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        };
        let flag = |key: &str| {
            s.and_then(|s| s.get(key))
                .is_some_and(|n| n.value == Value::Bool(true))
        };
        Settings {
            part_of: s
                .and_then(|s| s.get("part_of"))
                .and_then(Node::as_str)
                .unwrap_or(DEFAULT_PART_OF)
                .to_owned(),
            protected_envs: strings("protected_envs").unwrap_or_else(|| vec!["prod".to_owned()]),
            allow_empty_envs: strings("allow_empty_envs").unwrap_or_default(),
            disabled_policies: s
                .and_then(|s| s.get("policies"))
                .and_then(Node::as_map)
                .unwrap_or_default()
                .iter()
                .filter(|e| e.value.value == Value::Bool(false))
                .map(|e| e.key.clone())
                .collect(),
            revision_annotation: flag("revision_annotation"),
            evaluation: match s.and_then(|s| s.get("evaluation")).and_then(Node::as_str) {
                Some("environment") => Evaluation::Environment,
                _ => Evaluation::PerService,
            },
            hydrate: s
                .and_then(|s| s.get("hydrate"))
                .and_then(Node::as_map)
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    let field = |k: &str| e.value.get(k).and_then(Node::as_str).map(str::to_owned);
                    (e.key.clone(), (field("branch"), field("path")))
                })
                .collect(),
        }
    }
}
