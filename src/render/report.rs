//! What a plan report shows besides the plan itself, the same for every
//! format (text, JSON, markdown): commit, errors, policy verdicts, stacks
//! the repository does not have.
use crate::model::Plan;
use crate::policy::Violation;
use std::collections::BTreeMap;

/// A plan and everything said about it.
pub struct Report<'a> {
    pub plan: &'a Plan,
    /// The source's commit, when it is a git commit.
    pub commit: Option<Commit<'a>>,
    /// Stacks that could not be loaded or planned: (stack, message).
    pub stack_errors: &'a [(String, String)],
    /// Policies that could not be loaded or evaluated.
    pub policy_errors: &'a [String],
    /// Every policy violation, in the order the policies reported them.
    pub violations: &'a [Violation],
    /// The same violations by stack.
    pub violations_by_stack: &'a BTreeMap<String, Vec<Violation>>,
    /// Stacks on the swarm that the repository does not have.
    pub unmanaged: &'a [String],
}

/// The commit a plan was computed from.
#[derive(Clone, Copy)]
pub struct Commit<'a> {
    pub id: &'a str,
    pub short: &'a str,
    pub summary: &'a str,
}
