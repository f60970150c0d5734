//! The values every stage shares: desired and live state, the plan
//! (`Plan`, `Change`, `FieldChange`) and what loading a repository found.
//! The floor of the crate: it imports no other module of shoal.
mod desired;
mod plan;
mod state;

pub use desired::{Desired, StackError};
pub use plan::*;
pub use state::*;
