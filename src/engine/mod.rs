//! The Docker Engine API and nothing else: live reads, writes, registry
//! digest lookups, and the labelled configs the agent keeps its lease and
//! records in. One client per process; no decisions here, only API calls.
//!
//! Specs travel as raw JSON in both directions (see `raw.rs` for why), so
//! every field the daemon knows passes through unchanged. `docker` (bollard)
//! is kept for callers that want typed, non-spec calls such as events.
mod distribution;
pub mod endpoint;
mod live;
pub mod raw;
mod refs;
pub mod ssh;
pub mod swarm_config;
pub mod tls;
pub mod transport;
mod write;

pub use live::{network_spec, stack_of};
pub use refs::{resolve_references, ReferenceIds, ReferenceProblem};

use raw::{Endpoint, RawClient, Response};
use serde_json::Value;
use std::time::Duration;

/// The oldest Engine API shoal speaks (Docker Engine 20.10).
pub const MIN_API_VERSION: (u32, u32) = (1, 41);
/// The API version every request is pinned to, so behaviour does not drift
/// with newer daemons.
const API_PREFIX: &str = "/v1.41";

/// What went wrong talking to the Engine; messages name the object.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the docker engine at {endpoint}: {reason}{}",
        unreachable_hint(endpoint)
    )]
    Unreachable { endpoint: String, reason: String },
    /// A network's spec cannot change in place; the plan replaces it.
    #[error("{what}: networks cannot be updated in place")]
    NetworkUpdate { what: String },
    /// A service's config or secret reference cannot be resolved to an ID.
    #[error("service {service}: {problem}")]
    Reference {
        service: String,
        problem: ReferenceProblem,
    },
    /// The registry credentials for a service's image cannot be read.
    // The credentials error is part of the message, not a cause: the CLI
    // prints causes again.
    #[error("service {service}: {error}")]
    RegistryAuth {
        service: String,
        error: crate::image::CredentialsError,
    },
    /// No engine to talk to: `-H`, `--context`, `DOCKER_HOST` or the
    /// docker context cannot be used.
    #[error(transparent)]
    Endpoint(#[from] endpoint::EndpointError),
    /// The endpoint's TLS files cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("the docker engine at {endpoint} speaks API {found}; shoal needs API {}.{} or newer (Docker Engine 20.10+)", MIN_API_VERSION.0, MIN_API_VERSION.1)]
    TooOld { endpoint: String, found: String },
    #[error("the docker engine at {endpoint} is not a swarm manager (swarm state: {state}); run shoal against a manager node")]
    NotManager { endpoint: String, state: String },
    /// The object changed since its version index was read.
    #[error("{what}: update out of sequence (it changed since it was read)")]
    OutOfSequence { what: String },
    /// The object (or one the request names) does not exist.
    #[error("{what}: {message}")]
    NotFound { what: String, message: String },
    /// The object is still used by another (service, task).
    #[error("{what}: {message}")]
    InUse { what: String, message: String },
    #[error("{what}: {message} (HTTP {status})")]
    Api {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}: unexpected answer from the docker engine: {reason}")]
    Protocol { what: String, reason: String },
}

/// A connection to one Docker Engine that is a swarm manager.
pub struct Engine {
    /// Typed client for calls that need no specs (events, logs, ...).
    pub docker: bollard::Docker,
    raw: RawClient,
}

impl Engine {
    /// Connect the way the docker CLI does (see [`endpoint`]: `-H`,
    /// `--context`, `DOCKER_HOST` with `unix://`, `tcp://` (TLS with
    /// `DOCKER_TLS_VERIFY`) or `ssh://`, the docker context, else
    /// `/var/run/docker.sock`), check the API version is at least 1.41 and
    /// that the daemon is a swarm manager.
    pub async fn connect() -> Result<Engine, EngineError> {
        let endpoint = endpoint::current()?;
        Engine::connect_to(endpoint).await
    }

    /// Connect to an explicit endpoint (see [`Engine::connect`]).
    pub async fn connect_to(endpoint: Endpoint) -> Result<Engine, EngineError> {
        let raw = RawClient::new(endpoint.clone(), Duration::from_secs(60))?;
        let unreachable = |reason: String| EngineError::Unreachable {
            endpoint: endpoint.to_string(),
            reason,
        };
        // Unversioned, so even a too-old daemon answers with its version.
        let version = raw.request("GET", "/version", None);
        let version = match raw.remote() {
            // Over ssh every new connection is a login: open the few a plan
            // uses at once, side by side, instead of one after the other.
            Some(remote) => remote.warm_up(version).await,
            None => version.await,
        }
        .map_err(unreachable)?;
        if version.status == 400 && version.error_message().contains("HTTPS server") {
            return Err(unreachable(
                "it speaks TLS: set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or use a docker context with TLS".into(),
            ));
        }
        let version = version.json().map_err(|e| unreachable(e.to_string()))?;
        let found = version
            .get("ApiVersion")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let api = match parse_api_version(&found) {
            Some(v) if v >= MIN_API_VERSION => v,
            _ => {
                return Err(EngineError::TooOld {
                    endpoint: endpoint.to_string(),
                    found,
                })
            }
        };
        let docker = match raw.remote() {
            // The version is known: no second ssh login or TLS handshake
            // just for bollard to ask it again.
            Some(remote) => remote
                .bollard(120, api)
                .map_err(|e| unreachable(e.to_string()))?,
            None => connect_bollard(&raw)
                .map_err(|e| unreachable(e.to_string()))?
                .negotiate_version()
                .await
                .map_err(|e| unreachable(e.to_string()))?,
        };
        let engine = Engine { docker, raw };
        let info = engine.get("read engine info", "/info").await?;
        let swarm = &info["Swarm"];
        let state = swarm["LocalNodeState"].as_str().unwrap_or("unknown");
        if state != "active" || swarm["ControlAvailable"] != Value::Bool(true) {
            let state = if state == "active" {
                "active, worker".to_string()
            } else {
                state.to_string()
            };
            return Err(EngineError::NotManager {
                endpoint: endpoint.to_string(),
                state,
            });
        }
        Ok(engine)
    }

    /// The endpoint this engine talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.raw.endpoint
    }

    /// `GET` a versioned API path; `what` names the call in errors.
    async fn get(&self, what: &str, path: &str) -> Result<Value, EngineError> {
        self.call(what, "GET", path, None).await
    }

    /// One versioned API call; non-2xx answers become [`EngineError`]s
    /// carrying the daemon's message.
    async fn call(
        &self,
        what: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, EngineError> {
        self.call_with(what, method, path, body, &[]).await
    }

    /// [`Engine::call`] with extra request headers.
    async fn call_with(
        &self,
        what: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, EngineError> {
        let full = format!("{API_PREFIX}{path}");
        let resp = self
            .raw
            .request_with(method, &full, body, headers)
            .await
            .map_err(|reason| EngineError::Unreachable {
                endpoint: self.raw.endpoint.to_string(),
                reason: format!("{what}: {reason}"),
            })?;
        if !resp.is_success() {
            return Err(api_error(what, &resp));
        }
        resp.json().map_err(|e| EngineError::Protocol {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }
}

/// A bollard client for a local engine (unix socket, plain tcp); remote
/// engines get theirs from their transport in [`Engine::connect_to`].
fn connect_bollard(raw: &RawClient) -> Result<bollard::Docker, bollard::errors::Error> {
    match &raw.endpoint {
        Endpoint::Unix(p) => bollard::Docker::connect_with_unix(
            &p.to_string_lossy(),
            120,
            bollard::API_DEFAULT_VERSION,
        ),
        Endpoint::Tcp(a) => bollard::Docker::connect_with_http(
            &format!("tcp://{a}"),
            120,
            bollard::API_DEFAULT_VERSION,
        ),
        // `RawClient::new` made a remote transport for these.
        Endpoint::Tls(_) | Endpoint::Ssh(_) => Err(bollard::errors::Error::IOError {
            err: std::io::Error::other(format!("{}: no transport", raw.endpoint)),
        }),
    }
}

/// The usual causes, for local engines; remote failures (TLS, ssh) are
/// explained where they happen.
fn unreachable_hint(endpoint: &str) -> &'static str {
    if endpoint.starts_with("ssh://") || endpoint.ends_with("(TLS)") {
        ""
    } else {
        " (is dockerd running, and are DOCKER_HOST or the docker context right?)"
    }
}

/// Classify a non-2xx answer.
fn api_error(what: &str, resp: &Response) -> EngineError {
    let message = resp.error_message();
    let what = what.to_string();
    if message.contains("update out of sequence") {
        EngineError::OutOfSequence { what }
    } else if resp.status == 404 {
        EngineError::NotFound { what, message }
    } else if message.contains("in use") || message.contains("active endpoints") {
        EngineError::InUse { what, message }
    } else {
        EngineError::Api {
            what,
            status: resp.status,
            message,
        }
    }
}

/// `"1.41"` -> `(1, 41)`.
fn parse_api_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// `?filters=...` for a label filter (`key` or `key=value`).
fn label_filter(label: &str) -> String {
    let filters = serde_json::json!({ "label": [label] });
    format!("filters={}", raw::query_escape(&filters.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare_numerically() {
        assert!(parse_api_version("1.41").unwrap() >= MIN_API_VERSION);
        assert!(parse_api_version("1.9").unwrap() < MIN_API_VERSION);
        assert!(parse_api_version("1.100").unwrap() >= MIN_API_VERSION);
        assert_eq!(parse_api_version("x"), None);
    }

    #[test]
    fn out_of_sequence_is_its_own_error() {
        let resp = Response {
            status: 500,
            body: br#"{"message":"rpc error: code = Unknown desc = update out of sequence"}"#
                .to_vec(),
        };
        assert!(matches!(
            api_error("update service x", &resp),
            EngineError::OutOfSequence { .. }
        ));
        let resp = Response {
            status: 404,
            body: br#"{"message":"service x not found"}"#.to_vec(),
        };
        assert!(matches!(
            api_error("inspect service x", &resp),
            EngineError::NotFound { .. }
        ));
    }
}
