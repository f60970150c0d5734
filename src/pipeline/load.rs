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
use crate::source::clusters::{self, Cluster, Layout};
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
    /// In a repository with `clusters/`: the cluster whose stacks the run
    /// covers (`--cluster`); `None` for the single-swarm layout.
    pub cluster: Option<String>,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            only: Vec::new(),
            prune: false,
            keep_versions: 1,
            cluster: None,
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
    let (entries, cluster) = stack_entries(tree, scope)?;
    let cluster_env;
    let env = match &cluster {
        Some(c) => {
            cluster_env = with_cluster_env(env, c);
            &cluster_env
        }
        None => env,
    };
    for wanted in &scope.only {
        if !entries.iter().any(|e| &e.name == wanted) {
            let known: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            let place = match &cluster {
                Some(c) => format!("cluster {} of {}", c.name, tree.describe()),
                None => format!("{}/stacks", tree.describe()),
            };
            return Err(SourceError::Other(format!(
                "--stack {wanted}: no such stack in {place} (stacks: {})",
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
            Ok((stack, needs)) => {
                if !needs.is_empty() {
                    desired.needs.insert(stack.name.clone(), needs);
                }
                desired.stacks.push(stack)
            }
            Err(message) => desired.errors.push(StackError {
                stack: entry.name.clone(),
                message,
            }),
        }
    }
    let existing = entries.iter().map(|e| e.name.clone()).collect();
    refuse_bad_stack_needs(&mut desired, &existing);
    Ok(desired)
}

/// Move stacks whose `x-shoal.depends_on` names a stack the repository
/// does not have, or that are in a cycle, to the load errors.
fn refuse_bad_stack_needs(desired: &mut Desired, existing: &std::collections::BTreeSet<String>) {
    let problems = crate::compose::depends::check_stacks(&desired.needs, existing);
    if problems.is_empty() {
        return;
    }
    let (bad, good): (Vec<_>, Vec<_>) = std::mem::take(&mut desired.stacks)
        .into_iter()
        .partition(|s| problems.contains_key(&s.name));
    desired.stacks = good;
    for s in bad {
        desired.needs.remove(&s.name);
        desired.errors.push(StackError {
            message: problems[&s.name].clone(),
            stack: s.name,
        });
    }
}

/// The stacks a run covers before `--stack`: every stack of `stacks/` in
/// the single-swarm layout; in a repository with `clusters/`, those of
/// `scope.cluster` (its own and the shared ones it lists), with that
/// cluster. A multi-cluster repository without a cluster, or a cluster
/// in a single-swarm one, is an error: shoal never guesses the swarm.
pub fn stack_entries(
    tree: &dyn Tree,
    scope: &Scope,
) -> Result<(Vec<source::StackEntry>, Option<Cluster>), SourceError> {
    match (clusters::discover_layout(tree)?, &scope.cluster) {
        (Layout::Single, None) => Ok((source::discover(tree)?, None)),
        (Layout::Single, Some(name)) => Err(SourceError::Other(format!(
            "--cluster {name}: {} has no clusters/ folder; it is the single-swarm layout \
             (stacks/ at the root): leave --cluster out",
            tree.describe()
        ))),
        (layout @ Layout::Clusters(_), None) => Err(SourceError::Other(format!(
            "{} describes several swarms (clusters: {}); pass --cluster NAME \
             (plan, apply and validate also take --all-clusters)",
            tree.describe(),
            layout.names().join(", ")
        ))),
        (layout @ Layout::Clusters(_), Some(name)) => {
            let Layout::Clusters(all) = &layout else {
                unreachable!("matched as clusters just above")
            };
            let Some(cluster) = all.iter().find(|c| &c.name == name) else {
                return Err(SourceError::Other(format!(
                    "--cluster {name}: no such cluster in {} (clusters: {})",
                    tree.describe(),
                    layout.names().join(", ")
                )));
            };
            Ok((
                clusters::cluster_stacks(tree, cluster)?,
                Some(cluster.clone()),
            ))
        }
    }
}

/// The variables of a cluster's stacks: the process environment as
/// `--env-allow` lets stacks read it, then the cluster's `env`, which wins
/// (it is the environment that cluster's stacks are deployed in, so a
/// variable set in the shell never overrides what `cluster.yml` says a
/// production swarm gets). `stack.env` stays below both, as today.
fn with_cluster_env(env: &Vars, cluster: &Cluster) -> Vars {
    let mut vars = env.clone();
    for (k, v) in &cluster.env {
        vars.withheld.remove(k);
        vars.map.insert(k.clone(), v.clone());
    }
    vars
}

fn load_stack(
    tree: &RepoTree,
    entry: &source::StackEntry,
    env: &Vars,
) -> Result<(DesiredStack, Vec<String>), String> {
    let vars = stack_vars(tree, &entry.dir, env).map_err(|e| e.to_string())?;
    // Everything the stack reads from here on counts against one budget.
    let what = format!("the files of stack {}", entry.name);
    let tree = source::Budget::new(tree, what, source::MAX_STACK_BYTES);
    let loaded = compose::load(&tree, entry, &vars).map_err(|e| e.to_string())?;
    let mut stack = convert::convert(&tree, &loaded).map_err(|e| e.to_string())?;
    // The loader's warnings come first, as docker prints them.
    let mut warnings = loaded.warnings;
    warnings.append(&mut stack.warnings);
    stack.warnings = warnings;
    Ok((stack, loaded.config.stack_depends_on))
}

/// Why a stack's variables could not be read; messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum StackVarsError {
    #[error("{0}")]
    Source(SourceError),
    /// The encrypted variables file.
    #[error("{0}")]
    Secrets(crate::secrets::SecretsError),
    #[error("{path}: not UTF-8 text")]
    NotUtf8 { path: String },
    #[error("{path}:{line}: {message}")]
    EnvFile {
        path: String,
        line: usize,
        message: String,
    },
}

/// Interpolation variables of one stack, later sources winning:
/// `stack.env` (plain or SOPS dotenv), then the encrypted variables file
/// (`stack.sops.env` or `stack.env.sops.yaml`), then the process
/// environment, as docker compose lets the environment override `.env`.
pub fn stack_vars(tree: &RepoTree, dir: &str, env: &Vars) -> Result<Vars, StackVarsError> {
    let path = format!("{dir}/{STACK_ENV_FILE}");
    let mut vars = Vars::default();
    // Listed is enough: a `stack.env` that is a link is an error, not skipped.
    if tree.is_file(&path)
        || tree
            .list(dir)
            .is_ok_and(|l| l.iter().any(|n| n == STACK_ENV_FILE))
    {
        let bytes = tree.read(&path).map_err(StackVarsError::Source)?;
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(StackVarsError::NotUtf8 { path });
        };
        let lookup = |name: &str| env.get(name).map(str::to_string);
        let pairs =
            compose::envfile::parse_env_file(&text, &lookup).map_err(|(line, message)| {
                StackVarsError::EnvFile {
                    path: path.clone(),
                    line,
                    message,
                }
            })?;
        vars.map.extend(pairs);
    }
    if let Some(secret) = tree.stack_variables(dir).map_err(StackVarsError::Secrets)? {
        vars.map.extend(secret);
    }
    for (k, v) in &env.map {
        vars.map.insert(k.clone(), v.clone());
    }
    vars.withheld = env.withheld.clone();
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Redactor;

    fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, RepoTree) {
        let (dir, tree) = source::testing::dir_repo(files);
        let inner: Box<dyn Tree> = Box::new(tree);
        (
            dir,
            crate::secrets::DecryptingTree::from_env(inner, Redactor::new()),
        )
    }

    fn cluster(name: &str) -> Scope {
        Scope {
            cluster: Some(name.into()),
            ..Scope::default()
        }
    }

    const WEB: &str =
        "services:\n  web:\n    image: nginx:${TAG}\n    environment:\n      DOMAIN: ${DOMAIN}\n";

    #[test]
    fn a_cluster_loads_its_own_and_its_listed_stacks_with_its_env() {
        let (_d, tree) = repo(&[
            (
                "clusters/prod/cluster.yml",
                "engine: {context: prod}\nstacks: [web]\nenv: {DOMAIN: example.com}\n",
            ),
            ("clusters/prod/stacks/app/stack.yml", WEB),
            (
                "clusters/prod/stacks/app/stack.env",
                "DOMAIN=from-stack-env\nTAG=1\n",
            ),
            ("clusters/dev/cluster.yml", "engine: {context: dev}\n"),
            ("stacks/web/stack.yml", WEB),
            ("stacks/web/stack.env", "TAG=2\n"),
            ("stacks/other/stack.yml", WEB),
        ]);
        let mut env = Vars::default();
        env.map.insert("DOMAIN".into(), "from-shell".into());
        let desired = load(&tree, &cluster("prod"), &env).unwrap();
        assert!(desired.errors.is_empty(), "{:?}", desired.errors);
        let names: Vec<&str> = desired.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["app", "web"], "`other` is not listed by prod");
        for stack in &desired.stacks {
            let env = &stack.services[0].spec["TaskTemplate"]["ContainerSpec"]["Env"];
            assert_eq!(env[0], "DOMAIN=example.com", "cluster env wins: {env}");
        }
        let dev = load(&tree, &cluster("dev"), &env).unwrap();
        assert!(dev.stacks.is_empty() && dev.errors.is_empty());
        let e = load(
            &tree,
            &Scope {
                only: vec!["other".into()],
                ..cluster("prod")
            },
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--stack other: no such stack in cluster prod of"),
            "{e}"
        );
    }

    #[test]
    fn shoal_never_guesses_the_swarm() {
        let (_d, tree) = repo(&[
            ("clusters/prod/cluster.yml", "engine: {context: prod}\n"),
            ("clusters/dev/cluster.yml", "engine: {context: dev}\n"),
        ]);
        let e = stack_entries(&tree, &Scope::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("describes several swarms (clusters: dev, prod); pass --cluster NAME"),
            "{e}"
        );
        let e = stack_entries(&tree, &cluster("qa"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--cluster qa: no such cluster in") && e.contains("(clusters: dev, prod)"),
            "{e}"
        );
        let (_d, single) = repo(&[("stacks/web/stack.yml", WEB)]);
        let e = stack_entries(&single, &cluster("prod"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--cluster prod:") && e.contains("single-swarm layout"),
            "{e}"
        );
        let (entries, none) = stack_entries(&single, &Scope::default()).unwrap();
        assert_eq!((entries.len(), none), (1, None));
    }
}
