//! Oracle test for the compose loader: every fixture under
//! `tests/fixtures/compose/stacks/` is loaded by shoal and by
//! `docker stack config -c FILE` (the docker CLI on this machine), and the
//! two models must be equal after normalizing the representation
//! differences listed in [`docker_to_model_shape`]. Every fixture under
//! `invalid/` must be rejected by both. Fixtures under
//! `rejected_at_deploy/` are accepted by `docker stack config` but
//! rejected by `docker stack deploy` (which would create objects before
//! failing, so it is not run here): shoal must reject them at load time.
use serde_yaml::{Mapping, Value};
use shoal::compose::duration::parse_duration;
use shoal::compose::{load, LoadError, Loaded, Vars};
use shoal::source::{DirTree, StackEntry};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose")
}

/// The variables both docker and shoal see (docker gets exactly these as
/// its environment, plus what it needs to reach the daemon).
fn vars() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("REDIS_TAG", "7.2"),
        ("GREETING", "hi"),
        ("EMPTY_VAR", ""),
        ("REPLICAS", "2"),
        ("TARGET_PORT", "6379"),
        ("PUBLISHED_PORT", "16379"),
        ("FROM_VARS", "fv"),
        ("BARE", ""),
        ("EMPTY_IN_FILE", "from-vars"),
        ("RO", "maybe"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for keep in [
        "PATH",
        "HOME",
        "DOCKER_HOST",
        "DOCKER_CONFIG",
        "DOCKER_CONTEXT",
    ] {
        if let Ok(val) = std::env::var(keep) {
            v.push((keep.to_string(), val));
        }
    }
    v
}

fn shoal_load(root: &Path, dir: &str) -> Result<Loaded, LoadError> {
    let tree = DirTree::new(root);
    let entry = StackEntry {
        name: dir.rsplit('/').next().unwrap_or(dir).to_string(),
        dir: dir.to_string(),
        file: format!("{dir}/stack.yml"),
    };
    let vars = Vars {
        map: vars().into_iter().collect(),
        ..Vars::default()
    };
    load(&tree, &entry, &vars)
}

/// `docker stack config -c FILE`: Ok(stdout) or Err(stderr).
fn docker_config(file: &Path) -> Result<String, String> {
    let out = Command::new("docker")
        .args(["stack", "config", "-c"])
        .arg(file)
        .env_clear()
        .envs(vars())
        .output()
        .expect("the docker CLI is the oracle of this test and must be installed");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn cases(sub: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join(sub))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn get_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path {
        cur = cur.as_mapping_mut()?.get_mut(*seg)?;
    }
    Some(cur)
}

fn each_entry(v: &mut Value, f: impl Fn(&mut Value)) {
    if let Some(m) = v.as_mapping_mut() {
        for (_, item) in m.iter_mut() {
            f(item);
        }
    }
}

fn duration_to_ns(v: &mut Value) {
    if let Value::String(s) = v {
        let ns = parse_duration(s).expect("docker prints Go durations");
        *v = Value::Number(ns.into());
    }
}

fn string_to_int(v: &mut Value) {
    if let Value::String(s) = v {
        *v = Value::Number(s.parse::<i64>().expect("docker prints byte counts").into());
    }
}

/// docker's printed model -> the shape of shoal's model. Each rule is a
/// representation difference, not a semantic one:
/// 1. `x-` extension fields (top level, services, networks, volumes,
///    configs, secrets): docker keeps them, shoal drops them;
/// 2. durations: docker prints Go strings (`1m30s`), shoal holds nanoseconds;
/// 3. memory sizes: docker prints the byte count as a string, shoal an integer;
/// 4. `ulimits.X: N`: shoal holds the single value as `{single: N}`;
/// 5. `external: true`: shoal holds it as `{external: true}` (the name
///    docker folds in is in `name` for both);
/// 6. config/secret `file`: docker prints an absolute path on this
///    machine, shoal a path in the repository tree (`stacks/x/a.conf`).
fn docker_to_model_shape(mut v: Value, root: &Path) -> Value {
    let root_prefix = format!("{}/", root.display());
    fn drop_extensions(v: &mut Value) {
        if let Some(m) = v.as_mapping_mut() {
            m.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
        }
    }
    drop_extensions(&mut v);
    for kind in ["services", "networks", "volumes", "configs", "secrets"] {
        if let Some(section) = get_mut(&mut v, &[kind]) {
            each_entry(section, drop_extensions);
        }
    }
    if let Some(services) = get_mut(&mut v, &["services"]) {
        each_entry(services, |svc| {
            for p in [
                &["stop_grace_period"][..],
                &["healthcheck", "interval"],
                &["healthcheck", "timeout"],
                &["healthcheck", "start_period"],
                &["healthcheck", "start_interval"],
                &["deploy", "update_config", "delay"],
                &["deploy", "update_config", "monitor"],
                &["deploy", "rollback_config", "delay"],
                &["deploy", "rollback_config", "monitor"],
                &["deploy", "restart_policy", "delay"],
                &["deploy", "restart_policy", "window"],
            ] {
                if let Some(d) = get_mut(svc, p) {
                    duration_to_ns(d);
                }
            }
            for p in [
                ["deploy", "resources", "limits", "memory"],
                ["deploy", "resources", "reservations", "memory"],
            ] {
                if let Some(m) = get_mut(svc, &p) {
                    string_to_int(m);
                }
            }
            if let Some(ulimits) = get_mut(svc, &["ulimits"]) {
                each_entry(ulimits, |u| {
                    if let Value::Number(n) = u {
                        let mut m = Mapping::new();
                        m.insert("single".into(), Value::Number(n.clone()));
                        *u = Value::Mapping(m);
                    }
                });
            }
        });
    }
    for kind in ["networks", "volumes", "configs", "secrets"] {
        if let Some(section) = get_mut(&mut v, &[kind]) {
            each_entry(section, |obj| {
                if let Some(ext @ Value::Bool(_)) = get_mut(obj, &["external"]) {
                    let mut m = Mapping::new();
                    m.insert("external".into(), ext.clone());
                    *ext = Value::Mapping(m);
                }
                if let Some(Value::String(f)) = get_mut(obj, &["file"]) {
                    if let Some(rel) = f.strip_prefix(&root_prefix) {
                        *f = rel.to_string();
                    }
                }
            });
        }
    }
    v
}

/// YAML text with mapping keys sorted, so a diff shows only real differences.
fn sorted_yaml(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Mapping(m) => {
                let mut entries: Vec<(String, Value)> = m
                    .iter()
                    .map(|(k, v)| (serde_yaml::to_string(k).unwrap(), sort(v)))
                    .collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let mut out = Mapping::new();
                for (k, v) in entries {
                    out.insert(serde_yaml::from_str(&k).unwrap(), v);
                }
                Value::Mapping(out)
            }
            Value::Sequence(items) => Value::Sequence(items.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_yaml::to_string(&sort(v)).unwrap()
}

#[test]
fn valid_fixtures_match_docker_stack_config() {
    let root = fixtures();
    let mut failures = Vec::new();
    for name in cases("stacks") {
        let dir = format!("stacks/{name}");
        let docker = docker_config(&root.join(&dir).join("stack.yml"))
            .unwrap_or_else(|e| panic!("docker rejects fixture {dir}: {e}"));
        let docker: Value = serde_yaml::from_str(&docker).unwrap();
        let want = docker_to_model_shape(docker, &root);
        let loaded = shoal_load(&root, &dir).unwrap_or_else(|e| panic!("shoal rejects {dir}: {e}"));
        let got = serde_yaml::to_value(&loaded.config).unwrap();
        if got != want {
            let (want, got) = (sorted_yaml(&want), sorted_yaml(&got));
            let diff = similar::TextDiff::from_lines(&want, &got)
                .unified_diff()
                .header("docker (normalized)", "shoal")
                .to_string();
            failures.push(format!("== {dir}\n{diff}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_fixtures_are_rejected_by_both() {
    let root = fixtures();
    for name in cases("invalid") {
        let dir = format!("invalid/{name}");
        let docker = docker_config(&root.join(&dir).join("stack.yml"));
        assert!(
            docker.is_err(),
            "docker accepts {dir}; move it out of invalid/"
        );
        let err = shoal_load(&root, &dir).expect_err(&format!("shoal accepts {dir}"));
        assert_eq!(err.file, format!("{dir}/stack.yml"), "{err}");
        assert!(err.line.is_some(), "{dir}: no line in {err}");
    }
}

#[test]
fn deploy_time_errors_are_load_errors() {
    let root = fixtures();
    for name in cases("rejected_at_deploy") {
        let dir = format!("rejected_at_deploy/{name}");
        assert!(
            docker_config(&root.join(&dir).join("stack.yml")).is_ok(),
            "{dir}: docker stack config rejects it; move it to invalid/"
        );
        let err = shoal_load(&root, &dir).expect_err(&format!("shoal accepts {dir}"));
        assert!(err.line.is_some(), "{dir}: no line in {err}");
    }
}

/// Expected (case, line, words the message must hold) for invalid files.
#[test]
fn invalid_messages_name_line_field_and_fix() {
    let root = fixtures();
    let table: &[(&str, usize, &[&str])] = &[
        (
            "invalid/unknown_key",
            5,
            &["services.web.foo", "unknown field", "valid fields"],
        ),
        (
            "invalid/replicas_string",
            6,
            &["services.web.deploy.replicas", "integer", "two"],
        ),
        (
            "invalid/bad_port",
            6,
            &["services.web.ports.0", "\"x:80\"", "expected [HOST_IP:]"],
        ),
        (
            "invalid/bad_duration",
            5,
            &["services.web.stop_grace_period", "10x", "Go duration"],
        ),
        (
            "invalid/bad_size",
            8,
            &["services.web.deploy.resources.limits.memory", "5q", "512m"],
        ),
        (
            "invalid/version2",
            1,
            &[
                "version",
                "unsupported Compose file version: 2",
                "3.0 to 3.13",
            ],
        ),
        (
            "invalid/required_var",
            4,
            &["services.web.image", "TAG", "set TAG to the image tag"],
        ),
        (
            "invalid/invalid_template",
            4,
            &["services.web.image", "escape any $"],
        ),
        (
            "invalid/ports_not_list",
            5,
            &["services.web.ports", "expected a list"],
        ),
        (
            "invalid/env_bool",
            6,
            &["services.web.environment.DEBUG", "string, number or null"],
        ),
        ("invalid/yaml_syntax", 7, &["invalid YAML"]),
        (
            "invalid/forbidden",
            5,
            &["services.web.volume_driver", "top-level `volumes`"],
        ),
        (
            "invalid/x_in_deploy",
            6,
            &["services.web.deploy.x-note", "unknown field"],
        ),
        ("invalid/top_unknown", 2, &["foo", "unknown field"]),
        (
            "invalid/published_string",
            7,
            &["services.web.ports.0.published", "integer"],
        ),
        (
            "invalid/external_conflict",
            8,
            &["volumes.v.driver", "conflicting parameters"],
        ),
        (
            "invalid/bad_bool",
            5,
            &["services.web.read_only", "maybe", "boolean"],
        ),
        (
            "invalid/command_int",
            5,
            &["services.web.command.1", "a string"],
        ),
        (
            "invalid/healthcheck_bad",
            6,
            &["services.web.healthcheck.interval", "duration"],
        ),
        ("invalid/service_not_map", 3, &["services.web", "a mapping"]),
        ("invalid/bad_merge", 5, &["<<", "mapping"]),
        (
            "invalid/bad_proto",
            6,
            &["services.web.ports.0", "tcp, udp, sctp"],
        ),
        (
            "rejected_at_deploy/undefined_network",
            7,
            &[
                "services.web.networks.nope",
                "undefined network \"nope\"",
                "defined networks: front",
            ],
        ),
        (
            "rejected_at_deploy/undefined_volume",
            6,
            &["services.web.volumes.0", "undefined volume \"nope\""],
        ),
        (
            "rejected_at_deploy/undefined_secret",
            6,
            &["services.web.secrets.0", "undefined secret \"nope\""],
        ),
        (
            "rejected_at_deploy/undefined_config",
            6,
            &["services.web.configs.0", "undefined config \"nope\""],
        ),
        (
            "rejected_at_deploy/missing_image",
            3,
            &["services.web", "missing image"],
        ),
        (
            "rejected_at_deploy/bad_mode",
            6,
            &[
                "services.web.deploy.mode",
                "valid modes: replicated, global, replicated-job, global-job",
            ],
        ),
        (
            "rejected_at_deploy/global_replicas",
            7,
            &["services.web.deploy.replicas", "replicated"],
        ),
        (
            "rejected_at_deploy/bad_volume",
            6,
            &["services.web.volumes.0", "a::b"],
        ),
        (
            "rejected_at_deploy/volume_type",
            6,
            &["services.web.volumes.0.type", "disk", "valid types"],
        ),
    ];
    let mut wrong = Vec::new();
    for (dir, line, words) in table {
        let err = match shoal_load(&root, dir) {
            Ok(_) => {
                wrong.push(format!("{dir}: accepted"));
                continue;
            }
            Err(e) => e,
        };
        let text = err.to_string();
        if err.line != Some(*line) || !words.iter().all(|w| text.contains(w)) {
            wrong.push(format!("{dir}: want line {line} and {words:?}, got {text}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn warnings_match_docker_wording() {
    let root = fixtures();
    let loaded = shoal_load(&root, "stacks/unsupported").unwrap();
    assert!(loaded.warnings.contains(&"Ignoring unsupported options: build, cgroup_parent, devices, domainname, external_links, ipc, links, mac_address, network_mode, pid, privileged, restart, security_opt, shm_size, userns_mode".to_string()), "{:?}", loaded.warnings);
    assert!(
        loaded.warnings.iter().any(|w| w
            .contains("container_name: Setting the container name is not supported.")
            || w.contains("container_name")),
        "{:?}",
        loaded.warnings
    );
    let loaded = shoal_load(&root, "stacks/interp").unwrap();
    assert!(
        loaded.warnings.contains(
            &"The NOT_SET_ANYWHERE variable is not set. Defaulting to a blank string.".to_string()
        ),
        "{:?}",
        loaded.warnings
    );
    let loaded = shoal_load(&root, "stacks/objects").unwrap();
    assert!(
        loaded.warnings.contains(
            &"network ext_old: network.external.name is deprecated in favor of network.name"
                .to_string()
        ),
        "{:?}",
        loaded.warnings
    );
}

/// A tree holding one stack file in memory (for mutated inputs).
struct OneFile(Vec<u8>);

impl shoal::source::Tree for OneFile {
    fn read(&self, path: &str) -> Result<Vec<u8>, shoal::source::SourceError> {
        if path == "stacks/m/stack.yml" {
            Ok(self.0.clone())
        } else {
            Err(shoal::source::SourceError::Other(format!(
                "{path}: not here"
            )))
        }
    }
    fn list(&self, _dir: &str) -> Result<Vec<String>, shoal::source::SourceError> {
        Ok(Vec::new())
    }
    fn is_file(&self, path: &str) -> bool {
        path == "stacks/m/stack.yml"
    }
    fn describe(&self) -> String {
        "mutated".to_string()
    }
    fn local_root(&self) -> Option<PathBuf> {
        Some(PathBuf::from("/repo"))
    }
}

/// Random byte edits of every valid fixture: the loader returns Ok or Err,
/// never panics.
#[test]
fn mutated_fixtures_never_panic() {
    let entry = StackEntry {
        name: "m".into(),
        dir: "stacks/m".into(),
        file: "stacks/m/stack.yml".into(),
    };
    let vars = Vars {
        map: vars().into_iter().collect(),
        ..Vars::default()
    };
    let alphabet = b" \n:-[]{}&*<>$'\"#!,|0123456789abcxyz.~/\\=?";
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n.max(1)
    };
    for name in cases("stacks") {
        let original =
            std::fs::read(fixtures().join("stacks").join(&name).join("stack.yml")).unwrap();
        for _ in 0..300 {
            let mut bytes = original.clone();
            for _ in 0..=next(4) {
                let at = next(bytes.len());
                match next(3) {
                    0 => bytes[at] = alphabet[next(alphabet.len())],
                    1 => bytes.insert(at, alphabet[next(alphabet.len())]),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let _ = load(&OneFile(bytes), &entry, &vars);
        }
    }
}
