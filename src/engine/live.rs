//! Reads: live stacks (one list call per kind), cluster facts, service
//! inspect and tasks for the convergence wait.
use super::{label_filter, raw::query_escape, Engine, EngineError};
use crate::model::{ClusterFacts, Kind, LiveObject, LiveStack, NodeFacts, NAMESPACE_LABEL};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

impl Engine {
    /// Every stack on the swarm (objects with the namespace label), by name.
    /// Four list calls in all: services, networks, configs, secrets.
    pub async fn live_stacks(&self) -> Result<BTreeMap<String, LiveStack>, EngineError> {
        self.read_stacks(NAMESPACE_LABEL).await
    }

    /// One stack (empty when nothing carries its namespace).
    pub async fn live_stack(&self, name: &str) -> Result<LiveStack, EngineError> {
        let mut all = self
            .read_stacks(&format!("{NAMESPACE_LABEL}={name}"))
            .await?;
        Ok(all.remove(name).unwrap_or_else(|| LiveStack {
            name: name.to_string(),
            ..LiveStack::default()
        }))
    }

    async fn read_stacks(&self, label: &str) -> Result<BTreeMap<String, LiveStack>, EngineError> {
        let mut stacks: BTreeMap<String, LiveStack> = BTreeMap::new();
        for kind in [Kind::Network, Kind::Config, Kind::Secret, Kind::Service] {
            for object in self.list(kind, label).await? {
                let Some(stack) = stack_of(&object.spec) else {
                    continue; // the label filter guarantees it; be safe anyway
                };
                let entry = stacks
                    .entry(stack.to_string())
                    .or_insert_with(|| LiveStack {
                        name: stack.to_string(),
                        ..LiveStack::default()
                    });
                match kind {
                    Kind::Network => entry.networks.push(object),
                    Kind::Config => entry.configs.push(object),
                    Kind::Secret => entry.secrets.push(object),
                    Kind::Service => entry.services.push(object),
                }
            }
        }
        for stack in stacks.values_mut() {
            for list in [
                &mut stack.networks,
                &mut stack.configs,
                &mut stack.secrets,
                &mut stack.services,
            ] {
                list.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        Ok(stacks)
    }

    /// Objects of one kind carrying `label` (`key` or `key=value`), in one
    /// list call, specs exactly as the daemon returns them (networks as a
    /// NetworkCreate-like spec, see [`network_spec`]).
    pub async fn list(&self, kind: Kind, label: &str) -> Result<Vec<LiveObject>, EngineError> {
        let what = format!("list {kind}s with label {label}");
        let path = format!("/{}?{}", collection(kind), label_filter(label));
        let items = self.get(&what, &path).await?;
        let items = items.as_array().ok_or_else(|| EngineError::Protocol {
            what: what.clone(),
            reason: "expected a JSON array".into(),
        })?;
        Ok(items
            .iter()
            .map(|item| match kind {
                Kind::Network => live_network(item),
                _ => live_object(item),
            })
            .collect())
    }

    /// Nodes of the swarm, for policies and the convergence wait.
    pub async fn cluster_facts(&self) -> Result<ClusterFacts, EngineError> {
        let nodes = self.get("list nodes", "/nodes").await?;
        let nodes = nodes.as_array().cloned().unwrap_or_default();
        Ok(ClusterFacts {
            name: None,
            nodes: nodes.iter().map(node_facts).collect(),
        })
    }

    /// `GET /services/{id}`: the whole service object (Spec, Version,
    /// UpdateStatus, JobStatus, ...).
    pub async fn inspect_service(&self, id_or_name: &str) -> Result<Value, EngineError> {
        self.get(
            &format!("inspect service {id_or_name}"),
            &format!("/services/{}", query_escape(id_or_name)),
        )
        .await
    }

    /// Tasks of one service; `up_to_date` keeps only tasks running the
    /// service's current spec (the filter `docker service create` uses for
    /// its progress display).
    pub async fn service_tasks(
        &self,
        service_id: &str,
        up_to_date: bool,
    ) -> Result<Vec<Value>, EngineError> {
        let mut filters = json!({ "service": [service_id] });
        if up_to_date {
            filters["_up-to-date"] = json!(["true"]);
        }
        let path = format!("/tasks?filters={}", query_escape(&filters.to_string()));
        let tasks = self
            .get(&format!("list tasks of service {service_id}"), &path)
            .await?;
        Ok(tasks.as_array().cloned().unwrap_or_default())
    }

    /// `GET /configs/{id}` as a [`LiveObject`].
    pub async fn inspect_config(&self, id_or_name: &str) -> Result<LiveObject, EngineError> {
        let v = self
            .get(
                &format!("inspect config {id_or_name}"),
                &format!("/configs/{}", query_escape(id_or_name)),
            )
            .await?;
        Ok(live_object(&v))
    }
}

/// API collection of a kind.
pub(super) fn collection(kind: Kind) -> &'static str {
    match kind {
        Kind::Network => "networks",
        Kind::Config => "configs",
        Kind::Secret => "secrets",
        Kind::Service => "services",
    }
}

/// The namespace label of a spec (`Labels` at the top, as in every spec
/// shoal handles), if any.
pub fn stack_of(spec: &Value) -> Option<&str> {
    spec.get("Labels")?.get(NAMESPACE_LABEL)?.as_str()
}

/// A swarm object (service, config, secret) as the API lists it. Services
/// are read without `insertDefaults`: the spec as it was written, which is
/// what converted specs compare with (`docker service inspect` adds the
/// server defaults).
fn live_object(item: &Value) -> LiveObject {
    let spec = item.get("Spec").cloned().unwrap_or(Value::Null);
    LiveObject {
        id: str_at(item, "ID"),
        name: str_at(&spec, "Name"),
        version: item["Version"]["Index"].as_u64().unwrap_or(0),
        spec,
        created_at: str_at(item, "CreatedAt"),
    }
}

/// A network as a [`LiveObject`]; networks have no version index (0).
fn live_network(item: &Value) -> LiveObject {
    LiveObject {
        id: str_at(item, "Id"),
        name: str_at(item, "Name"),
        version: 0,
        spec: network_spec(item),
        created_at: str_at(item, "Created"),
    }
}

/// A network list/inspect entry reshaped like a `NetworkCreate` request
/// (the body `docker stack deploy` sends), so it compares with desired
/// specs: Name, Driver, Labels, Options, Attachable, Internal, IPAM, Scope.
pub fn network_spec(item: &Value) -> Value {
    let mut spec = Map::new();
    for key in [
        "Name",
        "Driver",
        "Labels",
        "Options",
        "Attachable",
        "Internal",
        "IPAM",
        "Scope",
    ] {
        if let Some(v) = item.get(key) {
            spec.insert(key.to_string(), v.clone());
        }
    }
    Value::Object(spec)
}

fn node_facts(n: &Value) -> NodeFacts {
    let labels = n["Spec"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    NodeFacts {
        id: str_at(n, "ID"),
        hostname: str_at(&n["Description"], "Hostname"),
        role: str_at(&n["Spec"], "Role"),
        availability: str_at(&n["Spec"], "Availability"),
        state: str_at(&n["Status"], "State"),
        labels,
        engine_version: str_at(&n["Description"]["Engine"], "EngineVersion"),
    }
}

fn str_at(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_entry_becomes_create_like_spec() {
        let item = json!({
            "Name": "s_net", "Id": "abc", "Created": "2026-01-01T00:00:00Z",
            "Scope": "swarm", "Driver": "overlay", "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": []},
            "Internal": false, "Attachable": true, "Ingress": false,
            "Containers": {}, "Options": {"a": "b"},
            "Labels": {"com.docker.stack.namespace": "s"}
        });
        let live = live_network(&item);
        assert_eq!(live.id, "abc");
        assert_eq!(live.name, "s_net");
        assert_eq!(stack_of(&live.spec), Some("s"));
        let keys: Vec<&str> = live
            .spec
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "Name",
                "Driver",
                "Labels",
                "Options",
                "Attachable",
                "Internal",
                "IPAM",
                "Scope"
            ]
        );
    }

    #[test]
    fn service_entry_keeps_spec_verbatim() {
        let item = json!({
            "ID": "id1", "Version": {"Index": 42}, "CreatedAt": "t",
            "Spec": {"Name": "s_web", "TaskTemplate": {"ContainerSpec": {
                "Healthcheck": {"Test": ["CMD", "true"]}}}}
        });
        let live = live_object(&item);
        assert_eq!((live.id.as_str(), live.version), ("id1", 42));
        assert_eq!(live.spec, item["Spec"]);
    }

    #[test]
    fn node_facts_read_the_api_shape() {
        let n = json!({"ID": "n1", "Spec": {"Role": "manager", "Availability": "active",
            "Labels": {"zone": "a"}}, "Description": {"Hostname": "vm",
            "Engine": {"EngineVersion": "20.10.24"}}, "Status": {"State": "ready"}});
        let f = node_facts(&n);
        assert_eq!(f.hostname, "vm");
        assert_eq!(f.labels["zone"], "a");
        assert_eq!(f.engine_version, "20.10.24");
    }
}
