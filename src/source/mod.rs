//! Where stacks come from: a directory or a git commit ([`open`] tells a
//! `--repo` apart), read through [`Tree`] within size and depth bounds.
pub use digest::{dir_digest, DigestError};
pub use open::{is_git_url, open, Location, OpenError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub mod clusters;
mod digest;
pub mod git;
pub mod nesting;
mod open;

/// Test support for the stages that read a repository.
#[cfg(test)]
pub mod testing {
    use super::DirTree;

    /// A directory repository holding `files` (path, text); the directory
    /// lives as long as the returned guard.
    pub fn dir_repo(files: &[(&str, &str)]) -> (tempfile::TempDir, DirTree) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        let tree = DirTree::new(dir.path());
        (dir, tree)
    }
}

/// The stack file names a stack folder may hold (exactly one of them).
pub const STACK_FILE_NAMES: [&str; 5] = [
    "stack.yml",
    "stack.yaml",
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
];

/// The most bytes read from one file of the repository: a stack file, an
/// env file, `stack.env`, a policy, a SOPS file before decryption. A read
/// stops at this many bytes plus one, so a huge file or a device never
/// fills memory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The most bytes of one config's or secret's data, and of one `env_file`:
/// Swarm's own limit for configs and secrets (docker's `MaxConfigSize` and
/// `MaxSecretSize`, 500 KiB), so the error comes at load time with the file
/// named, not from the Engine halfway through an apply.
pub const MAX_OBJECT_BYTES: u64 = 500 * 1024;

/// The most bytes one stack may read in all: its stack file and every file
/// it references (see [`Budget`]).
pub const MAX_STACK_BYTES: u64 = 8 * 1024 * 1024;

/// The most bytes all policy files may hold together.
pub const MAX_POLICY_BYTES: u64 = 4 * 1024 * 1024;

/// The folder of `stacks/` whose files every stack may reference
/// (`file: ../_shared/ca.pem`). It is not a stack itself.
pub const SHARED_DIR: &str = "stacks/_shared";

/// The name of the shared folder in any stacks folder: `stacks/_shared`,
/// or `clusters/<name>/stacks/_shared` for a cluster's own stacks.
pub const SHARED_NAME: &str = "_shared";

/// The shared folder a stack in `stack_dir` may read files from: the
/// `_shared` folder beside it (`stacks/web` -> `stacks/_shared`).
pub fn shared_dir_of(stack_dir: &str) -> String {
    match stack_dir.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{SHARED_NAME}"),
        None => SHARED_DIR.to_string(),
    }
}

/// `1048576 bytes (1 MiB)`, for limit messages.
pub fn bytes_text(n: u64) -> String {
    if n.is_multiple_of(1024 * 1024) {
        format!("{n} bytes ({} MiB)", n / (1024 * 1024))
    } else if n.is_multiple_of(1024) {
        format!("{n} bytes ({} KiB)", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{0}")]
    Other(String),
}

fn io_error(path: &str, message: impl std::fmt::Display) -> SourceError {
    SourceError::Io {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// The error for a file over `limit` bytes.
pub fn too_large(path: &str, limit: u64, what: &str) -> SourceError {
    io_error(
        path,
        format!("is larger than {}, the limit for {what}", bytes_text(limit)),
    )
}

/// A read-only file tree addressed by `/`-separated paths relative to the
/// repository root (`stacks/web/stack.yml`).
///
/// Implementations read regular files only: a symbolic link anywhere on the
/// path, a device, a fifo or a socket is an error naming it, and a file is
/// read up to [`MAX_FILE_BYTES`] (more is an error), so no path reads a file
/// outside the repository or an unbounded stream.
pub trait Tree: Send + Sync {
    /// The bytes of a file.
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError>;
    /// The bytes of a file that will be published as they are (a Swarm
    /// config, which anyone with `docker config inspect` can read): like
    /// [`Tree::read`], but a tree that decrypts files refuses an encrypted
    /// one instead of decrypting it.
    fn read_public(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        self.read(path)
    }
    /// Names of the entries of a folder (files, folders, links...), sorted;
    /// an empty list when the folder does not exist, an error when the path
    /// goes through a link.
    fn list(&self, dir: &str) -> Result<Vec<String>, SourceError>;
    /// Whether `path` is a regular file (reached without symbolic links).
    fn is_file(&self, path: &str) -> bool;
    /// A short description for messages (`./repo`, `git@host:x.git at 3f2a9c1`).
    fn describe(&self) -> String;
    /// The absolute directory the tree's paths live in on this machine, if
    /// any. Relative bind-mount sources (`./data`) resolve against it, as
    /// `docker stack deploy` resolves them against the compose file's folder.
    /// A git commit has none: such a source is then an error.
    fn local_root(&self) -> Option<PathBuf>;
}

impl Tree for Box<dyn Tree> {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        (**self).read(path)
    }
    fn read_public(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        (**self).read_public(path)
    }
    fn list(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        (**self).list(dir)
    }
    fn is_file(&self, path: &str) -> bool {
        (**self).is_file(path)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn local_root(&self) -> Option<PathBuf> {
        (**self).local_root()
    }
}

/// A view of a tree that counts the bytes read through it and refuses a
/// read that takes the total past a limit: one stack (its stack file and
/// every file it references) or the policies may only read so much.
pub struct Budget<'a> {
    inner: &'a dyn Tree,
    /// What is counted, for messages (`the files of stack web`).
    what: String,
    limit: u64,
    used: AtomicU64,
}

impl<'a> Budget<'a> {
    pub fn new(inner: &'a dyn Tree, what: impl Into<String>, limit: u64) -> Self {
        Budget {
            inner,
            what: what.into(),
            limit,
            used: AtomicU64::new(0),
        }
    }

    fn count(&self, path: &str, bytes: Vec<u8>) -> Result<Vec<u8>, SourceError> {
        let len = bytes.len() as u64;
        let total = self
            .used
            .fetch_add(len, Ordering::Relaxed)
            .saturating_add(len);
        if total > self.limit {
            return Err(io_error(
                path,
                format!(
                    "reading it takes {} past {} in all, their limit",
                    self.what,
                    bytes_text(self.limit),
                ),
            ));
        }
        Ok(bytes)
    }
}

impl Tree for Budget<'_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let bytes = self.inner.read(path)?;
        self.count(path, bytes)
    }
    fn read_public(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let bytes = self.inner.read_public(path)?;
        self.count(path, bytes)
    }
    fn list(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        self.inner.list(dir)
    }
    fn is_file(&self, path: &str) -> bool {
        self.inner.is_file(path)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn local_root(&self) -> Option<PathBuf> {
        self.inner.local_root()
    }
}

/// A plain directory on disk. Paths are resolved one component at a time
/// without following symbolic links (git mode refuses links too, so both
/// sources give the same answer), and only regular files are read.
#[derive(Debug, Clone)]
pub struct DirTree {
    root: PathBuf,
}

/// What a path of a [`DirTree`] names.
enum Found {
    File(PathBuf),
    Dir(PathBuf),
    Missing,
}

impl DirTree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirTree { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Walk `path` from the root with `lstat`, never through a link.
    fn resolve(&self, path: &str) -> Result<Found, SourceError> {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let mut full = self.root.clone();
        for (i, part) in parts.iter().enumerate() {
            let rel = parts[..=i].join("/");
            if *part == ".." {
                return Err(io_error(
                    path,
                    "goes up with `..`; only paths inside the repository can be read",
                ));
            }
            full.push(part);
            let meta = match std::fs::symlink_metadata(&full) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
                Err(e) => return Err(io_error(&rel, e)),
            };
            let kind = meta.file_type();
            let last = i + 1 == parts.len();
            if kind.is_symlink() {
                return Err(self.link_error(&rel, &full));
            } else if kind.is_dir() {
                continue;
            } else if kind.is_file() {
                // A file in the middle of a path: nothing is there, as in git.
                return Ok(if last {
                    Found::File(full)
                } else {
                    Found::Missing
                });
            }
            return Err(io_error(
                &rel,
                format!(
                    "is {}, not a regular file; shoal reads only regular files and folders",
                    special_kind(&kind)
                ),
            ));
        }
        Ok(Found::Dir(full))
    }

    /// `stacks/a/cfg: is a symbolic link to /etc/shadow, which is outside
    /// the repository; ...`. Links inside the repository are refused too:
    /// git mode refuses every link, and one rule is easier to trust.
    fn link_error(&self, rel: &str, full: &Path) -> SourceError {
        let target = match std::fs::read_link(full) {
            Ok(t) => t,
            Err(e) => return io_error(rel, format!("is a symbolic link that cannot be read: {e}")),
        };
        let parent: Vec<&str> = rel.split('/').collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        let inside = if target.is_absolute() {
            let roots = [
                std::fs::canonicalize(&self.root).ok(),
                std::path::absolute(&self.root).ok(),
            ];
            roots.iter().flatten().any(|root| {
                target
                    .strip_prefix(root)
                    .ok()
                    .and_then(|rest| rest.to_str())
                    .is_some_and(|rest| lexical(&[], rest).is_some())
            })
        } else {
            target
                .to_str()
                .is_some_and(|t| lexical(parent, t).is_some())
        };
        let target = target.display();
        let message = if inside {
            format!(
                "is a symbolic link to {target}; shoal does not follow symbolic links \
                 (in a directory or a git commit alike): put the file itself there"
            )
        } else {
            format!(
                "is a symbolic link to {target}, which is outside the repository; \
                 shoal does not follow symbolic links"
            )
        };
        io_error(rel, message)
    }
}

/// `rel` (`/`-separated, may hold `..`) taken from the folder `base`, as
/// tree path components; `None` when it goes above the root.
pub fn lexical(base: &[&str], rel: &str) -> Option<Vec<String>> {
    let mut parts: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s.to_string()),
        }
    }
    Some(parts)
}

/// `a fifo`, `a character device`... for a file type that is neither a
/// regular file, a folder nor a link.
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a fifo"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Read at most `limit` bytes of the regular file `full`: opened without
/// following a link and without blocking (a file swapped for a link or a
/// fifo after the walk is refused, not followed or waited on), checked
/// to be a regular file, then read up to `limit + 1` bytes.
fn read_bounded(rel: &str, full: &Path, limit: u64) -> Result<Vec<u8>, SourceError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(full)
        .map_err(|e| io_error(rel, e))?;
    let meta = file.metadata().map_err(|e| io_error(rel, e))?;
    if !meta.is_file() {
        return Err(io_error(rel, "is not a regular file"));
    }
    if meta.len() > limit {
        return Err(too_large(rel, limit, "one file read from the repository"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(rel, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(rel, limit, "one file read from the repository"));
    }
    Ok(bytes)
}

impl Tree for DirTree {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        match self.resolve(path)? {
            Found::File(full) => read_bounded(path, &full, MAX_FILE_BYTES),
            Found::Dir(_) => Err(io_error(path, "is a folder, not a file")),
            Found::Missing => Err(io_error(path, "no such file")),
        }
    }
    fn list(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        let full = match self.resolve(dir)? {
            Found::Dir(full) => full,
            // As in git: a file or nothing holds no entries.
            Found::File(_) | Found::Missing => return Ok(Vec::new()),
        };
        let rd = std::fs::read_dir(&full).map_err(|e| io_error(dir, e))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
    fn is_file(&self, path: &str) -> bool {
        matches!(self.resolve(path), Ok(Found::File(_)))
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
    discover_in(tree, "stacks")
}

/// [`discover`] in the stacks folder `root` (`stacks`, or a cluster's
/// `clusters/<name>/stacks`).
pub fn discover_in(tree: &dyn Tree, root: &str) -> Result<Vec<StackEntry>, SourceError> {
    let mut stacks = Vec::new();
    for name in tree.list(root)? {
        let dir = format!("{root}/{name}");
        if tree.is_file(&dir) {
            continue; // stacks/README.md and the like
        }
        // The shared folder holds files any stack may reference; it is not
        // a stack (and so never deployed, nor pruned).
        if name == SHARED_NAME {
            continue;
        }
        let entries = match tree.list(&dir) {
            Ok(entries) => entries,
            // The folder cannot be read (a symbolic link, a device...): that
            // is this stack's error, reported when it loads (its read names
            // the cause), not one that stops every other stack.
            Err(_) => {
                stacks.push(StackEntry {
                    name: name.clone(),
                    file: format!("{dir}/{}", STACK_FILE_NAMES[0]),
                    dir,
                });
                continue;
            }
        };
        // By name, whatever kind of entry it is: a stack file that is a link
        // or a folder is then this stack's load error, which says what it is.
        let found: Vec<&str> = STACK_FILE_NAMES
            .iter()
            .copied()
            .filter(|f| entries.iter().any(|e| e == f))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn repo() -> (tempfile::TempDir, DirTree) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("stacks/a")).unwrap();
        std::fs::write(dir.path().join("stacks/a/stack.yml"), "services: {}\n").unwrap();
        let tree = DirTree::new(dir.path());
        (dir, tree)
    }

    fn err(r: Result<Vec<u8>, SourceError>) -> String {
        r.map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn links_are_refused_naming_the_link_and_its_target() {
        let (dir, tree) = repo();
        let a = dir.path().join("stacks/a");
        symlink("/etc/passwd", a.join("cfg")).unwrap();
        symlink("/", a.join("root")).unwrap();
        symlink("stack.yml", a.join("same")).unwrap();
        let e = err(tree.read("stacks/a/cfg"));
        assert_eq!(
            e,
            "stacks/a/cfg: is a symbolic link to /etc/passwd, which is outside the \
             repository; shoal does not follow symbolic links"
        );
        // A link on the way is named, not the path asked for.
        let e = err(tree.read("stacks/a/root/etc/os-release"));
        assert!(
            e.starts_with("stacks/a/root: is a symbolic link to /, which is outside"),
            "{e}"
        );
        let e = err(tree.read("stacks/a/same"));
        assert!(e.contains("to stack.yml; shoal does not follow"), "{e}");
        // Relative targets that climb out are outside too.
        symlink("../../../etc", a.join("up")).unwrap();
        assert!(err(tree.read("stacks/a/up/x")).contains("outside the repository"));
        // Listing and is_file do not go through links either.
        assert!(!tree.is_file("stacks/a/cfg"));
        assert!(!tree.is_file("stacks/a/root/etc/hostname"));
        assert!(tree.list("stacks/a/root/etc").is_err());
        assert!(tree.is_file("stacks/a/stack.yml"));
        assert_eq!(
            tree.list("stacks/a/stack.yml").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(tree.list("stacks/none").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn only_regular_files_are_read_and_only_so_much() {
        let (dir, tree) = repo();
        let fifo = dir.path().join("stacks/a/fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = err(tree.read("stacks/a/fifo"));
        assert!(
            e.contains("stacks/a/fifo: is a fifo, not a regular file"),
            "{e}"
        );
        assert!(!tree.is_file("stacks/a/fifo"));

        let big = vec![b'x'; MAX_FILE_BYTES as usize + 1];
        std::fs::write(dir.path().join("stacks/a/big"), &big).unwrap();
        let e = err(tree.read("stacks/a/big"));
        assert!(
            e.contains("stacks/a/big: is larger than 1048576 bytes (1 MiB)"),
            "{e}"
        );
        std::fs::write(dir.path().join("stacks/a/fits"), &big[1..]).unwrap();
        assert_eq!(tree.read("stacks/a/fits").unwrap().len(), big.len() - 1);
        assert!(err(tree.read("stacks/a")).contains("is a folder"));
        assert!(err(tree.read("stacks/a/nothing")).contains("no such file"));
        assert!(err(tree.read("stacks/../etc/passwd")).contains("`..`"));
    }

    #[test]
    fn a_budget_refuses_the_read_that_goes_past_it() {
        let (dir, tree) = repo();
        std::fs::write(dir.path().join("stacks/a/x"), [0u8; 600]).unwrap();
        let budget = Budget::new(&tree, "the files of stack a", 1000);
        assert!(budget.read("stacks/a/x").is_ok());
        let e = err(budget.read("stacks/a/x"));
        assert_eq!(
            e,
            "stacks/a/x: reading it takes the files of stack a past 1000 bytes in all, their limit"
        );
    }

    #[test]
    fn discover_skips_the_shared_folder_and_reports_links_per_stack() {
        let (dir, tree) = repo();
        std::fs::create_dir_all(dir.path().join("stacks/_shared")).unwrap();
        std::fs::write(dir.path().join("stacks/_shared/ca.pem"), "x").unwrap();
        symlink("/", dir.path().join("stacks/evil")).unwrap();
        std::fs::create_dir_all(dir.path().join("stacks/b")).unwrap();
        symlink("/etc/passwd", dir.path().join("stacks/b/stack.yml")).unwrap();
        let found = discover(&tree).unwrap();
        let names: Vec<(&str, &str)> = found
            .iter()
            .map(|e| (e.name.as_str(), e.file.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a", "stacks/a/stack.yml"),
                ("b", "stacks/b/stack.yml"),
                ("evil", "stacks/evil/stack.yml")
            ]
        );
        assert!(err(tree.read("stacks/evil/stack.yml"))
            .contains("stacks/evil: is a symbolic link to /"));
    }
}
