//! Drift is seen in seconds: the Docker event stream of the real swarm
//! kicks a reconcile when a stack's service is changed or removed by hand.
mod common;

use shoal::agent::status::AgentStatus;
use shoal::agent::trigger::{Reason, Trigger};
use shoal::agent::watch;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Removes the test service even when an assertion fails.
struct RemoveService(String);

impl Drop for RemoveService {
    fn drop(&mut self) {
        common::docker_quiet(&["service", "rm", &self.0]);
    }
}

#[tokio::test]
async fn a_hand_made_change_to_a_stack_service_kicks_a_reconcile() {
    let docker = common::bollard().await;
    let stack = format!("agent_ev{}", std::process::id());
    let service = format!("{stack}_app");
    common::docker(&[
        "service",
        "create",
        "--quiet",
        "--detach",
        "--name",
        &service,
        "--label",
        &format!("com.docker.stack.namespace={stack}"),
        "busybox:latest",
        "sleep",
        "3600",
    ]);

    let _cleanup = RemoveService(service.clone());
    let mut status = AgentStatus::new("events-test", true);
    status.stacks.insert(
        stack.clone(),
        shoal::agent::status::StackStatus {
            commit: "c1".into(),
            applied_commit: Some("c1".into()),
            outcome: shoal::agent::status::Outcome::NoChange,
            status: shoal::agent::status::StackState::Synced,
            summary: Default::default(),
            drift: false,
            error: None,
            last_reconcile: std::time::SystemTime::now(),
            failures: 0,
            failed_commit: None,
        },
    );
    let status = Arc::new(Mutex::new(status));
    let trigger = Arc::new(Trigger::new());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(watch::docker_events(
        docker,
        status,
        trigger.clone(),
        shutdown.clone(),
    ));
    // Let the event stream connect.
    tokio::time::sleep(Duration::from_millis(500)).await;

    common::docker(&[
        "service",
        "update",
        "--quiet",
        "--detach",
        "--env-add",
        "DRIFT=1",
        &service,
    ]);
    tokio::time::timeout(Duration::from_secs(10), trigger.wait())
        .await
        .expect("an update event kicks a reconcile");
    assert_eq!(trigger.take_reasons(), vec![Reason::DockerEvent]);

    common::docker(&["service", "rm", &service]);
    tokio::time::timeout(Duration::from_secs(10), trigger.wait())
        .await
        .expect("a remove event kicks a reconcile");
    assert_eq!(trigger.take_reasons(), vec![Reason::DockerEvent]);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the watcher stops on shutdown")
        .unwrap();
}
