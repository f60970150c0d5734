//! The real [`Reconciler`] behind `shoal agent`: the same source -> load ->
//! convert -> diff -> policy path as `shoal plan`, and the same applier as
//! `shoal apply`, one stack at a time.
use crate::agent::{
    split_by_stack, Planned, ReconcileError, Reconciler, Snapshot, StackPlan, StackProblem,
};
use crate::apply::{self, ApplyOptions};
use crate::compose::Vars;
use crate::engine::Engine;
use crate::image::Credentials;
use crate::image::{DigestCache, ResolveMode};
use crate::model::Plan;
use crate::pipeline::{self, RepoPlan, RepoTree, Scope};
use crate::policy::Violation;
use crate::render;
use crate::render::violations_text;
use crate::secrets::{DecryptingTree, Redactor};
use crate::source::git::GitRepo;
use crate::source::{DirTree, Tree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the agent reads stacks from.
pub enum SourceSpec {
    /// A local directory: snapshots are content digests of `stacks/` and `policies/`.
    Dir(PathBuf),
    /// A git remote and the ref to follow (`None`: the remote's HEAD).
    Git {
        repo: Arc<GitRepo>,
        git_ref: Option<String>,
    },
}

/// The pipeline, as the agent drives it.
pub struct Pipeline {
    pub source: SourceSpec,
    pub scope: Scope,
    pub engine: Engine,
    pub apply: ApplyOptions,
    /// When each pass asks the registry for image digests.
    pub resolve_image: ResolveMode,
    /// Registry digests reused between passes (`--resolve-image-interval`).
    pub digests: DigestCache,
    /// Send registry credentials (read from the docker config on every
    /// apply, so a new `docker login` needs no restart) with services.
    pub with_registry_auth: bool,
    /// Every value decrypted in any pass is registered here; the agent's
    /// log writer redacts through it.
    pub redactor: Redactor,
    /// The process variables stacks may read (`--env-allow`; none by
    /// default for the agent), resolved once at start.
    pub env: Vars,
    /// Warnings logged by the last pass (see `log_new_warnings`).
    pub warned: std::sync::Mutex<BTreeSet<String>>,
    /// The write order (`depends_on`, `x-shoal.depends_on`) and the stack
    /// needs of the last plan, for its applies.
    pub order: std::sync::Mutex<(apply::Order, BTreeMap<String, Vec<String>>)>,
}

impl Pipeline {
    /// Log the loader's and the image resolver's warnings of a pass, each
    /// once while it lasts (an unreachable registry warns on every pass).
    fn log_new_warnings(&self, desired: &crate::model::Desired) {
        let now: BTreeSet<String> = desired
            .stacks
            .iter()
            .flat_map(|s| {
                s.warnings
                    .iter()
                    .map(move |w| format!("stack {}: {w}", s.name))
            })
            .collect();
        let mut seen = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        for w in now.difference(&seen) {
            tracing::warn!("{}", self.redactor.redact(w));
        }
        *seen = now;
    }

    /// A fresh plaintext view of the snapshot. Keys are read per pass, so a
    /// rotated age key is picked up without a restart.
    async fn tree(&self, snapshot: &Snapshot) -> Result<(RepoTree, Redactor), String> {
        let redactor = self.redactor.clone();
        let inner: Box<dyn Tree> = match &self.source {
            SourceSpec::Dir(path) => Box::new(DirTree::new(path.clone())),
            SourceSpec::Git { repo, git_ref } => {
                let repo = repo.clone();
                let git_ref = git_ref.clone();
                let id = snapshot.id.clone();
                let tree = tokio::task::spawn_blocking(move || {
                    // The commit is in the cache: resolving its id needs no network.
                    let commit = repo
                        .resolve(Some(&id))
                        .or_else(|_| repo.resolve(git_ref.as_deref()))?;
                    repo.tree(&commit)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
                Box::new(tree)
            }
        };
        Ok((DecryptingTree::from_env(inner, redactor.clone()), redactor))
    }

    /// The current revision of the source.
    async fn resolve(&self) -> Result<Snapshot, String> {
        match &self.source {
            SourceSpec::Dir(path) => {
                let path = path.clone();
                let id = tokio::task::spawn_blocking(move || crate::source::dir_digest(&path))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                Ok(Snapshot { id, subject: None })
            }
            SourceSpec::Git { repo, git_ref } => {
                let repo = repo.clone();
                let git_ref = git_ref.clone();
                let commit = tokio::task::spawn_blocking(move || repo.resolve(git_ref.as_deref()))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                tracing::debug!(commit = %commit.short, summary = %commit.summary, "source resolved");
                Ok(Snapshot {
                    id: commit.id,
                    subject: Some(commit.summary),
                })
            }
        }
    }
}

impl Reconciler for Pipeline {
    /// Resolve the source, then make sure the repository as a whole reads
    /// (its `stacks/` folders can be listed): a repository-wide problem is
    /// a source error, reported without touching any stack.
    async fn snapshot(&self) -> Result<Snapshot, ReconcileError> {
        let snapshot = self.resolve().await.map_err(ReconcileError::Source)?;
        let (tree, redactor) = self.tree(&snapshot).await.map_err(ReconcileError::Source)?;
        pipeline::stack_entries(&tree, &self.scope)
            .map_err(|e| ReconcileError::Source(redactor.redact(&e.to_string())))?;
        Ok(snapshot)
    }

    async fn plan(&self, snapshot: &Snapshot) -> Result<Vec<StackPlan>, ReconcileError> {
        // `snapshot` checked that the repository reads; failing now means
        // it changed under us: plan nothing, the next pass retries.
        let (tree, redactor) = self
            .tree(snapshot)
            .await
            .map_err(|e| ReconcileError::Source(format!("cannot read the snapshot: {e}")))?;
        let desired = pipeline::load(&tree, &self.scope, &self.env).map_err(|e| {
            ReconcileError::Source(format!(
                "cannot read the repository: {}",
                redactor.redact(&e.to_string())
            ))
        })?;
        let names: Vec<String> = desired.all_names().map(str::to_string).collect();
        let mut pass = match pipeline::plan(
            &tree,
            desired,
            &self.engine,
            &self.scope,
            self.resolve_image,
            Some(&self.digests),
        )
        .await
        {
            Ok(p) => p,
            // Nothing can be planned without the live state: report it on
            // every stack, change nothing.
            Err(e) => return Ok(on_every_stack(names, &format!("reading the swarm: {e}"))),
        };
        self.log_new_warnings(&pass.desired);
        redactor.mark_sensitive(&mut pass.plan);
        *self.order.lock().unwrap_or_else(|p| p.into_inner()) = (
            apply::Order::from_desired(&pass.desired),
            pass.desired.needs.clone(),
        );
        Ok(stack_plans(&pass, &redactor))
    }

    fn describe(&self, id: &str) -> Option<crate::agent::reconciler::CommitMeta> {
        let SourceSpec::Git { repo, .. } = &self.source else {
            return None;
        };
        let (info, author) = repo.cached_commit(id)?;
        Some(crate::agent::reconciler::CommitMeta {
            subject: info.summary,
            author,
            time: std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(info.time).unwrap_or(0)),
        })
    }

    fn source_url(&self) -> Option<String> {
        match &self.source {
            SourceSpec::Git { repo, .. } => Some(repo.url().to_string()),
            SourceSpec::Dir(_) => None,
        }
    }

    async fn apply(&self, stack: &str, plan: &Plan) -> Result<(), ReconcileError> {
        let failed = |message: String| ReconcileError::Apply {
            stack: stack.to_string(),
            message,
        };
        let stack_name = stack.to_string();
        let progress = move |line: &str| tracing::info!(stack = %stack_name, "{line}");
        let mut opts = self.apply.clone();
        if self.with_registry_auth {
            opts.registry_auth = Some(Credentials::from_env().map_err(|e| failed(e.to_string()))?);
        }
        let order = self
            .order
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone();
        let report = apply::apply_ordered(&self.engine, plan, &order, &opts, &progress)
            .await
            .map_err(|e| {
                let message = e.to_string();
                if e.rolled_back() {
                    ReconcileError::RolledBack {
                        stack: stack.to_string(),
                        message,
                    }
                } else {
                    failed(message)
                }
            })?;
        if !report.not_converged.is_empty() {
            return Err(failed(format!(
                "did not converge: {}",
                report.not_converged.join(", ")
            )));
        }
        Ok(())
    }

    fn needs(&self) -> BTreeMap<String, Vec<String>> {
        self.order
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }
}

/// The same load problem for every stack of `names`.
fn on_every_stack(names: Vec<String>, problem: &str) -> Vec<StackPlan> {
    names
        .into_iter()
        .map(|stack| StackPlan {
            stack,
            result: Err(StackProblem::Load(problem.to_string())),
        })
        .collect()
}

/// Every stack of a pass as the agent takes it: first the stacks that
/// failed to load, then every loaded stack (in sync or not) and pruned
/// one, a stack after the stacks it needs, each allowed or denied by its
/// policy verdict. Messages go through `redactor`.
fn stack_plans(pass: &RepoPlan, redactor: &Redactor) -> Vec<StackPlan> {
    let mut out: Vec<StackPlan> = pass
        .desired
        .errors
        .iter()
        .map(|err| StackPlan {
            stack: err.stack.clone(),
            result: Err(StackProblem::Load(redactor.redact(&err.message))),
        })
        .collect();
    let loaded = pass.desired.stacks.iter().map(|s| s.name.as_str());
    let mut split = split_by_stack(&pass.plan, loaded);
    let names: Vec<String> = split.keys().cloned().collect();
    for name in crate::compose::depends::stack_order(&names, &pass.desired.needs) {
        let Some(plan) = split.remove(&name) else {
            continue;
        };
        let result = allowed(plan, verdict(pass, &name), redactor);
        out.push(StackPlan {
            stack: name,
            result,
        });
    }
    out
}

/// A stack's policy verdict in `pass`: its violations, or why the
/// policies could not judge it.
fn verdict(pass: &RepoPlan, stack: &str) -> Result<Vec<Violation>, String> {
    match (&pass.policies, pass.verdicts.get(stack)) {
        (Err(e), _) => Err(format!("policies do not load: {e}")),
        (Ok(()), Some(Err(e))) => Err(format!("policy evaluation failed: {e}")),
        (Ok(()), Some(Ok(v))) => Ok(v.clone()),
        (Ok(()), None) => Ok(Vec::new()),
    }
}

/// `plan`, allowed with its text (the plan and any warnings) when
/// `verdict` has no blocking violation; denied otherwise.
fn allowed(
    plan: Plan,
    verdict: Result<Vec<Violation>, String>,
    redactor: &Redactor,
) -> Result<Planned, StackProblem> {
    let violations = verdict.map_err(|e| StackProblem::PolicyDenied(redactor.redact(&e)))?;
    if violations.iter().any(|v| v.blocks()) {
        return Err(StackProblem::PolicyDenied(
            redactor.redact(&violations_text(&violations, &[], false)),
        ));
    }
    let mut text = render::text(&plan, &render::TextOptions { color: false });
    let checks = violations_text(&violations, &[], false);
    if !checks.is_empty() {
        text.push('\n');
        text.push_str(&checks);
    }
    Ok(Planned {
        plan,
        text: redactor.redact(&text),
    })
}
