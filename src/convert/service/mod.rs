//! One compose service -> a `ServiceSpec`, field by field as docker's
//! `convert.Service` (v28): names and labels, the container spec, task
//! resources and policies, mode, update/rollback config and endpoint.
use super::mounts::{mounts, BindBase};
use super::objects::{network_name, DEFAULT_NETWORK};
use super::values::{
    effective_capabilities, environment, extra_hosts, legacy_restart_policy, parse_nano_cpus, put,
    put_some, string_map, strings,
};
use super::{FieldError, Namespace};
use crate::compose::model::{
    Config, DeployConfig, FileObjectConfig, HealthCheckConfig, ServiceConfig,
    ServiceFileObjectConfig, UpdateConfig,
};
use crate::model::IMAGE_LABEL;
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

/// A converted service and the warnings met on the way.
pub(crate) struct Converted {
    pub spec: Value,
    pub warnings: Vec<String>,
}

/// Default mode bits of a config or secret file in the container (0444).
const DEFAULT_FILE_MODE: u32 = 0o444;

pub(crate) fn service(
    ns: Namespace,
    name: &str,
    svc: &ServiceConfig,
    config: &Config,
    bind_base: &BindBase,
) -> Result<Converted, FieldError> {
    let field = |f: &str| format!("services.{name}.{f}");
    let default_deploy = DeployConfig::default();
    let deploy = svc.deploy.as_ref().unwrap_or(&default_deploy);
    let mut warnings = Vec::new();

    let mut labels = ns.labels(&deploy.labels);
    labels.insert(IMAGE_LABEL.into(), svc.image.clone().into());
    let labels: std::collections::BTreeMap<_, _> = labels.into_iter().collect();

    let container = container_spec(ns, name, svc, config, bind_base, &mut warnings)?;
    let task = task_template(ns, name, svc, deploy, config, container)?;

    let mut spec = Map::new();
    spec.insert("Name".into(), ns.scope(name).into());
    spec.insert("Labels".into(), json!(labels));
    spec.insert("TaskTemplate".into(), Value::Object(task));
    spec.insert(
        "Mode".into(),
        mode(deploy).map_err(|m| FieldError::new(field("deploy.mode"), m))?,
    );
    put_some(
        &mut spec,
        "UpdateConfig",
        deploy.update_config.as_ref().map(update_config),
    );
    put_some(
        &mut spec,
        "RollbackConfig",
        deploy.rollback_config.as_ref().map(update_config),
    );
    spec.insert("EndpointSpec".into(), endpoint_spec(svc, deploy));
    Ok(Converted {
        spec: Value::Object(spec),
        warnings,
    })
}

/// The task's `ContainerSpec`: what runs (image, command, environment,
/// user), its mounts, health check, DNS, secrets and configs, kernel
/// settings. `extra_hosts` entries docker would skip add a warning.
fn container_spec(
    ns: Namespace,
    name: &str,
    svc: &ServiceConfig,
    config: &Config,
    bind_base: &BindBase,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, FieldError> {
    let (hosts, skipped) = extra_hosts(&svc.extra_hosts);
    for entry in skipped {
        warnings.push(format!(
            "services.{name}.extra_hosts: ignoring {entry:?}, expected host:ip (docker skips it too)"
        ));
    }

    let mut c = Map::new();
    // The docker client sends the image with its tag made explicit
    // (`redis` -> `redis:latest`); the label keeps it as written.
    put(&mut c, "Image", crate::image::as_docker_sends(&svc.image));
    c.insert("Labels".into(), Value::Object(ns.labels(&svc.labels)));
    put(&mut c, "Command", strings(svc.entrypoint.iter().flatten()));
    put(&mut c, "Args", strings(svc.command.iter().flatten()));
    put(&mut c, "Hostname", svc.hostname.clone().unwrap_or_default());
    put(&mut c, "Env", environment(&svc.environment));
    put(&mut c, "Dir", svc.working_dir.clone().unwrap_or_default());
    put(&mut c, "User", svc.user.clone().unwrap_or_default());
    c.insert("Privileges".into(), privileges(ns, name, svc, config)?);
    put_some(&mut c, "Init", svc.init);
    put(
        &mut c,
        "StopSignal",
        svc.stop_signal.clone().unwrap_or_default(),
    );
    put(&mut c, "TTY", svc.tty.unwrap_or(false));
    put(&mut c, "OpenStdin", svc.stdin_open.unwrap_or(false));
    put(&mut c, "ReadOnly", svc.read_only.unwrap_or(false));
    put(
        &mut c,
        "Mounts",
        Value::Array(mounts(ns, name, &svc.volumes, config, bind_base)?),
    );
    put_some(&mut c, "StopGracePeriod", svc.stop_grace_period);
    if let Some(hc) = &svc.healthcheck {
        c.insert(
            "Healthcheck".into(),
            healthcheck(hc)
                .map_err(|m| FieldError::new(format!("services.{name}.healthcheck"), m))?,
        );
    }
    put(&mut c, "Hosts", json!(hosts));
    c.insert("DNSConfig".into(), dns_config(svc));
    put(
        &mut c,
        "Secrets",
        file_references(ns, name, "secrets", &svc.secrets, &config.secrets)?,
    );
    put(&mut c, "Configs", config_references(ns, name, svc, config)?);
    put(
        &mut c,
        "Isolation",
        svc.isolation.clone().unwrap_or_default(),
    );
    put(&mut c, "Sysctls", string_map(&svc.sysctls));
    let (cap_add, cap_drop) = effective_capabilities(&svc.cap_add, &svc.cap_drop);
    put(&mut c, "CapabilityAdd", json!(cap_add));
    put(&mut c, "CapabilityDrop", json!(cap_drop));
    put(&mut c, "Ulimits", ulimits(svc));
    Ok(c)
}

/// The `TaskTemplate` around a container spec: resources, restart policy,
/// placement, network attachments and log driver.
fn task_template(
    ns: Namespace,
    name: &str,
    svc: &ServiceConfig,
    deploy: &DeployConfig,
    config: &Config,
    container: Map<String, Value>,
) -> Result<Map<String, Value>, FieldError> {
    let mut task = Map::new();
    task.insert("ContainerSpec".into(), Value::Object(container));
    task.insert("Resources".into(), resources(name, deploy)?);
    let restart = restart_policy(svc, deploy)
        .map_err(|m| FieldError::new(format!("services.{name}.restart"), m))?;
    put_some(&mut task, "RestartPolicy", restart);
    task.insert("Placement".into(), placement(deploy));
    task.insert(
        "Networks".into(),
        network_attachments(ns, name, svc, config)?,
    );
    if let Some(logging) = &svc.logging {
        let mut d = Map::new();
        put(&mut d, "Name", logging.driver.clone().unwrap_or_default());
        put(&mut d, "Options", string_map(&logging.options));
        task.insert("LogDriver".into(), Value::Object(d));
    }
    Ok(task)
}

/// `Privileges` as docker sends it: always present, with the credential
/// spec (or null) and no SELinux context.
fn privileges(
    ns: Namespace,
    name: &str,
    svc: &ServiceConfig,
    config: &Config,
) -> Result<Value, FieldError> {
    let cred = match &svc.credential_spec {
        None => Value::Null,
        Some(spec) => {
            let set: Vec<(&str, &String)> = [
                ("Config", spec.config.as_ref()),
                ("File", spec.file.as_ref()),
                ("Registry", spec.registry.as_ref()),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
            .collect();
            match set.as_slice() {
                [] => Value::Null,
                [("Config", key)] => {
                    // docker puts the config's ID here; shoal keeps the
                    // config name for the applier to resolve.
                    let obj = config.configs.get(*key).ok_or_else(|| {
                        FieldError::new(
                            format!("services.{name}.credential_spec.config"),
                            format!("undefined config {key:?}: declare it under the top-level `configs:`"),
                        )
                    })?;
                    json!({"Config": ns.object_name(key, obj.name.as_ref(), obj.external.as_ref())})
                }
                [(k, v)] => json!({ *k: v }),
                _ => {
                    return Err(FieldError::new(
                        format!("services.{name}.credential_spec"),
                        "set only one of config, file and registry",
                    ))
                }
            }
        }
    };
    Ok(json!({"CredentialSpec": cred, "SELinuxContext": null}))
}

fn healthcheck(hc: &HealthCheckConfig) -> Result<Value, String> {
    if hc.disable == Some(true) {
        if hc.test.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err("test and disable can't be set at the same time".into());
        }
        return Ok(json!({"Test": ["NONE"]}));
    }
    let mut m = Map::new();
    put(&mut m, "Test", strings(hc.test.iter().flatten()));
    put(&mut m, "Interval", hc.interval.unwrap_or(0));
    put(&mut m, "Timeout", hc.timeout.unwrap_or(0));
    put(&mut m, "StartPeriod", hc.start_period.unwrap_or(0));
    put(&mut m, "StartInterval", hc.start_interval.unwrap_or(0));
    put(&mut m, "Retries", hc.retries.unwrap_or(0));
    Ok(Value::Object(m))
}

/// docker always sends a `DNSConfig` (empty without dns settings);
/// `dns_opt` is not passed by `docker stack deploy`.
fn dns_config(svc: &ServiceConfig) -> Value {
    let mut m = Map::new();
    put(&mut m, "Nameservers", strings(&svc.dns));
    put(&mut m, "Search", strings(&svc.dns_search));
    Value::Object(m)
}

fn ulimits(svc: &ServiceConfig) -> Value {
    let mut sorted: Vec<_> = svc.ulimits.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    Value::Array(
        sorted
            .into_iter()
            .map(|(name, u)| {
                let (soft, hard) = match u.single.filter(|s| *s != 0) {
                    Some(single) => (single, single),
                    None => (u.soft.unwrap_or(0), u.hard.unwrap_or(0)),
                };
                json!({"Name": name, "Hard": hard, "Soft": soft})
            })
            .collect(),
    )
}

/// `File` target of a config or secret reference: name defaults to the
/// source key (docker makes config targets absolute in the daemon, not
/// here), uid/gid `"0"`, mode 0444.
fn file_target(r: &ServiceFileObjectConfig) -> Value {
    let non_empty = |v: &Option<String>, default: &str| {
        v.clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    json!({
        "Name": non_empty(&r.target, &r.source),
        "UID": non_empty(&r.uid, "0"),
        "GID": non_empty(&r.gid, "0"),
        "Mode": r.mode.unwrap_or(DEFAULT_FILE_MODE),
    })
}

/// The swarm name a service reference points at.
fn referenced_name(
    ns: Namespace,
    service: &str,
    section: &str,
    key: &str,
    declared: &IndexMap<String, FileObjectConfig>,
) -> Result<String, FieldError> {
    let obj = declared.get(key).ok_or_else(|| {
        FieldError::new(
            format!("services.{service}.{section}"),
            format!(
                "undefined {} {key:?}: declare it under the top-level `{section}:`",
                section.trim_end_matches('s')
            ),
        )
    })?;
    Ok(ns.object_name(key, obj.name.as_ref(), obj.external.as_ref()))
}

/// Secret (or config) references sorted by name; IDs left out.
fn file_references(
    ns: Namespace,
    service: &str,
    section: &str,
    refs: &[ServiceFileObjectConfig],
    declared: &IndexMap<String, FileObjectConfig>,
) -> Result<Value, FieldError> {
    let name_key = if section == "secrets" {
        "SecretName"
    } else {
        "ConfigName"
    };
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let name = referenced_name(ns, service, section, &r.source, declared)?;
        out.push((
            name.clone(),
            json!({"File": file_target(r), name_key: name}),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Array(out.into_iter().map(|(_, v)| v).collect()))
}

/// Config references, plus the runtime reference a credential spec from a
/// config needs.
fn config_references(
    ns: Namespace,
    service: &str,
    svc: &ServiceConfig,
    config: &Config,
) -> Result<Value, FieldError> {
    let Value::Array(mut refs) =
        file_references(ns, service, "configs", &svc.configs, &config.configs)?
    else {
        return Ok(Value::Array(vec![]));
    };
    if let Some(key) = svc
        .credential_spec
        .as_ref()
        .and_then(|c| c.config.as_ref())
        .filter(|c| !c.is_empty())
    {
        let name = referenced_name(ns, service, "configs", key, &config.configs)?;
        refs.push(json!({"Runtime": {}, "ConfigName": name}));
    }
    refs.sort_by(|a, b| {
        let n = |v: &Value| v["ConfigName"].as_str().unwrap_or_default().to_string();
        n(a).cmp(&n(b))
    });
    Ok(Value::Array(refs))
}

fn resources(service: &str, deploy: &DeployConfig) -> Result<Value, FieldError> {
    let mut out = Map::new();
    let Some(res) = &deploy.resources else {
        return Ok(Value::Object(out));
    };
    let cpus = |v: &Option<String>, f: &str| -> Result<i64, FieldError> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(0),
            Some(s) => parse_nano_cpus(s).map_err(|m| {
                FieldError::new(format!("services.{service}.deploy.resources.{f}.cpus"), m)
            }),
        }
    };
    if let Some(l) = &res.limits {
        let mut m = Map::new();
        put(&mut m, "NanoCPUs", cpus(&l.cpus, "limits")?);
        put(&mut m, "MemoryBytes", l.memory.unwrap_or(0));
        put(&mut m, "Pids", l.pids.unwrap_or(0));
        out.insert("Limits".into(), Value::Object(m));
    }
    if let Some(r) = &res.reservations {
        let mut m = Map::new();
        put(&mut m, "NanoCPUs", cpus(&r.cpus, "reservations")?);
        put(&mut m, "MemoryBytes", r.memory.unwrap_or(0));
        let generic: Vec<Value> = r
            .generic_resources
            .iter()
            .map(|g| {
                let mut gm = Map::new();
                if let Some(d) = &g.discrete_resource_spec {
                    let mut dm = Map::new();
                    put(&mut dm, "Kind", d.kind.clone());
                    put(&mut dm, "Value", d.value);
                    gm.insert("DiscreteResourceSpec".into(), Value::Object(dm));
                }
                Value::Object(gm)
            })
            .collect();
        put(&mut m, "GenericResources", Value::Array(generic));
        out.insert("Reservations".into(), Value::Object(m));
    }
    Ok(Value::Object(out))
}

/// `deploy.restart_policy` as written (conditions pass through), else the
/// legacy `restart:` mapped as docker does.
fn restart_policy(svc: &ServiceConfig, deploy: &DeployConfig) -> Result<Option<Value>, String> {
    if let Some(p) = &deploy.restart_policy {
        let mut m = Map::new();
        put(&mut m, "Condition", p.condition.clone().unwrap_or_default());
        put_some(&mut m, "Delay", p.delay);
        put_some(&mut m, "MaxAttempts", p.max_attempts);
        put_some(&mut m, "Window", p.window);
        return Ok(Some(Value::Object(m)));
    }
    legacy_restart_policy(svc.restart.as_deref().unwrap_or(""))
}

fn placement(deploy: &DeployConfig) -> Value {
    let mut m = Map::new();
    if let Some(p) = &deploy.placement {
        put(&mut m, "Constraints", strings(&p.constraints));
        let prefs: Vec<Value> = p
            .preferences
            .iter()
            .map(|pref| json!({"Spread": {"SpreadDescriptor": pref.spread}}))
            .collect();
        put(&mut m, "Preferences", Value::Array(prefs));
        put(&mut m, "MaxReplicas", p.max_replicas_per_node.unwrap_or(0));
    }
    Value::Object(m)
}

/// Networks other than these are user defined and get the service name
/// as an alias (moby's `NetworkMode.IsUserDefined`).
fn is_user_defined(target: &str) -> bool {
    !matches!(target, "default" | "bridge" | "host" | "none") && !target.starts_with("container:")
}

/// Attachments sorted by target; the service's own name is appended to
/// the aliases on user-defined networks, as docker does.
fn network_attachments(
    ns: Namespace,
    name: &str,
    svc: &ServiceConfig,
    config: &Config,
) -> Result<Value, FieldError> {
    let default_only = IndexMap::from([(DEFAULT_NETWORK.to_string(), None)]);
    let networks = if svc.networks.is_empty() {
        &default_only
    } else {
        &svc.networks
    };
    let mut out = Vec::with_capacity(networks.len());
    for (key, settings) in networks {
        let declared = config.networks.get(key);
        if declared.is_none() && key != DEFAULT_NETWORK {
            return Err(FieldError::new(
                format!("services.{name}.networks"),
                format!("undefined network {key:?}: declare it under the top-level `networks:`"),
            ));
        }
        let target = network_name(ns, key, declared);
        let mut aliases: Vec<String> = settings
            .as_ref()
            .map(|s| s.aliases.clone())
            .unwrap_or_default();
        if is_user_defined(&target) {
            aliases.push(name.to_string());
        }
        let mut m = Map::new();
        m.insert("Target".into(), target.clone().into());
        put(&mut m, "Aliases", json!(aliases));
        if let Some(opts) = settings.as_ref().and_then(|s| s.driver_opts.as_ref()) {
            put(&mut m, "DriverOpts", string_map(opts));
        }
        out.push((target, Value::Object(m)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Array(out.into_iter().map(|(_, v)| v).collect()))
}

fn mode(deploy: &DeployConfig) -> Result<Value, String> {
    let replicas = deploy.replicas;
    let only_replicated = || {
        if replicas.is_some() {
            Err("replicas can only be used with replicated or replicated-job mode".to_string())
        } else {
            Ok(())
        }
    };
    let mut optional = Map::new();
    put_some(&mut optional, "Replicas", replicas);
    Ok(match deploy.mode.as_deref().unwrap_or("") {
        "global-job" => {
            only_replicated()?;
            json!({"GlobalJob": {}})
        }
        "global" => {
            only_replicated()?;
            json!({"Global": {}})
        }
        "replicated-job" => {
            let mut job = Map::new();
            put_some(&mut job, "MaxConcurrent", replicas);
            put_some(&mut job, "TotalCompletions", replicas);
            json!({"ReplicatedJob": job})
        }
        "replicated" | "" => json!({"Replicated": optional}),
        other => {
            return Err(format!(
                "unknown mode {other:?} (valid: replicated, global, replicated-job, global-job)"
            ))
        }
    })
}

/// docker sends `Parallelism` (default 1) and `MaxFailureRatio` always,
/// the rest when set.
fn update_config(u: &UpdateConfig) -> Value {
    let mut m = Map::new();
    m.insert("Parallelism".into(), u.parallelism.unwrap_or(1).into());
    put(&mut m, "Delay", u.delay.unwrap_or(0));
    put(
        &mut m,
        "FailureAction",
        u.failure_action.clone().unwrap_or_default(),
    );
    put(&mut m, "Monitor", u.monitor.unwrap_or(0));
    m.insert(
        "MaxFailureRatio".into(),
        ratio(u.max_failure_ratio.unwrap_or(0.0)),
    );
    put(&mut m, "Order", u.order.clone().unwrap_or_default());
    Value::Object(m)
}

/// A ratio as the daemon prints it: whole numbers without a fraction
/// (`0`, not `0.0`), so specs compare equal to live ones as JSON values.
fn ratio(r: f64) -> Value {
    if r.fract() == 0.0 && r.abs() < 1e15 {
        json!(r as i64)
    } else {
        json!(r)
    }
}

/// Endpoint mode (lower-cased) and ports sorted by published port (stable),
/// as docker v28 sorts them.
fn endpoint_spec(svc: &ServiceConfig, deploy: &DeployConfig) -> Value {
    let mut ports: Vec<(u32, Value)> = svc
        .ports
        .iter()
        .map(|p| {
            let mut m = Map::new();
            put(&mut m, "Protocol", p.protocol.clone().unwrap_or_default());
            put(&mut m, "TargetPort", p.target.unwrap_or(0));
            put(&mut m, "PublishedPort", p.published.unwrap_or(0));
            put(&mut m, "PublishMode", p.mode.clone().unwrap_or_default());
            (p.published.unwrap_or(0), Value::Object(m))
        })
        .collect();
    ports.sort_by_key(|(published, _)| *published);
    let mut m = Map::new();
    put(
        &mut m,
        "Mode",
        deploy
            .endpoint_mode
            .clone()
            .unwrap_or_default()
            .to_lowercase(),
    );
    put(
        &mut m,
        "Ports",
        Value::Array(ports.into_iter().map(|(_, v)| v).collect()),
    );
    Value::Object(m)
}

#[cfg(test)]
mod tests;
