//! The loading pipeline for one file's text, and the checks docker makes
//! beyond types: version, forbidden/unsupported options, required image,
//! references to undefined networks/volumes/configs/secrets.
use super::interpolate::interpolate_value;
use super::lines::LineIndex;
use super::long_syntax::{at, describe, fail, normalize_config, Env, Fail};
use super::model::Config;
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
    let (mut root, rep) = parse_top_level(text, &entry.file)?;
    check_version(&mut root).map_err(|f| rep.error(f))?;
    let x_shoal = root
        .get("x-shoal")
        .map(|v| serde_json::to_value(v).unwrap_or_default());
    let stack_depends_on = super::depends::stack_needs(x_shoal.as_ref())
        .map_err(|e| rep.error(fail(&e.path, e.message)))?;
    strip_extensions(&mut root);
    let mut warnings = Vec::new();
    check_options(&root, &mut warnings).map_err(|f| rep.error(f))?;

    // Process variables stacks may not read (`Vars::withheld`) read as
    // unset; each one asked for is named in a warning saying why.
    let asked_withheld = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let lookup = |name: &str| {
        let found = vars.get(name).map(String::from);
        if found.is_none() && vars.withheld(name).is_some() {
            asked_withheld.borrow_mut().insert(name.to_string());
        }
        found
    };
    interpolate_sections(&mut root, &lookup, vars, &mut warnings).map_err(|f| rep.error(f))?;

    let mut env = Env {
        tree,
        stack_dir: &entry.dir,
        local_root: tree.local_root(),
        lookup: &lookup,
        warnings: Vec::new(),
    };
    normalize_config(&mut root, &mut env).map_err(|f| rep.error(f))?;
    warnings.extend(env.warnings);
    warnings.extend(withheld_warnings(&asked_withheld.borrow(), vars));

    let mut config = deserialize_config(root).map_err(|f| rep.error(f))?;
    check_references(&config).map_err(|f| rep.error(f))?;
    super::depends::of_config(&config).map_err(|e| rep.error(fail(&e.path, e.message)))?;
    config.stack_depends_on = stack_depends_on;
    Ok((config, warnings))
}

/// Parse the text as YAML (merge keys applied) and insist on a mapping at
/// the top level; the reporter it returns knows the file's lines.
fn parse_top_level<'a>(text: &str, file: &'a str) -> Result<(Mapping, Reporter<'a>), LoadError> {
    // The line index also checks the nesting depth: it must run before
    // the recursive yaml_serde parser below.
    let lines = LineIndex::build(text).map_err(|e| LoadError {
        file: file.to_string(),
        line: Some(e.line),
        message: e.to_string(),
    })?;
    let rep = Reporter { file, lines };
    let mut root: Value = serde_yaml::from_str(text).map_err(|e| LoadError {
        file: file.to_string(),
        line: e.location().map(|l| l.line()),
        message: format!("invalid YAML: {e}"),
    })?;
    root.apply_merge().map_err(|e| LoadError {
        file: file.to_string(),
        line: rep.lines.first_merge(),
        message: format!(
            "invalid YAML merge key (<<): {e}; a merge key takes a mapping or a list of mappings"
        ),
    })?;
    match root {
        Value::Mapping(m) => Ok((m, rep)),
        Value::Null => Err(rep.error(fail(
            &[],
            "the file is empty; expected a compose file with a services: mapping",
        ))),
        other => Err(rep.error(fail(
            &[],
            format!(
                "expected a mapping at the top level, found {}",
                describe(&other)
            ),
        ))),
    }
}

/// Substitute variables in every top-level section; each variable left
/// unset (and not withheld, which gets its own warning) adds docker's
/// "not set" warning.
fn interpolate_sections(
    root: &mut Mapping,
    lookup: &dyn Fn(&str) -> Option<String>,
    vars: &Vars,
    warnings: &mut Vec<String>,
) -> Result<(), Fail> {
    let mut unset = Vec::new();
    for key in SECTIONS {
        if let Some(v) = root.get_mut(key) {
            let mut path = vec![key.to_string()];
            interpolate_value(v, &mut path, lookup, &mut unset)
                .map_err(|(path, message)| fail(&path, message))?;
        }
    }
    for name in unset {
        if vars.withheld(&name).is_none() {
            warnings.push(format!(
                "The {name} variable is not set. Defaulting to a blank string."
            ));
        }
    }
    Ok(())
}

/// One warning for each withheld process variable the file asked for.
fn withheld_warnings(asked: &std::collections::BTreeSet<String>, vars: &Vars) -> Vec<String> {
    asked
        .iter()
        .filter_map(|name| {
            let why = vars.withheld(name)?;
            Some(format!(
                "The {name} variable is not read from the environment: {}. It is treated as unset.",
                why.reason()
            ))
        })
        .collect()
}

/// Deserialize the normalised mapping into the typed model; a failure
/// names the path to the offending value.
fn deserialize_config(root: Mapping) -> Result<Config, Fail> {
    serde_path_to_error::deserialize(Value::Mapping(root)).map_err(|e| {
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
        fail(&path, humanize_serde(&e.inner().to_string()))
    })
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
        ("unit value", "null"),
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

#[cfg(test)]
mod tests {
    use super::super::{load, LoadError, Vars};
    use crate::source::{SourceError, StackEntry, Tree};
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// An in-memory tree; `root` plays the checkout on this machine.
    struct MemTree {
        files: HashMap<String, String>,
        root: Option<PathBuf>,
    }

    impl Tree for MemTree {
        fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
            self.files
                .get(path)
                .map(|s| s.as_bytes().to_vec())
                .ok_or_else(|| SourceError::Io {
                    path: path.to_string(),
                    message: "no such file".to_string(),
                })
        }
        fn list(&self, _dir: &str) -> Result<Vec<String>, SourceError> {
            Ok(Vec::new())
        }
        fn is_file(&self, path: &str) -> bool {
            self.files.contains_key(path)
        }
        fn describe(&self) -> String {
            "memory".to_string()
        }
        fn local_root(&self) -> Option<PathBuf> {
            self.root.clone()
        }
    }

    fn entry() -> StackEntry {
        StackEntry {
            name: "web".into(),
            dir: "stacks/web".into(),
            file: "stacks/web/stack.yml".into(),
        }
    }

    fn tree(yaml: &str, extra: &[(&str, &str)], root: Option<&str>) -> MemTree {
        let mut files: HashMap<String, String> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        files.insert("stacks/web/stack.yml".into(), yaml.to_string());
        MemTree {
            files,
            root: root.map(PathBuf::from),
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars {
            map: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Vars::default()
        }
    }

    fn err(yaml: &str) -> LoadError {
        load(&tree(yaml, &[], Some("/repo")), &entry(), &Vars::default()).unwrap_err()
    }

    fn assert_err(yaml: &str, line: usize, words: &[&str]) {
        let e = err(yaml);
        assert_eq!(e.file, "stacks/web/stack.yml", "{e}");
        assert_eq!(e.line, Some(line), "{e}");
        for w in words {
            assert!(e.message.contains(w), "{w:?} not in {e}");
        }
    }

    const HEAD: &str = "version: \"3.8\"\nservices:\n  web:\n    image: a\n";

    #[test]
    fn error_kinds_name_file_line_and_field() {
        assert_err(
            &format!("{HEAD}    foo: 1\n"),
            5,
            &["services.web.foo", "unknown field `foo`", "valid fields"],
        );
        assert_err(
            &format!("{HEAD}    deploy:\n      replicas: two\n"),
            6,
            &["services.web.deploy.replicas", "integer", "two"],
        );
        assert_err(
            &format!("{HEAD}    deploy:\n      mode: foo\n"),
            6,
            &["valid modes: replicated, global, replicated-job, global-job"],
        );
        assert_err(
            &format!("{HEAD}    ports: [\"80:x\"]\n"),
            5,
            &["services.web.ports.0", "80:x"],
        );
        assert_err(
            &format!("{HEAD}    stop_grace_period: 1y\n"),
            5,
            &["stop_grace_period", "Go duration"],
        );
        assert_err(
            &format!(
                "{HEAD}    deploy:\n      resources:\n        limits:\n          memory: lots\n"
            ),
            8,
            &["memory", "byte size"],
        );
        assert_err(
            &format!("{HEAD}    networks: [a]\n"),
            5,
            &[
                "services.web.networks.a",
                "undefined network \"a\"",
                "no networks are defined",
            ],
        );
        assert_err(
            &format!("{HEAD}    volumes: [\"v:/v\"]\nvolumes:\n  w:\n"),
            5,
            &["undefined volume \"v\"", "defined volumes: w"],
        );
        assert_err(
            &format!("{HEAD}    secrets: [s]\n"),
            5,
            &["undefined secret \"s\""],
        );
        assert_err(
            &format!("{HEAD}    configs: [c]\n"),
            5,
            &["undefined config \"c\""],
        );
        assert_err(
            "version: \"3.8\"\nservices:\n  web:\n    command: x\n",
            3,
            &["services.web", "missing image"],
        );
        assert_err(
            "version: \"4.0\"\nservices: {}\n",
            1,
            &["unsupported Compose file version: 4.0"],
        );
        assert_err(
            &format!("{HEAD}    environment: 5\n"),
            5,
            &["services.web.environment", "mapping or a list"],
        );
        assert_err(
            &format!("{HEAD}    labels: [1]\n"),
            5,
            &["services.web.labels.0", "KEY=VALUE"],
        );
        assert_err(
            &format!("{HEAD}    cpu_shares: 5\n"),
            5,
            &["services.web.cpu_shares", "deploy.resources"],
        );
        assert_err(
            &format!("{HEAD}    hostname: \"${{TAG:?TAG is required}}\"\n"),
            5,
            &[
                "services.web.hostname",
                "required variable TAG is missing a value: TAG is required",
            ],
        );
        assert_err(
            &format!("{HEAD}  db:\n    image: b\n    user: [1]\n"),
            7,
            &["services.db.user", "expected a string"],
        );
        assert_err(
            "version: \"3.8\"\nservices:\n  web:\n    image: a\n  bad: [\n",
            6,
            &["invalid YAML"],
        );
        assert!(err("").message.contains("empty"));
        assert_err(
            &format!("{HEAD}secrets:\n  s: {{}}\n"),
            6,
            &["secrets.s", "file, environment or external"],
        );
    }

    #[test]
    fn relative_bind_needs_a_local_checkout() {
        let yaml = format!("{HEAD}    volumes:\n      - ./data:/data\n");
        let e = load(&tree(&yaml, &[], None), &entry(), &Vars::default()).unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(
            e.message.contains("services.web.volumes.0.source") && e.message.contains("./data"),
            "{e}"
        );
        let ok = load(&tree(&yaml, &[], Some("/repo")), &entry(), &Vars::default()).unwrap();
        assert_eq!(
            ok.config.services["web"].volumes[0].source.as_deref(),
            Some("/repo/stacks/web/data")
        );
    }

    #[test]
    fn withheld_process_variables_read_as_unset_with_a_reason() {
        use super::super::{EnvPolicy, Withheld};
        let yaml = format!(
            "{HEAD}    env_file: [app.env]\n    environment:\n      KEY: ${{SOPS_AGE_KEY}}\n      SHOAL_GIT_TOKEN:\n      HOME_DIR: ${{HOME_DIR}}\n"
        );
        let t = tree(
            &yaml,
            &[("stacks/web/app.env", "SOPS_AGE_KEY_FILE\n")],
            None,
        );
        let process = [
            ("SOPS_AGE_KEY", "AGE-SECRET-KEY-1SECRET"),
            ("SOPS_AGE_KEY_FILE", "/root/keys.txt"),
            ("SHOAL_GIT_TOKEN", "ghp_secret"),
            ("HOME_DIR", "/home/x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let vars = Vars::filtered(process, &EnvPolicy::Prefixes(vec!["SHOAL_".into()]));
        assert_eq!(vars.withheld("HOME_DIR"), Some(Withheld::NotAllowed));
        let l = load(&t, &entry(), &vars).unwrap();
        let env = &l.config.services["web"].environment;
        let text = format!("{env:?}");
        for secret in ["AGE-SECRET-KEY", "ghp_secret", "/root/keys.txt", "/home/x"] {
            assert!(!text.contains(secret), "{text}");
        }
        let warnings = l.warnings.join("\n");
        for name in ["SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SHOAL_GIT_TOKEN"] {
            assert!(
                warnings.contains(&format!(
                    "The {name} variable is not read from the environment: it is one of shoal's own credentials"
                )),
                "{warnings}"
            );
        }
        assert!(
            warnings.contains("The HOME_DIR variable is not read from the environment: stacks may not read this process variable (see --env-allow)"),
            "{warnings}"
        );
        assert!(
            !warnings.contains("HOME_DIR variable is not set"),
            "{warnings}"
        );
    }

    #[test]
    fn env_file_and_environment_merge() {
        let yaml = format!("{HEAD}    env_file: [app.env, ../_shared/common.env]\n    environment:\n      A: explicit\n      E:\n");
        let t = tree(
            &yaml,
            &[
                ("stacks/web/app.env", "A=file\nB=file\n# c\nFROMVARS\n"),
                ("stacks/_shared/common.env", "C=common\n"),
            ],
            None,
        );
        let l = load(&t, &entry(), &vars(&[("FROMVARS", "v"), ("E", "env")])).unwrap();
        let env = &l.config.services["web"].environment;
        let got: Vec<(&str, Option<&str>)> = env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("A", Some("explicit")),
                ("B", Some("file")),
                ("FROMVARS", Some("v")),
                ("C", Some("common")),
                ("E", Some("env"))
            ]
        );
    }

    #[test]
    fn env_file_errors_point_into_the_env_file() {
        let yaml = format!("{HEAD}    env_file: app.env\n");
        let t = tree(&yaml, &[("stacks/web/app.env", "A=1\nBAD KEY=2\n")], None);
        let e = load(&t, &entry(), &Vars::default()).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line),
            ("stacks/web/app.env", Some(2)),
            "{e}"
        );
        let t = tree(&yaml, &[], None);
        let e = load(&t, &entry(), &Vars::default()).unwrap_err();
        assert!(
            e.message.contains("services.web.env_file.0") && e.message.contains("cannot read"),
            "{e}"
        );
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn config_files_resolve_into_the_tree() {
        let yaml = format!("{HEAD}configs:\n  a:\n    file: ./conf/a.conf\n  b:\n    file: ../_shared/b.conf\nsecrets:\n  s:\n    file: /etc/passwd\n");
        let e = load(&tree(&yaml, &[], None), &entry(), &Vars::default()).unwrap_err();
        assert!(
            e.message.contains("secrets.s.file") && e.message.contains("is an absolute path"),
            "{e}"
        );
        assert_eq!(e.line, Some(12));
        let yaml = yaml.replace("/etc/passwd", "s.txt");
        let l = load(&tree(&yaml, &[], None), &entry(), &Vars::default()).unwrap();
        assert_eq!(
            l.config.configs["a"].file.as_deref(),
            Some("stacks/web/conf/a.conf")
        );
        assert_eq!(
            l.config.configs["b"].file.as_deref(),
            Some("stacks/_shared/b.conf")
        );
        assert_eq!(
            l.config.secrets["s"].file.as_deref(),
            Some("stacks/web/s.txt")
        );
    }

    #[test]
    fn never_panics_on_truncated_or_odd_input() {
        let full = format!("{HEAD}    ports: [\"80:80\", {{target: 81}}]\n    volumes: [\"./a:/a\", {{type: tmpfs, target: /t}}]\n    deploy: {{replicas: 2, resources: {{limits: {{memory: 1g}}}}}}\n    healthcheck: {{test: x, interval: 1s}}\n    environment: [A=1, \"B\"]\n    command: \"a 'b\"\nx-a: &a {{image: b}}\nnetworks: {{n: {{external: {{name: x}}}}}}\n");
        let odd = [
            "- a\n- b\n",
            "services: [a]\n",
            "services:\n  ? [a, b]\n  : {image: x}\n",
            "services:\n  1: {image: x}\n",
            "services:\n  web: !custom {image: x}\n",
            "services:\n  web: {image: x, ulimits: {n: [1]}}\n",
            "a: &a [*a]\n",
            "services: {web: {image: x, ports: [-1, 1.5, \"\", \"/\", \":::\"]}}\n",
            "services: {web: {image: x, deploy: {replicas: 99999999999999999999999}}}\n",
            "services: {web: {image: x, stop_grace_period: 99999999999999999999h}}\n",
            "services: {web: {image: \"$\", secrets: [{mode: \"0999\"}]}}\n",
            "\u{feff}version: '3'\n",
            "version: 3\nservices: {web: {image: x, volumes: [{type: bind}]}}\n",
        ];
        let mut inputs: Vec<String> = (0..full.len())
            .filter(|i| full.is_char_boundary(*i))
            .map(|i| full[..i].to_string())
            .collect();
        inputs.extend(odd.iter().map(|s| s.to_string()));
        for yaml in inputs {
            let _ = load(&tree(&yaml, &[], None), &entry(), &Vars::default());
        }
    }

    #[test]
    fn depends_on_both_forms_load_without_warnings_and_errors_have_lines() {
        let map = format!("{HEAD}    depends_on:\n      db:\n        condition: service_healthy\n  db:\n    image: busybox:latest\n");
        let l = load(&tree(&map, &[], None), &entry(), &Vars::default()).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let list = format!("{HEAD}    depends_on: [db]\n  db:\n    image: busybox:latest\n");
        let l = load(&tree(&list, &[], None), &entry(), &Vars::default()).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let unknown =
            format!("{HEAD}    depends_on:\n      dbx:\n        condition: service_healthy\n");
        let e = load(&tree(&unknown, &[], None), &entry(), &Vars::default()).unwrap_err();
        assert!(e.line.is_some(), "{e}");
        assert!(
            e.to_string()
                .contains("services.web.depends_on.dbx: web depends on \"dbx\""),
            "{e}"
        );
    }

    #[test]
    fn x_shoal_names_the_stacks_a_stack_needs() {
        let yaml = format!("x-shoal:\n  depends_on: [infra]\n{HEAD}");
        let l = load(&tree(&yaml, &[], None), &entry(), &Vars::default()).unwrap();
        assert_eq!(l.config.stack_depends_on, vec!["infra"]);
        let bad = format!("x-shoal:\n  depends_on: infra\n{HEAD}");
        let e = load(&tree(&bad, &[], None), &entry(), &Vars::default()).unwrap_err();
        assert!(e.to_string().contains("x-shoal.depends_on"), "{e}");
    }

    #[test]
    fn warnings_follow_docker() {
        let yaml = format!("{HEAD}    restart: always\n    build: .\n    container_name: x\n    image: \"a:$NOPE\"\n");
        let l = load(&tree(&yaml, &[], None), &entry(), &Vars::default());
        // `image` twice is a YAML error (duplicate key): check that first.
        assert!(l.is_err());
        let yaml = format!("{HEAD}    restart: always\n    build: .\n    container_name: x\n    hostname: \"h$NOPE\"\n");
        let l = load(&tree(&yaml, &[], None), &entry(), &Vars::default()).unwrap();
        assert_eq!(
            l.warnings,
            vec![
                "Ignoring unsupported options: build, restart".to_string(),
                "Ignoring deprecated option container_name: Setting the container name is not supported.".to_string(),
                "The NOPE variable is not set. Defaulting to a blank string.".to_string(),
            ]
        );
    }
}
