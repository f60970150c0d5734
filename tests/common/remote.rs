//! The separate swarm of `scripts/remote-engine.sh up` (its own network
//! namespace, TLS on :2376, sshd): where it is, its engine for checks, TLS
//! client certificates signed by its CA, and shoal run with a clean engine
//! environment. Shared by `remote_engine` and `clusters`.
use super::docker;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn run_dir() -> PathBuf {
    PathBuf::from(std::env::var("SHOAL_RE_RUN").unwrap_or_else(|_| "/run/shoal-re".into()))
}

pub fn engine_ip() -> String {
    std::env::var("SHOAL_RE_IP").unwrap_or_else(|_| "10.232.0.2".into())
}

pub fn tls_host() -> String {
    format!("tcp://{}:2376", engine_ip())
}

pub fn ssh_host() -> String {
    format!("ssh://root@{}", engine_ip())
}

/// The remote engine through its local socket (setup and checks only; shoal
/// itself always goes through TLS or ssh).
pub fn remote_docker(args: &[&str]) -> String {
    let sock = format!("unix://{}/docker.sock", run_dir().display());
    let out = Command::new("docker")
        .arg("-H")
        .arg(&sock)
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker -H {sock} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn remote_replicas(service: &str) -> Option<u64> {
    let sock = format!("unix://{}/docker.sock", run_dir().display());
    let out = Command::new("docker")
        .args(["-H", &sock, "service", "inspect", service])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[0]["Spec"]["Mode"]["Replicated"]["Replicas"].as_u64()
}

/// The remote engine must be up, and be a swarm of its own.
pub fn check_engine() {
    let name = remote_docker(&["info", "--format", "{{.Name}} {{.Swarm.LocalNodeState}}"]);
    assert!(name.ends_with(" active"), "remote engine: {name}");
    let local = docker(&["info", "--format", "{{.Swarm.Cluster.ID}}"]);
    let remote = remote_docker(&["info", "--format", "{{.Swarm.Cluster.ID}}"]);
    assert_ne!(local, remote, "the remote engine must be a separate swarm");
}

/// Removes a stack from the remote engine when dropped.
pub struct RemoteStack(pub String);

impl Drop for RemoteStack {
    fn drop(&mut self) {
        let sock = format!("unix://{}/docker.sock", run_dir().display());
        let _ = Command::new("docker")
            .args(["-H", &sock, "stack", "rm", &self.0])
            .output();
        // An agent's lease and records live in the swarm it manages.
        for config in [
            format!("shoal-lease-{}", self.0),
            format!("shoal-state-{}", self.0),
        ] {
            let _ = Command::new("docker")
                .args(["-H", &sock, "config", "rm", &config])
                .output();
        }
    }
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A DOCKER_CERT_PATH-style folder: `ca.pem` (the engine's CA unless
/// `wrong_ca`), and with `client`, `cert.pem` + `key.pem` signed by the
/// engine's CA. The key is PKCS#1 (`BEGIN RSA PRIVATE KEY`), as
/// docker-machine and older guides make them.
pub fn cert_dir(client: bool, wrong_ca: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tls = run_dir().join("tls");
    if wrong_ca {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=some other CA",
                "-keyout",
                "other-ca-key.pem",
                "-out",
                "ca.pem",
            ],
        );
    } else {
        std::fs::copy(tls.join("ca.pem"), d.join("ca.pem")).unwrap();
    }
    if client {
        openssl(d, &["genrsa", "-traditional", "-out", "key.pem", "2048"]);
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "key.pem",
                "-subj",
                "/CN=shoal test client",
                "-out",
                "client.csr",
            ],
        );
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        let ca = tls.join("ca.pem");
        let ca_key = tls.join("ca-key.pem");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                ca.to_str().unwrap(),
                "-CAkey",
                ca_key.to_str().unwrap(),
                "-CAcreateserial",
                "-CAserial",
                "ca.srl",
                "-days",
                "1",
                "-extfile",
                "client.ext",
                "-out",
                "cert.pem",
            ],
        );
        let key = std::fs::read_to_string(d.join("key.pem")).unwrap();
        assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    }
    dir
}

pub fn tls_env(certs: &Path) -> Vec<(String, String)> {
    vec![
        ("DOCKER_HOST".into(), tls_host()),
        ("DOCKER_TLS_VERIFY".into(), "1".into()),
        ("DOCKER_CERT_PATH".into(), certs.display().to_string()),
    ]
}

/// shoal with a clean engine environment plus `env`.
pub fn shoal_with(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args).env("NO_COLOR", "1");
    for k in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_TLS",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "SHOAL_SSH_COMMAND",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run shoal")
}
