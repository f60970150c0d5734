//! What to do with one stack in a pass, decided from values only: its
//! planning result, what the swarm remembers about it (its record) and the
//! snapshot. The loop does what this says; retries after a failed apply
//! follow [`super::backoff::Backoff`], the error policy.
use super::reconciler::{Planned, StackProblem};
use super::record::StackRecord;
use super::status::Outcome;
use crate::diff::{only_digest_moves, registry_moved};
use crate::model::Plan;

/// The decision for one stack.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Its files do not load, or a policy denies it: left as it is.
    LeaveAlone { outcome: Outcome, error: String },
    /// Live equals desired: record the snapshot (and images) as synced.
    InSync { plan: Plan },
    /// The swarm was changed by hand since this snapshot was applied and
    /// self-heal is off: report, do not write.
    ReportDrift { planned: Planned },
    /// Apply the plan; `drift`: it heals a hand change.
    Apply { planned: Planned, drift: bool },
}

impl Decision {
    /// Whether the stack drifted from its applied revision.
    pub fn drift(&self) -> bool {
        matches!(
            self,
            Decision::ReportDrift { .. } | Decision::Apply { drift: true, .. }
        )
    }
}

/// Decide for one stack planned at `snapshot`. Changes planned at the very
/// revision last applied are drift (someone changed the swarm by hand),
/// except a tag whose registry digest moved since the last sync: that is
/// the registry's change. A digest set by hand (a rollback) is drift.
pub fn decide(
    result: Result<Planned, StackProblem>,
    rec: &StackRecord,
    snapshot: &str,
    self_heal: bool,
) -> Decision {
    let planned = match result {
        Err(StackProblem::Load(error)) => {
            return Decision::LeaveAlone {
                outcome: Outcome::LoadError,
                error,
            }
        }
        Err(StackProblem::PolicyDenied(error)) => {
            return Decision::LeaveAlone {
                outcome: Outcome::PolicyDenied,
                error,
            }
        }
        Ok(planned) => planned,
    };
    if !planned.plan.has_changes() {
        return Decision::InSync { plan: planned.plan };
    }
    let drift = rec.commit.as_deref() == Some(snapshot)
        && !(only_digest_moves(&planned.plan) && registry_moved(&rec.images, &planned.plan));
    if drift && !self_heal {
        Decision::ReportDrift { planned }
    } else {
        Decision::Apply { planned, drift }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Change, FieldChange, Kind};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn image_change(before: &str, after: &str) -> Planned {
        Planned {
            plan: Plan {
                changes: vec![Change {
                    action: Action::Update,
                    kind: Kind::Service,
                    name: "s_web".into(),
                    stack: "s".into(),
                    diff: vec![FieldChange {
                        path: crate::model::IMAGE_PATH.into(),
                        before: json!(before),
                        after: json!(after),
                        sensitive: false,
                    }],
                    desired: Some(json!({"TaskTemplate": {"ContainerSpec": {"Image": after}}})),
                    live_id: Some("id".into()),
                    live_version: Some(1),
                }],
            },
            text: String::new(),
        }
    }

    fn synced_at(commit: &str, image: &str) -> StackRecord {
        StackRecord {
            commit: Some(commit.into()),
            images: BTreeMap::from([("s_web".to_string(), image.to_string())]),
            ..StackRecord::default()
        }
    }

    #[test]
    fn problems_leave_the_stack_alone() {
        let d = decide(
            Err(StackProblem::PolicyDenied("no".into())),
            &StackRecord::default(),
            "c1",
            true,
        );
        assert_eq!(
            d,
            Decision::LeaveAlone {
                outcome: Outcome::PolicyDenied,
                error: "no".into()
            }
        );
    }

    #[test]
    fn a_new_revision_applies_and_the_same_revision_is_drift() {
        let planned = image_change("app:1", "app:2");
        let new = decide(Ok(planned.clone()), &synced_at("c0", "app:1"), "c1", false);
        assert!(matches!(new, Decision::Apply { drift: false, .. }));
        let same = decide(Ok(planned.clone()), &synced_at("c1", "app:1"), "c1", false);
        assert!(matches!(same, Decision::ReportDrift { .. }));
        let healed = decide(Ok(planned), &synced_at("c1", "app:1"), "c1", true);
        assert!(matches!(healed, Decision::Apply { drift: true, .. }));
    }

    #[test]
    fn a_registry_move_is_not_drift_and_a_rollback_by_hand_is() {
        let moved = image_change("app:3@sha256:aa", "app:3@sha256:bb");
        // Synced at aa; the registry now says bb: not drift.
        let d = decide(Ok(moved), &synced_at("c1", "app:3@sha256:aa"), "c1", false);
        assert!(matches!(d, Decision::Apply { drift: false, .. }));
        // Synced at bb; someone set aa by hand: the plan goes back to bb.
        let back = image_change("app:3@sha256:aa", "app:3@sha256:bb");
        let d = decide(Ok(back), &synced_at("c1", "app:3@sha256:bb"), "c1", false);
        assert!(matches!(d, Decision::ReportDrift { .. }));
    }
}
