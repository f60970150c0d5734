//! Normalization: turn a desired or a live spec into one canonical form so
//! that what the daemon (or the docker CLI printing it) fills in, reorders
//! or renames never shows up as a change. Every rule below says why it
//! exists; the facts come from `docker stack deploy` on Engine 20.10 and
//! from comparing the raw API (`/services/{id}`) with `docker service
//! inspect` (CLI 28 fills even more defaults when it prints).
//!
//! The canonical form also turns keyed lists into JSON objects (env by
//! name, mounts by target, ports by `published/protocol`, ...) so the diff
//! compares them by key and names them by key in paths.
use crate::model::Kind;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Label shoal puts on every secret it creates: `sha256:<hex>` of the
/// content, because the Engine never returns a secret's data.
pub const DIGEST_LABEL: &str = "io.shoal.digest";

/// Fields whose value is a keyed collection (after normalization an
/// object): their children are named `[key]` in paths, not `.key`.
pub const KEYED_FIELDS: &[&str] = &[
    "Env",
    "Labels",
    "Mounts",
    "Ports",
    "Networks",
    "Configs",
    "Secrets",
    "Options",
    "DriverOpts",
    "Sysctls",
    "Ulimits",
];

/// Keyed fields whose values are the user's data: an empty string or
/// `null` there means something (`FOO=` vs `FOO`), so pruning keeps them.
const DATA_MAPS: &[&str] = &["Env", "Labels", "Options", "DriverOpts", "Sysctls"];

/// What normalization needs to know beyond the two specs.
#[derive(Debug, Clone, Default)]
pub struct NormContext {
    /// Network id -> name. The daemon stores a service's network
    /// attachments by id while the desired spec (like docker's convert)
    /// names them; without an entry an id stays an id and shows as a change.
    pub network_names: BTreeMap<String, String>,
}

/// Normalize a desired and a live spec of one object for comparison.
/// Returns `(desired, live)` in canonical form.
pub fn normalize_pair(
    kind: Kind,
    desired: &Value,
    live: &Value,
    ctx: &NormContext,
) -> (Value, Value) {
    let mut live = live.clone();
    if kind == Kind::Service {
        unpin_image(desired, &mut live);
    }
    let mut d = canonical(kind, desired, ctx);
    let mut l = canonical(kind, &live, ctx);
    if kind == Kind::Network {
        drop_daemon_assigned_network_fields(&d, &mut l);
    }
    d = prune(d, &mut Vec::new()).unwrap_or_else(|| json!({}));
    l = prune(l, &mut Vec::new()).unwrap_or_else(|| json!({}));
    (d, l)
}

/// Canonical form of one spec, before pruning.
fn canonical(kind: Kind, spec: &Value, ctx: &NormContext) -> Value {
    match kind {
        Kind::Service => service(spec, ctx),
        Kind::Network => network(spec),
        Kind::Config => config(spec),
        Kind::Secret => secret(spec),
    }
}

// ---------------------------------------------------------------- services

/// Go defaults that swarmkit fills in (or the CLI prints) for a restart
/// policy: condition `any`, 5s delay, unlimited attempts, no window.
fn restart_defaults() -> Vec<(&'static str, Value)> {
    vec![
        ("Condition", json!("any")),
        ("Delay", json!(5_000_000_000u64)),
        ("MaxAttempts", json!(0)),
        ("Window", json!(0)),
    ]
}

/// Defaults of an update/rollback config: swarmkit stores enums and plain
/// integers, so a config sent without `FailureAction`/`Order` comes back
/// `pause`/`stop-first`; the CLI prints `Monitor: 5s` and a whole default
/// `RollbackConfig` for services that never had one. Parallelism 1 is what
/// both compose and the daemon use when nothing is given.
fn update_defaults() -> Vec<(&'static str, Value)> {
    vec![
        ("Parallelism", json!(1)),
        ("Delay", json!(0)),
        ("FailureAction", json!("pause")),
        ("Monitor", json!(5_000_000_000u64)),
        ("MaxFailureRatio", json!(0)),
        ("Order", json!("stop-first")),
    ]
}

fn service(spec: &Value, ctx: &NormContext) -> Value {
    let mut s = spec.clone();
    move_legacy_networks(&mut s);
    if let Some(tt) = s.get_mut("TaskTemplate") {
        // `docker stack deploy` copies the live ForceUpdate counter into
        // every update so `docker service update --force` never shows as
        // drift; the applier must do the same.
        remove(tt, &["ForceUpdate"]);
        // The daemon records the runtime of a container task explicitly.
        remove_eq(tt, &["Runtime"], &json!("container"));
        // The daemon records the default isolation explicitly.
        remove_eq(tt, &["ContainerSpec", "Isolation"], &json!("default"));
        // The CLI prints the daemon's 10s stop grace period when unset.
        remove_eq(
            tt,
            &["ContainerSpec", "StopGracePeriod"],
            &json!(10_000_000_000u64),
        );
        // The CLI adds the image's platforms when it resolves the image on
        // create; compose cannot express them.
        remove(tt, &["Placement", "Platforms"]);
        // Constraints are ANDed: their order means nothing.
        sort_strings(tt, &["Placement", "Constraints"]);
        for (field, default) in restart_defaults() {
            remove_eq(tt, &["RestartPolicy", field], &default);
        }
        if let Some(cs) = tt.get_mut("ContainerSpec") {
            container_spec(cs);
        }
        key_networks(tt, ctx);
    }
    // A replicated service sent without a replica count (no
    // `deploy.replicas`, or no Mode at all) runs one task: the daemon
    // records `Replicated.Replicas: 1`.
    default_replicas(&mut s);
    // A job's concurrency and completions default to 1 on the daemon
    // when convert sends none (no `deploy.replicas`).
    remove_eq(
        &mut s,
        &["Mode", "ReplicatedJob", "MaxConcurrent"],
        &json!(1),
    );
    remove_eq(
        &mut s,
        &["Mode", "ReplicatedJob", "TotalCompletions"],
        &json!(1),
    );
    for cfg in ["UpdateConfig", "RollbackConfig"] {
        for (field, default) in update_defaults() {
            remove_eq(&mut s, &[cfg, field], &default);
        }
    }
    // VIP is the endpoint mode the daemon records when none is sent.
    remove_eq(&mut s, &["EndpointSpec", "Mode"], &json!("vip"));
    key_ports(&mut s);
    s
}

/// Old daemons (and old clients) kept attachments in `Spec.Networks`;
/// newer ones in `TaskTemplate.Networks`. Both mean the same.
fn move_legacy_networks(s: &mut Value) {
    let Some(obj) = s.as_object_mut() else { return };
    let Some(legacy) = obj.remove("Networks") else {
        return;
    };
    let tt = obj.entry("TaskTemplate").or_insert_with(|| json!({}));
    if let Some(tt) = tt.as_object_mut() {
        let empty = tt
            .get("Networks")
            .is_none_or(|n| n.as_array().is_none_or(|a| a.is_empty()));
        if empty {
            tt.insert("Networks".into(), legacy);
        }
    }
}

fn container_spec(cs: &mut Value) {
    env_to_map(cs);
    // Capabilities: the daemon (and newer convert) spell them `CAP_X` in
    // upper case, compose users often write `net_admin`; a set, so sorted.
    for field in ["CapabilityAdd", "CapabilityDrop"] {
        if let Some(caps) = cs.get_mut(field).and_then(Value::as_array_mut) {
            for c in caps.iter_mut() {
                if let Some(name) = c.as_str() {
                    let upper = name.to_ascii_uppercase();
                    let full = if upper.starts_with("CAP_") || upper == "ALL" {
                        upper
                    } else {
                        format!("CAP_{upper}")
                    };
                    *c = json!(full);
                }
            }
            caps.sort_by_key(Value::to_string);
            caps.dedup();
        }
    }
    // Mounts: the daemon keeps the order sent, but the order carries no
    // meaning; a mount is identified by its target.
    key_list(cs, "Mounts", |m| {
        m.get("Target").and_then(Value::as_str).map(str::to_owned)
    });
    if let Some(mounts) = cs.get_mut("Mounts").and_then(Value::as_object_mut) {
        for m in mounts.values_mut() {
            // Default consistency/propagation are what an unset field means.
            remove_eq(m, &["Consistency"], &json!("default"));
            remove_eq(m, &["BindOptions", "Propagation"], &json!("rprivate"));
        }
    }
    // Config and secret refs: the ID is filled at apply time from the
    // name, so refs compare by name; uid/gid 0 and mode 0444 are what
    // docker's convert and the daemon use when none is given.
    for (field, id, name) in [
        ("Configs", "ConfigID", "ConfigName"),
        ("Secrets", "SecretID", "SecretName"),
    ] {
        if let Some(refs) = cs.get_mut(field).and_then(Value::as_array_mut) {
            for r in refs.iter_mut() {
                remove(r, &[id]);
                remove_eq(r, &["File", "UID"], &json!("0"));
                remove_eq(r, &["File", "GID"], &json!("0"));
                remove_eq(r, &["File", "Mode"], &json!(0o444));
            }
        }
        key_list(cs, field, |r| {
            match r.pointer("/File/Name").and_then(Value::as_str) {
                Some(target) => Some(target.to_owned()),
                None => r
                    .get(name)
                    .and_then(Value::as_str)
                    .map(|n| format!("runtime:{n}")),
            }
        });
    }
    key_list(cs, "Ulimits", |u| {
        u.get("Name").and_then(Value::as_str).map(str::to_owned)
    });
}

/// Env is a set of variables: compared as a map by name (`FOO=` keeps an
/// empty string, a bare `FOO` becomes `null`). Later entries win, as in
/// docker.
fn env_to_map(cs: &mut Value) {
    let Some(env) = cs.get("Env").and_then(Value::as_array) else {
        return;
    };
    let mut map = Map::new();
    for item in env {
        let Some(s) = item.as_str() else { continue };
        match s.split_once('=') {
            Some((k, v)) => map.insert(k.to_owned(), json!(v)),
            None => map.insert(s.to_owned(), Value::Null),
        };
    }
    cs["Env"] = Value::Object(map);
}

/// Network attachments: keyed by network name (ids resolved through the
/// context), aliases sorted (a set).
fn key_networks(tt: &mut Value, ctx: &NormContext) {
    if let Some(nets) = tt.get_mut("Networks").and_then(Value::as_array_mut) {
        for n in nets.iter_mut() {
            if let Some(target) = n.get("Target").and_then(Value::as_str) {
                if let Some(name) = ctx.network_names.get(target) {
                    n["Target"] = json!(name);
                }
            }
            sort_strings(n, &["Aliases"]);
        }
    }
    key_list(tt, "Networks", |n| {
        n.get("Target").and_then(Value::as_str).map(str::to_owned)
    });
}

/// Ports: keyed by `published/protocol` (tcp when absent, the daemon's
/// default); `tcp` and the `ingress` publish mode are dropped as defaults.
fn key_ports(s: &mut Value) {
    let Some(ep) = s.get_mut("EndpointSpec") else {
        return;
    };
    if let Some(ports) = ep.get_mut("Ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut() {
            remove_eq(p, &["Protocol"], &json!("tcp"));
            remove_eq(p, &["Protocol"], &json!(""));
            remove_eq(p, &["PublishMode"], &json!("ingress"));
        }
    }
    key_list(ep, "Ports", |p| {
        let published = p.get("PublishedPort").and_then(Value::as_u64).unwrap_or(0);
        let proto = p.get("Protocol").and_then(Value::as_str).unwrap_or("tcp");
        Some(format!("{published}/{proto}"))
    });
}

// ---------------------------------------------------------------- networks

/// The fields of a network create request. A live network comes back as
/// a network resource (id, created, containers, peers, scope, ...): only
/// what a create can set is compared.
const NETWORK_FIELDS: &[&str] = &[
    "Driver",
    "Options",
    "Internal",
    "Attachable",
    "Ingress",
    "IPAM",
    "EnableIPv6",
    "ConfigOnly",
    "ConfigFrom",
    "Labels",
];

fn network(spec: &Value) -> Value {
    let mut out = Map::new();
    for f in NETWORK_FIELDS {
        if let Some(v) = spec.get(*f) {
            out.insert((*f).to_owned(), v.clone());
        }
    }
    let mut n = Value::Object(out);
    // `docker stack deploy` fills an empty driver with overlay.
    remove_eq(&mut n, &["Driver"], &json!("overlay"));
    // The daemon records its default IPAM driver explicitly.
    remove_eq(&mut n, &["IPAM", "Driver"], &json!("default"));
    n
}

/// The fields of an IPAM pool (`IPAM.Config[]`) a create request can set.
/// The daemon fills the ones left open: a subnet from its default pools
/// when none is given, and always the gateway (the subnet's first address).
const IPAM_POOL_FIELDS: &[&str] = &["Subnet", "IPRange", "Gateway", "AuxiliaryAddresses"];

/// What the daemon assigns when the request left it open: the pools
/// (`IPAM.Config`), the fields of a pool the request did not set (the
/// gateway of `subnet: 10.1.2.0/24` is `10.1.2.1`), and the overlay's
/// VXLAN ids. Compared only when the desired spec sets them, so a network
/// docker stack deploy or shoal created plans clean. Pools pair up by
/// position: the daemon keeps the request's order.
fn drop_daemon_assigned_network_fields(desired: &Value, live: &mut Value) {
    match desired.pointer("/IPAM/Config").and_then(Value::as_array) {
        Some(pools) if !pools.is_empty() => {
            if let Some(live_pools) = live
                .pointer_mut("/IPAM/Config")
                .and_then(Value::as_array_mut)
            {
                for (want, have) in pools.iter().zip(live_pools.iter_mut()) {
                    for field in IPAM_POOL_FIELDS {
                        if want.get(*field).is_none_or(is_empty_value) {
                            remove(have, &[*field]);
                        }
                    }
                }
            }
        }
        _ => remove(live, &["IPAM", "Config"]),
    }
    let vxlan = "com.docker.network.driver.overlay.vxlanid_list";
    if desired
        .pointer("/Options")
        .and_then(|o| o.get(vxlan))
        .is_none()
    {
        remove(live, &["Options", vxlan]);
    }
}

// ------------------------------------------------------- configs, secrets

fn config(spec: &Value) -> Value {
    let mut out = Map::new();
    if let Some(l) = spec.get("Labels") {
        out.insert("Labels".into(), without_digest(l));
    }
    if let Some(d) = spec.get("Data") {
        out.insert("Data".into(), json!(data_text(d)));
    }
    if let Some(t) = spec.get("Templating") {
        out.insert("Templating".into(), t.clone());
    }
    Value::Object(out)
}

/// A secret's data is never returned by the Engine; content is compared
/// separately through [`DIGEST_LABEL`]. Here only labels, driver and
/// templating (without the digest label, which is shoal's bookkeeping).
fn secret(spec: &Value) -> Value {
    let mut out = Map::new();
    if let Some(l) = spec.get("Labels") {
        out.insert("Labels".into(), without_digest(l));
    }
    for f in ["Driver", "Templating"] {
        if let Some(v) = spec.get(f) {
            out.insert(f.into(), v.clone());
        }
    }
    Value::Object(out)
}

fn without_digest(labels: &Value) -> Value {
    let mut l = labels.clone();
    if let Some(m) = l.as_object_mut() {
        m.remove(DIGEST_LABEL);
    }
    l
}

/// Decoded bytes of a base64 `Data` field (`None` when not base64).
pub fn data_bytes(data: &Value) -> Option<Vec<u8>> {
    let s = data.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Config data for people: the decoded text when it is UTF-8, else the
/// base64 as stored.
pub fn data_text(data: &Value) -> String {
    match data_bytes(data).map(String::from_utf8) {
        Some(Ok(text)) => text,
        _ => data.as_str().unwrap_or_default().to_owned(),
    }
}

// ------------------------------------------------------------------ image

/// `docker stack deploy` (resolve-image always/changed) pins the image to
/// a digest on the daemon (`app:3.0@sha256:…`) and keeps the image as
/// written in the `com.docker.stack.image` label. A live image pinned from
/// the desired, unpinned one (same `name:tag` before the `@`) runs what
/// the repository asks for.
pub fn unpin_image(desired: &Value, live: &mut Value) {
    let Some(want) = desired
        .pointer("/TaskTemplate/ContainerSpec/Image")
        .and_then(Value::as_str)
        .filter(|w| !w.contains('@'))
        .map(str::to_owned)
    else {
        return;
    };
    let Some(img) = live.pointer_mut("/TaskTemplate/ContainerSpec/Image") else {
        return;
    };
    let Some((base, _digest)) = img.as_str().and_then(|s| s.split_once("@sha256:")) else {
        return;
    };
    // docker pins exactly what it sends: `name:tag` + `@digest`. The label
    // alone proves nothing: `docker service update --image` leaves it.
    if base == want {
        *img = json!(want);
    }
}

/// Whether the live image is the desired one pinned to a digest (see
/// [`unpin_image`]); then an update should keep the live pinned image.
pub fn is_pinned_same_image(desired: &Value, live: &Value) -> bool {
    let live_img = live.pointer("/TaskTemplate/ContainerSpec/Image");
    let mut copy = live.clone();
    unpin_image(desired, &mut copy);
    copy.pointer("/TaskTemplate/ContainerSpec/Image") != live_img
}

// ---------------------------------------------------------------- pruning

/// Drops what means "not set": `null`, `""`, `false`, `{}`, `[]` and 0 —
/// the Engine API marshals nearly every field with `omitempty`, so absent
/// and zero are the same on the wire. Exceptions: values in data maps
/// (env, labels, options), zeros that are meaningful (replicas,
/// parallelism) and empty mode objects (`Mode.Global: {}`).
fn prune(v: Value, path: &mut Vec<String>) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Bool(false) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Number(n) if n.as_f64() == Some(0.0) && !keeps_zero(path) => None,
        Value::Object(map) => {
            let data = path.last().is_some_and(|l| DATA_MAPS.contains(&l.as_str()));
            let mut out = Map::new();
            for (k, v) in map {
                if data {
                    out.insert(k, v);
                    continue;
                }
                path.push(k.clone());
                if let Some(v) = prune(v, path) {
                    out.insert(k, v);
                }
                path.pop();
            }
            if out.is_empty() && !keeps_empty(path) {
                None
            } else {
                Some(Value::Object(out))
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                return None;
            }
            // Scalars in lists are data (an empty argument is an argument).
            let items = items
                .into_iter()
                .map(|i| match i {
                    Value::Object(_) => prune(i, path).unwrap_or_else(|| json!({})),
                    other => other,
                })
                .collect();
            Some(Value::Array(items))
        }
        other => Some(other),
    }
}

fn default_replicas(spec: &mut Value) {
    let Some(obj) = spec.as_object_mut() else {
        return;
    };
    let mode = obj
        .entry("Mode")
        .or_insert_with(|| json!({"Replicated": {}}));
    if let Some(m) = mode.as_object_mut() {
        if m.is_empty() {
            m.insert("Replicated".into(), json!({}));
        }
        if let Some(r) = m.get_mut("Replicated").and_then(Value::as_object_mut) {
            let unset = r.get("Replicas").is_none_or(Value::is_null);
            if unset {
                r.insert("Replicas".into(), json!(1));
            }
        }
    }
}

fn ends_with(path: &[String], suffix: &[&str]) -> bool {
    path.len() >= suffix.len()
        && path[path.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(a, b)| a == b)
}

fn keeps_zero(path: &[String]) -> bool {
    ends_with(path, &["Mode", "Replicated", "Replicas"])
        || ends_with(path, &["UpdateConfig", "Parallelism"])
        || ends_with(path, &["RollbackConfig", "Parallelism"])
        || path.iter().any(|p| p == "ReplicatedJob")
        // Mode 0 on a config/secret file is not the 0444 default.
        || ends_with(path, &["File", "Mode"])
}

fn keeps_empty(path: &[String]) -> bool {
    ["Global", "GlobalJob", "ReplicatedJob"]
        .iter()
        .any(|m| ends_with(path, &["Mode", m]))
}

// ----------------------------------------------------------- tree helpers

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn parent_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let (_, parents) = path.split_last()?;
    let mut cur = v;
    for p in parents {
        cur = cur.get_mut(*p)?;
    }
    cur.as_object_mut()
}

fn remove(v: &mut Value, path: &[&str]) {
    if let (Some(parent), Some(last)) = (parent_mut(v, path), path.last()) {
        parent.remove(*last);
    }
}

/// Remove the field when it equals the default (numbers compare by value,
/// so `0` and `0.0` are the same).
fn remove_eq(v: &mut Value, path: &[&str], default: &Value) {
    if let (Some(parent), Some(last)) = (parent_mut(v, path), path.last()) {
        let same = match (parent.get(*last), default) {
            (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Some(a), b) => a == b,
            (None, _) => false,
        };
        if same {
            parent.remove(*last);
        }
    }
}

fn sort_strings(v: &mut Value, path: &[&str]) {
    let mut cur = Some(v);
    for p in path {
        cur = cur.and_then(|c| c.get_mut(*p));
    }
    if let Some(Value::Array(items)) = cur {
        items.sort_by_key(Value::to_string);
    }
}

/// Turn the list `v[field]` into an object keyed by `key(item)`; items
/// without a key keep their index as key. Duplicate keys get `#2`, `#3`.
fn key_list(v: &mut Value, field: &str, key: impl Fn(&Value) -> Option<String>) {
    let Some(items) = v.get(field).and_then(Value::as_array) else {
        return;
    };
    let mut map = Map::new();
    for (i, item) in items.iter().enumerate() {
        let base = key(item).unwrap_or_else(|| i.to_string());
        let mut k = base.clone();
        let mut n = 2;
        while map.contains_key(&k) {
            k = format!("{base}#{n}");
            n += 1;
        }
        map.insert(k, item.clone());
    }
    v[field] = Value::Object(map);
}
