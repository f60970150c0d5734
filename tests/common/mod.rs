//! Helpers shared by the engine and apply tests: docker CLI calls and a
//! cleanup guard. Names start with `engine_` (this helper's prefix).
#![allow(dead_code)]
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

/// Removes everything of a stack namespace when dropped (services first,
/// then configs, secrets, networks), so a failed test leaves nothing.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_namespace(&self.0);
    }
}

pub fn remove_namespace(ns: &str) {
    let filter = format!("label=com.docker.stack.namespace={ns}");
    for kind in ["service", "config", "secret", "network"] {
        let out = Command::new("docker")
            .args([kind, "ls", "-q", "--filter", &filter])
            .output();
        let Ok(out) = out else { continue };
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if kind == "network" {
                // Tasks of just-removed services may still hold it.
                wait_until(Duration::from_secs(30), || {
                    Command::new("docker")
                        .args(["network", "rm", id])
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(true)
                });
            } else {
                docker_quiet(&[kind, "rm", id]);
            }
        }
    }
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
