//! Per-stack state records in the swarm: one config `shoal-state-<stack>`
//! whose labels hold the revision the stack last matched, when it was last
//! applied and the last outcome. The data is a fixed string; records carry
//! no stack namespace label, so they are never part of a stack's diff.
use super::status::Outcome;
use crate::engine::swarm_config::{self, AccessError, ConfigError, WriteError};
use bollard::Docker;
use std::collections::BTreeMap;

pub const NAME_PREFIX: &str = "shoal-state-";
pub const KIND_LABEL: &str = "io.shoal.kind";
pub const KIND_VALUE: &str = "stack-state";
pub const STACK_LABEL: &str = "io.shoal.stack";
pub const COMMIT_LABEL: &str = "io.shoal.commit";
pub const APPLIED_AT_LABEL: &str = "io.shoal.applied-at";
pub const OUTCOME_LABEL: &str = "io.shoal.outcome";
pub const ATTEMPTED_LABEL: &str = "io.shoal.attempted";
pub const ERROR_LABEL: &str = "io.shoal.error";
/// `io.shoal.image.<service>`: the image (digest-pinned) the service was
/// last in sync at, so a digest the registry moved is told from one set by
/// hand, also after the agent restarts.
pub const IMAGE_LABEL_PREFIX: &str = "io.shoal.image.";
const DATA: &str = "shoal stack state; see the labels\n";
/// Error texts are cut to keep the record small.
const MAX_ERROR_CHARS: usize = 300;

/// Why a stack record could not be read, written or removed; every
/// message names the record's config (`shoal-state-<stack>`).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] AccessError),
    /// Another writer won both tries.
    #[error("config {name}: changed concurrently twice; not written")]
    Contended { name: String },
}

impl From<ConfigError> for RecordError {
    fn from(e: ConfigError) -> RecordError {
        RecordError::Store(e.into())
    }
}

impl From<WriteError> for RecordError {
    fn from(e: WriteError) -> RecordError {
        RecordError::Store(e.into())
    }
}

/// What the swarm remembers about one stack.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackRecord {
    /// The snapshot the live stack was last known to match (applied, or
    /// found already in sync). Changes planned at this same snapshot are
    /// drift.
    pub commit: Option<String>,
    /// RFC 3339 time of the last successful apply.
    pub applied_at: Option<String>,
    /// Outcome of the last pass.
    pub outcome: Option<Outcome>,
    /// Snapshot of the last pass.
    pub attempted: Option<String>,
    pub error: Option<String>,
    /// Service -> image at the last sync (see [`IMAGE_LABEL_PREFIX`]).
    pub images: BTreeMap<String, String>,
    /// The commit that failed and was rolled back (not retried on its own).
    pub failed: Option<String>,
    /// The commits applied, newest first, bounded (see `history`).
    pub history: Vec<super::history::Entry>,
}

impl StackRecord {
    fn to_labels(&self, stack: &str) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            (KIND_LABEL.to_string(), KIND_VALUE.to_string()),
            (STACK_LABEL.to_string(), stack.to_string()),
        ]);
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                l.insert(k.to_string(), v.to_string());
            }
        };
        put(COMMIT_LABEL, self.commit.as_deref());
        put(APPLIED_AT_LABEL, self.applied_at.as_deref());
        put(OUTCOME_LABEL, self.outcome.map(Outcome::as_str));
        put(ATTEMPTED_LABEL, self.attempted.as_deref());
        // The loop masks errors with the redactor before they get here; URL
        // credentials are masked again because labels outlive the agent
        // and anyone with `docker config inspect` reads them.
        let error = self.error.as_deref().map(|e| {
            super::mask::url_credentials(e)
                .chars()
                .take(MAX_ERROR_CHARS)
                .collect::<String>()
        });
        put(ERROR_LABEL, error.as_deref());
        put(super::history::FAILED_LABEL, self.failed.as_deref());
        put(
            super::history::HISTORY_LABEL,
            super::history::encode(&self.history).as_deref(),
        );
        for (service, image) in &self.images {
            l.insert(format!("{IMAGE_LABEL_PREFIX}{service}"), image.clone());
        }
        l
    }

    fn from_labels(l: &BTreeMap<String, String>) -> StackRecord {
        let get = |k: &str| l.get(k).cloned();
        StackRecord {
            commit: get(COMMIT_LABEL),
            applied_at: get(APPLIED_AT_LABEL),
            outcome: l.get(OUTCOME_LABEL).and_then(|o| Outcome::parse(o)),
            attempted: get(ATTEMPTED_LABEL),
            error: get(ERROR_LABEL),
            failed: get(super::history::FAILED_LABEL),
            history: super::history::decode(l.get(super::history::HISTORY_LABEL)),
            images: l
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(IMAGE_LABEL_PREFIX)
                        .map(|s| (s.to_string(), v.clone()))
                })
                .collect(),
        }
    }
}

/// The config name of a stack's record.
pub fn config_name(stack: &str) -> String {
    format!("{NAME_PREFIX}{stack}")
}

/// Every stack record on the swarm, by stack name.
pub async fn load_all(docker: &Docker) -> Result<BTreeMap<String, StackRecord>, RecordError> {
    let configs = swarm_config::list_labeled(docker, KIND_LABEL, KIND_VALUE).await?;
    Ok(configs
        .into_iter()
        .filter_map(|c| {
            let stack = c.labels.get(STACK_LABEL)?.clone();
            (c.name == config_name(&stack)).then(|| (stack, StackRecord::from_labels(&c.labels)))
        })
        .collect())
}

/// One stack's record; `None` when none was written yet.
pub async fn load(docker: &Docker, stack: &str) -> Result<Option<StackRecord>, RecordError> {
    Ok(swarm_config::get(docker, &config_name(stack))
        .await?
        .map(|c| StackRecord::from_labels(&c.labels)))
}

/// Write a stack's record (create it, or update its labels). Writes nothing
/// when the stored record already says the same, so a pass that changes
/// nothing leaves the swarm untouched.
pub async fn save(docker: &Docker, stack: &str, record: &StackRecord) -> Result<bool, RecordError> {
    let name = config_name(stack);
    let labels = record.to_labels(stack);
    // A concurrent writer can only be a former lease holder finishing its
    // last pass; one retry on a fresh read settles it.
    for _ in 0..2 {
        let result = match swarm_config::get(docker, &name).await? {
            Some(c) if c.labels == labels => return Ok(false),
            Some(c) => swarm_config::update_labels(docker, &c, &labels).await,
            None => swarm_config::create(docker, &name, DATA, &labels)
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => return Ok(true),
            Err(WriteError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RecordError::Contended { name })
}

/// Remove a stack's record (a stack no longer managed, or pruned).
pub async fn remove(docker: &Docker, stack: &str) -> Result<(), RecordError> {
    Ok(swarm_config::remove(docker, &config_name(stack)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_errors_are_cut() {
        let r = StackRecord {
            commit: Some("3f2a9c1".into()),
            applied_at: Some("2026-11-30T00:00:00Z".into()),
            outcome: Some(Outcome::ApplyFailed),
            attempted: Some("4b5c6d7".into()),
            error: Some("x".repeat(1000)),
            images: BTreeMap::from([("web_app".to_string(), "app:3.0@sha256:ab".to_string())]),
            failed: Some("4b5c6d7".into()),
            history: vec![super::super::history::Entry::new(
                "3f2a9c1",
                Outcome::Applied,
                "0 to create, 1 to update, 0 to delete",
                "agent",
            )],
        };
        let labels = r.to_labels("web");
        assert_eq!(labels[STACK_LABEL], "web");
        assert_eq!(labels[OUTCOME_LABEL], "apply-failed");
        assert_eq!(labels[ERROR_LABEL].len(), MAX_ERROR_CHARS);
        let back = StackRecord::from_labels(&labels);
        assert_eq!(back.commit, r.commit);
        assert_eq!(back.outcome, r.outcome);
        assert_eq!(back.attempted, r.attempted);
        assert_eq!(back.images, r.images);
        assert_eq!(back.failed, r.failed);
        assert_eq!(back.history, r.history);
        assert!(!labels.contains_key(crate::model::NAMESPACE_LABEL));
    }

    #[test]
    fn url_credentials_never_reach_the_labels() {
        let r = StackRecord {
            error: Some("pulling https://bot:glpat-xyz@registry.example/app: denied".into()),
            ..StackRecord::default()
        };
        assert_eq!(
            r.to_labels("web")[ERROR_LABEL],
            "pulling https://***@registry.example/app: denied"
        );
    }
}
