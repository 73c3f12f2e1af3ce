//! `controlcenter validate`: schemas, resolution and rendering of every
//! environment whose inputs are on this branch; all problems at once.

use clap::Args;

use super::{Cli, EXIT_INVALID, EXIT_OK};
use crate::diagnostics::Code;
use crate::pipeline::TerraformOutputs;
use crate::repo::layout::env_file_name;

/// Arguments of `validate`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  controlcenter validate\n  controlcenter validate --env dev --env prod\n  controlcenter validate --error-format github"
)]
pub struct ValidateArgs {
    /// Only these environments (default: every environment). One whose
    /// env-<env>.yaml is not on this branch is rendered against typed
    /// placeholders from the Terraform-outputs contract, and said so.
    #[arg(long, short)]
    pub env: Vec<String>,
}

pub(super) fn run(cli: &Cli, args: &ValidateArgs) -> i32 {
    let mut project = match cli.project() {
        Ok(p) => p,
        Err(code) => return code,
    };
    let explicit = !args.env.is_empty();
    let envs = if explicit {
        args.env.clone()
    } else {
        project.envs()
    };
    let mut diagnostics = project.check_vendor();
    let mut summary = Vec::new();
    for env in &envs {
        match project.render_with(env, true) {
            Ok((resources, TerraformOutputs::EnvFile)) => {
                summary.push(format!("ok      {env}: {} resources", resources.len()))
            }
            Ok((resources, TerraformOutputs::Placeholders { contract, .. })) => {
                summary.push(format!(
                    "ok      {env}: {} resources (Terraform outputs: placeholders from {contract})",
                    resources.len()
                ))
            }
            // No env file and nothing to make placeholders from: the
            // environment can only be checked on its own branch.
            Err(d) if !explicit && d.len() == 1 && d[0].code == Code::EnvFileMissing => {
                summary.push(format!(
                    "skipped {env}: {} is not on this branch",
                    env_file_name(env)
                ));
            }
            Err(d) => {
                summary.push(format!("failed  {env}"));
                diagnostics.extend(d);
            }
        }
    }
    let failed = diagnostics.iter().any(|d| d.is_error());
    cli.output().report(&project.sources, diagnostics);
    for line in summary {
        cli.output().status(&line);
    }
    if failed {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}
