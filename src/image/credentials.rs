//! Registry credentials from the docker CLI's config file, as `docker login`
//! leaves them: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`,
//! with `auths` entries, `credHelpers` and `credsStore` (the
//! `docker-credential-*` helper programs). Reading the file and talking to
//! helpers is `docker_credential`'s work; this adapter adds the file's
//! path to every message and encodes the `X-Registry-Auth` header the
//! Engine expects.
use crate::image::Reference;
use base64::Engine as _;
use docker_credential::{CredentialRetrievalError, DockerCredential};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The docker config file exists but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot read: {error}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    // Part of the message, not a cause: the CLI prints causes again.
    pub error: std::io::Error,
}

/// Why the credentials of a registry could not be read. Messages name the
/// config file (or say the helpers gave no answer); the underlying error is
/// part of the text. `Clone`: one failure answers for every image of that
/// registry (see [`RegistryHeaders`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialsError {
    #[error("{}: not valid JSON: {reason}", path.display())]
    InvalidJson { path: PathBuf, reason: String },
    /// A `docker-credential-*` program failed; `stderr` is what it said.
    #[error("{}: credential helper {helper} failed for {registry}: {stderr}", path.display())]
    Helper {
        path: PathBuf,
        helper: String,
        registry: String,
        stderr: String,
    },
    #[error("{}: credentials for {registry}: {reason}", path.display())]
    Unreadable {
        path: PathBuf,
        registry: String,
        reason: String,
    },
    /// The blocking task reading them failed.
    #[error("reading registry credentials failed: {reason}")]
    Failed { reason: String },
    #[error("a docker credential helper gave no answer within {seconds}s")]
    TimedOut { seconds: u64 },
}

/// The docker config file of this process, read once.
#[derive(Debug, Clone)]
pub struct Credentials {
    path: PathBuf,
    /// The file's bytes; `None` when there is no file (no credentials).
    config: Option<Vec<u8>>,
}

impl Credentials {
    /// Where the docker CLI would look: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        crate::docker_cli::config_dir().join("config.json")
    }

    /// Read the docker config file where the docker CLI would.
    pub fn from_env() -> Result<Credentials, ConfigError> {
        Credentials::load(&Self::default_path())
    }

    /// Read a docker config file; a missing file means no credentials.
    pub fn load(path: &Path) -> Result<Credentials, ConfigError> {
        let config = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(ConfigError {
                    path: path.to_path_buf(),
                    error,
                })
            }
        };
        Ok(Credentials {
            path: path.to_path_buf(),
            config,
        })
    }

    /// The config file this reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `X-Registry-Auth` value for the registry of `image`, or `None`
    /// when the config holds no credentials for it. Helper programs run
    /// here (blocking: call from a blocking context).
    pub fn header_for(&self, image: &str) -> Result<Option<String>, CredentialsError> {
        let Some(config) = &self.config else {
            return Ok(None);
        };
        let reference = Reference::parse(image);
        let key = reference.auth_key();
        let config = as_docker_reads(config, key).map_err(|e| CredentialsError::InvalidJson {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let credential = match docker_credential::get_credential_from_reader(&config[..], key) {
            Ok(c) => c,
            Err(CredentialRetrievalError::NoCredentialConfigured) => return Ok(None),
            Err(CredentialRetrievalError::HelperFailure { stdout, stderr, .. })
                if (stdout.clone() + &stderr).contains("credentials not found") =>
            {
                return Ok(None)
            }
            Err(CredentialRetrievalError::HelperFailure { helper, stderr, .. }) => {
                return Err(CredentialsError::Helper {
                    path: self.path.clone(),
                    helper,
                    registry: key.to_string(),
                    stderr: stderr.trim().to_string(),
                })
            }
            Err(e) => {
                return Err(CredentialsError::Unreadable {
                    path: self.path.clone(),
                    registry: key.to_string(),
                    reason: e.to_string(),
                })
            }
        };
        Ok(Some(encode(&credential, key)))
    }
}

impl Credentials {
    /// The secrets the config file holds in clear: each `auths` entry's
    /// `auth` (base64 of `user:password`), its password, `password`,
    /// `identitytoken` and `registrytoken`, so they can be masked.
    /// Helper-held credentials never enter this process except as a
    /// request header.
    pub fn secret_values(&self) -> Vec<String> {
        use serde_json::Value;
        let Some(doc) = self
            .config
            .as_deref()
            .and_then(|c| serde_json::from_slice::<Value>(c).ok())
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let auths = doc.get("auths").and_then(Value::as_object);
        for entry in auths.into_iter().flat_map(|a| a.values()) {
            for field in ["auth", "password", "identitytoken", "registrytoken"] {
                if let Some(v) = entry.get(field).and_then(Value::as_str) {
                    out.push(v.to_string());
                }
            }
            let decoded = entry
                .get("auth")
                .and_then(Value::as_str)
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if let Some((_, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                out.push(password.to_string());
            }
        }
        out.retain(|v| !v.is_empty());
        out
    }
}

/// The config reduced to what docker would consult for `key`, so that
/// `docker_credential` picks the same source docker picks: a
/// `credHelpers` entry, else the `credsStore` (whose answer wins over any
/// `auths` entry), else the `auths` entry, found by exact key or by
/// hostname (`https://host:5000/v1/` serves `host:5000`). An entry with an
/// empty `auth` holds no credentials.
fn as_docker_reads(config: &[u8], key: &str) -> Result<Vec<u8>, serde_json::Error> {
    use serde_json::{json, Value};
    let mut doc: Value = serde_json::from_slice(config)?;
    let helper = doc
        .pointer("/credHelpers")
        .and_then(|h| h.get(key))
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .is_some();
    let store = doc
        .get("credsStore")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let hostname = |k: &str| {
        let k = k
            .strip_prefix("https://")
            .or_else(|| k.strip_prefix("http://"))
            .unwrap_or(k);
        k.split('/').next().unwrap_or(k).to_string()
    };
    let entry = doc
        .get("auths")
        .and_then(Value::as_object)
        .and_then(|auths| {
            auths
                .get(key)
                .or_else(|| {
                    auths
                        .iter()
                        .find(|(k, _)| hostname(k) == key)
                        .map(|(_, v)| v)
                })
                .cloned()
        });
    let entry = entry.filter(|e| {
        ["auth", "identitytoken", "username", "password"]
            .iter()
            .any(|f| {
                e.get(*f)
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty())
            })
    });
    let auths = match entry {
        Some(e) if !helper && !store => json!({ key: e }),
        _ => json!({}),
    };
    doc["auths"] = auths;
    serde_json::to_vec(&doc)
}

/// The Engine's `X-Registry-Auth`: base64url of the auth config as JSON.
fn encode(credential: &DockerCredential, server: &str) -> String {
    let doc = match credential {
        DockerCredential::UsernamePassword(user, password) => serde_json::json!({
            "username": user, "password": password, "serveraddress": server
        }),
        DockerCredential::IdentityToken(token) => serde_json::json!({
            "identitytoken": token, "serveraddress": server
        }),
    };
    base64::engine::general_purpose::URL_SAFE.encode(doc.to_string())
}

/// Longest wait for the credential helpers of one plan.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `X-Registry-Auth` values by registry key, read once per registry for a
/// set of images: digest lookups and service writes (with
/// `--with-registry-auth`) ask the docker config, and its helper programs,
/// once per registry, not once per image or service.
#[derive(Debug, Default)]
pub struct RegistryHeaders(BTreeMap<String, Result<Option<String>, CredentialsError>>);

impl RegistryHeaders {
    /// Read the credentials of every registry `images` come from. Helpers
    /// run off the async threads, and one that waits on a keyring or a PIN
    /// prompt must not hold the plan: its registries get an error.
    pub async fn read<'a>(
        images: impl IntoIterator<Item = &'a str>,
        creds: &Credentials,
    ) -> RegistryHeaders {
        let mut keys: BTreeMap<String, String> = BTreeMap::new();
        for image in images {
            let key = Reference::parse(image).auth_key().to_string();
            keys.entry(key).or_insert_with(|| image.to_string());
        }
        let all: Vec<String> = keys.keys().cloned().collect();
        let creds = creds.clone();
        let read = tokio::task::spawn_blocking(move || {
            keys.into_iter()
                .map(|(key, image)| {
                    let header = creds.header_for(&image);
                    (key, header)
                })
                .collect()
        });
        let failed =
            |why: CredentialsError| all.iter().map(|k| (k.clone(), Err(why.clone()))).collect();
        RegistryHeaders(match tokio::time::timeout(HELPER_TIMEOUT, read).await {
            Ok(Ok(headers)) => headers,
            Ok(Err(e)) => failed(CredentialsError::Failed {
                reason: e.to_string(),
            }),
            Err(_) => failed(CredentialsError::TimedOut {
                seconds: HELPER_TIMEOUT.as_secs(),
            }),
        })
    }

    /// The header for `image`'s registry: `Ok(None)` when the config has
    /// no credentials for it (or it was not read), `Err` when reading them
    /// failed.
    pub fn for_image(&self, image: &str) -> Result<Option<&str>, &CredentialsError> {
        match self.0.get(Reference::parse(image).auth_key()) {
            Some(Ok(h)) => Ok(h.as_deref()),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(header: &str) -> serde_json::Value {
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(header)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn config(dir: &tempfile::TempDir, text: &str) -> Credentials {
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        Credentials::load(&path).unwrap()
    }

    #[test]
    fn secret_values_are_the_auths_passwords_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        // "alice:s3cret"
        let creds = config(
            &dir,
            r#"{"auths":{"r:5000":{"auth":"YWxpY2U6czNjcmV0"},"q":{"identitytoken":"idt-1"}},"credsStore":"x"}"#,
        );
        let mut values = creds.secret_values();
        values.sort();
        assert_eq!(values, ["YWxpY2U6czNjcmV0", "idt-1", "s3cret"]);
    }

    #[test]
    fn auths_entries_become_the_engine_header() {
        let dir = tempfile::tempdir().unwrap();
        // "alice:s3cret"
        let creds = config(
            &dir,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6czNjcmV0"}}}"#,
        );
        let header = creds.header_for("127.0.0.1:5000/app:3.0").unwrap().unwrap();
        let doc = decode(&header);
        assert_eq!(doc["username"], "alice");
        assert_eq!(doc["password"], "s3cret");
        assert_eq!(doc["serveraddress"], "127.0.0.1:5000");
        // Another registry has no credentials here.
        assert_eq!(creds.header_for("busybox:1.36").unwrap(), None);
    }

    #[test]
    fn docker_hub_images_use_the_index_key() {
        let dir = tempfile::tempdir().unwrap();
        let creds = config(
            &dir,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"Ym9iOnB3"}}}"#,
        );
        let doc = decode(
            &creds
                .header_for("steedos/steedos-enterprise:2.7")
                .unwrap()
                .unwrap(),
        );
        assert_eq!(doc["username"], "bob");
        assert_eq!(doc["serveraddress"], "https://index.docker.io/v1/");
    }

    #[test]
    fn the_source_is_the_one_docker_consults() {
        let dir = tempfile::tempdir().unwrap();
        // A URL-shaped key serves its hostname.
        let creds = config(
            &dir,
            r#"{"auths":{"https://r.example:5000/v1/":{"auth":"YWxpY2U6czNjcmV0"}}}"#,
        );
        let doc = decode(&creds.header_for("r.example:5000/app:1").unwrap().unwrap());
        assert_eq!(doc["username"], "alice");
        // An empty entry (docker logout leaves these) holds nothing.
        let creds = config(&dir, r#"{"auths":{"r.example":{"auth":""}}}"#);
        assert_eq!(creds.header_for("r.example/app:1").unwrap(), None);
        // With a credsStore, the store answers, not a stale auths entry:
        // here the store program is missing, so that is the error.
        let creds = config(
            &dir,
            r#"{"auths":{"r.example":{"auth":"YWxpY2U6czNjcmV0"}},"credsStore":"shoal-no-such-store"}"#,
        );
        assert!(creds.header_for("r.example/app:1").is_err());
    }

    #[test]
    fn a_missing_file_means_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::load(&dir.path().join("config.json")).unwrap();
        assert_eq!(creds.header_for("127.0.0.1:5000/app:1").unwrap(), None);
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let creds = config(&dir, "{not json");
        let err = creds
            .header_for("127.0.0.1:5000/app:1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn a_missing_helper_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let creds = config(
            &dir,
            r#"{"credHelpers":{"127.0.0.1:5000":"shoal-no-such-helper"}}"#,
        );
        let err = creds
            .header_for("127.0.0.1:5000/app:1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("127.0.0.1:5000"), "{err}");
    }
}
