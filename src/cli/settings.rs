//! What every command resolves once from its flags and the environment:
//! the source it reads (opened, decrypting, its credentials registered for
//! masking), the stacks' variables, the scope, and whether to colour.
use super::args::RepoArgs;
use anyhow::Result;
use shoal::compose::{EnvPolicy, Vars};
use shoal::pipeline::{RepoTree, Scope};
use shoal::secrets::{register_own_credentials, DecryptingTree, Redactor};
use shoal::source::git::{self, CommitInfo, GitOptions};
use shoal::source::{self, Location, Tree};
use std::path::{Path, PathBuf};

/// The source a run reads: a directory, or a git commit.
pub struct Source {
    /// SOPS files read decrypted; every decrypted value is registered with
    /// `redactor`, through which everything printed passes.
    pub tree: RepoTree,
    pub redactor: Redactor,
    /// `3f2a9c1 "scale steedos to 4"` for git sources.
    pub commit: Option<CommitInfo>,
}

impl Source {
    /// Open `--repo` at `--ref` (a commit of a git remote, or a directory).
    pub fn open(args: &RepoArgs) -> Result<Source> {
        let redactor = Redactor::new();
        register_credentials(&redactor, args, &[]);
        let (tree, commit): (Box<dyn Tree>, _) = match locate(args, args.git_ref.as_deref())? {
            Location::Git(repo) => {
                let commit = repo.resolve(args.git_ref.as_deref())?;
                (Box::new(repo.tree(&commit)?), Some(commit))
            }
            Location::Dir(path) => (Box::new(source::DirTree::new(path)), None),
        };
        Ok(Source {
            tree: DecryptingTree::from_env(tree, redactor.clone()),
            redactor,
            commit,
        })
    }

    /// The revision a plan was made from: the commit, or the directory's
    /// content digest.
    pub fn revision(&self, repo: &str) -> Result<String> {
        match &self.commit {
            Some(c) => Ok(c.id.clone()),
            None => source::dir_digest(Path::new(repo))
                .map_err(|e| anyhow::anyhow!("reading {repo}: {e}")),
        }
    }
}

/// `--repo` opened: a git remote (with `--ref` left to the caller) or a
/// directory, which `git_ref` must then not name.
pub fn locate(args: &RepoArgs, git_ref: Option<&str>) -> Result<Location> {
    source::open(&args.repo, git_ref, || git_options(args))
}

fn git_options(args: &RepoArgs) -> Result<GitOptions> {
    let token = git::load_token(args.git_token_file.as_deref()).map_err(|e| match e {
        // The flag names the file; the cause says what is wrong with it.
        git::GitError::TokenFile { path, detail } => {
            anyhow::anyhow!(detail).context(format!("reading --git-token-file {path}"))
        }
        e => e.into(),
    })?;
    Ok(GitOptions {
        cache_dir: args.cache_dir.clone().unwrap_or_else(default_cache_dir),
        ssh_key: args.ssh_key.clone(),
        known_hosts: args.known_hosts.clone(),
        token,
        allow_insecure_http: args.allow_insecure_git_http,
    })
}

fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("shoal");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".cache/shoal");
    }
    std::env::temp_dir().join("shoal-cache")
}

/// The process variables stacks may read: `--env-allow`, else `default`
/// (all for the CLI, none for the agent); shoal's credentials never.
pub fn stack_env(args: &RepoArgs, default: EnvPolicy) -> Vars {
    Vars::from_env_filtered(&EnvPolicy::from_flag(args.env_allow.as_deref(), default))
}

/// Registers shoal's own credentials (age keys, git token, SSH key,
/// registry passwords, and the flags' credential files) for masking.
pub fn register_credentials(redactor: &Redactor, args: &RepoArgs, more: &[&Path]) {
    let mut files: Vec<&Path> = more.to_vec();
    files.extend(args.git_token_file.as_deref());
    files.extend(args.ssh_key.as_deref());
    register_own_credentials(redactor, &files);
}

pub fn scope(args: &RepoArgs, prune: bool) -> Scope {
    Scope {
        only: args.stacks.clone(),
        prune,
        keep_versions: args.keep_versions,
        cluster: None,
    }
}

/// Colour on standard output: not `--no-color`, and a terminal without
/// `NO_COLOR` ([`shoal::render::TextOptions::for_stdout`]).
pub fn color(args: &RepoArgs) -> bool {
    !args.no_color && shoal::render::TextOptions::for_stdout().color
}
