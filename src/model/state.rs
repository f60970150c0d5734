//! Desired and live state: the two inputs of the diff.
//!
//! Specs are kept as JSON values shaped exactly like the Engine API's
//! (`docker service inspect` -> `.Spec`), so desired and live compare
//! field by field and the diff needs no knowledge of bollard's types.
use serde::Serialize;
use serde_json::Value;

/// Label docker puts on every object of a stack.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// Label docker puts on a service with the image as written.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Network,
    Config,
    Secret,
    Service,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Config => "config",
            Kind::Secret => "secret",
            Kind::Service => "service",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stack as the repository wants it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DesiredStack {
    /// The namespace (folder name under `stacks/`).
    pub name: String,
    pub services: Vec<DesiredObject>,
    /// Networks the stack creates (not external ones).
    pub networks: Vec<DesiredObject>,
    /// Configs the stack creates (not external ones); `spec.Data` is base64.
    pub configs: Vec<DesiredObject>,
    /// Secrets the stack creates (not external ones); `spec.Data` is base64.
    pub secrets: Vec<DesiredObject>,
    /// Objects the stack uses but does not own; they must exist.
    pub external: Vec<(Kind, String)>,
    /// Loader and converter warnings ("Ignoring unsupported options: build").
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredObject {
    /// Full swarm name, e.g. `steedos_web`.
    pub name: String,
    /// Engine API spec: ServiceSpec, NetworkCreate request, ConfigSpec, SecretSpec.
    pub spec: Value,
    /// For services: the compose service as loaded (normalized), for policies.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub source: Value,
}

/// An object read from the swarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveObject {
    pub id: String,
    pub name: String,
    /// Version index for optimistic concurrency on update.
    pub version: u64,
    pub spec: Value,
    /// RFC 3339 creation time as the engine reports it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_at: String,
}

/// Everything of one stack that lives on the swarm (by namespace label).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveStack {
    pub name: String,
    pub services: Vec<LiveObject>,
    pub networks: Vec<LiveObject>,
    pub configs: Vec<LiveObject>,
    pub secrets: Vec<LiveObject>,
}

impl LiveStack {
    pub fn objects(&self, kind: Kind) -> &[LiveObject] {
        match kind {
            Kind::Network => &self.networks,
            Kind::Config => &self.configs,
            Kind::Secret => &self.secrets,
            Kind::Service => &self.services,
        }
    }
}

impl DesiredStack {
    pub fn objects(&self, kind: Kind) -> &[DesiredObject] {
        match kind {
            Kind::Network => &self.networks,
            Kind::Config => &self.configs,
            Kind::Secret => &self.secrets,
            Kind::Service => &self.services,
        }
    }
}

/// A node as policies see it (cluster facts).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NodeFacts {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, ...
    pub state: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub engine_version: String,
}

/// Facts about the cluster, read from the live swarm or given offline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ClusterFacts {
    pub nodes: Vec<NodeFacts>,
    /// The cluster's name in a multi-cluster repository
    /// (`clusters/<name>/`); policies see it as `input.cluster.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ClusterFacts {
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    pub fn manager_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.role == "manager").count()
    }

    /// Facts for an offline check (`shoal validate --nodes N --managers M`):
    /// `nodes` ready, active nodes named `node-1`.., the first `managers`
    /// of them managers.
    pub fn synthetic(nodes: usize, managers: usize) -> Self {
        ClusterFacts {
            name: None,
            nodes: (1..=nodes)
                .map(|i| NodeFacts {
                    id: format!("node-{i}"),
                    hostname: format!("node-{i}"),
                    role: if i <= managers.max(1) {
                        "manager"
                    } else {
                        "worker"
                    }
                    .to_string(),
                    availability: "active".to_string(),
                    state: "ready".to_string(),
                    labels: Default::default(),
                    engine_version: String::new(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_facts_count_nodes_and_managers() {
        let facts = ClusterFacts::synthetic(3, 1);
        assert_eq!(facts.node_count(), 3);
        assert_eq!(facts.manager_count(), 1);
        assert_eq!(facts.nodes[2].role, "worker");
    }
}
