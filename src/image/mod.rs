//! Images: references as docker reads them (a leaf), which digests a plan
//! pins and how, and the registry credentials sent to the daemon.
mod credentials;
mod pin;
mod reference;

pub use credentials::{ConfigError, Credentials, CredentialsError, RegistryHeaders};
pub use pin::*;
pub use reference::*;
