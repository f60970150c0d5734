//! shoal against a remote swarm, reached as the docker CLI reaches one: a
//! second, separate single-node swarm in its own network namespace
//! (`scripts/remote-engine.sh up`), over TCP with TLS (`DOCKER_TLS_VERIFY`,
//! a docker context, `-H`) and over `ssh://` through a real sshd and the
//! real OpenSSH client. Certificates and ssh keys are made here.
//!
//! These tests are ignored unless asked for: `.ci/run` brings the engine
//! up and runs `cargo test --test remote_engine -- --ignored`.
mod common;

use common::agent::{stack_outcome, Agent, GitRemote};
use common::remote::*;
use common::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A one-service stack repository.
fn app_repo(stack: &str, replicas: u32) -> Repo {
    let repo = Repo::new();
    repo.stack(stack, &agent::app_stack(replicas));
    repo
}

fn plan_args(repo: &Repo, stack: &str) -> Vec<String> {
    [
        "plan",
        "--repo",
        repo.path().to_str().unwrap(),
        "--stack",
        stack,
        "--resolve-image",
        "never",
        "--detailed-exitcode",
    ]
    .map(String::from)
    .to_vec()
}

fn apply_args(repo: &Repo, stack: &str) -> Vec<String> {
    [
        "apply",
        "--repo",
        repo.path().to_str().unwrap(),
        "--stack",
        stack,
        "--resolve-image",
        "never",
        "--auto-approve",
    ]
    .map(String::from)
    .to_vec()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
#[ignore = "needs scripts/remote-engine.sh up (run with --ignored, as .ci/run does)"]
fn tls_plan_and_apply_through_docker_tls_verify_a_context_and_dash_h() {
    check_engine();
    let stack = stack_name("retls");
    let _guard = RemoteStack(stack.clone());
    let repo = app_repo(&stack, 1);
    let certs = cert_dir(true, false);
    let env = tls_env(certs.path());

    // DOCKER_HOST + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH.
    let started = Instant::now();
    let o = shoal_with(&refs(&plan_args(&repo, &stack)), &env);
    assert_code(&o, 2);
    eprintln!("plan over TLS: {:?}", started.elapsed());
    assert!(
        stdout(&o).contains(&format!("+ service {stack}_app")),
        "{}",
        stdout(&o)
    );

    // A docker context made by the docker CLI itself, with TLS material in
    // the context store; `--context` chooses it.
    let config = tempfile::tempdir().unwrap();
    let c = certs.path();
    let out = Command::new("docker")
        .env("DOCKER_CONFIG", config.path())
        .args([
            "context",
            "create",
            "remote-tls",
            "--docker",
            &format!(
                "host={},ca={},cert={},key={}",
                tls_host(),
                c.join("ca.pem").display(),
                c.join("cert.pem").display(),
                c.join("key.pem").display()
            ),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctx_env = vec![(
        "DOCKER_CONFIG".to_string(),
        config.path().display().to_string(),
    )];
    let mut args = apply_args(&repo, &stack);
    args.extend(["--context".to_string(), "remote-tls".to_string()]);
    let o = shoal_with(&refs(&args), &ctx_env);
    assert_code(&o, 0);
    assert_eq!(remote_replicas(&format!("{stack}_app")), Some(1));
    assert!(
        !exists("service", &format!("{stack}_app")),
        "the stack must not be on the local swarm"
    );

    // DOCKER_CONTEXT, and `-H` with the TLS environment: no changes left.
    let mut e = ctx_env.clone();
    e.push(("DOCKER_CONTEXT".into(), "remote-tls".into()));
    assert_code(&shoal_with(&refs(&plan_args(&repo, &stack)), &e), 0);
    let mut args = plan_args(&repo, &stack);
    args.extend(["-H".to_string(), tls_host()]);
    let e: Vec<_> = env
        .iter()
        .filter(|(k, _)| k != "DOCKER_HOST")
        .cloned()
        .collect();
    assert_code(&shoal_with(&refs(&args), &e), 0);
}

#[test]
#[ignore = "needs scripts/remote-engine.sh up (run with --ignored, as .ci/run does)"]
fn tls_wrong_ca_missing_client_cert_and_unverified_tls_are_clear_errors() {
    check_engine();
    let stack = stack_name("retlsbad");
    let repo = app_repo(&stack, 1);
    let plan = plan_args(&repo, &stack);

    let wrong = cert_dir(true, true);
    let o = shoal_with(&refs(&plan), &tls_env(wrong.path()));
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&tls_host()), "{err}");
    assert!(err.contains("certificate is not trusted"), "{err}");
    assert!(
        err.contains(&wrong.path().join("ca.pem").display().to_string()),
        "{err}"
    );

    let no_client = cert_dir(false, false);
    let o = shoal_with(&refs(&plan), &tls_env(no_client.path()));
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&tls_host()), "{err}");
    assert!(err.contains("asks for a client certificate"), "{err}");

    // Plain HTTP to the TLS port.
    let o = shoal_with(&refs(&plan), &[("DOCKER_HOST".to_string(), tls_host())]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("it speaks TLS: set DOCKER_TLS_VERIFY=1"),
        "{err}"
    );

    // DOCKER_TLS without DOCKER_TLS_VERIFY (SkipTLSVerify) is refused...
    let good = cert_dir(true, false);
    let unverified = vec![
        ("DOCKER_HOST".to_string(), tls_host()),
        ("DOCKER_TLS".to_string(), "1".to_string()),
        (
            "DOCKER_CERT_PATH".to_string(),
            good.path().display().to_string(),
        ),
    ];
    let o = shoal_with(&refs(&plan), &unverified);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("--insecure-skip-tls-verify"), "{err}");
    assert!(err.contains(&tls_host()), "{err}");
    // ... unless the operator says it is insecure.
    let mut args = plan.clone();
    args.push("--insecure-skip-tls-verify".into());
    assert_code(&shoal_with(&refs(&args), &unverified), 2);
}

/// Tests run in parallel: one edit of authorized_keys at a time, so a
/// revocation never drops a key another test just added.
static AUTHORIZED_KEYS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A key for ssh, authorized on the remote sshd (optionally with key
/// options); removed from authorized_keys when dropped.
struct SshKey {
    dir: tempfile::TempDir,
    marker: String,
}

impl SshKey {
    fn new(options: &str) -> SshKey {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        let marker = format!("shoal-test-{}-{}", std::process::id(), stack_name("k"));
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", &marker, "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success());
        let known = dir.path().join("known_hosts");
        let host_key = std::fs::read_to_string(run_dir().join("ssh/host_ed25519_key.pub")).unwrap();
        std::fs::write(&known, format!("{} {host_key}", engine_ip())).unwrap();
        let k = SshKey { dir, marker };
        k.authorize(options);
        k
    }

    /// A key ssh does not know the host by (a fresh key pair's public half
    /// stands for the host's key).
    fn with_wrong_host_key(self) -> SshKey {
        let other = self.dir.path().join("other");
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&other)
            .output()
            .unwrap();
        let wrong = std::fs::read_to_string(other.with_extension("pub")).unwrap();
        std::fs::write(
            self.dir.path().join("known_hosts"),
            format!("{} {wrong}", engine_ip()),
        )
        .unwrap();
        self
    }

    fn authorize(&self, options: &str) {
        use std::io::Write;
        let _one_at_a_time = AUTHORIZED_KEYS.lock().unwrap_or_else(|e| e.into_inner());
        let public = std::fs::read_to_string(self.dir.path().join("id.pub")).unwrap();
        let line = if options.is_empty() {
            public
        } else {
            format!("{options} {public}")
        };
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(run_dir().join("ssh/authorized_keys"))
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
    }

    /// Take the key out of authorized_keys (the server then refuses it).
    fn revoke(&self) {
        let _one_at_a_time = AUTHORIZED_KEYS.lock().unwrap_or_else(|e| e.into_inner());
        let path = run_dir().join("ssh/authorized_keys");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let kept: String = text
            .lines()
            .filter(|l| !l.contains(&self.marker))
            .map(|l| format!("{l}\n"))
            .collect();
        let _ = std::fs::write(&path, kept);
    }

    /// `SHOAL_SSH_COMMAND`: this key and known_hosts only, never a prompt.
    fn command(&self) -> String {
        let d = self.dir.path();
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
            d.join("id").display(),
            d.join("known_hosts").display()
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DOCKER_HOST".to_string(), ssh_host()),
            ("SHOAL_SSH_COMMAND".to_string(), self.command()),
        ]
    }
}

impl Drop for SshKey {
    fn drop(&mut self) {
        self.revoke();
    }
}

#[test]
#[ignore = "needs scripts/remote-engine.sh up (run with --ignored, as .ci/run does)"]
fn ssh_plan_and_apply_through_dial_stdio() {
    check_engine();
    let stack = stack_name("ressh");
    let _guard = RemoteStack(stack.clone());
    let repo = app_repo(&stack, 2);
    let key = SshKey::new("");
    let env = key.env();

    let started = Instant::now();
    let o = shoal_with(&refs(&plan_args(&repo, &stack)), &env);
    assert_code(&o, 2);
    eprintln!("plan over ssh: {:?}", started.elapsed());

    let started = Instant::now();
    let o = shoal_with(&refs(&apply_args(&repo, &stack)), &env);
    assert_code(&o, 0);
    eprintln!(
        "apply over ssh (with the convergence wait): {:?}",
        started.elapsed()
    );
    assert!(stdout(&o).contains("2/2 running"), "{}", stdout(&o));
    assert_eq!(remote_replicas(&format!("{stack}_app")), Some(2));
    assert!(!exists("service", &format!("{stack}_app")));

    // `-H ssh://...` does the same as DOCKER_HOST.
    let mut args = plan_args(&repo, &stack);
    args.extend(["-H".to_string(), ssh_host()]);
    let e = vec![("SHOAL_SSH_COMMAND".to_string(), key.command())];
    assert_code(&shoal_with(&refs(&args), &e), 0);
}

#[test]
#[ignore = "needs scripts/remote-engine.sh up (run with --ignored, as .ci/run does)"]
fn ssh_failures_are_clear_errors_naming_the_host() {
    check_engine();
    let stack = stack_name("resshbad");
    let repo = app_repo(&stack, 1);
    let plan = plan_args(&repo, &stack);
    let host = engine_ip();

    let mismatch = SshKey::new("").with_wrong_host_key();
    let o = shoal_with(&refs(&plan), &mismatch.env());
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("refused the host key of {host}")),
        "{err}"
    );

    let refused = SshKey::new("");
    refused.revoke();
    let o = shoal_with(&refs(&plan), &refused.env());
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&format!("{host} refused the login")), "{err}");

    // The key logs in, but its session has no `docker` on the PATH.
    let no_docker = SshKey::new("environment=\"PATH=/nonexistent\"");
    let o = shoal_with(&refs(&plan), &no_docker.env());
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("no `docker` command on {host}")),
        "{err}"
    );
}

#[test]
#[ignore = "needs scripts/remote-engine.sh up (run with --ignored, as .ci/run does)"]
fn the_agent_heals_drift_over_ssh_from_the_event_stream() {
    check_engine();
    let stack = stack_name("resshag");
    let _guard = RemoteStack(stack.clone());
    let svc = format!("{stack}_app");
    let remote = GitRemote::new();
    remote.write(&format!("stacks/{stack}/stack.yml"), &agent::app_stack(1));
    remote.push("add stack");
    let key = SshKey::new("");
    let env = key.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lease = format!("shoal-lease-{stack}");
    // A 300 s poll: only the event stream (over ssh) can bring it back fast.
    let started = Instant::now();
    let agent = Agent::start_env(&remote, &lease, "300s", &["--stack", &stack], &env);
    poll("stack applied over ssh", Duration::from_secs(60), || {
        (remote_replicas(&svc) == Some(1)).then_some(())
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack_outcome(&agent, &stack).is_none() {
        assert!(
            Instant::now() < deadline,
            "no pass recorded in 60 s\n{}\n{}",
            agent.status(),
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("agent's first pass over ssh: {:?}", started.elapsed());
    assert!(
        !exists("service", &svc),
        "the agent wrote to the local swarm"
    );
    remote_docker(&["service", "scale", "--detach", &format!("{svc}=3")]);
    let scaled = Instant::now();
    poll("drift healed over ssh", Duration::from_secs(10), || {
        (remote_replicas(&svc) == Some(1)).then_some(())
    });
    eprintln!("drift healed over ssh in {:?}", scaled.elapsed());
    // The spec is rewritten before the agent's convergence wait ends; the
    // pass counts the correction after that wait.
    assert!(
        wait_until(Duration::from_secs(30), || agent
            .metrics()
            .contains("shoal_drift_corrections_total 1")),
        "{}\n{}",
        agent.metrics(),
        agent.logs()
    );
}

/// A real registry (Debian's docker-registry, htpasswd auth) on the remote
/// engine's own loopback, inside its namespace: only that engine reaches it,
/// so a digest shoal pins can only have come through the remote engine's
/// distribution endpoint, with the credentials shoal sent it.
struct NamespacedRegistry {
    addr: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl NamespacedRegistry {
    fn start(user: &str, password: &str) -> NamespacedRegistry {
        let dir = tempfile::tempdir().unwrap();
        // The namespace has its own ports; tests of this file are the only users.
        let addr = format!("127.0.0.1:{}", 15000 + std::process::id() % 5000);
        let htpasswd = dir.path().join("htpasswd");
        let out = Command::new("htpasswd")
            .arg("-Bbc")
            .arg(&htpasswd)
            .args([user, password])
            .output()
            .expect("run htpasswd");
        assert!(out.status.success(), "htpasswd failed");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: shoal-test\n    path: {}\n",
                dir.path().join("data").display(),
                htpasswd.display()
            ),
        )
        .unwrap();
        let netns = std::env::var("SHOAL_RE_NETNS").unwrap_or_else(|_| "shoal-re".into());
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        // nsenter execs the registry: the child is the registry itself.
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{netns}"))
            .args(["docker-registry", "serve"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry in the namespace");
        NamespacedRegistry {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for NamespacedRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs scripts/remote-engine.sh up (run with --ignored, as .ci/run does)"]
fn digests_and_registry_auth_go_through_the_remote_engine() {
    check_engine();
    assert!(
        tools_available(
            &["docker-registry", "htpasswd"],
            "apt-get install docker-registry apache2-utils"
        ),
        "the remote registry test needs docker-registry and htpasswd"
    );
    let (user, password) = ("remote-alice", "remote-registry-pw");
    let registry = NamespacedRegistry::start(user, password);
    // The docker CLI keeps the login in this config; the remote engine checks it.
    let config = tempfile::tempdir().unwrap();
    let sock = format!("unix://{}/docker.sock", run_dir().display());
    let cli = |args: &[&str], stdin: Option<&str>| -> Output {
        use std::io::Write;
        let mut child = Command::new("docker")
            .arg("--config")
            .arg(config.path())
            .args(["-H", &sock])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    };
    poll(
        "the namespaced registry to accept a login",
        Duration::from_secs(30),
        || {
            cli(
                &["login", "-u", user, "--password-stdin", &registry.addr],
                Some(password),
            )
            .status
            .success()
            .then_some(())
        },
    );
    let tag = format!("{}/remote-app:1", registry.addr);
    remote_docker(&["tag", "busybox:1.36", &tag]);
    let o = cli(&["push", "-q", &tag], None);
    assert!(
        o.status.success(),
        "push: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let digests = remote_docker(&[
        "image",
        "inspect",
        "--format",
        "{{range .RepoDigests}}{{println .}}{{end}}",
        &tag,
    ]);
    let repo_name = format!("{}/remote-app", registry.addr);
    let digest = digests
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{repo_name}@")))
        .unwrap_or_else(|| panic!("no digest for {tag}: {digests}"))
        .to_string();

    let stack = stack_name("resshreg");
    let _guard = RemoteStack(stack.clone());
    let repo = Repo::new();
    repo.stack(
        &stack,
        &format!("version: \"3.8\"\nservices:\n  web:\n    image: {tag}\n    command: [\"sleep\", \"3600\"]\n"),
    );
    let key = SshKey::new("");
    let mut env = key.env();
    env.push(("DOCKER_CONFIG".into(), config.path().display().to_string()));
    let repo_dir = repo.path().to_str().unwrap();
    let o = shoal_with(
        &[
            "apply",
            "--repo",
            repo_dir,
            "--stack",
            &stack,
            "--auto-approve",
            "--with-registry-auth",
            "--resolve-image",
            "always",
        ],
        &env,
    );
    assert_code(&o, 0);
    let spec = remote_docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        &format!("{stack}_web"),
    ]);
    assert_eq!(spec, format!("{tag}@{digest}"));
    let o = shoal_with(
        &[
            "plan",
            "--repo",
            repo_dir,
            "--stack",
            &stack,
            "--detailed-exitcode",
            "--resolve-image",
            "always",
        ],
        &env,
    );
    assert_code(&o, 0);

    // Without the login the registry refuses the remote engine's lookup,
    // and the plan says so, naming the image.
    let empty = tempfile::tempdir().unwrap();
    let mut env = key.env();
    env.push(("DOCKER_CONFIG".into(), empty.path().display().to_string()));
    let o = shoal_with(
        &[
            "plan",
            "--repo",
            repo_dir,
            "--stack",
            &stack,
            "--resolve-image",
            "always",
        ],
        &env,
    );
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&tag) && err.contains("requires credentials"),
        "{err}"
    );
}
