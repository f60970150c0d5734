//! shoal's in-process SOPS decryption against files made at test time by
//! the real `sops` and `age-keygen` (install both with
//! scripts/sops-tools.sh). `sops -d` is the oracle: shoal must produce the
//! same plaintext, and refuse what sops refuses.
//!
//! Without the tools these tests are skipped, unless SHOAL_REQUIRE_TOOLS=1
//! (set by CI), which turns the skip into a failure.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use shoal::secrets::sops::SopsFormat;
use shoal::secrets::{DecryptingTree, Decryptor, KeyEnv, Redactor, SecretsError};
use shoal::source::{DirTree, Tree};

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Makes a key pair with age-keygen; returns (key file, public key).
    fn generate(&self, name: &str) -> (PathBuf, String) {
        common::sops::age_key(&self.dir.path().join(name))
    }
}

/// A clean environment for sops: no key places of the developer's.
fn sops(dir: &Path, key_file: Option<&Path>) -> Command {
    let mut cmd = Command::new("sops");
    cmd.current_dir(dir)
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_RECIPIENTS")
        .env("XDG_CONFIG_HOME", dir.join("no-config"));
    if let Some(k) = key_file {
        cmd.env("SOPS_AGE_KEY_FILE", k);
    }
    cmd
}

/// `sops -e` `name` (holding `plain`) in `dir` for `recipients`, with extra
/// flags; returns the path of the encrypted file.
fn encrypt(dir: &Path, name: &str, plain: &[u8], recipients: &[&str], flags: &[&str]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, plain).unwrap();
    let out = sops(dir, None)
        .arg("-e")
        .arg("-i")
        .arg("--age")
        .arg(recipients.join(","))
        .args(flags)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops -e {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn sops_decrypt(dir: &Path, key: &Path, path: &Path, flags: &[&str]) -> std::process::Output {
    sops(dir, Some(key))
        .arg("-d")
        .args(flags)
        .arg(path)
        .output()
        .unwrap()
}

fn shoal_decrypt(
    key: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(SopsFormat, Vec<u8>), SecretsError> {
    let d = Decryptor::new(KeyEnv::key_file(key.display().to_string()), Redactor::new());
    d.decrypt(name, bytes).map(|o| {
        o.map(|p| (p.format, p.bytes.to_vec()))
            .expect("detected as SOPS")
    })
}

const YAML: &str = "\
# comment kept out of the MAC
app:
  password: yaml-real-pass-1111
  port: 8443
  ratio: 2.5
  debug: false
  list:
    - item-real-2222
    - inner:
        token: inner-real-3333
note_unencrypted: readable
";

const JSON: &str = r#"{"api": {"key": "json-real-key-4444", "retries": 3}, "list": ["json-real-5555", true, null]}"#;

const DOTENV: &str = "DB_PASSWORD=env-real-pass-6666\nTOKEN=env-real-token-7777\n";

const BINARY: &[u8] = b"-----BEGIN KEY-----\nbin-real-8888\x00\xfe\n-----END KEY-----\n";

const PLAINTEXTS: [&str; 8] = [
    "yaml-real-pass-1111",
    "item-real-2222",
    "inner-real-3333",
    "json-real-key-4444",
    "json-real-5555",
    "env-real-pass-6666",
    "env-real-token-7777",
    "bin-real-8888",
];

#[test]
fn every_format_decrypts_as_sops_does() {
    if !common::sops::tools_available() {
        return;
    }
    let keys = Keys::new();
    let (key, recipient) = keys.generate("key.txt");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let yaml = encrypt(d, "s.yaml", YAML.as_bytes(), &[&recipient], &[]);
    let (format, plain) = shoal_decrypt(&key, "s.yaml", &std::fs::read(&yaml).unwrap()).unwrap();
    assert_eq!(format, SopsFormat::Yaml);
    let oracle = sops_decrypt(d, &key, &yaml, &[]);
    assert!(oracle.status.success());
    let ours: serde_yaml::Value = serde_yaml::from_slice(&plain).unwrap();
    let theirs: serde_yaml::Value = serde_yaml::from_slice(&oracle.stdout).unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(ours["app"]["password"], "yaml-real-pass-1111");

    let json = encrypt(d, "s.json", JSON.as_bytes(), &[&recipient], &[]);
    let (format, plain) = shoal_decrypt(&key, "s.json", &std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(format, SopsFormat::Json);
    let oracle = sops_decrypt(d, &key, &json, &[]);
    let ours: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(&oracle.stdout).unwrap();
    assert_eq!(ours, theirs);

    let env = encrypt(d, "s.env", DOTENV.as_bytes(), &[&recipient], &[]);
    let (format, plain) = shoal_decrypt(&key, "s.env", &std::fs::read(&env).unwrap()).unwrap();
    assert_eq!(format, SopsFormat::Dotenv);
    assert_eq!(plain, sops_decrypt(d, &key, &env, &[]).stdout);
    assert_eq!(plain, DOTENV.as_bytes());

    let bin = encrypt(
        d,
        "tls.key",
        BINARY,
        &[&recipient],
        &["--input-type", "binary"],
    );
    let (format, plain) = shoal_decrypt(&key, "tls.key", &std::fs::read(&bin).unwrap()).unwrap();
    assert_eq!(format, SopsFormat::Binary);
    assert_eq!(plain, BINARY);
    assert_eq!(
        plain,
        sops_decrypt(
            d,
            &key,
            &bin,
            &["--input-type", "binary", "--output-type", "binary"]
        )
        .stdout
    );
}

#[test]
fn rules_multiple_recipients_and_edits_by_sops() {
    if !common::sops::tools_available() {
        return;
    }
    let keys = Keys::new();
    let (_, first) = keys.generate("first.txt");
    let (second_key, second) = keys.generate("second.txt");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, flags) in [
        (
            "regex.yaml",
            vec!["--encrypted-regex", "^(password|token)$"],
        ),
        ("suffix.yaml", vec!["--encrypted-suffix", "word"]),
        (
            "unregex.yaml",
            vec!["--unencrypted-regex", "^(port|ratio)$"],
        ),
        (
            "maconly.yaml",
            vec!["--encrypted-regex", "^password$", "--mac-only-encrypted"],
        ),
    ] {
        let path = encrypt(d, name, YAML.as_bytes(), &[&first, &second], &flags);
        let (_, plain) = shoal_decrypt(&second_key, name, &std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours: serde_yaml::Value = serde_yaml::from_slice(&plain).unwrap();
        let theirs: serde_yaml::Value =
            serde_yaml::from_slice(&sops_decrypt(d, &second_key, &path, &[]).stdout).unwrap();
        assert_eq!(ours, theirs, "{name}");
    }

    // `sops set` re-encrypts with a new MAC and timestamp.
    let path = encrypt(d, "set.json", JSON.as_bytes(), &[&second], &[]);
    let out = sops(d, Some(&second_key))
        .args([
            "set",
            path.to_str().unwrap(),
            r#"["api"]["key"]"#,
            r#""json-rotated-9999""#,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, plain) =
        shoal_decrypt(&second_key, "set.json", &std::fs::read(&path).unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(v["api"]["key"], "json-rotated-9999");
}

#[test]
fn tampered_files_are_refused_like_sops_refuses_them() {
    if !common::sops::tools_available() {
        return;
    }
    let keys = Keys::new();
    let (key, recipient) = keys.generate("key.txt");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yaml = encrypt(d, "s.yaml", YAML.as_bytes(), &[&recipient], &[]);
    let text = std::fs::read_to_string(&yaml).unwrap();
    let tampered = d.join("t.yaml");
    std::fs::write(
        &tampered,
        text.replace("note_unencrypted: readable", "note_unencrypted: changed"),
    )
    .unwrap();

    assert!(
        !sops_decrypt(d, &key, &tampered, &[]).status.success(),
        "sops accepts it"
    );
    let err = shoal_decrypt(&key, "t.yaml", &std::fs::read(&tampered).unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("t.yaml: file was modified after encryption (MAC mismatch)"),
        "{msg}"
    );

    let env = encrypt(d, "s.env", DOTENV.as_bytes(), &[&recipient], &[]);
    let text = std::fs::read_to_string(&env).unwrap();
    let dropped: String = text
        .lines()
        .filter(|l| !l.starts_with("TOKEN="))
        .map(|l| format!("{l}\n"))
        .collect();
    let err = shoal_decrypt(&key, "s.env", dropped.as_bytes()).unwrap_err();
    assert!(matches!(err, SecretsError::Tampered { .. }), "{err}");
}

#[test]
fn no_error_message_contains_a_plaintext_value() {
    if !common::sops::tools_available() {
        return;
    }
    let keys = Keys::new();
    let (key, recipient) = keys.generate("key.txt");
    let (other_key, _) = keys.generate("other.txt");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = [
        encrypt(d, "s.yaml", YAML.as_bytes(), &[&recipient], &[]),
        encrypt(d, "s.json", JSON.as_bytes(), &[&recipient], &[]),
        encrypt(d, "s.env", DOTENV.as_bytes(), &[&recipient], &[]),
        encrypt(
            d,
            "s.bin",
            BINARY,
            &[&recipient],
            &["--input-type", "binary"],
        ),
    ];
    let mut messages = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        messages.push(
            shoal_decrypt(&other_key, name, &bytes)
                .unwrap_err()
                .to_string(),
        );
        // Tamper with every line that is not metadata, one at a time.
        let text = String::from_utf8(bytes).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains("ENC[") && !line.contains("mac") {
                let changed: Vec<String> = text
                    .lines()
                    .enumerate()
                    .map(|(j, l)| {
                        if i == j {
                            l.replacen("data:", "data:AAAA", 1)
                        } else {
                            l.to_string()
                        }
                    })
                    .collect();
                let changed = changed.join("\n") + "\n";
                if let Err(e) = shoal_decrypt(&key, name, changed.as_bytes()) {
                    messages.push(e.to_string());
                }
            }
        }
    }
    assert!(messages.len() > 8, "{messages:?}");
    for msg in &messages {
        for plain in PLAINTEXTS {
            assert!(!msg.contains(plain), "{plain} leaked into: {msg}");
        }
    }
}

#[test]
fn a_repository_reads_decrypted_through_the_tree_and_values_are_redacted() {
    if !common::sops::tools_available() {
        return;
    }
    let keys = Keys::new();
    let (key, recipient) = keys.generate("key.txt");
    let repo = tempfile::tempdir().unwrap();
    let stack = repo.path().join("stacks/sops_web");
    std::fs::create_dir_all(&stack).unwrap();
    encrypt(&stack, "app.env", DOTENV.as_bytes(), &[&recipient], &[]);
    encrypt(
        &stack,
        "stack.sops.env",
        b"IMAGE_TAG=1.27\nADMIN_PASS=var-real-0000\n",
        &[&recipient],
        &[],
    );
    std::fs::write(
        stack.join("stack.yml"),
        "services:\n  web:\n    image: nginx:${IMAGE_TAG}\n",
    )
    .unwrap();

    let redactor = Redactor::new();
    let decryptor = Decryptor::new(
        KeyEnv::key_file(key.display().to_string()),
        redactor.clone(),
    );
    let tree = DecryptingTree::new(DirTree::new(repo.path()), Arc::new(decryptor));
    assert_eq!(
        tree.read("stacks/sops_web/app.env").unwrap(),
        DOTENV.as_bytes()
    );
    let vars = tree.stack_variables("stacks/sops_web").unwrap().unwrap();
    assert_eq!(vars["IMAGE_TAG"], "1.27");
    assert_eq!(vars["ADMIN_PASS"], "var-real-0000");
    // The ciphertext stays on disk; nothing decrypted was written.
    let on_disk = std::fs::read_to_string(stack.join("app.env")).unwrap();
    assert!(!on_disk.contains("env-real-pass-6666"));
    assert_eq!(
        redactor.redact("DB_PASSWORD=env-real-pass-6666 admin=var-real-0000"),
        "DB_PASSWORD=(sensitive) admin=(sensitive)"
    );
}
