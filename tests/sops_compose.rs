//! SOPS files used by a stack, end to end through the real loader and
//! converter: an encrypted `env_file:`, an encrypted secret `file:` and
//! encrypted interpolation variables read through a [`DecryptingTree`]
//! (fixtures and the TEST-ONLY key of tests/fixtures/sops; no tools needed).
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use shoal::compose::{self, Vars};
use shoal::secrets::{DecryptingTree, Decryptor, KeyEnv, Redactor};
use shoal::source::{discover, DirTree, Tree};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sops")
            .join(name),
    )
    .unwrap()
}

fn key() -> KeyEnv {
    KeyEnv::key_file(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sops/test-only.agekey")
            .display()
            .to_string(),
    )
}

const STACK: &str = "\
version: \"3.8\"
services:
  web:
    image: nginx:1.27
    env_file: ./app.env
    environment:
      API_TOKEN_FROM_VAR: ${API_TOKEN}
    secrets:
      - db_password
secrets:
  db_password:
    file: ./db_password.txt
";

#[test]
fn env_file_secret_file_and_variables_are_decrypted_and_redacted() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("stacks/sops_e2e");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stack.yml"), STACK).unwrap();
    std::fs::write(dir.join("app.env"), fixture("secrets.env")).unwrap();
    std::fs::write(dir.join("db_password.txt"), fixture("secret.txt.sops")).unwrap();
    std::fs::write(dir.join("stack.sops.env"), fixture("secrets.env")).unwrap();

    let redactor = Redactor::new();
    let tree = DecryptingTree::new(
        DirTree::new(repo.path()),
        Arc::new(Decryptor::new(key(), redactor.clone())),
    );
    let entry = discover(&tree).unwrap().remove(0);
    let vars = Vars {
        map: tree.stack_variables(&entry.dir).unwrap().unwrap(),
        ..Vars::default()
    };
    let loaded = compose::load(&tree, &entry, &vars).unwrap();
    let desired = shoal::convert::convert(&tree, &loaded).unwrap();

    let spec = serde_json::to_string(&desired.services[0].spec).unwrap();
    assert!(spec.contains("DB_PASSWORD=dotenv-pass-7777"), "{spec}");
    assert!(
        spec.contains("API_TOKEN_FROM_VAR=dotenv-token-8888"),
        "{spec}"
    );
    let data = desired.secrets[0].spec["Data"].as_str().unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
        b"plain-text-secret-abcd\n"
    );

    // The whole desired state, as a plan or log would show it, redacted.
    let everything = serde_json::to_string(&desired).unwrap();
    let redacted = redactor.redact(&everything);
    // The secret's content is there base64-encoded (`Data`).
    for plain in ["dotenv-pass-7777", "dotenv-token-8888", "second-9999", data] {
        assert!(
            everything.contains(plain),
            "{plain} not in the desired state"
        );
        assert!(!redacted.contains(plain), "{plain} survived redaction");
    }
    assert!(redacted.contains("DB_PASSWORD=(sensitive)"), "{redacted}");

    // Nothing decrypted was written next to the ciphertext.
    assert_eq!(
        std::fs::read(dir.join("app.env")).unwrap(),
        fixture("secrets.env")
    );
    assert_eq!(tree.list("stacks/sops_e2e").unwrap().len(), 4);
}

#[test]
fn an_encrypted_file_without_a_key_fails_the_load_naming_the_file() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("stacks/sops_nokey");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stack.yml"), STACK).unwrap();
    std::fs::write(dir.join("app.env"), fixture("secrets.env")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let env = KeyEnv {
        home: Some(home.path().display().to_string()),
        ..KeyEnv::default()
    };
    let tree = DecryptingTree::new(
        DirTree::new(repo.path()),
        Arc::new(Decryptor::new(env, Redactor::new())),
    );
    let entry = discover(&tree).unwrap().remove(0);
    let vars = Vars {
        map: [("API_TOKEN".to_string(), "x".to_string())]
            .into_iter()
            .collect(),
        ..Vars::default()
    };
    let err = compose::load(&tree, &entry, &vars).unwrap_err().to_string();
    assert!(
        err.contains("stacks/sops_nokey/app.env: cannot decrypt this SOPS file: no age key found"),
        "{err}"
    );
    assert!(!err.contains("dotenv-pass-7777"), "{err}");
}

/// A loader error can quote a decrypted line (here: a YAML SOPS file used
/// as an `env_file:`); passing errors through the redactor is what keeps
/// the value out of messages.
#[test]
fn loader_errors_quoting_decrypted_text_are_redacted() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("stacks/sops_yamlenv");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stack.yml"), STACK).unwrap();
    std::fs::write(dir.join("app.env"), fixture("secrets.yaml")).unwrap();
    let redactor = Redactor::new();
    let tree = DecryptingTree::new(
        DirTree::new(repo.path()),
        Arc::new(Decryptor::new(key(), redactor.clone())),
    );
    let entry = discover(&tree).unwrap().remove(0);
    let vars = Vars {
        map: [("API_TOKEN".to_string(), "x".to_string())]
            .into_iter()
            .collect(),
        ..Vars::default()
    };
    let err = compose::load(&tree, &entry, &vars).unwrap_err().to_string();
    let shown = redactor.redact(&err);
    for plain in ["s3cr3t-yaml-pass", "app-user", "tok-alpha-1111"] {
        assert!(!shown.contains(plain), "{plain} in: {shown}");
    }
}
