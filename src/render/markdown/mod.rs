//! The plan as GitHub-flavoured markdown, for a pull-request comment
//! (`shoal plan --format markdown`): a summary line, errors first, then one
//! collapsible section per stack with its changes in the plan's own grammar
//! (in a `diff` code block) and its policy violations as a table. It stays
//! under a comment's size limit by cutting the longest stacks' changes.
//!
//! Sensitive values are masked here as in the text plan (the blocks come
//! from the same renderer); the caller still passes the whole document
//! through the redactor, as it does for text.
use super::{plain_blocks, Report};
use crate::model::{Action, Change, Summary};
use crate::policy::{Level, Violation};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The longest document rendered, in characters. GitHub refuses comments
/// over 65,536 characters; the rest is room for what a CI job adds around
/// the plan (a marker to find its comment again, a link to the run).
pub const LIMIT: usize = 60_000;

/// The report as markdown, at most [`LIMIT`] characters.
pub fn markdown(report: &Report) -> String {
    markdown_within(report, LIMIT)
}

/// [`markdown`] with another limit (tests use small ones).
pub fn markdown_within(report: &Report, limit: usize) -> String {
    let sections = sections(report);
    let longest = sections.iter().map(|s| s.lines.len()).max().unwrap_or(0);
    let full = document(report, &sections, longest);
    if full.chars().count() <= limit {
        return full;
    }
    // The largest per-stack line budget that fits; every stack keeps at
    // least its first lines, and long stacks are cut the most.
    let (mut fits, mut too_many) = (0, longest);
    while fits + 1 < too_many {
        let mid = (fits + too_many) / 2;
        if document(report, &sections, mid).chars().count() <= limit {
            fits = mid;
        } else {
            too_many = mid;
        }
    }
    let doc = document(report, &sections, fits);
    if doc.chars().count() <= limit {
        doc
    } else {
        hard_cut(&doc, limit)
    }
}

/// One stack's part of the comment.
struct Section<'a> {
    stack: &'a str,
    summary: Summary,
    lines: Vec<String>,
    violations: &'a [Violation],
}

fn sections<'a>(report: &Report<'a>) -> Vec<Section<'a>> {
    let mut by_stack: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for c in report
        .plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop)
    {
        by_stack.entry(c.stack.as_str()).or_default().push(c);
    }
    let stacks: BTreeSet<&str> = by_stack
        .keys()
        .copied()
        .chain(
            report
                .violations_by_stack
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(s, _)| s.as_str()),
        )
        .collect();
    stacks
        .into_iter()
        .map(|stack| {
            let changes = by_stack.remove(stack).unwrap_or_default();
            let summary = summary_of(&changes);
            let lines = plain_blocks(changes)
                .lines()
                .map(diff_line)
                .collect::<Vec<_>>();
            // The blank line that ends the last block is not content.
            let lines = trim_trailing_blank(lines);
            Section {
                stack,
                summary,
                lines,
                violations: report
                    .violations_by_stack
                    .get(stack)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            }
        })
        .collect()
}

fn summary_of(changes: &[&Change]) -> Summary {
    let mut s = Summary::default();
    for c in changes {
        match c.action {
            Action::Create => s.create += 1,
            Action::Update => s.update += 1,
            Action::Delete => s.delete += 1,
            Action::Noop => {}
        }
    }
    s
}

/// A line of the text plan as a line of a `diff` block: an update's `~`
/// becomes `!`, which diff highlighting marks as changed (as Atlantis
/// does for terraform plans); `+` and `-` already mean what they show.
fn diff_line(line: &str) -> String {
    match line.strip_prefix("~ ") {
        Some(rest) => format!("! {rest}"),
        None => line.to_string(),
    }
}

fn trim_trailing_blank(mut lines: Vec<String>) -> Vec<String> {
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines
}

/// The whole document with each stack's changes cut to `max_lines`.
fn document(report: &Report, sections: &[Section], max_lines: usize) -> String {
    let mut out = String::new();
    let s = report.plan.summary();
    let denies: usize = report
        .violations_by_stack
        .values()
        .flatten()
        .filter(|v| v.blocks())
        .count();
    let errors = report.stack_errors.len() + report.policy_errors.len();
    let mut headline = if report.plan.has_changes() {
        format!(
            "{} to create, {} to update, {} to delete",
            s.create, s.update, s.delete
        )
    } else {
        "no changes".to_string()
    };
    if denies > 0 {
        let _ = write!(headline, " · {denies} denied by policy");
    }
    if errors > 0 {
        let _ = write!(
            headline,
            " · {errors} {}",
            plural(errors, "error", "errors")
        );
    }
    let _ = writeln!(out, "### shoal plan: {headline}\n");
    if let Some(c) = report.commit {
        let _ = writeln!(out, "Stacks at `{}` {}\n", code(c.short), text(c.summary));
    }

    if errors > 0 {
        out.push_str("**Errors** (these stacks are left as they are on the swarm):\n\n");
        for (stack, message) in report.stack_errors {
            let _ = writeln!(out, "- **{}**: {}", text(stack), text(message));
        }
        for message in report.policy_errors {
            let _ = writeln!(out, "- policies: {}", text(message));
        }
        out.push('\n');
    }
    if denies > 0 {
        let _ = writeln!(
            out,
            "**Denied**: {denies} policy {} {} this plan; `shoal apply` will refuse it.\n",
            plural(denies, "violation", "violations"),
            plural(denies, "denies", "deny"),
        );
    }

    for section in sections {
        stack_section(&mut out, section, max_lines);
    }

    let quiet: Vec<&str> = quiet_stacks(report, sections);
    if !quiet.is_empty() {
        let names: Vec<String> = quiet.iter().map(|s| format!("`{}`", code(s))).collect();
        let _ = writeln!(out, "No changes: {}.\n", names.join(", "));
    }
    for name in report.unmanaged {
        let _ = writeln!(
            out,
            "Note: stack `{}` is on the swarm but not in the repository; `--prune` would delete it.\n",
            code(name)
        );
    }
    out.push_str(
        "<sub>`+` create · `!` update (`~` in the terminal) · `-` delete · sensitive values are never shown</sub>\n",
    );
    out
}

fn stack_section(out: &mut String, section: &Section, max_lines: usize) {
    let denies = section.violations.iter().filter(|v| v.blocks()).count();
    let mut title = format!("<b>{}</b>", html(section.stack));
    let s = &section.summary;
    if s.create + s.update + s.delete > 0 {
        let _ = write!(
            title,
            ": {} to create, {} to update, {} to delete",
            s.create, s.update, s.delete
        );
    } else {
        title.push_str(": no changes");
    }
    if denies > 0 {
        let _ = write!(title, " · {denies} denied");
    }
    // Open where a reviewer must look: a denial.
    let open = if denies > 0 { " open" } else { "" };
    let _ = writeln!(out, "<details{open}>\n<summary>{title}</summary>\n");
    if !section.lines.is_empty() {
        let shown = &section.lines[..section.lines.len().min(max_lines)];
        let fence = fence_for(shown);
        let _ = writeln!(out, "{fence}diff");
        for line in shown {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "{fence}");
        let cut = section.lines.len() - shown.len();
        if cut > 0 {
            let _ = writeln!(
                out,
                "\n_{cut} more {} of this stack's plan cut to fit a comment; run `shoal plan --stack {}` to see it whole._",
                plural(cut, "line", "lines"),
                code(section.stack)
            );
        }
        out.push('\n');
    }
    if !section.violations.is_empty() {
        out.push_str("| level | policy | object | message |\n| --- | --- | --- | --- |\n");
        for v in section.violations {
            let level = match (v.skipped, v.level) {
                (true, _) => "skipped",
                (false, Level::Deny) => "**deny**",
                (false, Level::Warn) => "warn",
            };
            let _ = writeln!(
                out,
                "| {level} | {} | {} | {} |",
                cell(&v.policy),
                cell(&v.object),
                cell(&v.message)
            );
        }
        out.push('\n');
    }
    out.push_str("</details>\n\n");
}

/// Stacks the plan covers that have nothing to show.
fn quiet_stacks<'a>(report: &Report<'a>, sections: &[Section]) -> Vec<&'a str> {
    let shown: BTreeSet<&str> = sections.iter().map(|s| s.stack).collect();
    let failed: BTreeSet<&str> = report
        .stack_errors
        .iter()
        .map(|(s, _)| s.as_str())
        .collect();
    let all: BTreeSet<&'a str> = report
        .plan
        .changes
        .iter()
        .map(|c| c.stack.as_str())
        .collect();
    all.into_iter()
        .filter(|s| !shown.contains(s) && !failed.contains(s))
        .collect()
}

/// A code fence longer than any run of backticks in the lines, so no
/// line of the plan can end the block.
fn fence_for(lines: &[String]) -> String {
    let longest = lines
        .iter()
        .flat_map(|l| l.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

/// Cut a document that is still too long (a huge error list) at a line
/// boundary, closing what was open, with a note saying so.
fn hard_cut(doc: &str, limit: usize) -> String {
    const NOTE: &str =
        "\n_The rest of this plan was cut to fit a comment; run `shoal plan` to see it whole._\n";
    let budget = limit.saturating_sub(NOTE.chars().count() + 16);
    let mut out = String::new();
    let mut used = 0;
    for line in doc.split_inclusive('\n') {
        let n = line.chars().count();
        if used + n > budget {
            break;
        }
        out.push_str(line);
        used += n;
    }
    let fences = out.lines().filter(|l| l.starts_with("```")).count();
    if fences % 2 == 1 {
        out.push_str("```\n");
    }
    if out.matches("<details").count() > out.matches("</details>").count() {
        out.push_str("</details>\n");
    }
    out.push_str(NOTE);
    out
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Text for HTML context (inside `<summary>`).
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Free text in markdown: HTML escaped, markdown punctuation escaped, one
/// line (an error's cause chain stays readable on one line).
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in html(s).chars() {
        match ch {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A table cell: free text where a line break is `<br>`.
fn cell(s: &str) -> String {
    s.split('\n').map(text).collect::<Vec<_>>().join("<br>")
}

/// Text inside a single-backtick code span (stack names, short SHAs):
/// backticks cannot appear in one, so they are dropped.
fn code(s: &str) -> String {
    s.replace('`', "")
}

#[cfg(test)]
mod tests;
