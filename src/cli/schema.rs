//! `controlcenter schema export DIR`: the JSON Schemas of the input files,
//! for editors (yaml-language-server) and other tools.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Cli, EXIT_OK, EXIT_USAGE};
use crate::diagnostics::{Code, Diagnostic};
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
    /// Write controlcenter, tags, env and secrets schemas into DIR.
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
    for (name, text) in SCHEMAS {
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
