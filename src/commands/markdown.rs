//! A diff report as a pull-request comment: a summary table by kind, then
//! one collapsible section per resource with its unified diff. The text
//! stays under a size cap (GitHub refuses comments over 65,536
//! characters); what does not fit is named, with the command that shows it.

use std::collections::BTreeMap;

use super::diff::{ChangeKind, DiffReport};

/// GitHub's limit on a comment body, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// Room kept under the limit for what a workflow adds around the report
/// (a marker comment, a header).
const MARGIN: usize = 1_536;

/// The report as GitHub-flavoured markdown of at most `limit` bytes (so at
/// most `limit` characters). `rerun` is the command that prints the whole
/// diff, named when something is left out.
pub fn report(
    report: &DiffReport,
    old: &str,
    new: &str,
    stat: bool,
    rerun: &str,
    limit: usize,
) -> String {
    let limit = limit.saturating_sub(MARGIN).max(1_024);
    let mut head = format!(
        "### controlcenter diff: {} → {}\n\n",
        code_span(old),
        code_span(new)
    );
    if report.is_empty() {
        head.push_str(&format!(
            "No changes: {} resources unchanged.\n",
            report.unchanged
        ));
        return head;
    }
    head.push_str(&format!(
        "**{}**, {} unchanged\n\n",
        report.summary(),
        report.unchanged
    ));
    head.push_str(&kind_table(report));

    let mut body = String::new();
    let mut left_out = Vec::new();
    // What the footer may need: a line per left-out resource is not
    // promised, only the count and the command.
    let footer_room = 400 + rerun.len();
    for c in &report.changes {
        let section = if stat {
            format!(
                "- {} {}\n",
                mark(c.change),
                html(&format!("{} ({})", c.resource, what(c)))
            )
        } else {
            section(c)
        };
        if head.len() + body.len() + section.len() + footer_room <= limit {
            body.push_str(&section);
        } else {
            left_out.push(c);
        }
    }
    let mut out = head;
    out.push('\n');
    out.push_str(&body);
    if !left_out.is_empty() {
        let mut footer = format!(
            "\n{} more resource{} not shown here to keep this comment under GitHub's size limit",
            left_out.len(),
            if left_out.len() == 1 { "" } else { "s" }
        );
        // Name as many as fit; the count and the command always do.
        let mut names = String::new();
        for c in &left_out {
            let line = format!("- {} {}\n", mark(c.change), html(&c.resource));
            if out.len() + footer.len() + names.len() + line.len() + footer_room > limit {
                names.push_str("- …\n");
                break;
            }
            names.push_str(&line);
        }
        footer.push_str(":\n\n");
        footer.push_str(&names);
        footer.push_str(&format!("\nSee them all with {}\n", code_span(rerun)));
        out.push_str(&footer);
    }
    out
}

/// `| kind | added | removed | changed |`, kinds in first-seen order.
fn kind_table(report: &DiffReport) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut counts: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for c in &report.changes {
        let n = counts.entry(&c.kind).or_insert_with(|| {
            order.push(&c.kind);
            [0; 3]
        });
        n[match c.change {
            ChangeKind::Added => 0,
            ChangeKind::Removed => 1,
            ChangeKind::Changed => 2,
        }] += 1;
    }
    let mut t = String::from("| kind | added | removed | changed |\n|---|---:|---:|---:|\n");
    for kind in order {
        let [a, r, c] = counts[kind];
        t.push_str(&format!("| {} | {a} | {r} | {c} |\n", html(kind)));
    }
    t
}

fn mark(change: ChangeKind) -> &'static str {
    match change {
        ChangeKind::Added => "+",
        ChangeKind::Removed => "-",
        ChangeKind::Changed => "~",
    }
}

fn what(c: &super::diff::Change) -> String {
    match c.change {
        ChangeKind::Added => "added".to_owned(),
        ChangeKind::Removed => "removed".to_owned(),
        ChangeKind::Changed => format!("changed, +{} -{}", c.insertions, c.deletions),
    }
}

/// One `<details>` block with the resource's diff in a fence no line of
/// the diff can close.
fn section(c: &super::diff::Change) -> String {
    let fence = "`".repeat(longest_run(&c.diff, '`').max(2) + 1);
    let mut diff = c.diff.clone();
    if !diff.ends_with('\n') {
        diff.push('\n');
    }
    format!(
        "<details><summary><code>{} {}</code> ({})</summary>\n\n{fence}diff\n{diff}{fence}\n\n</details>\n\n",
        mark(c.change),
        html(&c.resource),
        what(c)
    )
}

/// `text` as an inline code span, whatever backticks it holds.
fn code_span(text: &str) -> String {
    let ticks = "`".repeat(longest_run(text, '`') + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{text}{pad}{ticks}")
}

fn longest_run(text: &str, ch: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == ch { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Escapes what HTML and markdown tables would read as markup.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "&#124;")
}

/// A command line as a shell would read it back: words that need it are
/// single-quoted.
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | '@' | '~' | '^' | ',')
                });
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::diff::Change;

    fn change(kind: ChangeKind, name: &str, diff: &str) -> Change {
        Change {
            change: kind,
            resource: format!("ConfigMap/dev/{name}"),
            kind: "ConfigMap".into(),
            api_version: "v1".into(),
            diff: diff.into(),
            insertions: 1,
            deletions: 1,
        }
    }

    #[test]
    fn stays_under_the_limit_and_names_the_command() {
        let big = format!(
            "@@ -1 +1 @@\n-{}\n+{}\n",
            "a".repeat(3000),
            "b".repeat(3000)
        );
        let report = DiffReport {
            changes: (0..100)
                .map(|i| change(ChangeKind::Changed, &format!("c{i}"), &big))
                .collect(),
            unchanged: 0,
        };
        let md = super::report(
            &report,
            "HEAD",
            "the work tree",
            false,
            "controlcenter diff --env dev",
            65_536,
        );
        assert!(md.len() <= 65_536, "{}", md.len());
        assert!(md.contains("not shown here"), "{md}");
        assert!(md.contains("`controlcenter diff --env dev`"), "{md}");
        assert!(md.contains("| ConfigMap | 0 | 0 | 100 |"), "{md}");
    }

    #[test]
    fn a_diff_cannot_close_its_fence() {
        let report = DiffReport {
            changes: vec![change(ChangeKind::Changed, "x", "+ ```\n+ </details>\n")],
            unchanged: 1,
        };
        let md = super::report(&report, "a", "b", false, "cc", 65_536);
        assert!(md.contains("````diff\n"), "{md}");
    }

    #[test]
    fn shell_words_quote_what_a_shell_would_split() {
        let w = |v: &[&str]| shell_words(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(w(&["diff", "--env", "prod"]), "diff --env prod");
        assert_eq!(w(&["--from", "it's here"]), r"--from 'it'\''s here'");
    }
}
