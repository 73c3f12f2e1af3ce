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
/// The contract of the Terraform outputs every env-<env>.yaml provides.
pub const OUTPUTS_CONTRACT_FILE: &str = "schemas/terraform-outputs.schema.json";

/// The repository's Jsonnet directories, in the order imports search them
/// (after the importing file's directory; then the repository root and the
/// library): its own templates, then Tanka's `lib/` and jsonnet-bundler's
/// `vendor/`, so `import 'github.com/org/repo/file.libsonnet'` finds a
/// vendored library, from the repository's files and the library's own.
pub const JSONNET_PATH: [&str; 3] = ["jsonnet", "lib", "vendor"];

/// jsonnet-bundler's manifest and lock file.
pub const JSONNETFILE: &str = "jsonnetfile.json";
/// jsonnet-bundler's lock file.
pub const JSONNETFILE_LOCK: &str = "jsonnetfile.lock.json";
/// Where jsonnet-bundler puts the locked libraries.
pub const VENDOR_DIR: &str = "vendor";

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
