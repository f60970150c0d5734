//! Errors of secret decryption. They name the file and what is wrong, and
//! never carry a decrypted value.

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// No age identity was found anywhere.
    #[error(
        "{file}: cannot decrypt this SOPS file: no age key found (looked in {}); \
         it is encrypted for age recipient(s) {}",
        list(tried),
        list(recipients)
    )]
    NoKey {
        file: String,
        tried: Vec<String>,
        recipients: Vec<String>,
    },
    /// Identities were found, but none is a recipient of the file.
    #[error(
        "{file}: none of the age identities in {} can decrypt {file}; \
         it is encrypted for age recipient(s) {}",
        list(key_sources),
        list(recipients)
    )]
    WrongKey {
        file: String,
        key_sources: Vec<String>,
        recipients: Vec<String>,
    },
    /// The file has no age recipient at all.
    #[error(
        "{file}: this SOPS file has no age recipient (it is encrypted for {}); \
         shoal decrypts age recipients only: add one with `sops updatekeys` or `sops -r -i --add-age`",
        list(other_kinds)
    )]
    NoAgeRecipient {
        file: String,
        other_kinds: Vec<String>,
    },
    /// The MAC or a value's authentication tag does not verify.
    #[error("{file}: file was modified after encryption ({detail}); restore it from git or re-encrypt it with sops")]
    Tampered { file: String, detail: String },
    /// The file is SOPS-shaped but something in it is malformed or unsupported.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// A key file or key variable cannot be used.
    #[error("{location}: {message}")]
    KeySource { location: String, message: String },
}

impl SecretsError {
    pub(crate) fn invalid(file: &str, message: impl Into<String>) -> Self {
        SecretsError::Invalid {
            file: file.to_string(),
            message: message.into(),
        }
    }
}
