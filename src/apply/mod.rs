//! Applying a plan through the Engine API, then waiting for convergence.
//!
//! Owns the order of writes (what must exist before what uses it), the
//! retry on concurrent changes, and the convergence verdict. The plan is
//! trusted for *what* to write; apply decides only *how* and *when*.
mod converge;
pub mod rollback;
pub mod waves;

use crate::diff::{self, DiffOptions};
use crate::engine::{resolve_references, Engine, EngineError, ReferenceIds};
use crate::image::image_of;
use crate::image::{Credentials, RegistryHeaders};
use crate::model::Kind;
use crate::model::{Action, Change, Plan};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;
pub use waves::Order;

/// How a plan is applied.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Wait for created/updated services to converge.
    pub wait: bool,
    /// Longest wait for convergence (all services together), for each
    /// wave's dependencies (`depends_on`), and for objects still in use to
    /// be released on delete.
    pub timeout: Duration,
    /// Service writes in flight at once.
    pub parallelism: usize,
    /// Send each service's registry credentials from this docker config
    /// with its create/update, so the nodes can pull private images
    /// (`--with-registry-auth`).
    pub registry_auth: Option<Credentials>,
    /// On a failed rollout, restore the services this run changed to their
    /// specs before it and remove what it created (`--rollback-on-failure`).
    pub rollback_on_failure: bool,
    /// Progress goes to a terminal that redraws one line: repeat the
    /// `waiting for ...` line every second instead of every 15 s.
    pub live_progress: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            wait: true,
            timeout: Duration::from_secs(300),
            parallelism: 8,
            registry_auth: None,
            rollback_on_failure: false,
            live_progress: false,
        }
    }
}

/// One object apply wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    pub kind: Kind,
    pub name: String,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// What apply did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    /// API writes made (creates, updates, removes, retries included).
    pub writes: usize,
    pub created: Vec<Written>,
    pub updated: Vec<Written>,
    pub deleted: Vec<Written>,
    /// Services that did not converge (with `wait`).
    pub not_converged: Vec<String>,
}

/// Why apply stopped. Variants after a write carry the report so far.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("swarm networks cannot be updated in place, and the plan changes {}: remove the stack's services that use it and apply again (the network is then recreated), or give the network a new name in the stack file", names.join(", "))]
    NetworkUpdate { names: Vec<String> },
    #[error("{kind} {name}: the plan lacks {missing} for its {action:?}")]
    IncompletePlan {
        kind: Kind,
        name: String,
        action: Action,
        missing: &'static str,
    },
    #[error("{}", failures.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Write {
        failures: Vec<EngineError>,
        report: Box<ApplyReport>,
    },
    #[error("{} service(s) did not converge: {}", reasons.len(), reasons.iter().map(|(n, r)| format!("{n} ({r})")).collect::<Vec<_>>().join(", "))]
    NotConverged {
        /// (service, why) in plan order.
        reasons: Vec<(String, String)>,
        report: Box<ApplyReport>,
    },
    /// A dependency did not meet its condition: the services waiting for
    /// it (and later waves) were not written.
    #[error("{why}\nnot started (they wait for {dependency}): {}", not_started.join(", "))]
    Gate {
        dependency: String,
        why: String,
        not_started: Vec<String>,
        report: Box<ApplyReport>,
    },
    /// The rollout failed and was rolled back (`--rollback-on-failure`).
    #[error("{cause}\n{rollback}")]
    RolledBack {
        cause: Box<ApplyError>,
        rollback: Box<rollback::RollbackReport>,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ApplyError {
    /// What was written before the failure, if anything was.
    pub fn report(&self) -> Option<&ApplyReport> {
        match self {
            ApplyError::Write { report, .. }
            | ApplyError::NotConverged { report, .. }
            | ApplyError::Gate { report, .. } => Some(report),
            ApplyError::RolledBack { cause, .. } => cause.report(),
            _ => None,
        }
    }

    /// Whether the failed run was rolled back.
    pub fn rolled_back(&self) -> bool {
        matches!(self, ApplyError::RolledBack { .. })
    }
}

/// Apply `plan` to the swarm behind `engine`, in dependency order:
/// networks, configs, secrets created; services created/updated (in
/// parallel, `opts.parallelism` at a time); then, once those converged
/// (with `opts.wait`), services, configs/secrets and networks deleted.
/// `Noop` changes write nothing. `progress` receives one line per event
/// (`steedos_web: 2/4 running`).
///
/// Deletes wait for convergence so a failed update can still roll back to
/// configs, secrets and networks the old spec uses; when a service does not
/// converge nothing is deleted and the next apply finishes the job.
pub async fn apply(
    engine: &Engine,
    plan: &Plan,
    opts: &ApplyOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ApplyReport, ApplyError> {
    apply_ordered(engine, plan, &Order::none(), opts, progress).await
}

/// [`apply`] with services written in waves by `order` (see [`waves`]),
/// and with `opts.rollback_on_failure` a failed rollout rolled back (see
/// [`rollback`]).
pub async fn apply_ordered(
    engine: &Engine,
    plan: &Plan,
    order: &Order,
    opts: &ApplyOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ApplyReport, ApplyError> {
    let undo = rollback::Undo::new(opts.rollback_on_failure);
    match run(engine, plan, order, opts, &undo, progress).await {
        Err(cause) if opts.rollback_on_failure && cause.report().is_some() => {
            let written = cause.report().cloned().unwrap_or_default();
            let report = rollback::roll_back(engine, &undo, &written, order, opts, progress).await;
            Err(ApplyError::RolledBack {
                cause: Box::new(cause),
                rollback: Box::new(report),
            })
        }
        other => other,
    }
}

async fn run(
    engine: &Engine,
    plan: &Plan,
    dependencies: &Order,
    opts: &ApplyOptions,
    undo: &rollback::Undo,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ApplyReport, ApplyError> {
    validate(plan)?;
    let order = WriteOrder::of(plan);
    let mut report = ApplyReport::default();
    // 1. What services use must exist first.
    for change in order.support {
        match write_support(engine, change).await {
            Ok(()) => record(&mut report, change, 1, progress),
            Err(e) => return Err(write_failed(vec![e], report)),
        }
    }
    // 2. Services, in waves (one wave without dependencies), each wave in
    // parallel once the dependencies of its services are met; 3. their
    // convergence.
    let waves = waves::waves(&order.services, dependencies);
    let mut written = Vec::new();
    let mut written_names = BTreeSet::new();
    for (i, wave) in waves.iter().enumerate() {
        let gates = waves::gates_of(wave, dependencies);
        let live = opts.live_progress;
        if let Err(f) =
            waves::wait_gates(engine, &gates, &written_names, opts.timeout, live, progress).await
        {
            return Err(ApplyError::Gate {
                dependency: f.dependency,
                why: f.why,
                not_started: waves::not_started(&waves[i..]),
                report: Box::new(report),
            });
        }
        let wrote = write_services(engine, wave, opts, undo, progress, &mut report).await?;
        written_names.extend(wrote.iter().map(|(name, _)| name.clone()));
        written.extend(wrote);
    }
    if opts.wait && !written.is_empty() {
        converge_all(engine, &written, opts.timeout, progress, &mut report).await?;
    }
    // 4. Deletes, users before what they use.
    let release_deadline = Instant::now() + opts.timeout.min(Duration::from_secs(120));
    for change in order.deletes {
        match delete(engine, change, release_deadline).await {
            Ok(true) => record(&mut report, change, 1, progress),
            Ok(false) => progress(&format!("{} {}: already gone", change.kind, change.name)),
            Err(e) => return Err(write_failed(vec![e], report)),
        }
    }
    Ok(report)
}

/// The writes of a plan in the order they must happen: what services use
/// (networks, configs, secrets) first, then the services, then deletes,
/// users before what they use.
struct WriteOrder<'a> {
    support: Vec<&'a Change>,
    services: Vec<&'a Change>,
    deletes: Vec<&'a Change>,
}

impl<'a> WriteOrder<'a> {
    fn of(plan: &'a Plan) -> Self {
        let of = |kinds: &[Kind], actions: &[Action]| -> Vec<&'a Change> {
            kinds
                .iter()
                .flat_map(|&kind| {
                    plan.changes
                        .iter()
                        .filter(move |c| c.kind == kind && actions.contains(&c.action))
                })
                .collect()
        };
        let upserts = [Action::Create, Action::Update];
        WriteOrder {
            support: of(&[Kind::Network, Kind::Config, Kind::Secret], &upserts),
            services: of(&[Kind::Service], &upserts),
            deletes: of(
                &[Kind::Service, Kind::Config, Kind::Secret, Kind::Network],
                &[Action::Delete],
            ),
        }
    }
}

/// Create or update `services`, `opts.parallelism` at a time; the
/// services written, as (name, id), for the convergence wait.
async fn write_services(
    engine: &Engine,
    services: &[&Change],
    opts: &ApplyOptions,
    undo: &rollback::Undo,
    progress: &(dyn Fn(&str) + Sync),
    report: &mut ApplyReport,
) -> Result<Vec<(String, String)>, ApplyError> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let ids = engine.reference_ids().await?;
    // Boxed as `dyn Future + Send`: an unboxed closure-made future here
    // trips rustc's higher-ranked lifetime inference when the caller
    // needs the whole apply future to be Send (the agent does).
    type Pending<'a> = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = (&'a Change, Result<ServiceWrite, EngineError>)>
                + Send
                + 'a,
        >,
    >;
    let ids = &ids;
    // Credentials once per registry, not once per service.
    let headers = match &opts.registry_auth {
        Some(creds) => Some(
            RegistryHeaders::read(services.iter().filter_map(|c| image_of(desired(c))), creds)
                .await,
        ),
        None => None,
    };
    let registry = headers.as_ref();
    let pending: Vec<Pending<'_>> = services
        .iter()
        .map(|&c| -> Pending<'_> {
            Box::pin(async move {
                (
                    c,
                    write_service(engine, c, ids, registry, undo, progress).await,
                )
            })
        })
        .collect();
    let outcomes: Vec<_> = stream::iter(pending)
        .buffered(opts.parallelism.max(1))
        .collect()
        .await;
    let mut written = Vec::new();
    let mut failures = Vec::new();
    for (change, outcome) in outcomes {
        match outcome {
            Ok(ServiceWrite { writes, id }) => {
                report.writes += writes;
                if writes > 0 {
                    record(report, change, 0, progress);
                }
                written.push((change.name.clone(), id));
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return Err(write_failed(failures, std::mem::take(report)));
    }
    Ok(written)
}

/// Wait until every written service converged, or `timeout` passed.
async fn converge_all(
    engine: &Engine,
    written: &[(String, String)],
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
    report: &mut ApplyReport,
) -> Result<(), ApplyError> {
    let deadline = Instant::now() + timeout;
    let waits = written
        .iter()
        .map(|(name, id)| converge::wait_service(engine, name, id, deadline, progress));
    let results = futures_util::future::join_all(waits).await;
    let reasons: Vec<(String, String)> = written
        .iter()
        .zip(results)
        .filter_map(|((name, _), r)| r.err().map(|why| (name.clone(), why)))
        .collect();
    if reasons.is_empty() {
        return Ok(());
    }
    report.not_converged = reasons.iter().map(|(n, _)| n.clone()).collect();
    Err(ApplyError::NotConverged {
        reasons,
        report: Box::new(std::mem::take(report)),
    })
}

/// Refuse plans apply cannot carry out, before any write.
fn validate(plan: &Plan) -> Result<(), ApplyError> {
    let networks: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Network && c.action == Action::Update)
        .map(|c| c.name.clone())
        .collect();
    if !networks.is_empty() {
        return Err(ApplyError::NetworkUpdate { names: networks });
    }
    for c in &plan.changes {
        let missing = match c.action {
            Action::Create if c.desired.is_none() => Some("a desired spec"),
            Action::Update if c.desired.is_none() => Some("a desired spec"),
            Action::Update if c.live_id.is_none() || c.live_version.is_none() => {
                Some("the live id and version")
            }
            Action::Delete if c.live_id.is_none() => Some("the live id"),
            _ => None,
        };
        if let Some(missing) = missing {
            return Err(ApplyError::IncompletePlan {
                kind: c.kind,
                name: c.name.clone(),
                action: c.action,
                missing,
            });
        }
    }
    Ok(())
}

fn record(
    report: &mut ApplyReport,
    change: &Change,
    writes: usize,
    progress: &(dyn Fn(&str) + Sync),
) {
    report.writes += writes;
    let w = Written {
        kind: change.kind,
        name: change.name.clone(),
    };
    let verb = match change.action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Delete => "deleted",
        Action::Noop => return,
    };
    progress(&format!("{w}: {verb}"));
    match change.action {
        Action::Create => report.created.push(w),
        Action::Update => report.updated.push(w),
        Action::Delete => report.deleted.push(w),
        Action::Noop => {}
    }
}

fn write_failed(failures: Vec<EngineError>, report: ApplyReport) -> ApplyError {
    ApplyError::Write {
        failures,
        report: Box::new(report),
    }
}

/// Create a network, config or secret, or update a config's/secret's
/// labels (their data is immutable).
async fn write_support(engine: &Engine, change: &Change) -> Result<(), EngineError> {
    let spec = desired(change);
    match change.action {
        Action::Create => engine.create(change.kind, spec).await.map(|_| ()),
        Action::Update => {
            let (id, version) = live(change);
            match engine.update(change.kind, id, version, spec).await {
                Err(EngineError::Api { what, status, message })
                    if message.contains("only updates to Labels are allowed") =>
                {
                    Err(EngineError::Api {
                        what,
                        status,
                        message: format!(
                            "{message}; {kind}s are immutable: give the {kind} a new name (e.g. a version suffix) to change its content",
                            kind = change.kind
                        ),
                    })
                }
                other => other.map(|_| ()),
            }
        }
        Action::Delete | Action::Noop => Ok(()),
    }
}

struct ServiceWrite {
    writes: usize,
    id: String,
}

/// Most attempts at a service update that keeps meeting concurrent changes.
const UPDATE_ATTEMPTS: usize = 3;

/// Create or update one service. On "update out of sequence" re-read the
/// service, re-diff it, and retry with the new version only if it still
/// differs from the desired spec.
async fn write_service(
    engine: &Engine,
    change: &Change,
    ids: &ReferenceIds,
    registry: Option<&RegistryHeaders>,
    undo: &rollback::Undo,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ServiceWrite, EngineError> {
    let mut spec = desired(change).clone();
    resolve_references(&mut spec, ids, &change.name)?;
    // The X-Registry-Auth to send, when --with-registry-auth asked for it
    // and the docker config has credentials for the image's registry.
    let auth = match (registry, image_of(&spec)) {
        (Some(headers), Some(image)) => {
            headers
                .for_image(image)
                .map_err(|e| EngineError::RegistryAuth {
                    service: change.name.clone(),
                    error: e.clone(),
                })?
        }
        _ => None,
    };
    if change.action == Action::Create {
        let id = engine.create_with_auth(Kind::Service, &spec, auth).await?;
        undo.created(&change.name, &id);
        return Ok(ServiceWrite { writes: 1, id });
    }
    let (id, mut version) = live(change);
    if undo.enabled() {
        // The exact spec before this run, to restore on a failed rollout
        // (Swarm's PreviousSpec is one step back, and moves on its own
        // rollback).
        let before = engine.inspect_service(id).await?;
        undo.before(&change.name, id, &before["Spec"]);
    }
    for _ in 0..UPDATE_ATTEMPTS {
        match engine
            .update_with_auth(Kind::Service, id, version, &spec, auth)
            .await
        {
            Ok(warnings) => {
                for w in warnings {
                    progress(&format!("{}: warning: {w}", change.name));
                }
                return Ok(ServiceWrite {
                    writes: 1,
                    id: id.to_string(),
                });
            }
            Err(EngineError::OutOfSequence { .. }) => {
                let service = engine.inspect_service(id).await?;
                undo.before(&change.name, id, &service["Spec"]);
                version = service["Version"]["Index"].as_u64().unwrap_or(version);
                let networks = engine.network_ids().await?;
                if still_matches(change, &service["Spec"], &networks) {
                    progress(&format!(
                        "{}: changed on the swarm meanwhile and now matches the desired spec; not written",
                        change.name
                    ));
                    return Ok(ServiceWrite {
                        writes: 0,
                        id: id.to_string(),
                    });
                }
                progress(&format!(
                    "{}: changed on the swarm meanwhile and still differs; retrying at version {version}",
                    change.name
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Err(EngineError::OutOfSequence {
        what: format!(
            "update service {} (changed concurrently {UPDATE_ATTEMPTS} times)",
            change.name
        ),
    })
}

/// Whether a service re-read after a concurrent change already is the
/// desired one, by the same diff the plan made (`networks`: name -> id).
fn still_matches(change: &Change, live_spec: &Value, networks: &BTreeMap<String, String>) -> bool {
    let opts = DiffOptions::default().with_network_ids(networks);
    diff::diff_spec_with(Kind::Service, desired(change), live_spec, &opts.context()).is_empty()
}

/// Remove one object, waiting (until `deadline`) while it is still in use
/// (a network whose removed service's tasks are still shutting down).
/// `Ok(false)` when it was already gone.
async fn delete(engine: &Engine, change: &Change, deadline: Instant) -> Result<bool, EngineError> {
    let id = change.live_id.as_deref().unwrap_or_default();
    loop {
        match engine.remove(change.kind, id, &change.name).await {
            Ok(()) => return Ok(true),
            Err(EngineError::NotFound { .. }) => return Ok(false),
            Err(EngineError::InUse { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The desired spec; `validate` made sure creates and updates have one.
fn desired(change: &Change) -> &Value {
    static NULL: Value = Value::Null;
    change.desired.as_ref().unwrap_or(&NULL)
}

/// Live id and version; `validate` made sure updates have both.
fn live(change: &Change) -> (&str, u64) {
    (
        change.live_id.as_deref().unwrap_or_default(),
        change.live_version.unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(kind: Kind, action: Action, name: &str) -> Change {
        Change {
            action,
            kind,
            name: name.into(),
            stack: "s".into(),
            diff: vec![],
            desired: Some(json!({"Name": name})),
            live_id: Some("id".into()),
            live_version: Some(1),
        }
    }

    #[test]
    fn network_updates_are_refused_with_guidance() {
        let plan = Plan {
            changes: vec![change(Kind::Network, Action::Update, "s_net")],
        };
        let msg = validate(&plan).unwrap_err().to_string();
        assert!(msg.contains("s_net") && msg.contains("new name"), "{msg}");
    }

    #[test]
    fn updates_without_a_version_are_refused() {
        let mut c = change(Kind::Service, Action::Update, "s_web");
        c.live_version = None;
        let err = validate(&Plan { changes: vec![c] }).unwrap_err();
        assert!(matches!(err, ApplyError::IncompletePlan { .. }), "{err}");
    }

    #[test]
    fn a_concurrent_change_to_the_desired_spec_is_a_match() {
        let mut c = change(Kind::Service, Action::Update, "s_web");
        c.desired = Some(json!({"Name": "s_web", "Labels": {}, "TaskTemplate": {
            "ContainerSpec": {"Image": "busybox:1.36", "Env": ["A=1"]},
            "Networks": [{"Target": "s_net"}]}}));
        let live = json!({"Name": "s_web", "TaskTemplate": {
            "ContainerSpec": {"Image": "busybox:1.36", "Env": ["A=1"], "Isolation": "default"},
            "Networks": [{"Target": "id1"}],
            "ForceUpdate": 0}, "Mode": {"Replicated": {"Replicas": 1}}});
        let networks = BTreeMap::from([("s_net".to_string(), "id1".to_string())]);
        assert!(still_matches(&c, &live, &networks));
        let mut other = live.clone();
        other["TaskTemplate"]["ContainerSpec"]["Env"] = json!(["A=2"]);
        assert!(!still_matches(&c, &other, &networks));
    }
}
