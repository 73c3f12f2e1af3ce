//! The Argo CD config-management-plugin (CMP v2) contract: where the
//! repository is, which environment to render, what the Application's
//! variables change. Pure functions over the variables Argo CD sets, so they
//! are tested without a process environment.
//!
//! Argo CD runs the plugin in the Application's source path with the whole
//! repository around it, passes `plugin.env` entries as `ARGOCD_ENV_<NAME>`
//! and parameters as JSON in `ARGOCD_APP_PARAMETERS`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic};
use crate::process::Resource;
use crate::repo::layout::CONTROLCENTER_FILE;

/// Plugin `env` entry naming the environment (`ARGOCD_ENV_CC_ENV`).
pub const ENV_VAR: &str = "ARGOCD_ENV_CC_ENV";
/// Plugin parameter naming the environment.
pub const ENV_PARAMETER: &str = "env";
/// The branch (or tag) the Application tracks.
pub const TARGET_REVISION_VAR: &str = "ARGOCD_APP_SOURCE_TARGET_REVISION";
/// The Application's destination namespace.
pub const NAMESPACE_VAR: &str = "ARGOCD_APP_NAMESPACE";
/// The commit being rendered.
pub const REVISION_VAR: &str = "ARGOCD_APP_REVISION";

/// Plugin `env` entry selecting services (`ARGOCD_ENV_CC_SERVICE`): render
/// only these services (keys of controlcenter.yaml, comma-separated), as an
/// ApplicationSet that makes one Application per service sets it.
pub const SERVICE_VAR: &str = "ARGOCD_ENV_CC_SERVICE";
/// Plugin parameter selecting services, as `CC_SERVICE`.
pub const SERVICE_PARAMETER: &str = "service";

/// The services the plugin env entry `CC_SERVICE`, else the parameter
/// `service`, selects (none: all of them). Set to nothing but commas, it
/// is an error: an ApplicationSet that templated no name in would
/// otherwise make an Application of every service.
pub fn selected_services(vars: &BTreeMap<String, String>) -> Result<Vec<String>, Diagnostic> {
    // Set at all, it selects: blank, it names nothing (unset renders all).
    let (raw, from) = match vars.get(SERVICE_VAR).filter(|v| !v.is_empty()) {
        Some(v) => (v.clone(), "plugin env CC_SERVICE"),
        None => match parameter(vars, SERVICE_PARAMETER)? {
            Some(v) => (v, "plugin parameter `service`"),
            None => return Ok(Vec::new()),
        },
    };
    let names: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(Diagnostic::error(
            Code::UnknownService,
            format!("the {from} (`{raw}`) names no service"),
        )
        .help("give service keys of controlcenter.yaml, comma-separated, or leave it unset to render every service"));
    }
    Ok(names)
}
/// Annotation carrying the commit, when `settings.revision_annotation` asks.
pub const REVISION_ANNOTATION: &str = "controlcenter.dev/git-revision";

/// The directory holding controlcenter.yaml: `start` or its nearest ancestor.
pub fn find_repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(CONTROLCENTER_FILE).is_file())
        .map(Path::to_path_buf)
}

/// Where the environment name came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvSource {
    /// `ARGOCD_ENV_CC_ENV`.
    PluginEnv,
    /// The `env` plugin parameter.
    Parameter,
    /// The target branch name.
    Branch,
}

/// Picks the environment: the plugin env entry `CC_ENV`, else the plugin
/// parameter `env`, else the target branch name lowercased
/// (`PREPROD` → `preprod`, `refs/heads/dev` → `dev`). The name must be one
/// of `known`.
pub fn select_env(
    vars: &BTreeMap<String, String>,
    known: &[String],
) -> Result<(String, EnvSource), Diagnostic> {
    let Some((raw, source)) = requested_env(vars)? else {
        return Err(Diagnostic::error(
            Code::UnknownEnv,
            "no environment: neither CC_ENV nor a target branch is set",
        )
        .note(format!("known environments: {}", known.join(", ")))
        .help("set the plugin env entry CC_ENV (spec.source.plugin.env) or track an environment branch"));
    };
    if known.iter().any(|k| *k == raw) {
        return Ok((raw, source));
    }
    let from = match source {
        EnvSource::PluginEnv => "plugin env CC_ENV",
        EnvSource::Parameter => "plugin parameter `env`",
        EnvSource::Branch => "target branch",
    };
    Err(Diagnostic::error(
        Code::UnknownEnv,
        format!("environment `{raw}` (from the {from}) is not in {CONTROLCENTER_FILE}"),
    )
    .note(format!("known environments: {}", known.join(", ")))
    .help(
        "name a known environment with the plugin env entry CC_ENV, or track an environment branch",
    ))
}

/// The environment the plugin's variables ask for (the plugin env entry
/// `CC_ENV`, else the `env` parameter, else the target branch), and where
/// it comes from, before it is checked against controlcenter.yaml; `None`
/// when none is set.
pub fn requested_env(
    vars: &BTreeMap<String, String>,
) -> Result<Option<(String, EnvSource)>, Diagnostic> {
    let non_empty = |v: &String| !v.trim().is_empty();
    let requested = if let Some(v) = vars.get(ENV_VAR).filter(|v| non_empty(v)) {
        (v.trim().to_owned(), EnvSource::PluginEnv)
    } else if let Some(v) = parameter(vars, ENV_PARAMETER)?.filter(non_empty) {
        (v.trim().to_owned(), EnvSource::Parameter)
    } else if let Some(v) = vars.get(TARGET_REVISION_VAR).filter(|v| non_empty(v)) {
        let branch = v.trim();
        let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
        (branch.to_ascii_lowercase(), EnvSource::Branch)
    } else {
        return Ok(None);
    };
    Ok(Some(requested))
}

/// A string parameter from `ARGOCD_APP_PARAMETERS`
/// (`[{"name": "env", "string": "dev"}]`). Parameters Argo CD could not
/// have written (not a list of them), or this one given as an array or a
/// map, are an error rather than passed over: the environment would
/// silently come from the branch instead.
pub fn parameter(
    vars: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<String>, Diagnostic> {
    let Some(text) = vars
        .get("ARGOCD_APP_PARAMETERS")
        .filter(|t| !t.trim().is_empty())
    else {
        return Ok(None);
    };
    let invalid = |what: String| {
        Diagnostic::error(Code::Usage, format!("ARGOCD_APP_PARAMETERS {what}"))
            .help("plugin parameters are set in the Application's spec.source.plugin.parameters, each a name with a `string`")
    };
    let params = match serde_json::from_str::<Json>(text) {
        Ok(Json::Array(params)) => params,
        // What Argo CD sends for an Application without parameters.
        Ok(Json::Null) => return Ok(None),
        _ => return Err(invalid("is not a JSON list of parameters".to_owned())),
    };
    // Every element a parameter: an object with a name.
    if !params
        .iter()
        .all(|p| p.get("name").is_some_and(Json::is_string))
    {
        return Err(invalid(
            "is not a JSON list of parameters (an element without a name)".to_owned(),
        ));
    }
    let mut named = params
        .iter()
        .filter(|p| p.get("name").and_then(Json::as_str) == Some(name));
    let Some(param) = named.next() else {
        return Ok(None);
    };
    if named.next().is_some() {
        return Err(invalid(format!("gives the parameter `{name}` twice")));
    }
    match param.get("string") {
        Some(Json::String(v)) => Ok(Some(v.clone())),
        _ => Err(invalid(format!(
            "gives the parameter `{name}` without a `string` value (an array or a map?)"
        ))),
    }
}

/// Annotates every resource with the commit being rendered. Off by default:
/// it makes every commit change every resource.
pub fn annotate_revision(resources: &mut [Resource], revision: &str) {
    for r in resources {
        let mut value = r.value();
        if let Some(meta) = value.get_mut("metadata").and_then(Json::as_object_mut) {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Json::Object(Default::default()));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(
                    REVISION_ANNOTATION.to_owned(),
                    Json::String(revision.to_owned()),
                );
            }
            r.set_value(&value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn known() -> Vec<String> {
        ["dev", "preprod", "prod"].map(String::from).to_vec()
    }

    #[test]
    fn plugin_env_wins_then_parameter_then_branch() {
        let all = vars(&[
            (ENV_VAR, "prod"),
            (
                "ARGOCD_APP_PARAMETERS",
                r#"[{"name":"env","string":"preprod"}]"#,
            ),
            (TARGET_REVISION_VAR, "dev"),
        ]);
        assert_eq!(select_env(&all, &known()).unwrap().0, "prod");
        let no_env = vars(&[
            (
                "ARGOCD_APP_PARAMETERS",
                r#"[{"name":"env","string":"preprod"}]"#,
            ),
            (TARGET_REVISION_VAR, "dev"),
        ]);
        assert_eq!(select_env(&no_env, &known()).unwrap().0, "preprod");
    }

    #[test]
    fn parameters_argo_cd_could_not_have_written_are_errors_not_skipped() {
        let with = |params: &str| {
            vars(&[
                ("ARGOCD_APP_PARAMETERS", params),
                (TARGET_REVISION_VAR, "dev"),
            ])
        };
        assert!(select_env(&with("garbage"), &known()).is_err());
        assert_eq!(select_env(&with("null"), &known()).unwrap().0, "dev");
        assert!(select_env(&with(r#"{"name":"env"}"#), &known()).is_err());
        for malformed in [
            "[1]",
            "[null]",
            r#"[{"string":"prod"}]"#,
            r#"[{"name":1,"string":"prod"}]"#,
            r#"[{"name":"env","string":"prod"},null]"#,
            r#"[{"name":"env","string":"prod"},{"name":"env","string":"dev"}]"#,
        ] {
            assert!(
                select_env(&with(malformed), &known()).is_err(),
                "{malformed}"
            );
        }
        let array = with(r#"[{"name":"env","array":["prod"]}]"#);
        assert!(select_env(&array, &known()).is_err());
        // Another parameter's shape is not this one's business.
        let other = with(r#"[{"name":"other","map":{"a":"b"}}]"#);
        assert_eq!(select_env(&other, &known()).unwrap().0, "dev");
    }

    #[test]
    fn a_service_selection_of_nothing_but_commas_is_an_error() {
        assert!(selected_services(&vars(&[(SERVICE_VAR, ",")])).is_err());
        assert!(selected_services(&vars(&[(SERVICE_VAR, " , ,")])).is_err());
        assert_eq!(
            selected_services(&vars(&[(SERVICE_VAR, "api, web,")])).unwrap(),
            ["api", "web"]
        );
        assert!(selected_services(&vars(&[(SERVICE_VAR, " ")])).is_err());
        assert!(selected_services(&vars(&[(SERVICE_VAR, "")]))
            .unwrap()
            .is_empty());
        let param = vars(&[(
            "ARGOCD_APP_PARAMETERS",
            r#"[{"name":"service","string":","}]"#,
        )]);
        assert!(selected_services(&param).is_err());
    }

    #[test]
    fn branch_names_are_lowercased_and_refs_stripped() {
        for branch in ["PREPROD", "refs/heads/preprod", " Preprod "] {
            let v = vars(&[(TARGET_REVISION_VAR, branch)]);
            assert_eq!(
                select_env(&v, &known()).unwrap(),
                ("preprod".to_owned(), EnvSource::Branch)
            );
        }
    }

    #[test]
    fn unknown_branch_lists_the_known_envs() {
        let d = select_env(&vars(&[(TARGET_REVISION_VAR, "main")]), &known()).unwrap_err();
        assert!(
            d.message.contains("`main` (from the target branch)"),
            "{}",
            d.message
        );
        assert_eq!(d.notes, ["known environments: dev, preprod, prod"]);
        assert!(select_env(&vars(&[]), &known()).is_err());
    }
}
