//! Where stacks come from: a directory or a git commit, read through [`Tree`].
use std::path::{Path, PathBuf};

pub mod git;

/// The stack file names a stack folder may hold (exactly one of them).
pub const STACK_FILE_NAMES: [&str; 5] = [
    "stack.yml",
    "stack.yaml",
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
];

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// A read-only file tree addressed by `/`-separated paths relative to the
/// repository root (`stacks/web/stack.yml`).
pub trait Tree: Send + Sync {
    /// The bytes of a file.
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError>;
    /// Names of the entries of a folder (files and folders), sorted;
    /// an empty list when the folder does not exist.
    fn list(&self, dir: &str) -> Result<Vec<String>, SourceError>;
    /// Whether `path` is a file.
    fn is_file(&self, path: &str) -> bool;
    /// A short description for messages (`./repo`, `git@host:x.git at 3f2a9c1`).
    fn describe(&self) -> String;
    /// The absolute directory the tree's paths live in on this machine, if
    /// any. Relative bind-mount sources (`./data`) resolve against it, as
    /// `docker stack deploy` resolves them against the compose file's folder.
    /// A git commit has none: such a source is then an error.
    fn local_root(&self) -> Option<PathBuf>;
}

/// A plain directory on disk.
#[derive(Debug, Clone)]
pub struct DirTree {
    root: PathBuf,
}

impl DirTree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirTree { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

impl Tree for DirTree {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        std::fs::read(self.full(path)).map_err(|e| SourceError::Io {
            path: path.to_string(),
            message: e.to_string(),
        })
    }
    fn list(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        let full = self.full(dir);
        let rd = match std::fs::read_dir(&full) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(SourceError::Io {
                    path: dir.to_string(),
                    message: e.to_string(),
                })
            }
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| SourceError::Io {
                path: dir.to_string(),
                message: e.to_string(),
            })?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
    fn is_file(&self, path: &str) -> bool {
        self.full(path).is_file()
    }
    fn describe(&self) -> String {
        self.root.display().to_string()
    }
    fn local_root(&self) -> Option<PathBuf> {
        Some(std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone()))
    }
}

/// A stack found under `stacks/<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEntry {
    pub name: String,
    /// e.g. `stacks/web`
    pub dir: String,
    /// e.g. `stacks/web/stack.yml`
    pub file: String,
}

/// Find the stacks of a repository: every folder of `stacks/` holding one
/// stack file. A folder with more than one is an error; a folder with none
/// is reported too (it cannot be a stack, and silently skipping it would
/// look like "delete that stack" under `--prune`).
pub fn discover(tree: &dyn Tree) -> Result<Vec<StackEntry>, SourceError> {
    let mut stacks = Vec::new();
    for name in tree.list("stacks")? {
        let dir = format!("stacks/{name}");
        if tree.is_file(&dir) {
            continue; // stacks/README.md and the like
        }
        let found: Vec<&str> = STACK_FILE_NAMES
            .iter()
            .copied()
            .filter(|f| tree.is_file(&format!("{dir}/{f}")))
            .collect();
        match found.as_slice() {
            [one] => stacks.push(StackEntry {
                name: name.clone(),
                dir: dir.clone(),
                file: format!("{dir}/{one}"),
            }),
            [] => {
                return Err(SourceError::Other(format!(
                    "{dir}: no stack file; expected one of {}",
                    STACK_FILE_NAMES.join(", ")
                )))
            }
            many => {
                return Err(SourceError::Other(format!(
                    "{dir}: more than one stack file ({}); keep exactly one",
                    many.join(", ")
                )))
            }
        }
    }
    Ok(stacks)
}
