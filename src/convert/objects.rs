//! Stack-level objects: networks (only those services use, as docker's
//! `convert.Networks`), configs and secrets (all declared ones, as
//! `convert.Configs`/`convert.Secrets`), and the externals a stack needs.
use super::values::{put, string_map};
use super::{is_external, FieldError, Namespace};
use crate::compose::model::{Config, FileObjectConfig, NetworkConfig};
use crate::model::{DesiredObject, Kind};
use crate::source::{too_large, SourceError, Tree, MAX_OBJECT_BYTES};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The network every service without `networks:` joins.
pub(crate) const DEFAULT_NETWORK: &str = "default";
/// Driver `docker stack deploy` uses when a network names none.
const DEFAULT_NETWORK_DRIVER: &str = "overlay";

/// Networks to create, and external networks that must exist.
pub(crate) struct Networks {
    pub created: Vec<DesiredObject>,
    pub external: Vec<(Kind, String)>,
}

/// Compose keys of the networks the services attach to; `default` for a
/// service without `networks:`.
fn used_networks(config: &Config) -> BTreeSet<&str> {
    let mut used = BTreeSet::new();
    for svc in config.services.values() {
        if svc.networks.is_empty() {
            used.insert(DEFAULT_NETWORK);
        }
        used.extend(svc.networks.keys().map(String::as_str));
    }
    used
}

/// The swarm name of a network key (declared or the implicit default).
pub(crate) fn network_name(ns: Namespace, key: &str, network: Option<&NetworkConfig>) -> String {
    match network {
        Some(n) => ns.object_name(key, n.name.as_ref(), n.external.as_ref()),
        None => ns.scope(key),
    }
}

/// Network create requests (`POST /networks/create` body) for every
/// non-external network a service uses.
pub(crate) fn networks(ns: Namespace, config: &Config) -> Networks {
    let mut created = Vec::new();
    let mut external = Vec::new();
    for key in used_networks(config) {
        let declared = config.networks.get(key);
        if declared.is_none() && key != DEFAULT_NETWORK {
            // Reported with the service's field by the service converter;
            // here it would only be a less precise duplicate.
            continue;
        }
        let name = network_name(ns, key, declared);
        let net = declared.cloned().unwrap_or_default();
        if is_external(net.external.as_ref()) {
            external.push((Kind::Network, name));
            continue;
        }
        created.push(DesiredObject {
            spec: network_spec(ns, &name, &net),
            name,
            source: Value::Null,
        });
    }
    created.sort_by(|a, b| a.name.cmp(&b.name));
    Networks { created, external }
}

fn network_spec(ns: Namespace, name: &str, net: &NetworkConfig) -> Value {
    let mut m = Map::new();
    m.insert("Name".into(), name.into());
    let driver = net
        .driver
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_NETWORK_DRIVER.to_string());
    m.insert("Driver".into(), driver.into());
    m.insert("Internal".into(), net.internal.unwrap_or(false).into());
    m.insert("Attachable".into(), net.attachable.unwrap_or(false).into());
    if let Some(ipam) = &net.ipam {
        let has_driver = ipam.driver.as_ref().is_some_and(|d| !d.is_empty());
        if has_driver || !ipam.config.is_empty() {
            let mut i = Map::new();
            put(&mut i, "Driver", ipam.driver.clone().unwrap_or_default());
            let pools: Vec<Value> = ipam
                .config
                .iter()
                .map(|p| {
                    let mut c = Map::new();
                    put(&mut c, "Subnet", p.subnet.clone().unwrap_or_default());
                    Value::Object(c)
                })
                .collect();
            put(&mut i, "Config", Value::Array(pools));
            m.insert("IPAM".into(), Value::Object(i));
        }
    }
    put(&mut m, "Options", string_map(&net.driver_opts));
    m.insert("Labels".into(), Value::Object(ns.labels(&net.labels)));
    Value::Object(m)
}

/// Config specs for every non-external config.
pub(crate) fn configs(
    ns: Namespace,
    config: &Config,
    tree: &dyn Tree,
) -> Result<Vec<DesiredObject>, FieldError> {
    file_objects(ns, "configs", &config.configs, tree)
}

/// Secret specs for every non-external secret.
pub(crate) fn secrets(
    ns: Namespace,
    config: &Config,
    tree: &dyn Tree,
) -> Result<Vec<DesiredObject>, FieldError> {
    file_objects(ns, "secrets", &config.secrets, tree)
}

fn file_objects(
    ns: Namespace,
    section: &str,
    objects: &indexmap::IndexMap<String, FileObjectConfig>,
    tree: &dyn Tree,
) -> Result<Vec<DesiredObject>, FieldError> {
    let mut out = Vec::new();
    for (key, obj) in objects {
        if is_external(obj.external.as_ref()) {
            continue;
        }
        let field = format!("{section}.{key}");
        let name = ns.object_name(key, obj.name.as_ref(), None);
        let driver = obj.driver.clone().filter(|d| !d.is_empty());
        let mut m = Map::new();
        m.insert("Name".into(), name.clone().into());
        m.insert("Labels".into(), Value::Object(ns.labels(&obj.labels)));
        // A secret from a driver has no data; docker only supports drivers
        // for secrets.
        let driver = if section == "secrets" { driver } else { None };
        if driver.is_none() {
            let data = read_data(obj, tree, &field, section == "configs")?;
            put(
                &mut m,
                "Data",
                base64::engine::general_purpose::STANDARD.encode(data),
            );
        }
        if let Some(driver) = driver {
            let mut d = Map::new();
            d.insert("Name".into(), driver.into());
            put(&mut d, "Options", string_map(&obj.driver_opts));
            m.insert("Driver".into(), Value::Object(d));
        }
        if let Some(template) = obj.template_driver.clone().filter(|t| !t.is_empty()) {
            let mut t = Map::new();
            t.insert("Name".into(), template.into());
            m.insert("Templating".into(), Value::Object(t));
        }
        out.push(DesiredObject {
            name,
            spec: Value::Object(m),
            source: Value::Null,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The content of a config or secret file, read through the tree. A
/// config's file is read as stored (`public`: anyone with `docker config
/// inspect` can read a config, so a SOPS file is refused, not decrypted
/// into one). Either is at most Swarm's own limit.
fn read_data(
    obj: &FileObjectConfig,
    tree: &dyn Tree,
    field: &str,
    public: bool,
) -> Result<Vec<u8>, FieldError> {
    let Some(file) = obj.file.as_ref().filter(|f| !f.is_empty()) else {
        let what = if obj.environment.is_some() {
            "`environment:` is not supported by docker stack deploy; use `file:`"
        } else {
            "needs `file:` (or `external: true`)"
        };
        return Err(FieldError::new(field, what));
    };
    let cannot = |e: SourceError| {
        FieldError::new(
            format!("{field}.file"),
            format!("cannot read {file:?}: {e}"),
        )
    };
    let data = if public {
        tree.read_public(file)
    } else {
        tree.read(file)
    }
    .map_err(cannot)?;
    if data.len() as u64 > MAX_OBJECT_BYTES {
        let what = if public { "a config" } else { "a secret" };
        return Err(cannot(too_large(
            file,
            MAX_OBJECT_BYTES,
            &format!("{what} (Swarm's own limit)"),
        )));
    }
    Ok(data)
}

/// External configs and secrets the services reference: they must exist
/// before deploy (docker resolves their IDs by name and fails otherwise).
pub(crate) fn external_file_objects(ns: Namespace, config: &Config) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    let sections = [
        (Kind::Config, &config.configs),
        (Kind::Secret, &config.secrets),
    ];
    for (kind, declared) in sections {
        for svc in config.services.values() {
            let refs = match kind {
                Kind::Config => &svc.configs,
                _ => &svc.secrets,
            };
            let mut keys: Vec<&str> = refs.iter().map(|r| r.source.as_str()).collect();
            if kind == Kind::Config {
                if let Some(cfg) = svc.credential_spec.as_ref().and_then(|c| c.config.as_ref()) {
                    keys.push(cfg);
                }
            }
            for key in keys {
                if let Some(obj) = declared.get(key) {
                    if is_external(obj.external.as_ref()) {
                        let name = ns.object_name(key, obj.name.as_ref(), obj.external.as_ref());
                        out.push((kind, name));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::testing::MemTree;
    use serde_json::json;

    fn config(yaml: &str) -> Config {
        serde_yaml::from_str(yaml).expect("test yaml")
    }

    #[test]
    fn default_network_only_when_a_service_has_no_networks() {
        let c = config("services:\n  a: {image: x}\n  b: {image: x, networks: {front: }}\nnetworks:\n  front: {}\n  unused: {}\n");
        let nets = networks(Namespace("st"), &c);
        let names: Vec<_> = nets.created.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["st_default", "st_front"]);
        assert_eq!(
            nets.created[0].spec,
            json!({"Name": "st_default", "Driver": "overlay", "Internal": false, "Attachable": false,
                   "Labels": {"com.docker.stack.namespace": "st"}})
        );
        let c = config("services:\n  b: {image: x, networks: {front: }}\nnetworks:\n  front: {}\n");
        let nets = networks(Namespace("st"), &c);
        assert_eq!(nets.created.len(), 1);
    }

    #[test]
    fn network_options_ipam_and_externals() {
        let c = config(
            r#"
services:
  a: {image: x, networks: {back: , ext: , named: }}
networks:
  back:
    driver: overlay
    driver_opts: {encrypted: "true"}
    attachable: true
    internal: true
    ipam: {config: [{subnet: 10.20.0.0/24}]}
    labels: {tier: back}
  named: {name: global-net}
  ext: {external: {external: true}}
"#,
        );
        let nets = networks(Namespace("st"), &c);
        assert_eq!(nets.external, vec![(Kind::Network, "ext".to_string())]);
        let specs: Vec<_> = nets.created.iter().map(|n| n.spec.clone()).collect();
        assert_eq!(
            specs,
            vec![
                json!({"Name": "global-net", "Driver": "overlay", "Internal": false, "Attachable": false,
                       "Labels": {"com.docker.stack.namespace": "st"}}),
                json!({"Name": "st_back", "Driver": "overlay", "Internal": true, "Attachable": true,
                       "IPAM": {"Config": [{"Subnet": "10.20.0.0/24"}]},
                       "Options": {"encrypted": "true"},
                       "Labels": {"com.docker.stack.namespace": "st", "tier": "back"}}),
            ]
        );
    }

    #[test]
    fn configs_and_secrets_carry_base64_data_and_drivers() {
        let tree = MemTree(vec![
            ("stacks/st/app.conf", "hello\n"),
            ("stacks/st/pw", "s3cret"),
        ]);
        let c = config(
            r#"
services: {}
configs:
  app: {file: stacks/st/app.conf, labels: {k: v}, template_driver: golang}
  fixed: {name: fixed-name, file: stacks/st/app.conf}
  ext: {external: {external: true}}
secrets:
  pw: {file: stacks/st/pw}
  vault: {driver: vaultdrv, driver_opts: {path: x}}
"#,
        );
        let cfgs = configs(Namespace("st"), &c, &tree).unwrap();
        assert_eq!(
            cfgs.iter().map(|o| o.spec.clone()).collect::<Vec<_>>(),
            vec![
                json!({"Name": "fixed-name", "Labels": {"com.docker.stack.namespace": "st"}, "Data": "aGVsbG8K"}),
                json!({"Name": "st_app", "Labels": {"com.docker.stack.namespace": "st", "k": "v"},
                       "Data": "aGVsbG8K", "Templating": {"Name": "golang"}}),
            ]
        );
        let secs = secrets(Namespace("st"), &c, &tree).unwrap();
        assert_eq!(
            secs.iter().map(|o| o.spec.clone()).collect::<Vec<_>>(),
            vec![
                json!({"Name": "st_pw", "Labels": {"com.docker.stack.namespace": "st"}, "Data": "czNjcmV0"}),
                json!({"Name": "st_vault", "Labels": {"com.docker.stack.namespace": "st"},
                       "Driver": {"Name": "vaultdrv", "Options": {"path": "x"}}}),
            ]
        );
    }

    #[test]
    fn missing_file_names_the_field_and_path() {
        let c = config("services: {}\nconfigs:\n  app: {file: stacks/st/missing.conf}\n");
        let err = configs(Namespace("st"), &c, &MemTree(vec![])).unwrap_err();
        assert_eq!(err.field, "configs.app.file");
        assert!(
            err.message.contains("stacks/st/missing.conf"),
            "{}",
            err.message
        );
    }

    #[test]
    fn referenced_externals_are_listed() {
        let c = config(
            r#"
services:
  a: {image: x, configs: [{source: c1}], secrets: [{source: s1}, {source: s2}]}
configs:
  c1: {external: {external: true}}
  c2: {external: {external: true}}
secrets:
  s1: {external: {external: true, name: real-s1}}
  s2: {file: x}
"#,
        );
        assert_eq!(
            external_file_objects(Namespace("st"), &c),
            vec![
                (Kind::Config, "c1".to_string()),
                (Kind::Secret, "real-s1".to_string())
            ]
        );
    }
}
