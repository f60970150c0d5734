//! `--repo` as people write it: a git URL or a local directory, told apart
//! in one place for every command.
use super::git::{GitError, GitOptions, GitRepo};
use std::path::{Path, PathBuf};

/// Where a `--repo` value points.
pub enum Location {
    /// A git remote, its cached clone opened.
    Git(Box<GitRepo>),
    /// An existing local directory.
    Dir(PathBuf),
}

/// `--repo` names neither a git remote nor an existing directory, or the
/// remote cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("--ref needs a git URL in --repo; {0} is a directory")]
    RefOnDirectory(String),
    #[error("--repo {0}: no such directory")]
    NoSuchDirectory(String),
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Whether `repo` is a git URL (`https://`, `ssh://`, `git@host:path`,
/// `file://`...) rather than a directory.
pub fn is_git_url(repo: &str) -> bool {
    repo.starts_with("https://")
        || repo.starts_with("http://")
        || repo.starts_with("ssh://")
        || repo.starts_with("file://")
        || repo.starts_with("git://")
        || (repo.contains('@') && repo.contains(':') && !Path::new(repo).exists())
}

/// Open `repo`: a git remote with the options `git_options` gives (asked
/// only for a URL, so a directory needs no token), or a directory, which
/// `git_ref` must then not name.
pub fn open<E: From<OpenError>>(
    repo: &str,
    git_ref: Option<&str>,
    git_options: impl FnOnce() -> Result<GitOptions, E>,
) -> Result<Location, E> {
    if is_git_url(repo) {
        let opened = GitRepo::open(repo, git_options()?).map_err(OpenError::from)?;
        return Ok(Location::Git(Box::new(opened)));
    }
    if git_ref.is_some() {
        return Err(OpenError::RefOnDirectory(repo.to_string()).into());
    }
    let path = PathBuf::from(repo);
    if !path.is_dir() {
        return Err(OpenError::NoSuchDirectory(repo.to_string()).into());
    }
    Ok(Location::Dir(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_and_directories_are_told_apart() {
        for url in [
            "https://example.com/x.git",
            "ssh://git@host/x.git",
            "git@github.com:org/repo.git",
            "file:///srv/repo.git",
        ] {
            assert!(is_git_url(url), "{url}");
        }
        for dir in [".", "./stacks-repo", "/srv/stacks"] {
            assert!(!is_git_url(dir), "{dir}");
        }
    }
}
