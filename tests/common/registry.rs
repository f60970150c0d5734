//! A real image registry on loopback for tests: Debian's `docker-registry`
//! (distribution 2.8) on a free 127.0.0.1 port, optionally behind htpasswd
//! auth, with its storage in a temporary directory. The docker engine
//! treats 127.0.0.0/8 registries as insecure (plain HTTP) by default.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Registry {
    /// `127.0.0.1:<port>`
    pub addr: String,
    child: Child,
    pub dir: tempfile::TempDir,
}

/// Tools the registry tests need, and how CI installs them.
pub const TOOLS: &[&str] = &["docker-registry", "htpasswd"];
pub const TOOLS_HINT: &str = "apt-get install docker-registry apache2-utils";

impl Registry {
    /// Start a registry; with `user`, only that user/password may use it.
    pub fn start(user: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((name, password)) = user {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&htpasswd)
                .args([name, password])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: shoal-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { addr, child, dir };
        super::poll("the registry to answer", Duration::from_secs(20), || {
            let (status, _) = super::agent::http(port, "GET", "/v2/", &[], b"")?;
            (status == 200 || status == 401).then_some(())
        });
        registry
    }

    /// `127.0.0.1:<port>/<repo>`
    pub fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.addr)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A docker CLI config directory of its own (`docker --config DIR`).
pub struct DockerConfig {
    pub dir: tempfile::TempDir,
}

impl DockerConfig {
    pub fn new() -> DockerConfig {
        DockerConfig {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// `docker login` into this config.
    pub fn login(&self, registry: &str, user: &str, password: &str) {
        use std::io::Write;
        let mut child = Command::new("docker")
            .arg("--config")
            .arg(self.path())
            .args(["login", "-u", user, "--password-stdin", registry])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker login");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker login: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Write config.json as given.
    pub fn write(&self, json: &str) {
        std::fs::write(self.file(), json).unwrap();
    }

    /// Run the docker CLI with this config; panics on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        let dir = self.path().to_str().expect("UTF-8 temp path");
        let mut all = vec!["--config", dir];
        all.extend_from_slice(args);
        super::docker(&all)
    }
}

/// Build an image distinct by `variant` (a label on the busybox stand-in),
/// tag it `image`, push it with `config`, and return its registry digest.
pub fn build_and_push(config: &DockerConfig, image: &str, variant: &str) -> String {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM busybox:1.36\nLABEL io.shoal.test.variant={variant}\n"),
    )
    .unwrap();
    let ctx_path = ctx.path().to_str().unwrap();
    super::docker(&["build", "-q", "-t", image, ctx_path]);
    config.docker(&["push", "-q", image]);
    let repo = image.rsplit_once(':').map(|(r, _)| r).unwrap_or(image);
    let digests = super::docker(&[
        "image",
        "inspect",
        "--format",
        "{{range .RepoDigests}}{{println .}}{{end}}",
        image,
    ]);
    digests
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{repo}@")))
        .unwrap_or_else(|| panic!("no repo digest for {image} in {digests}"))
        .to_string()
}
