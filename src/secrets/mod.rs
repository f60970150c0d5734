//! Secrets kept in git encrypted with SOPS (age recipients), decrypted in
//! process. Decrypted values are registered with a [`Redactor`] so plans,
//! errors and logs can leave them out; they are never written to disk.
//!
//! - [`DecryptingTree`] wraps a [`crate::source::Tree`]: SOPS files read as
//!   plaintext (YAML/JSON documents, dotenv lines, raw bytes for binary).
//! - [`stack_secret_variables`]: a stack's encrypted interpolation
//!   variables (`stack.env.sops.yaml` or `stack.sops.env`).
//! - [`Redactor`]: replaces registered values with `(sensitive)`.
//!
//! Wiring, in short:
//!
//! ```ignore
//! let redactor = Redactor::new();
//! // logs: every line passes through the redactor
//! tracing_subscriber::fmt().with_writer(redactor.make_writer(std::io::stderr)).init();
//! // keys from SHOAL_AGE_KEY_FILE, else SOPS_AGE_KEY / SOPS_AGE_KEY_FILE /
//! // $XDG_CONFIG_HOME (or ~/.config)/sops/age/keys.txt, read on first use
//! let tree = DecryptingTree::from_env(DirTree::new(repo), redactor.clone());
//! let vars = tree.stack_variables(&entry.dir)?;   // Option<IndexMap<String, String>>
//! let loaded = compose::load(&tree, &entry, &vars_merged)?; // env_file: plaintext
//! // converter reads secret `file:` through the same tree
//! println!("{}", redactor.redact(&rendered_plan));
//! eprintln!("{}", redactor.redact(&error.to_string()));
//! ```
mod error;
pub mod keys;
pub mod names;
pub mod redact;
pub mod sops;
mod tree;

pub use error::SecretsError;
pub use keys::{register_own_credentials, AgeKeys, KeyEnv};
pub use names::{is_own_credential, is_secret_name};
pub use redact::{RedactingMakeWriter, RedactingWriter, Redactor, MIN_SECRET_LEN, REDACTED};
pub use tree::{
    stack_secret_variables, DecryptingTree, Decryptor, Plaintext, STACK_SECRET_VARIABLE_FILES,
};

#[cfg(test)]
mod tests;
