//! Short syntax -> long form, in the YAML value tree, before the typed
//! model is deserialized: the shapes docker/cli's loader produces
//! (`ports: ["80:80"]` -> `{mode, target, published, protocol}`, durations
//! -> nanoseconds, sizes -> bytes, env lists -> maps...). Type errors found
//! here name the field path and what would be valid.
use super::duration::parse_duration;
use super::service::normalize_service;
use super::units::parse_bytes;
use crate::source::{lexical, Tree};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

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

pub(super) fn expected(path: &[String], what: &str, v: &Value) -> Fail {
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
pub(super) fn number_string(n: &serde_yaml::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

pub(super) fn key_string(k: &Value, path: &[String]) -> R<String> {
    match k {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(expected(path, "string keys", other)),
    }
}

/// Either one string or a list of strings -> a list.
pub(super) fn string_or_list(v: &Value, path: &[String]) -> R<Value> {
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
/// A list of `KEY=VALUE` or a mapping, as a mapping; a key without a value
/// gets the empty string (labels, sysctls, driver and logging options).
pub(super) fn string_dict(v: &Value, p: &[String]) -> R<Value> {
    list_or_dict(v, p, &Value::String(String::new())).map(Value::Mapping)
}

pub(super) fn list_or_dict(v: &Value, path: &[String], null_value: &Value) -> R<Mapping> {
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

pub(super) fn duration(v: &Value, path: &[String]) -> R<Value> {
    match v {
        Value::String(s) => parse_duration(s)
            .map(|ns| Value::Number(ns.into()))
            .map_err(|e| fail(path, e)),
        Value::Null => Ok(Value::Null),
        other => Err(expected(path, "a duration string like 10s or 1m30s", other)),
    }
}

pub(super) fn bytes(v: &Value, path: &[String]) -> R<Value> {
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
pub(super) fn file_mode(v: &Value, path: &[String]) -> R<Value> {
    match v {
        Value::String(s) if s.len() > 1 && s.starts_with('0') => u32::from_str_radix(&s[1..], 8)
            .map(|m| Value::Number(m.into()))
            .map_err(|_| expected(path, "a file mode like 0440", v)),
        Value::Number(_) | Value::Null => Ok(v.clone()),
        other => Err(expected(path, "a file mode like 0440", other)),
    }
}

pub(super) fn cpus(v: &Value, path: &[String]) -> R<Value> {
    match v {
        Value::String(_) | Value::Null => Ok(v.clone()),
        other => Err(expected(
            path,
            "a string like \"0.5\" (docker rejects a bare number)",
            other,
        )),
    }
}

pub(super) fn mapping_mut<'v>(v: &'v mut Value, path: &[String]) -> R<&'v mut Mapping> {
    if v.is_null() {
        *v = Value::Mapping(Mapping::new());
    }
    match v {
        Value::Mapping(m) => Ok(m),
        other => Err(expected(path, "a mapping", other)),
    }
}

/// Apply `f` to the value of `key` when present.
pub(super) fn field(
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
pub(super) fn section(
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
    field(m, path, "labels", string_dict)?;
    field(m, path, "driver_opts", string_dict)?;
    if let Some(ext) = m.get("external").cloned() {
        normalize_external(kind, name, &ext, m, path, env)?;
    }
    if kind == "configs" || kind == "secrets" {
        resolve_object_source(kind, m, path, env)?;
    }
    Ok(())
}

/// `external: true|false|{name}` -> `external: {external: bool}`; the
/// deprecated `external.name` becomes `name` (with a warning), and an
/// external object without a name is named by its key.
fn normalize_external(
    kind: &str,
    name: &str,
    ext: &Value,
    m: &mut Mapping,
    path: &[String],
    env: &mut Env,
) -> R<()> {
    let singular = kind.trim_end_matches('s');
    let p = at(path, "external");
    let (external, ext_name) = match ext {
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
        env.warnings.push(format!(
            "{singular} {name}: {singular}.external.name is deprecated in favor of {singular}.name"
        ));
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
    Ok(())
}

/// A config or secret needs a source (file, environment or external); a
/// file of one that is not external becomes a path in the tree.
fn resolve_object_source(kind: &str, m: &mut Mapping, path: &[String], env: &Env) -> R<()> {
    let singular = kind.trim_end_matches('s');
    let external = m
        .get("external")
        .and_then(|e| e.get("external"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let has = |k: &str| m.get(k).is_some_and(|v| !v.is_null());
    if !external && !has("file") && !has("environment") {
        return Err(fail(
            path,
            format!("a {singular} needs one of file, environment or external: true"),
        ));
    }
    // docker/cli leaves the file of an external object as written.
    if let Some(file) = m.get("file").cloned().filter(|_| !external) {
        let p = at(path, "file");
        let Value::String(f) = &file else {
            return Err(expected(&p, "a path string", &file));
        };
        let resolved =
            tree_path(env.stack_dir, env.local_root.as_deref(), f).map_err(|e| fail(&p, e))?;
        m.insert("file".into(), Value::String(resolved));
    }
    Ok(())
}

/// A file a stack references (`configs/secrets: file:`, `env_file:`) as a
/// path in the tree. `rel` is relative to the stack folder `stack_dir`, or,
/// in directory mode (`local_root` is the repository's folder), absolute
/// (`$PWD/conf/x.conf`, which `docker stack deploy` reads as it is).
///
/// Wherever it points, it must stay in the stack's own folder or the shared
/// folder [`crate::source::SHARED_DIR`]: a stack must not read another stack's files (its
/// secrets, which would then land in a config anyone can inspect).
pub fn tree_path(stack_dir: &str, local_root: Option<&Path>, rel: &str) -> Result<String, String> {
    // `stacks/_shared` for `stacks/<stack>`, a cluster's
    // own `clusters/<name>/stacks/_shared` for its stacks.
    let shared = crate::source::shared_dir_of(stack_dir);
    let shared = shared.as_str();
    let parts = if rel.starts_with('~') {
        return Err(format!(
            "{rel:?} is outside the repository; use a path relative to the stack folder ({stack_dir})"
        ));
    } else if rel.starts_with('/') {
        let Some(root) = local_root else {
            return Err(format!(
                "{rel:?} is an absolute path, and a git commit has no folder on this machine; \
                 use a path relative to the stack folder ({stack_dir})"
            ));
        };
        // The repository as given and as resolved by the kernel: `$PWD` may
        // be either, depending on how the shell got there.
        let roots = [std::fs::canonicalize(root).ok(), Some(root.to_path_buf())];
        let inside = roots.iter().flatten().find_map(|root| {
            let rest = Path::new(rel).strip_prefix(root).ok()?;
            lexical(&[], rest.to_str()?)
        });
        inside.ok_or_else(|| {
            format!(
                "{rel:?} is outside the repository ({}); use a path inside the stack folder ({stack_dir})",
                root.display()
            )
        })?
    } else {
        let base: Vec<&str> = stack_dir.split('/').filter(|s| !s.is_empty()).collect();
        lexical(&base, rel).ok_or_else(|| format!("{rel:?} points outside the repository"))?
    };
    let path = parts.join("/");
    let within = |dir: &str| path.starts_with(dir) && path[dir.len()..].starts_with('/');
    if !within(stack_dir.trim_end_matches('/')) && !within(shared) {
        return Err(format!(
            "{rel:?} is {path}, outside the stack folder {stack_dir}/; a stack may only use \
             files in its own folder and in the shared folder {shared}/"
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tree_path_tests {
    use super::tree_path;
    use std::path::Path;

    #[test]
    fn relative_paths_stay_in_the_stack_or_shared_folder() {
        let ok = |rel| tree_path("stacks/web", None, rel);
        assert_eq!(ok("./conf/a.conf").unwrap(), "stacks/web/conf/a.conf");
        assert_eq!(ok("../web/x").unwrap(), "stacks/web/x");
        assert_eq!(ok("../_shared/ca.pem").unwrap(), "stacks/_shared/ca.pem");
        let e = ok("../team-a/secrets.sops.env").unwrap_err();
        assert!(
            e.contains("stacks/team-a/secrets.sops.env")
                && e.contains("outside the stack folder stacks/web/")
                && e.contains("stacks/_shared/"),
            "{e}"
        );
        // A sibling whose name starts with the stack's is another folder.
        assert!(ok("../web2/x").is_err());
        assert!(ok("../../README.md").is_err());
        assert!(ok("../../../etc/passwd")
            .unwrap_err()
            .contains("outside the repository"));
        assert!(ok("~/x").unwrap_err().contains("outside the repository"));
        // The folder itself is not a file in it.
        assert!(ok(".").is_err());
    }

    #[test]
    fn a_cluster_stack_reads_its_own_shared_folder_not_another_clusters() {
        let ok = |rel| tree_path("clusters/prod/stacks/web", None, rel);
        assert_eq!(
            ok("../_shared/ca.pem").unwrap(),
            "clusters/prod/stacks/_shared/ca.pem"
        );
        let e = ok("../../../staging/stacks/_shared/ca.pem").unwrap_err();
        assert!(e.contains("clusters/prod/stacks/_shared/"), "{e}");
        assert!(ok("../../../../stacks/_shared/ca.pem").is_err());
        assert!(ok("../../cluster.yml").is_err());
    }

    #[test]
    fn absolute_paths_only_in_directory_mode_and_inside_the_stack() {
        let root = Path::new("/nonexistent-repo");
        let abs = |rel| tree_path("stacks/web", Some(root), rel);
        assert_eq!(
            abs("/nonexistent-repo/stacks/web/conf/x.conf").unwrap(),
            "stacks/web/conf/x.conf"
        );
        assert_eq!(
            abs("/nonexistent-repo/stacks/_shared/x").unwrap(),
            "stacks/_shared/x"
        );
        let e = abs("/etc/shadow").unwrap_err();
        assert!(
            e.contains("outside the repository (/nonexistent-repo)"),
            "{e}"
        );
        let e = abs("/nonexistent-repo/stacks/other/x").unwrap_err();
        assert!(e.contains("outside the stack folder"), "{e}");
        assert!(abs("/nonexistent-repo/stacks/web/../../../etc/x").is_err());
        let e = tree_path("stacks/web", None, "/nonexistent-repo/stacks/web/x").unwrap_err();
        assert!(e.contains("git commit"), "{e}");
    }
}
