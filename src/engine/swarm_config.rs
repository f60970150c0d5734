//! Small Swarm configs used as records: the agent keeps its state in the
//! swarm's own store (labels of a config), never on disk. Config labels
//! can be updated in place with the object's version index, which gives
//! optimistic concurrency (a stale version is refused).
use base64::Engine as _;
use bollard::models::ConfigSpec;
use bollard::query_parameters::{ListConfigsOptions, UpdateConfigOptions};
use bollard::Docker;
use std::collections::{BTreeMap, HashMap};

/// A config as the agent reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledConfig {
    pub id: String,
    pub name: String,
    pub version: u64,
    pub labels: BTreeMap<String, String>,
    /// Kept to send back unchanged: swarm refuses updates of anything but
    /// labels.
    spec: ConfigSpec,
}

/// Why a write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Someone else created or updated the config first.
    #[error("config {0}: changed concurrently by someone else")]
    Conflict(String),
    #[error("config {name}: {message}")]
    Engine { name: String, message: String },
}

/// Why a config could not be read or removed. The engine's error is part
/// of the text, not a `source()`: the CLI prints causes again.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("listing config {name}: {error}")]
    Get {
        name: String,
        error: bollard::errors::Error,
    },
    #[error("listing configs labeled {label}={value}: {error}")]
    List {
        label: String,
        value: String,
        error: bollard::errors::Error,
    },
    #[error("removing config {name}: {error}")]
    Remove {
        name: String,
        error: bollard::errors::Error,
    },
}

/// A read or a write of a config that failed (what the lease and the
/// stack records, which do both, return).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Read(#[from] ConfigError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Read a config by exact name; `None` when it does not exist.
pub async fn get(docker: &Docker, name: &str) -> Result<Option<LabeledConfig>, ConfigError> {
    // Inspect accepts ids and name prefixes of ids; a list with an exact
    // name filter cannot mistake one object for another.
    let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
    let list = docker
        .list_configs(Some(ListConfigsOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|error| ConfigError::Get {
            name: name.to_string(),
            error,
        })?;
    Ok(list
        .into_iter()
        .filter_map(from_bollard)
        .find(|c| c.name == name))
}

/// Every config carrying `label=value`.
pub async fn list_labeled(
    docker: &Docker,
    label: &str,
    value: &str,
) -> Result<Vec<LabeledConfig>, ConfigError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
    let list = docker
        .list_configs(Some(ListConfigsOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|error| ConfigError::List {
            label: label.to_string(),
            value: value.to_string(),
            error,
        })?;
    Ok(list.into_iter().filter_map(from_bollard).collect())
}

/// Create a config holding `data` and `labels`. A name clash is a conflict.
pub async fn create(
    docker: &Docker,
    name: &str,
    data: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String, WriteError> {
    let spec = ConfigSpec {
        name: Some(name.to_string()),
        labels: Some(labels.clone().into_iter().collect()),
        data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
        ..Default::default()
    };
    match docker.create_config(spec).await {
        Ok(r) => Ok(r.id),
        Err(e) => Err(write_error(name, e)),
    }
}

/// Replace the labels of `existing`, provided nobody wrote it since it was
/// read (its version index still matches).
pub async fn update_labels(
    docker: &Docker,
    existing: &LabeledConfig,
    labels: &BTreeMap<String, String>,
) -> Result<(), WriteError> {
    let mut spec = existing.spec.clone();
    spec.labels = Some(labels.clone().into_iter().collect());
    let opts = UpdateConfigOptions {
        version: existing.version as i64,
    };
    docker
        .update_config(&existing.id, spec, opts)
        .await
        .map_err(|e| write_error(&existing.name, e))
}

/// Remove a config by id or name (absent is fine).
pub async fn remove(docker: &Docker, name: &str) -> Result<(), ConfigError> {
    match docker.delete_config(name).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(error) => Err(ConfigError::Remove {
            name: name.to_string(),
            error,
        }),
    }
}

fn write_error(name: &str, e: bollard::errors::Error) -> WriteError {
    match &e {
        // 409: name taken. A stale version index comes back as
        // "update out of sequence" (500 on Engine 20.10).
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } if *status_code == 409 || message.contains("out of sequence") => {
            WriteError::Conflict(name.to_string())
        }
        _ => WriteError::Engine {
            name: name.to_string(),
            message: e.to_string(),
        },
    }
}

fn from_bollard(c: bollard::models::Config) -> Option<LabeledConfig> {
    let spec = c.spec?;
    Some(LabeledConfig {
        id: c.id?,
        name: spec.name.clone()?,
        version: c.version?.index?,
        labels: spec
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        spec,
    })
}
