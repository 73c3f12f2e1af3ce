//! `controlcenter schema export DIR`: the JSON Schemas of the input files,
//! for editors (yaml-language-server) and other tools.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Cli, EXIT_OK, EXIT_USAGE};
use crate::diagnostics::{Code, Diagnostic};
use crate::repo::layout::OUTPUTS_CONTRACT_FILE;
use crate::repo::RepoFiles;
use crate::validate::outputs;
use crate::validate::schema::{CONTROLCENTER_SCHEMA, ENV_SCHEMA, SECRETS_SCHEMA, TAGS_SCHEMA};

/// Arguments of `schema`.
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  controlcenter schema export .schemas")]
pub struct SchemaArgs {
    /// What to do with the schemas.
    #[command(subcommand)]
    pub action: SchemaAction,
}

/// Schema actions.
#[derive(Subcommand, Debug)]
pub enum SchemaAction {
    /// Write controlcenter, tags, env and secrets schemas into DIR, and the
    /// repository's Terraform-outputs contract (its
    /// schemas/terraform-outputs.schema.json, else one derived from the
    /// env files present).
    #[command(
        after_help = "Example:\n  controlcenter schema export .schemas\n  # then in controlcenter.yaml:\n  # yaml-language-server: $schema=.schemas/controlcenter.schema.json"
    )]
    Export {
        /// Target directory (created if needed).
        dir: PathBuf,
    },
}

/// The built-in schemas by file name.
pub const SCHEMAS: &[(&str, &str)] = &[
    ("controlcenter.schema.json", CONTROLCENTER_SCHEMA),
    ("tags.schema.json", TAGS_SCHEMA),
    ("env.schema.json", ENV_SCHEMA),
    ("secrets.schema.json", SECRETS_SCHEMA),
];

pub(super) fn run(cli: &Cli, args: &SchemaArgs) -> i32 {
    let SchemaAction::Export { dir } = &args.action;
    let failed = |what: String| {
        cli.fail(
            Diagnostic::error(Code::OutputFailed, what)
                .help("check that the directory is writable"),
            EXIT_USAGE,
        )
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return failed(format!("cannot create {}: {e}", dir.display()));
    }
    let mut schemas: Vec<(&str, String)> = SCHEMAS
        .iter()
        .map(|(name, text)| (*name, (*text).to_owned()))
        .collect();
    if let Some(contract) = outputs_contract(cli) {
        schemas.push((CONTRACT_NAME, contract));
    }
    for (name, text) in &schemas {
        let path = dir.join(name);
        let written = tempfile::NamedTempFile::new_in(dir).and_then(|mut f| {
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            f.persist(&path).map_err(|e| e.error)
        });
        if let Err(e) = written {
            return failed(format!("cannot write {}: {e}", path.display()));
        }
        cli.output().status(&format!("wrote {}", path.display()));
    }
    EXIT_OK
}

/// File name of the exported Terraform-outputs contract.
const CONTRACT_NAME: &str = "terraform-outputs.schema.json";

/// The repository's Terraform-outputs contract as written, else derived
/// from the env files at its root; `None` outside a repository or when
/// there is neither.
fn outputs_contract(cli: &Cli) -> Option<String> {
    let repo = crate::repo::WorkTree::open(&cli.repo).ok()?;
    if let Ok(Some(bytes)) = repo.read(OUTPUTS_CONTRACT_FILE) {
        return String::from_utf8(bytes).ok();
    }
    let envs: Vec<String> = repo
        .list_files("")
        .into_iter()
        .filter_map(|f| Some(f.strip_prefix("env-")?.strip_suffix(".yaml")?.to_owned()))
        .collect();
    let mut sources = crate::diagnostics::Sources::default();
    let contract = outputs::load(&repo, &mut sources, &envs).ok()??;
    serde_json::to_string_pretty(contract.schema())
        .ok()
        .map(|t| t + "\n")
}
