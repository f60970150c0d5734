//! What the agent knows about itself and each stack: one value, shared
//! behind a mutex, rendered as `/status` JSON and as `/metrics`.
use crate::model::Summary;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The result of one stack in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Changes were applied.
    #[serde(rename = "ok")]
    Applied,
    /// Live already equals desired.
    NoChange,
    /// Live differs from the last applied revision and self-heal is off.
    Drift,
    LoadError,
    PolicyDenied,
    ApplyFailed,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Applied,
        Outcome::NoChange,
        Outcome::Drift,
        Outcome::LoadError,
        Outcome::PolicyDenied,
        Outcome::ApplyFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "ok",
            Outcome::NoChange => "no-change",
            Outcome::Drift => "drift",
            Outcome::LoadError => "load-error",
            Outcome::PolicyDenied => "policy-denied",
            Outcome::ApplyFailed => "apply-failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Where the stack stands after this outcome.
    pub fn status(self) -> StackState {
        match self {
            Outcome::Applied | Outcome::NoChange => StackState::Synced,
            Outcome::Drift => StackState::Drifted,
            Outcome::LoadError => StackState::LoadError,
            Outcome::PolicyDenied => StackState::PolicyDenied,
            Outcome::ApplyFailed => StackState::ApplyFailed,
        }
    }
}

/// `reconciles_total` label of a pass whose source could not be read.
pub const SOURCE_ERROR: &str = "source-error";

/// Where a stack stands (the `status` label of `shoal_stack_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StackState {
    Synced,
    Drifted,
    LoadError,
    PolicyDenied,
    ApplyFailed,
}

impl StackState {
    pub const ALL: [StackState; 5] = [
        StackState::Synced,
        StackState::Drifted,
        StackState::LoadError,
        StackState::PolicyDenied,
        StackState::ApplyFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StackState::Synced => "synced",
            StackState::Drifted => "drifted",
            StackState::LoadError => "load-error",
            StackState::PolicyDenied => "policy-denied",
            StackState::ApplyFailed => "apply-failed",
        }
    }
}

/// This agent's part in the one-applier lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The lease was not decided yet.
    Starting,
    /// Holds the lease: plans and applies.
    Leader,
    /// Another agent holds the lease: serves HTTP only.
    Standby,
}

/// The last pass of one stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackStatus {
    /// The snapshot the stack was last planned from.
    pub commit: String,
    /// The snapshot last applied successfully (from the swarm state record).
    pub applied_commit: Option<String>,
    pub outcome: Outcome,
    pub status: StackState,
    /// Counts of the last plan.
    pub summary: Summary,
    /// Live differed from the last applied revision (healed or reported).
    pub drift: bool,
    pub error: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub last_reconcile: SystemTime,
    /// Consecutive failed applies (0 when fine).
    pub failures: u32,
}

/// Counters exported in `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counters {
    /// Per-stack outcomes of every pass, plus `source-error` passes.
    pub reconciles: BTreeMap<&'static str, u64>,
    pub drift_corrections: u64,
    /// Notifications dropped because a target's queue was full.
    pub notifications_dropped: u64,
    pub changes_applied: u64,
    pub git_fetch_errors: u64,
    /// The end of the last pass whose source resolved and whose stacks all
    /// ended synced (or drift reported).
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_success: Option<SystemTime>,
}

impl Default for Counters {
    fn default() -> Self {
        let mut reconciles: BTreeMap<&'static str, u64> =
            Outcome::ALL.iter().map(|o| (o.as_str(), 0)).collect();
        reconciles.insert(SOURCE_ERROR, 0);
        Counters {
            reconciles,
            drift_corrections: 0,
            notifications_dropped: 0,
            changes_applied: 0,
            git_fetch_errors: 0,
            last_success: None,
        }
    }
}

/// The last snapshot resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotStatus {
    pub id: String,
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
}

/// Everything `/status`, `/metrics` and `/healthz` show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStatus {
    pub identity: String,
    pub role: Role,
    pub lease_holder: bool,
    /// Who holds the lease as last seen (may be this agent).
    pub lease_holder_identity: Option<String>,
    pub self_heal: bool,
    pub last_snapshot: Option<SnapshotStatus>,
    /// Set once the first pass finished (or the agent knows it is standby).
    pub ready: bool,
    /// The last pass-level error (source unreadable, swarm unreachable).
    pub last_error: Option<String>,
    pub stacks: BTreeMap<String, StackStatus>,
    pub counters: Counters,
    /// What the dashboard shows beyond this document (plans, history).
    #[serde(skip)]
    pub page: super::dashboard::PageFacts,
}

impl AgentStatus {
    pub fn new(identity: impl Into<String>, self_heal: bool) -> Self {
        AgentStatus {
            identity: identity.into(),
            role: Role::Starting,
            lease_holder: false,
            lease_holder_identity: None,
            self_heal,
            last_snapshot: None,
            ready: false,
            last_error: None,
            stacks: BTreeMap::new(),
            counters: Counters::default(),
            page: Default::default(),
        }
    }

    /// Count one outcome of one stack.
    pub fn count(&mut self, outcome: Outcome) {
        *self
            .counters
            .reconciles
            .entry(outcome.as_str())
            .or_default() += 1;
    }

    /// `/status` as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        // Serialising plain data (strings, numbers, maps with string keys)
        // cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_seconds(*t))
}

fn rfc3339_opt<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn status_json_names_stacks_lease_and_snapshot() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut s = AgentStatus::new("node1:42", true);
        s.role = Role::Leader;
        s.lease_holder = true;
        s.lease_holder_identity = Some("node1:42".into());
        s.last_snapshot = Some(SnapshotStatus {
            id: "3f2a9c1".into(),
            at,
        });
        s.stacks.insert(
            "web".into(),
            StackStatus {
                commit: "3f2a9c1".into(),
                applied_commit: Some("3f2a9c1".into()),
                outcome: Outcome::Applied,
                status: StackState::Synced,
                summary: Summary {
                    create: 1,
                    update: 2,
                    delete: 0,
                },
                drift: false,
                error: None,
                last_reconcile: at,
                failures: 0,
            },
        );
        let v = s.to_json();
        assert_eq!(v["identity"], "node1:42");
        assert_eq!(v["role"], "leader");
        assert_eq!(v["lease_holder"], true);
        assert_eq!(
            v["last_snapshot"],
            json!({"id": "3f2a9c1", "at": "2027-01-15T08:00:00Z"})
        );
        assert_eq!(
            v["stacks"]["web"],
            json!({
                "commit": "3f2a9c1",
                "applied_commit": "3f2a9c1",
                "outcome": "ok",
                "status": "synced",
                "summary": {"create": 1, "update": 2, "delete": 0},
                "drift": false,
                "error": null,
                "last_reconcile": "2027-01-15T08:00:00Z",
                "failures": 0
            })
        );
        assert_eq!(v["counters"]["reconciles"]["policy-denied"], 0);
    }

    #[test]
    fn outcome_names_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }
}
