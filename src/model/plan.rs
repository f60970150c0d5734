//! A plan: what must change on the swarm so it equals the repository.
use crate::model::Kind;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Noop,
}

/// One changed field, addressed by a path such as
/// `TaskTemplate.ContainerSpec.Env[FOO]` or `Mode.Replicated.Replicas`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub path: String,
    /// `null` when the field is absent on that side.
    pub before: Value,
    pub after: Value,
    /// The values must never be shown (secret-looking env, secret data).
    #[serde(skip)]
    pub sensitive: bool,
}

/// Path of the marker [`FieldChange`] that the diff puts first on an
/// update the swarm cannot make in place (a network whose spec differs:
/// networks have no update call). The applier refuses such a change and
/// tells the user how to proceed; renderers show it as a note.
pub const REPLACE_REQUIRED: &str = "(replace required)";

/// The path of a service's image in a diff.
pub const IMAGE_PATH: &str = "TaskTemplate.ContainerSpec.Image";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub action: Action,
    pub kind: Kind,
    /// Full swarm name.
    pub name: String,
    pub stack: String,
    pub diff: Vec<FieldChange>,
    /// What apply writes (create/update); not part of the JSON document.
    #[serde(skip)]
    pub desired: Option<Value>,
    /// The live object's id and version index (update/delete).
    #[serde(skip)]
    pub live_id: Option<String>,
    #[serde(skip)]
    pub live_version: Option<u64>,
}

impl Change {
    /// An update the swarm cannot do in place (see [`REPLACE_REQUIRED`]).
    pub fn requires_replace(&self) -> bool {
        self.action == Action::Update && self.diff.iter().any(|f| f.path == REPLACE_REQUIRED)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Delete => s.delete += 1,
                Action::Noop => {}
            }
        }
        s
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Noop)
    }
}
