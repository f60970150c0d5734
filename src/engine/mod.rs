//! The Docker Engine adapter (bollard): live reads and writes. Thin: no
//! decisions here, only API calls.
use crate::state::{ClusterFacts, LiveStack};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
#[error("docker engine: {0}")]
pub struct EngineError(pub String);

pub struct Engine {
    pub docker: bollard::Docker,
}

impl Engine {
    /// Connect the way the docker CLI does (`DOCKER_HOST`, default socket).
    pub async fn connect() -> Result<Engine, EngineError> {
        todo!("engine connect")
    }

    /// Every stack on the swarm (objects with the namespace label), by name.
    pub async fn live_stacks(&self) -> Result<BTreeMap<String, LiveStack>, EngineError> {
        todo!("live read")
    }

    /// Nodes of the swarm, for policies.
    pub async fn cluster_facts(&self) -> Result<ClusterFacts, EngineError> {
        todo!("nodes")
    }
}
