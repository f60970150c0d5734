//! Where the age identities come from: `SHOAL_AGE_KEY_FILE`, or SOPS' own
//! places (`SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, the user config folder);
//! and registering every credential of shoal's own with the [`Redactor`].
use std::io::{BufReader, Read as _};
use std::path::{Path, PathBuf};

use super::{Redactor, SecretsError};

/// The environment that decides where keys are looked for. Captured once
/// (`from_process`), or built by hand in tests.
#[derive(Clone, Default)]
pub struct KeyEnv {
    /// `SHOAL_AGE_KEY_FILE`: when set, the only place looked at.
    pub shoal_age_key_file: Option<String>,
    /// `SOPS_AGE_KEY`: identities inline.
    pub sops_age_key: Option<String>,
    /// `SOPS_AGE_KEY_FILE`.
    pub sops_age_key_file: Option<String>,
    /// `XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<String>,
    /// `HOME`.
    pub home: Option<String>,
}

impl std::fmt::Debug for KeyEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SOPS_AGE_KEY holds private keys: show only whether it is set.
        f.debug_struct("KeyEnv")
            .field("shoal_age_key_file", &self.shoal_age_key_file)
            .field("sops_age_key", &self.sops_age_key.as_ref().map(|_| "(set)"))
            .field("sops_age_key_file", &self.sops_age_key_file)
            .field("xdg_config_home", &self.xdg_config_home)
            .field("home", &self.home)
            .finish()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl KeyEnv {
    /// The variables of this process.
    pub fn from_process() -> KeyEnv {
        KeyEnv {
            shoal_age_key_file: var("SHOAL_AGE_KEY_FILE"),
            sops_age_key: var("SOPS_AGE_KEY"),
            sops_age_key_file: var("SOPS_AGE_KEY_FILE"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
        }
    }

    /// Only this key file (as `SHOAL_AGE_KEY_FILE` would).
    pub fn key_file(path: impl Into<String>) -> KeyEnv {
        KeyEnv {
            shoal_age_key_file: Some(path.into()),
            ..KeyEnv::default()
        }
    }

    /// Registers the key material these variables point at with
    /// `redactor`: `SOPS_AGE_KEY`'s value and the content of every key
    /// file (`SHOAL_AGE_KEY_FILE`, `SOPS_AGE_KEY_FILE`, the default one).
    /// Best effort: a file that cannot be read is reported when keys are
    /// loaded, not here.
    pub fn register_key_material(&self, redactor: &Redactor) {
        if let Some(inline) = &self.sops_age_key {
            register_key_text(redactor, inline);
        }
        let files = [&self.shoal_age_key_file, &self.sops_age_key_file]
            .into_iter()
            .flatten()
            .map(PathBuf::from)
            .chain(self.default_key_file());
        for path in files {
            if let Some(text) = read_small(&path) {
                register_key_text(redactor, &text);
            }
        }
    }

    /// SOPS' default key file: `$XDG_CONFIG_HOME/sops/age/keys.txt`, else
    /// `~/.config/sops/age/keys.txt`.
    fn default_key_file(&self) -> Option<PathBuf> {
        let config = match (&self.xdg_config_home, &self.home) {
            (Some(xdg), _) => PathBuf::from(xdg),
            (None, Some(home)) => PathBuf::from(home).join(".config"),
            (None, None) => return None,
        };
        Some(config.join("sops").join("age").join("keys.txt"))
    }
}

/// Key or token files are small; a larger one is not read for masking
/// (loading it reports its own problem).
const MAX_CREDENTIAL_FILE: u64 = 1024 * 1024;

/// The text of a small file, if it can be read.
fn read_small(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_CREDENTIAL_FILE)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// An identity file's text: the whole and each identity line (comments
/// carry the public key, which is no secret).
fn register_key_text(redactor: &Redactor, text: &str) {
    redactor.register(text.trim());
    for line in text.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') {
            redactor.register(line);
        }
    }
}

/// Registers every credential shoal itself holds with `redactor`, so it is
/// masked wherever it would appear (plans, errors, logs, /status): the
/// age key material (see [`KeyEnv::register_key_material`]), the value of
/// every process variable that is one of shoal's own credentials
/// ([`super::is_own_credential`]; for a path, `*_FILE` or `SHOAL_SSH_KEY`,
/// the file's content instead), and the passwords and tokens of the docker config's
/// `auths` entries. `files` are further credential files the command line
/// named (`--git-token-file`, `--ssh-key`, `--webhook-secret-file`).
pub fn register_own_credentials(redactor: &Redactor, files: &[&Path]) {
    KeyEnv::from_process().register_key_material(redactor);
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if !super::is_own_credential(name) || value.is_empty() {
            continue;
        }
        // A path names where the credential is, and stays readable in
        // messages; the file's content is what gets masked.
        if name.ends_with("_FILE") || name == "SHOAL_SSH_KEY" {
            if let Some(text) = read_small(Path::new(value)) {
                register_key_text(redactor, &text);
            }
        } else {
            redactor.register(value);
        }
    }
    for path in files {
        if let Some(text) = read_small(path) {
            register_key_text(redactor, &text);
        }
    }
    if let Ok(credentials) = crate::image::Credentials::from_env() {
        for value in credentials.secret_values() {
            redactor.register(&value);
        }
    }
}

/// The identities found, and where they were looked for.
pub struct AgeKeys {
    pub(crate) identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// Places identities were read from (file paths, `$SOPS_AGE_KEY`).
    pub sources: Vec<String>,
    /// Every place looked at, found or not, for messages.
    pub tried: Vec<String>,
}

impl std::fmt::Debug for AgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgeKeys")
            .field("identities", &self.identities.len())
            .field("sources", &self.sources)
            .field("tried", &self.tried)
            .finish()
    }
}

fn parse_identities(
    text: &[u8],
    location: &str,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, SecretsError> {
    let bad = || SecretsError::KeySource {
        location: location.to_string(),
        message: "not a valid age identity file (expected AGE-SECRET-KEY-1… lines)".into(),
    };
    let file = age::IdentityFile::from_buffer(BufReader::new(text)).map_err(|_| bad())?;
    let identities = file.into_identities().map_err(|_| bad())?;
    if identities.is_empty() {
        return Err(bad());
    }
    Ok(identities)
}

fn read_key_file(path: &str, label: &str) -> Result<Vec<u8>, SecretsError> {
    std::fs::read(path).map_err(|e| SecretsError::KeySource {
        location: format!("{label} {path}"),
        message: format!("cannot read the age key file: {e}"),
    })
}

impl AgeKeys {
    /// Loads identities as SOPS would: with `SHOAL_AGE_KEY_FILE` set, only
    /// that file (it must exist); otherwise every one of `SOPS_AGE_KEY`,
    /// `SOPS_AGE_KEY_FILE` (must exist when set) and the default key file
    /// (may be absent). Finding none is not an error here: decrypting is.
    pub fn load(env: &KeyEnv) -> Result<AgeKeys, SecretsError> {
        let mut keys = AgeKeys {
            identities: Vec::new(),
            sources: Vec::new(),
            tried: Vec::new(),
        };
        if let Some(path) = &env.shoal_age_key_file {
            let text = read_key_file(path, "SHOAL_AGE_KEY_FILE")?;
            keys.identities = parse_identities(&text, path)?;
            keys.tried.push(format!("SHOAL_AGE_KEY_FILE={path}"));
            keys.sources.push(path.clone());
            return Ok(keys);
        }
        keys.tried.push("SHOAL_AGE_KEY_FILE (unset)".into());
        match &env.sops_age_key {
            Some(inline) => {
                let ids = parse_identities(inline.as_bytes(), "SOPS_AGE_KEY")?;
                keys.identities.extend(ids);
                keys.tried.push("SOPS_AGE_KEY".into());
                keys.sources.push("$SOPS_AGE_KEY".into());
            }
            None => keys.tried.push("SOPS_AGE_KEY (unset)".into()),
        }
        match &env.sops_age_key_file {
            Some(path) => {
                let text = read_key_file(path, "SOPS_AGE_KEY_FILE")?;
                keys.identities.extend(parse_identities(&text, path)?);
                keys.tried.push(format!("SOPS_AGE_KEY_FILE={path}"));
                keys.sources.push(path.clone());
            }
            None => keys.tried.push("SOPS_AGE_KEY_FILE (unset)".into()),
        }
        match env.default_key_file() {
            Some(path) => {
                let shown = path.display().to_string();
                match std::fs::read(&path) {
                    Ok(text) => {
                        keys.identities.extend(parse_identities(&text, &shown)?);
                        keys.sources.push(shown.clone());
                        keys.tried.push(shown);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        keys.tried.push(format!("{shown} (absent)"));
                    }
                    Err(e) => {
                        return Err(SecretsError::KeySource {
                            location: shown,
                            message: format!("cannot read the age key file: {e}"),
                        })
                    }
                }
            }
            None => keys
                .tried
                .push("~/.config/sops/age/keys.txt (neither XDG_CONFIG_HOME nor HOME set)".into()),
        }
        Ok(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_is_registered_and_paths_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.txt");
        std::fs::write(
            &file,
            "# public key: age1public\nAGE-SECRET-KEY-1FROMFILE\n",
        )
        .unwrap();
        let env = KeyEnv {
            sops_age_key: Some("AGE-SECRET-KEY-1INLINE".into()),
            sops_age_key_file: Some(file.display().to_string()),
            xdg_config_home: Some(dir.path().join("none").display().to_string()),
            ..KeyEnv::default()
        };
        let r = Redactor::new();
        env.register_key_material(&r);
        let text = format!(
            "a AGE-SECRET-KEY-1INLINE b AGE-SECRET-KEY-1FROMFILE c {} d age1public",
            file.display()
        );
        assert_eq!(
            r.redact(&text),
            format!(
                "a (sensitive) b (sensitive) c {} d age1public",
                file.display()
            )
        );
    }
}
