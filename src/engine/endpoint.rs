//! Which Docker Engine to talk to, resolved as the docker CLI resolves it:
//! `-H/--host` or `--context` (never both), else `DOCKER_HOST`, else the
//! context named by `DOCKER_CONTEXT` or `currentContext` in the config, else
//! the default socket. `DOCKER_TLS_VERIFY`/`DOCKER_TLS`/`DOCKER_CERT_PATH`
//! apply to a host given by `-H` or `DOCKER_HOST`; a context carries its own
//! TLS material (the context store's `tls/` folder).
//!
//! Everything here is pure over its inputs (the environment, the config
//! directory, the command line); the connection itself is `transport.rs`.
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Why the engine to talk to cannot be resolved. Each message names where
/// the setting came from (`--host`, `DOCKER_HOST`, a docker context, a
/// file). Underlying errors are part of the text, not a `source()`: the
/// CLI prints causes again.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "--host {host} and --context {context}: give one or the other, not both (as for docker)"
    )]
    HostAndContext { host: String, context: String },
    /// A host that cannot be read; `from` is where it came from.
    #[error("docker host {host:?} ({from}): {reason}")]
    BadHost {
        host: String,
        from: String,
        reason: String,
    },
    #[error("docker host {host:?} ({from}): {reason}; expected ssh://[user@]host[:port]")]
    BadSsh {
        host: String,
        from: String,
        reason: String,
    },
    #[error("docker host {host:?} ({from}) is not supported: use unix:///path/to/docker.sock, tcp://host:port (with DOCKER_TLS_VERIFY for TLS) or ssh://[user@]host[:port]")]
    Unsupported { host: String, from: String },
    /// TLS without verification, and no `--insecure-skip-tls-verify`.
    #[error("docker host {host} ({from}): {why} (the server certificate would not be checked); set DOCKER_TLS_VERIFY=1 with the CA in {origin}, or pass --insecure-skip-tls-verify to accept that anyone on the path can impersonate the engine")]
    Unverified {
        host: String,
        from: String,
        why: &'static str,
        origin: String,
    },
    #[error("{}: cannot read: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not valid JSON: {error}", path.display())]
    InvalidJson {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("docker context {name:?} (from {from}): cannot read {}: {error}; `docker context ls` lists the contexts", meta.display())]
    UnknownContext {
        name: String,
        from: String,
        meta: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: docker context {name:?} has no docker endpoint", meta.display())]
    NoDockerEndpoint { name: String, meta: PathBuf },
}

/// Where the daemon listens and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
    /// `host:port` over TLS.
    Tls(TlsEndpoint),
    /// `ssh://[user@]host[:port][/socket]`: `docker system dial-stdio` on
    /// the far side, through the system's OpenSSH client.
    Ssh(SshEndpoint),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Tls(t) => write!(f, "tcp://{} (TLS)", t.addr),
            Endpoint::Ssh(s) => write!(f, "{s}"),
        }
    }
}

/// A TLS endpoint and the files that secure it. Missing files are left out,
/// as the docker CLI does; the handshake then says what the daemon wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsEndpoint {
    /// `host:port`
    pub addr: String,
    /// The name the server certificate must carry (host name or address).
    pub server_name: String,
    /// CA bundle; without one the system's roots are trusted.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (both or none are used).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Accept any server certificate: only with `--insecure-skip-tls-verify`.
    pub skip_verify: bool,
    /// Where the TLS settings came from, for error messages
    /// (`DOCKER_CERT_PATH=/x`, `docker context "prod"`).
    pub origin: String,
}

/// `ssh://[user@]host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshEndpoint {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The engine socket on the far side (`docker --host unix://PATH`).
    pub socket: Option<String>,
}

impl std::fmt::Display for SshEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ssh://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(s) = &self.socket {
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// The default socket, as the docker CLI uses it.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// What the command line says about the engine (`-H`, `--context`,
/// `--insecure-skip-tls-verify`); all empty means "as the environment says".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineSelection {
    pub host: Option<String>,
    pub context: Option<String>,
    pub insecure_skip_tls_verify: bool,
}

static SELECTION: OnceLock<EngineSelection> = OnceLock::new();

/// Record the command line's choice once, at start-up, for every
/// [`crate::engine::Engine::connect`] of this process (the CLI and the
/// agent connect in several places; the choice is one per process, like
/// `DOCKER_HOST`). A second call is ignored.
pub fn select(selection: EngineSelection) {
    let _ = SELECTION.set(selection);
}

/// What the command line chose (see [`select`]); empty before it did.
pub fn selection() -> EngineSelection {
    SELECTION.get().cloned().unwrap_or_default()
}

/// The endpoint this process talks to: the command line's choice (see
/// [`select`]) over the environment and the docker config directory.
pub fn current() -> Result<Endpoint, EndpointError> {
    let selection = SELECTION.get().cloned().unwrap_or_default();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    resolve(&selection, &env, &crate::docker_cli::config_dir())
}

/// [`current`] with its inputs explicit.
pub fn resolve(
    selection: &EngineSelection,
    env: &dyn Fn(&str) -> Option<String>,
    config_dir: &Path,
) -> Result<Endpoint, EndpointError> {
    let insecure = selection.insecure_skip_tls_verify;
    if let (Some(host), Some(context)) = (&selection.host, &selection.context) {
        return Err(EndpointError::HostAndContext {
            host: host.clone(),
            context: context.clone(),
        });
    }
    // `--context default` is docker's default context: DOCKER_HOST, else
    // the socket, never a stored context.
    match selection.context.as_deref() {
        Some("default") => {
            return match env("DOCKER_HOST") {
                Some(host) => from_host(&host, "DOCKER_HOST", env, config_dir, insecure),
                None => Ok(Endpoint::Unix(DEFAULT_SOCKET.into())),
            }
        }
        Some(context) => return from_context(config_dir, context, "--context", insecure),
        None => {}
    }
    if let Some(host) = &selection.host {
        return from_host(host, "--host", env, config_dir, insecure);
    }
    if let Some(host) = env("DOCKER_HOST") {
        return from_host(&host, "DOCKER_HOST", env, config_dir, insecure);
    }
    if let Some(context) = env("DOCKER_CONTEXT") {
        return from_context(config_dir, &context, "DOCKER_CONTEXT", insecure);
    }
    match current_context(config_dir)? {
        Some(context) => from_context(
            config_dir,
            &context,
            "currentContext in config.json",
            insecure,
        ),
        None => Ok(Endpoint::Unix(DEFAULT_SOCKET.into())),
    }
}

/// A host from `-H` or `DOCKER_HOST`, with the TLS settings of the
/// environment (`DOCKER_TLS_VERIFY`, `DOCKER_TLS`, `DOCKER_CERT_PATH`).
fn from_host(
    host: &str,
    from: &str,
    env: &dyn Fn(&str) -> Option<String>,
    config_dir: &Path,
    insecure: bool,
) -> Result<Endpoint, EndpointError> {
    // As the docker CLI: any non-empty value switches them on.
    let verify = env("DOCKER_TLS_VERIFY").is_some();
    let tls = verify || env("DOCKER_TLS").is_some();
    let cert_dir = env("DOCKER_CERT_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| config_dir.to_path_buf());
    let settings = tls.then(|| TlsSettings {
        dir: cert_dir.clone(),
        skip_verify: !verify,
        origin: if env("DOCKER_CERT_PATH").is_some() {
            format!("DOCKER_CERT_PATH={}", cert_dir.display())
        } else {
            format!("{} (DOCKER_CERT_PATH unset)", cert_dir.display())
        },
        skip_why: "DOCKER_TLS is set without DOCKER_TLS_VERIFY",
    });
    parse_host(host, from, settings, insecure)
}

/// What secures a `tcp://` host, before the host is known.
struct TlsSettings {
    dir: PathBuf,
    skip_verify: bool,
    origin: String,
    skip_why: &'static str,
}

/// Parse a docker host (`unix://`, `tcp://`, `ssh://`), TLS applying to tcp.
fn parse_host(
    host: &str,
    from: &str,
    tls: Option<TlsSettings>,
    insecure: bool,
) -> Result<Endpoint, EndpointError> {
    if let Some(path) = host.strip_prefix("unix://") {
        // docker ignores the TLS settings for a unix socket.
        if path.is_empty() {
            return Err(bad_host(host, from, "missing socket path"));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if host.starts_with("ssh://") {
        return parse_ssh(host, from).map(Endpoint::Ssh);
    }
    let rest = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
        .or_else(|| host.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Err(EndpointError::Unsupported {
            host: host.to_string(),
            from: from.to_string(),
        });
    };
    let addr = rest.trim_end_matches('/');
    if addr.is_empty() || addr.contains('/') {
        return Err(bad_host(host, from, "expected tcp://host:port"));
    }
    let has_port = addr.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
    let Some(tls) = tls else {
        // Same default port as the docker CLI for plain tcp.
        let addr = if has_port {
            addr.to_string()
        } else {
            format!("{addr}:2375")
        };
        return Ok(Endpoint::Tcp(addr));
    };
    let addr = if has_port {
        addr.to_string()
    } else {
        format!("{addr}:2376")
    };
    if tls.skip_verify && !insecure {
        return Err(EndpointError::Unverified {
            host: host.to_string(),
            from: from.to_string(),
            why: tls.skip_why,
            origin: tls.origin,
        });
    }
    let server_name = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => addr.clone(),
    };
    let file = |name: &str| Some(tls.dir.join(name)).filter(|p| p.exists());
    Ok(Endpoint::Tls(TlsEndpoint {
        addr,
        server_name,
        ca: file("ca.pem"),
        cert: file("cert.pem"),
        key: file("key.pem"),
        skip_verify: tls.skip_verify,
        origin: tls.origin,
    }))
}

fn bad_host(host: &str, from: &str, reason: &str) -> EndpointError {
    EndpointError::BadHost {
        host: host.to_string(),
        from: from.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_ssh(host: &str, from: &str) -> Result<SshEndpoint, EndpointError> {
    let bad = |why: &str| EndpointError::BadSsh {
        host: host.to_string(),
        from: from.to_string(),
        reason: why.to_string(),
    };
    let url = url::Url::parse(host).map_err(|e| bad(&e.to_string()))?;
    if url.password().is_some() {
        return Err(bad(
            "a password in the URL is not supported (use keys or an agent)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment allowed"));
    }
    let name = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("missing host"))?;
    // ssh wants a bare IPv6 address, not the URL's [brackets].
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.starts_with('-') {
        return Err(bad("a host name cannot start with '-'"));
    }
    let user = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    let socket = Some(url.path())
        .filter(|p| !p.is_empty() && *p != "/")
        .map(str::to_string);
    // The socket path goes into the command line ssh hands to the remote
    // shell (`docker --host unix://PATH ...`): characters that shell would
    // read (`;`, `$`, `|`, quotes, ...) could run commands there, and a
    // cluster.yml in the repository may name this host.
    if let Some(path) = &socket {
        let plain = |c: char| c.is_ascii_alphanumeric() || "/._-".contains(c);
        if !path.chars().all(plain) {
            return Err(bad(&format!(
                "the socket path {path:?} may hold only letters, digits, '/', '.', '_' and '-'"
            )));
        }
    }
    Ok(SshEndpoint {
        user,
        host: name.to_string(),
        port: url.port(),
        socket,
    })
}

/// `currentContext` of `config.json`, if any.
fn current_context(config_dir: &Path) -> Result<Option<String>, EndpointError> {
    let path = config_dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(EndpointError::Unreadable { path, error }),
    };
    let doc = json(&text, &path)?;
    Ok(doc
        .get("currentContext")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_string))
}

/// The docker endpoint of context `name`: `contexts/meta/<sha256>/meta.json`
/// for the host and `SkipTLSVerify`, `contexts/tls/<sha256>/docker/` for the
/// TLS files.
fn from_context(
    config_dir: &Path,
    name: &str,
    from: &str,
    insecure: bool,
) -> Result<Endpoint, EndpointError> {
    if name == "default" {
        return Ok(Endpoint::Unix(DEFAULT_SOCKET.into()));
    }
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = config_dir.join("contexts/meta").join(&id).join("meta.json");
    let text = match std::fs::read_to_string(&meta) {
        Ok(t) => t,
        Err(error) => {
            return Err(EndpointError::UnknownContext {
                name: name.to_string(),
                from: from.to_string(),
                meta,
                error,
            })
        }
    };
    let doc = json(&text, &meta)?;
    let Some(host) = doc
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
    else {
        return Err(EndpointError::NoDockerEndpoint {
            name: name.to_string(),
            meta,
        });
    };
    let skip_verify = doc
        .pointer("/Endpoints/docker/SkipTLSVerify")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let tls_dir = config_dir.join("contexts/tls").join(&id).join("docker");
    // As the docker CLI: TLS when the context has TLS files or skips
    // verification.
    let tls = (tls_dir.is_dir() || skip_verify).then(|| TlsSettings {
        dir: tls_dir,
        skip_verify,
        origin: format!("docker context {name:?}"),
        skip_why: "the context sets SkipTLSVerify",
    });
    parse_host(host, &format!("docker context {name:?}"), tls, insecure)
}

/// `text` (of the file `path`) as JSON.
fn json(text: &str, path: &Path) -> Result<serde_json::Value, EndpointError> {
    serde_json::from_str(text).map_err(|error| EndpointError::InvalidJson {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn context(dir: &Path, name: &str, host: &str, skip: bool) {
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let meta = dir.join("contexts/meta").join(id);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":{skip}}}}}}}"#),
        )
        .unwrap();
    }

    fn tls_files(dir: &Path, files: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), "x").unwrap();
        }
    }

    fn none() -> EngineSelection {
        EngineSelection::default()
    }

    #[test]
    fn docker_host_wins_then_the_context_then_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let unix = |p: &str| Endpoint::Unix(p.into());
        assert_eq!(
            resolve(&none(), &env(&[]), d).unwrap(),
            unix(DEFAULT_SOCKET)
        );
        context(d, "prod", "unix:///run/prod.sock", false);
        context(d, "lab", "tcp://10.0.0.5", false);
        std::fs::write(d.join("config.json"), r#"{"currentContext":"prod"}"#).unwrap();
        assert_eq!(
            resolve(&none(), &env(&[]), d).unwrap(),
            unix("/run/prod.sock")
        );
        assert_eq!(
            resolve(&none(), &env(&[("DOCKER_CONTEXT", "lab")]), d).unwrap(),
            Endpoint::Tcp("10.0.0.5:2375".into())
        );
        assert_eq!(
            resolve(&none(), &env(&[("DOCKER_CONTEXT", "default")]), d).unwrap(),
            unix(DEFAULT_SOCKET)
        );
        let both = env(&[("DOCKER_HOST", "unix:///x.sock"), ("DOCKER_CONTEXT", "lab")]);
        assert_eq!(resolve(&none(), &both, d).unwrap(), unix("/x.sock"));
        // The command line wins over the environment.
        let flag = EngineSelection {
            context: Some("prod".into()),
            ..none()
        };
        assert_eq!(resolve(&flag, &both, d).unwrap(), unix("/run/prod.sock"));
        let flag = EngineSelection {
            context: Some("default".into()),
            ..none()
        };
        assert_eq!(resolve(&flag, &both, d).unwrap(), unix("/x.sock"));
        let flag = EngineSelection {
            host: Some("unix:///h.sock".into()),
            ..none()
        };
        assert_eq!(resolve(&flag, &both, d).unwrap(), unix("/h.sock"));
        let err = resolve(
            &EngineSelection {
                host: Some("unix:///h.sock".into()),
                context: Some("prod".into()),
                ..none()
            },
            &env(&[]),
            d,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not both"), "{err}");
        let err = resolve(&none(), &env(&[("DOCKER_CONTEXT", "nope")]), d)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("docker context \"nope\" (from DOCKER_CONTEXT)"),
            "{err}"
        );
    }

    #[test]
    fn docker_tls_verify_uses_the_cert_path_and_port_2376() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        tls_files(&certs, &["ca.pem", "cert.pem", "key.pem"]);
        let e = env(&[
            ("DOCKER_HOST", "tcp://manager.example"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
        ]);
        let Endpoint::Tls(t) = resolve(&none(), &e, dir.path()).unwrap() else {
            panic!("expected TLS")
        };
        assert_eq!(t.addr, "manager.example:2376");
        assert_eq!(t.server_name, "manager.example");
        assert_eq!(t.ca, Some(certs.join("ca.pem")));
        assert_eq!(t.cert, Some(certs.join("cert.pem")));
        assert!(!t.skip_verify);
        assert!(t.origin.contains("DOCKER_CERT_PATH="), "{}", t.origin);
        // Without DOCKER_CERT_PATH: the config directory; missing files are
        // left out (the handshake says what the daemon wanted).
        let e = env(&[
            ("DOCKER_HOST", "tcp://[fd00::1]:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
        ]);
        let Endpoint::Tls(t) = resolve(&none(), &e, dir.path()).unwrap() else {
            panic!("expected TLS")
        };
        assert_eq!((t.ca, t.cert, t.key), (None, None, None));
        assert_eq!(t.server_name, "fd00::1");
        // TLS means nothing to a unix socket, as for docker.
        let e = env(&[
            ("DOCKER_HOST", "unix:///x.sock"),
            ("DOCKER_TLS_VERIFY", "1"),
        ]);
        assert_eq!(
            resolve(&none(), &e, dir.path()).unwrap(),
            Endpoint::Unix("/x.sock".into())
        );
    }

    #[test]
    fn skipping_verification_needs_the_insecure_flag() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let e = env(&[("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS", "1")]);
        let err = resolve(&none(), &e, d).unwrap_err().to_string();
        assert!(err.contains("--insecure-skip-tls-verify"), "{err}");
        assert!(err.contains("tcp://h:2376"), "{err}");
        let insecure = EngineSelection {
            insecure_skip_tls_verify: true,
            ..none()
        };
        let Endpoint::Tls(t) = resolve(&insecure, &e, d).unwrap() else {
            panic!("expected TLS")
        };
        assert!(t.skip_verify);
        context(d, "loose", "tcp://h:2376", true);
        let err = resolve(&none(), &env(&[("DOCKER_CONTEXT", "loose")]), d)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SkipTLSVerify"), "{err}");
        assert!(resolve(&insecure, &env(&[("DOCKER_CONTEXT", "loose")]), d).is_ok());
    }

    #[test]
    fn a_context_with_tls_files_is_a_tls_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        context(d, "secure", "tcp://10.0.0.9:2376", false);
        let id = hex::encode(Sha256::digest(b"secure"));
        let tls = d.join("contexts/tls").join(id).join("docker");
        tls_files(&tls, &["ca.pem", "cert.pem", "key.pem"]);
        // The environment's TLS settings do not apply to a named context.
        let e = env(&[("DOCKER_CONTEXT", "secure"), ("DOCKER_CERT_PATH", "/nope")]);
        let Endpoint::Tls(t) = resolve(&none(), &e, d).unwrap() else {
            panic!("expected TLS")
        };
        assert_eq!(t.addr, "10.0.0.9:2376");
        assert_eq!(t.key, Some(tls.join("key.pem")));
        assert_eq!(t.origin, "docker context \"secure\"");
    }

    #[test]
    fn ssh_hosts_as_the_docker_cli_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ssh = |h: &str| resolve(&none(), &env(&[("DOCKER_HOST", h)]), d);
        assert_eq!(
            ssh("ssh://deploy@manager.example:2222").unwrap(),
            Endpoint::Ssh(SshEndpoint {
                user: Some("deploy".into()),
                host: "manager.example".into(),
                port: Some(2222),
                socket: None,
            })
        );
        let Endpoint::Ssh(s) = ssh("ssh://10.0.0.1/run/docker.sock").unwrap() else {
            panic!("expected ssh")
        };
        assert_eq!((s.user, s.port), (None, None));
        assert_eq!(s.socket.as_deref(), Some("/run/docker.sock"));
        assert_eq!(ssh("ssh://u@h:22").unwrap().to_string(), "ssh://u@h:22");
        assert!(ssh("ssh://u:pw@h")
            .unwrap_err()
            .to_string()
            .contains("password"));
        assert!(ssh("ssh://-oProxyCommand=x").is_err());
        for injected in [
            "ssh://h/run/docker.sock;touch${IFS}/tmp/x",
            "ssh://h/x|id",
            "ssh://h/x$(id)",
            "ssh://h/x&id",
            "ssh://h/x'y",
        ] {
            let err = ssh(injected).unwrap_err().to_string();
            assert!(err.contains("may hold only"), "{injected}: {err}");
        }
        assert!(ssh("npipe:////./pipe/docker")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }
}
