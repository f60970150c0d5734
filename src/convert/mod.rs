//! Conversion of a loaded compose model into Swarm objects, exactly as
//! docker/cli's `cli/compose/convert` does for `docker stack deploy`.
use crate::compose::Loaded;
use crate::source::Tree;
use crate::state::DesiredStack;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConvertError {
    pub file: String,
    pub message: String,
}

/// Convert one loaded stack. Reads config/secret files through `tree`.
pub fn convert(_tree: &dyn Tree, _loaded: &Loaded) -> Result<DesiredStack, ConvertError> {
    todo!("convert")
}
