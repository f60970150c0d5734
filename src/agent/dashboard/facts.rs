//! What the dashboard shows beyond `/status`: the reconcile loop writes
//! these facts into the shared [`AgentStatus`](super::super::status::AgentStatus)
//! (the last plan of each stack, how long its step took, a short history,
//! the stack being applied, the next poll); the page only reads them.
use crate::agent::record::StackRecord;
use crate::agent::status::Outcome;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

/// History entries kept per stack (oldest dropped first).
pub const HISTORY_LEN: usize = 20;

/// Facts for the page, kept by the reconcile loop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageFacts {
    /// The stack whose plan is being applied right now.
    pub applying: Option<String>,
    /// When the poll interval next wakes the loop.
    pub next_poll: Option<SystemTime>,
    /// The last pass that planned (start and duration).
    pub last_pass: Option<PassFacts>,
    pub stacks: BTreeMap<String, StackFacts>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassFacts {
    pub started: SystemTime,
    pub took: Duration,
}

/// One stack's facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackFacts {
    /// The last plan with changes (or, until there is one, the last plan),
    /// as the CLI prints it with the policy checks appended, masked by the
    /// pipeline. A later pass that finds nothing to do keeps it: what was
    /// last applied stays readable.
    pub plan: Option<PlanFacts>,
    /// The last pass planned this stack and found nothing to change.
    pub in_sync_since_plan: bool,
    /// How long this stack's step of the last pass took (decide, apply,
    /// convergence wait, record).
    pub took: Duration,
    /// When the commit the stack is at was applied (from its state record).
    pub applied_at: Option<String>,
    /// Newest last.
    pub history: VecDeque<HistoryEntry>,
}

/// A plan and what it was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanFacts {
    pub text: String,
    pub commit: String,
    pub at: SystemTime,
    pub has_changes: bool,
}

/// One line of a stack's history: a commit applied, or a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub commit: String,
    pub outcome: Outcome,
    /// `None` when only the state record's text is known (`applied_at`
    /// that does not parse).
    pub at: Option<SystemTime>,
    pub error: Option<String>,
    /// Whether drift was healed (an apply at an already applied commit).
    pub drift: bool,
    /// Read from the swarm state record at start, not seen by this agent.
    pub from_record: bool,
}

/// What one stack's step ended with, as the loop knows it.
pub struct StepEnd<'a> {
    pub stack: &'a str,
    pub snapshot: &'a str,
    pub outcome: Outcome,
    pub drift: bool,
    pub error: Option<&'a str>,
    pub plan: Option<String>,
    /// Whether `plan` changes anything.
    pub plan_has_changes: bool,
    pub took: Duration,
    /// The record as it was before this step (to seed the history).
    pub record_before: &'a StackRecord,
    pub applied_at: Option<String>,
    pub now: SystemTime,
}

/// What the swarm remembers from before this agent started: the stack's
/// applied history in its state record (oldest first), else the commit the
/// record names.
fn seed_history(record: &StackRecord) -> VecDeque<HistoryEntry> {
    let from_record =
        |commit: &str, outcome: Outcome, at: Option<&str>, error: Option<&str>| HistoryEntry {
            commit: commit.to_string(),
            outcome,
            at: at.and_then(|t| humantime::parse_rfc3339(t).ok()),
            error: error.map(str::to_string),
            drift: false,
            from_record: true,
        };
    if record.history.is_empty() {
        return record
            .commit
            .iter()
            .map(|c| from_record(c, Outcome::Applied, record.applied_at.as_deref(), None))
            .collect();
    }
    let outcomes = [Outcome::Applied, Outcome::ApplyFailed, Outcome::RolledBack];
    record
        .history
        .iter()
        .take(HISTORY_LEN)
        .rev()
        .map(|e| {
            let outcome = outcomes
                .into_iter()
                .find(|o| o.as_str() == e.outcome)
                .unwrap_or(Outcome::ApplyFailed);
            let error = (outcome != Outcome::Applied).then_some(e.summary.as_str());
            from_record(&e.commit, outcome, Some(&e.at), error)
        })
        .collect()
}

impl PageFacts {
    /// Note the end of one stack's step.
    pub fn stack_done(&mut self, end: StepEnd<'_>) {
        let facts = self.stacks.entry(end.stack.to_string()).or_default();
        if facts.history.is_empty() {
            facts.history = seed_history(end.record_before);
        }
        if let Some(text) = end.plan {
            facts.in_sync_since_plan = !end.plan_has_changes;
            if end.plan_has_changes || facts.plan.as_ref().is_none_or(|p| !p.has_changes) {
                facts.plan = Some(PlanFacts {
                    text,
                    commit: end.snapshot.to_string(),
                    at: end.now,
                    has_changes: end.plan_has_changes,
                });
            }
        } else {
            facts.in_sync_since_plan = false;
        }
        facts.took = end.took;
        facts.applied_at = end.applied_at;
        let entry = HistoryEntry {
            commit: end.snapshot.to_string(),
            outcome: end.outcome,
            at: Some(end.now),
            error: end.error.map(str::to_string),
            drift: end.drift,
            from_record: false,
        };
        let last = facts.history.back();
        let worth = match end.outcome {
            // Every apply is history.
            Outcome::Applied => true,
            // A commit found already in sync is history once.
            Outcome::NoChange => last.is_none_or(|l| l.commit != entry.commit),
            // A failure is history once per commit, outcome and error.
            _ => last.is_none_or(|l| {
                (&l.commit, l.outcome, &l.error) != (&entry.commit, entry.outcome, &entry.error)
            }),
        };
        if worth {
            facts.history.push_back(entry);
            while facts.history.len() > HISTORY_LEN {
                facts.history.pop_front();
            }
        }
    }

    /// Keep only the stacks still in the source.
    pub fn retain(&mut self, seen: &[String]) {
        self.stacks.retain(|k, _| seen.contains(k));
        if self.applying.as_ref().is_some_and(|a| !seen.contains(a)) {
            self.applying = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end<'a>(rec: &'a StackRecord, snapshot: &'a str, outcome: Outcome) -> StepEnd<'a> {
        StepEnd {
            stack: "web",
            snapshot,
            outcome,
            drift: false,
            error: None,
            plan: Some("~ service web_app".into()),
            plan_has_changes: true,
            took: Duration::from_millis(5),
            record_before: rec,
            applied_at: None,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    #[test]
    fn history_starts_from_the_records_applied_history_oldest_first() {
        use crate::agent::history::Entry;
        let entry = |commit: &str, outcome: &str, summary: &str| Entry {
            commit: commit.into(),
            at: "2026-11-30T00:00:00Z".into(),
            outcome: outcome.into(),
            summary: summary.into(),
            by: "agent".into(),
        };
        let rec = StackRecord {
            commit: Some("c1".into()),
            history: vec![
                entry("c2", "rolled-back", "task: non-zero exit (1)"),
                entry("c1", "ok", "0 to create, 1 to update, 0 to delete"),
                entry("c0", "ok", "2 to create, 0 to update, 0 to delete"),
            ],
            ..StackRecord::default()
        };
        let mut f = PageFacts::default();
        f.stack_done(end(&rec, "c1", Outcome::NoChange));
        let h: Vec<(&str, Outcome, Option<&str>)> = f.stacks["web"]
            .history
            .iter()
            .map(|e| (e.commit.as_str(), e.outcome, e.error.as_deref()))
            .collect();
        assert_eq!(
            h,
            [
                ("c0", Outcome::Applied, None),
                ("c1", Outcome::Applied, None),
                ("c2", Outcome::RolledBack, Some("task: non-zero exit (1)")),
                ("c1", Outcome::NoChange, None),
            ]
        );
        assert!(f.stacks["web"]
            .history
            .iter()
            .take(3)
            .all(|e| e.from_record && e.at.is_some()));
    }

    #[test]
    fn history_starts_from_the_record_and_keeps_applies_and_new_failures() {
        let rec = StackRecord {
            commit: Some("c0".into()),
            applied_at: Some("2026-11-30T00:00:00Z".into()),
            ..StackRecord::default()
        };
        let mut f = PageFacts::default();
        f.stack_done(end(&rec, "c0", Outcome::NoChange));
        f.stack_done(end(&rec, "c0", Outcome::NoChange));
        f.stack_done(end(&rec, "c1", Outcome::Applied));
        let mut failed = end(&rec, "c2", Outcome::ApplyFailed);
        failed.error = Some("boom");
        f.stack_done(failed);
        let mut again = end(&rec, "c2", Outcome::ApplyFailed);
        again.error = Some("boom");
        f.stack_done(again);
        let h: Vec<(&str, Outcome, bool)> = f.stacks["web"]
            .history
            .iter()
            .map(|e| (e.commit.as_str(), e.outcome, e.from_record))
            .collect();
        assert_eq!(
            h,
            vec![
                ("c0", Outcome::Applied, true),
                ("c1", Outcome::Applied, false),
                ("c2", Outcome::ApplyFailed, false),
            ]
        );
        assert!(f.stacks["web"].history[0].at.is_some());
        // The plan that applied c1 stays shown after a pass with nothing to do.
        let mut quiet = end(&rec, "c1", Outcome::NoChange);
        quiet.plan = Some("No changes.".into());
        quiet.plan_has_changes = false;
        f.stack_done(quiet);
        let web = &f.stacks["web"];
        assert!(web.in_sync_since_plan);
        assert_eq!(web.plan.as_ref().unwrap().text, "~ service web_app");
    }

    #[test]
    fn history_is_bounded_and_gone_stacks_are_dropped() {
        let rec = StackRecord::default();
        let mut f = PageFacts::default();
        for i in 0..(HISTORY_LEN + 5) {
            let id = format!("c{i}");
            f.stack_done(end(&rec, &id, Outcome::Applied));
        }
        assert_eq!(f.stacks["web"].history.len(), HISTORY_LEN);
        assert_eq!(f.stacks["web"].history[0].commit, "c5");
        f.applying = Some("web".into());
        f.retain(&["other".to_string()]);
        assert!(f.stacks.is_empty() && f.applying.is_none());
    }
}
