//! One planning pass, the same for `shoal plan`, `shoal apply` and every
//! pass of the agent: read the swarm once, pin images to registry digests,
//! diff every stack, and check the policies against the real cluster.
//! Loading the repository ([`super::load`]) comes before; rendering and
//! applying come after.
use super::load::{RepoTree, Scope};
use crate::diff;
use crate::engine::{Engine, EngineError};
use crate::image::{self, Credentials, DigestCache, Lookups, ResolveMode};
use crate::model::{ClusterFacts, Desired, LiveStack, Plan, StackError};
use crate::policy::{PolicyError, PolicySet, Violation};
use crate::source::Tree;
use std::collections::BTreeMap;
use std::time::Instant;

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
    pub policies: Result<(), PolicyError>,
    /// Each loaded stack's policy verdict: its violations, or why the
    /// policies could not be evaluated for it.
    pub verdicts: Verdicts,
}

/// Policy verdicts by stack name.
pub type Verdicts = BTreeMap<String, Result<Vec<Violation>, PolicyError>>;

impl RepoPlan {
    /// All violations, and every policy error as a message (`stack X: ...`).
    pub fn violations_and_errors(&self) -> (Vec<Violation>, Vec<String>) {
        let mut violations = Vec::new();
        let mut errors = Vec::new();
        if let Err(e) = &self.policies {
            errors.push(e.to_string());
        }
        for (stack, verdict) in &self.verdicts {
            match verdict {
                Ok(v) => violations.extend(v.iter().cloned()),
                Err(e) => errors.push(format!("stack {stack}: {e}")),
            }
        }
        (violations, errors)
    }

    /// The violations by stack; a stack whose policies could not be
    /// evaluated is left out (its error is in [`Self::violations_and_errors`]).
    pub fn violations_by_stack(&self) -> BTreeMap<String, Vec<Violation>> {
        self.verdicts
            .iter()
            .filter_map(|(stack, v)| Some((stack.clone(), v.as_ref().ok()?.clone())))
            .collect()
    }
}

/// Policy verdicts of every loaded stack (see [`RepoPlan::policies`] and
/// [`RepoPlan::verdicts`]); `shoal validate` calls this with facts from
/// its flags instead of the swarm.
pub fn check_policies(
    tree: &dyn Tree,
    desired: &Desired,
    facts: &ClusterFacts,
) -> (Result<(), PolicyError>, Verdicts) {
    let tree =
        crate::source::Budget::new(tree, "the policy files", crate::source::MAX_POLICY_BYTES);
    match PolicySet::load(&tree) {
        Err(e) => (Err(e), BTreeMap::new()),
        Ok(set) => (
            Ok(()),
            desired
                .stacks
                .iter()
                .map(|s| (s.name.clone(), set.evaluate(s, facts)))
                .collect(),
        ),
    }
}

/// Plan `desired` (as [`super::load`] returned it) against the swarm.
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
    let (live, mut facts, network_ids) = tokio::try_join!(
        engine.live_stacks(),
        engine.cluster_facts(),
        engine.network_ids()
    )?;
    if let Err(e) = pin_images(engine, &mut desired, &live, resolve, digests).await {
        // Without the docker config no digest can be trusted: every stack
        // is left as it is, as for a stack that fails to load.
        for stack in std::mem::take(&mut desired.stacks) {
            desired.errors.push(StackError {
                stack: stack.name,
                message: format!("registry credentials: {e}"),
            });
        }
    }
    facts.name = scope.cluster.clone();
    let (plan, notes) = diff_stacks(&desired, &live, &network_ids, scope);
    let (policies, verdicts) = off_the_runtime(|| check_policies(tree, &desired, &facts));
    Ok(RepoPlan {
        desired,
        plan,
        notes,
        policies,
        verdicts,
    })
}

/// Run `f`, which blocks (the policy sandbox waits for its worker for up
/// to its time budget), without holding up the other tasks of a
/// multi-threaded runtime (the agent's HTTP server, its event watch); on a
/// single-threaded runtime, where that cannot be done, in place.
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Pin the images of `desired` to their registry digests as `mode`
/// asks (see [`crate::image`]): look up what is needed (answers still
/// fresh in `cache` are reused), then pin. The docker config is read
/// only when a registry is asked; `Err` when it cannot be read.
pub async fn pin_images(
    engine: &Engine,
    desired: &mut Desired,
    live: &BTreeMap<String, LiveStack>,
    mode: ResolveMode,
    cache: Option<&DigestCache>,
) -> Result<(), image::ConfigError> {
    let wanted = image::to_look_up(desired, live, mode);
    let now = Instant::now();
    let (mut lookups, ask) = match cache {
        Some(c) => c.split(wanted, now),
        None => (Lookups::new(), wanted),
    };
    let asked = if ask.is_empty() {
        Lookups::new()
    } else {
        let creds = Credentials::from_env()?;
        engine.lookup_digests(&ask, &creds).await
    };
    if let Some(c) = cache {
        c.store(&asked, now);
    }
    lookups.extend(asked);
    image::pin(desired, &lookups);
    Ok(())
}

/// Live stacks the plan may not touch or delete: stacks present on the
/// swarm but absent from the repository, when pruning is off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanNotes {
    /// On the swarm, not in the repository, kept because `--prune` is off.
    pub unmanaged: Vec<String>,
}

/// diff(desired, live) for every stack in scope: the step of [`plan`]
/// that needs no I/O. `network_ids` (name -> id, the whole swarm's) lets
/// live services, which name their networks by id, compare by name.
fn diff_stacks(
    desired: &Desired,
    live: &BTreeMap<String, LiveStack>,
    network_ids: &BTreeMap<String, String>,
    scope: &Scope,
) -> (Plan, PlanNotes) {
    let mut plan = Plan::default();
    let mut notes = PlanNotes::default();
    let opts = diff::DiffOptions {
        keep_versions: scope.keep_versions,
        ..Default::default()
    }
    .with_network_ids(network_ids);
    for stack in &desired.stacks {
        plan.changes.extend(diff::plan_stack_with(
            Some(stack),
            live.get(&stack.name),
            &opts,
        ));
    }
    let in_repo: Vec<&str> = desired.all_names().collect();
    for (name, stack) in live {
        if in_repo.contains(&name.as_str()) || !scope.includes(name) {
            continue;
        }
        if scope.prune {
            plan.changes
                .extend(diff::plan_stack_with(None, Some(stack), &opts));
        } else {
            notes.unmanaged.push(name.clone());
        }
    }
    (plan, notes)
}

#[cfg(test)]
mod tests {
    use super::off_the_runtime;
    use std::time::Duration;

    /// While one task blocks (policies evaluating), another task of the
    /// runtime still runs, even with a single worker thread.
    #[test]
    fn blocking_work_leaves_the_runtime_free() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let answered = rt.block_on(async {
            let (started_tx, started) = tokio::sync::oneshot::channel();
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let waiter = tokio::spawn(async move {
                started_tx.send(()).unwrap();
                off_the_runtime(|| rx.recv_timeout(Duration::from_secs(5)).is_ok())
            });
            started.await.unwrap();
            // Spawned while the only worker is blocked in `waiter`.
            tokio::spawn(async move { tx.send(()).unwrap() });
            waiter.await.unwrap()
        });
        assert!(answered, "the other task never ran while one was blocked");
    }

    #[tokio::test]
    async fn on_a_single_threaded_runtime_it_runs_in_place() {
        assert_eq!(off_the_runtime(|| 7), 7);
    }
}
