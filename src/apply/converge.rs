//! Waiting for services to converge: the desired number of tasks of the
//! current spec running (or, for jobs, completed), judged the way
//! `docker service create` judges its progress display.
use crate::engine::{Engine, EngineError};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// How often a waiting service is polled.
const POLL: Duration = Duration::from_millis(500);

/// Where one service stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Converged,
    Pending,
    /// It will not converge by waiting (update paused or rolled back).
    Failed(String),
}

/// A verdict and the line shown to people (`web: 2/4 running`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Assessment {
    pub verdict: Verdict,
    pub line: String,
}

/// Wait until service `id` converges or `deadline` passes; `Err` carries
/// why it did not. Prints a progress line whenever the state changes.
pub(crate) async fn wait_service(
    engine: &Engine,
    name: &str,
    id: &str,
    deadline: Instant,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), String> {
    let mut last_line = String::new();
    loop {
        let assessment = match poll_once(engine, name, id).await {
            Ok(a) => a,
            Err(e) => return Err(e.to_string()),
        };
        if assessment.line != last_line {
            progress(&assessment.line);
            last_line = assessment.line.clone();
        }
        match assessment.verdict {
            Verdict::Converged => return Ok(()),
            Verdict::Failed(reason) => return Err(reason),
            Verdict::Pending => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("timed out ({last_line})"));
        }
        tokio::time::sleep_until(deadline.min(now + POLL)).await;
    }
}

async fn poll_once(engine: &Engine, name: &str, id: &str) -> Result<Assessment, EngineError> {
    let service = engine.inspect_service(id).await?;
    let tasks = engine.service_tasks(id, true).await?;
    let active = active_nodes(engine).await?;
    let mut a = assess(name, &service, &tasks, &active);
    if let Verdict::Failed(reason) = &a.verdict {
        // After Swarm rolled an update back, the up-to-date tasks are the
        // old spec's: the error that made it roll back is on a newer one.
        if first_task_error(&tasks).is_none() {
            let all = engine.service_tasks(id, false).await?;
            if let Some(err) = newest_task_error(&all) {
                let reason = format!("{reason}; {err}");
                a.line = format!("{name}: {reason}");
                a.verdict = Verdict::Failed(reason);
            }
        }
    }
    Ok(a)
}

/// The ids of the swarm's nodes that are not down: tasks on the others
/// do not count.
pub(crate) async fn active_nodes(engine: &Engine) -> Result<HashSet<String>, EngineError> {
    let facts = engine.cluster_facts().await?;
    Ok(facts
        .nodes
        .into_iter()
        .filter(|n| n.state != "down")
        .map(|n| n.id)
        .collect())
}

/// The error of the task that changed last (`task: non-zero exit (1)`).
fn newest_task_error(tasks: &[Value]) -> Option<String> {
    tasks
        .iter()
        .filter(|t| t["Status"]["Err"].as_str().is_some_and(|e| !e.is_empty()))
        .max_by(|a, b| {
            a["UpdatedAt"]
                .as_str()
                .unwrap_or_default()
                .cmp(b["UpdatedAt"].as_str().unwrap_or_default())
        })
        .and_then(|t| t["Status"]["Err"].as_str())
        .map(str::to_string)
}

/// Judge one service from its inspect output, its up-to-date tasks and
/// the nodes that are not down. Pure.
pub(crate) fn assess(
    name: &str,
    service: &Value,
    tasks: &[Value],
    active_nodes: &HashSet<String>,
) -> Assessment {
    let message = service["UpdateStatus"]["Message"]
        .as_str()
        .unwrap_or_default();
    let task_error = first_task_error(tasks);
    let failed = |what: &str| {
        let reason = match &task_error {
            Some(err) => format!("{what}: {message}; {err}"),
            None => format!("{what}: {message}"),
        };
        Assessment {
            line: format!("{name}: {reason}"),
            verdict: Verdict::Failed(reason),
        }
    };
    let updating = match update_state(service) {
        UpdateState::Paused => return failed("update paused"),
        UpdateState::RollbackStarted => return failed("update failed, rolling back"),
        UpdateState::RollbackPaused => return failed("rollback paused"),
        UpdateState::RollbackCompleted => return failed("update rolled back"),
        UpdateState::Updating => true,
        UpdateState::Settled => false,
    };
    // A job whose task failed is a failed rollout, not a wait: Swarm
    // would retry it, but its dependants must not start.
    if let Some(err) = failed_job_error(service, tasks) {
        return Assessment {
            verdict: Verdict::Failed(format!("job failed: {err}")),
            line: format!("{name}: job failed: {err}"),
        };
    }
    let Some((done, mut line)) = task_progress(name, service, tasks, active_nodes) else {
        let mode = &service["Spec"]["Mode"];
        return Assessment {
            verdict: Verdict::Failed(format!("unknown service mode {mode}")),
            line: format!("{name}: unknown service mode {mode}"),
        };
    };
    if updating {
        line.push_str(" (updating)");
    }
    if let (false, Some(err)) = (done, &task_error) {
        line.push_str(&format!("; {err}"));
    }
    Assessment {
        verdict: if done && !updating {
            Verdict::Converged
        } else {
            Verdict::Pending
        },
        line,
    }
}

/// Where a service's update stands (`UpdateStatus.State`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum UpdateState {
    /// No update under way (none, or completed).
    Settled,
    Updating,
    Paused,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

pub(crate) fn update_state(service: &Value) -> UpdateState {
    match service["UpdateStatus"]["State"]
        .as_str()
        .unwrap_or_default()
    {
        "paused" => UpdateState::Paused,
        "rollback_started" => UpdateState::RollbackStarted,
        "rollback_paused" => UpdateState::RollbackPaused,
        "rollback_completed" => UpdateState::RollbackCompleted,
        "updating" => UpdateState::Updating,
        _ => UpdateState::Settled,
    }
}

/// Whether the tasks of the service's mode are all there: (done, the
/// progress line `web: 2/4 running`); `None` for a mode shoal does not
/// know.
fn task_progress(
    name: &str,
    service: &Value,
    tasks: &[Value],
    active_nodes: &HashSet<String>,
) -> Option<(bool, String)> {
    let mode = &service["Spec"]["Mode"];
    Some(if let Some(replicated) = mode.get("Replicated") {
        let want = replicated["Replicas"].as_u64().unwrap_or(1) as usize;
        let running = count_running(pick_latest(tasks, "Slot", active_nodes).values());
        (running == want, format!("{name}: {running}/{want} running"))
    } else if mode.get("Global").is_some() {
        let by_node = pick_latest(tasks, "NodeID", active_nodes);
        let running = count_running(by_node.values());
        let want = by_node.len();
        if want == 0 {
            (false, format!("{name}: waiting for tasks (global)"))
        } else {
            (
                running == want,
                format!("{name}: {running}/{want} running (global)"),
            )
        }
    } else if let Some(job) = mode.get("ReplicatedJob") {
        let current = current_iteration(service, tasks);
        let want = job_completions(job);
        let completed = current.iter().filter(|t| state(t) == "complete").count();
        (
            completed >= want,
            format!("{name}: {completed}/{want} completed"),
        )
    } else if mode.get("GlobalJob").is_some() {
        let current = current_iteration(service, tasks);
        let by_node = pick_latest(&current, "NodeID", active_nodes);
        let completed = by_node.values().filter(|t| state(t) == "complete").count();
        let want = by_node.len();
        (
            want > 0 && completed == want,
            format!("{name}: {completed}/{want} completed (global job)"),
        )
    } else {
        return None;
    })
}

/// For a job, the error of a task of its current iteration that failed
/// or was rejected (`failed` when it has none); `None` for other modes
/// and for jobs without such a task.
pub(crate) fn failed_job_error(service: &Value, tasks: &[Value]) -> Option<String> {
    let mode = &service["Spec"]["Mode"];
    if mode.get("ReplicatedJob").is_none() && mode.get("GlobalJob").is_none() {
        return None;
    }
    current_iteration(service, tasks)
        .iter()
        .find(|t| matches!(state(t), "failed" | "rejected"))
        .map(|t| t["Status"]["Err"].as_str().unwrap_or("failed").to_string())
}

/// How many completions a replicated job wants (`TotalCompletions`, else
/// `MaxConcurrent`, else 1).
pub(crate) fn job_completions(job: &Value) -> usize {
    job["TotalCompletions"]
        .as_u64()
        .or_else(|| job["MaxConcurrent"].as_u64())
        .unwrap_or(1) as usize
}

/// Order of task states, as the docker CLI ranks them; 0 for states it
/// ignores (`remove`, `orphaned`).
pub(crate) fn rank(state: &str) -> u8 {
    match state {
        "new" => 1,
        "allocated" => 2,
        "pending" => 3,
        "assigned" => 4,
        "accepted" => 5,
        "preparing" => 6,
        "ready" => 7,
        "starting" => 8,
        "running" => 9,
        "complete" => 10,
        "shutdown" => 11,
        "failed" => 12,
        "rejected" => 13,
        _ => 0,
    }
}

pub(crate) fn state(task: &Value) -> &str {
    task["Status"]["State"].as_str().unwrap_or_default()
}

fn desired_state(task: &Value) -> &str {
    task["DesiredState"].as_str().unwrap_or_default()
}

/// One task per slot (or node): the one with the lowest desired state,
/// then the lowest observed state (a restarting slot has several), skipping
/// tasks on nodes that are down.
pub(crate) fn pick_latest<'a>(
    tasks: &'a [Value],
    key: &str,
    active_nodes: &HashSet<String>,
) -> BTreeMap<String, &'a Value> {
    let mut by_key: BTreeMap<String, &Value> = BTreeMap::new();
    for task in tasks {
        if rank(desired_state(task)) == 0 || rank(state(task)) == 0 {
            continue;
        }
        let node = task["NodeID"].as_str().unwrap_or_default();
        if !node.is_empty() && !active_nodes.contains(node) {
            continue;
        }
        let k = task[key].to_string();
        let better = match by_key.get(&k) {
            None => true,
            Some(existing) => {
                let (ed, td) = (rank(desired_state(existing)), rank(desired_state(task)));
                td < ed || (td == ed && rank(state(task)) < rank(state(existing)))
            }
        };
        if better {
            by_key.insert(k, task);
        }
    }
    by_key
}

pub(crate) fn count_running<'a>(tasks: impl Iterator<Item = &'a &'a Value>) -> usize {
    tasks
        .filter(|t| rank(desired_state(t)) <= rank("running") && state(t) == "running")
        .count()
}

/// Tasks of the job's current iteration.
pub(crate) fn current_iteration(service: &Value, tasks: &[Value]) -> Vec<Value> {
    let iteration = &service["JobStatus"]["JobIteration"]["Index"];
    tasks
        .iter()
        .filter(|t| iteration.is_null() || &t["JobIteration"]["Index"] == iteration)
        .cloned()
        .collect()
}

/// The first task error (`no suitable node ...`, `task: non-zero exit`).
pub(crate) fn first_task_error(tasks: &[Value]) -> Option<String> {
    tasks
        .iter()
        .filter_map(|t| t["Status"]["Err"].as_str())
        .find(|e| !e.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(slot: u64, node: &str, desired: &str, state: &str) -> Value {
        json!({"Slot": slot, "NodeID": node, "DesiredState": desired,
               "Status": {"State": state}})
    }

    fn nodes() -> HashSet<String> {
        ["n1".to_string(), "n2".to_string()].into()
    }

    #[test]
    fn replicated_counts_running_tasks_per_slot() {
        let svc = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 2}}}});
        let tasks = [
            task(1, "n1", "running", "running"),
            task(2, "n2", "running", "starting"),
            task(2, "n2", "shutdown", "failed"),
        ];
        let a = assess("s_web", &svc, &tasks, &nodes());
        assert_eq!(a.verdict, Verdict::Pending);
        assert_eq!(a.line, "s_web: 1/2 running");
        let tasks = [
            task(1, "n1", "running", "running"),
            task(2, "n2", "running", "running"),
        ];
        assert_eq!(
            assess("s_web", &svc, &tasks, &nodes()).verdict,
            Verdict::Converged
        );
    }

    #[test]
    fn tasks_on_down_nodes_do_not_count() {
        let svc = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 1}}}});
        let tasks = [task(1, "gone", "running", "running")];
        assert_eq!(
            assess("s", &svc, &tasks, &nodes()).verdict,
            Verdict::Pending
        );
    }

    #[test]
    fn unschedulable_tasks_show_their_error() {
        let svc = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 1}}}});
        let mut t = task(1, "", "running", "pending");
        t["Status"]["Err"] =
            json!("no suitable node (scheduling constraints not satisfied on 1 node)");
        let a = assess("s_web", &svc, &[t], &nodes());
        assert_eq!(a.verdict, Verdict::Pending);
        assert!(
            a.line.ends_with(
                "0/1 running; no suitable node (scheduling constraints not satisfied on 1 node)"
            ),
            "{}",
            a.line
        );
    }

    #[test]
    fn update_states_decide_before_counts() {
        let mut svc = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 1}}},
            "UpdateStatus": {"State": "updating"}});
        let tasks = [task(1, "n1", "running", "running")];
        assert_eq!(
            assess("s", &svc, &tasks, &nodes()).verdict,
            Verdict::Pending
        );
        svc["UpdateStatus"] =
            json!({"State": "rollback_completed", "Message": "rollback completed"});
        assert!(
            matches!(assess("s", &svc, &tasks, &nodes()).verdict, Verdict::Failed(m) if m.contains("rolled back"))
        );
        svc["UpdateStatus"] = json!({"State": "completed"});
        assert_eq!(
            assess("s", &svc, &tasks, &nodes()).verdict,
            Verdict::Converged
        );
    }

    #[test]
    fn failures_carry_the_task_error() {
        let svc = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 1}}},
            "UpdateStatus": {"State": "paused", "Message": "update paused due to failure or early termination of task x"}});
        let mut t = task(1, "n1", "shutdown", "failed");
        t["Status"]["Err"] = json!("task: non-zero exit (1)");
        let a = assess("s_web", &svc, &[t.clone()], &nodes());
        assert_eq!(
            a.verdict,
            Verdict::Failed("update paused: update paused due to failure or early termination of task x; task: non-zero exit (1)".into())
        );
        let job = json!({"Spec": {"Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}}});
        let a = assess("s_init", &job, &[t], &nodes());
        assert_eq!(
            a.verdict,
            Verdict::Failed("job failed: task: non-zero exit (1)".into())
        );
    }

    #[test]
    fn global_needs_a_running_task_per_node() {
        let svc = json!({"Spec": {"Mode": {"Global": {}}}});
        assert_eq!(assess("s", &svc, &[], &nodes()).verdict, Verdict::Pending);
        let tasks = [
            task(0, "n1", "running", "running"),
            task(0, "n2", "running", "running"),
        ];
        let a = assess("s", &svc, &tasks, &nodes());
        assert_eq!(
            (a.verdict, a.line.as_str()),
            (Verdict::Converged, "s: 2/2 running (global)")
        );
    }

    #[test]
    fn replicated_job_counts_completions_of_the_current_iteration() {
        let svc = json!({"Spec": {"Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 2}}},
            "JobStatus": {"JobIteration": {"Index": 7}}});
        let mut old = task(1, "n1", "complete", "complete");
        old["JobIteration"] = json!({"Index": 3});
        let mut done = task(1, "n1", "complete", "complete");
        done["JobIteration"] = json!({"Index": 7});
        let a = assess("s_job", &svc, &[old, done.clone()], &nodes());
        assert_eq!(a.line, "s_job: 1/2 completed");
        let a = assess("s_job", &svc, &[done.clone(), done], &nodes());
        assert_eq!(a.verdict, Verdict::Converged);
    }

    #[test]
    fn update_states_are_read_from_the_update_status() {
        let with = |state: &str| json!({"UpdateStatus": {"State": state}});
        assert_eq!(update_state(&json!({})), UpdateState::Settled);
        assert_eq!(update_state(&with("completed")), UpdateState::Settled);
        assert_eq!(update_state(&with("updating")), UpdateState::Updating);
        assert_eq!(update_state(&with("paused")), UpdateState::Paused);
        assert_eq!(
            update_state(&with("rollback_started")),
            UpdateState::RollbackStarted
        );
        assert_eq!(
            update_state(&with("rollback_paused")),
            UpdateState::RollbackPaused
        );
        assert_eq!(
            update_state(&with("rollback_completed")),
            UpdateState::RollbackCompleted
        );
    }

    #[test]
    fn only_a_job_of_the_current_iteration_fails_on_a_failed_task() {
        let mut failed = task(1, "n1", "complete", "rejected");
        failed["JobIteration"] = json!({"Index": 2});
        let job = json!({"Spec": {"Mode": {"GlobalJob": {}}},
            "JobStatus": {"JobIteration": {"Index": 2}}});
        assert_eq!(
            failed_job_error(&job, &[failed.clone()]).as_deref(),
            Some("failed")
        );
        let next = json!({"Spec": {"Mode": {"GlobalJob": {}}},
            "JobStatus": {"JobIteration": {"Index": 3}}});
        assert_eq!(failed_job_error(&next, &[failed.clone()]), None);
        let svc = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 1}}}});
        assert_eq!(failed_job_error(&svc, &[failed]), None);
    }

    #[test]
    fn a_replicated_job_wants_its_total_completions() {
        assert_eq!(
            job_completions(&json!({"TotalCompletions": 3, "MaxConcurrent": 2})),
            3
        );
        assert_eq!(job_completions(&json!({"MaxConcurrent": 2})), 2);
        assert_eq!(job_completions(&json!({})), 1);
    }

    #[test]
    fn an_unknown_mode_has_no_progress_and_fails() {
        let svc = json!({"Spec": {"Mode": {"Sideways": {}}}});
        assert_eq!(task_progress("s", &svc, &[], &nodes()), None);
        assert_eq!(
            assess("s", &svc, &[], &nodes()).verdict,
            Verdict::Failed(r#"unknown service mode {"Sideways":{}}"#.into())
        );
    }
}
