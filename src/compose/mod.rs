//! Compose loading: YAML -> interpolation -> validation -> [`model::Config`].
//!
//! Owner of the contract: [`load`] turns one stack file (and the files it
//! references) into the normalized model `docker stack config` prints.
//! `tests/compose_oracle.rs` compares the two on every fixture.
//!
//! Known, deliberate differences from docker/cli:
//! - one schema for all of 3.0-3.13 (the union of their fields), so a
//!   field newer than the file's `version` is accepted; a missing
//!   `version` stays empty (docker prints its newest, 3.13);
//! - errors docker only finds at `docker stack deploy` (undefined
//!   networks/volumes/configs/secrets, missing image, unknown deploy mode,
//!   replicas with global mode, bad volume type or short spec) and a
//!   config/secret without file/environment/external are load errors here;
//! - config/secret/env files must stay inside the stack's folder or
//!   `stacks/_shared/` (no links, bounded sizes: see `source`);
//! - a quoted octal mode (`"0440"`) is read as octal (docker: an error),
//!   and a leading-zero number elsewhere stays a string (docker: octal);
//! - unset variables warn (docker's stack command is silent);
//! - `x-` fields are dropped before interpolation, so a bad template in
//!   one is not an error.
pub mod duration;
pub mod envfile;
pub mod interpolate;
mod lines;
mod loader;
mod long_syntax;
pub mod model;
pub mod ports;
mod service;
pub mod units;
pub mod volumes;

use crate::source::{StackEntry, Tree};
use indexmap::IndexMap;
use std::collections::BTreeMap;

/// Variables for interpolation: the stack's own variables files, then the
/// process environment (as far as an [`EnvPolicy`] lets stacks read it).
/// The environment wins over the files, as docker compose lets it override
/// `.env` and as the README documents.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub map: IndexMap<String, String>,
    /// Process variables that exist but stacks may not read, and why: a
    /// reference to one reads as unset, with a warning naming the reason.
    pub withheld: BTreeMap<String, Withheld>,
}

/// Why a process variable is hidden from stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// One of shoal's own credentials ([`crate::secrets::is_own_credential`]):
    /// never readable, whatever `--env-allow` says.
    Credential,
    /// Not matched by `--env-allow`.
    NotAllowed,
}

impl Withheld {
    /// Why, for a warning.
    pub fn reason(self) -> &'static str {
        match self {
            Withheld::Credential => {
                "it is one of shoal's own credentials, which stacks can never read"
            }
            Withheld::NotAllowed => "stacks may not read this process variable (see --env-allow)",
        }
    }
}

/// Which process environment variables stacks may read (`--env-allow`).
/// shoal's own credentials are withheld under every policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvPolicy {
    /// Every variable (`--env-allow '*'`; the CLI's default, as `docker
    /// stack deploy` reads the environment of whoever runs it).
    All,
    /// Variables whose names start with one of these prefixes (exact
    /// names are prefixes too). Empty: none, the agent's default, since
    /// the agent's environment is the operator's, not the repository's.
    Prefixes(Vec<String>),
}

impl EnvPolicy {
    /// No process variable at all.
    pub fn none() -> EnvPolicy {
        EnvPolicy::Prefixes(Vec::new())
    }

    /// The policy `--env-allow` gives: `None` (flag absent) is `default`;
    /// values are prefixes, comma lists already split; `*` means all;
    /// empty values add nothing (so `--env-allow ''` allows none).
    pub fn from_flag(values: Option<&[String]>, default: EnvPolicy) -> EnvPolicy {
        let Some(values) = values else {
            return default;
        };
        let values: Vec<String> = values
            .iter()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if values.iter().any(|v| v == "*") {
            EnvPolicy::All
        } else {
            EnvPolicy::Prefixes(values)
        }
    }

    /// Whether stacks may read `name` (before the credential rule).
    pub fn allows(&self, name: &str) -> bool {
        match self {
            EnvPolicy::All => true,
            EnvPolicy::Prefixes(prefixes) => prefixes.iter().any(|p| name.starts_with(p.as_str())),
        }
    }
}

impl Vars {
    /// The process environment as `policy` lets stacks read it, shoal's
    /// own credentials always withheld. Variables whose name or value is
    /// not Unicode are skipped (interpolation could not name them).
    pub fn from_env_filtered(policy: &EnvPolicy) -> Self {
        let pairs = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Vars::filtered(pairs, policy)
    }

    /// [`Vars::from_env_filtered`] over given pairs.
    pub fn filtered(pairs: impl IntoIterator<Item = (String, String)>, policy: &EnvPolicy) -> Self {
        let mut vars = Vars::default();
        for (name, value) in pairs {
            if crate::secrets::is_own_credential(&name) {
                vars.withheld.insert(name, Withheld::Credential);
            } else if !policy.allows(&name) {
                vars.withheld.insert(name, Withheld::NotAllowed);
            } else {
                vars.map.insert(name, value);
            }
        }
        vars
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// Why `name` reads as unset although the process has it, if it does.
    pub fn withheld(&self, name: &str) -> Option<Withheld> {
        if self.map.contains_key(name) {
            return None;
        }
        self.withheld.get(name).copied()
    }
}

/// A loaded stack file.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Stack namespace (folder name).
    pub stack: String,
    /// Path of the stack file in the tree, e.g. `stacks/web/stack.yml`.
    pub file: String,
    pub config: model::Config,
    /// Docker-style warnings ("Ignoring unsupported options: build").
    pub warnings: Vec<String>,
}

/// A stack file that cannot be loaded. The message names the file, the
/// line where known, the field, and what would be valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct LoadError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Load one stack: read `entry.file` from `tree`, resolve YAML merge keys,
/// drop `x-` extensions, interpolate `vars`, expand short syntax, check it
/// against what `docker stack deploy` accepts, and return the model.
pub fn load(tree: &dyn Tree, entry: &StackEntry, vars: &Vars) -> Result<Loaded, LoadError> {
    let file = entry.file.as_str();
    let bytes = tree.read(file).map_err(|e| LoadError {
        file: file.to_string(),
        line: None,
        message: format!("cannot read the stack file: {e}"),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| LoadError {
        file: file.to_string(),
        line: None,
        message: format!("not UTF-8 text: {e}"),
    })?;
    let (config, warnings) = loader::load_text(&text, tree, entry, vars)?;
    Ok(Loaded {
        stack: entry.name.clone(),
        file: file.to_string(),
        config,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<(String, String)> {
        [
            ("DATA_NODE", "node-1"),
            ("APP_TAG", "1.2"),
            ("SOPS_AGE_KEY", "AGE-SECRET-KEY-1XYZ"),
            ("SOPS_AGE_KEY_FILE", "/keys.txt"),
            ("SHOAL_AGE_KEY_FILE", "/k"),
            ("SHOAL_GIT_TOKEN", "ghp_token"),
            ("SHOAL_REPO", "git@host:x.git"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn credentials_are_withheld_under_every_policy() {
        for policy in [
            EnvPolicy::All,
            EnvPolicy::Prefixes(vec!["SOPS_".into(), "SHOAL_".into()]),
            EnvPolicy::none(),
        ] {
            let v = Vars::filtered(pairs(), &policy);
            for name in [
                "SOPS_AGE_KEY",
                "SOPS_AGE_KEY_FILE",
                "SHOAL_AGE_KEY_FILE",
                "SHOAL_GIT_TOKEN",
            ] {
                assert_eq!(v.get(name), None, "{name} {policy:?}");
                assert_eq!(v.withheld(name), Some(Withheld::Credential), "{name}");
            }
        }
    }

    #[test]
    fn the_policy_chooses_the_rest() {
        let all = Vars::filtered(pairs(), &EnvPolicy::All);
        assert_eq!(all.get("DATA_NODE"), Some("node-1"));
        assert_eq!(all.get("SHOAL_REPO"), Some("git@host:x.git"));
        let none = Vars::filtered(pairs(), &EnvPolicy::none());
        assert!(none.map.is_empty());
        assert_eq!(none.withheld("DATA_NODE"), Some(Withheld::NotAllowed));
        assert_eq!(none.withheld("NEVER_SET"), None);
        let some = Vars::filtered(pairs(), &EnvPolicy::Prefixes(vec!["DATA_".into()]));
        assert_eq!(some.get("DATA_NODE"), Some("node-1"));
        assert_eq!(some.get("APP_TAG"), None);
    }

    #[test]
    fn env_allow_values() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(EnvPolicy::from_flag(None, EnvPolicy::All), EnvPolicy::All);
        assert_eq!(
            EnvPolicy::from_flag(None, EnvPolicy::none()),
            EnvPolicy::none()
        );
        assert_eq!(
            EnvPolicy::from_flag(Some(&s(&["APP_", " DATA_NODE"])), EnvPolicy::All),
            EnvPolicy::Prefixes(s(&["APP_", "DATA_NODE"]))
        );
        assert_eq!(
            EnvPolicy::from_flag(Some(&s(&[""])), EnvPolicy::All),
            EnvPolicy::none()
        );
        assert_eq!(
            EnvPolicy::from_flag(Some(&s(&["APP_", "*"])), EnvPolicy::none()),
            EnvPolicy::All
        );
    }
}
