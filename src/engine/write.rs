//! Writes: create, update (with the version index), remove. Bodies are the
//! raw JSON specs, so every field (e.g. `Healthcheck`) reaches the daemon
//! unchanged.
use super::{live::collection, raw::query_escape, Engine, EngineError};
use crate::model::Kind;
use serde_json::Value;

impl Engine {
    /// Create an object from its spec (ServiceSpec, NetworkCreate request,
    /// ConfigSpec, SecretSpec); returns the new id. Service specs must have
    /// their config/secret ids resolved (see
    /// [`resolve_references`](super::resolve_references)).
    pub async fn create(&self, kind: Kind, spec: &Value) -> Result<String, EngineError> {
        self.create_with_auth(kind, spec, None).await
    }

    /// [`Engine::create`] sending registry credentials (`X-Registry-Auth`)
    /// with a service, so the swarm hands them to the nodes that pull its
    /// image (`docker stack deploy --with-registry-auth`).
    pub async fn create_with_auth(
        &self,
        kind: Kind,
        spec: &Value,
        registry_auth: Option<&str>,
    ) -> Result<String, EngineError> {
        let what = format!("create {kind} {}", name_of(spec));
        let path = format!("/{}/create", collection(kind));
        let headers = auth_header(registry_auth);
        let answer = self
            .call_with(&what, "POST", &path, Some(spec), &headers)
            .await?;
        // Networks answer `Id`, swarm objects `ID`.
        answer
            .get("ID")
            .or_else(|| answer.get("Id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| EngineError::Protocol {
                what,
                reason: format!("no id in {answer}"),
            })
    }

    /// Replace the spec of a service, config or secret at `version` (the
    /// index read with it). A concurrent change since that read yields
    /// [`EngineError::OutOfSequence`]. Returns the daemon's warnings.
    pub async fn update(
        &self,
        kind: Kind,
        id: &str,
        version: u64,
        spec: &Value,
    ) -> Result<Vec<String>, EngineError> {
        self.update_with_auth(kind, id, version, spec, None).await
    }

    /// [`Engine::update`] sending registry credentials with a service (see
    /// [`Engine::create_with_auth`]); without them the swarm keeps the
    /// ones it had.
    pub async fn update_with_auth(
        &self,
        kind: Kind,
        id: &str,
        version: u64,
        spec: &Value,
        registry_auth: Option<&str>,
    ) -> Result<Vec<String>, EngineError> {
        let what = format!("update {kind} {}", name_of(spec));
        if kind == Kind::Network {
            return Err(EngineError::NetworkUpdate { what });
        }
        let path = format!(
            "/{}/{}/update?version={version}",
            collection(kind),
            query_escape(id)
        );
        let headers = auth_header(registry_auth);
        let answer = self
            .call_with(&what, "POST", &path, Some(spec), &headers)
            .await?;
        Ok(answer["Warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect())
    }

    /// Remove an object by id; `name` is for messages.
    pub async fn remove(&self, kind: Kind, id: &str, name: &str) -> Result<(), EngineError> {
        let what = format!("remove {kind} {name}");
        let path = format!("/{}/{}", collection(kind), query_escape(id));
        self.call(&what, "DELETE", &path, None).await.map(|_| ())
    }
}

fn auth_header(registry_auth: Option<&str>) -> Vec<(&'static str, &str)> {
    registry_auth
        .map(|a| vec![("X-Registry-Auth", a)])
        .unwrap_or_default()
}

fn name_of(spec: &Value) -> &str {
    spec.get("Name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
}
