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
pub mod model;
mod normalize;
pub mod ports;
mod rules;
mod service;
pub mod units;
pub mod volumes;

use crate::source::{StackEntry, Tree};
use indexmap::IndexMap;

/// Variables for interpolation: the process environment, then the stack's
/// own variables file (which wins), as documented in the README.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub map: IndexMap<String, String>,
}

impl Vars {
    /// The process environment.
    pub fn from_env() -> Self {
        Vars {
            map: std::env::vars().collect(),
        }
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
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
    let (config, warnings) = rules::load_text(&text, tree, entry, vars)?;
    Ok(Loaded {
        stack: entry.name.clone(),
        file: file.to_string(),
        config,
        warnings,
    })
}
