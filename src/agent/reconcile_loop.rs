//! The single reconcile task: waits for a trigger, the poll interval or a
//! due retry, then runs one pass (snapshot -> plan every stack -> decide
//! per stack -> apply). Passes never overlap; kicks during a pass cause
//! exactly one more.
use super::backoff::Backoff;
use super::decide::{decide, Decision};
use super::history;
use super::notify::{self, CommitState, Event, EventKind, Notifier, NotifyState, Revision};
use super::reconciler::{Planned, ReconcileError, Reconciler, Snapshot, StackPlan};
use super::record::{self, StackRecord};
use super::status::{AgentStatus, Outcome, Role, SnapshotStatus, StackStatus};
use super::trigger::{Reason, Trigger};
use crate::diff::synced_images;
use crate::model::{Plan, Summary};
use bollard::Docker;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Whether this agent may write (it holds the applier lease). Shared by
/// the lease task (writer) and the loop (reader).
#[derive(Debug, Default)]
pub struct LeaseGate {
    until: Mutex<Option<Instant>>,
    always: bool,
}

impl LeaseGate {
    /// A gate driven by the lease task.
    pub fn new() -> Self {
        Self::default()
    }

    /// A gate that is always open (a single agent without a lease).
    pub fn always_open() -> Self {
        LeaseGate {
            until: Mutex::new(None),
            always: true,
        }
    }

    pub fn set(&self, until: Option<Instant>) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }

    pub fn is_open(&self) -> bool {
        self.always
            || self
                .until
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|t| Instant::now() < t)
    }
}

/// The loop's settings and shared handles.
pub struct ReconcileLoop<R: Reconciler> {
    pub reconciler: Arc<R>,
    pub status: Arc<Mutex<AgentStatus>>,
    pub trigger: Arc<Trigger>,
    pub gate: Arc<LeaseGate>,
    /// Where stack records are kept; `None` keeps them in memory only.
    pub docker: Option<Docker>,
    pub interval: Duration,
    pub self_heal: bool,
    pub shutdown: CancellationToken,
    /// How long a running pass may continue after shutdown was asked.
    pub shutdown_grace: Duration,
    /// Notifications and commit statuses, if configured.
    pub notifier: Option<Notifier>,
    /// Masks stack errors before they reach `/status` and the state labels.
    pub redactor: crate::secrets::Redactor,
    records: Option<BTreeMap<String, StackRecord>>,
    backoffs: BTreeMap<String, Backoff>,
    notify_state: NotifyState,
    /// Events of the running pass, sent when it ends (drift heals batched).
    pass_events: Vec<Event>,
    /// Outcomes of the running pass, so a stack whose needed stack failed
    /// is not applied.
    pass_outcomes: BTreeMap<String, Outcome>,
    /// Stacks whose failed commit was asked to be tried again (`/sync`).
    retries: std::collections::BTreeSet<String>,
}

impl<R: Reconciler> ReconcileLoop<R> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        reconciler: Arc<R>,
        status: Arc<Mutex<AgentStatus>>,
        trigger: Arc<Trigger>,
        gate: Arc<LeaseGate>,
        docker: Option<Docker>,
        interval: Duration,
        self_heal: bool,
        shutdown: CancellationToken,
    ) -> Self {
        ReconcileLoop {
            reconciler,
            status,
            trigger,
            gate,
            docker,
            interval,
            self_heal,
            shutdown,
            shutdown_grace: Duration::from_secs(5),
            notifier: None,
            redactor: crate::secrets::Redactor::new(),
            records: None,
            backoffs: BTreeMap::new(),
            notify_state: NotifyState::default(),
            pass_events: Vec::new(),
            pass_outcomes: BTreeMap::new(),
            retries: Default::default(),
        }
    }

    /// Run passes until shutdown. A pass running when shutdown is asked
    /// gets `shutdown_grace` to finish; after that it is dropped between
    /// two API calls, which leaves a state the next pass can finish from.
    pub async fn run(mut self) {
        self.trigger.kick(Reason::Startup);
        let mut next_poll = Instant::now() + self.interval;
        self.status().page.next_poll = Some(SystemTime::now() + self.interval);
        loop {
            let retry_due = self.backoffs.values().filter_map(Backoff::due).min();
            let wake = retry_due.map_or(next_poll, |r| r.min(next_poll));
            let timer_reason = if wake == next_poll {
                Reason::Interval
            } else {
                Reason::Retry
            };
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                _ = self.trigger.wait() => {}
                _ = tokio::time::sleep_until(wake.into()) => self.trigger.kick(timer_reason),
            }
            let reasons = self.trigger.take_reasons();
            let shutdown = self.shutdown.clone();
            let grace = self.shutdown_grace;
            let interval = self.interval;
            {
                let pass = self.pass(&reasons);
                tokio::pin!(pass);
                tokio::select! {
                    biased;
                    _ = &mut pass => {}
                    _ = shutdown.cancelled() => {
                        if tokio::time::timeout(grace, &mut pass).await.is_err() {
                            tracing::warn!("shutdown: the running reconcile did not finish in {grace:?}; stopped it between two steps");
                        }
                        break;
                    }
                }
            }
            next_poll = Instant::now() + interval;
            self.status().page.next_poll = Some(SystemTime::now() + interval);
        }
        tracing::info!("reconcile loop stopped");
    }

    fn status(&self) -> std::sync::MutexGuard<'_, AgentStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One pass over every stack.
    pub async fn pass(&mut self, reasons: &[Reason]) {
        let reasons: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        if !self.gate.is_open() {
            // The lease task reports the role; nothing to do until it
            // acquires the lease (and kicks a pass).
            tracing::debug!(?reasons, "not the lease holder; pass skipped");
            return;
        }
        self.status().role = Role::Leader;
        // "Sync now" on the dashboard: no waiting for a retry time.
        // It also tries a commit that failed and was rolled back again.
        for stack in self.trigger.take_stacks() {
            self.backoffs.remove(&stack);
            self.retries.insert(stack);
        }
        let (started, clock) = (SystemTime::now(), Instant::now());
        if let Err(e) = self.load_records().await {
            tracing::error!(error = %e, "cannot read stack records from the swarm");
            self.status().last_error = Some(e);
            return;
        }
        let snapshot = match self.reconciler.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the source");
                self.status().counters.git_fetch_errors += 1;
                self.source_failed(format!("source: {e}"));
                return;
            }
        };
        self.status().last_snapshot = Some(SnapshotStatus {
            id: snapshot.id.clone(),
            at: SystemTime::now(),
        });
        tracing::info!(snapshot = %snapshot.id, ?reasons, "reconcile started");
        let plans = match self.reconciler.plan(&snapshot).await {
            Ok(p) => p,
            Err(e) => {
                // Nothing is known about any stack: change nothing, keep
                // every record and status, report, retry next pass.
                tracing::error!(error = %e, "nothing planned");
                self.source_failed(e.to_string());
                return;
            }
        };
        let mut all_synced = true;
        let mut seen = Vec::new();
        self.pass_outcomes.clear();
        self.retries.extend(self.trigger.take_retries());
        for sp in plans {
            if self.shutdown.is_cancelled() {
                all_synced = false;
                break;
            }
            seen.push(sp.stack.clone());
            match self.stack(&snapshot, sp).await {
                Some(Outcome::Applied | Outcome::NoChange | Outcome::Drift) => {}
                _ => all_synced = false,
            }
        }
        if !self.shutdown.is_cancelled() {
            self.forget_all_but(&seen).await;
            self.status().page.retain(&seen);
        }
        self.send_pass_events();
        let mut s = self.status();
        s.ready = true;
        s.last_error = None;
        s.page.last_pass = Some(super::dashboard::PassFacts {
            started,
            took: clock.elapsed(),
        });
        if all_synced {
            s.counters.last_success = Some(SystemTime::now());
        }
        tracing::info!(snapshot = %snapshot.id, stacks = seen.len(), all_synced, "reconcile finished");
    }

    /// A pass that learnt nothing about any stack: counted and reported;
    /// records and statuses stay as they are.
    fn source_failed(&self, error: String) {
        let mut s = self.status();
        *s.counters
            .reconciles
            .entry(super::status::SOURCE_ERROR)
            .or_default() += 1;
        s.last_error = Some(error);
    }

    /// Stacks no longer in the source (or pruned) are no longer reported,
    /// and their records leave the swarm.
    async fn forget_all_but(&mut self, seen: &[String]) {
        let gone: Vec<String> = self
            .status()
            .stacks
            .keys()
            .filter(|k| !seen.contains(k))
            .cloned()
            .collect();
        for stack in gone {
            self.forget_record(&stack).await;
            self.notify_state.forget(&stack);
        }
        self.backoffs.retain(|k, _| seen.contains(k));
        self.status().stacks.retain(|k, _| seen.contains(k));
    }

    /// Decide what to tell about one stack's outcome: events for the end of
    /// the pass, and the commit's status at once.
    fn tell(
        &mut self,
        snapshot: &Snapshot,
        stack: &str,
        outcome: Outcome,
        error: Option<&str>,
        drift: bool,
        summary: &Summary,
    ) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let kinds = self
            .notify_state
            .decide(stack, outcome, &snapshot.id, error, drift);
        for kind in kinds {
            match kind {
                EventKind::Synced => notifier.commit_status(
                    &snapshot.id,
                    stack,
                    CommitState::Success,
                    &format!("applied: {}", summary_text(summary)),
                ),
                EventKind::Failed | EventKind::Denied | EventKind::RolledBack => notifier
                    .commit_status(
                        &snapshot.id,
                        stack,
                        CommitState::Failure,
                        error.unwrap_or(kind.as_str()),
                    ),
                EventKind::Drift | EventKind::Recovered => {}
            }
            self.pass_events.push(Event {
                kind,
                stacks: vec![stack.to_string()],
                revision: Revision {
                    id: snapshot.id.clone(),
                    subject: snapshot.subject.clone(),
                },
                summary: summary.clone(),
                error: error.map(str::to_string),
                happened: notify::happened(kind, outcome, self.self_heal),
            });
        }
    }

    /// Send the pass's events; drift heals of several stacks go as one.
    fn send_pass_events(&mut self) {
        let events = std::mem::take(&mut self.pass_events);
        let Some(notifier) = &self.notifier else {
            return;
        };
        let (drift, rest): (Vec<Event>, Vec<Event>) = events
            .into_iter()
            .partition(|e| e.kind == EventKind::Drift && e.error.is_none());
        for e in &rest {
            notifier.send(e);
        }
        if let Some(first) = drift.first() {
            let mut batch = first.clone();
            batch.stacks = drift.iter().flat_map(|e| e.stacks.clone()).collect();
            for e in &drift[1..] {
                batch.summary.create += e.summary.create;
                batch.summary.update += e.summary.update;
                batch.summary.delete += e.summary.delete;
            }
            notifier.send(&batch);
        }
        self.status().counters.notifications_dropped =
            notifier.dropped.load(std::sync::atomic::Ordering::Relaxed);
    }

    async fn load_records(&mut self) -> Result<(), String> {
        if self.records.is_some() {
            return Ok(());
        }
        let records = match &self.docker {
            Some(d) => record::load_all(d).await.map_err(|e| e.to_string())?,
            None => BTreeMap::new(),
        };
        self.records = Some(records);
        Ok(())
    }

    /// Decide and act for one stack. `None`: skipped (retry not due yet,
    /// or the lease was lost).
    async fn stack(&mut self, snapshot: &Snapshot, sp: StackPlan) -> Option<Outcome> {
        let span = tracing::info_span!("stack", stack = %sp.stack, commit = %snapshot.id);
        self.stack_in_span(snapshot, sp).instrument(span).await
    }

    async fn stack_in_span(&mut self, snapshot: &Snapshot, sp: StackPlan) -> Option<Outcome> {
        let clock = Instant::now();
        let name = sp.stack.clone();
        let summary = sp.summary();
        let plan_text = sp.result.as_ref().ok().map(|p| p.text.clone());
        let mut rec = self
            .records
            .as_ref()
            .and_then(|r| r.get(&name))
            .cloned()
            .unwrap_or_default();
        let record_before = rec.clone();
        let held = match &sp.result {
            Ok(p) if p.plan.has_changes() => self.held_back(&name, &rec, &snapshot.id),
            _ => None,
        };
        let decision = match held {
            Some(d) => d,
            None => decide(sp.result, &rec, &snapshot.id, self.self_heal),
        };
        let drift = decision.drift();
        let (outcome, error) = self
            .act(snapshot, &name, decision, &summary, &mut rec)
            .await?;
        let error = error.map(|e| super::mask::error_text(&self.redactor, &e));
        self.tell(snapshot, &name, outcome, error.as_deref(), drift, &summary);
        rec.outcome = Some(outcome);
        rec.attempted = Some(snapshot.id.clone());
        rec.error = error.clone();
        self.save_record(&name, &rec).await;
        self.pass_outcomes.insert(name.clone(), outcome);
        let end = StackEnd {
            name,
            outcome,
            drift,
            error,
            plan_text,
            summary,
            clock,
        };
        self.show_stack(snapshot, end, &record_before, &rec);
        Some(outcome)
    }

    /// Carry out one stack's decision: log it, apply its plan when that is
    /// the decision, and note in `rec` what came of it. `None`: not applied
    /// now (retry not due, or the lease was lost).
    async fn act(
        &mut self,
        snapshot: &Snapshot,
        name: &str,
        decision: Decision,
        summary: &Summary,
        rec: &mut StackRecord,
    ) -> Option<(Outcome, Option<String>)> {
        let changes = summary.create + summary.update + summary.delete;
        Some(match decision {
            Decision::LeaveAlone {
                outcome: Outcome::RolledBack,
                error,
            } => {
                // Logged (and told) when it failed; every pass since is quiet.
                tracing::debug!("the commit failed and was rolled back; not retried until a new commit or POST /sync");
                (Outcome::RolledBack, Some(error))
            }
            Decision::LeaveAlone { outcome, error } => {
                tracing::error!(error = %error, outcome = outcome.as_str(), "stack left as it is");
                (outcome, Some(error))
            }
            Decision::InSync { plan } => {
                tracing::debug!(outcome = "no-change", "in sync");
                self.synced(name, snapshot, &plan, rec);
                (Outcome::NoChange, None)
            }
            Decision::ReportDrift { planned } => {
                tracing::warn!(
                    outcome = "drift",
                    changes,
                    "drift: the swarm differs from the applied revision; not healed (--no-self-heal)\n{}",
                    planned.text
                );
                (Outcome::Drift, None)
            }
            Decision::Apply { planned, drift } => {
                let result = self
                    .apply_stack(snapshot, name, &planned, drift, summary)
                    .await?;
                if result.is_ok() {
                    self.synced(name, snapshot, &planned.plan, rec);
                }
                note_apply(rec, &snapshot.id, result, drift, summary, &self.redactor)
            }
        })
    }

    /// Show where one stack ended: its status, counters and dashboard page.
    fn show_stack(
        &self,
        snapshot: &Snapshot,
        end: StackEnd,
        record_before: &StackRecord,
        rec: &StackRecord,
    ) {
        let outcome = end.outcome;
        let failures = self.backoffs.get(&end.name).map_or(0, Backoff::failures);
        let mut s = self.status();
        s.page.stack_done(super::dashboard::StepEnd {
            stack: &end.name,
            snapshot: &snapshot.id,
            outcome,
            drift: end.drift,
            error: end.error.as_deref(),
            plan: end.plan_text,
            plan_has_changes: end.summary.create + end.summary.update + end.summary.delete > 0,
            took: end.clock.elapsed(),
            record_before,
            applied_at: rec.applied_at.clone(),
            now: SystemTime::now(),
        });
        s.count(outcome);
        s.stacks.insert(
            end.name,
            StackStatus {
                commit: snapshot.id.clone(),
                applied_commit: rec.commit.clone(),
                outcome,
                status: outcome.status(),
                summary: end.summary,
                drift: end.drift,
                error: end.error,
                last_reconcile: SystemTime::now(),
                failures,
                failed_commit: rec.failed.clone(),
            },
        );
    }

    /// A stack with changes that is not applied in this pass: a stack it
    /// needs (`x-shoal.depends_on`) did not end in sync, or its commit
    /// failed and was rolled back (tried again only on a new commit or
    /// `POST /sync`).
    fn held_back(&self, stack: &str, rec: &StackRecord, snapshot: &str) -> Option<Decision> {
        let needs = self.reconciler.needs();
        let failed_need = needs.get(stack).into_iter().flatten().find_map(|n| {
            let o = self.pass_outcomes.get(n)?;
            (!matches!(o, Outcome::Applied | Outcome::NoChange | Outcome::Drift)).then(|| {
                format!(
                    "not applied: it needs stack {n} (x-shoal.depends_on), which ended {} in this pass",
                    o.as_str()
                )
            })
        });
        if let Some(error) = failed_need {
            return Some(Decision::LeaveAlone {
                outcome: Outcome::ApplyFailed,
                error,
            });
        }
        let retry = self.retries.contains(stack) || self.retries.contains("*");
        (rec.failed.as_deref() == Some(snapshot) && !retry).then(|| Decision::LeaveAlone {
            outcome: Outcome::RolledBack,
            error: rec
                .error
                .clone()
                .unwrap_or_else(|| format!("commit {snapshot} failed and was rolled back")),
        })
    }

    /// The stack is in sync at `snapshot` with `plan` applied (or nothing
    /// to apply): record it, and forget past failures.
    fn synced(&mut self, stack: &str, snapshot: &Snapshot, plan: &Plan, rec: &mut StackRecord) {
        rec.images = synced_images(plan);
        self.backoffs.remove(stack);
        rec.commit = Some(snapshot.id.clone());
    }

    /// Apply one stack's plan when its retry is due and the lease is held
    /// (`None`: not now). A failure is counted by the stack's backoff.
    async fn apply_stack(
        &mut self,
        snapshot: &Snapshot,
        name: &str,
        planned: &Planned,
        drift: bool,
        summary: &Summary,
    ) -> Option<Result<(), ReconcileError>> {
        let changes = summary.create + summary.update + summary.delete;
        let backoff = self.backoffs.entry(name.to_string()).or_default();
        if !backoff.ready(&snapshot.id, Instant::now()) {
            tracing::debug!("apply failed before; waiting for the retry time");
            return None;
        }
        if !self.gate.is_open() {
            tracing::warn!("lease lost; not applying");
            return None;
        }
        if drift {
            tracing::warn!(
                changes,
                "drift: the swarm differs from the applied revision; healing\n{}",
                planned.text
            );
        } else {
            tracing::info!(changes, "applying\n{}", planned.text);
            if let Some(n) = &self.notifier {
                n.commit_status(
                    &snapshot.id,
                    name,
                    CommitState::Pending,
                    &format!("applying: {}", summary_text(summary)),
                );
            }
        }
        self.retries.remove(name);
        self.status().page.applying = Some(name.to_string());
        let result = self.reconciler.apply(name, &planned.plan).await;
        self.status().page.applying = None;
        match &result {
            Ok(()) => {
                tracing::info!(outcome = "ok", changes, drift, "applied");
                let mut s = self.status();
                s.counters.changes_applied += changes as u64;
                if drift {
                    s.counters.drift_corrections += 1;
                }
            }
            Err(e @ ReconcileError::RolledBack { .. }) => {
                self.backoffs.remove(name);
                tracing::error!(outcome = "rolled-back", error = %e, "apply failed and was rolled back; the commit is marked failed");
            }
            Err(e) => {
                let delay = self
                    .backoffs
                    .entry(name.to_string())
                    .or_default()
                    .fail(&snapshot.id, Instant::now());
                tracing::error!(outcome = "apply-failed", error = %e, retry_in = ?delay, "apply failed");
            }
        }
        Some(result)
    }

    /// Remove the record of a stack this agent no longer manages.
    async fn forget_record(&mut self, stack: &str) {
        if let Some(d) = &self.docker {
            if let Err(e) = record::remove(d, stack).await {
                tracing::warn!(stack, error = %e, "cannot remove the stack record");
                return;
            }
        }
        if let Some(records) = &mut self.records {
            records.remove(stack);
        }
    }

    async fn save_record(&mut self, stack: &str, rec: &StackRecord) {
        let records = self.records.get_or_insert_with(BTreeMap::new);
        if records.get(stack) == Some(rec) {
            return;
        }
        if let Some(d) = &self.docker {
            if let Err(e) = record::save(d, stack, rec).await {
                // The in-memory copy still guides this agent; the next pass
                // writes again.
                tracing::warn!(stack, error = %e, "cannot write the stack record");
                return;
            }
        }
        records.insert(stack.to_string(), rec.clone());
    }
}

/// How one stack's step ended, for [`ReconcileLoop::show_stack`].
struct StackEnd {
    name: String,
    outcome: Outcome,
    drift: bool,
    /// Masked.
    error: Option<String>,
    plan_text: Option<String>,
    summary: Summary,
    /// When the step started.
    clock: Instant,
}

/// What an apply's `result` means for the stack's record and outcome.
/// Applied: the time, no failed commit, and a history entry unless it
/// healed drift. Rolled back: the commit is marked failed, with a history
/// entry (its error masked: anyone with `docker config inspect` reads the
/// record). Any other failure leaves the record as it is. Touches
/// nothing but `rec`.
fn note_apply(
    rec: &mut StackRecord,
    snapshot: &str,
    result: Result<(), ReconcileError>,
    drift: bool,
    summary: &Summary,
    redactor: &crate::secrets::Redactor,
) -> (Outcome, Option<String>) {
    match result {
        Ok(()) => {
            rec.applied_at = Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string());
            rec.failed = None;
            if !drift {
                let entry = history::Entry::new(
                    snapshot,
                    Outcome::Applied,
                    &summary_text(summary),
                    "agent",
                );
                history::push(&mut rec.history, entry);
            }
            (Outcome::Applied, None)
        }
        Err(ReconcileError::RolledBack { message, .. }) => {
            rec.failed = Some(snapshot.to_string());
            let masked = super::mask::error_text(redactor, &message);
            let entry = history::Entry::new(snapshot, Outcome::RolledBack, &masked, "agent");
            history::push(&mut rec.history, entry);
            (Outcome::RolledBack, Some(message))
        }
        Err(e) => (Outcome::ApplyFailed, Some(e.to_string())),
    }
}

/// `1 to create, 2 to update, 0 to delete`
fn summary_text(s: &Summary) -> String {
    format!(
        "{} to create, {} to update, {} to delete",
        s.create, s.update, s.delete
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::reconciler::{ReconcileError, StackProblem};
    use crate::model::{Action, Change, Kind};
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A reconciler that counts calls and detects overlapping passes.
    #[derive(Default)]
    struct Fake {
        snapshot_id: Mutex<String>,
        plans: Mutex<Vec<StackPlan>>,
        failing: Mutex<BTreeSet<String>>,
        applied: Mutex<Vec<String>>,
        passes: AtomicUsize,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        plan_delay: Mutex<Duration>,
        plan_error: Mutex<Option<String>>,
        rolls_back: Mutex<bool>,
        needs: Mutex<BTreeMap<String, Vec<String>>>,
    }

    impl Reconciler for Fake {
        async fn snapshot(&self) -> Result<Snapshot, ReconcileError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            Ok(Snapshot {
                subject: None,
                id: self.snapshot_id.lock().unwrap().clone(),
            })
        }
        async fn plan(&self, _: &Snapshot) -> Result<Vec<StackPlan>, ReconcileError> {
            let delay = *self.plan_delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            self.passes.fetch_add(1, Ordering::SeqCst);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Some(e) = self.plan_error.lock().unwrap().clone() {
                return Err(ReconcileError::Source(e));
            }
            Ok(self.plans.lock().unwrap().clone())
        }
        async fn apply(&self, stack: &str, _: &Plan) -> Result<(), ReconcileError> {
            self.applied.lock().unwrap().push(stack.to_string());
            if self.failing.lock().unwrap().contains(stack) {
                let (stack, message) = (
                    stack.to_string(),
                    format!("{stack}_app: update out of sequence"),
                );
                return Err(if *self.rolls_back.lock().unwrap() {
                    ReconcileError::RolledBack { stack, message }
                } else {
                    ReconcileError::Apply { stack, message }
                });
            }
            Ok(())
        }
        fn needs(&self) -> BTreeMap<String, Vec<String>> {
            self.needs.lock().unwrap().clone()
        }
    }

    fn changed(stack: &str) -> StackPlan {
        let change = Change {
            action: Action::Update,
            kind: Kind::Service,
            name: format!("{stack}_app"),
            stack: stack.to_string(),
            diff: vec![],
            desired: None,
            live_id: None,
            live_version: None,
        };
        StackPlan {
            stack: stack.to_string(),
            result: Ok(Planned {
                plan: Plan {
                    changes: vec![change],
                },
                text: format!("~ service {stack}_app"),
            }),
        }
    }

    fn unchanged(stack: &str) -> StackPlan {
        StackPlan {
            stack: stack.to_string(),
            result: Ok(Planned {
                plan: Plan::default(),
                text: String::new(),
            }),
        }
    }

    fn looper(fake: &Arc<Fake>, self_heal: bool) -> ReconcileLoop<Fake> {
        ReconcileLoop::new(
            fake.clone(),
            Arc::new(Mutex::new(AgentStatus::new("test", self_heal))),
            Arc::new(Trigger::new()),
            Arc::new(LeaseGate::always_open()),
            None,
            Duration::from_secs(3600),
            self_heal,
            CancellationToken::new(),
        )
    }

    fn fake(id: &str, plans: Vec<StackPlan>) -> Arc<Fake> {
        let f = Fake::default();
        *f.snapshot_id.lock().unwrap() = id.to_string();
        *f.plans.lock().unwrap() = plans;
        Arc::new(f)
    }

    async fn until(deadline: Duration, mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + deadline;
        while !cond() {
            assert!(
                Instant::now() < end,
                "condition not met within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn kicks_during_a_pass_cause_exactly_one_more_and_passes_never_overlap() {
        let f = fake("c1", vec![unchanged("web")]);
        *f.plan_delay.lock().unwrap() = Duration::from_millis(300);
        let l = looper(&f, true);
        let (trigger, shutdown) = (l.trigger.clone(), l.shutdown.clone());
        let task = tokio::spawn(l.run());
        // The startup pass is running (inside plan) ...
        until(Duration::from_secs(5), || {
            f.in_flight.load(Ordering::SeqCst) == 1
        })
        .await;
        // ... and five triggers arrive together.
        for r in [
            Reason::Webhook,
            Reason::DockerEvent,
            Reason::FileChange,
            Reason::Webhook,
            Reason::Interval,
        ] {
            trigger.kick(r);
        }
        until(Duration::from_secs(5), || {
            f.passes.load(Ordering::SeqCst) == 2
        })
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            f.passes.load(Ordering::SeqCst),
            2,
            "triggers did not coalesce"
        );
        assert_eq!(
            f.max_in_flight.load(Ordering::SeqCst),
            1,
            "passes overlapped"
        );
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_waits_for_the_running_pass_within_the_grace() {
        let f = fake("c1", vec![unchanged("web")]);
        *f.plan_delay.lock().unwrap() = Duration::from_secs(30);
        let mut l = looper(&f, true);
        l.shutdown_grace = Duration::from_millis(200);
        let shutdown = l.shutdown.clone();
        let task = tokio::spawn(l.run());
        until(Duration::from_secs(5), || {
            f.in_flight.load(Ordering::SeqCst) == 1
        })
        .await;
        let asked = Instant::now();
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
        assert!(asked.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_new_revision_is_applied_then_drift_is_healed_and_counted() {
        let f = fake("c1", vec![changed("web")]);
        let mut l = looper(&f, true);
        l.pass(&[Reason::Startup]).await;
        assert_eq!(*f.applied.lock().unwrap(), vec!["web"]);
        {
            let s = l.status.lock().unwrap();
            let web = &s.stacks["web"];
            assert_eq!(web.outcome, Outcome::Applied);
            assert!(!web.drift);
            assert_eq!(web.applied_commit.as_deref(), Some("c1"));
            assert_eq!(s.counters.changes_applied, 1);
            assert_eq!(s.counters.drift_corrections, 0);
            assert!(s.ready);
        }
        // Same revision, live differs again: drift, healed by default.
        l.pass(&[Reason::DockerEvent]).await;
        assert_eq!(f.applied.lock().unwrap().len(), 2);
        let s = l.status.lock().unwrap();
        assert!(s.stacks["web"].drift);
        assert_eq!(s.counters.drift_corrections, 1);
        assert_eq!(s.counters.reconciles["ok"], 2);
    }

    #[tokio::test]
    async fn without_self_heal_drift_is_reported_but_new_revisions_apply() {
        let f = fake("c1", vec![unchanged("web")]);
        let mut l = looper(&f, false);
        l.pass(&[Reason::Startup]).await;
        *f.plans.lock().unwrap() = vec![changed("web")];
        l.pass(&[Reason::DockerEvent]).await;
        assert!(f.applied.lock().unwrap().is_empty(), "drift was applied");
        {
            let s = l.status.lock().unwrap();
            assert_eq!(s.stacks["web"].outcome, Outcome::Drift);
            assert_eq!(
                s.stacks["web"].status,
                crate::agent::status::StackState::Drifted
            );
        }
        *f.snapshot_id.lock().unwrap() = "c2".into();
        l.pass(&[Reason::Webhook]).await;
        assert_eq!(*f.applied.lock().unwrap(), vec!["web"]);
    }

    #[tokio::test]
    async fn a_repository_that_cannot_be_read_forgets_nothing() {
        let f = fake("c1", vec![changed("web")]);
        let mut l = looper(&f, false);
        l.pass(&[Reason::Startup]).await;
        *f.plan_error.lock().unwrap() = Some("cannot read the snapshot: gone".into());
        l.pass(&[Reason::Interval]).await;
        assert!(l.records.as_ref().unwrap().contains_key("web"));
        let s = l.status.lock().unwrap();
        assert!(s.stacks.contains_key("web"));
        assert_eq!(
            s.last_error.as_deref(),
            Some("cannot read the snapshot: gone")
        );
    }

    #[tokio::test]
    async fn a_stack_gone_from_the_source_loses_its_status_and_record() {
        let f = fake("c1", vec![changed("web"), changed("old")]);
        let mut l = looper(&f, true);
        l.pass(&[Reason::Startup]).await;
        assert!(l.records.as_ref().unwrap().contains_key("old"));
        *f.plans.lock().unwrap() = vec![unchanged("web")];
        *f.snapshot_id.lock().unwrap() = "c2".into();
        l.pass(&[Reason::Interval]).await;
        assert!(!l.records.as_ref().unwrap().contains_key("old"));
        assert!(l.records.as_ref().unwrap().contains_key("web"));
        let s = l.status.lock().unwrap();
        assert!(!s.stacks.contains_key("old") && s.stacks.contains_key("web"));
    }

    #[tokio::test]
    async fn a_moved_image_digest_is_applied_even_without_self_heal() {
        let f = fake("c1", vec![unchanged("web")]);
        let mut l = looper(&f, false);
        l.pass(&[Reason::Startup]).await;
        let mut moved = changed("web");
        if let Ok(p) = &mut moved.result {
            p.plan.changes[0].diff = vec![crate::model::FieldChange {
                path: "TaskTemplate.ContainerSpec.Image".into(),
                before: serde_json::json!("app:3.0@sha256:aa"),
                after: serde_json::json!("app:3.0@sha256:bb"),
                sensitive: false,
            }];
        }
        *f.plans.lock().unwrap() = vec![moved];
        l.pass(&[Reason::Interval]).await;
        assert_eq!(*f.applied.lock().unwrap(), vec!["web"]);
        let s = l.status.lock().unwrap();
        assert_eq!(s.stacks["web"].outcome, Outcome::Applied);
        assert!(!s.stacks["web"].drift);
    }

    /// A plan for `web_app` whose image goes `before` -> `after` (a no-op
    /// when equal), as the pipeline makes it: the desired spec included.
    fn image_plan(before: &str, after: &str) -> StackPlan {
        let same = before == after;
        let change = Change {
            action: if same { Action::Noop } else { Action::Update },
            kind: Kind::Service,
            name: "web_app".into(),
            stack: "web".into(),
            diff: if same {
                vec![]
            } else {
                vec![crate::model::FieldChange {
                    path: "TaskTemplate.ContainerSpec.Image".into(),
                    before: serde_json::json!(before),
                    after: serde_json::json!(after),
                    sensitive: false,
                }]
            },
            desired: Some(serde_json::json!({
                "TaskTemplate": {"ContainerSpec": {"Image": after}}})),
            live_id: None,
            live_version: None,
        };
        StackPlan {
            stack: "web".into(),
            result: Ok(Planned {
                plan: Plan {
                    changes: vec![change],
                },
                text: String::new(),
            }),
        }
    }

    #[tokio::test]
    async fn a_digest_rolled_back_by_hand_is_drift_and_a_registry_move_is_not() {
        let (a, b, c) = (
            "app:3.0@sha256:aa",
            "app:3.0@sha256:bb",
            "app:3.0@sha256:cc",
        );
        let f = fake("c1", vec![image_plan(b, b)]);
        let mut l = looper(&f, false);
        l.pass(&[Reason::Startup]).await;
        // Someone pins the service back to an older digest: the registry
        // still says bb, so this is drift, reported, not overwritten.
        *f.plans.lock().unwrap() = vec![image_plan(a, b)];
        l.pass(&[Reason::DockerEvent]).await;
        assert!(
            f.applied.lock().unwrap().is_empty(),
            "the rollback was overwritten"
        );
        assert_eq!(
            l.status.lock().unwrap().stacks["web"].outcome,
            Outcome::Drift
        );
        // Then the registry moves the tag: that is rolled out.
        *f.plans.lock().unwrap() = vec![image_plan(a, c)];
        l.pass(&[Reason::Interval]).await;
        assert_eq!(*f.applied.lock().unwrap(), vec!["web"]);
    }

    #[tokio::test]
    async fn a_bad_stack_is_reported_and_the_others_go_on() {
        let f = fake(
            "c1",
            vec![
                StackPlan {
                    stack: "broken".into(),
                    result: Err(StackProblem::Load(
                        "stacks/broken/stack.yml:3:5: services: expected a mapping".into(),
                    )),
                },
                StackPlan {
                    stack: "denied".into(),
                    result: Err(StackProblem::PolicyDenied(
                        "web_app: privileged ports".into(),
                    )),
                },
                changed("web"),
            ],
        );
        let mut l = looper(&f, true);
        l.pass(&[Reason::Startup]).await;
        assert_eq!(*f.applied.lock().unwrap(), vec!["web"]);
        let s = l.status.lock().unwrap();
        assert_eq!(s.stacks["broken"].outcome, Outcome::LoadError);
        assert!(s.stacks["broken"]
            .error
            .as_deref()
            .unwrap()
            .contains("stack.yml:3:5"));
        assert_eq!(s.stacks["denied"].outcome, Outcome::PolicyDenied);
        assert_eq!(s.stacks["web"].outcome, Outcome::Applied);
        assert!(
            s.counters.last_success.is_none(),
            "a pass with failures is no success"
        );
    }

    #[tokio::test]
    async fn a_failed_apply_waits_for_its_backoff_and_a_success_resets_it() {
        let f = fake("c1", vec![changed("web")]);
        f.failing.lock().unwrap().insert("web".into());
        let mut l = looper(&f, true);
        l.pass(&[Reason::Startup]).await;
        assert_eq!(
            l.status.lock().unwrap().stacks["web"].outcome,
            Outcome::ApplyFailed
        );
        let due = l.backoffs["web"].due().unwrap();
        assert!(due > Instant::now() + Duration::from_secs(4));
        // A trigger right away does not retry (no hot loop).
        l.pass(&[Reason::DockerEvent]).await;
        assert_eq!(f.applied.lock().unwrap().len(), 1);
        // When due, it retries; success resets the backoff.
        f.failing.lock().unwrap().clear();
        let b = l.backoffs.get_mut("web").unwrap();
        *b = Backoff::default();
        b.fail("c1", Instant::now() - Duration::from_secs(10));
        l.pass(&[Reason::Retry]).await;
        assert_eq!(f.applied.lock().unwrap().len(), 2);
        assert!(!l.backoffs.contains_key("web"));
        assert_eq!(l.status.lock().unwrap().stacks["web"].failures, 0);
    }

    #[tokio::test]
    async fn a_rolled_back_commit_is_marked_failed_and_not_retried_until_a_new_commit_or_sync() {
        let f = fake("c1", vec![changed("web")]);
        f.failing.lock().unwrap().insert("web".into());
        *f.rolls_back.lock().unwrap() = true;
        let mut l = looper(&f, true);
        l.pass(&[Reason::Startup]).await;
        {
            let s = l.status.lock().unwrap();
            let web = &s.stacks["web"];
            assert_eq!(web.outcome, Outcome::RolledBack);
            assert_eq!(web.status, crate::agent::status::StackState::ApplyFailed);
            assert_eq!(web.failed_commit.as_deref(), Some("c1"));
            assert_eq!(s.counters.reconciles["rolled-back"], 1);
        }
        let rec = &l.records.as_ref().unwrap()["web"];
        assert_eq!(rec.failed.as_deref(), Some("c1"));
        assert_eq!(rec.history[0].outcome, Outcome::RolledBack.as_str());
        assert!(!l.backoffs.contains_key("web"), "no retry is scheduled");
        // Triggers and retries of the same commit apply nothing.
        l.pass(&[Reason::DockerEvent]).await;
        l.pass(&[Reason::Retry]).await;
        assert_eq!(f.applied.lock().unwrap().len(), 1);
        assert!(l.status.lock().unwrap().stacks["web"]
            .error
            .as_deref()
            .unwrap()
            .contains("update out of sequence"));
        // On request it is tried again.
        l.trigger.retry(Some("web"));
        l.pass(&[Reason::Sync]).await;
        assert_eq!(f.applied.lock().unwrap().len(), 2);
        // A new commit is applied; success clears the mark.
        f.failing.lock().unwrap().clear();
        *f.snapshot_id.lock().unwrap() = "c2".into();
        l.pass(&[Reason::Webhook]).await;
        assert_eq!(f.applied.lock().unwrap().len(), 3);
        let s = l.status.lock().unwrap();
        assert_eq!(s.stacks["web"].outcome, Outcome::Applied);
        assert_eq!(s.stacks["web"].failed_commit, None);
        let rec = &l.records.as_ref().unwrap()["web"];
        assert_eq!(
            rec.history
                .iter()
                .map(|e| e.commit.as_str())
                .collect::<Vec<_>>(),
            vec!["c2", "c1", "c1"]
        );
    }

    #[tokio::test]
    async fn a_stack_whose_needed_stack_failed_is_not_applied() {
        let f = fake("c1", vec![changed("infra"), changed("app")]);
        f.failing.lock().unwrap().insert("infra".into());
        *f.needs.lock().unwrap() = BTreeMap::from([("app".into(), vec!["infra".into()])]);
        let mut l = looper(&f, true);
        l.pass(&[Reason::Startup]).await;
        assert_eq!(*f.applied.lock().unwrap(), vec!["infra"]);
        let s = l.status.lock().unwrap();
        assert_eq!(s.stacks["app"].outcome, Outcome::ApplyFailed);
        assert!(s.stacks["app"]
            .error
            .as_deref()
            .unwrap()
            .contains("it needs stack infra (x-shoal.depends_on), which ended apply-failed"));
    }

    #[tokio::test]
    async fn a_closed_gate_applies_nothing() {
        let f = fake("c1", vec![changed("web")]);
        let mut l = looper(&f, true);
        l.gate = Arc::new(LeaseGate::new());
        l.pass(&[Reason::Startup]).await;
        assert_eq!(f.passes.load(Ordering::SeqCst), 0);
        assert!(f.applied.lock().unwrap().is_empty());
    }

    #[test]
    fn an_apply_result_is_noted_in_the_record() {
        let redactor = crate::secrets::Redactor::new();
        redactor.register("hunter2-secret");
        let summary = Summary {
            update: 2,
            ..Default::default()
        };
        let mut rec = StackRecord {
            failed: Some("old".into()),
            ..Default::default()
        };
        assert_eq!(
            note_apply(&mut rec, "c1", Ok(()), false, &summary, &redactor),
            (Outcome::Applied, None)
        );
        assert!(rec.applied_at.is_some() && rec.failed.is_none());
        assert_eq!(
            (
                rec.history[0].commit.as_str(),
                rec.history[0].outcome.as_str()
            ),
            ("c1", Outcome::Applied.as_str())
        );
        // Healing drift applies no new commit: no history entry.
        note_apply(&mut rec, "c1", Ok(()), true, &summary, &redactor);
        assert_eq!(rec.history.len(), 1);

        let rolled_back = ReconcileError::RolledBack {
            stack: "s".into(),
            message: "task failed: password hunter2-secret".into(),
        };
        let (outcome, error) =
            note_apply(&mut rec, "c2", Err(rolled_back), false, &summary, &redactor);
        assert_eq!(outcome, Outcome::RolledBack);
        // Masked later, with every error; the record's history is masked now.
        assert_eq!(
            error.as_deref(),
            Some("task failed: password hunter2-secret")
        );
        assert_eq!(rec.failed.as_deref(), Some("c2"));
        assert_eq!(rec.history[0].outcome, Outcome::RolledBack.as_str());
        assert!(
            !rec.history[0].summary.contains("hunter2"),
            "{}",
            rec.history[0].summary
        );

        let before = rec.clone();
        let failed = ReconcileError::Apply {
            stack: "s".into(),
            message: "engine down".into(),
        };
        assert_eq!(
            note_apply(&mut rec, "c3", Err(failed), false, &summary, &redactor),
            (Outcome::ApplyFailed, Some("engine down".into()))
        );
        assert_eq!(rec, before);
    }
}
