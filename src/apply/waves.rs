//! Ordering service writes in waves by `depends_on` (within a stack) and
//! `x-shoal.depends_on` (between stacks), and the health gates between
//! waves: a service is written only when each of its dependencies meets
//! its condition. Without any dependency everything is one wave, written
//! exactly as before. The specs written are untouched: only the order and
//! the timing of the writes change.
use super::converge::{
    active_nodes, count_running, current_iteration, failed_job_error, first_task_error,
    job_completions, pick_latest, state, update_state, UpdateState,
};
use crate::compose::depends::{self, Condition};
use crate::engine::Engine;
use crate::model::{Action, Change, Desired, Kind};

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// One thing a service waits for before it is written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gate {
    /// The swarm name of the dependency (`steedos_mongodb`).
    pub service: String,
    pub condition: Condition,
    /// Set when the gate comes from a stack dependency: the stack it needs.
    pub stack: Option<String>,
}

/// The gates of every service that has any, by swarm service name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Order {
    pub gates: BTreeMap<String, Vec<Gate>>,
}

impl Order {
    /// No ordering: one wave.
    pub fn none() -> Order {
        Order::default()
    }

    pub fn is_empty(&self) -> bool {
        self.gates.values().all(Vec::is_empty)
    }

    /// The gates of the loaded stacks: each service's `depends_on`, and for
    /// a stack that needs other (loaded) stacks, every service of those.
    pub fn from_desired(desired: &Desired) -> Order {
        let mut order = Order::default();
        let by_name: BTreeMap<&str, &crate::model::DesiredStack> = desired
            .stacks
            .iter()
            .map(|s| (s.name.as_str(), s))
            .collect();
        for stack in &desired.stacks {
            let prefix = format!("{}_", stack.name);
            for svc in &stack.services {
                let key = svc.name.strip_prefix(&prefix).unwrap_or(&svc.name);
                let mut gates = Vec::new();
                // Checked at load; a dependency that does not exist
                // (`required: false`) is skipped.
                if let Ok(deps) = depends::parse(key, &svc.source["depends_on"]) {
                    for d in deps {
                        let target = format!("{prefix}{}", d.service);
                        if stack.services.iter().any(|s| s.name == target) {
                            gates.push(Gate {
                                service: target,
                                condition: d.condition,
                                stack: None,
                            });
                        }
                    }
                }
                for needed in desired.needs.get(&stack.name).into_iter().flatten() {
                    let Some(other) = by_name.get(needed.as_str()) else {
                        continue;
                    };
                    for s in &other.services {
                        let is_job = s.source["deploy"]["mode"]
                            .as_str()
                            .is_some_and(|m| m.ends_with("-job"));
                        gates.push(Gate {
                            service: s.name.clone(),
                            condition: if is_job {
                                Condition::CompletedSuccessfully
                            } else {
                                Condition::Healthy
                            },
                            stack: Some(needed.clone()),
                        });
                    }
                }
                if !gates.is_empty() {
                    order.gates.insert(svc.name.clone(), gates);
                }
            }
        }
        order
    }

    fn of(&self, service: &str) -> &[Gate] {
        self.gates.get(service).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The service changes to write, in waves: a service comes after every
/// dependency that is written in the same run. Wave order is plan order.
pub(crate) fn waves<'a>(services: &[&'a Change], order: &Order) -> Vec<Vec<&'a Change>> {
    if order.is_empty() {
        return vec![services.to_vec()];
    }
    // Longest-path levels in topological order (Kahn), linear in services
    // and gates; no cycles (load refused them), and anything left in one
    // goes last.
    let index: BTreeMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); services.len()];
    let mut waiting_for = vec![0usize; services.len()];
    for (i, c) in services.iter().enumerate() {
        let deps: BTreeSet<usize> = order
            .of(&c.name)
            .iter()
            .filter_map(|g| index.get(g.service.as_str()).copied())
            .filter(|&d| d != i)
            .collect();
        waiting_for[i] = deps.len();
        for d in deps {
            dependants[d].push(i);
        }
    }
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    let mut levels = vec![0usize; services.len()];
    let mut ready: Vec<usize> = (0..services.len())
        .filter(|&i| waiting_for[i] == 0)
        .collect();
    while let Some(i) = ready.pop() {
        level.insert(&services[i].name, levels[i]);
        for &j in &dependants[i] {
            levels[j] = levels[j].max(levels[i] + 1);
            waiting_for[j] -= 1;
            if waiting_for[j] == 0 {
                ready.push(j);
            }
        }
    }
    let depth = level.values().copied().max().unwrap_or(0);
    let mut out: Vec<Vec<&Change>> = vec![Vec::new(); depth + 1];
    for c in services {
        out[level.get(c.name.as_str()).copied().unwrap_or(depth)].push(c);
    }
    out.retain(|w| !w.is_empty());
    out
}

/// The gates the services of one wave wait for, each once.
pub(crate) fn gates_of<'a>(wave: &[&Change], order: &'a Order) -> Vec<&'a Gate> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in wave {
        for g in order.of(&c.name) {
            if seen.insert((&g.service, g.condition)) {
                out.push(g);
            }
        }
    }
    out
}

/// Where one dependency stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GateState {
    Met,
    /// `steedos_mongodb: 0/1 healthy`
    Waiting(String),
    /// It will not get there by waiting: the reason, with the task error.
    Failed(String),
}

/// Judge one dependency from its inspect output, its up-to-date tasks and
/// the nodes that are not down. `written`: shoal wrote it in this run, so
/// an update Swarm paused or rolled back is a failure; an untouched
/// dependency is judged by its tasks only. Pure.
pub(crate) fn judge(
    name: &str,
    condition: Condition,
    service: &Value,
    tasks: &[Value],
    active_nodes: &HashSet<String>,
    written: bool,
) -> GateState {
    let error = first_task_error(tasks);
    let with_error = |line: String| match &error {
        Some(e) => format!("{line}; {e}"),
        None => line,
    };
    if written {
        if let Some(state) = judge_update(name, service, &with_error) {
            return state;
        }
    }
    let mode = &service["Spec"]["Mode"];
    if let Some(r) = mode.get("Replicated") {
        let want = r["Replicas"].as_u64().unwrap_or(1) as usize;
        if want == 0 {
            return GateState::Met;
        }
        let latest = pick_latest(tasks, "Slot", active_nodes);
        judge_count(name, condition, service, &latest, want, &with_error)
    } else if mode.get("Global").is_some() {
        let latest = pick_latest(tasks, "NodeID", active_nodes);
        if latest.is_empty() {
            return GateState::Waiting(format!("{name}: waiting for tasks (global)"));
        }
        let want = latest.len();
        judge_count(name, condition, service, &latest, want, &with_error)
    } else if mode.get("ReplicatedJob").is_some() || mode.get("GlobalJob").is_some() {
        judge_job(name, condition, service, tasks, active_nodes, &with_error)
    } else {
        GateState::Failed(format!("{name}: unknown service mode {mode}"))
    }
}

/// The gate of a replicated or global service: met when `want` of its
/// latest tasks (one per slot or node) are running, or started for
/// `service_started`.
fn judge_count(
    name: &str,
    condition: Condition,
    service: &Value,
    latest: &BTreeMap<String, &Value>,
    want: usize,
    with_error: &dyn Fn(String) -> String,
) -> GateState {
    let have = if condition == Condition::Started {
        latest
            .values()
            .filter(|t| matches!(state(t), "starting" | "running"))
            .count()
    } else {
        count_running(latest.values())
    };
    if have >= want && want > 0 || (want == 0 && latest.is_empty()) {
        GateState::Met
    } else {
        let word = task_word(service, condition);
        GateState::Waiting(with_error(format!("{name}: {have}/{want} {word}")))
    }
}

/// The gate of a service shoal wrote in this run, while Swarm is still
/// updating it or after it stopped the update (paused or rolled back);
/// `None` once the update is done.
fn judge_update(
    name: &str,
    service: &Value,
    with_error: &dyn Fn(String) -> String,
) -> Option<GateState> {
    let message = service["UpdateStatus"]["Message"]
        .as_str()
        .unwrap_or_default();
    let failed = |what: &str| GateState::Failed(with_error(format!("{name}: {what}: {message}")));
    match update_state(service) {
        UpdateState::Paused => Some(failed("update paused")),
        UpdateState::RollbackStarted
        | UpdateState::RollbackPaused
        | UpdateState::RollbackCompleted => Some(failed("Swarm rolled the update back")),
        UpdateState::Updating => Some(GateState::Waiting(with_error(format!("{name}: updating")))),
        UpdateState::Settled => None,
    }
}

/// What the counted tasks of a (non-job) service are called in a waiting
/// line. Swarm keeps a task with a health check `starting` until it is
/// healthy, so `running` is healthy wherever a check exists.
fn task_word(service: &Value, condition: Condition) -> &'static str {
    let healthcheck = service
        .pointer("/Spec/TaskTemplate/ContainerSpec/Healthcheck/Test")
        .and_then(Value::as_array)
        .is_some_and(|t| t.first().and_then(Value::as_str) != Some("NONE") && !t.is_empty());
    if healthcheck && condition != Condition::Started {
        "healthy"
    } else if condition == Condition::Started {
        "started"
    } else {
        "running"
    }
}

/// The gate of a job: failed when a task of its current iteration failed,
/// met when enough tasks started (`service_started`) or completed.
fn judge_job(
    name: &str,
    condition: Condition,
    service: &Value,
    tasks: &[Value],
    active_nodes: &HashSet<String>,
    with_error: &dyn Fn(String) -> String,
) -> GateState {
    if let Some(err) = failed_job_error(service, tasks) {
        return GateState::Failed(format!("job {name} failed: {err}"));
    }
    let current = current_iteration(service, tasks);
    let (want, done) = if let Some(job) = service["Spec"]["Mode"].get("ReplicatedJob") {
        let done = current.iter().filter(|t| state(t) == "complete").count();
        (job_completions(job), done)
    } else {
        let latest = pick_latest(&current, "NodeID", active_nodes);
        let done = latest.values().filter(|t| state(t) == "complete").count();
        (latest.len().max(1), done)
    };
    let started = current
        .iter()
        .filter(|t| matches!(state(t), "running" | "complete"))
        .count();
    let met = match condition {
        Condition::Started => started >= want,
        _ => done >= want,
    };
    if met {
        GateState::Met
    } else {
        GateState::Waiting(with_error(format!("{name}: {done}/{want} completed")))
    }
}

/// How often gates are polled, and how often a plain (non-live) progress
/// line repeats while nothing changes.
const POLL: Duration = Duration::from_millis(500);
const REPEAT: Duration = Duration::from_secs(15);

/// Why a wave could not start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GateFailure {
    pub dependency: String,
    pub why: String,
}

/// Wait until every gate of a wave is met, or one fails, or `timeout`
/// passes. Prints `waiting for steedos_mongodb: 0/1 healthy (12s)` when
/// the state changes (and every 15 s; every second with `live`).
pub(crate) async fn wait_gates(
    engine: &Engine,
    gates: &[&Gate],
    written: &BTreeSet<String>,
    timeout: Duration,
    live: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), GateFailure> {
    if gates.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    let deadline = start + timeout;
    let mut last_line = String::new();
    let mut last_print = start;
    loop {
        let waiting = poll_gates(engine, gates, written).await?;
        if waiting.is_empty() {
            if !last_line.is_empty() {
                progress(&format!(
                    "dependencies ready after {}s",
                    start.elapsed().as_secs()
                ));
            }
            return Ok(());
        }
        let line = format!("waiting for {}", waiting.join(", "));
        let now = Instant::now();
        let every = if live { Duration::from_secs(1) } else { REPEAT };
        if line != last_line || now.duration_since(last_print) >= every {
            progress(&format!("{line} ({}s)", start.elapsed().as_secs()));
            last_line = line.clone();
            last_print = now;
        }
        if now >= deadline {
            return Err(timed_out(gates, &waiting, timeout));
        }
        tokio::time::sleep_until(deadline.min(now + POLL)).await;
    }
}

/// Look at every gate once: the waiting lines of those not met yet, or
/// the first that failed.
async fn poll_gates(
    engine: &Engine,
    gates: &[&Gate],
    written: &BTreeSet<String>,
) -> Result<Vec<String>, GateFailure> {
    let active = active_nodes(engine).await.map_err(|e| GateFailure {
        dependency: gates[0].service.clone(),
        why: e.to_string(),
    })?;
    let mut waiting = Vec::new();
    for g in gates {
        let state = match gate_state(engine, g, written.contains(&g.service), &active).await {
            Ok(s) => s,
            Err(why) => GateState::Failed(why),
        };
        match state {
            GateState::Met => {}
            GateState::Waiting(line) => waiting.push(line),
            GateState::Failed(why) => {
                return Err(GateFailure {
                    dependency: g.service.clone(),
                    why,
                })
            }
        }
    }
    Ok(waiting)
}

/// The failure of gates still `waiting` after `timeout`: it names the
/// first gate with a waiting line (or the first gate).
fn timed_out(gates: &[&Gate], waiting: &[String], timeout: Duration) -> GateFailure {
    GateFailure {
        dependency: gates
            .iter()
            .map(|g| g.service.as_str())
            .find(|s| waiting.iter().any(|w| w.starts_with(&format!("{s}:"))))
            .unwrap_or(&gates[0].service)
            .to_string(),
        why: format!(
            "timed out after {}s ({})",
            timeout.as_secs(),
            waiting.join(", ")
        ),
    }
}

async fn gate_state(
    engine: &Engine,
    gate: &Gate,
    written: bool,
    active: &HashSet<String>,
) -> Result<GateState, String> {
    let service = engine
        .inspect_service(&gate.service)
        .await
        .map_err(|e| e.to_string())?;
    let id = service["ID"].as_str().unwrap_or(&gate.service).to_string();
    let tasks = engine
        .service_tasks(&id, true)
        .await
        .map_err(|e| e.to_string())?;
    Ok(judge(
        &gate.service,
        gate.condition,
        &service,
        &tasks,
        active,
        written,
    ))
}

/// Print one progress line on stdout; on a terminal (`live`), `waiting
/// for ...` lines redraw one line in place, and other lines replace it.
pub fn print_progress(line: &str, live: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = if !live {
        writeln!(out, "{line}")
    } else if line.starts_with("waiting for ") {
        write!(out, "\r\x1b[K{line}").and_then(|_| out.flush())
    } else {
        writeln!(out, "\r\x1b[K{line}")
    };
}

/// The services of `plan` a failed gate keeps from being written: the
/// waves not started.
pub(crate) fn not_started(waves: &[Vec<&Change>]) -> Vec<String> {
    waves
        .iter()
        .flatten()
        .filter(|c| c.kind == Kind::Service && matches!(c.action, Action::Create | Action::Update))
        .map(|c| c.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(name: &str) -> Change {
        Change {
            action: Action::Update,
            kind: Kind::Service,
            name: name.into(),
            stack: "s".into(),
            diff: vec![],
            desired: None,
            live_id: Some("id".into()),
            live_version: Some(1),
        }
    }

    fn gate(service: &str, condition: Condition) -> Gate {
        Gate {
            service: service.into(),
            condition,
            stack: None,
        }
    }

    #[test]
    fn without_dependencies_everything_is_one_wave() {
        let (a, b, c) = (change("s_a"), change("s_b"), change("s_c"));
        let all = [&a, &b, &c];
        let w = waves(&all, &Order::none());
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].len(), 3);
    }

    #[test]
    fn dependants_come_after_their_dependencies_in_the_same_run() {
        let names = ["s_traefik", "s_steedos", "s_init", "s_mongo", "s_redis"];
        let changes: Vec<Change> = names.iter().map(|n| change(n)).collect();
        let refs: Vec<&Change> = changes.iter().collect();
        let order = Order {
            gates: BTreeMap::from([
                ("s_init".into(), vec![gate("s_mongo", Condition::Healthy)]),
                (
                    "s_steedos".into(),
                    vec![
                        gate("s_init", Condition::CompletedSuccessfully),
                        gate("s_redis", Condition::Started),
                    ],
                ),
                (
                    "s_traefik".into(),
                    vec![gate("s_steedos", Condition::Started)],
                ),
            ]),
        };
        let w: Vec<Vec<&str>> = waves(&refs, &order)
            .iter()
            .map(|w| w.iter().map(|c| c.name.as_str()).collect())
            .collect();
        assert_eq!(
            w,
            vec![
                vec!["s_mongo", "s_redis"],
                vec!["s_init"],
                vec!["s_steedos"],
                vec!["s_traefik"]
            ]
        );
        // A dependency not written in this run does not add a wave (it is
        // still a gate of the wave).
        let only = [&changes[1]];
        assert_eq!(waves(&only, &order).len(), 1);
        assert_eq!(gates_of(&only, &order).len(), 2);
    }

    #[test]
    fn a_long_chain_is_ordered_in_linear_time() {
        let n = 5000;
        let changes: Vec<Change> = (0..n).map(|i| change(&format!("s_{i}"))).collect();
        let refs: Vec<&Change> = changes.iter().rev().collect();
        let order = Order {
            gates: (1..n)
                .map(|i| {
                    (
                        format!("s_{i}"),
                        vec![gate(&format!("s_{}", i - 1), Condition::Started)],
                    )
                })
                .collect(),
        };
        let started = std::time::Instant::now();
        let w = waves(&refs, &order);
        assert_eq!(w.len(), n);
        assert_eq!(w[0][0].name, "s_0");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    fn task(slot: u64, st: &str) -> Value {
        json!({"Slot": slot, "NodeID": "n1", "DesiredState": "running", "Status": {"State": st}})
    }

    fn nodes() -> HashSet<String> {
        ["n1".to_string()].into()
    }

    #[test]
    fn healthy_waits_for_running_tasks_and_says_healthy() {
        let svc = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {"ContainerSpec": {"Healthcheck": {"Test": ["CMD", "true"]}}}}});
        let starting = [task(1, "starting")];
        assert_eq!(
            judge(
                "s_mongo",
                Condition::Healthy,
                &svc,
                &starting,
                &nodes(),
                true
            ),
            GateState::Waiting("s_mongo: 0/1 healthy".into())
        );
        assert_eq!(
            judge(
                "s_mongo",
                Condition::Started,
                &svc,
                &starting,
                &nodes(),
                true
            ),
            GateState::Met
        );
        let running = [task(1, "running")];
        assert_eq!(
            judge(
                "s_mongo",
                Condition::Healthy,
                &svc,
                &running,
                &nodes(),
                true
            ),
            GateState::Met
        );
    }

    #[test]
    fn a_rolled_back_update_fails_the_gate_only_when_written_now() {
        let svc = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 1}}},
            "UpdateStatus": {"State": "rollback_completed", "Message": "rollback completed"}});
        let running = [task(1, "running")];
        assert!(matches!(
            judge("s_a", Condition::Started, &svc, &running, &nodes(), true),
            GateState::Failed(m) if m.contains("rolled the update back")
        ));
        assert_eq!(
            judge("s_a", Condition::Started, &svc, &running, &nodes(), false),
            GateState::Met
        );
    }

    #[test]
    fn a_failed_job_fails_its_dependants_with_the_task_error() {
        let svc = json!({"Spec": {"Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}}});
        let mut t = json!({"Slot": 1, "NodeID": "n1", "DesiredState": "complete",
            "Status": {"State": "failed", "Err": "task: non-zero exit (1)"}});
        assert_eq!(
            judge(
                "s_init",
                Condition::CompletedSuccessfully,
                &svc,
                &[t.clone()],
                &nodes(),
                true
            ),
            GateState::Failed("job s_init failed: task: non-zero exit (1)".into())
        );
        t["Status"] = json!({"State": "complete"});
        assert_eq!(
            judge(
                "s_init",
                Condition::CompletedSuccessfully,
                &svc,
                &[t],
                &nodes(),
                true
            ),
            GateState::Met
        );
    }

    #[test]
    fn stack_needs_gate_every_service_of_the_needed_stack() {
        use crate::model::{DesiredObject, DesiredStack};
        let obj = |name: &str, source: Value| DesiredObject {
            name: name.into(),
            spec: json!({}),
            source,
        };
        let desired = Desired {
            stacks: vec![
                DesiredStack {
                    name: "app".into(),
                    services: vec![
                        obj("app_web", json!({"depends_on": ["db"]})),
                        obj("app_db", json!({})),
                    ],
                    ..Default::default()
                },
                DesiredStack {
                    name: "infra".into(),
                    services: vec![
                        obj("infra_proxy", json!({})),
                        obj("infra_init", json!({"deploy": {"mode": "replicated-job"}})),
                    ],
                    ..Default::default()
                },
            ],
            needs: BTreeMap::from([("app".into(), vec!["infra".into()])]),
            ..Default::default()
        };
        let order = Order::from_desired(&desired);
        let web: Vec<(&str, Condition)> = order.gates["app_web"]
            .iter()
            .map(|g| (g.service.as_str(), g.condition))
            .collect();
        assert_eq!(
            web,
            vec![
                ("app_db", Condition::Started),
                ("infra_proxy", Condition::Healthy),
                ("infra_init", Condition::CompletedSuccessfully)
            ]
        );
        assert_eq!(order.gates["app_db"].len(), 2);
        assert!(!order.gates.contains_key("infra_proxy"));
    }

    #[test]
    fn the_waiting_line_says_healthy_only_for_a_health_check() {
        let checked = json!({"Spec": {"TaskTemplate": {"ContainerSpec":
            {"Healthcheck": {"Test": ["CMD", "true"]}}}}});
        let disabled = json!({"Spec": {"TaskTemplate": {"ContainerSpec":
            {"Healthcheck": {"Test": ["NONE"]}}}}});
        assert_eq!(task_word(&checked, Condition::Healthy), "healthy");
        assert_eq!(task_word(&checked, Condition::Started), "started");
        assert_eq!(task_word(&disabled, Condition::Healthy), "running");
        assert_eq!(task_word(&json!({}), Condition::Healthy), "running");
    }

    #[test]
    fn an_update_in_progress_waits_and_a_finished_one_is_judged_by_tasks() {
        let plain = |line: String| line;
        let svc = json!({"UpdateStatus": {"State": "updating"}});
        assert_eq!(
            judge_update("s_a", &svc, &plain),
            Some(GateState::Waiting("s_a: updating".into()))
        );
        let svc = json!({"UpdateStatus": {"State": "paused", "Message": "why"}});
        assert_eq!(
            judge_update("s_a", &svc, &plain),
            Some(GateState::Failed("s_a: update paused: why".into()))
        );
        let svc = json!({"UpdateStatus": {"State": "completed"}});
        assert_eq!(judge_update("s_a", &svc, &plain), None);
    }

    #[test]
    fn a_timeout_blames_the_first_gate_still_waiting() {
        let (a, b) = (
            gate("s_a", Condition::Started),
            gate("s_b", Condition::Healthy),
        );
        let waiting = vec!["s_b: 0/1 healthy".to_string()];
        assert_eq!(
            timed_out(&[&a, &b], &waiting, Duration::from_secs(30)),
            GateFailure {
                dependency: "s_b".into(),
                why: "timed out after 30s (s_b: 0/1 healthy)".into()
            }
        );
        let odd = vec!["something else".to_string()];
        assert_eq!(
            timed_out(&[&a, &b], &odd, Duration::from_secs(1)).dependency,
            "s_a"
        );
    }
}
