//! Conversion of a loaded compose model into Swarm objects, exactly as
//! docker/cli's `cli/compose/convert` (v28) does for `docker stack deploy`.
//!
//! Pure: the only input besides the model is the file content of configs
//! and secrets, read through the [`Tree`]. Specs come out as JSON in the
//! Engine API's shape, with the zero values docker's Go types omit left out,
//! so a spec equals what `docker stack deploy` sends.
//!
//! Object references (`Networks[].Target`, `Configs[].ConfigName`,
//! `Secrets[].SecretName`) are by *name*: `ConfigID`/`SecretID` are absent
//! and a credential spec's `Config` holds the config name; the applier
//! resolves names to IDs at apply time.
mod mounts;
mod objects;
mod service;
mod values;

use crate::compose::model::External;
use crate::compose::Loaded;
use crate::model::{DesiredObject, DesiredStack, NAMESPACE_LABEL};
use crate::source::Tree;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConvertError {
    pub file: String,
    pub message: String,
}

/// A conversion problem before the stack file is known: the dotted path
/// of the offending field (`services.web.deploy.resources.limits.cpus`)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The stack namespace: prefixes names and labels every object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Namespace<'a>(pub &'a str);

impl Namespace<'_> {
    /// `<stack>_<name>`, as docker's `Namespace.Scope`.
    pub(crate) fn scope(&self, name: &str) -> String {
        format!("{}_{}", self.0, name)
    }

    /// `labels` plus the namespace label, sorted by key.
    pub(crate) fn labels<'l>(
        &self,
        labels: impl IntoIterator<Item = (&'l String, &'l String)>,
    ) -> Map<String, Value> {
        let mut sorted: BTreeMap<String, String> = labels
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        sorted.insert(NAMESPACE_LABEL.to_string(), self.0.to_string());
        sorted
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    }

    /// The swarm name of a top-level network, volume, config or secret:
    /// its `name:` if set, else (for external objects) the deprecated
    /// `external.name` or the key itself, else `<stack>_<key>`. This is the
    /// name docker's loader and converter settle on together.
    pub(crate) fn object_name(
        &self,
        key: &str,
        name: Option<&String>,
        external: Option<&External>,
    ) -> String {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            return name.clone();
        }
        if let Some(ext) = external.filter(|e| e.external) {
            return ext
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| key.to_string());
        }
        self.scope(key)
    }
}

/// Whether a top-level object is `external: true`.
pub(crate) fn is_external(external: Option<&External>) -> bool {
    external.is_some_and(|e| e.external)
}

/// Convert one loaded stack. Reads config/secret files through `tree`.
pub fn convert(tree: &dyn Tree, loaded: &Loaded) -> Result<DesiredStack, ConvertError> {
    let at_file = |e: FieldError| ConvertError {
        file: loaded.file.clone(),
        message: format!("{}: {}", e.field, e.message),
    };
    let ns = Namespace(&loaded.stack);
    let config = &loaded.config;
    let mut warnings = loaded.warnings.clone();

    let networks = objects::networks(ns, config);
    let configs = objects::configs(ns, config, tree).map_err(at_file)?;
    let secrets = objects::secrets(ns, config, tree).map_err(at_file)?;
    let bind_base = mounts::BindBase::new(tree, &loaded.file);

    let mut services = Vec::with_capacity(config.services.len());
    for (name, svc) in &config.services {
        let converted = service::service(ns, name, svc, config, &bind_base).map_err(at_file)?;
        warnings.extend(converted.warnings);
        let source = serde_json::to_value(svc).map_err(|e| {
            at_file(FieldError::new(
                format!("services.{name}"),
                format!("cannot serialize the loaded service: {e}"),
            ))
        })?;
        services.push(DesiredObject {
            name: ns.scope(name),
            spec: converted.spec,
            source,
        });
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));

    let mut external = networks.external;
    external.extend(objects::external_file_objects(ns, config));
    external.sort();
    external.dedup();

    Ok(DesiredStack {
        name: loaded.stack.clone(),
        services,
        networks: networks.created,
        configs,
        secrets,
        external,
        warnings,
    })
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::source::{SourceError, Tree};
    use std::path::PathBuf;

    /// An in-memory tree with a fixed set of files and no local directory.
    pub(crate) struct MemTree(pub Vec<(&'static str, &'static str)>);

    impl Tree for MemTree {
        fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
            self.0
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, c)| c.as_bytes().to_vec())
                .ok_or_else(|| SourceError::Io {
                    path: path.to_string(),
                    message: "No such file or directory".to_string(),
                })
        }
        fn list(&self, _dir: &str) -> Result<Vec<String>, SourceError> {
            Ok(vec![])
        }
        fn is_file(&self, path: &str) -> bool {
            self.0.iter().any(|(p, _)| *p == path)
        }
        fn describe(&self) -> String {
            "memory".into()
        }
        fn local_root(&self) -> Option<PathBuf> {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::MemTree;
    use super::*;
    use crate::model::Kind;
    use serde_json::json;

    fn loaded(yaml: &str) -> Loaded {
        Loaded {
            stack: "st".into(),
            file: "stacks/st/stack.yml".into(),
            config: serde_yaml::from_str(yaml).expect("test yaml"),
            warnings: vec!["Ignoring unsupported options: build".into()],
        }
    }

    #[test]
    fn stack_objects_are_sorted_named_and_sourced() {
        let tree = MemTree(vec![("stacks/st/a.conf", "a")]);
        let l = loaded(
            r#"
services:
  web: {image: nginx:1.27, networks: {front: , ext: }, configs: [{source: app}, {source: shared}]}
  api: {image: alpine:3.20}
networks:
  front: {}
  ext: {external: {external: true}}
configs:
  app: {file: stacks/st/a.conf}
  shared: {external: {external: true, name: global-conf}}
"#,
        );
        let stack = convert(&tree, &l).unwrap();
        let names =
            |objs: &[DesiredObject]| objs.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
        assert_eq!(stack.name, "st");
        assert_eq!(names(&stack.services), ["st_api", "st_web"]);
        assert_eq!(names(&stack.networks), ["st_default", "st_front"]);
        assert_eq!(names(&stack.configs), ["st_app"]);
        assert!(stack.secrets.is_empty());
        assert_eq!(
            stack.external,
            vec![
                (Kind::Network, "ext".to_string()),
                (Kind::Config, "global-conf".to_string())
            ]
        );
        assert_eq!(stack.warnings, ["Ignoring unsupported options: build"]);
        assert_eq!(stack.services[1].source["image"], json!("nginx:1.27"));
        assert_eq!(
            stack.services[1].source["networks"],
            json!({"front": null, "ext": null})
        );
        assert!(stack.networks[0].source.is_null());
    }

    #[test]
    fn errors_name_the_stack_file_and_field() {
        let l =
            loaded("services:\n  web: {image: x, deploy: {resources: {limits: {cpus: two}}}}\n");
        let err = convert(&MemTree(vec![]), &l).unwrap_err();
        assert_eq!(err.file, "stacks/st/stack.yml");
        assert!(
            err.to_string().starts_with(
                "stacks/st/stack.yml: services.web.deploy.resources.limits.cpus: cannot parse \"two\""
            ),
            "{err}"
        );
        let l = loaded("services: {}\nsecrets:\n  pw: {file: stacks/st/pw.txt}\n");
        let err = convert(&MemTree(vec![]), &l).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "stacks/st/stack.yml: secrets.pw.file: cannot read \"stacks/st/pw.txt\""
            ),
            "{err}"
        );
    }

    #[test]
    fn unparseable_extra_hosts_become_warnings() {
        let l = loaded("services:\n  web: {image: x, extra_hosts: [nocolon]}\n");
        let stack = convert(&MemTree(vec![]), &l).unwrap();
        assert!(
            stack.warnings.iter().any(|w| w.contains("nocolon")),
            "{:?}",
            stack.warnings
        );
    }
}
