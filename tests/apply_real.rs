//! apply against the real swarm, with plans built by hand: creates in
//! dependency order converge, updates converge, a no-change plan writes
//! nothing, a service that cannot run fails by name, deletes clean up.
mod common;

use common::{docker, exists, StackGuard};
use serde_json::{json, Value};
use shoal::apply::{apply, ApplyError, ApplyOptions};
use shoal::engine::Engine;
use shoal::model::{Action, Change, Plan};
use shoal::model::{Kind, LiveStack};
use std::sync::Mutex;
use std::time::Duration;

const NS: &str = "com.docker.stack.namespace";

fn change(action: Action, kind: Kind, name: &str, stack: &str, desired: Option<Value>) -> Change {
    Change {
        action,
        kind,
        name: name.into(),
        stack: stack.into(),
        diff: vec![],
        desired,
        live_id: None,
        live_version: None,
    }
}

/// A Change against a live object (update, delete, noop).
fn on_live(
    action: Action,
    kind: Kind,
    live: &LiveStack,
    name: &str,
    desired: Option<Value>,
) -> Change {
    let obj = live
        .objects(kind)
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("{kind} {name} live"));
    Change {
        live_id: Some(obj.id.clone()),
        live_version: Some(obj.version),
        ..change(action, kind, name, &live.name, desired)
    }
}

fn web_spec(stack: &str, env: &str, replicas: u64) -> Value {
    json!({
        "Name": format!("{stack}_web"),
        "Labels": {NS: stack},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "busybox:1.36",
                "Labels": {NS: stack},
                "Env": [env],
                // busybox's sleep ignores SIGTERM; don't wait 10s per task.
                "StopGracePeriod": 1_000_000_000u64,
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000u64},
                "Configs": [{"ConfigName": format!("{stack}_conf"),
                    "File": {"Name": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 292}}],
                "Secrets": [{"SecretName": format!("{stack}_sec"),
                    "File": {"Name": "app_secret", "UID": "0", "GID": "0", "Mode": 292}}]
            },
            "Networks": [{"Target": format!("{stack}_net"), "Aliases": ["web"]}]
        },
        "Mode": {"Replicated": {"Replicas": replicas}},
        "UpdateConfig": {"Parallelism": 2, "Monitor": 1_000_000_000u64, "Order": "stop-first"}
    })
}

/// Collects progress lines.
struct Lines(Mutex<Vec<String>>);

impl Lines {
    fn new() -> Lines {
        Lines(Mutex::new(Vec::new()))
    }
    fn push(&self, l: &str) {
        self.0.lock().unwrap().push(l.to_string());
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn opts(timeout: u64) -> ApplyOptions {
    ApplyOptions {
        timeout: Duration::from_secs(timeout),
        ..ApplyOptions::default()
    }
}

#[tokio::test]
async fn create_update_noop_delete_lifecycle() {
    let stack = "engine_ap1";
    let _cleanup = StackGuard::new(&[stack]);
    let engine = Engine::connect().await.expect("connect");
    let labels = json!({ NS: stack });

    // Creates: listed services-first to show apply orders them itself.
    let plan = Plan {
        changes: vec![
            change(
                Action::Create,
                Kind::Service,
                "engine_ap1_web",
                stack,
                Some(web_spec(stack, "V=1", 2)),
            ),
            change(
                Action::Create,
                Kind::Secret,
                "engine_ap1_sec",
                stack,
                Some(json!({"Name": "engine_ap1_sec", "Labels": labels, "Data": "czNjcjN0"})),
            ),
            change(
                Action::Create,
                Kind::Config,
                "engine_ap1_conf",
                stack,
                Some(json!({"Name": "engine_ap1_conf", "Labels": labels, "Data": "aGVsbG8="})),
            ),
            change(
                Action::Create,
                Kind::Network,
                "engine_ap1_net",
                stack,
                Some(
                    json!({"Name": "engine_ap1_net", "Driver": "overlay", "Labels": labels, "Attachable": true, "Scope": "swarm"}),
                ),
            ),
        ],
    };
    let lines = Lines::new();
    let t = std::time::Instant::now();
    let report = apply(&engine, &plan, &opts(90), &|l| lines.push(l))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:?}", lines.all()));
    eprintln!("create took {:?}: {:?}", t.elapsed(), lines.all());
    assert_eq!(report.writes, 4);
    let created: Vec<String> = report.created.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        created,
        [
            "network engine_ap1_net",
            "config engine_ap1_conf",
            "secret engine_ap1_sec",
            "service engine_ap1_web"
        ]
    );
    assert!(report.not_converged.is_empty());
    assert!(
        lines
            .all()
            .iter()
            .any(|l| l == "engine_ap1_web: 2/2 running"),
        "{:?}",
        lines.all()
    );
    let running = docker(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
        "engine_ap1_web",
    ]);
    assert_eq!(
        running.lines().filter(|l| l.starts_with("Running")).count(),
        2,
        "{running}"
    );

    // Nothing to change: no writes, the service version stays.
    let live = engine.live_stack(stack).await.unwrap();
    let version_before = live.services[0].version;
    let noop = Plan {
        changes: [Kind::Network, Kind::Config, Kind::Secret, Kind::Service]
            .iter()
            .flat_map(|k| {
                live.objects(*k)
                    .iter()
                    .map(|o| on_live(Action::Noop, *k, &live, &o.name, None))
            })
            .collect(),
    };
    assert_eq!(noop.changes.len(), 4);
    let report = apply(&engine, &noop, &opts(30), &|_| {}).await.unwrap();
    assert_eq!(report.writes, 0);
    assert!(report.created.is_empty() && report.updated.is_empty() && report.deleted.is_empty());
    assert_eq!(
        engine.live_stack(stack).await.unwrap().services[0].version,
        version_before
    );

    // Update: converges on the new spec.
    let update = Plan {
        changes: vec![on_live(
            Action::Update,
            Kind::Service,
            &live,
            "engine_ap1_web",
            Some(web_spec(stack, "V=2", 2)),
        )],
    };
    let lines = Lines::new();
    let t = std::time::Instant::now();
    let report = apply(&engine, &update, &opts(90), &|l| lines.push(l))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:?}", lines.all()));
    eprintln!("update took {:?}: {:?}", t.elapsed(), lines.all());
    assert_eq!((report.writes, report.updated.len()), (1, 1));
    let env = docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
        "engine_ap1_web",
    ]);
    assert_eq!(env, r#"["V=2"]"#);
    let tasks = docker(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.ID}}",
        "engine_ap1_web",
    ]);
    for task in tasks.lines() {
        let env = docker(&[
            "inspect",
            "--format",
            "{{json .Spec.ContainerSpec.Env}}",
            task,
        ]);
        assert_eq!(env, r#"["V=2"]"#, "task {task} runs the new spec");
    }

    // A stale version (the plan was made before the update above): apply
    // re-reads, sees the service already matches, and writes nothing.
    let lines = Lines::new();
    let report = apply(&engine, &update, &opts(60), &|l| lines.push(l))
        .await
        .unwrap();
    assert_eq!(report.writes, 0, "{:?}", lines.all());
    assert!(
        lines
            .all()
            .iter()
            .any(|l| l.contains("changed on the swarm meanwhile and now matches")),
        "{:?}",
        lines.all()
    );

    // Deletes, listed network-first: apply removes users first.
    let live = engine.live_stack(stack).await.unwrap();
    let delete = Plan {
        changes: vec![
            on_live(Action::Delete, Kind::Network, &live, "engine_ap1_net", None),
            on_live(Action::Delete, Kind::Config, &live, "engine_ap1_conf", None),
            on_live(Action::Delete, Kind::Secret, &live, "engine_ap1_sec", None),
            on_live(Action::Delete, Kind::Service, &live, "engine_ap1_web", None),
        ],
    };
    let report = apply(&engine, &delete, &opts(60), &|_| {}).await.unwrap();
    let deleted: Vec<String> = report.deleted.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        deleted,
        [
            "service engine_ap1_web",
            "config engine_ap1_conf",
            "secret engine_ap1_sec",
            "network engine_ap1_net"
        ]
    );
    assert_eq!(report.writes, 4);
    for (kind, name) in [
        ("service", "web"),
        ("config", "conf"),
        ("secret", "sec"),
        ("network", "net"),
    ] {
        // The node drops its local copy of a removed swarm network once the
        // last task has left it.
        let gone = common::wait_until(Duration::from_secs(30), || {
            !exists(kind, &format!("engine_ap1_{name}"))
        });
        assert!(gone, "{kind} {name} still exists");
    }
}

#[tokio::test]
async fn stale_version_with_a_real_difference_is_retried() {
    let stack = "engine_ap2";
    let _cleanup = StackGuard::new(&[stack]);
    let engine = Engine::connect().await.expect("connect");
    let spec = |env: &str| {
        json!({"Name": "engine_ap2_web", "Labels": {NS: stack},
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox:1.36", "Env": [env]}},
            "Mode": {"Replicated": {"Replicas": 1}}})
    };
    let plan = Plan {
        changes: vec![change(
            Action::Create,
            Kind::Service,
            "engine_ap2_web",
            stack,
            Some(spec("V=1")),
        )],
    };
    apply(&engine, &plan, &opts(60), &|_| {}).await.unwrap();
    let live = engine.live_stack(stack).await.unwrap();
    // Someone else changes the service after the plan was made.
    docker(&[
        "service",
        "update",
        "--detach",
        "--quiet",
        "--env-add",
        "OTHER=1",
        "engine_ap2_web",
    ]);
    let plan = Plan {
        changes: vec![on_live(
            Action::Update,
            Kind::Service,
            &live,
            "engine_ap2_web",
            Some(spec("V=2")),
        )],
    };
    let lines = Lines::new();
    let report = apply(&engine, &plan, &opts(60), &|l| lines.push(l))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:?}", lines.all()));
    assert_eq!(report.writes, 1);
    assert!(
        lines
            .all()
            .iter()
            .any(|l| l.contains("still differs; retrying at version")),
        "{:?}",
        lines.all()
    );
    let env = docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
        "engine_ap2_web",
    ]);
    assert_eq!(env, r#"["V=2"]"#);
}

#[tokio::test]
async fn a_service_that_cannot_run_fails_by_name() {
    let stack = "engine_ap3";
    let _cleanup = StackGuard::new(&[stack]);
    let engine = Engine::connect().await.expect("connect");
    let ok = json!({"Name": "engine_ap3_ok", "Labels": {NS: stack},
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:1.36"}},
        "Mode": {"Replicated": {"Replicas": 1}}});
    let stuck = json!({"Name": "engine_ap3_stuck", "Labels": {NS: stack},
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:1.36"},
            "Placement": {"Constraints": ["node.hostname==nope"]}},
        "Mode": {"Replicated": {"Replicas": 1}}});
    let plan = Plan {
        changes: vec![
            change(
                Action::Create,
                Kind::Service,
                "engine_ap3_ok",
                stack,
                Some(ok),
            ),
            change(
                Action::Create,
                Kind::Service,
                "engine_ap3_stuck",
                stack,
                Some(stuck),
            ),
        ],
    };
    let started = std::time::Instant::now();
    let err = apply(&engine, &plan, &opts(6), &|_| {}).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(
        msg.contains("engine_ap3_stuck") && !msg.contains("engine_ap3_ok"),
        "{msg}"
    );
    assert!(msg.contains("no suitable node"), "{msg}");
    match err {
        ApplyError::NotConverged { report, .. } => {
            assert_eq!(report.not_converged, ["engine_ap3_stuck"]);
            assert_eq!(report.created.len(), 2);
        }
        other => panic!("expected NotConverged, got {other}"),
    }
}

#[tokio::test]
async fn network_update_is_refused_before_any_write() {
    let stack = "engine_ap4";
    let _cleanup = StackGuard::new(&[stack]);
    let engine = Engine::connect().await.expect("connect");
    let mut net = change(
        Action::Update,
        Kind::Network,
        "engine_ap4_net",
        stack,
        Some(json!({"Name": "engine_ap4_net"})),
    );
    net.live_id = Some("x".into());
    let plan = Plan {
        changes: vec![
            change(
                Action::Create,
                Kind::Config,
                "engine_ap4_conf",
                stack,
                Some(json!({"Name": "engine_ap4_conf", "Labels": {NS: stack}, "Data": "aGk="})),
            ),
            net,
        ],
    };
    let err = apply(&engine, &plan, &opts(10), &|_| {}).await.unwrap_err();
    assert!(matches!(err, ApplyError::NetworkUpdate { .. }), "{err}");
    assert!(err.to_string().contains("engine_ap4_net"));
    assert!(!exists("config", "engine_ap4_conf"), "nothing written");
}

#[tokio::test]
async fn an_update_that_rolls_back_fails_by_name() {
    let stack = "engine_ap5";
    let _cleanup = StackGuard::new(&[stack]);
    let engine = Engine::connect().await.expect("connect");
    let spec = |command: Option<&str>| {
        let mut s = json!({"Name": "engine_ap5_web", "Labels": {NS: stack},
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox:1.36", "StopGracePeriod": 1_000_000_000u64},
                "RestartPolicy": {"Condition": "on-failure", "Delay": 1_000_000_000u64}},
            "Mode": {"Replicated": {"Replicas": 1}},
            "UpdateConfig": {"Parallelism": 1, "FailureAction": "rollback", "Monitor": 3_000_000_000u64}});
        if let Some(c) = command {
            s["TaskTemplate"]["ContainerSpec"]["Command"] = json!(["sh", "-c", c]);
        }
        s
    };
    let plan = Plan {
        changes: vec![change(
            Action::Create,
            Kind::Service,
            "engine_ap5_web",
            stack,
            Some(spec(None)),
        )],
    };
    apply(&engine, &plan, &opts(60), &|_| {}).await.unwrap();
    let live = engine.live_stack(stack).await.unwrap();
    let plan = Plan {
        changes: vec![on_live(
            Action::Update,
            Kind::Service,
            &live,
            "engine_ap5_web",
            Some(spec(Some("exit 3"))),
        )],
    };
    let lines = Lines::new();
    let err = apply(&engine, &plan, &opts(90), &|l| lines.push(l))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("engine_ap5_web") && msg.contains("roll"),
        "{msg}\n{:?}",
        lines.all()
    );
    assert!(matches!(err, ApplyError::NotConverged { .. }), "{msg}");
}
