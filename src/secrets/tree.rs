//! Plaintext views of a repository: [`DecryptingTree`] hands out SOPS files
//! decrypted (and every other file as is), so the compose loader's
//! `env_file:` and the converter's secret `file:` need no change.
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;
use zeroize::Zeroizing;

use super::keys::{AgeKeys, KeyEnv};
use super::sops::{SopsDocument, SopsFormat};
use super::{Redactor, SecretsError};
use crate::source::{SourceError, Tree};

/// Decrypts SOPS files with lazily loaded age keys, registering every
/// decrypted value with its [`Redactor`]. Keys are read on the first SOPS
/// file, so a repository without any needs no key.
pub struct Decryptor {
    env: KeyEnv,
    keys: OnceLock<Result<AgeKeys, SecretsError>>,
    redactor: Redactor,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor").field("env", &self.env).finish()
    }
}

impl Decryptor {
    /// Keys from `env` (see [`AgeKeys::load`]).
    pub fn new(env: KeyEnv, redactor: Redactor) -> Decryptor {
        // The key material is masked whether or not a SOPS file is read:
        // it is shoal's own credential. Done per Decryptor, so a rotated
        // key is covered on the agent's next pass.
        env.register_key_material(&redactor);
        Decryptor {
            env,
            keys: OnceLock::new(),
            redactor,
        }
    }

    /// Keys from this process's environment.
    pub fn from_env(redactor: Redactor) -> Decryptor {
        Decryptor::new(KeyEnv::from_process(), redactor)
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn keys(&self) -> Result<&AgeKeys, SecretsError> {
        self.keys
            .get_or_init(|| AgeKeys::load(&self.env))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The plaintext of `bytes` if they are a SOPS file (`path` is for
    /// messages and format hints), `None` if they are not.
    pub fn decrypt(&self, path: &str, bytes: &[u8]) -> Result<Option<Plaintext>, SecretsError> {
        let Some(doc) = SopsDocument::detect(path, bytes)? else {
            return Ok(None);
        };
        let decrypted = doc.decrypt(path, self.keys()?)?;
        for value in &decrypted.secrets {
            self.redactor.register_bytes(value);
        }
        // The whole content too: it may become a secret's data, which the
        // Engine API and specs carry base64-encoded.
        self.redactor.register_whole(&decrypted.plaintext);
        Ok(Some(Plaintext {
            format: decrypted.format,
            bytes: decrypted.plaintext,
        }))
    }
}

/// The plaintext of a SOPS file and the format it was stored in.
pub struct Plaintext {
    pub format: SopsFormat,
    /// YAML/JSON documents (without `sops`), dotenv lines, or raw bytes.
    pub bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plaintext")
            .field("format", &self.format)
            .field("bytes", &super::REDACTED)
            .finish()
    }
}

/// A [`Tree`] whose SOPS files read as their plaintext.
pub struct DecryptingTree<T: Tree> {
    inner: T,
    decryptor: Arc<Decryptor>,
}

impl<T: Tree> DecryptingTree<T> {
    pub fn new(inner: T, decryptor: Arc<Decryptor>) -> Self {
        DecryptingTree { inner, decryptor }
    }

    /// Keys from this process's environment, values registered with `redactor`.
    pub fn from_env(inner: T, redactor: Redactor) -> Self {
        DecryptingTree::new(inner, Arc::new(Decryptor::from_env(redactor)))
    }

    /// The tree as stored (ciphertext).
    pub fn inner(&self) -> &T {
        &self.inner
    }

    pub fn decryptor(&self) -> &Arc<Decryptor> {
        &self.decryptor
    }

    /// The interpolation variables of the stack in `stack_dir` from its
    /// SOPS-encrypted variables file, if it has one (see
    /// [`stack_secret_variables`]).
    pub fn stack_variables(
        &self,
        stack_dir: &str,
    ) -> Result<Option<IndexMap<String, String>>, SecretsError> {
        stack_secret_variables(&self.inner, &self.decryptor, stack_dir)
    }
}

impl<T: Tree> Tree for DecryptingTree<T> {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let bytes = self.inner.read(path)?;
        match self.decryptor.decrypt(path, &bytes) {
            Ok(Some(plain)) => Ok(plain.bytes.to_vec()),
            Ok(None) => Ok(bytes),
            Err(e) => Err(SourceError::Other(e.to_string())),
        }
    }
    /// A SOPS file is refused here: its plaintext would be published as
    /// it is (a config), where anyone with `docker config inspect` reads it.
    fn read_public(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let bytes = self.inner.read_public(path)?;
        match SopsDocument::detect(path, &bytes) {
            Ok(None) => Ok(bytes),
            Ok(Some(_)) => Err(SourceError::Io {
                path: path.to_string(),
                message: "is SOPS-encrypted, and a config is readable by anyone with \
                          `docker config inspect`: declare it under `secrets:` instead"
                    .to_string(),
            }),
            Err(e) => Err(SourceError::Other(e.to_string())),
        }
    }
    fn list(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        self.inner.list(dir)
    }
    fn is_file(&self, path: &str) -> bool {
        self.inner.is_file(path)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn local_root(&self) -> Option<PathBuf> {
        self.inner.local_root()
    }
}

/// The names a stack's encrypted interpolation-variables file may have, in
/// its folder next to the stack file: a flat YAML map, or dotenv lines.
pub const STACK_SECRET_VARIABLE_FILES: [&str; 2] = ["stack.env.sops.yaml", "stack.sops.env"];

/// Reads `<stack_dir>/stack.env.sops.yaml` or `<stack_dir>/stack.sops.env`
/// from `raw` (the tree as stored, not a [`DecryptingTree`]), decrypts it
/// and returns its variables in file order. `None` when the stack has
/// neither. The file must be SOPS-encrypted (a plaintext one is refused:
/// its name promises it is not in git in clear), hold only scalar values,
/// and only one of the two names may exist.
pub fn stack_secret_variables(
    raw: &dyn Tree,
    decryptor: &Decryptor,
    stack_dir: &str,
) -> Result<Option<IndexMap<String, String>>, SecretsError> {
    // By name, not `is_file`: a variables file that is a link or a fifo
    // is then an error naming it (from the read), not silently skipped.
    let listed = raw
        .list(stack_dir)
        .map_err(|e| SecretsError::invalid(stack_dir, e.to_string()))?;
    let present: Vec<String> = STACK_SECRET_VARIABLE_FILES
        .iter()
        .filter(|name| listed.iter().any(|l| l == *name))
        .map(|name| format!("{stack_dir}/{name}"))
        .collect();
    let path = match present.as_slice() {
        [] => return Ok(None),
        [one] => one,
        many => {
            return Err(SecretsError::invalid(
                stack_dir,
                format!(
                    "more than one variables file ({}); keep one",
                    many.join(", ")
                ),
            ))
        }
    };
    let bytes = raw
        .read(path)
        .map_err(|e| SecretsError::invalid(path, e.to_string()))?;
    let Some(Plaintext {
        format,
        bytes: plaintext,
    }) = decryptor.decrypt(path, &bytes)?
    else {
        return Err(SecretsError::invalid(
            path,
            "is not SOPS-encrypted; encrypt it with `sops -e -i` before committing it",
        ));
    };
    let text = std::str::from_utf8(&plaintext)
        .map_err(|_| SecretsError::invalid(path, "decrypted variables are not UTF-8 text"))?;
    let vars = match format {
        SopsFormat::Dotenv => super::sops::document::parse_dotenv(text)
            .map_err(|m| SecretsError::invalid(path, m))?
            .into_iter()
            .collect(),
        SopsFormat::Yaml | SopsFormat::Json => yaml_variables(path, text)?,
        SopsFormat::Binary => {
            return Err(SecretsError::invalid(
                path,
                "is a binary SOPS file; variables need the YAML or dotenv format",
            ))
        }
    };
    Ok(Some(vars))
}

fn yaml_variables(path: &str, text: &str) -> Result<IndexMap<String, String>, SecretsError> {
    use serde_yaml::Value as Y;
    let value: Y = serde_yaml::from_str(text)
        .map_err(|_| SecretsError::invalid(path, "decrypted variables are not a YAML map"))?;
    let Y::Mapping(map) = value else {
        return Err(SecretsError::invalid(
            path,
            "expected a map of VARIABLE: value at the top level",
        ));
    };
    let mut vars = IndexMap::new();
    for (key, value) in map {
        let Y::String(key) = key else {
            return Err(SecretsError::invalid(
                path,
                "variable names must be strings",
            ));
        };
        let text = match value {
            Y::String(s) => s,
            Y::Bool(b) => b.to_string(),
            Y::Number(n) => n.to_string(),
            Y::Null => String::new(),
            _ => {
                return Err(SecretsError::invalid(
                    path,
                    format!(
                        "variable `{key}` must be a string, number or boolean, not a map or list"
                    ),
                ))
            }
        };
        vars.insert(key, text);
    }
    Ok(vars)
}
