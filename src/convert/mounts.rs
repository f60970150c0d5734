//! Service volumes -> `ContainerSpec.Mounts`, as docker's `convert/volume.go`:
//! named volumes are namespaced (`<stack>_<vol>`) unless external or given
//! a `name:`, and carry the stack's volume labels and driver.
use super::values::{put, string_map};
use super::{is_external, FieldError, Namespace};
use crate::compose::model::{Config, ServiceVolumeConfig};
use crate::source::Tree;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Where relative bind-mount sources resolve: the stack file's folder on
/// this machine, as `docker stack deploy` resolves them against the
/// compose file's folder. `None` when the tree has no local directory.
pub(crate) struct BindBase {
    dir: Option<PathBuf>,
}

impl BindBase {
    pub(crate) fn new(tree: &dyn Tree, stack_file: &str) -> Self {
        let folder = Path::new(stack_file).parent().unwrap_or(Path::new(""));
        BindBase {
            dir: tree.local_root().map(|root| root.join(folder)),
        }
    }

    #[cfg(test)]
    pub(crate) fn at(dir: &str) -> Self {
        BindBase {
            dir: Some(PathBuf::from(dir)),
        }
    }

    /// An absolute bind source as is; a relative one joined to the stack
    /// file's folder (`./data` -> `/repo/stacks/web/data`).
    fn resolve(&self, source: &str, field: &str) -> Result<String, FieldError> {
        if Path::new(source).is_absolute() {
            return Ok(source.to_string());
        }
        let dir = self.dir.as_ref().ok_or_else(|| {
            FieldError::new(
                field,
                format!(
                    "relative bind mount source {source:?} needs a checkout on this machine; \
                     use an absolute host path"
                ),
            )
        })?;
        Ok(normalize(&dir.join(source)).to_string_lossy().into_owned())
    }
}

/// Lexically clean a path (`a/./b/../c` -> `a/c`), as Go's `filepath.Join`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// All mounts of a service, in the order written.
pub(crate) fn mounts(
    ns: Namespace,
    service: &str,
    volumes: &[ServiceVolumeConfig],
    config: &Config,
    bind_base: &BindBase,
) -> Result<Vec<Value>, FieldError> {
    volumes
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let field = format!("services.{service}.volumes[{i}]");
            mount(ns, v, config, bind_base, &field).map(Value::Object)
        })
        .collect()
}

fn incompatible(field: &str, options: &str, kind: &str) -> FieldError {
    FieldError::new(
        field,
        format!("{options} options are incompatible with type {kind}"),
    )
}

/// The mount types docker knows.
const KINDS: &str = "volume, bind, tmpfs, npipe, cluster, image";

/// Which option blocks each type refuses, in the order docker checks them.
fn refused_options(kind: &str) -> &'static [&'static str] {
    match kind {
        "volume" => &["tmpfs", "bind", "cluster"],
        "bind" => &["volume", "tmpfs", "cluster"],
        "npipe" => &["volume", "tmpfs"],
        "tmpfs" => &["bind", "volume", "cluster"],
        _ => &[],
    }
}

fn has_options(v: &ServiceVolumeConfig, block: &str) -> bool {
    match block {
        "volume" => v.volume.is_some(),
        "bind" => v.bind.is_some(),
        "tmpfs" => v.tmpfs.is_some(),
        "cluster" => v.cluster.is_some(),
        _ => false,
    }
}

/// docker's checks of one mount, before anything is built: a known type, a
/// source where the type needs one (and none for tmpfs), no option block
/// of another type.
fn check(kind: &str, source: &str, v: &ServiceVolumeConfig, field: &str) -> Result<(), FieldError> {
    let source_field = || format!("{field}.source");
    match kind {
        "volume" => {}
        "tmpfs" if !source.is_empty() => {
            return Err(FieldError::new(
                source_field(),
                "invalid tmpfs source, source must be empty",
            ))
        }
        "tmpfs" => {}
        "bind" | "npipe" | "cluster" | "image" if source.is_empty() => {
            return Err(FieldError::new(
                source_field(),
                format!("invalid {kind} source, source cannot be empty"),
            ));
        }
        "bind" | "npipe" | "image" => {}
        "cluster" => {
            if v.tmpfs.is_some() || v.bind.is_some() || v.volume.is_some() {
                return Err(FieldError::new(
                    field,
                    "tmpfs, bind and volume options are incompatible with type cluster",
                ));
            }
        }
        other => {
            return Err(FieldError::new(
                format!("{field}.type"),
                format!("unknown mount type {other:?} (valid: {KINDS})"),
            ))
        }
    }
    match refused_options(kind).iter().find(|b| has_options(v, b)) {
        Some(block) => Err(incompatible(field, block, kind)),
        None => Ok(()),
    }
}

/// One service volume as a Swarm mount: checked, then built per type.
fn mount(
    ns: Namespace,
    v: &ServiceVolumeConfig,
    config: &Config,
    bind_base: &BindBase,
    field: &str,
) -> Result<Map<String, Value>, FieldError> {
    let kind = if v.kind.is_empty() { "volume" } else { &v.kind };
    let source = v.source.clone().unwrap_or_default();
    check(kind, &source, v, field)?;
    let mut m = Map::new();
    m.insert("Type".into(), kind.into());
    // The mount's source as the daemon takes it, and its options block.
    let (source, options) = match kind {
        "volume" if source.is_empty() => {
            // Anonymous volumes take no options at all, not even nocopy.
            (String::new(), None)
        }
        "volume" => volume(ns, v, config, &source, field)?,
        "bind" => {
            let source = bind_base.resolve(&source, &format!("{field}.source"))?;
            (source, bind_options(v))
        }
        "npipe" => (source, bind_options(v)),
        // docker (v28) passes the size only; `tmpfs.mode` is not sent.
        "tmpfs" => (
            source,
            v.tmpfs.as_ref().map(|t| {
                let mut options = Map::new();
                put(&mut options, "SizeBytes", t.size.unwrap_or(0));
                ("TmpfsOptions", options)
            }),
        ),
        "cluster" => (
            cluster_source(ns, config, source, field)?,
            Some(("ClusterOptions", Map::new())),
        ),
        _ => (source, None),
    };
    put(&mut m, "Source", source);
    put(&mut m, "Target", v.target.clone().unwrap_or_default());
    put(&mut m, "ReadOnly", v.read_only.unwrap_or(false));
    put(
        &mut m,
        "Consistency",
        v.consistency.clone().unwrap_or_default(),
    );
    if let Some((key, options)) = options {
        m.insert(key.into(), Value::Object(options));
    }
    Ok(order_mount(m))
}

type Options = Option<(&'static str, Map<String, Value>)>;

fn undefined_volume(field: &str, source: &str) -> FieldError {
    FieldError::new(
        format!("{field}.source"),
        format!("undefined volume {source:?}: declare it under the top-level `volumes:`"),
    )
}

/// A named volume: its namespaced (or external) name, and its options:
/// nocopy and subpath, then the stack volume's labels and driver.
fn volume(
    ns: Namespace,
    v: &ServiceVolumeConfig,
    config: &Config,
    source: &str,
    field: &str,
) -> Result<(String, Options), FieldError> {
    let stack_volume = config
        .volumes
        .get(source)
        .ok_or_else(|| undefined_volume(field, source))?;
    let mut options = Map::new();
    if let Some(opts) = &v.volume {
        put(&mut options, "NoCopy", opts.nocopy.unwrap_or(false));
        put(
            &mut options,
            "Subpath",
            opts.subpath.clone().unwrap_or_default(),
        );
    }
    let external = stack_volume.external.as_ref();
    let name = ns.object_name(source, stack_volume.name.as_ref(), external);
    if !is_external(external) {
        options.insert(
            "Labels".into(),
            Value::Object(ns.labels(&stack_volume.labels)),
        );
        if stack_volume.driver.is_some() || !stack_volume.driver_opts.is_empty() {
            let mut driver = Map::new();
            put(
                &mut driver,
                "Name",
                stack_volume.driver.clone().unwrap_or_default(),
            );
            put(
                &mut driver,
                "Options",
                string_map(&stack_volume.driver_opts),
            );
            options.insert("DriverConfig".into(), Value::Object(driver));
        }
    }
    Ok((name, Some(("VolumeOptions", options))))
}

fn bind_options(v: &ServiceVolumeConfig) -> Options {
    v.bind.as_ref().map(|bind| {
        let mut options = Map::new();
        put(
            &mut options,
            "Propagation",
            bind.propagation.clone().unwrap_or_default(),
        );
        ("BindOptions", options)
    })
}

/// A cluster volume's source: a `group:` as is, else the stack volume's
/// `name:` or its namespaced name.
fn cluster_source(
    ns: Namespace,
    config: &Config,
    source: String,
    field: &str,
) -> Result<String, FieldError> {
    if source.starts_with("group:") {
        return Ok(source);
    }
    let vol = config
        .volumes
        .get(&source)
        .ok_or_else(|| undefined_volume(field, &source))?;
    Ok(match vol.name.as_ref().filter(|n| !n.is_empty()) {
        Some(name) => name.clone(),
        None => ns.scope(&source),
    })
}

fn order_mount(mut m: Map<String, Value>) -> Map<String, Value> {
    const ORDER: [&str; 9] = [
        "Type",
        "Source",
        "Target",
        "ReadOnly",
        "Consistency",
        "BindOptions",
        "VolumeOptions",
        "TmpfsOptions",
        "ClusterOptions",
    ];
    let mut out = Map::new();
    for key in ORDER {
        if let Some(v) = m.remove(key) {
            out.insert(key.into(), v);
        }
    }
    out.extend(m);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(yaml: &str) -> Result<Vec<Value>, FieldError> {
        let config: Config = serde_yaml::from_str(yaml).expect("test yaml");
        let svc = &config.services["app"];
        mounts(
            Namespace("st"),
            "app",
            &svc.volumes,
            &config,
            &BindBase::at("/repo/stacks/st"),
        )
    }

    #[test]
    fn named_volumes_are_namespaced_with_labels_and_driver() {
        let got = convert(
            r#"
services:
  app:
    image: busybox:latest
    volumes:
      - {type: volume, source: data, target: /data, volume: {nocopy: true}}
      - {type: volume, source: named, target: /named, read_only: true}
      - {type: volume, source: ext, target: /ext}
      - {type: volume, target: /anon, volume: {nocopy: true}}
volumes:
  data:
    driver: local
    driver_opts: {type: none, o: bind, device: /srv}
    labels: {b: "2", a: "1"}
  named: {name: shared-data}
  ext: {external: {external: true}}
"#,
        )
        .unwrap();
        assert_eq!(
            Value::Array(got),
            json!([
                {"Type": "volume", "Source": "st_data", "Target": "/data",
                 "VolumeOptions": {"NoCopy": true,
                    "Labels": {"a": "1", "b": "2", "com.docker.stack.namespace": "st"},
                    "DriverConfig": {"Name": "local", "Options": {"device": "/srv", "o": "bind", "type": "none"}}}},
                {"Type": "volume", "Source": "shared-data", "Target": "/named", "ReadOnly": true,
                 "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "st"}}},
                {"Type": "volume", "Source": "ext", "Target": "/ext", "VolumeOptions": {}},
                {"Type": "volume", "Target": "/anon"}
            ])
        );
    }

    #[test]
    fn bind_and_tmpfs_options() {
        let got = convert(
            r#"
services:
  app:
    image: busybox:latest
    volumes:
      - {type: bind, source: /var/log, target: /logs, bind: {propagation: rslave}}
      - {type: bind, source: ./conf, target: /conf, read_only: true}
      - {type: bind, source: ../shared/x, target: /x, consistency: cached}
      - {type: tmpfs, target: /cache, tmpfs: {size: 1048576, mode: 1777}}
"#,
        )
        .unwrap();
        assert_eq!(
            Value::Array(got),
            json!([
                {"Type": "bind", "Source": "/var/log", "Target": "/logs", "BindOptions": {"Propagation": "rslave"}},
                {"Type": "bind", "Source": "/repo/stacks/st/conf", "Target": "/conf", "ReadOnly": true},
                {"Type": "bind", "Source": "/repo/stacks/shared/x", "Target": "/x", "Consistency": "cached"},
                {"Type": "tmpfs", "Target": "/cache", "TmpfsOptions": {"SizeBytes": 1048576}}
            ])
        );
    }

    #[test]
    fn undefined_volume_and_bad_options_name_the_field() {
        let err = convert(
            "services:\n  app:\n    image: x\n    volumes: [{type: volume, source: nope, target: /n}]\n",
        )
        .unwrap_err();
        assert_eq!(err.field, "services.app.volumes[0].source");
        assert!(err.message.contains("undefined volume \"nope\""));
        let err = convert(
            "services:\n  app:\n    image: x\n    volumes: [{type: tmpfs, target: /t, bind: {propagation: shared}}]\n",
        )
        .unwrap_err();
        assert_eq!(err.field, "services.app.volumes[0]");
        assert!(err
            .message
            .contains("bind options are incompatible with type tmpfs"));
    }

    #[test]
    fn relative_bind_without_checkout_is_an_error() {
        let base = BindBase { dir: None };
        let err = base
            .resolve("./data", "services.app.volumes[0].source")
            .unwrap_err();
        assert!(err.message.contains("./data"));
        assert_eq!(base.resolve("/abs", "f"), Ok("/abs".to_string()));
    }
}
