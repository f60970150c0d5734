//! What the docker CLI's own configuration says, so shoal talks to the
//! same daemon and registries as `docker` in the same shell: the config
//! directory (`$DOCKER_CONFIG`, else `~/.docker`). The Engine endpoint is
//! resolved in `engine::endpoint`.
use std::path::PathBuf;

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
