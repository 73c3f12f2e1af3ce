//! The repository's layout: the names of its input files, which the
//! loaders read and the guard keeps templates from reading.

/// `controlcenter.yaml`
pub const CONTROLCENTER_FILE: &str = "controlcenter.yaml";
/// `tags.yaml`
pub const TAGS_FILE: &str = "tags.yaml";
/// `secrets.yaml`
pub const SECRETS_FILE: &str = "secrets.yaml";
/// The repo's own service schema extension.
pub const SERVICE_SCHEMA_FILE: &str = "schemas/service.schema.json";

/// Directory of further controlcenter.yaml parts (`controlcenter.d/*.yaml`,
/// merged in name order).
pub const CONTROLCENTER_DIR: &str = "controlcenter.d";

/// Whether a repo-relative path (symlinks resolved) is one of the input
/// files: templates get these through the state, never as text, or a
/// sensitive value or a secret could be copied into a manifest.
pub fn is_input_file(rel: &str) -> bool {
    let rel = rel.trim_start_matches("./");
    if let Some(part) = rel
        .strip_prefix(CONTROLCENTER_DIR)
        .and_then(|r| r.strip_prefix('/'))
    {
        return !part.contains('/') && part.ends_with(".yaml");
    }
    !rel.contains('/')
        && (rel == CONTROLCENTER_FILE
            || rel == TAGS_FILE
            || rel == SECRETS_FILE
            || (rel.starts_with("env-") && rel.ends_with(".yaml")))
}

/// The Terraform outputs file of an environment.
pub fn env_file_name(env: &str) -> String {
    format!("env-{env}.yaml")
}
