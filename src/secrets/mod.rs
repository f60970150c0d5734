//! Secrets kept in git encrypted with SOPS (age recipients), decrypted in
//! process. Decrypted values are registered with a [`Redactor`] so plans,
//! errors and logs can leave them out; they are never written to disk.
//!
//! - [`DecryptingTree`] wraps a [`crate::source::Tree`]: SOPS files read as
//!   plaintext (YAML/JSON documents, dotenv lines, raw bytes for binary).
//! - [`stack_secret_variables`]: a stack's encrypted interpolation
//!   variables (`stack.env.sops.yaml` or `stack.sops.env`).
//! - [`Redactor`]: replaces registered values with `(sensitive)`.
mod error;
pub mod keys;
pub mod redact;
pub mod sops;
mod tree;

pub use error::SecretsError;
pub use keys::{AgeKeys, KeyEnv};
pub use redact::{RedactingMakeWriter, RedactingWriter, Redactor, MIN_SECRET_LEN, REDACTED};
pub use tree::{
    stack_secret_variables, DecryptingTree, Decryptor, Plaintext, STACK_SECRET_VARIABLE_FILES,
};

#[cfg(test)]
mod tests;
