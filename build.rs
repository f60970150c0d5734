//! Build script: records the git commit the binary is built from, for
//! `shoal --version`. Reads `SHOAL_GIT_COMMIT` when set (a Docker build has
//! no `.git`), else `git rev-parse --short HEAD` when this crate is the top
//! of a git work tree, else "unknown" (a build from a tarball must not fail).
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SHOAL_GIT_COMMIT");
    let commit = match std::env::var("SHOAL_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => git_commit().unwrap_or_else(|| "unknown".to_string()),
    };
    println!("cargo:rustc-env=SHOAL_GIT_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .current_dir(&manifest_dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn git_commit() -> Option<String> {
    // A tarball unpacked inside some other repository must not report that
    // repository's commit: only trust git when this crate is its top level.
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    // Rebuild when HEAD moves: HEAD itself (checkout), the branch it points
    // to (commit) and packed-refs (gc). Paths come from git, so worktrees
    // (where .git is a file) work too; a missing path would make cargo
    // rerun this script on every build, so only existing ones are named.
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        let path = if Path::new(&path).is_absolute() {
            PathBuf::from(path)
        } else {
            manifest_dir.join(path)
        };
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}
