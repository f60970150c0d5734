//! Support for agent tests: a bare git repository served over `file://`,
//! the agent as a separate process, a tiny HTTP client.
use super::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// A bare repository and a working clone that commits and pushes to it.
pub struct GitRemote {
    _dir: tempfile::TempDir,
    pub bare: PathBuf,
    pub work: PathBuf,
}

pub fn git(dir: &Path, args: &[&str]) {
    git_env(dir, args, &[]);
}

/// [`git`] with extra environment variables.
pub fn git_env(dir: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) {
    let o = Command::new("git")
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("git");
    assert!(
        o.status.success(),
        "git {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

impl GitRemote {
    pub fn new() -> GitRemote {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("stacks.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "stacks.git"],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        std::fs::write(work.join("README.md"), "stacks\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "init"]);
        git(&work, &["push", "-q", "origin", "main"]);
        GitRemote {
            _dir: dir,
            bare,
            work,
        }
    }
    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
    pub fn write(&self, rel: &str, content: &str) {
        let path = self.work.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    pub fn push(&self, message: &str) {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "main"]);
    }
}

/// One stack (`app`, 1 replica) pushed to a fresh remote, and the lease
/// name its agents share; the stack leaves the swarm when this is dropped.
pub struct AppStack {
    pub stack: String,
    /// `<stack>_app`
    pub svc: String,
    pub lease: String,
    pub remote: GitRemote,
    _guard: super::StackGuard,
}

impl AppStack {
    pub fn pushed(prefix: &str) -> AppStack {
        let stack = super::stack_name(prefix);
        let guard = super::StackGuard::new(&[&stack]);
        let remote = GitRemote::new();
        remote.write(&format!("stacks/{stack}/stack.yml"), &app_stack(1));
        remote.push("add stack");
        AppStack {
            svc: format!("{stack}_app"),
            lease: format!("shoal-lease-{stack}"),
            stack,
            remote,
            _guard: guard,
        }
    }
}

pub fn app_stack(replicas: u32) -> String {
    format!(
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    command: [\"sleep\", \"3600\"]\n    deploy:\n      replicas: {replicas}\n"
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `shoal agent`; killed (SIGKILL) when dropped.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    _cache: tempfile::TempDir,
    log: PathBuf,
}

pub const SECRET: &str = "test-webhook-secret";

impl Agent {
    pub fn start(remote: &GitRemote, lease: &str, interval: &str, extra: &[&str]) -> Agent {
        Agent::start_env(remote, lease, interval, extra, &[])
    }

    /// [`Agent::start`] with extra environment variables.
    pub fn start_env(
        remote: &GitRemote,
        lease: &str,
        interval: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let cache = tempfile::tempdir().unwrap();
        let secret = cache.path().join("webhook-secret");
        std::fs::write(&secret, SECRET).unwrap();
        let port = free_port();
        let log = cache.path().join("agent.log");
        let mut args: Vec<String> = [
            "agent",
            "--repo",
            &remote.url(),
            "--ref",
            "main",
            "--interval",
            interval,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--webhook-secret-file",
            secret.to_str().unwrap(),
            "--cache-dir",
            cache.path().join("git").to_str().unwrap(),
            "--lease-name",
            lease,
            "--lease-ttl",
            "3s",
            "--lease-identity",
            &format!("{lease}-{port}"),
            "--converge-timeout",
            "60s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = super::die_with_test(&mut Command::new(env!("CARGO_BIN_EXE_shoal")))
            .args(&args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start agent");
        let agent = Agent {
            child,
            port,
            _cache: cache,
            log,
        };
        poll("agent HTTP up", Duration::from_secs(20), || {
            http(port, "GET", "/healthz", &[], b"").map(|_| ())
        });
        agent
    }

    pub fn status(&self) -> serde_json::Value {
        let (_, body) = http(self.port, "GET", "/status", &[], b"").expect("status");
        serde_json::from_str(&body).expect("status json")
    }

    pub fn metrics(&self) -> String {
        http(self.port, "GET", "/metrics", &[], b"")
            .expect("metrics")
            .1
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 exchange; `None` when nothing listens.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status: u16 = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Some((status, body))
}

pub fn github_signature(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn webhook(port: u16, signature: &str) -> u16 {
    let body = br#"{"ref":"refs/heads/main"}"#;
    http(
        port,
        "POST",
        "/webhook",
        &[
            ("X-GitHub-Event", "push"),
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", signature),
        ],
        body,
    )
    .expect("webhook")
    .0
}

pub fn signed_webhook(port: u16) -> u16 {
    let body = br#"{"ref":"refs/heads/main"}"#;
    webhook(port, &github_signature(body, SECRET))
}

pub fn stack_outcome(agent: &Agent, stack: &str) -> Option<String> {
    agent.status()["stacks"][stack]["outcome"]
        .as_str()
        .map(str::to_string)
}
