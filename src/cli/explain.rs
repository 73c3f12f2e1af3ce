//! `controlcenter explain --env E KIND/NAME[.field.path]`: where each
//! value of a rendered object comes from.

use clap::Args;
use serde_json::{json, Value as Json};

use super::{Cli, EXIT_INVALID, EXIT_USAGE};
use crate::commands::explain::{self, display_path, Explanation, Source, Target};
use crate::diagnostics::{Code, Diagnostic, Sources};

/// `--format` of `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExplainFormat {
    /// For people.
    Text,
    /// One JSON document, for tools.
    Json,
}

/// Arguments of `explain`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  controlcenter explain --env prod Deployment/service-rpps\n  controlcenter explain --env prod 'Deployment/service-rpps.spec.template.spec.containers[0].image'\n  controlcenter explain --env prod Deployment/service-rpps.spec.replicas --format json"
)]
pub struct ExplainArgs {
    /// Environment.
    #[arg(long, short)]
    pub env: String,
    /// The object (KIND/NAME, as `render` prints its kind and
    /// metadata.name), optionally followed by a field path.
    #[arg(value_name = "KIND/NAME[.field.path]")]
    pub target: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = ExplainFormat::Text)]
    pub format: ExplainFormat,
    /// Explain a Git revision (commit, branch, tag) without checking it out.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Namespace when the environment's section sets none.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// When env-<env>.yaml is not on this branch, explain the render
    /// against placeholders (as `render --placeholders`).
    #[arg(long)]
    pub placeholders: bool,
}

pub(super) fn run(cli: &Cli, args: &ExplainArgs) -> i32 {
    let Some(target) = Target::parse(&args.target) else {
        return cli.fail(
            Diagnostic::error(
                Code::Usage,
                format!(
                    "`{}` does not name an object",
                    crate::names::clip(&args.target)
                ),
            )
            .help("write KIND/NAME, optionally with a field path: Deployment/api.spec.replicas"),
            EXIT_USAGE,
        );
    };
    let project = cli
        .snapshot(args.rev.as_deref())
        .and_then(|(repo, _)| cli.project_of(repo, args.namespace.clone(), &[], None));
    let mut project = match project {
        Ok(p) => p,
        Err(code) => return code,
    };
    let explained = match explain::explain(&mut project, &args.env, &target, args.placeholders) {
        Ok(e) => e,
        Err(d) => {
            cli.output().report(&project.sources, d);
            return EXIT_INVALID;
        }
    };
    let text = match args.format {
        ExplainFormat::Text => text(&explained, &args.env, &project.sources),
        ExplainFormat::Json => {
            let doc = document(&explained, &args.env, &project.sources);
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
    };
    cli.output().stdout(&text)
}

/// A value as shown: strings bare, anything else as JSON; a secret (or
/// anything holding one) as `<redacted>`.
fn shown(value: &Json, sources: &Sources) -> String {
    let text = match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    if sources.secrets().found_in(&text) {
        "<redacted>".to_owned()
    } else {
        text
    }
}

/// `file:line:col`, for a source that has a place.
fn place(s: &Source, sources: &Sources) -> Option<(String, usize, usize)> {
    let span = s.span?;
    let (line, col) = sources.line_col(span.file, span.start);
    Some((sources.get(span.file).path.clone(), line, col))
}

/// What an input line says, when it is one short line that is not secret.
fn written_value(s: &Source, sources: &Sources) -> Option<String> {
    let span = s.span.filter(|_| !s.input.is_empty())?;
    let text = sources.get(span.file).text.get(span.start..span.end)?;
    let text = text.trim();
    (!text.is_empty() && !text.contains('\n') && text.len() <= 80 && !text.starts_with('{'))
        .then(|| sources.secrets().scrub(text))
        .filter(|t| t == text && !t.contains('█'))
}

fn text(e: &Explanation, env: &str, sources: &Sources) -> String {
    let mut out = String::new();
    let field = if e.field.is_empty() {
        String::new()
    } else {
        format!(".{}", display_path(&e.field)).replace(".[", "[")
    };
    out.push_str(&format!("{}{field} in {env}\n", e.object));
    for f in &e.fields {
        let path = display_path(&f.path);
        if e.fields.len() == 1 && f.path == e.field {
            out.push_str(&format!("{}\n", shown(&f.value, sources)));
        } else {
            out.push_str(&format!("{path}: {}\n", shown(&f.value, sources)));
        }
        let rows: Vec<(String, String, String)> = f
            .sources
            .iter()
            .map(|s| {
                let at =
                    place(s, sources).map_or_else(String::new, |(p, l, c)| format!("{p}:{l}:{c}"));
                let what = match written_value(s, sources) {
                    Some(v) => format!("{}: {v}", s.input),
                    None => s.input.clone(),
                };
                (s.role.to_owned(), at, what)
            })
            .collect();
        let role_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let at_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        for (role, at, what) in rows {
            let line = format!("  {role:role_width$}  {at:at_width$}  {what}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

fn document(e: &Explanation, env: &str, sources: &Sources) -> Json {
    let fields: Vec<Json> = e
        .fields
        .iter()
        .map(|f| {
            let redacted = shown(&f.value, sources) == "<redacted>";
            let origins: Vec<Json> = f
                .sources
                .iter()
                .map(|s| {
                    let (file, line, column) = place(s, sources)
                        .map_or((Json::Null, Json::Null, Json::Null), |(p, l, c)| {
                            (json!(p), json!(l), json!(c))
                        });
                    json!({
                        "role": s.role,
                        "kind": if s.input.is_empty() { "template" } else { "input" },
                        "file": file,
                        "line": line,
                        "column": column,
                        "input": if s.input.is_empty() { Json::Null } else { json!(s.input) },
                    })
                })
                .collect();
            json!({
                "path": display_path(&f.path),
                "value": if redacted { json!("<redacted>") } else { f.value.clone() },
                "origins": origins,
            })
        })
        .collect();
    json!({
        "env": env,
        "object": e.object,
        "field": if e.field.is_empty() { Json::Null } else { json!(display_path(&e.field)) },
        "fields": fields,
    })
}
