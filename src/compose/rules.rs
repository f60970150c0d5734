//! The loading pipeline for one file's text, and the checks docker makes
//! beyond types: version, forbidden/unsupported options, required image,
//! references to undefined networks/volumes/configs/secrets.
use super::interpolate::interpolate_value;
use super::lines::LineIndex;
use super::model::Config;
use super::normalize::{at, describe, fail, normalize_config, Env, Fail};
use super::{LoadError, Vars};
use crate::source::{StackEntry, Tree};
use serde_yaml::{Mapping, Value};

/// Options `docker stack deploy` ignores with a warning.
const UNSUPPORTED: [&str; 16] = [
    "build",
    "cgroupns_mode",
    "cgroup_parent",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
];

/// Options docker ignores and calls deprecated, with its explanation.
const DEPRECATED: [(&str, &str); 2] = [
    ("container_name", "Setting the container name is not supported."),
    ("expose", "Exposing ports is unnecessary - services on the same network can access each other's containers on any port."),
];

/// Options docker refuses, with its explanation.
const FORBIDDEN: [(&str, &str); 8] = [
    ("extends", "Support for `extends` is not implemented yet."),
    ("volume_driver", "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there."),
    ("volumes_from", "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option."),
    ("cpu_quota", "Set resource limits using deploy.resources"),
    ("cpu_shares", "Set resource limits using deploy.resources"),
    ("cpuset", "Set resource limits using deploy.resources"),
    ("mem_limit", "Set resource limits using deploy.resources"),
    ("memswap_limit", "Set resource limits using deploy.resources"),
];

const SECTIONS: [&str; 5] = ["services", "networks", "volumes", "configs", "secrets"];

/// Turns path-level failures into [`LoadError`]s with lines.
struct Reporter<'a> {
    file: &'a str,
    lines: LineIndex,
}

impl Reporter<'_> {
    fn error(&self, f: Fail) -> LoadError {
        let path = f.path.join(".");
        let message = if path.is_empty() {
            f.message
        } else {
            format!("{path}: {}", f.message)
        };
        match f.file_line {
            Some((file, line)) => LoadError {
                file,
                line: Some(line),
                message,
            },
            None => LoadError {
                file: self.file.to_string(),
                line: self.lines.line_of(&f.path),
                message,
            },
        }
    }
}

/// Load the text of a stack file into the model and docker-style warnings.
pub fn load_text(
    text: &str,
    tree: &dyn Tree,
    entry: &StackEntry,
    vars: &Vars,
) -> Result<(Config, Vec<String>), LoadError> {
    let rep = Reporter {
        file: &entry.file,
        lines: LineIndex::build(text),
    };
    let mut root: Value = serde_yaml::from_str(text).map_err(|e| LoadError {
        file: entry.file.clone(),
        line: e.location().map(|l| l.line()),
        message: format!("invalid YAML: {e}"),
    })?;
    root.apply_merge().map_err(|e| LoadError {
        file: entry.file.clone(),
        line: rep.lines.first_merge(),
        message: format!(
            "invalid YAML merge key (<<): {e}; a merge key takes a mapping or a list of mappings"
        ),
    })?;
    let mut root = match root {
        Value::Mapping(m) => m,
        Value::Null => {
            return Err(rep.error(fail(
                &[],
                "the file is empty; expected a compose file with a services: mapping",
            )))
        }
        other => {
            return Err(rep.error(fail(
                &[],
                format!(
                    "expected a mapping at the top level, found {}",
                    describe(&other)
                ),
            )))
        }
    };
    check_version(&mut root).map_err(|f| rep.error(f))?;
    strip_extensions(&mut root);
    let mut warnings = Vec::new();
    check_options(&root, &mut warnings).map_err(|f| rep.error(f))?;

    let lookup = |name: &str| vars.get(name).map(String::from);
    let mut unset = Vec::new();
    for key in SECTIONS {
        if let Some(v) = root.get_mut(key) {
            let mut path = vec![key.to_string()];
            interpolate_value(v, &mut path, &lookup, &mut unset)
                .map_err(|(path, message)| rep.error(fail(&path, message)))?;
        }
    }
    for name in unset {
        warnings.push(format!(
            "The {name} variable is not set. Defaulting to a blank string."
        ));
    }

    let mut env = Env {
        tree,
        stack_dir: &entry.dir,
        local_root: tree.local_root(),
        lookup: &lookup,
        warnings: Vec::new(),
    };
    normalize_config(&mut root, &mut env).map_err(|f| rep.error(f))?;
    warnings.extend(env.warnings);

    let config: Config = serde_path_to_error::deserialize(Value::Mapping(root)).map_err(|e| {
        let path: Vec<String> = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        rep.error(fail(&path, humanize_serde(&e.inner().to_string())))
    })?;
    check_references(&config).map_err(|f| rep.error(f))?;
    Ok((config, warnings))
}

/// `version` must be 3.x (or absent, as docker/cli then assumes its newest 3.x).
fn check_version(root: &mut Mapping) -> Result<(), Fail> {
    let Some(v) = root.get("version") else {
        return Ok(());
    };
    let path = vec!["version".to_string()];
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(fail(
                &path,
                format!(
                    "expected a version string like \"3.8\", found {}",
                    describe(other)
                ),
            ))
        }
    };
    let minor_ok = |m: &str| m.parse::<u32>().is_ok_and(|m| m <= 13);
    let ok = s == "3" || s.strip_prefix("3.").is_some_and(minor_ok);
    if !ok {
        return Err(fail(&path, format!("unsupported Compose file version: {s}; docker stack deploy reads versions 3.0 to 3.13")));
    }
    root.insert("version".into(), Value::String(s));
    Ok(())
}

/// Drop `x-` keys where the compose schema allows them: the top level and
/// each service, network, volume, config and secret.
fn strip_extensions(root: &mut Mapping) {
    fn strip(m: &mut Mapping) {
        m.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
    }
    strip(root);
    for key in SECTIONS {
        if let Some(Value::Mapping(section)) = root.get_mut(key) {
            for (_, obj) in section.iter_mut() {
                if let Value::Mapping(m) = obj {
                    strip(m);
                }
            }
        }
    }
}

/// Forbidden options are errors; unsupported and deprecated ones warnings,
/// worded as `docker stack deploy` words them.
fn check_options(root: &Mapping, warnings: &mut Vec<String>) -> Result<(), Fail> {
    let Some(Value::Mapping(services)) = root.get("services") else {
        return Ok(());
    };
    let svcs: Vec<(String, &Mapping)> = services
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_mapping()?)))
        .collect();
    for (name, svc) in &svcs {
        for (key, why) in FORBIDDEN {
            if svc.contains_key(key) {
                let path = at(&at(&["services".to_string()], name), key);
                return Err(fail(
                    &path,
                    format!("not supported by docker stack deploy: {why}"),
                ));
            }
        }
    }
    let has = |key: &str| svcs.iter().any(|(_, s)| s.contains_key(key));
    let unsupported: Vec<&str> = {
        let mut u: Vec<&str> = UNSUPPORTED.iter().copied().filter(|k| has(k)).collect();
        u.sort_unstable();
        u
    };
    if !unsupported.is_empty() {
        warnings.push(format!(
            "Ignoring unsupported options: {}",
            unsupported.join(", ")
        ));
    }
    for (key, why) in DEPRECATED {
        if has(key) {
            warnings.push(format!("Ignoring deprecated option {key}: {why}"));
        }
    }
    Ok(())
}

/// Every service has an image, and references only defined objects.
fn check_references(config: &Config) -> Result<(), Fail> {
    let defined = |names: Vec<&String>, kind: &str| -> String {
        if names.is_empty() {
            format!("no {kind}s are defined; add it under the top-level {kind}s:")
        } else {
            let list: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            format!("defined {kind}s: {}", list.join(", "))
        }
    };
    for (name, svc) in &config.services {
        let path = vec!["services".to_string(), name.clone()];
        if svc.image.is_empty() {
            return Err(fail(&path, "missing image; every swarm service needs one"));
        }
        for net in svc.networks.keys() {
            if net != "default" && !config.networks.contains_key(net) {
                return Err(fail(
                    &at(&at(&path, "networks"), net),
                    format!(
                        "undefined network {net:?}; {}",
                        defined(config.networks.keys().collect(), "network")
                    ),
                ));
            }
        }
        for (i, vol) in svc.volumes.iter().enumerate() {
            if vol.kind != "volume" {
                continue;
            }
            if let Some(src) = &vol.source {
                if !src.is_empty() && !config.volumes.contains_key(src) {
                    return Err(fail(
                        &at(&at(&path, "volumes"), i),
                        format!(
                            "undefined volume {src:?}; {}",
                            defined(config.volumes.keys().collect(), "volume")
                        ),
                    ));
                }
            }
        }
        for (kind, refs, objs) in [
            ("config", &svc.configs, &config.configs),
            ("secret", &svc.secrets, &config.secrets),
        ] {
            for (i, r) in refs.iter().enumerate() {
                if !objs.contains_key(&r.source) {
                    return Err(fail(
                        &at(&at(&path, format!("{kind}s")), i),
                        format!(
                            "undefined {kind} {:?}; {}",
                            r.source,
                            defined(objs.keys().collect(), kind)
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// serde's wording -> the words people use for YAML.
fn humanize_serde(msg: &str) -> String {
    let mut m = msg.to_string();
    for (from, to) in [
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping"),
        ("invalid type: ", ""),
    ] {
        m = m.replace(from, to);
    }
    if let Some(rest) = m.strip_prefix("unknown field ") {
        if let Some((field, valid)) = rest.split_once(", expected one of ") {
            return format!(
                "unknown field {field}; valid fields: {}",
                valid.replace('`', "")
            );
        }
        if let Some((field, valid)) = rest.split_once(", expected ") {
            return format!(
                "unknown field {field}; valid field: {}",
                valid.replace('`', "")
            );
        }
    }
    if m.starts_with("struct ") || m.contains("expected struct") {
        m = m.replace('`', "");
    }
    // "string \"two\", expected ..." -> "expected ..., found string \"two\""
    if let Some((found, exp)) = m.split_once(", expected ") {
        let exp = exp.trim_start_matches("struct ");
        return format!(
            "expected {}, found {found}",
            if exp.chars().next().is_some_and(char::is_uppercase) {
                "a mapping"
            } else {
                exp
            }
        );
    }
    m
}
