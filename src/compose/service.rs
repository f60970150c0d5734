//! One service's short syntax -> long form: command/entrypoint splitting,
//! env files and environment, healthcheck, deploy, ports, volumes,
//! config/secret references, networks, extra_hosts.
use super::envfile::parse_env_file;
use super::long_syntax::{
    at, bytes, cpus, describe, duration, expected, fail, field, file_mode, key_string,
    list_or_dict, section, string_dict, string_or_list, tree_path, Env, Fail, R,
};
use super::ports::parse_port_spec;
use super::volumes::parse_volume_spec;
use crate::source::{too_large, MAX_OBJECT_BYTES};
use serde_yaml::{Mapping, Value};

pub(super) fn normalize_service(svc: &mut Mapping, path: &[String], env: &mut Env) -> R<()> {
    field(svc, path, "build", build_context)?;
    for key in ["command", "entrypoint"] {
        field(svc, path, key, command_words)?;
    }
    field(svc, path, "expose", expose_strings)?;
    for key in ["env_file", "dns", "dns_search", "tmpfs"] {
        field(svc, path, key, string_or_list)?;
    }
    field(svc, path, "labels", string_dict)?;
    field(svc, path, "sysctls", string_dict)?;
    field(svc, path, "stop_grace_period", duration)?;
    field(svc, path, "extra_hosts", extra_hosts)?;
    resolve_environment(svc, path, env)?;
    section(svc, path, "healthcheck", healthcheck)?;
    section(svc, path, "logging", |l, p| {
        field(l, p, "options", string_dict)
    })?;
    section(svc, path, "ulimits", ulimits)?;
    section(svc, path, "deploy", normalize_deploy)?;
    field(svc, path, "ports", |v, p| ports(v, p, &mut env.warnings))?;
    field(svc, path, "volumes", |v, p| service_volumes(v, p, env))?;
    for key in ["configs", "secrets"] {
        field(svc, path, key, file_object_refs)?;
    }
    field(svc, path, "networks", network_names)?;
    Ok(())
}

/// `build: ./dir` is `build: {context: ./dir}` (ignored by swarm, kept for the warning).
fn build_context(v: &Value, _: &[String]) -> R<Value> {
    Ok(match v {
        Value::String(s) => {
            let mut m = Mapping::new();
            m.insert("context".into(), Value::String(s.clone()));
            Value::Mapping(m)
        }
        other => other.clone(),
    })
}

/// `command`/`entrypoint` as a string is split into words the way a shell would.
fn command_words(v: &Value, p: &[String]) -> R<Value> {
    match v {
        Value::String(s) => shell_words::split(s)
            .map(|w| Value::Sequence(w.into_iter().map(Value::String).collect()))
            .map_err(|e| fail(p, format!("cannot split {s:?} into words: {e}"))),
        Value::Sequence(_) => string_or_list(v, p),
        other => Err(expected(p, "a string or a list of strings", other)),
    }
}

/// docker accepts numbers in `expose` and prints them as strings.
fn expose_strings(v: &Value, p: &[String]) -> R<Value> {
    match v {
        Value::Sequence(items) => Ok(Value::Sequence(
            items
                .iter()
                .map(|i| match i {
                    Value::Number(n) => Value::String(n.to_string()),
                    other => other.clone(),
                })
                .collect(),
        )),
        other => Err(expected(p, "a list of ports", other)),
    }
}

/// `test` as a string runs in a shell (`CMD-SHELL`); the durations take units.
fn healthcheck(h: &mut Mapping, p: &[String]) -> R<()> {
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
}

/// A ulimit given as one number is `{single: n}`; otherwise `{soft, hard}`.
fn ulimits(u: &mut Mapping, p: &[String]) -> R<()> {
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
}

/// A list of network names is a mapping of names to no options.
fn network_names(v: &Value, p: &[String]) -> R<Value> {
    match v {
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
    }
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
            let file = tree_path(env.stack_dir, env.local_root.as_deref(), rel)
                .map_err(|e| fail(&p, e))?;
            let bytes = env
                .tree
                .read(&file)
                .map_err(|e| fail(&p, format!("cannot read env file: {e}")))?;
            if bytes.len() as u64 > MAX_OBJECT_BYTES {
                let e = too_large(&file, MAX_OBJECT_BYTES, "an env file");
                return Err(fail(&p, e.to_string()));
            }
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
    field(d, path, "labels", string_dict)?;
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
                out.push(Value::Mapping(m));
            }
            other => return Err(expected(&p, "a name or a mapping with source", other)),
        }
    }
    Ok(Value::Sequence(out))
}
