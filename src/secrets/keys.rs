//! Where the age identities come from: `SHOAL_AGE_KEY_FILE`, or SOPS' own
//! places (`SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, the user config folder).
use std::io::BufReader;
use std::path::PathBuf;

use super::SecretsError;

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
