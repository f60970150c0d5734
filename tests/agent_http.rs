//! The agent end to end with a fake pipeline (a [`Reconciler`] of our own)
//! against the real swarm (lease, state records, events): health before and
//! after the first reconcile, metrics, status, webhook, shutdown.
mod common;

use shoal::agent::lease::HOLDER_LABEL;
use shoal::agent::{
    record, serve, swarm_config, webhook, AgentOptions, Planned, Reconciler, Snapshot, StackPlan,
};
use shoal::plan::Plan;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Blocks its first snapshot until released, then reports one stack in
/// sync.
struct Fake {
    stack: String,
    release: tokio::sync::watch::Receiver<bool>,
    snapshots: AtomicUsize,
}

impl Reconciler for Fake {
    async fn snapshot(&self) -> Result<Snapshot, String> {
        let mut r = self.release.clone();
        r.wait_for(|v| *v).await.map_err(|e| e.to_string())?;
        self.snapshots.fetch_add(1, Ordering::SeqCst);
        Ok(Snapshot { id: "c1".into() })
    }
    async fn plan(&self, _: &Snapshot) -> Result<Vec<StackPlan>, String> {
        Ok(vec![StackPlan {
            stack: self.stack.clone(),
            result: Ok(Planned {
                plan: Plan::default(),
                text: String::new(),
            }),
        }])
    }
    async fn apply(&self, _: &str, _: &Plan) -> Result<(), String> {
        Err("the fake never has changes to apply".into())
    }
}

/// `common::agent::http` off the async threads (the agent under test runs
/// on them): (status, body), status 0 when nothing answers.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let (method, path, body) = (method.to_string(), path.to_string(), body.to_vec());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        common::agent::http(addr.port(), &method, &path, &headers, &body)
    })
    .await
    .unwrap()
    .unwrap_or((0, String::new()))
}

async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + Duration::from_secs(15);
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_serves_health_metrics_status_webhook_and_stops_cleanly() {
    let docker = common::bollard().await;
    let tag = format!("{}", std::process::id());
    let stack = format!("agent_http{tag}");
    let lease_name = format!("agent-http-lease-{tag}");
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let fake = Arc::new(Fake {
        stack: stack.clone(),
        release: release_rx,
        snapshots: AtomicUsize::new(0),
    });
    let mut opts = AgentOptions::new("agent-http-test");
    opts.interval = Duration::from_secs(3600);
    opts.lease_name = lease_name.clone();
    opts.lease_ttl = Duration::from_secs(3);
    opts.webhook_secret = Some(b"topsecret".to_vec());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(serve(
        opts,
        fake.clone(),
        docker.clone(),
        listener,
        shutdown.clone(),
    ));

    // Before the first reconcile finished: 503 with the reason.
    let (code, body) = request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not ready"), "{body}");

    release_tx.send(true).unwrap();
    until("healthz 200", || async {
        request(addr, "GET", "/healthz", &[], b"").await.0 == 200
    })
    .await;

    let (code, metrics) = request(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(code, 200);
    for line in [
        "shoal_lease_holder 1".to_string(),
        "shoal_reconciles_total{outcome=\"no-change\"} 1".to_string(),
        format!("shoal_stack_status{{stack=\"{stack}\",status=\"synced\"}} 1"),
        "shoal_git_fetch_errors_total 0".to_string(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line}:\n{metrics}"
        );
    }

    let (code, status) = request(addr, "GET", "/status", &[], b"").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["identity"], "agent-http-test");
    assert_eq!(v["role"], "leader");
    assert_eq!(v["lease_holder"], true);
    assert_eq!(v["last_snapshot"]["id"], "c1");
    assert_eq!(v["stacks"][&stack]["outcome"], "no-change");
    assert_eq!(v["stacks"][&stack]["commit"], "c1");

    // Webhook: missing or wrong signatures are refused, nothing queued.
    let payload = br#"{"ref":"refs/heads/main"}"#;
    let (code, _) = request(addr, "POST", "/webhook", &[], payload).await;
    assert_eq!(code, 401);
    let bad = format!("sha256={}", webhook::sign(b"wrong", payload));
    let (code, _) = request(
        addr,
        "POST",
        "/webhook",
        &[("X-Hub-Signature-256", bad)],
        payload,
    )
    .await;
    assert_eq!(code, 401);
    let (code, _) = request(
        addr,
        "POST",
        "/webhook",
        &[("X-Gitlab-Token", "nope".into())],
        payload,
    )
    .await;
    assert_eq!(code, 401);
    assert_eq!(fake.snapshots.load(Ordering::SeqCst), 1);

    // A good signature queues a reconcile.
    let good = format!("sha256={}", webhook::sign(b"topsecret", payload));
    let (code, body) = request(
        addr,
        "POST",
        "/webhook",
        &[("X-Hub-Signature-256", good)],
        payload,
    )
    .await;
    assert_eq!(code, 202, "{body}");
    until("a second reconcile", || async {
        fake.snapshots.load(Ordering::SeqCst) >= 2
    })
    .await;
    let (code, _) = request(
        addr,
        "POST",
        "/webhook",
        &[("X-Gitlab-Token", "topsecret".into())],
        payload,
    )
    .await;
    assert_eq!(code, 202);

    // The state record landed in the swarm.
    let rec = record::load(&docker, &stack)
        .await
        .unwrap()
        .expect("record");
    assert_eq!(rec.commit.as_deref(), Some("c1"));

    // Shutdown: returns within a few seconds and releases the lease.
    let asked = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(8), agent)
        .await
        .expect("agent stopped within 8s")
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(8));
    let lease = swarm_config::get(&docker, &lease_name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.labels[HOLDER_LABEL], "", "lease released");

    swarm_config::remove(&docker, &lease_name).await.unwrap();
    record::remove(&docker, &stack).await.unwrap();
}

async fn status_of(addr: std::net::SocketAddr) -> serde_json::Value {
    let (_, body) = request(addr, "GET", "/status", &[], b"").await;
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_agent_takes_over_when_the_leader_is_killed() {
    let docker = common::bollard().await;
    let tag = format!("{}", std::process::id());
    let stack = format!("agent_ha{tag}");
    let lease_name = format!("agent-ha-lease-{tag}");
    let (_release_tx, release_rx) = tokio::sync::watch::channel(true);
    let mut agents = Vec::new();
    for id in ["agent-a", "agent-b"] {
        let fake = Arc::new(Fake {
            stack: stack.clone(),
            release: release_rx.clone(),
            snapshots: AtomicUsize::new(0),
        });
        let mut opts = AgentOptions::new(id);
        opts.interval = Duration::from_secs(3600);
        opts.lease_name = lease_name.clone();
        opts.lease_ttl = Duration::from_secs(2);
        opts.docker_events = false;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            opts,
            fake.clone(),
            docker.clone(),
            listener,
            shutdown.clone(),
        ));
        agents.push((addr, fake, shutdown, task));
    }

    // Exactly one leads; the other stands by, healthy.
    until("one leader and one standby", || async {
        let roles = [
            status_of(agents[0].0).await["role"].clone(),
            status_of(agents[1].0).await["role"].clone(),
        ];
        roles.contains(&"leader".into()) && roles.contains(&"standby".into())
    })
    .await;
    let leader = if status_of(agents[0].0).await["role"] == "leader" {
        0
    } else {
        1
    };
    let standby = 1 - leader;
    let (code, body) = request(agents[standby].0, "GET", "/healthz", &[], b"").await;
    assert_eq!(code, 200, "{body}");
    let (_, m) = request(agents[standby].0, "GET", "/metrics", &[], b"").await;
    assert!(m.lines().any(|l| l == "shoal_lease_holder 0"), "{m}");
    assert_eq!(agents[standby].1.snapshots.load(Ordering::SeqCst), 0);

    // Kill the leader: no release, its lease just stops being renewed.
    let (_, _, _, killed) = agents.remove(leader);
    killed.abort();
    let killed_at = Instant::now();
    let (addr, fake, shutdown, task) = agents.remove(0);
    until("the standby takes over", || async {
        status_of(addr).await["role"] == "leader"
    })
    .await;
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(6), "takeover took {took:?}");
    until("the new leader reconciles", || async {
        fake.snapshots.load(Ordering::SeqCst) >= 1
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(8), task)
        .await
        .expect("stopped")
        .unwrap()
        .unwrap();
    swarm_config::remove(&docker, &lease_name).await.unwrap();
    record::remove(&docker, &stack).await.unwrap();
}
