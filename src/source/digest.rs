//! A content digest of a directory source (`stacks/` and `policies/`):
//! the revision of a directory, as a commit id is the revision of git.
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// A file or link under the directory that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct DigestError {
    pub path: PathBuf,
    // Part of the message, not a cause: the CLI prints causes again.
    pub error: std::io::Error,
}

/// A digest of every entry under `stacks/` and `policies/` of a directory
/// (paths and contents), so an edit gives a new snapshot id. Links are not
/// followed: a link contributes its target's text (so re-pointing it is an
/// edit), and a fifo or device only its kind, as loading refuses all three
/// with an error anyway. Files are hashed as a stream, so a huge one costs
/// time once per pass, never memory.
pub fn dir_digest(root: &std::path::Path) -> Result<String, DigestError> {
    use std::os::unix::fs::OpenOptionsExt;
    enum Entry {
        File(PathBuf),
        Link(PathBuf),
        Other(PathBuf),
    }
    fn walk(dir: &std::path::Path, out: &mut Vec<Entry>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in rd.flatten() {
            let path = entry.path();
            // The entry's own type (`lstat`), never its link target's.
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&path, out),
                Ok(t) if t.is_symlink() => out.push(Entry::Link(path)),
                Ok(t) if t.is_file() => out.push(Entry::File(path)),
                _ => out.push(Entry::Other(path)),
            }
        }
    }
    fn path_of(e: &Entry) -> &std::path::Path {
        match e {
            Entry::File(p) | Entry::Link(p) | Entry::Other(p) => p,
        }
    }
    let mut entries = Vec::new();
    for sub in ["stacks", "policies"] {
        walk(&root.join(sub), &mut entries);
    }
    entries.sort_by(|a, b| path_of(a).cmp(path_of(b)));
    let mut hash = Sha256::new();
    for e in &entries {
        let f = path_of(e);
        hash.update(
            f.strip_prefix(root)
                .unwrap_or(f)
                .to_string_lossy()
                .as_bytes(),
        );
        hash.update([0]);
        match e {
            Entry::File(f) => {
                // Not through a link, and no waiting on a file swapped for a fifo.
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(f)
                    .map_err(unreadable(f))?;
                hash.update(b"file:");
                std::io::copy(&mut file, &mut hash).map_err(unreadable(f))?;
            }
            Entry::Link(f) => {
                let target = std::fs::read_link(f).map_err(unreadable(f))?;
                hash.update(b"link:");
                hash.update(target.as_os_str().as_encoded_bytes());
            }
            Entry::Other(_) => hash.update(b"special"),
        }
        hash.update([0]);
    }
    Ok(format!("dir:{}", &hex::encode(hash.finalize())[..12]))
}

fn unreadable(path: &std::path::Path) -> impl Fn(std::io::Error) -> DigestError + '_ {
    move |error| DigestError {
        path: path.to_path_buf(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::dir_digest;

    #[test]
    fn dir_digest_hashes_links_without_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("stacks/a")).unwrap();
        std::fs::write(root.join("stacks/a/stack.yml"), "services: {}\n").unwrap();
        let outside = root.join("outside");
        std::fs::write(&outside, "one").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("stacks/a/cfg")).unwrap();
        // Links that would loop or stream forever when followed.
        std::os::unix::fs::symlink(root, root.join("stacks/a/loop")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("stacks/a/zero")).unwrap();
        let first = dir_digest(root).unwrap();
        // The target's content is not part of the digest...
        std::fs::write(&outside, "two").unwrap();
        assert_eq!(dir_digest(root).unwrap(), first);
        // ...where the link points is.
        std::fs::remove_file(root.join("stacks/a/cfg")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("stacks/a/cfg")).unwrap();
        assert_ne!(dir_digest(root).unwrap(), first);
    }
}
