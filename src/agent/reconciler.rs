//! The narrow seam between the agent and the pipeline. The agent decides
//! *when* and *whether* to write (triggers, lease, drift, backoff); the
//! [`Reconciler`] knows *how* to read the source, plan a stack and apply it.
use crate::model::{Plan, Summary};
use std::future::Future;

/// One resolved state of the source: everything a pass plans from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// What the stacks were read from: a commit id for git; for a directory,
    /// something that changes when the files change (e.g. `dir:<digest>`).
    /// The agent compares it with the last applied id of a stack to tell a
    /// new revision (always applied) from drift (applied only with
    /// self-heal).
    pub id: String,
    /// The commit's subject line, for messages (none for a directory).
    pub subject: Option<String>,
}

/// What people want to know about a commit besides its id (the
/// dashboard shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMeta {
    pub subject: String,
    pub author: String,
    /// Committer time.
    pub time: std::time::SystemTime,
}

/// Why a stack was left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackProblem {
    /// Its files do not load or convert (the message names file:line).
    Load(String),
    /// A policy denies it (the message lists the violations).
    PolicyDenied(String),
}

/// A stack whose plan was computed and is allowed by the policies.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// What apply writes. Empty (or only no-ops) when live equals desired.
    pub plan: Plan,
    /// The plan as people read it (logged before applying).
    pub text: String,
}

/// The planning result of one stack of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct StackPlan {
    /// The stack (namespace) name.
    pub stack: String,
    pub result: Result<Planned, StackProblem>,
}

impl StackPlan {
    /// Counts of the plan, zero when the stack did not plan.
    pub fn summary(&self) -> Summary {
        match &self.result {
            Ok(p) => p.plan.summary(),
            Err(_) => Summary::default(),
        }
    }
}

/// Why a [`Reconciler`] call failed; messages are masked already.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// The source, or the repository as a whole, could not be read: the
    /// pass changes nothing.
    #[error("{0}")]
    Source(String),
    /// Applying one stack failed; the agent retries it with backoff.
    #[error("{message}")]
    Apply { stack: String, message: String },
}

/// The pipeline as the agent drives it. Implemented by the real pipeline
/// (source -> compose -> convert -> diff -> policy, apply) and by fakes in
/// tests. Methods take `&self`; the agent never calls two at once.
pub trait Reconciler: Send + Sync + 'static {
    /// Resolve the source: a git fetch (only if the remote moved) or a
    /// directory read. An error here is counted as a source (git fetch)
    /// error and the pass ends without touching any stack.
    fn snapshot(&self) -> impl Future<Output = Result<Snapshot, ReconcileError>> + Send;

    /// Load, plan and check every stack of the snapshot against the live
    /// swarm. One entry per stack; a stack that fails to load or is denied
    /// does not prevent the others from planning. `Err` when the repository
    /// as a whole could not be read: then nothing is known about any stack,
    /// and the pass changes nothing (not even records of stacks).
    fn plan(
        &self,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<Vec<StackPlan>, ReconcileError>> + Send;

    /// Apply one stack's plan (ordered writes, convergence wait). The error
    /// says what failed; the agent retries with backoff.
    fn apply(
        &self,
        stack: &str,
        plan: &Plan,
    ) -> impl Future<Output = Result<(), ReconcileError>> + Send;

    /// Subject, author and time of a snapshot id, if the source knows it
    /// without any network request (a commit in the git cache). Blocking;
    /// call it off the async threads.
    fn describe(&self, _id: &str) -> Option<CommitMeta> {
        None
    }

    /// The source's URL without credentials (for links to the forge).
    fn source_url(&self) -> Option<String> {
        None
    }
}

/// Split one plan covering many stacks into one plan per stack, keeping
/// the order of the changes (apply order) within each stack. Every name in
/// `stacks` gets an entry, empty when nothing changes for it, so a stack in
/// sync is still reported; stacks only found in the changes (pruned ones)
/// get an entry too.
pub fn split_by_stack<'a>(
    plan: &Plan,
    stacks: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, Plan> {
    let mut out: std::collections::BTreeMap<String, Plan> = stacks
        .into_iter()
        .map(|s| (s.to_string(), Plan::default()))
        .collect();
    for c in &plan.changes {
        out.entry(c.stack.clone())
            .or_default()
            .changes
            .push(c.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use crate::model::{Action, Change};

    fn change(stack: &str, name: &str) -> Change {
        Change {
            action: Action::Update,
            kind: Kind::Service,
            name: format!("{stack}_{name}"),
            stack: stack.to_string(),
            diff: vec![],
            desired: None,
            live_id: None,
            live_version: None,
        }
    }

    #[test]
    fn split_keeps_order_and_reports_stacks_in_sync() {
        let plan = Plan {
            changes: vec![
                change("web", "a"),
                change("db", "x"),
                change("web", "b"),
                change("old", "y"),
            ],
        };
        let split = split_by_stack(&plan, ["web", "db", "quiet"]);
        let names =
            |s: &str| -> Vec<String> { split[s].changes.iter().map(|c| c.name.clone()).collect() };
        assert_eq!(names("web"), vec!["web_a", "web_b"]);
        assert_eq!(names("db"), vec!["db_x"]);
        assert!(split["quiet"].changes.is_empty());
        assert_eq!(names("old"), vec!["old_y"]);
    }
}
