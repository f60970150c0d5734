//! In-process decryption of SOPS files (YAML, JSON, dotenv, binary) whose
//! data key is wrapped for age recipients, with the MAC verified as SOPS
//! verifies it. No `sops` binary is involved.
pub mod cipher;
pub mod document;
pub mod metadata;

use std::io::Read;

use zeroize::Zeroizing;

use super::keys::AgeKeys;
use super::SecretsError;
use document::{Node, WalkError};
use metadata::Metadata;

/// The store format of a SOPS file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SopsFormat {
    Yaml,
    Json,
    Dotenv,
    /// `sops --input-type binary`: a JSON `{"data": …, "sops": …}` envelope
    /// around arbitrary bytes.
    Binary,
}

/// A file recognised as SOPS-encrypted, parsed but not yet decrypted.
#[derive(Debug)]
pub struct SopsDocument {
    pub format: SopsFormat,
    /// YAML documents; one branch for the other formats.
    branches: Vec<Node>,
    metadata_node: Node,
}

/// The plaintext of a SOPS file.
pub struct Decrypted {
    pub format: SopsFormat,
    /// The document without its `sops` metadata, in the file's own format
    /// (raw bytes for binary files).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Every value that was encrypted (booleans excepted), as plaintext,
    /// to register with a [`crate::secrets::Redactor`].
    pub secrets: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("format", &self.format)
            .field("plaintext", &"(sensitive)")
            .finish()
    }
}

fn is_sops_metadata(meta: &Node) -> bool {
    matches!(meta, Node::Map(_)) && meta.get("mac").is_some() && meta.get("version").is_some()
}

fn has_dotenv_metadata(text: &str) -> bool {
    let mut mac = false;
    let mut version = false;
    for line in text.lines() {
        mac |= line.starts_with("sops_mac=");
        version |= line.starts_with("sops_version=");
    }
    mac && version
}

/// Whether text carries SOPS ciphertext and a SOPS metadata marker.
fn looks_encrypted(text: &str) -> bool {
    text.contains("ENC[AES256_GCM,")
        && (text.contains("sops:") || text.contains("\"sops\"") || text.contains("sops_mac="))
}

/// Whether `path`'s name ends in an extension that SOPS maps to a
/// structured store (so a `{data, sops}` JSON there is not binary).
fn structured_extension(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".json", ".yaml", ".yml"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

fn split_off_metadata(mut root: Node) -> Option<(Node, Node)> {
    let Node::Map(entries) = &mut root else {
        return None;
    };
    let index = entries.iter().position(|(k, _)| k == "sops")?;
    let (_, meta) = entries.remove(index);
    is_sops_metadata(&meta).then_some((root, meta))
}

impl SopsDocument {
    /// Recognises a SOPS file by its content: a YAML or JSON document with
    /// a top-level `sops` map holding `mac` and `version`, or dotenv lines
    /// `sops_mac=` and `sops_version=`. `None` for anything else (including
    /// files that do not parse): those are not SOPS files.
    ///
    /// A file that carries SOPS-encrypted values and a `sops` marker but is
    /// not a well-formed SOPS file is an error rather than `None`, so its
    /// ciphertext is never used as if it were the content.
    pub fn detect(path: &str, bytes: &[u8]) -> Result<Option<SopsDocument>, SecretsError> {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Ok(None);
        };
        match Self::detect_text(path, text)? {
            Some(doc) => Ok(Some(doc)),
            None if looks_encrypted(text) => Err(SecretsError::invalid(
                path,
                "holds SOPS-encrypted values but is not a well-formed SOPS YAML, JSON, \
                 dotenv or binary file (no top-level `sops` map with `mac` and `version`?)",
            )),
            None => Ok(None),
        }
    }

    fn detect_text(path: &str, text: &str) -> Result<Option<SopsDocument>, SecretsError> {
        if !text.contains("sops") || !text.contains("mac") || !text.contains("version") {
            return Ok(None);
        }
        if has_dotenv_metadata(text) {
            return Self::from_dotenv(path, text).map(Some);
        }
        // Before any recursive parser or tree walk (see crate::nesting).
        let too_deep = |e: crate::source::nesting::TooDeep| {
            SecretsError::invalid(path, format!("line {}: {e}", e.line))
        };
        if text.trim_start().starts_with('{') {
            crate::source::nesting::check_json(text, crate::source::nesting::MAX_DEPTH)
                .map_err(too_deep)?;
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
                let Some((root, meta)) = split_off_metadata(document::from_json(json)) else {
                    return Ok(None);
                };
                let binary = matches!(&root, Node::Map(e) if e.len() == 1
                        && matches!(root.get("data"), Some(Node::Str(_))))
                    && !structured_extension(path);
                return Ok(Some(SopsDocument {
                    format: if binary {
                        SopsFormat::Binary
                    } else {
                        SopsFormat::Json
                    },
                    branches: vec![root],
                    metadata_node: meta,
                }));
            }
        }
        crate::source::nesting::check_yaml(text, crate::source::nesting::MAX_DEPTH)
            .map_err(too_deep)?;
        Self::from_yaml(path, text)
    }

    fn from_yaml(path: &str, text: &str) -> Result<Option<SopsDocument>, SecretsError> {
        use serde::Deserialize as _;
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            match serde_yaml::Value::deserialize(doc) {
                Ok(value) => docs.push(value),
                Err(_) => return Ok(None),
            }
        }
        // The metadata sits in the first document.
        let Some(serde_yaml::Value::Mapping(first)) = docs.first() else {
            return Ok(None);
        };
        match first.get("sops") {
            Some(serde_yaml::Value::Mapping(m))
                if m.contains_key("mac") && m.contains_key("version") => {}
            _ => return Ok(None),
        }
        let mut branches = Vec::with_capacity(docs.len());
        let mut metadata_node = None;
        for (i, doc) in docs.into_iter().enumerate() {
            if doc.is_null() {
                continue; // an empty document
            }
            let node = document::from_yaml(doc, "").map_err(|e| walk_error(path, e))?;
            let Node::Map(mut entries) = node else {
                return Err(SecretsError::invalid(
                    path,
                    "YAML documents that are not mappings cannot be SOPS documents",
                ));
            };
            // SOPS drops a `sops` key from every document, reading the first.
            if let Some(pos) = entries.iter().position(|(k, _)| k == "sops") {
                let (_, meta) = entries.remove(pos);
                if i == 0 {
                    metadata_node = Some(meta);
                }
            }
            branches.push(Node::Map(entries));
        }
        let Some(metadata_node) = metadata_node else {
            return Ok(None);
        };
        Ok(Some(SopsDocument {
            format: SopsFormat::Yaml,
            branches,
            metadata_node,
        }))
    }

    fn from_dotenv(path: &str, text: &str) -> Result<SopsDocument, SecretsError> {
        let entries = document::parse_dotenv(text).map_err(|m| SecretsError::invalid(path, m))?;
        let (meta, data): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(k, _)| k.starts_with("sops_"));
        let meta = meta
            .into_iter()
            .map(|(k, v)| (k["sops_".len()..].to_string(), Node::Str(v)))
            .collect();
        let metadata_node = document::unflatten(meta)
            .map_err(|m| SecretsError::invalid(path, format!("sops metadata: {m}")))?;
        let branch = Node::Map(data.into_iter().map(|(k, v)| (k, Node::Str(v))).collect());
        Ok(SopsDocument {
            format: SopsFormat::Dotenv,
            branches: vec![branch],
            metadata_node,
        })
    }

    /// Decrypts the document: unwraps the data key with the age identities,
    /// decrypts every value, and checks the MAC. A file that fails the
    /// check is refused.
    pub fn decrypt(self, path: &str, keys: &AgeKeys) -> Result<Decrypted, SecretsError> {
        let meta =
            Metadata::from_node(&self.metadata_node).map_err(|m| SecretsError::invalid(path, m))?;
        let key = data_key(path, &meta, keys)?;
        let tree =
            document::decrypt_branches(self.branches, &key, &meta.rules, meta.mac_only_encrypted)
                .map_err(|e| walk_error(path, e))?;
        verify_mac(path, &meta, &key, &tree.mac)?;
        let plaintext = emit(path, self.format, &tree.branches)?;
        Ok(Decrypted {
            format: self.format,
            plaintext,
            secrets: tree.secrets,
        })
    }
}

fn walk_error(path: &str, e: WalkError) -> SecretsError {
    match e {
        WalkError::Tampered { path: at } => SecretsError::Tampered {
            file: path.to_string(),
            detail: format!("the encrypted value at `{at}` fails its integrity check"),
        },
        WalkError::Malformed { path: at, message } => {
            SecretsError::invalid(path, format!("value at `{at}`: {message}"))
        }
        WalkError::NonStringKey { path: at } => SecretsError::invalid(
            path,
            format!("a key under `{at}` is not a string; SOPS only supports string keys"),
        ),
    }
}

/// Unwraps the 32-byte data key from the first age stanza one of the
/// identities opens.
fn data_key(
    path: &str,
    meta: &Metadata,
    keys: &AgeKeys,
) -> Result<Zeroizing<[u8; 32]>, SecretsError> {
    if meta.age.is_empty() {
        return Err(SecretsError::NoAgeRecipient {
            file: path.to_string(),
            other_kinds: meta.other_key_kinds.clone(),
        });
    }
    if keys.is_empty() {
        return Err(SecretsError::NoKey {
            file: path.to_string(),
            tried: keys.tried.clone(),
            recipients: meta.recipients(),
        });
    }
    let mut malformed = None;
    for stanza in &meta.age {
        match unwrap_age(&stanza.enc, keys) {
            Ok(Some(key)) => return Ok(key),
            Ok(None) => {}
            Err(message) => malformed = Some(message),
        }
    }
    if let Some(message) = malformed {
        return Err(SecretsError::invalid(
            path,
            format!("sops.age: the encrypted data key is unusable ({message})"),
        ));
    }
    Err(SecretsError::WrongKey {
        file: path.to_string(),
        key_sources: keys.sources.clone(),
        recipients: meta.recipients(),
    })
}

/// `Ok(None)` when no identity matches this stanza.
fn unwrap_age(enc: &str, keys: &AgeKeys) -> Result<Option<Zeroizing<[u8; 32]>>, String> {
    let reader = age::armor::ArmoredReader::new(enc.as_bytes());
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(reader))
        .map_err(|e| format!("not an age file: {e}"))?;
    if decryptor.is_scrypt() {
        return Err("it is passphrase-encrypted, not for an age recipient".into());
    }
    let identities = keys
        .identities
        .iter()
        .map(|i| i.as_ref() as &dyn age::Identity);
    let mut stream = match decryptor.decrypt(identities) {
        Ok(stream) => stream,
        Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut plain = Zeroizing::new(Vec::new());
    stream
        .read_to_end(&mut plain)
        .map_err(|e| format!("age payload: {e}"))?;
    let key: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| format!("data key is {} bytes, expected 32", plain.len()))?;
    Ok(Some(Zeroizing::new(key)))
}

fn verify_mac(
    path: &str,
    meta: &Metadata,
    key: &[u8; 32],
    computed: &str,
) -> Result<(), SecretsError> {
    let tampered = |detail: &str| SecretsError::Tampered {
        file: path.to_string(),
        detail: detail.to_string(),
    };
    if meta.mac.is_empty() {
        return Err(tampered("MAC mismatch: the file has no MAC"));
    }
    let (stored, _) = cipher::decrypt(&meta.mac, key, &meta.last_modified)
        .map_err(|_| tampered("MAC mismatch: the MAC itself fails its integrity check"))?;
    use subtle::ConstantTimeEq as _;
    if bool::from(stored.ct_eq(computed.as_bytes())) {
        Ok(())
    } else {
        Err(tampered("MAC mismatch"))
    }
}

fn emit(
    path: &str,
    format: SopsFormat,
    branches: &[Node],
) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
    let out = match format {
        SopsFormat::Yaml => {
            let mut out = String::new();
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                let text = serde_yaml::to_string(&document::to_yaml(branch)).map_err(|e| {
                    SecretsError::invalid(path, format!("cannot write decrypted YAML: {e}"))
                })?;
                out.push_str(&text);
            }
            out.into_bytes()
        }
        SopsFormat::Json => {
            let value = branches.first().map(document::to_json).unwrap_or_default();
            let mut out = serde_json::to_vec_pretty(&value).map_err(|e| {
                SecretsError::invalid(path, format!("cannot write decrypted JSON: {e}"))
            })?;
            out.push(b'\n');
            out
        }
        SopsFormat::Dotenv => match branches.first() {
            Some(Node::Map(entries)) => document::emit_dotenv(entries),
            _ => Vec::new(),
        },
        SopsFormat::Binary => match branches.first().and_then(|b| b.get("data")) {
            Some(Node::Str(s)) => s.as_bytes().to_vec(),
            Some(Node::Bytes(b)) => b.clone(),
            _ => {
                return Err(SecretsError::invalid(
                    path,
                    "binary SOPS file has no `data`",
                ))
            }
        },
    };
    Ok(Zeroizing::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::nesting::tests::on_agent_stack;

    const MARKERS: &str = "sops:\n  mac: ENC[AES256_GCM,x]\n  version: 3.9.0\n";

    fn detect_error(path: &'static str, text: String) -> String {
        on_agent_stack(move || SopsDocument::detect(path, text.as_bytes()).map(|_| ()))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn deep_documents_are_refused_before_parsing_on_the_agent_stack() {
        let block = format!("{MARKERS}x:\n  {}a\n", "- ".repeat(30_000));
        let flow = format!("{MARKERS}x: {}{}\n", "[".repeat(30_000), "]".repeat(30_000));
        let json = format!(
            "{{\"sops\": {{\"mac\": \"m\", \"version\": \"3\"}}, \"x\": {}{}}}",
            "[".repeat(30_000),
            "]".repeat(30_000)
        );
        let dotenv = format!(
            "A=ENC[AES256_GCM,data:x]\nsops_version=3.9.0\nsops_mac=x\nsops_x{}=1\n",
            "__map_x".repeat(10_000)
        );
        for (path, text) in [
            ("s.sops.yaml", block),
            ("s.sops.yaml", flow),
            ("s.sops.json", json),
            ("stack.sops.env", dotenv),
        ] {
            let err = detect_error(path, text);
            assert!(err.starts_with(path), "{err}");
            assert!(err.contains("deeper than") && err.contains("64"), "{err}");
        }
    }
}
