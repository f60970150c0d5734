//! `/metrics`: the agent status in the Prometheus text exposition format
//! (version 0.0.4). Pure: status in, text out.
use super::status::{AgentStatus, Counters, StackState, StackStatus};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::SystemTime;

/// The content type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Render every `shoal_` metric.
pub fn render(status: &AgentStatus) -> String {
    let mut out = String::new();
    counters(&mut out, &status.counters);
    stacks(&mut out, &status.stacks);
    family(
        &mut out,
        "shoal_lease_holder",
        "gauge",
        "1 when this agent holds the applier lease.",
    );
    let holder = if status.lease_holder { 1.0 } else { 0.0 };
    sample(&mut out, "shoal_lease_holder", &[], holder);
    out
}

/// The agent's counters: reconciles by outcome, the last fully synced
/// pass, and the plain totals.
fn counters(out: &mut String, c: &Counters) {
    family(
        out,
        "shoal_reconciles_total",
        "counter",
        "Stack reconciles by outcome (source-error: the source could not be read).",
    );
    for (outcome, n) in &c.reconciles {
        sample(
            out,
            "shoal_reconciles_total",
            &[("outcome", outcome)],
            *n as f64,
        );
    }

    family(
        out,
        "shoal_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the end of the last pass in which every stack ended synced (0: never).",
    );
    let last = c.last_success.map(unix_seconds).unwrap_or(0.0);
    sample(out, "shoal_last_success_timestamp_seconds", &[], last);

    for (name, help, value) in [
        (
            "shoal_drift_corrections_total",
            "Applies that healed drift (live changed while the revision did not).",
            c.drift_corrections,
        ),
        (
            "shoal_changes_applied_total",
            "Objects created, updated or deleted by applies.",
            c.changes_applied,
        ),
        (
            "shoal_git_fetch_errors_total",
            "Times the source could not be read.",
            c.git_fetch_errors,
        ),
        (
            "shoal_notifications_dropped_total",
            "Notifications dropped because a target's queue was full.",
            c.notifications_dropped,
        ),
    ] {
        family(out, name, "counter", help);
        sample(out, name, &[], value as f64);
    }
}

/// One gauge per stack and status (1 for the one it is in), and whether
/// its commit failed and was rolled back.
fn stacks(out: &mut String, stacks: &BTreeMap<String, StackStatus>) {
    family(
        out,
        "shoal_stack_status",
        "gauge",
        "1 for the status each stack is in, 0 for the others.",
    );
    for (stack, s) in stacks {
        for state in StackState::ALL {
            let v = if s.status == state { 1.0 } else { 0.0 };
            sample(
                out,
                "shoal_stack_status",
                &[("stack", stack), ("status", state.as_str())],
                v,
            );
        }
    }

    family(
        out,
        "shoal_stack_failed_commit",
        "gauge",
        "1 while the stack's commit failed and was rolled back (not retried until a new commit or POST /sync).",
    );
    for (stack, s) in stacks {
        let v = if s.failed_commit.is_some() { 1.0 } else { 0.0 };
        sample(out, "shoal_stack_failed_commit", &[("stack", stack)], v);
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as f64)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::status::{Outcome, StackStatus};
    use crate::model::Summary;
    use std::time::Duration;

    fn stack(outcome: Outcome) -> StackStatus {
        StackStatus {
            commit: "c1".into(),
            applied_commit: Some("c1".into()),
            outcome,
            status: outcome.status(),
            summary: Summary::default(),
            drift: false,
            error: None,
            last_reconcile: SystemTime::UNIX_EPOCH,
            failures: 0,
            failed_commit: None,
        }
    }

    #[test]
    fn renders_every_family_with_help_type_and_labels() {
        let mut s = AgentStatus::new("n1", true);
        s.lease_holder = true;
        s.count(Outcome::Applied);
        s.count(Outcome::Applied);
        s.count(Outcome::PolicyDenied);
        s.counters.changes_applied = 3;
        s.counters.drift_corrections = 1;
        s.counters.git_fetch_errors = 2;
        s.counters.last_success = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        s.stacks.insert("web".into(), stack(Outcome::Applied));
        s.stacks.insert("db".into(), stack(Outcome::PolicyDenied));
        let text = render(&s);
        for line in [
            "# TYPE shoal_reconciles_total counter",
            "shoal_reconciles_total{outcome=\"ok\"} 2",
            "shoal_reconciles_total{outcome=\"policy-denied\"} 1",
            "shoal_reconciles_total{outcome=\"source-error\"} 0",
            "# TYPE shoal_last_success_timestamp_seconds gauge",
            "shoal_last_success_timestamp_seconds 1700000000",
            "shoal_drift_corrections_total 1",
            "shoal_changes_applied_total 3",
            "shoal_git_fetch_errors_total 2",
            "shoal_stack_status{stack=\"web\",status=\"synced\"} 1",
            "shoal_stack_status{stack=\"web\",status=\"policy-denied\"} 0",
            "shoal_stack_status{stack=\"db\",status=\"policy-denied\"} 1",
            "shoal_stack_status{stack=\"db\",status=\"synced\"} 0",
            "shoal_lease_holder 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line is `name{labels} value` with a numeric value.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = l.rsplit_once(' ').unwrap();
            assert!(name.starts_with("shoal_"), "{l}");
            assert!(value.parse::<f64>().is_ok(), "{l}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
