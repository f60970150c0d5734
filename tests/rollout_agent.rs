//! The agent rolls a failed commit back unattended, reports it on
//! `/status` and `/metrics`, does not retry it, and applies the next
//! commit (or the same one on `POST /sync`). Real swarm, `file://` remote.
mod common;

use common::agent::*;
use common::*;
use std::time::Duration;

fn app(command: &str, replicas: u32) -> String {
    format!(
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    command: {command}\n    stop_grace_period: 1s\n    deploy:\n      replicas: {replicas}\n      update_config:\n        monitor: 2s\n"
    )
}

/// The agent's lease config goes with the test.
struct RemoveLease(String);

impl Drop for RemoveLease {
    fn drop(&mut self) {
        docker_quiet(&["config", "rm", &self.0]);
    }
}

fn passes(agent: &Agent) -> usize {
    agent.logs().matches("reconcile finished").count()
}

#[test]
fn the_agent_rolls_a_failing_commit_back_reports_it_and_does_not_retry_until_a_new_commit() {
    let f = AppStack::pushed("roag");
    let (stack, svc, lease, remote) = (&f.stack, &f.svc, &f.lease, &f.remote);
    let _lease = RemoveLease(lease.clone());
    let file = format!("stacks/{stack}/stack.yml");
    remote.write(&file, &app(r#"["sleep", "3600"]"#, 1));
    remote.push("good");
    // A generic webhook receiver for the notifications.
    let r = common::receiver::Receiver::start();
    let hook = r.url("generic+http", "/hook");
    let agent = Agent::start(remote, lease, "2s", &["--notify", &hook]);
    poll("good commit applied", Duration::from_secs(30), || {
        (stack_outcome(&agent, stack).as_deref() == Some("ok")
            && service_spec(svc)?["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"]
                == serde_json::json!(["sleep", "3600"]))
        .then_some(())
    });
    let good = service_spec(svc).unwrap()["Spec"].clone();

    // A commit whose tasks exit 1.
    remote.write(&file, &app(r#"["sh", "-c", "exit 1"]"#, 1));
    remote.push("bad command");
    let status = poll("rolled back", Duration::from_secs(90), || {
        let s = agent.status();
        (s["stacks"][stack.as_str()]["outcome"] == "rolled-back").then_some(s)
    });
    let st = &status["stacks"][stack.as_str()];
    assert_eq!(st["status"], "apply-failed", "{st}");
    assert!(st["failed_commit"].is_string(), "{st}");
    assert_ne!(st["failed_commit"], st["applied_commit"], "{st}");
    let error = st["error"].as_str().unwrap();
    assert!(error.contains("task: non-zero exit (1)"), "{error}");
    assert!(error.contains("rolled back: restored"), "{error}");
    let metrics = agent.metrics();
    assert!(
        metrics.contains(&format!("shoal_stack_failed_commit{{stack=\"{stack}\"}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "shoal_stack_status{{stack=\"{stack}\",status=\"apply-failed\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("shoal_reconciles_total{outcome=\"rolled-back\"}")
            && !metrics.contains("shoal_reconciles_total{outcome=\"rolled-back\"} 0"),
        "{metrics}"
    );
    // Back at the good spec, running.
    poll("restored and running", Duration::from_secs(30), || {
        let s = service_spec(svc)?;
        (s["Spec"]["TaskTemplate"]["ContainerSpec"] == good["TaskTemplate"]["ContainerSpec"]
            && s["UpdateStatus"]["State"] != "updating")
            .then_some(())
    });
    // One rolled_back notification naming the stack, the failed commit
    // and the task error.
    let rolled_back = |r: &common::receiver::Receiver| -> Vec<serde_json::Value> {
        r.on("/hook")
            .iter()
            .map(|x| x.json())
            .filter(|d| d["event"] == "rolled_back")
            .collect()
    };
    let sent = poll("rolled_back notification", Duration::from_secs(30), || {
        let v = rolled_back(&r);
        (!v.is_empty()).then_some(v)
    });
    let body = sent[0].to_string();
    assert!(body.contains(stack.as_str()), "{body}");
    assert_eq!(sent[0]["commit"]["id"], st["failed_commit"], "{body}");
    assert!(body.contains("non-zero exit (1)"), "{body}");
    let version = service_version(svc);
    // Several more passes (polls every 2 s) leave it alone.
    let seen = passes(&agent);
    poll("three more passes", Duration::from_secs(30), || {
        (passes(&agent) >= seen + 3).then_some(())
    });
    assert_eq!(
        service_version(svc),
        version,
        "the failed commit was retried"
    );
    assert_eq!(
        agent
            .logs()
            .matches("apply failed and was rolled back")
            .count(),
        1
    );
    assert_eq!(rolled_back(&r).len(), 1, "the same rollback notified twice");

    // On request it is tried again (and fails again, rolled back again).
    let (code, _) = http(
        agent.port,
        "POST",
        &format!("/sync?stack={stack}"),
        &[("X-Gitlab-Token", SECRET)],
        b"",
    )
    .unwrap();
    assert_eq!(code, 202);
    let (code, _) = http(
        agent.port,
        "POST",
        "/sync",
        &[("X-Gitlab-Token", "wrong")],
        b"",
    )
    .unwrap();
    assert_eq!(code, 401);
    poll("retried on request", Duration::from_secs(90), || {
        (agent
            .logs()
            .matches("apply failed and was rolled back")
            .count()
            >= 2)
            .then_some(())
    });

    // A new commit is applied, and clears the mark.
    remote.write(&file, &app(r#"["sleep", "3600"]"#, 2));
    remote.push("fixed, two replicas");
    let applied = wait_until(Duration::from_secs(60), || {
        let s = agent.status();
        let st = &s["stacks"][stack.as_str()];
        st["status"] == "synced" && st["failed_commit"].is_null() && replicas(svc) == Some(2)
    });
    assert!(
        applied,
        "new commit not applied: {}\n{}",
        agent.status(),
        agent.logs()
    );
}
