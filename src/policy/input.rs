//! The input document policies see (documented in `policies/README.md`).
//!
//! Config and secret payloads (`spec.Data`) never enter it: policies get
//! names and labels only, so a policy (or its test output) cannot leak them.
use crate::state::{ClusterFacts, DesiredObject, DesiredStack};
use serde_json::{json, Map, Value};

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
    json!({
        "stack": stack.name,
        "services": objects(&stack.services, service_entry),
        "networks": objects(&stack.networks, |o| json!({"name": o.name, "spec": o.spec})),
        "configs": objects(&stack.configs, named_labels),
        "secrets": objects(&stack.secrets, named_labels),
        "external": stack
            .external
            .iter()
            .map(|(kind, name)| json!({"kind": kind.as_str(), "name": name}))
            .collect::<Vec<_>>(),
        "cluster": cluster(facts),
    })
}

fn objects(list: &[DesiredObject], entry: impl Fn(&DesiredObject) -> Value) -> Value {
    Value::Object(
        list.iter()
            .map(|o| (o.name.clone(), entry(o)))
            .collect::<Map<_, _>>(),
    )
}

fn service_entry(o: &DesiredObject) -> Value {
    json!({"name": o.name, "spec": o.spec, "compose": o.source})
}

fn named_labels(o: &DesiredObject) -> Value {
    let labels = o.spec.get("Labels").cloned().unwrap_or_else(|| json!({}));
    json!({"name": o.name, "labels": labels})
}

fn cluster(facts: &ClusterFacts) -> Value {
    let mut versions: Vec<&str> = facts
        .nodes
        .iter()
        .map(|n| n.engine_version.as_str())
        .filter(|v| !v.is_empty())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    json!({
        "nodes": facts.nodes,
        "node_count": facts.node_count(),
        "manager_count": facts.manager_count(),
        "engine_versions": versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Kind, NodeFacts};

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
