//! Drift rules: which plan changes come from the registry rather than from
//! a hand edit of the swarm (a tag whose digest moved is not drift; a
//! digest set back by hand is), and the images a stack is synced at.
use crate::image::split_digest;
use crate::model::{Action, Change, Kind, Plan, IMAGE_PATH};
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether every change is a service image whose tag stayed and whose
/// registry digest moved (`app:3.0@sha256:ab…` -> `app:3.0@sha256:cd…`):
/// the registry changed, not the swarm by hand, so it is not drift.
pub fn only_digest_moves(plan: &Plan) -> bool {
    fn split(v: &Value) -> Option<(&str, Option<&str>)> {
        v.as_str().map(split_digest)
    }
    plan.has_changes()
        && plan
            .changes
            .iter()
            .filter(|c| c.action != Action::Noop)
            .all(|c| {
                c.action == Action::Update
                    && c.kind == Kind::Service
                    && !c.diff.is_empty()
                    && c.diff.iter().all(|f| {
                        f.path == IMAGE_PATH
                            && match (split(&f.before), split(&f.after)) {
                                (Some((was, Some(_))), Some((now, _))) => was == now,
                                _ => false,
                            }
                    })
            })
}

/// Whether every image change of `plan` goes to a digest other than the
/// one its service was last synced at (`synced`, from the stack record; a
/// service without one is taken to have had its digest moved).
pub fn registry_moved(synced: &BTreeMap<String, String>, plan: &Plan) -> bool {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .all(|c| match (synced.get(&c.name), desired_image(c)) {
            (Some(synced), Some(wanted)) => synced != wanted,
            _ => true,
        })
}

/// Service -> the image a stack is in sync at once `plan` is applied.
pub fn synced_images(plan: &Plan) -> BTreeMap<String, String> {
    plan.changes
        .iter()
        .filter_map(|c| desired_image(c).map(|i| (c.name.clone(), i.to_string())))
        .collect()
}

/// The image a service change writes (or keeps, for a no-op).
fn desired_image(c: &Change) -> Option<&str> {
    (c.kind == Kind::Service)
        .then_some(c.desired.as_ref())
        .flatten()
        .and_then(crate::image::image_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FieldChange;
    use serde_json::json;

    fn update(path: &str, before: Value, after: Value) -> Change {
        Change {
            action: Action::Update,
            kind: Kind::Service,
            name: "s_web".into(),
            stack: "s".into(),
            diff: vec![FieldChange {
                path: path.into(),
                before,
                after,
                sensitive: false,
            }],
            desired: None,
            live_id: None,
            live_version: None,
        }
    }

    #[test]
    fn a_moved_digest_alone_is_not_drift() {
        let image = "TaskTemplate.ContainerSpec.Image";
        let moved = update(
            image,
            json!("app:3.0@sha256:aa"),
            json!("app:3.0@sha256:bb"),
        );
        let plan = |changes: Vec<Change>| Plan { changes };
        assert!(only_digest_moves(&plan(vec![moved.clone()])));
        // A new tag, an unpinned service, or any other field is a change of
        // another kind.
        let retag = update(
            image,
            json!("app:3.0@sha256:aa"),
            json!("app:3.1@sha256:bb"),
        );
        let unpinned = update(image, json!("app:3.0"), json!("app:3.0@sha256:bb"));
        let scaled = update("Mode.Replicated.Replicas", json!(2), json!(3));
        for other in [retag, unpinned, scaled] {
            assert!(!only_digest_moves(&plan(vec![moved.clone(), other])));
        }
        assert!(!only_digest_moves(&plan(vec![])));
    }
}
