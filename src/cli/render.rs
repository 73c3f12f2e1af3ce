//! `controlcenter render --env E`: the manifests of one environment.

use std::path::PathBuf;

use clap::Args;

use super::{Cli, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK};
use crate::diagnostics::{Code, Diagnostic};
use crate::emit::{self, out_dir, Format};
use crate::pipeline::TerraformOutputs;
use crate::repo::layout::env_file_name;

/// Set to print how long each stage took (for benchmarks).
pub use crate::pipeline::TIMINGS_VAR;

/// `--format` of `render`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Multi-document YAML.
    Yaml,
    /// One compact JSON object per line.
    Json,
}

impl From<FormatArg> for Format {
    fn from(a: FormatArg) -> Self {
        match a {
            FormatArg::Yaml => Format::Yaml,
            FormatArg::Json => Format::Json,
        }
    }
}

/// Arguments of `render`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  controlcenter render --env dev\n  controlcenter render --env prod --format json\n  controlcenter render --env dev --out-dir rendered/dev\n  controlcenter render --env prod --service api"
)]
pub struct RenderArgs {
    /// Environment to render.
    #[arg(long, short)]
    pub env: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = FormatArg::Yaml)]
    pub format: FormatArg,
    /// Write one YAML file per resource into this directory (replaced atomically).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Namespace when the environment's section sets none (default: the environment name).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Render a Git revision (commit, branch, tag) without checking it out.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Only this service's objects (its key in controlcenter.yaml); repeatable.
    /// Not with --out-dir, which holds a whole render: the other services'
    /// files would be deleted.
    #[arg(
        long = "service",
        short = 's',
        value_name = "NAME",
        conflicts_with = "out_dir"
    )]
    pub services: Vec<String>,
    /// For review only: when env-<env>.yaml is not on this branch, render
    /// against typed placeholders from schemas/terraform-outputs.schema.json,
    /// every placeholder marked. Never for a cluster.
    #[arg(long, conflicts_with = "out_dir")]
    pub placeholders: bool,
}

pub(super) fn run(cli: &Cli, args: &RenderArgs) -> i32 {
    let project = cli.snapshot(args.rev.as_deref()).and_then(|(repo, _)| {
        cli.project_of(
            repo,
            args.namespace.clone(),
            &args.services,
            Some(&args.env),
        )
    });
    let mut project = match project {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (resources, outputs) = match project.render_with(&args.env, args.placeholders) {
        Ok(r) => r,
        Err(d) => {
            cli.output().report(&project.sources, d);
            return EXIT_INVALID;
        }
    };
    if std::env::var_os(TIMINGS_VAR).is_some() {
        let units = project.units();
        let stages: Vec<String> = project
            .timings()
            .iter()
            .map(|t| {
                let peak = t
                    .peak_kib
                    .map_or_else(String::new, |k| format!(" ({} MiB)", k / 1024));
                format!("{} {:.1} ms{peak}", t.stage, t.took.as_secs_f64() * 1000.0)
            })
            .collect();
        let peak = crate::pipeline::peak_kib()
            .map_or_else(String::new, |kib| format!(", peak {} MiB", kib / 1024));
        eprintln!(
            "timings: {} ({} units evaluated, {} cached, {} sections found valid before, {} entries found valid before, {} services memoized{peak})",
            stages.join(", "),
            units.evaluated,
            units.cached,
            project.sections_found_valid_before(),
            project.entries_found_valid_before(),
            project.services_memoized()
        );
    }
    match &args.out_dir {
        Some(dir) => match out_dir::write(dir, &resources, project.entry_span()) {
            Ok(()) => {
                cli.output().status(&format!(
                    "wrote {} resources to {}",
                    resources.len(),
                    dir.display()
                ));
                EXIT_OK
            }
            // The interrupt handler exits 130 once the staging directory is gone.
            Err(_) if out_dir::interrupted() => EXIT_INTERRUPTED,
            Err(d) => {
                cli.output().report(&project.sources, vec![d]);
                EXIT_INVALID
            }
        },
        None => {
            let code = if let TerraformOutputs::Placeholders { contract, values } = &outputs {
                let mut text = emit::render(&resources, args.format.into());
                let warning = Diagnostic::warning(
                    Code::EnvFileMissing,
                    format!(
                        "{} is not on this branch: `{}` is rendered against placeholder Terraform outputs from {contract}",
                        env_file_name(&args.env),
                        args.env
                    ),
                )
                .help("for review only: placeholders never reach a cluster; render on the environment's branch for its manifests");
                cli.output().report(&project.sources, vec![warning]);
                if args.format == FormatArg::Yaml {
                    text = emit::mark_placeholders(&text, &args.env, contract, values);
                }
                cli.output().stdout(&text)
            } else {
                cli.output()
                    .stdout_with(|out| emit::write(&resources, args.format.into(), out))
            };
            // The process exits next: freeing every object one by one
            // would only cost time.
            std::mem::forget(resources);
            std::mem::forget(project);
            code
        }
    }
}
