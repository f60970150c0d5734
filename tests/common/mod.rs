//! Test support for integration tests against the real swarm: the docker
//! CLI, cleanup guards, temporary stack repositories, the shoal binary,
//! polling with a deadline.
#![allow(dead_code)]

pub mod agent;
pub mod git_http;
pub mod receiver;
pub mod registry;
pub mod remote;
pub mod sops;
use std::process::Command;
use std::time::{Duration, Instant};

/// Run the docker CLI; panics with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run the docker CLI, ignoring failure (cleanup).
pub fn docker_quiet(args: &[&str]) {
    let _ = Command::new("docker").args(args).output();
}

/// Poll `f` until it is true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Whether an object of `kind` named `name` exists.
pub fn exists(kind: &str, name: &str) -> bool {
    Command::new("docker")
        .args([kind, "inspect", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

use std::path::{Path, PathBuf};
use std::process::Output;

/// A unique stack name for this test run (`<prefix>_<pid>_<n>` shortened).
pub fn stack_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A stacks repository in a temporary directory.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        Repo {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Write a file (creating folders) relative to the repository root.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }
    pub fn remove(&self, rel: &str) {
        let path = self.dir.path().join(rel);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    /// Copy a folder of this project (e.g. `policies`) into the repository
    /// at `dest`, recursively.
    pub fn copy_project_dir(&self, src: &str, dest: &str) {
        fn walk(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.path().is_dir() {
                    walk(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).unwrap();
                }
            }
        }
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join(src),
            &self.dir.path().join(dest),
        );
    }

    /// `stacks/<stack>/stack.yml`
    pub fn stack(&self, stack: &str, yaml: &str) -> PathBuf {
        self.write(&format!("stacks/{stack}/stack.yml"), yaml)
    }
}

/// Run the shoal binary.
pub fn shoal(args: &[&str]) -> Output {
    shoal_env(args, &[])
}

pub fn shoal_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run shoal")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code, with the output in the panic message when it is not `want`.
pub fn assert_code(o: &Output, want: i32) {
    assert_eq!(
        o.status.code(),
        Some(want),
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        stdout(o),
        stderr(o)
    );
}

/// Run the docker CLI, returning the whole output (success or not).
pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("docker")
}

/// `docker stack deploy -c <file> <stack>` from the file's folder.
pub fn docker_stack_deploy(file: &Path, stack: &str) {
    let o = Command::new("docker")
        .current_dir(file.parent().unwrap())
        .args(["stack", "deploy", "-c"])
        .arg(file)
        .arg(stack)
        .output()
        .expect("docker stack deploy");
    assert!(
        o.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Poll `f` until it returns `Some`, or panic after `timeout` naming `what`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The spec of a service as JSON (`docker service inspect`).
pub fn service_spec(name: &str) -> Option<serde_json::Value> {
    let o = docker_output(&["service", "inspect", name]);
    if !o.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v.get(0).cloned()
}

pub fn replicas(name: &str) -> Option<u64> {
    service_spec(name)?
        .pointer("/Spec/Mode/Replicated/Replicas")?
        .as_u64()
}

pub fn service_version(name: &str) -> Option<u64> {
    service_spec(name)?.pointer("/Version/Index")?.as_u64()
}

/// Names of the stack's services / configs / secrets / networks.
pub fn names(kind: &str, stack: &str) -> Vec<String> {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    let out = docker(&[kind, "ls", "--filter", &filter, "--format", "{{.Name}}"]);
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Removes the named stacks when dropped (also on panic), waits until
/// their networks are gone and removes their volumes, so later tests start
/// clean.
pub struct StackGuard(pub Vec<String>);

impl StackGuard {
    pub fn new(stacks: &[&str]) -> StackGuard {
        StackGuard(stacks.iter().map(|s| s.to_string()).collect())
    }
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        for stack in &self.0 {
            if let Err(e) = try_remove_stack(stack, Duration::from_secs(60)) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// `docker stack rm` and wait (with a deadline) until nothing labelled
/// with the stack is left (services, networks, configs, secrets), then
/// remove its volumes; panics when the stack is still there after 90 s.
pub fn remove_stack(stack: &str) {
    try_remove_stack(stack, Duration::from_secs(90)).unwrap_or_else(|e| panic!("{e}"));
}

fn try_remove_stack(stack: &str, timeout: Duration) -> Result<(), String> {
    let _ = Command::new("docker").args(["stack", "rm", stack]).output();
    // The stack's state record (the agent's, or `shoal apply` from git).
    docker_quiet(&["config", "rm", &format!("shoal-state-{stack}")]);
    let deadline = Instant::now() + timeout;
    let left = || -> Vec<String> {
        ["service", "network", "config", "secret"]
            .iter()
            .flat_map(|kind| ls_labelled(kind, stack))
            .collect()
    };
    loop {
        let objects = left();
        if objects.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "stack {stack} still has {} after {timeout:?}",
                objects.join(", ")
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // Stack volumes (labelled by docker's convert and shoal's) outlive
    // `docker stack rm`; they go once no container holds them.
    loop {
        let volumes = ls_labelled("volume", stack);
        if volumes.is_empty() {
            return Ok(());
        }
        let _ = Command::new("docker")
            .args(["volume", "rm"])
            .args(&volumes)
            .output();
        if Instant::now() >= deadline {
            return Err(format!(
                "stack {stack} still has volumes {}",
                volumes.join(", ")
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Names of the objects of `kind` labelled with the stack's namespace;
/// empty when docker fails (cleanup).
fn ls_labelled(kind: &str, stack: &str) -> Vec<String> {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    Command::new("docker")
        .args([kind, "ls", "--filter", &filter, "--format", "{{.Name}}"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether the programs `tools` are on PATH. Without them a test skips,
/// unless SHOAL_REQUIRE_TOOLS=1 (CI) makes that a failure naming `hint`.
pub fn tools_available(tools: &[&str], hint: &str) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!("missing tool(s) {}: {hint}", missing.join(", "));
    if std::env::var("SHOAL_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("SHOAL_REQUIRE_TOOLS=1 and {message}");
    }
    eprintln!("skipping: {message}");
    false
}

/// A repository holding this project's Steedos example and policies, and
/// the example's test-only age key file (its credentials are in
/// `stack.sops.env`, encrypted for that key).
pub fn steedos_example() -> (Repo, String) {
    let repo = Repo::new();
    repo.copy_project_dir("stacks/steedos", "stacks/steedos");
    repo.copy_project_dir("policies", "policies");
    let key = format!(
        "{}/stacks/steedos/age-test-key.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    (repo, key)
}

/// A bollard client for the local engine, API version negotiated.
pub async fn bollard() -> bollard::Docker {
    bollard::Docker::connect_with_defaults()
        .expect("docker socket")
        .negotiate_version()
        .await
        .expect("docker version")
}

/// Make a long-running child (an agent, a browser) die with the test that
/// started it: `cargo test` killed or a test binary crashing otherwise
/// leaves it running, holding ports and reconciling stacks.
pub fn die_with_test(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
