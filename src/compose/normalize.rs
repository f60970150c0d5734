//! Short syntax -> long form, in the YAML value tree, before the typed
//! model is deserialized: the shapes docker/cli's loader produces
//! (`ports: ["80:80"]` -> `{mode, target, published, protocol}`, durations
//! -> nanoseconds, sizes -> bytes, env lists -> maps...). Type errors found
//! here name the field path and what would be valid.
use super::duration::parse_duration;
use super::envfile::parse_env_file;
use super::ports::parse_port_spec;
use super::units::parse_bytes;
use super::volumes::parse_volume_spec;
use crate::source::Tree;
use serde_yaml::{Mapping, Value};
use std::path::PathBuf;

/// A problem at a field path.
#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    pub path: Vec<String>,
    pub message: String,
    /// A line in another file (an env file) when the problem is there.
    pub file_line: Option<(String, usize)>,
}

pub type R<T> = Result<T, Fail>;

/// A failure at `path`; the message is prefixed with the dotted path.
pub fn fail(path: &[String], message: impl Into<String>) -> Fail {
    Fail {
        path: path.to_vec(),
        message: message.into(),
        file_line: None,
    }
}

/// `path` + one more segment.
pub fn at(path: &[String], seg: impl ToString) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(seg.to_string());
    p
}

/// How a value reads in a message: `a string "two"`, `a list`...
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a tagged value ({})", t.tag),
    }
}

fn expected(path: &[String], what: &str, v: &Value) -> Fail {
    fail(path, format!("expected {what}, found {}", describe(v)))
}

/// What the normalizer needs from the outside world.
pub struct Env<'a> {
    pub tree: &'a dyn Tree,
    /// The stack folder in the tree (`stacks/web`).
    pub stack_dir: &'a str,
    pub local_root: Option<PathBuf>,
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    pub warnings: Vec<String>,
}

/// A number as docker prints it in a string field (`1.0` -> `1`).
fn number_string(n: &serde_yaml::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

fn key_string(k: &Value, path: &[String]) -> R<String> {
    match k {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(expected(path, "string keys", other)),
    }
}

/// Either one string or a list of strings -> a list.
fn string_or_list(v: &Value, path: &[String]) -> R<Value> {
    match v {
        Value::String(_) => Ok(Value::Sequence(vec![v.clone()])),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    return Err(expected(&at(path, i), "a string", item));
                }
            }
            Ok(v.clone())
        }
        other => Err(expected(path, "a string or a list of strings", other)),
    }
}

/// A `KEY=VALUE` list or a mapping -> mapping of strings. `null_value`
/// is what a bare `KEY` (or a null) becomes.
fn list_or_dict(v: &Value, path: &[String], null_value: &Value) -> R<Mapping> {
    let mut out = Mapping::new();
    match v {
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let Value::String(s) = item else {
                    return Err(expected(&at(path, i), "a \"KEY=VALUE\" string", item));
                };
                match s.split_once('=') {
                    Some((k, val)) => {
                        out.insert(Value::String(k.into()), Value::String(val.into()))
                    }
                    None => out.insert(Value::String(s.clone()), null_value.clone()),
                };
            }
        }
        Value::Mapping(m) => {
            for (k, val) in m {
                let key = key_string(k, path)?;
                let p = at(path, &key);
                let val = match val {
                    Value::String(_) => val.clone(),
                    Value::Number(n) => Value::String(number_string(n)),
                    Value::Null => null_value.clone(),
                    other => return Err(expected(&p, "a string, number or null", other)),
                };
                out.insert(Value::String(key), val);
            }
        }
        Value::Null => {}
        other => {
            return Err(expected(
                path,
                "a mapping or a list of \"KEY=VALUE\" strings",
                other,
            ))
        }
    }
    Ok(out)
}

fn duration(v: &Value, path: &[String]) -> R<Value> {
    match v {
        Value::String(s) => parse_duration(s)
            .map(|ns| Value::Number(ns.into()))
            .map_err(|e| fail(path, e)),
        Value::Null => Ok(Value::Null),
        other => Err(expected(path, "a duration string like 10s or 1m30s", other)),
    }
}

fn bytes(v: &Value, path: &[String]) -> R<Value> {
    match v {
        Value::String(s) => parse_bytes(s)
            .map(|b| Value::Number(b.into()))
            .map_err(|e| fail(path, e)),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
        Value::Null => Ok(Value::Null),
        other => Err(expected(
            path,
            "a byte size like 512m or a number of bytes",
            other,
        )),
    }
}

/// A file mode: an integer, or a YAML 1.1 octal literal (`0440`), which
/// serde_yaml leaves as a string but docker's YAML parser reads as octal.
fn file_mode(v: &Value, path: &[String]) -> R<Value> {
    match v {
        Value::String(s) if s.len() > 1 && s.starts_with('0') => u32::from_str_radix(&s[1..], 8)
            .map(|m| Value::Number(m.into()))
            .map_err(|_| expected(path, "a file mode like 0440", v)),
        Value::Number(_) | Value::Null => Ok(v.clone()),
        other => Err(expected(path, "a file mode like 0440", other)),
    }
}

fn cpus(v: &Value, path: &[String]) -> R<Value> {
    match v {
        Value::String(_) | Value::Null => Ok(v.clone()),
        Value::Number(n) => Ok(Value::String(number_string(n))),
        other => Err(expected(path, "a number of CPUs like 0.5", other)),
    }
}

fn mapping_mut<'v>(v: &'v mut Value, path: &[String]) -> R<&'v mut Mapping> {
    if v.is_null() {
        *v = Value::Mapping(Mapping::new());
    }
    match v {
        Value::Mapping(m) => Ok(m),
        other => Err(expected(path, "a mapping", other)),
    }
}

/// Apply `f` to the value of `key` when present.
fn field(
    m: &mut Mapping,
    path: &[String],
    key: &str,
    f: impl FnOnce(&Value, &[String]) -> R<Value>,
) -> R<()> {
    if let Some(v) = m.get_mut(key) {
        let p = at(path, key);
        *v = f(v, &p)?;
    }
    Ok(())
}

/// Like [`field`] for nested mappings.
fn section(
    m: &mut Mapping,
    path: &[String],
    key: &str,
    f: impl FnOnce(&mut Mapping, &[String]) -> R<()>,
) -> R<()> {
    if let Some(v) = m.get_mut(key) {
        let p = at(path, key);
        if v.is_null() {
            return Ok(());
        }
        let inner = mapping_mut(v, &p)?;
        f(inner, &p)?;
    }
    Ok(())
}

/// Normalize the top-level sections of a compose file in place.
pub fn normalize_config(root: &mut Mapping, env: &mut Env) -> R<()> {
    if let Some(services) = root.get_mut("services") {
        let path = vec!["services".to_string()];
        let services = mapping_mut(services, &path)?;
        for (name, svc) in services.iter_mut() {
            let name = key_string(name, &path)?;
            let p = at(&path, &name);
            let svc = match svc {
                Value::Mapping(m) => m,
                other => return Err(expected(&p, "a mapping", other)),
            };
            normalize_service(svc, &p, env)?;
        }
    }
    for kind in ["networks", "volumes", "configs", "secrets"] {
        let Some(section) = root.get_mut(kind) else {
            continue;
        };
        let path = vec![kind.to_string()];
        let section = mapping_mut(section, &path)?;
        for (name, obj) in section.iter_mut() {
            let name = key_string(name, &path)?;
            let p = at(&path, &name);
            let obj = mapping_mut(obj, &p)?;
            normalize_object(kind, &name, obj, &p, env)?;
        }
    }
    drop_zero_values(root);
    Ok(())
}

/// Fields docker/cli's model holds as plain (non-pointer) values with
/// `omitempty`: `false` / `0` there is the same as absent, and docker drops
/// it. Dropping it too keeps one representation per meaning.
const ZERO_IS_ABSENT: &[&str] = &[
    "services.*.read_only",
    "services.*.stdin_open",
    "services.*.tty",
    "services.*.privileged",
    "services.*.healthcheck.disable",
    "services.*.deploy.update_config.delay",
    "services.*.deploy.update_config.monitor",
    "services.*.deploy.update_config.max_failure_ratio",
    "services.*.deploy.rollback_config.delay",
    "services.*.deploy.rollback_config.monitor",
    "services.*.deploy.rollback_config.max_failure_ratio",
    "services.*.volumes.*.read_only",
    "networks.*.internal",
    "networks.*.attachable",
];

fn drop_zero_values(root: &mut Mapping) {
    fn is_zero(v: &Value) -> bool {
        match v {
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            _ => false,
        }
    }
    fn walk(v: &mut Value, segs: &[&str]) {
        let [first, rest @ ..] = segs else { return };
        match v {
            Value::Mapping(m) if rest.is_empty() && m.get(*first).is_some_and(is_zero) => {
                m.remove(*first);
            }
            Value::Mapping(m) if *first == "*" => m.iter_mut().for_each(|(_, v)| walk(v, rest)),
            Value::Sequence(items) if *first == "*" => items.iter_mut().for_each(|v| walk(v, rest)),
            Value::Mapping(m) => {
                if let Some(v) = m.get_mut(*first) {
                    walk(v, rest);
                }
            }
            _ => {}
        }
    }
    let mut v = Value::Mapping(std::mem::take(root));
    for pattern in ZERO_IS_ABSENT {
        let segs: Vec<&str> = pattern.split('.').collect();
        walk(&mut v, &segs);
    }
    if let Value::Mapping(m) = v {
        *root = m;
    }
}

/// networks/volumes/configs/secrets entries: labels, external, file paths.
fn normalize_object(
    kind: &str,
    name: &str,
    m: &mut Mapping,
    path: &[String],
    env: &mut Env,
) -> R<()> {
    field(m, path, "labels", |v, p| {
        list_or_dict(v, p, &Value::String(String::new())).map(Value::Mapping)
    })?;
    field(m, path, "driver_opts", |v, p| {
        list_or_dict(v, p, &Value::String(String::new())).map(Value::Mapping)
    })?;
    let singular = kind.trim_end_matches('s');
    if let Some(ext) = m.get("external").cloned() {
        let p = at(path, "external");
        let (external, ext_name) = match &ext {
            Value::Bool(b) => (*b, None),
            Value::Mapping(em) => {
                for (k, _) in em {
                    if k.as_str() != Some("name") {
                        return Err(fail(
                            &at(&p, key_string(k, &p)?),
                            "unknown field; valid fields: name",
                        ));
                    }
                }
                match em.get("name") {
                    Some(Value::String(s)) => (true, Some(s.clone())),
                    None => (true, None),
                    Some(other) => return Err(expected(&at(&p, "name"), "a string", other)),
                }
            }
            other => return Err(expected(&p, "true, false or {name: ...}", other)),
        };
        let own_name = m.get("name").and_then(Value::as_str).map(String::from);
        if let Some(en) = &ext_name {
            if own_name.is_some() {
                return Err(fail(&p, format!("{singular}.external.name and {singular}.name conflict; only use {singular}.name")));
            }
            env.warnings.push(format!("{singular} {name}: {singular}.external.name is deprecated in favor of {singular}.name"));
            m.insert("name".into(), Value::String(en.clone()));
        }
        if external {
            if kind == "volumes" {
                for conflict in ["driver", "driver_opts", "labels"] {
                    if m.get(conflict).is_some_and(|v| !v.is_null()) {
                        return Err(fail(&at(path, conflict), format!("conflicting parameters \"external\" and \"{conflict}\" specified for volume {name:?}")));
                    }
                }
            }
            if m.get("name").is_none() {
                m.insert("name".into(), Value::String(name.to_string()));
            }
        }
        let mut e = Mapping::new();
        e.insert("external".into(), Value::Bool(external));
        m.insert("external".into(), Value::Mapping(e));
    }
    if kind == "configs" || kind == "secrets" {
        if let Some(file) = m.get("file").cloned() {
            let p = at(path, "file");
            let Value::String(f) = &file else {
                return Err(expected(&p, "a path string", &file));
            };
            let resolved = tree_path(env.stack_dir, f).map_err(|e| fail(&p, e))?;
            m.insert("file".into(), Value::String(resolved));
        }
    }
    Ok(())
}

/// `rel` (relative to the stack folder) as a path in the tree.
pub fn tree_path(stack_dir: &str, rel: &str) -> Result<String, String> {
    if rel.starts_with('/') || rel.starts_with('~') {
        return Err(format!("{rel:?} is outside the repository; use a path relative to the stack folder ({stack_dir})"));
    }
    let mut parts: Vec<&str> = stack_dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("{rel:?} points outside the repository"));
                }
            }
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

fn normalize_service(svc: &mut Mapping, path: &[String], env: &mut Env) -> R<()> {
    // `build: ./dir` is `build: {context: ./dir}` (ignored by swarm, kept for the warning).
    field(svc, path, "build", |v, _| {
        Ok(match v {
            Value::String(s) => {
                let mut m = Mapping::new();
                m.insert("context".into(), Value::String(s.clone()));
                Value::Mapping(m)
            }
            other => other.clone(),
        })
    })?;
    for key in ["command", "entrypoint"] {
        field(svc, path, key, |v, p| match v {
            Value::String(s) => shell_words::split(s)
                .map(|w| Value::Sequence(w.into_iter().map(Value::String).collect()))
                .map_err(|e| fail(p, format!("cannot split {s:?} into words: {e}"))),
            Value::Sequence(_) => string_or_list(v, p),
            Value::Null => Ok(Value::Null),
            other => Err(expected(p, "a string or a list of strings", other)),
        })?;
    }
    for key in ["env_file", "dns", "dns_search", "tmpfs"] {
        field(svc, path, key, string_or_list)?;
    }
    field(svc, path, "labels", |v, p| {
        list_or_dict(v, p, &Value::String(String::new())).map(Value::Mapping)
    })?;
    field(svc, path, "sysctls", |v, p| {
        list_or_dict(v, p, &Value::String(String::new())).map(Value::Mapping)
    })?;
    field(svc, path, "stop_grace_period", duration)?;
    field(svc, path, "extra_hosts", extra_hosts)?;
    resolve_environment(svc, path, env)?;
    section(svc, path, "healthcheck", |h, p| {
        field(h, p, "test", |v, p| match v {
            Value::String(s) => Ok(Value::Sequence(vec![
                "CMD-SHELL".into(),
                Value::String(s.clone()),
            ])),
            other => string_or_list(other, p),
        })?;
        for key in ["interval", "timeout", "start_period", "start_interval"] {
            field(h, p, key, duration)?;
        }
        Ok(())
    })?;
    section(svc, path, "logging", |l, p| {
        field(l, p, "options", |v, p| {
            list_or_dict(v, p, &Value::Null).map(Value::Mapping)
        })
    })?;
    section(svc, path, "ulimits", |u, p| {
        for (k, v) in u.iter_mut() {
            let p = at(p, key_string(k, p)?);
            if let Value::Number(n) = v {
                let mut m = Mapping::new();
                m.insert("single".into(), Value::Number(n.clone()));
                *v = Value::Mapping(m);
            } else if !v.is_mapping() {
                return Err(expected(&p, "an integer or {soft, hard}", v));
            }
        }
        Ok(())
    })?;
    section(svc, path, "deploy", normalize_deploy)?;
    field(svc, path, "ports", |v, p| ports(v, p, &mut env.warnings))?;
    field(svc, path, "volumes", |v, p| service_volumes(v, p, env))?;
    for key in ["configs", "secrets"] {
        field(svc, path, key, file_object_refs)?;
    }
    field(svc, path, "networks", |v, p| match v {
        Value::Sequence(items) => {
            let mut m = Mapping::new();
            for (i, item) in items.iter().enumerate() {
                let Value::String(s) = item else {
                    return Err(expected(&at(p, i), "a network name", item));
                };
                m.insert(Value::String(s.clone()), Value::Null);
            }
            Ok(Value::Mapping(m))
        }
        Value::Mapping(_) | Value::Null => Ok(v.clone()),
        other => Err(expected(p, "a list of network names or a mapping", other)),
    })?;
    Ok(())
}

fn extra_hosts(v: &Value, path: &[String]) -> R<Value> {
    match v {
        Value::Sequence(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Value::String(s) = item else {
                    return Err(expected(&at(path, i), "a \"HOST:IP\" string", item));
                };
                // docker/cli accepts HOST=IP and prints HOST:IP.
                let s = match s.split_once('=') {
                    Some((h, ip)) if !h.contains(':') => format!("{h}:{ip}"),
                    _ => s.clone(),
                };
                out.push(Value::String(s));
            }
            Ok(Value::Sequence(out))
        }
        Value::Mapping(m) => {
            let mut out = Vec::new();
            for (k, ip) in m {
                let host = key_string(k, path)?;
                let ip = match ip {
                    Value::String(s) => s.clone(),
                    other => return Err(expected(&at(path, &host), "an IP address string", other)),
                };
                out.push(Value::String(format!("{host}:{ip}")));
            }
            Ok(Value::Sequence(out))
        }
        other => Err(expected(
            path,
            "a list of \"HOST:IP\" strings or a mapping",
            other,
        )),
    }
}

/// `env_file` entries, then `environment` (which wins); an empty or bare
/// entry takes its value from the variables when they define it, as
/// docker/cli's `resolveEnvironment` does.
fn resolve_environment(svc: &mut Mapping, path: &[String], env: &mut Env) -> R<()> {
    let mut merged = Mapping::new();
    let put = |merged: &mut Mapping, k: String, v: Value, env: &Env| {
        let empty = v.is_null() || v.as_str() == Some("");
        let v = match (empty, (env.lookup)(&k)) {
            (true, Some(from_vars)) => Value::String(from_vars),
            _ => v,
        };
        merged.insert(Value::String(k), v);
    };
    if let Some(files) = svc.get("env_file").and_then(Value::as_sequence) {
        for (i, f) in files.iter().enumerate() {
            let p = at(&at(path, "env_file"), i);
            let rel = f.as_str().unwrap_or_default();
            let file = tree_path(env.stack_dir, rel).map_err(|e| fail(&p, e))?;
            let bytes = env
                .tree
                .read(&file)
                .map_err(|e| fail(&p, format!("cannot read env file: {e}")))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| fail(&p, format!("env file {file} is not UTF-8")))?;
            let pairs = parse_env_file(&text, env.lookup).map_err(|(line, msg)| Fail {
                path: p.clone(),
                message: msg,
                file_line: Some((file.clone(), line)),
            })?;
            for (k, v) in pairs {
                put(&mut merged, k, Value::String(v), env);
            }
        }
    }
    if let Some(v) = svc.get("environment") {
        let p = at(path, "environment");
        for (k, v) in list_or_dict(v, &p, &Value::Null)? {
            let k = k.as_str().unwrap_or_default().to_string();
            put(&mut merged, k, v, env);
        }
    }
    if !merged.is_empty() || svc.contains_key("environment") {
        svc.insert("environment".into(), Value::Mapping(merged));
    }
    Ok(())
}

const DEPLOY_MODES: &str = "replicated, global, replicated-job, global-job";

fn normalize_deploy(d: &mut Mapping, path: &[String]) -> R<()> {
    field(d, path, "labels", |v, p| {
        list_or_dict(v, p, &Value::String(String::new())).map(Value::Mapping)
    })?;
    for key in ["update_config", "rollback_config"] {
        section(d, path, key, |u, p| {
            field(u, p, "delay", duration)?;
            field(u, p, "monitor", duration)
        })?;
    }
    section(d, path, "restart_policy", |r, p| {
        field(r, p, "delay", duration)?;
        field(r, p, "window", duration)
    })?;
    section(d, path, "resources", |r, p| {
        for key in ["limits", "reservations"] {
            section(r, p, key, |l, p| {
                field(l, p, "memory", bytes)?;
                field(l, p, "cpus", cpus)
            })?;
        }
        Ok(())
    })?;
    let mode = d.get("mode").cloned();
    if let Some(mode) = &mode {
        let p = at(path, "mode");
        match mode.as_str() {
            Some("replicated" | "global" | "replicated-job" | "global-job") => {}
            _ => {
                return Err(fail(
                    &p,
                    format!(
                        "unknown mode {}; valid modes: {DEPLOY_MODES}",
                        describe(mode)
                    ),
                ))
            }
        }
    }
    let global = matches!(
        mode.as_ref().and_then(Value::as_str),
        Some("global" | "global-job")
    );
    if global && d.get("replicas").is_some_and(|v| !v.is_null()) {
        return Err(fail(
            &at(path, "replicas"),
            "replicas can only be used with replicated or replicated-job mode",
        ));
    }
    Ok(())
}

fn ports(v: &Value, path: &[String], warnings: &mut Vec<String>) -> R<Value> {
    let Value::Sequence(items) = v else {
        return Err(expected(path, "a list of ports", v));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = at(path, i);
        let spec = match item {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::Mapping(_) => {
                out.push(item.clone());
                continue;
            }
            other => {
                return Err(expected(
                    &p,
                    "a port string like \"8080:80\", a number, or a mapping with target",
                    other,
                ))
            }
        };
        let (entries, warning) = parse_port_spec(&spec).map_err(|e| fail(&p, e))?;
        warnings.extend(warning);
        for e in entries {
            out.push(serde_yaml::to_value(e).map_err(|e| fail(&p, e.to_string()))?);
        }
    }
    Ok(Value::Sequence(out))
}

fn service_volumes(v: &Value, path: &[String], env: &Env) -> R<Value> {
    let Value::Sequence(items) = v else {
        return Err(expected(path, "a list of volumes", v));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = at(path, i);
        let mut m = match item {
            Value::String(s) => {
                let parsed = parse_volume_spec(s).map_err(|e| fail(&p, e))?;
                match serde_yaml::to_value(parsed) {
                    Ok(Value::Mapping(m)) => m,
                    _ => return Err(fail(&p, "internal: volume did not serialize to a mapping")),
                }
            }
            Value::Mapping(m) => m.clone(),
            other => {
                return Err(expected(
                    &p,
                    "a volume string like \"data:/data\" or a mapping with type",
                    other,
                ))
            }
        };
        match m.get("type") {
            Some(Value::String(t))
                if ["bind", "volume", "tmpfs", "npipe", "cluster"].contains(&t.as_str()) => {}
            Some(other) => {
                return Err(fail(
                    &at(&p, "type"),
                    format!(
                        "unknown volume type {}; valid types: bind, volume, tmpfs, npipe, cluster",
                        describe(other)
                    ),
                ))
            }
            None => {
                return Err(fail(
                    &p,
                    "missing field type; valid types: bind, volume, tmpfs, npipe, cluster",
                ))
            }
        }
        section(&mut m, &p, "tmpfs", |t, p| {
            field(t, p, "size", bytes)?;
            field(t, p, "mode", file_mode)
        })?;
        if m.get("type").and_then(Value::as_str) == Some("bind") {
            let source = match m.get("source") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(fail(&at(&p, "source"), "a bind mount needs a source path")),
            };
            let resolved = bind_source(&source, env).map_err(|e| fail(&at(&p, "source"), e))?;
            m.insert("source".into(), Value::String(resolved));
        }
        out.push(Value::Mapping(m));
    }
    Ok(Value::Sequence(out))
}

/// A bind-mount source as docker resolves it: `~` against $HOME, relative
/// paths against the stack folder on this machine.
fn bind_source(source: &str, env: &Env) -> Result<String, String> {
    if source.starts_with('/') {
        return Ok(source.to_string());
    }
    if let Some(rest) = source.strip_prefix('~') {
        let home = (env.lookup)("HOME")
            .or_else(|| std::env::var("HOME").ok())
            .ok_or("cannot expand ~: HOME is not set")?;
        return Ok(format!("{home}{rest}"));
    }
    let root = env.local_root.as_ref().ok_or_else(|| {
        format!("relative bind-mount source {source:?} needs a checkout on this machine, and this source has none; use an absolute path or a named volume")
    })?;
    let mut parts: Vec<String> = root
        .join(env.stack_dir)
        .to_string_lossy()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    for seg in source.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s.to_string()),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn file_object_refs(v: &Value, path: &[String]) -> R<Value> {
    let Value::Sequence(items) = v else {
        return Err(expected(path, "a list", v));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = at(path, i);
        match item {
            Value::String(s) => {
                let mut m = Mapping::new();
                m.insert("source".into(), Value::String(s.clone()));
                out.push(Value::Mapping(m));
            }
            Value::Mapping(m) => {
                let mut m = m.clone();
                field(&mut m, &p, "mode", file_mode)?;
                for key in ["uid", "gid"] {
                    field(&mut m, &p, key, |v, _| {
                        Ok(match v {
                            Value::Number(n) => Value::String(n.to_string()),
                            other => other.clone(),
                        })
                    })?;
                }
                out.push(Value::Mapping(m));
            }
            other => return Err(expected(&p, "a name or a mapping with source", other)),
        }
    }
    Ok(Value::Sequence(out))
}
