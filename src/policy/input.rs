//! The input document policies see (documented in `policies/README.md`).
//!
//! Config and secret payloads (`spec.Data`) never enter it: policies get
//! names and labels only, so a policy (or its test output) cannot leak them.
use crate::model::{ClusterFacts, DesiredObject, DesiredStack};
use serde::Serialize;
use serde_json::{json, Value};

/// Build the input document for one stack:
///
/// ```json
/// {"stack": "steedos",
///  "services": {"steedos_web": {"name": "steedos_web", "spec": {..ServiceSpec..}, "compose": {..}}},
///  "networks": {"steedos_default": {"name": "steedos_default", "spec": {..}}},
///  "configs": {"steedos_app": {"name": "steedos_app", "labels": {..}}},
///  "secrets": {"steedos_key": {"name": "steedos_key", "labels": {..}}},
///  "external": [{"kind": "network", "name": "traefik-public"}],
///  "cluster": {"nodes": [..], "node_count": 2, "manager_count": 1, "engine_versions": ["20.10.24"]}}
/// ```
pub fn input_document(stack: &DesiredStack, facts: &ClusterFacts) -> Value {
    // Serializing a borrowed view cannot fail: every leaf is a string,
    // number or JSON value already.
    serde_json::to_value(Input::new(stack, facts)).unwrap_or(Value::Null)
}

/// The input document as JSON text, without copying the specs (what
/// evaluation hands to the engine).
pub(crate) fn input_json(stack: &DesiredStack, facts: &ClusterFacts) -> serde_json::Result<String> {
    serde_json::to_string(&Input::new(stack, facts))
}

/// A borrowed view of the input document.
#[derive(Serialize)]
struct Input<'a> {
    stack: &'a str,
    services: Objects<'a, Service<'a>>,
    networks: Objects<'a, Network<'a>>,
    configs: Objects<'a, Named<'a>>,
    secrets: Objects<'a, Named<'a>>,
    external: Vec<External<'a>>,
    cluster: Cluster<'a>,
}

impl<'a> Input<'a> {
    fn new(stack: &'a DesiredStack, facts: &'a ClusterFacts) -> Self {
        let mut versions: Vec<&str> = facts
            .nodes
            .iter()
            .map(|n| n.engine_version.as_str())
            .filter(|v| !v.is_empty())
            .collect();
        versions.sort_unstable();
        versions.dedup();
        Input {
            stack: &stack.name,
            services: Objects(&stack.services, |o| Service {
                name: &o.name,
                spec: &o.spec,
                compose: &o.source,
            }),
            networks: Objects(&stack.networks, |o| Network {
                name: &o.name,
                spec: &o.spec,
            }),
            configs: Objects(&stack.configs, named_labels),
            secrets: Objects(&stack.secrets, named_labels),
            external: stack
                .external
                .iter()
                .map(|(kind, name)| External {
                    kind: kind.as_str(),
                    name,
                })
                .collect(),
            cluster: Cluster {
                name: facts.name.as_deref(),
                nodes: &facts.nodes,
                node_count: facts.node_count(),
                manager_count: facts.manager_count(),
                engine_versions: versions,
            },
        }
    }
}

/// Objects as a map from full name to `entry(object)`.
struct Objects<'a, T>(&'a [DesiredObject], fn(&'a DesiredObject) -> T);

impl<'a, T: Serialize> Serialize for Objects<'a, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|o| (&o.name, (self.1)(o))))
    }
}

#[derive(Serialize)]
struct Service<'a> {
    name: &'a str,
    spec: &'a Value,
    compose: &'a Value,
}

#[derive(Serialize)]
struct Network<'a> {
    name: &'a str,
    spec: &'a Value,
}

/// Configs and secrets: name and labels, never `Data`.
#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
    labels: &'a Value,
}

static NO_LABELS: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!({}));

fn named_labels(o: &DesiredObject) -> Named<'_> {
    Named {
        name: &o.name,
        labels: o.spec.get("Labels").unwrap_or(&NO_LABELS),
    }
}

#[derive(Serialize)]
struct External<'a> {
    kind: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct Cluster<'a> {
    /// Only in a multi-cluster repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    nodes: &'a [crate::model::NodeFacts],
    node_count: usize,
    manager_count: usize,
    engine_versions: Vec<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, NodeFacts};

    fn node(id: &str, role: &str, version: &str) -> NodeFacts {
        NodeFacts {
            id: id.into(),
            hostname: format!("host-{id}"),
            role: role.into(),
            availability: "active".into(),
            state: "ready".into(),
            labels: Default::default(),
            engine_version: version.into(),
        }
    }

    #[test]
    fn never_carries_config_or_secret_data() {
        let stack = DesiredStack {
            name: "s".into(),
            configs: vec![DesiredObject {
                name: "s_app".into(),
                spec: json!({"Name": "s_app", "Data": "c2VjcmV0", "Labels": {"a": "b"}}),
                source: Value::Null,
            }],
            secrets: vec![DesiredObject {
                name: "s_key".into(),
                spec: json!({"Name": "s_key", "Data": "c2VjcmV0"}),
                source: Value::Null,
            }],
            external: vec![(Kind::Network, "proxy".into())],
            ..Default::default()
        };
        let doc = input_document(&stack, &ClusterFacts::default());
        assert!(!doc.to_string().contains("c2VjcmV0"));
        assert_eq!(
            doc["configs"]["s_app"],
            json!({"name": "s_app", "labels": {"a": "b"}})
        );
        assert_eq!(
            doc["secrets"]["s_key"],
            json!({"name": "s_key", "labels": {}})
        );
        assert_eq!(
            doc["external"],
            json!([{"kind": "network", "name": "proxy"}])
        );
    }

    #[test]
    fn summarises_the_cluster() {
        let facts = ClusterFacts {
            name: None,
            nodes: vec![
                node("a", "manager", "20.10.24"),
                node("b", "worker", "20.10.24"),
                node("c", "worker", "24.0.7"),
            ],
        };
        let doc = input_document(&DesiredStack::default(), &facts);
        assert_eq!(doc["cluster"]["node_count"], 3);
        assert_eq!(doc["cluster"]["manager_count"], 1);
        assert_eq!(
            doc["cluster"]["engine_versions"],
            json!(["20.10.24", "24.0.7"])
        );
        assert_eq!(doc["cluster"]["nodes"][1]["hostname"], "host-b");
    }
}
