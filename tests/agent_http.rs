//! The agent end to end with a fake pipeline (a [`Reconciler`] of our own)
//! against the real swarm (lease, state records, events): health before and
//! after the first reconcile, metrics, status, webhook, shutdown.
mod common;

use shoal::agent::lease::HOLDER_LABEL;
use shoal::agent::{
    record, serve, webhook, AgentOptions, Planned, ReconcileError, Reconciler, Snapshot, StackPlan,
};
use shoal::engine::swarm_config;
use shoal::model::Plan;
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
    async fn snapshot(&self) -> Result<Snapshot, ReconcileError> {
        let mut r = self.release.clone();
        r.wait_for(|v| *v)
            .await
            .map_err(|e| ReconcileError::Source(e.to_string()))?;
        self.snapshots.fetch_add(1, Ordering::SeqCst);
        Ok(Snapshot {
            id: "c1".into(),
            subject: None,
        })
    }
    async fn plan(&self, _: &Snapshot) -> Result<Vec<StackPlan>, ReconcileError> {
        Ok(vec![StackPlan {
            stack: self.stack.clone(),
            result: Ok(Planned {
                plan: Plan::default(),
                text: String::new(),
            }),
        }])
    }
    async fn apply(&self, stack: &str, _: &Plan) -> Result<(), ReconcileError> {
        Err(ReconcileError::Apply {
            stack: stack.into(),
            message: "the fake never has changes to apply".into(),
        })
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

// --- The HTTP server under hostile clients -------------------------------

/// An agent in this process with the [`Fake`] pipeline already released;
/// stopped, and its lease and record removed, when dropped.
struct FakeAgent {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    configs: Vec<String>,
}

impl FakeAgent {
    async fn start(prefix: &str, tune: impl FnOnce(&mut AgentOptions)) -> FakeAgent {
        FakeAgent::start_on("127.0.0.1:0", prefix, tune).await
    }

    async fn start_on(bind: &str, prefix: &str, tune: impl FnOnce(&mut AgentOptions)) -> FakeAgent {
        let docker = common::bollard().await;
        let stack = common::stack_name(prefix);
        let lease_name = format!("{stack}-lease");
        let (_tx, release) = tokio::sync::watch::channel(true);
        let fake = Arc::new(Fake {
            stack: stack.clone(),
            release,
            snapshots: AtomicUsize::new(0),
        });
        let mut opts = AgentOptions::new(format!("{stack}-agent"));
        opts.interval = Duration::from_secs(3600);
        opts.lease_name = lease_name.clone();
        opts.lease_ttl = Duration::from_secs(3);
        opts.docker_events = false;
        tune(&mut opts);
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let addr =
            std::net::SocketAddr::from(([127, 0, 0, 1], listener.local_addr().unwrap().port()));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(opts, fake, docker, listener, shutdown.clone()));
        until("healthz 200", || async {
            request(addr, "GET", "/healthz", &[], b"").await.0 == 200
        })
        .await;
        FakeAgent {
            addr,
            shutdown,
            configs: vec![lease_name, record::config_name(&stack)],
        }
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for c in &self.configs {
            common::docker_quiet(&["config", "rm", c]);
        }
    }
}

/// Send `head` (request line and headers, no body), then read the answer
/// for at most `wait`: (status line or "" when none came, time it took).
async fn answer_without_body(
    addr: std::net::SocketAddr,
    head: String,
    wait: Duration,
) -> (String, Duration) {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        let sent = Instant::now();
        s.write_all(head.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let status = text.lines().next().unwrap_or("").to_string();
        (status, sent.elapsed())
    })
    .await
    .unwrap()
}

fn post_head(extra_headers: &str) -> String {
    format!("POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}\r\n")
}

/// A body the old server would have buffered (under its 25 MiB limit).
const DECLARED: &str = "Content-Length: 20000000\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_refused_from_their_headers_before_any_body_is_read() {
    let disabled = FakeAgent::start("hwoff", |_| {}).await;
    let enabled = FakeAgent::start("hwon", |o| {
        o.webhook_secret = Some(b"topsecret".to_vec());
        o.http.body_read_timeout = Duration::from_secs(2);
    })
    .await;
    let signed = format!("X-Hub-Signature-256: sha256={}\r\n", "00".repeat(32));
    let wait = Duration::from_secs(5);
    // Each answer comes although the declared body never does.
    let cases = [
        (disabled.addr, post_head(DECLARED), "404"),
        (enabled.addr, post_head(DECLARED), "401"),
        (
            enabled.addr,
            post_head(&format!("{DECLARED}X-Gitlab-Token: wrong\r\n")),
            "401",
        ),
        (
            enabled.addr,
            post_head(&format!("{DECLARED}X-Hub-Signature-256: sha1=abc\r\n")),
            "401",
        ),
        (
            enabled.addr,
            post_head(&format!("{DECLARED}{signed}")),
            "413",
        ),
    ];
    for (addr, head, want) in cases {
        let (status, took) = answer_without_body(addr, head.clone(), wait).await;
        assert!(
            status.split_whitespace().nth(1) == Some(want),
            "{head:?}: wanted {want} before the body was sent, got {status:?} after {took:?}"
        );
        assert!(took < Duration::from_secs(2), "{head:?}: took {took:?}");
    }
    // A signed request within the limit whose body stalls: 408 after the
    // body timeout, not a connection held for ever.
    let (status, took) = answer_without_body(
        enabled.addr,
        post_head(&format!("Content-Length: 100\r\n{signed}")),
        Duration::from_secs(8),
    )
    .await;
    assert!(status.contains(" 408 "), "{status:?} after {took:?}");
    assert!(took >= Duration::from_millis(1900), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_cannot_hold_the_server() {
    let timeout = Duration::from_secs(2);
    let cap = 4;
    let agent = FakeAgent::start_on("0.0.0.0:0", "hslow", |o| {
        o.http.header_read_timeout = timeout;
        o.http.max_connections = cap;
    })
    .await;
    let addr = agent.addr;

    // Headers one byte a second: cut off after the header timeout,
    // never answered.
    let slow = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let start = Instant::now();
        for b in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
            if s.write_all(&[*b]).is_err() {
                return (start.elapsed(), String::new());
            }
            let mut buf = [0u8; 256];
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                match s.read(&mut buf) {
                    Ok(0) => return (start.elapsed(), String::new()),
                    Ok(n) => return (start.elapsed(), String::from_utf8_lossy(&buf[..n]).into()),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return (start.elapsed(), String::new()),
                }
            }
        }
        (
            start.elapsed(),
            "sent every byte and was never cut off".into(),
        )
    });
    let (took, answered) = slow.await.unwrap();
    assert!(
        !answered.contains("200"),
        "slow headers were served: {answered:?}"
    );
    assert!(answered.is_empty(), "{answered}");
    assert!(
        took >= timeout - Duration::from_millis(500) && took < timeout * 2 + Duration::from_secs(1),
        "the slow client was cut off after {took:?}, header timeout {timeout:?}"
    );

    // Remote peers (this host's non-loopback address): the cap, then as
    // many queued. Fill every slot and half the queue with idle
    // connections that never send a byte. /healthz from loopback (the
    // container's HEALTHCHECK) has its own pool and answers at once; a
    // remote /healthz waits behind the idle ones (the cap holds) and is
    // answered once the header timeout closed them, in arrival order.
    let remote_ip = non_loopback_ip();
    let remote = std::net::SocketAddr::new(remote_ip, addr.port());
    let idle: Vec<std::net::TcpStream> = (0..cap + cap / 2)
        .map(|_| std::net::TcpStream::connect(remote).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let (code, body) = request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "loopback /healthz took {:?} while remote clients held every slot",
        asked.elapsed()
    );
    let asked = Instant::now();
    let (code, body) = tokio::task::spawn_blocking(move || get(remote, "/healthz"))
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(code, 200, "{body}");
    assert!(
        took >= timeout - Duration::from_millis(700),
        "remote /healthz answered after {took:?}: the connection cap of {cap} did not hold"
    );
    assert!(
        took <= timeout * 2 + Duration::from_secs(2),
        "remote /healthz took {took:?} behind {} idle connections",
        idle.len()
    );
    drop(idle);
}

/// A burst of connections up to the cap plus the queue is served in full:
/// each gets a slot at once or waits in the queue for one; none is closed
/// unanswered while there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_within_slots_and_queue_is_answered_in_full() {
    let cap = 4;
    let agent = FakeAgent::start_on("0.0.0.0:0", "hburst", |o| {
        o.http.max_connections = cap;
    })
    .await;
    let remote = std::net::SocketAddr::new(non_loopback_ip(), agent.addr.port());
    let answers = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        // Every connection first, then the requests.
        let mut conns: Vec<std::net::TcpStream> = (0..2 * cap)
            .map(|_| std::net::TcpStream::connect(remote).unwrap())
            .collect();
        conns
            .iter_mut()
            .map(|s| {
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                let req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                let _ = s.write_all(req.as_bytes());
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answer.lines().next().unwrap_or("no answer").to_string()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 200")),
        "{} connections at once, {cap} slots and {cap} queue places: {answers:?}",
        2 * cap
    );
}

/// This host's address on a non-loopback interface (the one a route to a
/// TEST-NET address would leave from; no packet is sent).
fn non_loopback_ip() -> std::net::IpAddr {
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    udp.connect("192.0.2.1:9")
        .or_else(|_| udp.connect("10.255.255.1:9"))
        .expect("a non-loopback interface with a route (needed to test remote clients)");
    let ip = udp.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    ip
}

/// `GET path` on `addr`: (status, body), status 0 when nothing answers.
fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, raw)
}

// --- The real agent (`shoal agent` process) -------------------------------

/// A stack whose env file quotes a git URL with a token and the agent's
/// own webhook secret in a line the loader refuses (and so quotes in its
/// error), pushed to a fresh remote.
struct LeakyStack {
    stack: String,
    lease: String,
    remote: common::agent::GitRemote,
}

const LEAKED_TOKEN: &str = "ghp_leak0123456789";

impl LeakyStack {
    fn pushed(prefix: &str) -> LeakyStack {
        let stack = common::stack_name(prefix);
        let remote = common::agent::GitRemote::new();
        remote.write(
            &format!("stacks/{stack}/stack.yml"),
            "services:\n  app:\n    image: busybox:1.36\n    env_file: ./app.env\n",
        );
        remote.write(
            &format!("stacks/{stack}/app.env"),
            &format!(
                "GOOD=1\nclone https://bot:{LEAKED_TOKEN}@git.example/r.git with {}\n",
                common::agent::SECRET
            ),
        );
        remote.push("a stack that does not load");
        LeakyStack {
            lease: format!("{stack}-lease"),
            stack,
            remote,
        }
    }
}

impl Drop for LeakyStack {
    fn drop(&mut self) {
        common::docker_quiet(&["config", "rm", &self.lease]);
        common::docker_quiet(&["config", "rm", &record::config_name(&self.stack)]);
    }
}

#[test]
fn status_and_state_labels_mask_errors_and_status_requires_the_token() {
    use common::agent::{http, Agent};
    let f = LeakyStack::pushed("hmask");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("status-token");
    std::fs::write(&token_file, "st4tus-t0ken\n").unwrap();
    let agent = Agent::start(
        &f.remote,
        &f.lease,
        "1h",
        &["--status-token-file", token_file.to_str().unwrap()],
    );
    let bearer = [("Authorization", "Bearer st4tus-t0ken")];
    let error = common::poll("the load error on /status", Duration::from_secs(30), || {
        let (code, body) = http(agent.port, "GET", "/status", &bearer, b"")?;
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["stacks"][&f.stack]["error"].as_str().map(str::to_string)
    });
    assert!(error.contains("app.env:2"), "{error}");
    for shown in [error.clone(), {
        let labels = common::docker(&[
            "config",
            "inspect",
            &record::config_name(&f.stack),
            "--format",
            "{{json .Spec.Labels}}",
        ]);
        let l: serde_json::Value = serde_json::from_str(&labels).unwrap();
        l[record::ERROR_LABEL]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }] {
        assert!(
            shown.contains("https://***@git.example/r.git"),
            "URL credentials not masked: {shown}"
        );
        assert!(!shown.contains(LEAKED_TOKEN), "{shown}");
        assert!(
            !shown.contains(common::agent::SECRET) && shown.contains("(sensitive)"),
            "the webhook secret is not masked: {shown}"
        );
    }

    // /status needs the bearer token; /healthz and /metrics stay open.
    for headers in [
        vec![],
        vec![("Authorization", "Bearer st4tus-t0ke")],
        vec![("Authorization", "Bearer st4tus-t0ken2")],
        vec![("Authorization", "Basic st4tus-t0ken")],
    ] {
        let (code, body) = http(agent.port, "GET", "/status", &headers, b"").unwrap();
        assert_eq!(code, 401, "{headers:?}: {body}");
        assert!(!body.contains(&f.stack), "{body}");
    }
    assert_eq!(
        http(agent.port, "GET", "/healthz", &[], b"").unwrap().0,
        200
    );
    assert_eq!(
        http(agent.port, "GET", "/metrics", &[], b"").unwrap().0,
        200
    );
}

/// Peak and current resident memory of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn oversized_webhook_bodies_are_refused_without_growing_the_agent() {
    use std::io::{Read, Write};
    let f = LeakyStack::pushed("hbig");
    let agent = common::agent::Agent::start(&f.remote, &f.lease, "1h", &[]);
    common::poll("first pass", Duration::from_secs(30), || {
        let (code, _) = common::agent::http(agent.port, "GET", "/healthz", &[], b"")?;
        (code == 200).then_some(())
    });
    let (peak_before, _) = memory_kib(agent.child.id());

    // Ten posts of 20 MB at once, all with a well-formed signature (so
    // only the size stops them): half declare their length, half are
    // chunked and must be cut off while reading.
    const BODY: usize = 20 * 1024 * 1024;
    let port = agent.port;
    let posts: Vec<_> = (0..10)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                let mut reader = s.try_clone().unwrap();
                reader
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let answer = std::thread::spawn(move || {
                    let mut buf = [0u8; 512];
                    let n = reader.read(&mut buf).unwrap_or(0);
                    String::from_utf8_lossy(&buf[..n]).to_string()
                });
                let chunked = i % 2 == 1;
                let length = if chunked {
                    "Transfer-Encoding: chunked".to_string()
                } else {
                    format!("Content-Length: {BODY}")
                };
                let head = format!(
                    "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Hub-Signature-256: sha256={}\r\n{length}\r\n\r\n",
                    "ab".repeat(32)
                );
                let chunk = vec![b'{'; 64 * 1024];
                let mut sent = s.write_all(head.as_bytes()).is_ok();
                let mut n = 0;
                while sent && n < BODY {
                    sent = if chunked {
                        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                            .and_then(|_| s.write_all(&chunk))
                            .and_then(|_| s.write_all(b"\r\n"))
                            .is_ok()
                    } else {
                        s.write_all(&chunk).is_ok()
                    };
                    n += chunk.len();
                }
                if sent && chunked {
                    let _ = s.write_all(b"0\r\n\r\n");
                }
                answer.join().unwrap()
            })
        })
        .collect();
    for p in posts {
        let answer = p.join().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "an oversized webhook got {:?}",
            answer.lines().next()
        );
    }
    let (peak_after, rss_after) = memory_kib(agent.child.id());
    let grown_mib = (peak_after.saturating_sub(peak_before)) / 1024;
    eprintln!("peak RSS grew by {grown_mib} MiB over ten 20 MB posts");
    assert!(
        grown_mib < 40,
        "the agent's peak memory grew by {grown_mib} MiB (now {rss_after} KiB resident)"
    );
    let (code, body) = common::agent::http(agent.port, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(code, 200, "{body}");
}
