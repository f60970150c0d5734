//! What the docker CLI's own configuration says, so shoal talks to the
//! same daemon and registries as `docker` in the same shell: the config
//! directory (`$DOCKER_CONFIG`, else `~/.docker`) and the Engine endpoint
//! (`DOCKER_HOST`, else the context named by `DOCKER_CONTEXT` or the
//! config's `currentContext`, else the default socket).
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// `$DOCKER_CONFIG`, else `$HOME/.docker`.
pub fn config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"))
            .join(".docker"),
    }
}

/// The Engine endpoint the docker CLI would use in this environment.
pub fn engine_host() -> Result<String, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    resolve_host(&env, &config_dir())
}

/// [`engine_host`] with its inputs explicit: `env` reads variables,
/// `config_dir` is the docker config directory. `Ok(None)`-like default:
/// the default socket.
pub fn resolve_host(
    env: &dyn Fn(&str) -> Option<String>,
    config_dir: &Path,
) -> Result<String, String> {
    let tls = env("DOCKER_TLS_VERIFY").is_some() || env("DOCKER_TLS").is_some();
    if let Some(host) = env("DOCKER_HOST") {
        // docker ignores the TLS settings for a unix socket.
        if tls && !host.starts_with("unix://") {
            return Err(format!(
                "DOCKER_HOST={host} with DOCKER_TLS_VERIFY/DOCKER_TLS: TLS connections to the engine are not supported; run shoal on a manager (unix socket) or over an SSH tunnel to its socket"
            ));
        }
        return Ok(host);
    }
    let context = match env("DOCKER_CONTEXT") {
        Some(c) => Some((c, "DOCKER_CONTEXT")),
        None => current_context(config_dir)?.map(|c| (c, "currentContext in config.json")),
    };
    match context {
        Some((name, _)) if name == "default" => Ok(default_host()),
        Some((name, from)) => context_host(config_dir, &name, from),
        None => Ok(default_host()),
    }
}

fn default_host() -> String {
    format!("unix://{}", crate::engine::raw::DEFAULT_SOCKET)
}

/// `currentContext` of `config.json`, if any.
fn current_context(config_dir: &Path) -> Result<Option<String>, String> {
    let path = config_dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
    Ok(doc
        .get("currentContext")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_string))
}

/// The docker endpoint of context `name`, from
/// `contexts/meta/<sha256(name)>/meta.json`.
fn context_host(config_dir: &Path, name: &str, from: &str) -> Result<String, String> {
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = config_dir.join("contexts/meta").join(&id).join("meta.json");
    let text = std::fs::read_to_string(&meta).map_err(|e| {
        format!(
            "docker context {name:?} (from {from}): cannot read {}: {e}; `docker context ls` lists the contexts",
            meta.display()
        )
    })?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not valid JSON: {e}", meta.display()))?;
    let host = doc
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            format!(
                "{}: docker context {name:?} has no docker endpoint",
                meta.display()
            )
        })?;
    let skip_verify = doc
        .pointer("/Endpoints/docker/SkipTLSVerify")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let tls_files = config_dir
        .join("contexts/tls")
        .join(&id)
        .join("docker")
        .is_dir();
    if (tls_files || skip_verify) && !host.starts_with("unix://") {
        return Err(format!(
            "docker context {name:?} (from {from}) connects to {host} with TLS, which shoal does not support; run shoal on a manager (unix socket)"
        ));
    }
    Ok(host.to_string())
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

    fn context(dir: &Path, name: &str, host: &str) {
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let meta = dir.join("contexts/meta").join(id);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
        )
        .unwrap();
    }

    #[test]
    fn docker_host_wins_then_the_context_then_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            resolve_host(&env(&[]), d).unwrap(),
            "unix:///var/run/docker.sock"
        );
        context(d, "prod", "unix:///run/prod.sock");
        context(d, "lab", "tcp://10.0.0.5:2375");
        std::fs::write(d.join("config.json"), r#"{"currentContext":"prod"}"#).unwrap();
        assert_eq!(resolve_host(&env(&[]), d).unwrap(), "unix:///run/prod.sock");
        assert_eq!(
            resolve_host(&env(&[("DOCKER_CONTEXT", "lab")]), d).unwrap(),
            "tcp://10.0.0.5:2375"
        );
        assert_eq!(
            resolve_host(&env(&[("DOCKER_CONTEXT", "default")]), d).unwrap(),
            "unix:///var/run/docker.sock"
        );
        assert_eq!(
            resolve_host(
                &env(&[("DOCKER_HOST", "unix:///x.sock"), ("DOCKER_CONTEXT", "lab")]),
                d
            )
            .unwrap(),
            "unix:///x.sock"
        );
    }

    #[test]
    fn unknown_contexts_and_tls_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let err = resolve_host(&env(&[("DOCKER_CONTEXT", "nope")]), d).unwrap_err();
        assert!(
            err.contains("docker context \"nope\" (from DOCKER_CONTEXT)"),
            "{err}"
        );
        let err = resolve_host(
            &env(&[("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS_VERIFY", "1")]),
            d,
        )
        .unwrap_err();
        assert!(err.contains("TLS"), "{err}");
        // TLS settings mean nothing to a unix socket, as for docker.
        assert_eq!(
            resolve_host(
                &env(&[
                    ("DOCKER_HOST", "unix:///x.sock"),
                    ("DOCKER_TLS_VERIFY", "1")
                ]),
                d
            )
            .unwrap(),
            "unix:///x.sock"
        );
        context(d, "secure", "tcp://h:2376");
        let id = hex::encode(Sha256::digest(b"secure"));
        std::fs::create_dir_all(d.join("contexts/tls").join(id).join("docker")).unwrap();
        let err = resolve_host(&env(&[("DOCKER_CONTEXT", "secure")]), d).unwrap_err();
        assert!(err.contains("with TLS"), "{err}");
    }
}
