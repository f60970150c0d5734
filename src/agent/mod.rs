//! `shoal agent`: the unattended reconciler. Triggers (poll interval,
//! webhook, Docker events, file changes) feed one reconcile task; one agent
//! per swarm applies (a lease in the swarm's config store); state and the
//! lease live in the swarm, not on disk; HTTP serves health, metrics,
//! status and the webhook.
//!
//! The pipeline itself is behind [`Reconciler`]; the agent decides when to
//! run it and whether a stack's plan may be applied (drift and self-heal,
//! backoff after failures, lease).
pub mod backoff;
pub mod dashboard;
pub mod decide;
pub mod healthcheck;
pub mod history;
pub mod http;
pub mod lease;
pub mod mask;
pub mod metrics;
pub mod notify;
pub mod options;
pub mod reconcile_loop;
pub mod reconciler;
pub mod record;
pub mod repo_reconciler;
pub mod status;
pub mod trigger;
pub mod watch;
pub mod webhook;

pub use options::{init_tracing, AgentOptions, LogFormat};
pub use reconciler::{
    split_by_stack, Planned, ReconcileError, Reconciler, Snapshot, StackPlan, StackProblem,
};
pub use repo_reconciler::{Pipeline, SourceSpec};

use crate::engine::Engine;
use anyhow::Context as _;
use lease::Lease;
use reconcile_loop::{LeaseGate, ReconcileLoop};
use status::{AgentStatus, Role};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use trigger::{Reason, Trigger};

/// Prefix of `last_error` when the lease cannot be read or written.
const LEASE_ERROR: &str = "lease (docker engine): ";

/// Longest wait for the lease release and the HTTP server at shutdown.
const SHUTDOWN_STEP: Duration = Duration::from_secs(2);

/// Run the agent until SIGTERM or SIGINT: bind `opts.listen`, serve. The
/// lease, state records and event stream use `engine`'s client, the one
/// the pipeline plans and applies through.
pub async fn run<R: Reconciler>(
    opts: AgentOptions,
    reconciler: Arc<R>,
    engine: &Engine,
) -> anyhow::Result<()> {
    let docker = engine.docker.clone();
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("--listen {}: cannot bind", opts.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    serve(opts, reconciler, docker, listener, shutdown).await
}

/// Cancel `token` on SIGTERM (docker stop, swarm update) or SIGINT.
async fn stop_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the agent");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    token.cancel();
}

/// Run the agent on an already bound listener until `shutdown` is
/// cancelled; then stop taking triggers, let the running pass finish (or
/// stop it after a grace period), release the lease and return.
pub async fn serve<R: Reconciler>(
    opts: AgentOptions,
    reconciler: Arc<R>,
    docker: bollard::Docker,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let status = Arc::new(Mutex::new(AgentStatus::new(&opts.identity, opts.self_heal)));
    let trigger = Arc::new(Trigger::new());
    let gate = Arc::new(LeaseGate::new());
    let addr = listener.local_addr().ok();
    tracing::info!(
        identity = %opts.identity,
        listen = ?addr,
        interval = ?opts.interval,
        self_heal = opts.self_heal,
        "agent starting"
    );

    // Triggers stop as soon as shutdown is asked; the HTTP server keeps
    // answering until the loop is done, then drains.
    let triggers_stop = shutdown.child_token();
    let http_stop = CancellationToken::new();
    let dash = dashboard::Source::of(&reconciler);
    let mut http_task = start_http(&opts, listener, &status, &trigger, &http_stop, dash);

    let lease = Lease::new(
        docker.clone(),
        &opts.lease_name,
        &opts.identity,
        opts.lease_ttl,
    );
    let lease_task = AbortOnDrop(tokio::spawn(keep_lease(
        lease,
        gate.clone(),
        status.clone(),
        trigger.clone(),
        triggers_stop.clone(),
    )));

    let watchers = watch_triggers(&opts, &docker, &status, &trigger, &triggers_stop);

    let mut looper = ReconcileLoop::new(
        reconciler,
        status.clone(),
        trigger.clone(),
        gate.clone(),
        Some(docker),
        opts.interval,
        opts.self_heal,
        shutdown.clone(),
    );
    looper.shutdown_grace = opts.shutdown_grace;
    looper.notifier = opts.notifier.clone();
    looper.redactor = opts.redactor.clone();
    looper.run().await;

    // The loop only returns once shutdown was asked.
    triggers_stop.cancel();
    drop(watchers);
    release_lease(lease_task, &gate).await;
    http_stop.cancel();
    if tokio::time::timeout(SHUTDOWN_STEP, &mut http_task.0)
        .await
        .is_err()
    {
        tracing::warn!("HTTP server did not drain in time");
    }
    tracing::info!("agent stopped");
    Ok(())
}

/// Once the loop stopped writing: stop renewing the lease and release it,
/// each step bounded (a lease not released expires after its TTL).
async fn release_lease(mut lease_task: AbortOnDrop<Lease>, gate: &LeaseGate) {
    match tokio::time::timeout(SHUTDOWN_STEP, &mut lease_task.0).await {
        Ok(Ok(mut lease)) => {
            gate.set(None);
            match tokio::time::timeout(SHUTDOWN_STEP, lease.release()).await {
                Ok(Ok(())) => tracing::info!("lease released"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot release the lease; it expires after its TTL")
                }
                Err(_) => tracing::warn!("lease release timed out; it expires after its TTL"),
            }
        }
        _ => tracing::warn!("lease task did not stop in time; the lease expires after its TTL"),
    }
}

/// Serve `/healthz`, `/metrics`, `/status` and the webhook on `listener`
/// until `stop`; the agent's own secrets are masked wherever errors show.
fn start_http(
    opts: &AgentOptions,
    listener: TcpListener,
    status: &Arc<Mutex<AgentStatus>>,
    trigger: &Arc<Trigger>,
    stop: &CancellationToken,
    commits: dashboard::Source,
) -> AbortOnDrop<()> {
    for secret in [&opts.webhook_secret, &opts.status_token, &opts.ui_token]
        .into_iter()
        .flatten()
    {
        opts.redactor.register_bytes(secret);
    }
    let state = http::HttpState {
        status: status.clone(),
        trigger: trigger.clone(),
        webhook_secret: opts.webhook_secret.clone().map(Arc::new),
        status_token: opts.status_token.clone().map(Arc::new),
        redactor: opts.redactor.clone(),
        limits: opts.http,
    };
    let app = http::router(state.clone()).merge(dashboard::router(
        state,
        commits,
        opts.ui_token.clone().map(Arc::new),
        opts.interval,
    ));
    AbortOnDrop(tokio::spawn(http::serve(
        listener,
        app,
        opts.http,
        stop.clone(),
    )))
}

/// The triggers besides the poll interval: Docker events and, for a
/// directory source, file changes. They stop with `stop`.
fn watch_triggers(
    opts: &AgentOptions,
    docker: &bollard::Docker,
    status: &Arc<Mutex<AgentStatus>>,
    trigger: &Arc<Trigger>,
    stop: &CancellationToken,
) -> Vec<AbortOnDrop<()>> {
    let mut watchers = Vec::new();
    if opts.docker_events {
        watchers.push(AbortOnDrop(tokio::spawn(watch::docker_events(
            docker.clone(),
            status.clone(),
            trigger.clone(),
            stop.clone(),
        ))));
    }
    if let Some(dir) = opts.watch_dir.clone() {
        let (t, stop) = (trigger.clone(), stop.clone());
        watchers.push(AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = watch::file_changes(dir, t, stop).await {
                tracing::warn!(error = %e, "not watching files; the poll interval still applies");
            }
        })));
    }
    watchers
}

/// A spawned task that is aborted when `serve` is dropped (its caller
/// aborted it), so no lease renewal outlives the agent that owns it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Take or renew the lease every TTL/3 until `stop`; returns the lease so
/// the caller can release it once the loop is done writing.
async fn keep_lease(
    mut lease: Lease,
    gate: Arc<LeaseGate>,
    status: Arc<Mutex<AgentStatus>>,
    trigger: Arc<Trigger>,
    stop: CancellationToken,
) -> Lease {
    let period = lease.ttl() / 3;
    let mut was_held = false;
    loop {
        let result = tokio::select! {
            _ = stop.cancelled() => break,
            r = lease.tick() => r,
        };
        gate.set(lease.valid_until());
        let held = lease.is_held();
        {
            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
            s.lease_holder = held;
            match &result {
                Ok(view) => {
                    s.lease_holder_identity = view.holder.clone();
                    s.role = if held { Role::Leader } else { Role::Standby };
                    if s.last_error
                        .as_deref()
                        .is_some_and(|e| e.starts_with(LEASE_ERROR))
                    {
                        s.last_error = None;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read or write the lease");
                    // Shown in /status: usually the engine is unreachable.
                    s.last_error = Some(format!("{LEASE_ERROR}{e}"));
                    if !held {
                        s.role = Role::Standby;
                    }
                }
            }
        }
        if held && !was_held {
            tracing::info!(
                identity = lease.identity(),
                "lease acquired: this agent applies"
            );
            trigger.kick(Reason::LeaseAcquired);
        } else if !held && was_held {
            tracing::warn!("lease lost: standing by");
        } else if !held {
            if let Ok(view) = &result {
                tracing::debug!(holder = ?view.holder, "standby");
            }
        }
        was_held = held;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
        }
    }
    lease
}
