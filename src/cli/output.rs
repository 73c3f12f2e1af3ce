//! Where a command's output goes, and how problems are shown: the one
//! place that knows the error format, colour, `--max-errors`, the routing
//! of stdout and stderr, and the Argo CD plugin's 20-line budget.

use std::io::Write;

use crate::diagnostics::render::{clipped, render_all, short, ErrorFormat};
use crate::diagnostics::{Diagnostic, Diagnostics, Sources};

use super::{EXIT_OK, EXIT_USAGE};

/// Most lines of error text the plugin prints (Argo CD shows them in the UI).
pub const MAX_PLUGIN_ERROR_LINES: usize = 20;

/// Most `std.trace` lines the plugin prints (plus one saying the rest was
/// suppressed); errors get what is left of [`MAX_PLUGIN_ERROR_LINES`].
pub const MAX_PLUGIN_TRACE_LINES: usize = 9;

/// How a command reports.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// How problems are printed.
    pub format: ErrorFormat,
    /// Colour in human diagnostics.
    pub color: bool,
    /// Problems shown at most (all are counted).
    pub max_errors: usize,
    /// Machine formats go to stdout (`validate`: CI reads them there;
    /// other commands keep stdout for their result).
    pub problems_to_stdout: bool,
    /// The Argo CD plugin: short lines, at most [`MAX_PLUGIN_ERROR_LINES`].
    pub plugin: bool,
}

impl Output {
    /// Prints problems where they belong.
    pub fn report(&self, sources: &Sources, diagnostics: Vec<Diagnostic>) {
        let text = self.format(sources, diagnostics);
        if self.problems_to_stdout && self.format != ErrorFormat::Human && !self.plugin {
            self.stdout(&text);
        } else {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }

    /// The text [`Output::report`] prints.
    pub fn format(&self, sources: &Sources, diagnostics: Vec<Diagnostic>) -> String {
        let mut all = Diagnostics::default();
        all.extend(diagnostics);
        let mut sorted = all.into_sorted(sources);
        if self.plugin {
            return plugin_text(sources, &sorted);
        }
        let errors = sorted.iter().filter(|d| d.is_error()).count();
        let hidden = sorted.len().saturating_sub(self.max_errors.max(1));
        sorted.truncate(self.max_errors.max(1));
        let mut text = render_all(&sorted, sources, self.format, self.color);
        if self.format == ErrorFormat::Human {
            if hidden > 0 {
                text.push_str(&format!(
                    "note: {hidden} more not shown (--max-errors {})\n",
                    self.max_errors
                ));
            }
            if errors > 0 {
                text.push_str(&format!(
                    "error: {errors} problem{} found\n",
                    if errors == 1 { "" } else { "s" }
                ));
            }
        }
        text
    }

    /// Writes a command's result to stdout, treating a closed pipe
    /// (`| head`) as success.
    pub fn stdout(&self, text: &str) -> i32 {
        self.stdout_with(|out| out.write_all(text.as_bytes()))
    }

    /// Like [`Output::stdout`], for a result written in parts by `write`.
    pub fn stdout_with(&self, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> i32 {
        let mut out = std::io::stdout().lock();
        match write(&mut out).and_then(|()| out.flush()) {
            Ok(()) => EXIT_OK,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
            Err(e) => {
                // To stderr whatever the routing: stdout is what failed.
                let d = Diagnostic::error(
                    crate::diagnostics::Code::OutputFailed,
                    format!("cannot write to stdout: {e}"),
                );
                let text = self.format(&Sources::default(), vec![d]);
                let _ = std::io::stderr().write_all(text.as_bytes());
                EXIT_USAGE
            }
        }
    }

    /// A progress line for people (`wrote 12 resources to out/`): stderr,
    /// never mixed into a result on stdout.
    pub fn status(&self, line: &str) {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// At most [`MAX_PLUGIN_ERROR_LINES`] short lines, minus the trace lines
/// already printed, secrets scrubbed.
fn plugin_text(sources: &Sources, sorted: &[Diagnostic]) -> String {
    let lines: Vec<String> = sorted
        .iter()
        .flat_map(|d| {
            short(&clipped(d, sources.secrets()), sources)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let budget = MAX_PLUGIN_ERROR_LINES
        .saturating_sub(
            crate::evaluate::engine::trace_lines_printed().min(MAX_PLUGIN_TRACE_LINES + 1),
        )
        .max(2);
    let mut text: Vec<String> = lines.iter().take(budget).cloned().collect();
    if lines.len() > budget {
        text.truncate(budget - 1);
        text.push(format!(
            "… {} problems in all; run `controlcenter validate` on the repository for every detail",
            sorted.len()
        ));
    }
    sources.secrets().scrub(&text.join("\n")) + "\n"
}
