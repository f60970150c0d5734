//! Decryption of fixtures made by the real `sops` 3.11 and `age`
//! (tests/fixtures/sops/, encrypted to the TEST-ONLY key there).
use super::*;
use crate::source::{DirTree, Tree};
use std::sync::Arc;

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sops")
}

fn test_key() -> KeyEnv {
    KeyEnv::key_file(fixtures().join("test-only.agekey").display().to_string())
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn decrypt(name: &str) -> Result<(sops::SopsFormat, String), SecretsError> {
    let d = Decryptor::new(test_key(), Redactor::new());
    let plain = d.decrypt(name, &fixture(name))?.expect("a SOPS file");
    Ok((
        plain.format,
        String::from_utf8_lossy(&plain.bytes).into_owned(),
    ))
}

/// Every plaintext value the fixtures hold, to check messages against.
const PLAINTEXTS: [&str; 12] = [
    "s3cr3t-yaml-pass",
    "app-user",
    "tok-alpha-1111",
    "deep-value-3333",
    "line-one-aaaa",
    "json-api-key-4444",
    "h-one-5555",
    "dotenv-pass-7777",
    "dotenv-token-8888",
    "second-9999",
    "payload-0000",
    "regex-pass-1212",
];

#[test]
fn yaml_with_nested_maps_lists_and_types_decrypts() {
    let (format, text) = decrypt("secrets.yaml").unwrap();
    assert_eq!(format, sops::SopsFormat::Yaml);
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(v["db"]["user"], "app-user");
    assert_eq!(v["db"]["password"], "s3cr3t-yaml-pass");
    assert_eq!(v["db"]["port"], 5432);
    assert_eq!(v["db"]["ratio"], 0.75);
    assert_eq!(v["db"]["enabled"], true);
    assert_eq!(v["db"]["empty"], "");
    assert!(v["db"]["nothing"].is_null());
    assert_eq!(v["tokens"][0], "tok-alpha-1111");
    assert_eq!(v["tokens"][1], "tok-beta-2222");
    assert_eq!(v["tokens"][2]["nested"]["deep"], "deep-value-3333");
    assert_eq!(v["public_unencrypted"], "visible-value");
    assert_eq!(v["multiline"], "line-one-aaaa\nline-two-bbbb\n");
    assert!(v.get("sops").is_none());
    // Key order is kept.
    let keys: Vec<_> = v.as_mapping().unwrap().keys().collect();
    assert_eq!(keys[0], "db");
    assert_eq!(keys[3], "multiline");
}

#[test]
fn json_decrypts_to_json_without_metadata() {
    let (format, text) = decrypt("secrets.json").unwrap();
    assert_eq!(format, sops::SopsFormat::Json);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "api_key": "json-api-key-4444",
            "limits": {"max": 100, "burst": 1.5, "strict": false},
            "hosts": ["h-one-5555", "h-two-6666"],
            "quote": "has \"quotes\" and \\ backslash"
        })
    );
}

#[test]
fn dotenv_decrypts_to_key_value_lines() {
    let (format, text) = decrypt("secrets.env").unwrap();
    assert_eq!(format, sops::SopsFormat::Dotenv);
    assert_eq!(
        text,
        "DB_PASSWORD=dotenv-pass-7777\nAPI_TOKEN=dotenv-token-8888\nMULTI=first\\nsecond-9999\nEMPTY=\n"
    );
}

#[test]
fn binary_decrypts_to_raw_bytes() {
    let d = Decryptor::new(test_key(), Redactor::new());
    let plain = d
        .decrypt("secret.bin.sops", &fixture("secret.bin.sops"))
        .unwrap()
        .unwrap();
    assert_eq!(plain.format, sops::SopsFormat::Binary);
    assert_eq!(
        plain.bytes.as_slice(),
        b"binary-secret-\x00\x01\xff-payload-0000".as_slice()
    );
    let (format, text) = decrypt("secret.txt.sops").unwrap();
    assert_eq!(format, sops::SopsFormat::Binary);
    assert_eq!(text, "plain-text-secret-abcd\n");
}

#[test]
fn encrypted_regex_with_mac_only_encrypted_decrypts() {
    let (_, text) = decrypt("regex-mac-only.yaml").unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(v["data"]["password"], "regex-pass-1212");
    assert_eq!(v["data"]["username"], "regex-user-3434");
    assert_eq!(v["stringData"]["other"], "plain-because-not-matched");
}

#[test]
fn multi_document_yaml_decrypts_every_document() {
    let (_, text) = decrypt("multi.yaml").unwrap();
    assert_eq!(text, "first: doc-one-value\n---\nsecond: doc-two-value\n");
}

#[test]
fn files_that_are_not_sops_pass_through_detection() {
    for (path, text) in [
        ("stack.yml", "services:\n  web:\n    image: nginx:1.27\n"),
        (
            "x.json",
            r#"{"sops": "just a word", "mac": 1, "version": 2}"#,
        ),
        ("x.env", "A=1\nsops_mac=only-one-marker\n"),
        ("bin", "\u{0}\u{1}"),
    ] {
        assert!(
            sops::SopsDocument::detect(path, text.as_bytes())
                .unwrap()
                .is_none(),
            "{path}"
        );
    }
}

#[test]
fn a_broken_sops_file_is_an_error_not_ciphertext_passed_through() {
    // A duplicate key makes the YAML invalid.
    let text = String::from_utf8(fixture("secrets.yaml")).unwrap();
    let broken = format!("{text}tokens: again\n");
    let err = sops::SopsDocument::detect("s.yaml", broken.as_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("s.yaml: holds SOPS-encrypted values"),
        "{err}"
    );
    // So is one whose metadata lost its MAC.
    let no_mac: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("mac:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(sops::SopsDocument::detect("s.yaml", no_mac.as_bytes()).is_err());
}

#[test]
fn a_decrypted_file_is_redacted_whole_and_base64_encoded() {
    use base64::Engine as _;
    let redactor = Redactor::new();
    let d = Decryptor::new(test_key(), redactor.clone());
    d.decrypt("secret.txt.sops", &fixture("secret.txt.sops"))
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode("plain-text-secret-abcd\n");
    assert_eq!(
        redactor.redact(&format!("Data: {b64}")),
        "Data: (sensitive)"
    );
}

fn tamper(name: &str, from: &str, to: &str) -> String {
    let text = String::from_utf8(fixture(name)).unwrap();
    assert!(text.contains(from), "{from} not in {name}");
    text.replacen(from, to, 1)
}

#[test]
fn a_changed_unencrypted_value_is_a_mac_mismatch() {
    let text = tamper(
        "secrets.yaml",
        "public_unencrypted: visible-value",
        "public_unencrypted: changed-value",
    );
    let d = Decryptor::new(test_key(), Redactor::new());
    let err = d.decrypt("secrets.yaml", text.as_bytes()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SecretsError::Tampered { .. }));
    assert!(
        msg.contains("secrets.yaml")
            && msg.contains("file was modified after encryption (MAC mismatch)"),
        "{msg}"
    );
}

#[test]
fn a_removed_or_swapped_value_is_refused() {
    // Dropping an entry changes the MAC.
    let text = String::from_utf8(fixture("secrets.env")).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("API_TOKEN="))
        .map(|l| format!("{l}\n"))
        .collect();
    let d = Decryptor::new(test_key(), Redactor::new());
    let err = d.decrypt("secrets.env", without.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("(MAC mismatch)"), "{err}");
    // Moving a ciphertext to another key breaks its additional data.
    let yaml = String::from_utf8(fixture("secrets.yaml")).unwrap();
    let pw_line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("password:"))
        .unwrap();
    let user_line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("user:"))
        .unwrap();
    let swapped = yaml.replacen(user_line, &pw_line.replacen("password:", "user:", 1), 1);
    let err = d.decrypt("secrets.yaml", swapped.as_bytes()).unwrap_err();
    assert!(matches!(err, SecretsError::Tampered { .. }), "{err}");
    assert!(err.to_string().contains("`db:user`"), "{err}");
}

#[test]
fn a_changed_ciphertext_is_refused() {
    let text = tamper(
        "secrets.json",
        "\"api_key\": \"ENC[AES256_GCM,data:",
        "\"api_key\": \"ENC[AES256_GCM,data:AAAA",
    );
    let d = Decryptor::new(test_key(), Redactor::new());
    let err = d.decrypt("secrets.json", text.as_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .contains("file was modified after encryption"),
        "{err}"
    );
}

#[test]
fn the_wrong_key_is_named() {
    let other = fixtures()
        .join("other-test-only.agekey")
        .display()
        .to_string();
    let d = Decryptor::new(KeyEnv::key_file(other.clone()), Redactor::new());
    let err = d
        .decrypt("secrets.yaml", &fixture("secrets.yaml"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SecretsError::WrongKey { .. }));
    assert!(
        msg.contains(&format!(
            "none of the age identities in {other} can decrypt secrets.yaml"
        )),
        "{msg}"
    );
    assert!(
        msg.contains("age1tvyfg2jhqv26hk5lhf3g8au5t3n0p2t3jz25thdy85l4pp573v2sg2lydr"),
        "{msg}"
    );
}

#[test]
fn a_missing_key_lists_the_places_looked_at_and_the_recipients() {
    let home = tempfile::tempdir().unwrap();
    let env = KeyEnv {
        home: Some(home.path().display().to_string()),
        ..KeyEnv::default()
    };
    let d = Decryptor::new(env, Redactor::new());
    let err = d
        .decrypt("secrets.env", &fixture("secrets.env"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SecretsError::NoKey { .. }), "{msg}");
    for place in [
        "SHOAL_AGE_KEY_FILE",
        "SOPS_AGE_KEY",
        "SOPS_AGE_KEY_FILE",
        &format!("{}/.config/sops/age/keys.txt", home.path().display()),
        "age1tvyfg2jhqv26hk5lhf3g8au5t3n0p2t3jz25thdy85l4pp573v2sg2lydr",
    ] {
        assert!(msg.contains(place), "{place} not in: {msg}");
    }
}

#[test]
fn keys_are_found_in_sops_places() {
    let key = String::from_utf8(fixture("test-only.agekey")).unwrap();
    // Inline.
    let d = Decryptor::new(
        KeyEnv {
            sops_age_key: Some(key.clone()),
            ..KeyEnv::default()
        },
        Redactor::new(),
    );
    assert!(d.decrypt("secrets.env", &fixture("secrets.env")).is_ok());
    assert!(!format!("{d:?}").contains("AGE-SECRET-KEY"));
    // XDG config folder.
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(xdg.path().join("sops/age")).unwrap();
    std::fs::write(xdg.path().join("sops/age/keys.txt"), &key).unwrap();
    let d = Decryptor::new(
        KeyEnv {
            xdg_config_home: Some(xdg.path().display().to_string()),
            ..KeyEnv::default()
        },
        Redactor::new(),
    );
    assert!(d.decrypt("secrets.env", &fixture("secrets.env")).is_ok());
    // A missing explicit key file is an error naming it.
    let d = Decryptor::new(KeyEnv::key_file("/nonexistent/k.txt"), Redactor::new());
    let err = d
        .decrypt("secrets.env", &fixture("secrets.env"))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("SHOAL_AGE_KEY_FILE /nonexistent/k.txt"),
        "{err}"
    );
}

#[test]
fn no_error_message_contains_a_plaintext_value() {
    let other = fixtures()
        .join("other-test-only.agekey")
        .display()
        .to_string();
    let mut messages = Vec::new();
    for name in [
        "secrets.yaml",
        "secrets.json",
        "secrets.env",
        "secret.bin.sops",
    ] {
        let wrong = Decryptor::new(KeyEnv::key_file(other.clone()), Redactor::new());
        messages.push(wrong.decrypt(name, &fixture(name)).unwrap_err().to_string());
        let none = Decryptor::new(KeyEnv::default(), Redactor::new());
        messages.push(none.decrypt(name, &fixture(name)).unwrap_err().to_string());
    }
    let tampered = tamper("secrets.yaml", "visible-value", "changed-value");
    let d = Decryptor::new(test_key(), Redactor::new());
    messages.push(
        d.decrypt("secrets.yaml", tampered.as_bytes())
            .unwrap_err()
            .to_string(),
    );
    for msg in &messages {
        for plain in PLAINTEXTS {
            assert!(!msg.contains(plain), "{plain} leaked into: {msg}");
        }
    }
}

#[test]
fn decrypting_tree_serves_plaintext_and_registers_values() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("stacks/web");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.env"), fixture("secrets.env")).unwrap();
    std::fs::write(dir.join("key.bin"), fixture("secret.bin.sops")).unwrap();
    std::fs::write(dir.join("stack.yml"), "services: {}\n").unwrap();
    let redactor = Redactor::new();
    let tree = DecryptingTree::new(
        DirTree::new(repo.path()),
        Arc::new(Decryptor::new(test_key(), redactor.clone())),
    );
    assert_eq!(
        tree.read("stacks/web/stack.yml").unwrap(),
        b"services: {}\n"
    );
    let env = String::from_utf8(tree.read("stacks/web/app.env").unwrap()).unwrap();
    assert!(env.starts_with("DB_PASSWORD=dotenv-pass-7777\n"), "{env}");
    assert!(tree
        .read("stacks/web/key.bin")
        .unwrap()
        .ends_with(b"payload-0000"));
    assert_eq!(
        redactor.redact("pw dotenv-pass-7777, multi first\nsecond-9999, bin -payload-0000"),
        "pw (sensitive), multi (sensitive), bin (sensitive)"
    );
    assert_eq!(tree.list("stacks/web").unwrap().len(), 3);
    assert!(tree.is_file("stacks/web/app.env"));
}

#[test]
fn decrypting_tree_errors_name_the_file() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("s.env"), fixture("secrets.env")).unwrap();
    let tree = DecryptingTree::new(
        DirTree::new(repo.path()),
        Arc::new(Decryptor::new(KeyEnv::default(), Redactor::new())),
    );
    let err = tree.read("s.env").unwrap_err().to_string();
    assert!(
        err.starts_with("s.env: cannot decrypt this SOPS file"),
        "{err}"
    );
}

#[test]
fn stack_variables_come_from_an_encrypted_file_only() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("stacks/web");
    std::fs::create_dir_all(&dir).unwrap();
    let redactor = Redactor::new();
    let tree = DecryptingTree::new(
        DirTree::new(repo.path()),
        Arc::new(Decryptor::new(test_key(), redactor.clone())),
    );
    assert_eq!(tree.stack_variables("stacks/web").unwrap(), None);

    std::fs::write(dir.join("stack.sops.env"), fixture("secrets.env")).unwrap();
    let vars = tree.stack_variables("stacks/web").unwrap().unwrap();
    assert_eq!(vars["DB_PASSWORD"], "dotenv-pass-7777");
    assert_eq!(vars["MULTI"], "first\nsecond-9999");
    assert_eq!(vars["EMPTY"], "");

    std::fs::write(dir.join("stack.env.sops.yaml"), fixture("multi.yaml")).unwrap();
    let err = tree.stack_variables("stacks/web").unwrap_err().to_string();
    assert!(err.contains("more than one variables file"), "{err}");

    std::fs::remove_file(dir.join("stack.sops.env")).unwrap();
    std::fs::write(
        dir.join("stack.env.sops.yaml"),
        fixture("regex-mac-only.yaml"),
    )
    .unwrap();
    let err = tree.stack_variables("stacks/web").unwrap_err().to_string();
    assert!(err.contains("variable `data` must be a string"), "{err}");

    std::fs::write(dir.join("stack.env.sops.yaml"), "A: plain\n").unwrap();
    let err = tree.stack_variables("stacks/web").unwrap_err().to_string();
    assert!(err.contains("is not SOPS-encrypted"), "{err}");
}

#[test]
fn yaml_edge_values_decrypt_with_a_matching_mac() {
    // Timestamps (type:time), i64::MAX, exponents, empty collections, nulls
    // in lists, unicode keys, quoted numbers, anchors.
    let (_, text) = decrypt("edge.yaml").unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(v["when"], "2024-01-01T00:00:00Z");
    assert_eq!(v["date"], "2024-01-01T00:00:00Z");
    assert_eq!(v["big"], i64::MAX);
    assert_eq!(v["sci"], 1500);
    assert_eq!(v["tiny"], 0.000001);
    assert_eq!(v["listnull"][0], serde_yaml::Value::Null);
    assert_eq!(v["listnull"][1], "x-item");
    assert_eq!(v["ünï"], "ùnicode välue");
    assert_eq!(v["quoted_num"], "1234");
    assert_eq!(v["yes_word"], "yes");
    assert_eq!(v["ref"]["k"], "anchored-val");
}

#[test]
fn json_edge_values_decrypt_with_a_matching_mac() {
    let (_, text) = decrypt("edge.json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["a"].as_f64(), Some(1e300));
    assert_eq!(v["b"].as_f64(), Some(-0.5));
    assert_eq!(v["c"].as_f64(), Some(12345678901234567890.0));
    assert_eq!(v["d"], serde_json::json!({}));
    assert_eq!(v["e"], serde_json::json!([]));
    assert_eq!(v["f"], "ü\u{0}x");
    assert_eq!(v["g"], serde_json::json!([[1, "two-val"], {"h": null}]));
}

#[test]
fn dotenv_edge_values_round_trip_like_sops() {
    // As `sops -d` prints it, less the decrypted `#c2` comment line, which
    // shoal drops (comments are outside the MAC).
    let (_, text) = decrypt("edge.env").unwrap();
    assert_eq!(text, "A=x=y\nB= spaced value \nC=\nD=tail\\\\n\n");
}
