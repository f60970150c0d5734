//! diff(desired, live) -> changes, field by field, ignoring what the
//! daemon fills in or reorders (`normalize`), comparing keyed lists by key
//! (`compare`) and rotating immutable configs/secrets by content
//! (`rotation`). Pure: no daemon, no clock.
mod compare;
mod drift;
pub mod normalize;
pub mod rotation;

pub use compare::is_secret_name;
pub use drift::{only_digest_moves, registry_moved, synced_images};
pub use normalize::{NormContext, DIGEST_LABEL};

use crate::model::{Action, Change, FieldChange, REPLACE_REQUIRED};
use crate::model::{DesiredObject, DesiredStack, Kind, LiveObject, LiveStack};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Knobs of the diff.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Unused old config/secret versions to keep per name (newest first).
    pub keep_versions: usize,
    /// Network id -> name for networks outside the stack (external ones):
    /// a live service names its networks by id, the desired one by name.
    /// The stack's own networks are resolved from the live stack.
    pub network_names: BTreeMap<String, String>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            keep_versions: 1,
            network_names: BTreeMap::new(),
        }
    }
}

impl DiffOptions {
    /// Add network names from a name -> id map (what
    /// `Engine::network_ids` returns), so services attached to external
    /// networks compare by name.
    pub fn with_network_ids(mut self, by_name: &BTreeMap<String, String>) -> Self {
        for (name, id) in by_name {
            self.network_names.insert(id.clone(), name.clone());
        }
        self
    }

    /// The normalization context these options give [`diff_spec_with`].
    pub fn context(&self) -> NormContext {
        NormContext {
            network_names: self.network_names.clone(),
        }
    }
}

/// The changes that make `live` equal `desired` for one stack. `desired`
/// is `None` for a stack removed from the repository (delete everything it
/// owns); `live` is `None` for a stack not yet on the swarm.
pub fn plan_stack(desired: Option<&DesiredStack>, live: Option<&LiveStack>) -> Vec<Change> {
    plan_stack_with(desired, live, &DiffOptions::default())
}

/// [`plan_stack`] with options. Changes come sorted by kind (networks,
/// configs, secrets, services), then name; unchanged objects are `Noop`.
pub fn plan_stack_with(
    desired: Option<&DesiredStack>,
    live: Option<&LiveStack>,
    opts: &DiffOptions,
) -> Vec<Change> {
    let stack = desired
        .map(|d| d.name.clone())
        .or_else(|| live.map(|l| l.name.clone()))
        .unwrap_or_default();
    let no_live = LiveStack::default();
    let live = live.unwrap_or(&no_live);
    let no_desired = DesiredStack::default();
    let desired = desired.unwrap_or(&no_desired);

    let mut ctx = opts.context();
    for n in &live.networks {
        ctx.network_names.insert(n.id.clone(), n.name.clone());
    }

    let mut changes = Vec::new();
    let mut services = desired.services.clone();
    for (kind, field, name_key) in [
        (Kind::Config, "Configs", "ConfigName"),
        (Kind::Secret, "Secrets", "SecretName"),
    ] {
        let live_refs = referenced(&live.services, field, name_key);
        let r = rotation::rotate(
            kind,
            &stack,
            desired.objects(kind),
            live.objects(kind),
            &live_refs,
            opts.keep_versions,
            &ctx,
        );
        for s in &mut services {
            rename_refs(&mut s.spec, field, name_key, &r.rename);
        }
        changes.extend(r.changes);
    }
    changes.extend(match_by_name(
        Kind::Network,
        &stack,
        &desired.networks,
        &live.networks,
        &ctx,
    ));
    changes.extend(match_by_name(
        Kind::Service,
        &stack,
        &services,
        &live.services,
        &ctx,
    ));
    for c in &mut changes {
        if c.action == Action::Create && c.diff.is_empty() {
            if let Some(spec) = &c.desired {
                c.diff = creation_fields(c.kind, spec, &ctx);
            }
        }
    }
    changes.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.name.cmp(&b.name)));
    changes
}

/// What a create writes, field by field in canonical form (defaults the
/// daemon would fill are left out, as in updates); a secret's content is
/// only said to be there.
pub fn creation_fields(kind: Kind, spec: &Value, ctx: &NormContext) -> Vec<FieldChange> {
    let (canonical, _) = normalize::normalize_pair(kind, spec, &json!({}), ctx);
    let mut fields = compare::fields_of(&canonical);
    // What the block's header or an entry's key already says: the name,
    // the stack label on everything, `Target`s equal to their key.
    fields.retain(|f| {
        let repeats_key = f
            .path
            .strip_suffix("].Target")
            .and_then(|p| p.rsplit_once('['))
            .is_some_and(|(_, key)| f.after.as_str() == Some(key));
        f.path != "Name" && !f.path.ends_with("[com.docker.stack.namespace]") && !repeats_key
    });
    if kind == Kind::Secret && spec.get("Data").is_some() {
        fields.insert(
            0,
            FieldChange {
                path: "Data".into(),
                before: Value::Null,
                after: json!("(content)"),
                sensitive: true,
            },
        );
    }
    fields
}

/// The changes that turn the `live` spec of one object into the `desired`
/// one, after normalization. Network attachments stay ids unless
/// resolved: use [`diff_spec_with`] with the network names when comparing
/// services.
pub fn diff_spec(kind: Kind, desired: &Value, live: &Value) -> Vec<FieldChange> {
    diff_spec_with(kind, desired, live, &NormContext::default())
}

/// [`diff_spec`] with a normalization context (network id -> name).
pub fn diff_spec_with(
    kind: Kind,
    desired: &Value,
    live: &Value,
    ctx: &NormContext,
) -> Vec<FieldChange> {
    let (d, l) = normalize::normalize_pair(kind, desired, live, ctx);
    let mut diff = compare::diff_tree(&l, &d);
    if kind == Kind::Secret {
        if let Some(c) = secret_content_change(desired, live) {
            diff.insert(0, c);
        }
    }
    if kind == Kind::Network && !diff.is_empty() {
        diff.insert(
            0,
            FieldChange {
                path: REPLACE_REQUIRED.into(),
                before: Value::Null,
                after: json!("networks cannot be updated in place"),
                sensitive: false,
            },
        );
    }
    diff
}

/// A secret's content differs when both sides carry shoal's digest label
/// and the labels differ, or the desired data's digest differs from the
/// live label. Without a live label the content is taken as unchanged
/// (see `rotation`).
fn secret_content_change(desired: &Value, live: &Value) -> Option<FieldChange> {
    let live_digest = live.get("Labels")?.get(DIGEST_LABEL)?.as_str()?;
    let want = match desired.get("Data") {
        Some(_) => format!("sha256:{}", rotation::content_digest(desired)),
        None => desired
            .get("Labels")?
            .get(DIGEST_LABEL)?
            .as_str()?
            .to_owned(),
    };
    (want != live_digest).then(|| FieldChange {
        path: "Data".into(),
        before: json!(live_digest),
        after: json!(want),
        sensitive: true,
    })
}

/// Names of configs (or secrets) the given services reference.
fn referenced(services: &[LiveObject], field: &str, name_key: &str) -> BTreeSet<String> {
    services
        .iter()
        .filter_map(|s| {
            s.spec
                .pointer(&format!("/TaskTemplate/ContainerSpec/{field}"))
        })
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|r| r.get(name_key).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Point a desired service's config/secret refs at the chosen versions.
fn rename_refs(spec: &mut Value, field: &str, name_key: &str, rename: &BTreeMap<String, String>) {
    let path = format!("/TaskTemplate/ContainerSpec/{field}");
    let Some(refs) = spec.pointer_mut(&path).and_then(Value::as_array_mut) else {
        return;
    };
    for r in refs {
        let new = r
            .get(name_key)
            .and_then(Value::as_str)
            .and_then(|n| rename.get(n))
            .cloned();
        if let Some(new) = new {
            r[name_key] = json!(new);
        }
    }
}

/// Networks and services: same name means same object.
fn match_by_name(
    kind: Kind,
    stack: &str,
    desired: &[DesiredObject],
    live: &[LiveObject],
    ctx: &NormContext,
) -> Vec<Change> {
    let mut out = Vec::new();
    for d in desired {
        let change = match live.iter().find(|l| l.name == d.name) {
            Some(l) => {
                let diff = diff_spec_with(kind, &d.spec, &l.spec, ctx);
                let spec = spec_to_write(kind, &d.spec, &l.spec);
                rotation::update_or_noop(kind, stack, l, diff, spec)
            }
            None => Change {
                action: Action::Create,
                kind,
                name: d.name.clone(),
                stack: stack.to_owned(),
                diff: Vec::new(),
                desired: Some(d.spec.clone()),
                live_id: None,
                live_version: None,
            },
        };
        out.push(change);
    }
    for l in live
        .iter()
        .filter(|l| !desired.iter().any(|d| d.name == l.name))
    {
        out.push(rotation::delete(kind, stack, l));
    }
    out
}

/// What an update writes, as `docker stack deploy` does: a service keeps
/// its live `ForceUpdate` counter (so no task restarts for it) and its
/// digest-pinned image when the tag asked for is the one it was pinned from.
fn spec_to_write(kind: Kind, desired: &Value, live: &Value) -> Value {
    let mut spec = desired.clone();
    if kind != Kind::Service {
        return spec;
    }
    if normalize::is_pinned_same_image(desired, live) {
        if let (Some(img), Some(tt)) = (
            live.pointer("/TaskTemplate/ContainerSpec/Image").cloned(),
            spec.pointer_mut("/TaskTemplate/ContainerSpec"),
        ) {
            tt["Image"] = img;
        }
    }
    if let (Some(force), Some(tt)) = (
        live.pointer("/TaskTemplate/ForceUpdate").cloned(),
        spec.get_mut("TaskTemplate").and_then(Value::as_object_mut),
    ) {
        tt.insert("ForceUpdate".into(), force);
    }
    spec
}

#[cfg(test)]
mod tests;
