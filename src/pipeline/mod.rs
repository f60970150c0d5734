//! The one planning pass shared by `shoal plan`, `shoal apply` and the
//! agent: [`load`] reads a source into desired state per stack, [`plan`]
//! reads the swarm, pins images, diffs and checks the policies.
//! Saved plan files ([`saved_plan`]) record what a plan was made from.
mod load;
mod plan;
pub mod saved_plan;

pub use load::{load, stack_entries, stack_vars, RepoTree, Scope, StackVarsError, STACK_ENV_FILE};
pub use plan::{check_policies, pin_images, plan, PlanNotes, RepoPlan, Verdicts};
