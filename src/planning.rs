//! One planning pass, the same for `shoal plan`, `shoal apply` and every
//! pass of the agent: read the swarm once, pin images to registry digests,
//! diff every stack, and check the policies against the real cluster.
//! Loading the repository (`reconcile::load`) comes before; rendering and
//! applying come after.
use crate::engine::{Engine, EngineError};
use crate::images::{DigestCache, ResolveMode};
use crate::plan::Plan;
use crate::policy::{PolicySet, Violation};
use crate::reconcile::{self, Desired, PlanNotes, RepoTree, Scope, StackError};
use crate::source::Tree;
use crate::state::ClusterFacts;
use std::collections::BTreeMap;

/// What a pass found.
#[derive(Debug)]
pub struct RepoPlan {
    /// The loaded stacks, with images pinned; stacks that failed to load,
    /// or whose registry credentials were refused, are in `errors`.
    pub desired: Desired,
    pub plan: Plan,
    pub notes: PlanNotes,
    /// `Err` when the policies themselves do not load (that blocks every
    /// stack: a broken guard rail never means no guard rails).
    pub policies: Result<(), String>,
    /// Each loaded stack's policy verdict: its violations, or why the
    /// policies could not be evaluated for it.
    pub verdicts: Verdicts,
}

/// Policy verdicts by stack name.
pub type Verdicts = BTreeMap<String, Result<Vec<Violation>, String>>;

impl RepoPlan {
    /// All violations, and every policy error as a message.
    pub fn violations_and_errors(&self) -> (Vec<Violation>, Vec<String>) {
        flatten_verdicts(&self.policies, &self.verdicts)
    }
}

/// Policy verdicts of every loaded stack (see [`RepoPlan::policies`] and
/// [`RepoPlan::verdicts`]); `shoal validate` calls this with facts from
/// its flags instead of the swarm.
pub fn check_policies(
    tree: &dyn Tree,
    desired: &Desired,
    facts: &ClusterFacts,
) -> (Result<(), String>, Verdicts) {
    let tree =
        crate::source::Budget::new(tree, "the policy files", crate::source::MAX_POLICY_BYTES);
    match PolicySet::load(&tree) {
        Err(e) => (Err(e.to_string()), BTreeMap::new()),
        Ok(set) => (
            Ok(()),
            desired
                .stacks
                .iter()
                .map(|s| {
                    let verdict = set.evaluate(s, facts).map_err(|e| e.to_string());
                    (s.name.clone(), verdict)
                })
                .collect(),
        ),
    }
}

/// All violations, and every policy error as a message (`stack X: ...`).
pub fn flatten_verdicts(
    policies: &Result<(), String>,
    verdicts: &Verdicts,
) -> (Vec<Violation>, Vec<String>) {
    let mut violations = Vec::new();
    let mut errors = Vec::new();
    if let Err(e) = policies {
        errors.push(e.clone());
    }
    for (stack, verdict) in verdicts {
        match verdict {
            Ok(v) => violations.extend(v.iter().cloned()),
            Err(e) => errors.push(format!("stack {stack}: {e}")),
        }
    }
    (violations, errors)
}

/// Plan `desired` (as [`reconcile::load`] returned it) against the swarm.
/// Fails only when the swarm cannot be read; everything about one stack is
/// reported on that stack.
pub async fn plan(
    tree: &RepoTree,
    mut desired: Desired,
    engine: &Engine,
    scope: &Scope,
    resolve: ResolveMode,
    digests: Option<&DigestCache>,
) -> Result<RepoPlan, EngineError> {
    let (live, facts, network_ids) = tokio::try_join!(
        engine.live_stacks(),
        engine.cluster_facts(),
        engine.network_ids()
    )?;
    if let Err(e) = engine
        .pin_images(&mut desired, &live, resolve, digests)
        .await
    {
        // Without the docker config no digest can be trusted: every stack
        // is left as it is, as for a stack that fails to load.
        for stack in std::mem::take(&mut desired.stacks) {
            desired.errors.push(StackError {
                stack: stack.name,
                message: format!("registry credentials: {e}"),
            });
        }
    }
    let network_names = network_ids.into_iter().map(|(n, id)| (id, n)).collect();
    let (plan, notes) = reconcile::plan(&desired, &live, &network_names, scope);
    let (policies, verdicts) = check_policies(tree, &desired, &facts);
    Ok(RepoPlan {
        desired,
        plan,
        notes,
        policies,
        verdicts,
    })
}
