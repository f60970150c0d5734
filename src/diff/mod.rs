//! diff(desired, live) -> changes, field by field, ignoring what the
//! daemon fills in or reorders.
use crate::plan::Change;
use crate::state::{DesiredStack, LiveStack};

/// The changes that make `live` equal `desired` for one stack. `desired`
/// is `None` for a stack removed from the repository (delete everything it
/// owns); `live` is `None` for a stack not yet on the swarm.
pub fn plan_stack(_desired: Option<&DesiredStack>, _live: Option<&LiveStack>) -> Vec<Change> {
    todo!("diff")
}
