//! `controlcenter state --env E`: the resolved state, exactly what the
//! library receives as its top-level argument.

use clap::Args;

use crate::redact;

use super::{Cli, EXIT_INVALID};

/// Arguments of `state`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  controlcenter state --env dev\n  jsonnet -J lib-jsonnet --tla-code-file state=<(controlcenter state --env dev) lib-jsonnet/main.jsonnet"
)]
pub struct StateArgs {
    /// Environment to resolve.
    #[arg(long, short)]
    pub env: String,
}

pub(super) fn run(cli: &Cli, args: &StateArgs) -> i32 {
    let mut project = match cli.project() {
        Ok(p) => p,
        Err(code) => return code,
    };
    match project.resolve(&args.env) {
        Ok(resolved) => {
            let mut value = serde_json::to_value(&resolved.state).unwrap_or_default();
            // Secret fields are already `<redacted>`; a plain value holding
            // a secret (a copy) is redacted too. SealedSecret ciphertexts
            // are what the library must receive, and safe to show.
            let secrets = project.sources.secrets();
            for part in ["params", "services"] {
                if let Some(v) = value.get_mut(part) {
                    secrets.redact_json(v, &|_| redact::REDACTED.into());
                }
            }
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            cli.output().stdout(&(text + "\n"))
        }
        Err(d) => {
            cli.output().report(&project.sources, d);
            EXIT_INVALID
        }
    }
}
