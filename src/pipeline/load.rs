//! The reconcile pipeline shared by the CLI and the agent:
//! source tree -> load + convert every stack -> plan against live state.
//!
//! Loading is per stack: a stack whose files do not load is reported and
//! left out of the plan entirely (its live objects are untouched), never
//! treated as "empty, so delete everything".
use crate::compose::{self, Vars};
use crate::convert;
use crate::model::{Desired, DesiredStack, StackError};
use crate::secrets::DecryptingTree;
use crate::source::{self, SourceError, Tree};

/// Optional per-stack variables file, next to the stack file (plain, or a
/// SOPS-encrypted dotenv file).
pub const STACK_ENV_FILE: &str = "stack.env";

/// A repository as the pipeline reads it: SOPS files read as plaintext
/// (their values registered with the redactor), every other file as is.
pub type RepoTree = DecryptingTree<Box<dyn Tree>>;

/// Which stacks a run covers and how far it may go.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Only these stacks (`--stack`, repeatable); empty = all.
    pub only: Vec<String>,
    /// Delete stacks that are on the swarm but no longer in the repository.
    pub prune: bool,
    /// Unused config/secret versions kept after a rotation.
    pub keep_versions: usize,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            only: Vec::new(),
            prune: false,
            keep_versions: 1,
        }
    }
}

impl Scope {
    pub(crate) fn includes(&self, stack: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == stack)
    }
}

/// Load and convert every stack of `tree` within `scope`.
///
/// Errors that concern the whole repository (no readable `stacks/`, an
/// unknown `--stack` name) are returned as `Err`; errors of one stack are
/// collected in [`Desired::errors`].
pub fn load(tree: &RepoTree, scope: &Scope, env: &Vars) -> Result<Desired, SourceError> {
    let entries = source::discover(tree)?;
    for wanted in &scope.only {
        if !entries.iter().any(|e| &e.name == wanted) {
            let known: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            return Err(SourceError::Other(format!(
                "--stack {wanted}: no such stack in {}/stacks (stacks: {})",
                tree.describe(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let mut desired = Desired::default();
    for entry in entries.iter().filter(|e| scope.includes(&e.name)) {
        match load_stack(tree, entry, env) {
            Ok(stack) => desired.stacks.push(stack),
            Err(message) => desired.errors.push(StackError {
                stack: entry.name.clone(),
                message,
            }),
        }
    }
    Ok(desired)
}

fn load_stack(
    tree: &RepoTree,
    entry: &source::StackEntry,
    env: &Vars,
) -> Result<DesiredStack, String> {
    let vars = stack_vars(tree, &entry.dir, env)?;
    // Everything the stack reads from here on counts against one budget.
    let what = format!("the files of stack {}", entry.name);
    let tree = source::Budget::new(tree, what, source::MAX_STACK_BYTES);
    let loaded = compose::load(&tree, entry, &vars).map_err(|e| e.to_string())?;
    let mut stack = convert::convert(&tree, &loaded).map_err(|e| e.to_string())?;
    // The loader's warnings come first, as docker prints them.
    let mut warnings = loaded.warnings;
    warnings.append(&mut stack.warnings);
    stack.warnings = warnings;
    Ok(stack)
}

/// Interpolation variables of one stack, later sources winning:
/// `stack.env` (plain or SOPS dotenv), then the encrypted variables file
/// (`stack.sops.env` or `stack.env.sops.yaml`), then the process
/// environment, as docker compose lets the environment override `.env`.
pub fn stack_vars(tree: &RepoTree, dir: &str, env: &Vars) -> Result<Vars, String> {
    let path = format!("{dir}/{STACK_ENV_FILE}");
    let mut vars = Vars::default();
    // Listed is enough: a `stack.env` that is a link is an error, not skipped.
    if tree.is_file(&path)
        || tree
            .list(dir)
            .is_ok_and(|l| l.iter().any(|n| n == STACK_ENV_FILE))
    {
        let bytes = tree.read(&path).map_err(|e| e.to_string())?;
        let text = String::from_utf8(bytes).map_err(|_| format!("{path}: not UTF-8 text"))?;
        let lookup = |name: &str| env.get(name).map(str::to_string);
        let pairs = compose::envfile::parse_env_file(&text, &lookup)
            .map_err(|(line, msg)| format!("{path}:{line}: {msg}"))?;
        vars.map.extend(pairs);
    }
    if let Some(secret) = tree.stack_variables(dir).map_err(|e| e.to_string())? {
        vars.map.extend(secret);
    }
    for (k, v) in &env.map {
        vars.map.insert(k.clone(), v.clone());
    }
    vars.withheld = env.withheld.clone();
    Ok(vars)
}
