//! The agent deployed by shoal itself as a Swarm service, end to end on the
//! real swarm: `shoal apply --stack <agent>` of a copy of stacks/shoal, then
//! the agent (running as a task of the image scripts/build-image.sh builds
//! from the debug binary) watches a bare git repository, applies an app
//! stack, heals a hand-made scale, answers /healthz through the published
//! port, keeps its lease, upgrades itself by a commit that changes its own
//! image tag (applying nothing twice), and a second agent service takes the
//! lease over when the leader's container is killed.
//!
//! Test-only changes to the copy of stacks/shoal/stack.yml (said here, not
//! hidden): the bare repository is bind-mounted read-only and read by a
//! file:// URL; the external secret/config names get this run's prefix;
//! `--lease-ttl 3s` keeps failover quick; deploy-time variables are written
//! in literally, since the agent re-reads its own stack file from git
//! without the deployer's environment.
mod common;

use common::agent::{app_stack, free_port, git_env, http};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The agent's user in the image (scripts/build-image.sh).
const AGENT_UID: &str = "10001";
const LEASE_TTL: Duration = Duration::from_secs(3);

/// A bare repository owned by the agent's user (libgit2 refuses to read a
/// repository owned by someone else) and a work clone that pushes to it.
struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    fn new() -> Remote {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        let r = Remote { dir };
        // safe.directory is only read from global or system config.
        std::fs::write(r.gitconfig(), "[safe]\n\tdirectory = *\n").unwrap();
        r.git(
            r.dir.path(),
            &["init", "-q", "--bare", "-b", "main", "stacks.git"],
        );
        r.git(&r.work(), &["init", "-q", "-b", "main"]);
        r.git(
            &r.work(),
            &["remote", "add", "origin", r.bare().to_str().unwrap()],
        );
        r
    }
    fn bare(&self) -> PathBuf {
        self.dir.path().join("stacks.git")
    }
    fn gitconfig(&self) -> PathBuf {
        self.dir.path().join("gitconfig")
    }
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    /// git as root on a repository the agent's user owns: safe.directory
    /// says that is intended.
    fn git(&self, dir: &Path, args: &[&str]) {
        let config = self.gitconfig();
        git_env(dir, args, &[("GIT_CONFIG_GLOBAL", config.as_os_str())]);
    }
    fn write(&self, rel: &str, content: &str) {
        let path = self.work().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    fn push(&self, message: &str) {
        self.git(&self.work(), &["add", "-A"]);
        self.git(&self.work(), &["commit", "-q", "-m", message]);
        self.git(&self.work(), &["push", "-q", "origin", "main"]);
        let o = Command::new("chown")
            .args(["-R", &format!("{AGENT_UID}:{AGENT_UID}")])
            .arg(self.bare())
            .output()
            .expect("chown");
        assert!(
            o.status.success(),
            "chown: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Removes what the test made outside stack namespaces: image tags, the
/// external secrets/config, the lease and state records.
struct Leftovers {
    images: Vec<String>,
    secrets: Vec<String>,
    configs: Vec<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for s in &self.secrets {
            docker_quiet(&["secret", "rm", s]);
        }
        for c in &self.configs {
            docker_quiet(&["config", "rm", c]);
        }
        // Task containers of removed services go asynchronously; an image
        // tag can only go once none uses it.
        for image in &self.images {
            wait_until(Duration::from_secs(60), || {
                docker_output(&["image", "rm", image]).status.success() || !exists("image", image)
            });
        }
    }
}

/// Removes the agent services first and waits for their containers to go,
/// so no agent heals the app stack back while the guard removes it.
struct AgentsDown(Vec<String>);

impl Drop for AgentsDown {
    fn drop(&mut self) {
        for svc in &self.0 {
            docker_quiet(&["service", "rm", svc]);
        }
        for svc in &self.0 {
            let filter = format!("label=com.docker.swarm.service.name={svc}");
            wait_until(Duration::from_secs(60), || {
                docker_output(&["ps", "-aq", "--filter", &filter])
                    .stdout
                    .iter()
                    .all(u8::is_ascii_whitespace)
            });
        }
    }
}

/// stacks/shoal/stack.yml with this test's values written in.
fn agent_stack_file(p: &Prefix, image: &str, port: u16) -> String {
    let original = include_str!("../stacks/shoal/stack.yml");
    let mut s = original.to_string();
    let gid = docker_socket_gid();
    for (from, to) in [
        ("${SHOAL_IMAGE:-shoal:latest}", image.to_string()),
        ("${SHOAL_UID:-10001}:${DOCKER_GID:-0}", format!("{AGENT_UID}:{gid}")),
        (
            "${SHOAL_REPO:-git@github.com:example/swarm-stacks.git}",
            "file:///srv/stacks.git".to_string(),
        ),
        ("${SHOAL_REF:-main}", "main".to_string()),
        ("${SHOAL_INTERVAL:-30s}", "2s".to_string()),
        ("${SHOAL_LEASE:-shoal-lease}", p.lease.clone()),
        ("${SHOAL_PORT:-9180}", port.to_string()),
        ("shoal_webhook_secret", p.webhook_secret.clone()),
        ("shoal_git_ssh_key", p.ssh_key.clone()),
        ("shoal_known_hosts", p.known_hosts.clone()),
        (
            "      - --log-format\n",
            "      - --lease-ttl\n      - 3s\n      - --log-format\n".to_string(),
        ),
        (
            "    volumes:\n      # The agent drives",
            format!(
                "    volumes:\n      - type: bind\n        source: {}\n        target: /srv/stacks.git\n        read_only: true\n      # The agent drives",
                p.bare.display()
            ),
        ),
    ] {
        assert!(s.contains(from), "stacks/shoal/stack.yml no longer has {from:?}");
        s = s.replace(from, &to);
    }
    assert!(!s.contains("${"), "uninterpolated variable left:\n{s}");
    s
}

fn docker_socket_gid() -> String {
    let o = Command::new("stat")
        .args(["-c", "%g", "/var/run/docker.sock"])
        .output()
        .expect("stat");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Names this run uses.
struct Prefix {
    agent: String,
    standby: String,
    app: String,
    lease: String,
    webhook_secret: String,
    ssh_key: String,
    known_hosts: String,
    bare: PathBuf,
}

fn lease_holder(lease: &str) -> Option<String> {
    let o = docker_output(&[
        "config",
        "inspect",
        "--format",
        "{{index .Spec.Labels \"io.shoal.lease.holder\"}}",
        lease,
    ]);
    let h = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !h.is_empty()).then_some(h)
}

/// The running container of a service's task on this node.
fn running_container(service: &str) -> Option<String> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let out = docker(&["ps", "-q", "--filter", &filter]);
    let ids: Vec<&str> = out.split_whitespace().collect();
    (ids.len() == 1).then(|| ids[0].to_string())
}

fn image_of(service: &str) -> Option<String> {
    let image = service_spec(service)?
        .pointer("/Spec/TaskTemplate/ContainerSpec/Image")?
        .as_str()?
        .to_string();
    Some(image.split('@').next().unwrap_or("").to_string())
}

/// [`poll`], printing the agents' tasks and logs before failing.
fn wait<T>(
    what: &str,
    timeout: Duration,
    services: &[&str],
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            for svc in services {
                let ps = docker_output(&["service", "ps", "--no-trunc", svc]);
                let logs = docker_output(&["service", "logs", "--tail", "40", svc]);
                eprintln!(
                    "--- {svc} tasks\n{}\n--- {svc} logs\n{}{}",
                    String::from_utf8_lossy(&ps.stdout),
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Now, as `docker events --since` takes it.
fn now_unix() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// Spec writes to `service` since `since` that changed `field` (`replicas`,
/// `image`): the engine's service update events name the changed field.
/// (A service's Version.Index is the swarm's global raft index, so it
/// cannot count writes.)
fn updates(service: &str, field: &str, since: &str) -> usize {
    let filter = format!("service={service}");
    let out = docker(&[
        "events",
        "--since",
        since,
        "--until",
        &now_unix(),
        "--filter",
        "type=service",
        "--filter",
        &filter,
        "--format",
        "{{.Action}} {{json .Actor.Attributes}}",
    ]);
    let key = format!("\"{field}.new\"");
    out.lines()
        .filter(|l| l.starts_with("update ") && l.contains(&key))
        .count()
}

/// When the agent answering on `port` last reconciled `stack` (its
/// `/status`, RFC 3339 to the second).
fn last_reconcile(port: u16, stack: &str) -> Option<String> {
    let (code, body) = http(port, "GET", "/status", &[], b"")?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["stacks"][stack]["last_reconcile"]
        .as_str()
        .map(str::to_string)
}

fn healthz(port: u16) -> Option<u16> {
    http(port, "GET", "/healthz", &[], b"").map(|(code, _)| code)
}

fn deploy(dir: &Path, stack: &str, env: &[(&str, &str)]) {
    let o = shoal_env(
        &[
            "apply",
            "--repo",
            dir.to_str().unwrap(),
            "--stack",
            stack,
            "--auto-approve",
            "--timeout",
            "2m",
        ],
        env,
    );
    assert_code(&o, 0);
}

#[test]
fn agent_as_a_service_applies_heals_upgrades_and_fails_over() {
    let started = Instant::now();
    let tag = stack_name("e2e");
    let image1 = format!("shoal-e2e:{tag}-1");
    let image2 = format!("shoal-e2e:{tag}-2");
    let remote = Remote::new();
    let p = Prefix {
        agent: stack_name("shoalsvc"),
        standby: stack_name("shoalsby"),
        app: stack_name("svcapp"),
        lease: format!("shoal-lease-{tag}"),
        webhook_secret: format!("{tag}_webhook_secret"),
        ssh_key: format!("{tag}_git_ssh_key"),
        known_hosts: format!("{tag}_known_hosts"),
        bare: remote.bare(),
    };
    let _leftovers = Leftovers {
        images: vec![image1.clone(), image2.clone()],
        secrets: vec![p.webhook_secret.clone(), p.ssh_key.clone()],
        configs: vec![
            p.known_hosts.clone(),
            p.lease.clone(),
            format!("shoal-state-{}", p.agent),
            format!("shoal-state-{}", p.app),
        ],
    };
    // Dropped in reverse: agents, then stacks, then images and the rest.
    let _stacks = StackGuard::new(&[&p.agent, &p.standby, &p.app]);
    let _agents = AgentsDown(vec![
        format!("{}_agent", p.agent),
        format!("{}_agent", p.standby),
    ]);

    // The image, from the debug binary this test run built.
    let o = Command::new("scripts/build-image.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "--profile",
            "debug",
            "--binary",
            env!("CARGO_BIN_EXE_shoal"),
        ])
        .args(["--tag", &image1, "--tag", &image2])
        .output()
        .expect("scripts/build-image.sh");
    assert!(
        o.status.success(),
        "build-image.sh: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&o.stdout).trim());

    // The external objects the stack expects (README: Deploy, step 2).
    for (kind, name, content) in [
        ("secret", &p.webhook_secret, "e2e-webhook-secret"),
        ("secret", &p.ssh_key, "not a key: the repository is file://"),
        ("config", &p.known_hosts, "# none needed for file://\n"),
    ] {
        let file = remote.dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        docker(&[kind, "create", name, file.to_str().unwrap()]);
    }

    // The watched repository: the agent's own stack and an app stack.
    let port = free_port();
    remote.write(
        &format!("stacks/{}/stack.yml", p.agent),
        &agent_stack_file(&p, &image1, port),
    );
    remote.write(&format!("stacks/{}/stack.yml", p.app), &app_stack(1));
    remote.push("agent and app");
    let app_svc = format!("{}_app", p.app);
    let agent_svc = format!("{}_agent", p.agent);
    let standby_svc = format!("{}_agent", p.standby);
    let svcs = [agent_svc.as_str(), standby_svc.as_str()];

    // shoal deploys its own agent; the agent then applies the app stack.
    deploy(&remote.work(), &p.agent, &[]);
    let deployed_at = now_unix();
    wait(
        "the agent to apply the app stack",
        Duration::from_secs(120),
        &svcs,
        || (replicas(&app_svc) == Some(1)).then_some(()),
    );
    wait(
        "/healthz 200 on the published port",
        Duration::from_secs(90),
        &svcs,
        || (healthz(port) == Some(200)).then_some(()),
    );
    let holder = wait(
        "the agent task to hold the lease",
        Duration::from_secs(30),
        &svcs,
        || lease_holder(&p.lease).filter(|h| h.contains(&agent_svc)),
    );
    eprintln!("lease held by {holder} after {:?}", started.elapsed());

    // Self-heal: a hand-made scale is undone.
    docker(&["service", "scale", "-d", &format!("{app_svc}=3")]);
    wait(
        "the agent to heal the scale",
        Duration::from_secs(60),
        &svcs,
        || (replicas(&app_svc) == Some(1)).then_some(()),
    );
    // Still the same holder: the lease is renewed, not lost and retaken.
    assert_eq!(lease_holder(&p.lease).as_deref(), Some(holder.as_str()));
    assert_eq!(
        updates(&agent_svc, "image", &deployed_at),
        0,
        "agent untouched"
    );

    // Self-upgrade: one commit changes the agent's own image and the app.
    let old_container = running_container(&agent_svc).expect("one agent container");
    let pushed_at = now_unix();
    remote.write(
        &format!("stacks/{}/stack.yml", p.agent),
        &agent_stack_file(&p, &image2, port),
    );
    remote.write(&format!("stacks/{}/stack.yml", p.app), &app_stack(2));
    remote.push("upgrade the agent, scale the app");
    wait(
        "the agent service on the new image",
        Duration::from_secs(120),
        &svcs,
        || (image_of(&agent_svc).as_deref() == Some(image2.as_str())).then_some(()),
    );
    let new_holder = wait(
        "the upgraded task to hold the lease",
        Duration::from_secs(120),
        &svcs,
        || lease_holder(&p.lease).filter(|h| h.contains(&agent_svc) && *h != holder),
    );
    wait(
        "the old task to release the lease on SIGTERM",
        Duration::from_secs(30),
        &svcs,
        || {
            let logs = docker_output(&["logs", &old_container]);
            let text = String::from_utf8_lossy(&logs.stdout).to_string()
                + &String::from_utf8_lossy(&logs.stderr);
            text.contains("lease released").then_some(())
        },
    );
    wait(
        "the app at 2 replicas",
        Duration::from_secs(60),
        &svcs,
        || (replicas(&app_svc) == Some(2)).then_some(()),
    );
    wait(
        "/healthz 200 from the upgraded agent",
        Duration::from_secs(90),
        &svcs,
        || {
            (healthz(port) == Some(200)
                && running_container(&agent_svc).is_some_and(|c| c != old_container))
            .then_some(())
        },
    );
    // Nothing applied twice: one update of the app and one of the agent
    // itself, though two agents saw the commit; two more passes of the
    // new leader (every 2 s: its /status shows the app stack reconciled
    // at two later times) change nothing either.
    let mut seen: Vec<String> = Vec::new();
    wait(
        "two more passes of the new leader over the app stack",
        Duration::from_secs(60),
        &svcs,
        || {
            let at = last_reconcile(port, &p.app)?;
            if seen.last() != Some(&at) {
                seen.push(at);
            }
            (seen.len() >= 3).then_some(())
        },
    );
    assert_eq!(
        updates(&app_svc, "replicas", &pushed_at),
        1,
        "app scaled once"
    );
    assert_eq!(
        updates(&agent_svc, "image", &pushed_at),
        1,
        "agent upgraded once"
    );
    eprintln!(
        "upgraded to {image2}, lease {new_holder}, after {:?}",
        started.elapsed()
    );

    // Failover: a second agent service (same lease, another port) stands
    // by; killing the leader's container hands it the lease within the TTL.
    let standby_dir = tempfile::tempdir().unwrap();
    let standby_port = free_port();
    let standby_file = agent_stack_file(&p, &image2, standby_port);
    let standby_path = standby_dir
        .path()
        .join(format!("stacks/{}/stack.yml", p.standby));
    std::fs::create_dir_all(standby_path.parent().unwrap()).unwrap();
    std::fs::write(&standby_path, standby_file).unwrap();
    deploy(standby_dir.path(), &p.standby, &[]);
    wait(
        "the standby's /healthz",
        Duration::from_secs(90),
        &svcs,
        || (healthz(standby_port) == Some(200)).then_some(()),
    );
    assert_eq!(
        lease_holder(&p.lease).as_deref(),
        Some(new_holder.as_str()),
        "the standby must not take a held lease"
    );
    let leader = running_container(&agent_svc).expect("leader container");
    docker(&["kill", &leader]);
    let killed_at = Instant::now();
    let taker = wait(
        "another agent to take the lease",
        LEASE_TTL + Duration::from_secs(20),
        &svcs,
        || lease_holder(&p.lease).filter(|h| *h != new_holder),
    );
    eprintln!(
        "lease taken by {taker} {:?} after the kill (TTL {LEASE_TTL:?})",
        killed_at.elapsed()
    );
    assert!(
        taker.contains(&standby_svc) || taker.contains(&agent_svc),
        "unexpected holder {taker}"
    );
    // The new leader keeps the swarm equal to git: heal once more.
    docker(&["service", "scale", "-d", &format!("{app_svc}=4")]);
    wait(
        "the new leader to heal the scale",
        Duration::from_secs(60),
        &svcs,
        || (replicas(&app_svc) == Some(2)).then_some(()),
    );
    eprintln!("done after {:?}", started.elapsed());
}
