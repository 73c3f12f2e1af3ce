//! `controlcenter state --env E`: the resolved state, exactly what the
//! library receives as its top-level argument.

use clap::Args;

use super::{print_stdout, Cli, EXIT_INVALID};

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
            let value = serde_json::to_value(&resolved.state).unwrap_or_default();
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            print_stdout(&(text + "\n"))
        }
        Err(d) => {
            cli.report(&project.sources, d);
            EXIT_INVALID
        }
    }
}
