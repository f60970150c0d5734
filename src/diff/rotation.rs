//! Config and secret rotation by content. Swarm configs and secrets are
//! immutable (only labels can change), so a new content needs a new
//! object and the services must point at it in the same update:
//!
//! - a live version (`<stack>_<name>` or `<stack>_<name>-<hash8>`) with the
//!   desired content is reused: the services reference it, no change;
//! - no live version at all: create the plain name (as docker does);
//! - live versions, none with this content: create `<name>-<hash8>`
//!   (first 8 hex of the content's sha256);
//! - versions no desired service uses any more are deleted, keeping the
//!   newest `keep` of them for a quick rollback.
//!
//! Configs compare by their data. Secrets cannot be read back, so shoal
//! labels each secret it creates with [`DIGEST_LABEL`] and compares that.
//! A secret without the label (created by `docker stack deploy`) under
//! the plain name is taken to hold the desired content: nothing can
//! prove otherwise, and assuming a change would roll every service of a
//! docker-deployed stack on shoal's first run. Rename the secret in the
//! repository to force a new version.
use super::normalize::{data_bytes, data_text, NormContext, DIGEST_LABEL};
use crate::model::{Action, Change, FieldChange};
use crate::model::{DesiredObject, Kind, LiveObject};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What rotation decided for one kind.
#[derive(Debug, Default)]
pub struct Rotation {
    pub changes: Vec<Change>,
    /// Desired name -> the name services must reference.
    pub rename: BTreeMap<String, String>,
}

/// Hex sha256 of a config's or secret's content (the decoded `Data`).
pub fn content_digest(spec: &Value) -> String {
    let data = spec.get("Data").cloned().unwrap_or(Value::Null);
    let bytes =
        data_bytes(&data).unwrap_or_else(|| data.as_str().unwrap_or_default().as_bytes().to_vec());
    hex::encode(Sha256::digest(&bytes))
}

/// Whether `name` is `desired` or a shoal version `desired-<8 hex>`.
pub fn is_version_of(name: &str, desired: &str) -> bool {
    if name == desired {
        return true;
    }
    match name.strip_prefix(desired).and_then(|r| r.strip_prefix('-')) {
        Some(h) => {
            h.len() == 8
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
    }
}

/// Whether a live config/secret holds the desired content.
fn same_content(kind: Kind, desired_name: &str, desired: &Value, live: &LiveObject) -> bool {
    match kind {
        Kind::Secret => match live_digest(&live.spec) {
            Some(d) => d == format!("sha256:{}", content_digest(desired)),
            None => live.name == desired_name,
        },
        _ => {
            let (d, l) = (desired.get("Data"), live.spec.get("Data"));
            match (d.and_then(data_bytes), l.and_then(data_bytes)) {
                (Some(a), Some(b)) => a == b,
                _ => d == l,
            }
        }
    }
}

fn live_digest(spec: &Value) -> Option<&str> {
    spec.get("Labels")?.get(DIGEST_LABEL)?.as_str()
}

/// The spec shoal writes for a desired object under `name`: secrets get
/// the digest label.
fn spec_named(kind: Kind, desired: &Value, name: &str) -> Value {
    let mut spec = desired.clone();
    spec["Name"] = json!(name);
    if kind == Kind::Secret {
        let digest = format!("sha256:{}", content_digest(desired));
        if !spec.get("Labels").is_some_and(Value::is_object) {
            spec["Labels"] = json!({});
        }
        spec["Labels"][DIGEST_LABEL] = json!(digest);
    }
    spec
}

/// The content change shown on a create: config text (before: the version
/// the services use now, if any), for secrets only that it changed.
fn content_change(kind: Kind, desired: &Value, previous: Option<&LiveObject>) -> FieldChange {
    match kind {
        Kind::Secret => FieldChange {
            path: "Data".into(),
            before: previous
                .map(|p| json!(live_digest(&p.spec).unwrap_or("unknown")))
                .unwrap_or(Value::Null),
            after: json!(format!("sha256:{}", content_digest(desired))),
            sensitive: true,
        },
        _ => FieldChange {
            path: "Data".into(),
            before: previous
                .and_then(|p| p.spec.get("Data"))
                .map(|d| json!(data_text(d)))
                .unwrap_or(Value::Null),
            after: json!(data_text(desired.get("Data").unwrap_or(&Value::Null))),
            sensitive: false,
        },
    }
}

fn newest_first(a: &&LiveObject, b: &&LiveObject) -> std::cmp::Ordering {
    b.created_at
        .cmp(&a.created_at)
        .then_with(|| b.name.cmp(&a.name))
}

/// Plan configs (or secrets) of one stack. `live_refs` are the names the
/// live services reference now (to prefer the version in use).
pub fn rotate(
    kind: Kind,
    stack: &str,
    desired: &[DesiredObject],
    live: &[LiveObject],
    live_refs: &BTreeSet<String>,
    keep: usize,
    ctx: &NormContext,
) -> Rotation {
    let mut out = Rotation::default();
    let desired_names: BTreeSet<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    for d in desired {
        let versions = versions_of(d, live, &desired_names);
        claimed.extend(versions.iter().map(|v| v.name.as_str()));
        let change = match reusable_version(kind, d, &versions, live_refs) {
            Some(l) => update_version(kind, stack, d, l, ctx),
            None => create_version(kind, stack, d, &versions, live_refs),
        };
        let chosen = change.name.clone();
        out.changes.push(change);
        // Unused versions: all but the chosen one; keep the newest `keep`.
        let mut unused: Vec<&LiveObject> =
            versions.into_iter().filter(|v| v.name != chosen).collect();
        unused.sort_by(newest_first);
        for old in unused.into_iter().skip(keep) {
            out.changes.push(delete(kind, stack, old));
        }
        out.rename.insert(d.name.clone(), chosen);
    }
    for l in live.iter().filter(|l| !claimed.contains(l.name.as_str())) {
        out.changes.push(delete(kind, stack, l));
    }
    out
}

/// The live versions of desired object `d`: its plain name or a
/// `name-<digest>` version of it, unless that name is itself desired.
fn versions_of<'a>(
    d: &DesiredObject,
    live: &'a [LiveObject],
    desired_names: &BTreeSet<&str>,
) -> Vec<&'a LiveObject> {
    live.iter()
        .filter(|l| is_version_of(&l.name, &d.name))
        .filter(|l| l.name == d.name || !desired_names.contains(l.name.as_str()))
        .collect()
}

/// The live version with the desired content to keep using, if any:
/// the version in use, then the plain name, then the newest.
pub(super) fn reusable_version<'a>(
    kind: Kind,
    d: &DesiredObject,
    versions: &[&'a LiveObject],
    live_refs: &BTreeSet<String>,
) -> Option<&'a LiveObject> {
    let mut matching: Vec<&LiveObject> = versions
        .iter()
        .copied()
        .filter(|l| same_content(kind, &d.name, &d.spec, l))
        .collect();
    matching.sort_by(|a, b| {
        live_refs
            .contains(&b.name)
            .cmp(&live_refs.contains(&a.name))
            .then_with(|| (b.name == d.name).cmp(&(a.name == d.name)))
            .then_with(|| newest_first(a, b))
    });
    matching.first().copied()
}

/// Keep live version `l` (same content): a no-op, or an update of what
/// may change in place (labels).
fn update_version(
    kind: Kind,
    stack: &str,
    d: &DesiredObject,
    l: &LiveObject,
    ctx: &NormContext,
) -> Change {
    let spec = spec_named(kind, &d.spec, &l.name);
    let diff = super::diff_spec_with(kind, &spec, &l.spec, ctx);
    update_or_noop(kind, stack, l, diff, spec)
}

/// A change to live object `live` that writes `desired`: an update when
/// the diff has fields, else a no-op.
pub(super) fn update_or_noop(
    kind: Kind,
    stack: &str,
    live: &LiveObject,
    diff: Vec<FieldChange>,
    desired: Value,
) -> Change {
    Change {
        action: if diff.is_empty() {
            Action::Noop
        } else {
            Action::Update
        },
        kind,
        name: live.name.clone(),
        stack: stack.to_owned(),
        diff,
        desired: Some(desired),
        live_id: Some(live.id.clone()),
        live_version: Some(live.version),
    }
}

/// Create a new version: the plain name when none exists yet, else
/// `name-<first 8 of the content digest>`; its diff is against the
/// version in use (or the plain-named one).
fn create_version(
    kind: Kind,
    stack: &str,
    d: &DesiredObject,
    versions: &[&LiveObject],
    live_refs: &BTreeSet<String>,
) -> Change {
    let name = if versions.is_empty() {
        d.name.clone()
    } else {
        format!("{}-{}", d.name, &content_digest(&d.spec)[..8])
    };
    let previous = versions
        .iter()
        .copied()
        .filter(|v| live_refs.contains(&v.name))
        .min_by(newest_first)
        .or_else(|| versions.iter().copied().find(|v| v.name == d.name));
    Change {
        action: Action::Create,
        kind,
        name: name.clone(),
        stack: stack.to_owned(),
        diff: vec![content_change(kind, &d.spec, previous)],
        desired: Some(spec_named(kind, &d.spec, &name)),
        live_id: None,
        live_version: None,
    }
}

/// A delete of a live object.
pub fn delete(kind: Kind, stack: &str, live: &LiveObject) -> Change {
    Change {
        action: Action::Delete,
        kind,
        name: live.name.clone(),
        stack: stack.to_owned(),
        diff: Vec::new(),
        desired: None,
        live_id: Some(live.id.clone()),
        live_version: Some(live.version),
    }
}
