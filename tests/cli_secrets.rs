//! Config and secret rotation by content, stacks deployed by `docker stack
//! deploy`, and SOPS-encrypted secrets end to end: through the shoal binary
//! against the real swarm.
//!
//! The SOPS tests need the real `sops` and `age-keygen` (scripts/sops-tools.sh);
//! without them they are skipped, unless SHOAL_REQUIRE_TOOLS=1.
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// `shoal plan|apply` for one stack of a repository.
struct Run<'a> {
    dir: &'a str,
    stack: &'a str,
    env: Vec<(String, String)>,
    /// Every output, for the "no plaintext printed" checks.
    outputs: Vec<String>,
}

impl<'a> Run<'a> {
    fn new(repo: &'a Repo, stack: &'a str) -> Run<'a> {
        Run {
            dir: repo.path().to_str().unwrap(),
            stack,
            env: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn shoal(&mut self, cmd: &str, extra: &[&str]) -> Output {
        let mut args = vec![cmd, "--repo", self.dir, "--stack", self.stack];
        args.extend_from_slice(extra);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let out = shoal_env(&args, &env);
        self.outputs.push(format!(
            "$ shoal {}\n{}{}",
            args.join(" "),
            stdout(&out),
            stderr(&out)
        ));
        out
    }

    /// `plan` and `apply` both fail (exit 1) and nothing of the stack is
    /// on the swarm; each command's stderr.
    fn refused(&mut self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (cmd, extra) in [
            ("plan", &[][..]),
            ("apply", &["--auto-approve", "--timeout", "60s"][..]),
        ] {
            let o = self.shoal(cmd, extra);
            assert_code(&o, 1);
            out.push((cmd, stderr(&o)));
        }
        for kind in ["service", "network", "config", "secret"] {
            assert!(names(kind, self.stack).is_empty(), "a {kind} was created");
        }
        out
    }

    /// `plan` as text, expecting changes.
    fn plan_text(&mut self, extra: &[&str]) -> String {
        let mut args = vec!["--detailed-exitcode"];
        args.extend_from_slice(extra);
        let out = self.shoal("plan", &args);
        assert_code(&out, 2);
        stdout(&out)
    }

    /// `plan --json`.
    fn plan_json(&mut self, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = self.shoal("plan", &args);
        assert_code(&out, 0);
        serde_json::from_slice(&out.stdout).expect("plan --json is JSON")
    }

    /// A plan with nothing to do: exit 0 with --detailed-exitcode.
    fn assert_clean(&mut self, extra: &[&str]) {
        let mut args = vec!["--detailed-exitcode"];
        args.extend_from_slice(extra);
        let out = self.shoal("plan", &args);
        assert_code(&out, 0);
    }

    fn apply(&mut self, extra: &[&str]) -> Output {
        let mut args = vec!["--auto-approve", "--timeout", "60s"];
        args.extend_from_slice(extra);
        let out = self.shoal("apply", &args);
        assert_code(&out, 0);
        out
    }
}

/// The JSON changes of `kind` with `action`.
fn changes<'v>(doc: &'v serde_json::Value, action: &str, kind: &str) -> Vec<&'v serde_json::Value> {
    doc["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == action && c["kind"] == kind)
        .collect()
}

/// `Config` / `Secret`: the docker CLI word and the spec's field names.
#[derive(Clone, Copy, PartialEq)]
enum Obj {
    Config,
    Secret,
}

impl Obj {
    fn cli(self) -> &'static str {
        match self {
            Obj::Config => "config",
            Obj::Secret => "secret",
        }
    }

    /// The name the service's first config/secret reference points at.
    fn referenced(self, service: &str) -> Option<String> {
        let spec = service_spec(service)?;
        let pointer = match self {
            Obj::Config => "/Spec/TaskTemplate/ContainerSpec/Configs/0/ConfigName",
            Obj::Secret => "/Spec/TaskTemplate/ContainerSpec/Secrets/0/SecretName",
        };
        spec.pointer(pointer)?.as_str().map(str::to_string)
    }
}

fn rotation_stack(obj: Obj) -> String {
    let kind = match obj {
        Obj::Config => "configs",
        Obj::Secret => "secrets",
    };
    format!(
        "version: \"3.8\"\n\
         services:\n  app:\n    image: busybox:1.36\n    stop_grace_period: 1s\n    deploy:\n      update_config:\n        monitor: 1s\n    {kind}:\n      - source: app_data\n        target: /etc/app_data\n\
         {kind}:\n  app_data:\n    file: ./app_data.txt\n"
    )
}

/// The content of version `n`: several lines, one of them changing.
fn content(obj: Obj, n: usize) -> String {
    match obj {
        Obj::Config => format!("listen 8080\nworkers 4\nrevision {n}\nlog info\n"),
        Obj::Secret => format!("user=app\npassword=rot-secret-value-{n:04}-zz\n"),
    }
}

/// Whether `name` is `<base>-<8 lowercase hex>`.
fn is_hashed_version(name: &str, base: &str) -> bool {
    name.strip_prefix(base)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|h| {
            h.len() == 8
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Apply, change the file `changes_count` times, check every plan and apply, and that
/// the swarm never holds more than the version in use plus `keep`.
fn rotate(obj: Obj, keep: Option<usize>, changes_count: usize) {
    let stack = stack_name("rt");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    repo.stack(&stack, &rotation_stack(obj));
    repo.write(&format!("stacks/{stack}/app_data.txt"), &content(obj, 0));
    let keep_arg = keep.map(|k| k.to_string());
    let extra: Vec<&str> = match &keep_arg {
        Some(k) => vec!["--keep-versions", k],
        None => vec![],
    };
    let keep = keep.unwrap_or(1);
    let service = format!("{stack}_app");
    let base = format!("{stack}_app_data");
    let mut run = Run::new(&repo, &stack);

    run.apply(&extra);
    assert_eq!(names(obj.cli(), &stack), vec![base.clone()]);
    assert_eq!(obj.referenced(&service).as_deref(), Some(base.as_str()));
    if obj == Obj::Secret {
        let label = docker(&[
            "secret",
            "inspect",
            &base,
            "--format",
            "{{index .Spec.Labels \"io.shoal.digest\"}}",
        ]);
        assert!(label.starts_with("sha256:"), "digest label: {label:?}");
    }
    run.assert_clean(&extra);

    // Names in use after each apply, oldest first.
    let mut history = vec![base.clone()];
    for n in 1..=changes_count {
        repo.write(&format!("stacks/{stack}/app_data.txt"), &content(obj, n));

        let text = run.plan_text(&extra);
        match obj {
            Obj::Config => {
                assert!(
                    text.contains(&format!("-revision {}\n", n - 1))
                        && text.contains(&format!("+revision {n}\n"))
                        && text.contains("@@ ")
                        && text.contains(" workers 4\n"),
                    "change {n}: no unified diff of the config text:\n{text}"
                );
            }
            Obj::Secret => {
                assert!(
                    text.contains("Data: (sensitive value changed)"),
                    "change {n}: secret change not shown as such:\n{text}"
                );
            }
        }
        let doc = run.plan_json(&extra);
        let created = changes(&doc, "create", obj.cli());
        assert_eq!(created.len(), 1, "change {n}: one new version: {doc}");
        let new_name = created[0]["name"].as_str().unwrap().to_string();
        assert!(
            is_hashed_version(&new_name, &base),
            "change {n}: new version {new_name} is not {base}-<8 hex>"
        );
        let data = created[0]["diff"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "Data")
            .unwrap_or_else(|| panic!("change {n}: no Data in the create: {doc}"));
        match obj {
            Obj::Config => {
                assert_eq!(data["before"], content(obj, n - 1), "change {n}");
                assert_eq!(data["after"], content(obj, n), "change {n}");
            }
            Obj::Secret => {
                assert_eq!(data["before"], "(sensitive)", "change {n}");
                assert_eq!(data["after"], "(sensitive)", "change {n}");
            }
        }
        assert!(
            changes(&doc, "update", "service")
                .iter()
                .any(|c| c["name"] == service.as_str()),
            "change {n}: the service is not updated to the new version: {doc}"
        );

        run.apply(&extra);
        assert_eq!(
            obj.referenced(&service).as_deref(),
            Some(new_name.as_str()),
            "change {n}: the service does not use the new version"
        );
        history.push(new_name.clone());
        let live = names(obj.cli(), &stack);
        assert!(
            live.len() <= 1 + keep,
            "change {n}: {} {}s on the swarm with --keep-versions {keep}: {live:?}",
            live.len(),
            obj.cli()
        );
        // The newest `keep` unused versions stay, older ones are gone.
        let mut expected: Vec<String> = history.iter().rev().take(1 + keep).cloned().collect();
        expected.sort();
        assert_eq!(live, expected, "change {n}");
        if obj == Obj::Secret {
            let label = docker(&[
                "secret",
                "inspect",
                &new_name,
                "--format",
                "{{index .Spec.Labels \"io.shoal.digest\"}}",
            ]);
            assert!(label.starts_with("sha256:"), "digest label: {label:?}");
            assert!(
                label[7..].starts_with(&new_name[new_name.len() - 8..]),
                "the digest label {label} does not match the name {new_name}"
            );
        }
        run.assert_clean(&extra);
    }

    if obj == Obj::Secret {
        for n in 0..=changes_count {
            let value = format!("rot-secret-value-{n:04}-zz");
            for o in &run.outputs {
                assert!(!o.contains(&value), "secret content printed:\n{o}");
            }
        }
    }
}

#[test]
fn config_rotates_by_content_and_keeps_one_old_version() {
    rotate(Obj::Config, None, 10);
}

#[test]
fn config_rotation_without_retention_removes_the_old_version() {
    rotate(Obj::Config, Some(0), 3);
}

#[test]
fn secret_rotates_by_content_without_showing_it() {
    rotate(Obj::Secret, None, 10);
}

#[test]
fn a_stack_from_docker_stack_deploy_plans_clean_until_content_changes() {
    let stack = stack_name("rt");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    let file = repo.stack(
        &stack,
        "version: \"3.8\"\n\
         services:\n  app:\n    image: busybox:1.36\n    configs:\n      - source: app_conf\n        target: /etc/app.conf\n    secrets:\n      - app_pw\n\
         configs:\n  app_conf:\n    file: ./app.conf\n\
         secrets:\n  app_pw:\n    file: ./app_pw.txt\n",
    );
    repo.write(&format!("stacks/{stack}/app.conf"), "mode blue\n");
    repo.write(
        &format!("stacks/{stack}/app_pw.txt"),
        "docker-deployed-pw-1\n",
    );
    docker_stack_deploy(&file, &stack);
    let service = format!("{stack}_app");
    poll("the docker-deployed service", WAIT, || {
        service_spec(&service).map(|_| ())
    });
    assert_eq!(
        names("config", &stack),
        vec![format!("{stack}_app_conf")],
        "docker stack deploy uses plain names"
    );

    let mut run = Run::new(&repo, &stack);
    run.assert_clean(&[]);
    run.apply(&[]);
    assert_eq!(names("config", &stack), vec![format!("{stack}_app_conf")]);
    assert_eq!(names("secret", &stack), vec![format!("{stack}_app_pw")]);
    run.assert_clean(&[]);

    // The content really changes: a new version, the plain one kept (retention 1).
    repo.write(&format!("stacks/{stack}/app.conf"), "mode green\n");
    let text = run.plan_text(&[]);
    assert!(
        text.contains("-mode blue") && text.contains("+mode green"),
        "{text}"
    );
    run.apply(&[]);
    let now = Obj::Config.referenced(&service).unwrap();
    assert!(
        is_hashed_version(&now, &format!("{stack}_app_conf")),
        "{now}"
    );
    assert_eq!(names("config", &stack), {
        let mut v = vec![format!("{stack}_app_conf"), now.clone()];
        v.sort();
        v
    });
    run.assert_clean(&[]);
}

// ---------------------------------------------------------------------------
// SOPS end to end

/// `sops -e -i --age <recipient> <path>`, with no key places of the developer's.
fn sops_encrypt(path: &Path, recipient: &str) {
    let dir = path.parent().unwrap();
    let out = Command::new("sops")
        .current_dir(dir)
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_RECIPIENTS")
        .env("XDG_CONFIG_HOME", dir.join("no-config"))
        .args(["-e", "-i", "--age", recipient])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops -e {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

const DB_PASSWORD: &str = "e2e-db-pass-7f3k9q";
const API_TOKEN: &str = "e2e-api-token-m2x8w4";
const SECRET_FILE: &str = "e2e-secret-file-body-p5v1c6";

/// Every decrypted value, and the forms it could leak in.
fn plaintexts() -> Vec<String> {
    use base64::Engine as _;
    let secret_file = format!("{SECRET_FILE}\n");
    vec![
        DB_PASSWORD.to_string(),
        API_TOKEN.to_string(),
        SECRET_FILE.to_string(),
        base64::engine::general_purpose::STANDARD.encode(secret_file.as_bytes()),
    ]
}

fn assert_nothing_leaked(outputs: &[String]) {
    for value in plaintexts() {
        for o in outputs {
            assert!(!o.contains(&value), "decrypted value {value} printed:\n{o}");
        }
    }
}

/// A stack whose secret file, variables and env file are SOPS-encrypted
/// for a fresh age key. Returns (key dir, key file).
fn sops_repo(repo: &Repo, stack: &str) -> (tempfile::TempDir, PathBuf) {
    let keys = tempfile::tempdir().unwrap();
    let (key, recipient) = common::sops::age_key(&keys.path().join("key.txt"));
    repo.stack(
        stack,
        "version: \"3.8\"\n\
         services:\n  app:\n    image: busybox:1.36\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD}\n      PLAIN: visible\n    env_file:\n      - ./app.sops.env\n    secrets:\n      - db_secret\n\
         secrets:\n  db_secret:\n    file: ./db_secret.bin\n",
    );
    let encrypted = [
        ("stack.sops.env", format!("DB_PASSWORD={DB_PASSWORD}\n")),
        ("app.sops.env", format!("API_TOKEN={API_TOKEN}\n")),
        ("db_secret.bin", format!("{SECRET_FILE}\n")),
    ];
    for (name, plain) in encrypted {
        let path = repo.write(&format!("stacks/{stack}/{name}"), &plain);
        sops_encrypt(&path, &recipient);
        let stored = std::fs::read_to_string(&path).unwrap();
        for value in plaintexts() {
            assert!(!stored.contains(&value), "{name} is not encrypted");
        }
    }
    (keys, key)
}

/// The service's environment variable `name`.
fn service_env(service: &str, name: &str) -> Option<String> {
    let spec = service_spec(service)?;
    let env = spec
        .pointer("/Spec/TaskTemplate/ContainerSpec/Env")?
        .as_array()?;
    env.iter()
        .filter_map(|e| e.as_str())
        .find_map(|e| e.strip_prefix(&format!("{name}=")).map(str::to_string))
}

#[test]
fn sops_encrypted_stack_applies_and_never_prints_a_decrypted_value() {
    if !common::sops::tools_available() {
        return;
    }
    let stack = stack_name("rt");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    let (_keys, key) = sops_repo(&repo, &stack);
    let mut run = Run::new(&repo, &stack);
    run.env = vec![("SHOAL_AGE_KEY_FILE".into(), key.display().to_string())];

    let text = run.plan_text(&[]);
    assert!(
        text.contains(&format!("+ secret {stack}_db_secret")),
        "{text}"
    );
    assert!(text.contains(&format!("+ service {stack}_app")), "{text}");
    let doc = run.plan_json(&[]);
    assert_eq!(changes(&doc, "create", "secret").len(), 1, "{doc}");
    run.apply(&[]);

    let service = format!("{stack}_app");
    assert_eq!(
        service_env(&service, "DB_PASSWORD").as_deref(),
        Some(DB_PASSWORD)
    );
    assert_eq!(
        service_env(&service, "API_TOKEN").as_deref(),
        Some(API_TOKEN)
    );
    assert_eq!(service_env(&service, "PLAIN").as_deref(), Some("visible"));
    let secret = format!("{stack}_db_secret");
    assert_eq!(
        Obj::Secret.referenced(&service).as_deref(),
        Some(secret.as_str())
    );
    let label = docker(&[
        "secret",
        "inspect",
        &secret,
        "--format",
        "{{index .Spec.Labels \"io.shoal.digest\"}}",
    ]);
    {
        use sha2::Digest as _;
        let want = hex::encode(sha2::Sha256::digest(format!("{SECRET_FILE}\n").as_bytes()));
        assert_eq!(label, format!("sha256:{want}"), "digest of the plaintext");
    }
    run.assert_clean(&[]);
    let doc = run.plan_json(&[]);
    assert_eq!(doc["summary"]["create"], 0, "{doc}");

    // A new password in the encrypted variables: the env change is sensitive.
    let keys_dir = key.parent().unwrap();
    let (_, recipient) = {
        let public = Command::new("age-keygen")
            .arg("-y")
            .arg(&key)
            .output()
            .unwrap();
        (
            keys_dir,
            String::from_utf8(public.stdout).unwrap().trim().to_string(),
        )
    };
    let vars = repo.write(
        &format!("stacks/{stack}/stack.sops.env"),
        &format!("DB_PASSWORD={API_TOKEN}-2\n"),
    );
    sops_encrypt(&vars, &recipient);
    let text = run.plan_text(&[]);
    assert!(text.contains("(sensitive"), "{text}");
    let doc = run.plan_json(&[]);
    assert_eq!(changes(&doc, "update", "service").len(), 1, "{doc}");
    run.apply(&[]);
    assert_eq!(
        service_env(&service, "DB_PASSWORD"),
        Some(format!("{API_TOKEN}-2"))
    );
    run.assert_clean(&[]);

    assert!(run.outputs.len() >= 9);
    assert_nothing_leaked(&run.outputs);
}

#[test]
fn sops_stack_without_the_key_is_an_error_naming_the_file() {
    if !common::sops::tools_available() {
        return;
    }
    let stack = stack_name("rt");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    let (_keys, _key) = sops_repo(&repo, &stack);
    let empty = tempfile::tempdir().unwrap();
    let mut run = Run::new(&repo, &stack);
    // No key anywhere shoal or sops would look.
    run.env = vec![
        ("SHOAL_AGE_KEY_FILE".into(), String::new()),
        ("SOPS_AGE_KEY".into(), String::new()),
        ("SOPS_AGE_KEY_FILE".into(), String::new()),
        ("XDG_CONFIG_HOME".into(), empty.path().display().to_string()),
        ("HOME".into(), empty.path().display().to_string()),
    ];
    for (cmd, err) in run.refused() {
        assert!(
            err.contains(&format!("stacks/{stack}/stack.sops.env")),
            "{cmd}: the error does not name the file:\n{err}"
        );
        assert!(err.to_lowercase().contains("key"), "{cmd}: {err}");
    }
    assert_nothing_leaked(&run.outputs);
}

#[test]
fn a_tampered_sops_file_is_refused_naming_the_file() {
    if !common::sops::tools_available() {
        return;
    }
    let stack = stack_name("rt");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    let (_keys, key) = sops_repo(&repo, &stack);
    // One character of the env file's ciphertext changed.
    let rel = format!("stacks/{stack}/app.sops.env");
    let text = std::fs::read_to_string(repo.path().join(&rel)).unwrap();
    let start = text.find("ENC[AES256_GCM,data:").expect("a SOPS value") + 20;
    let mut bytes = text.into_bytes();
    bytes[start + 2] = if bytes[start + 2] == b'A' { b'B' } else { b'A' };
    repo.write(&rel, &String::from_utf8(bytes).unwrap());

    let mut run = Run::new(&repo, &stack);
    run.env = vec![("SHOAL_AGE_KEY_FILE".into(), key.display().to_string())];
    for (cmd, err) in run.refused() {
        assert!(
            err.contains(&format!("stacks/{stack}/app.sops.env"))
                && err.contains("modified after encryption"),
            "{cmd}: no integrity error naming the file:\n{err}"
        );
    }
    assert_nothing_leaked(&run.outputs);
}

// ---------------------------------------------------------------------------
// The Steedos example with its encrypted variables

#[test]
fn steedos_example_validates_with_its_test_key() {
    let (repo, key) = steedos_example();
    let dir = repo.path().to_str().unwrap();
    let out = shoal_env(
        &[
            "validate", "--repo", dir, "--stack", "steedos", "--nodes", "3",
        ],
        &[("SHOAL_AGE_KEY_FILE", key.as_str())],
    );
    assert_code(&out, 0);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("stack steedos: 6 services"), "{all}");
    let json = shoal_env(
        &[
            "validate", "--repo", dir, "--stack", "steedos", "--nodes", "3", "--json",
        ],
        &[("SHOAL_AGE_KEY_FILE", key.as_str())],
    );
    assert_code(&json, 0);
    let all = format!("{all}{}{}", stdout(&json), stderr(&json));
    for value in [
        "example-license",
        "example-access-key",
        "example-secret-key-change-me",
    ] {
        assert!(!all.contains(value), "decrypted {value} printed:\n{all}");
    }

    // Without the key: an error naming the encrypted file.
    let empty = tempfile::tempdir().unwrap();
    let home = empty.path().to_str().unwrap();
    let out = shoal_env(
        &[
            "validate", "--repo", dir, "--stack", "steedos", "--nodes", "3",
        ],
        &[
            ("SHOAL_AGE_KEY_FILE", ""),
            ("SOPS_AGE_KEY", ""),
            ("SOPS_AGE_KEY_FILE", ""),
            ("XDG_CONFIG_HOME", home),
            ("HOME", home),
        ],
    );
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("stacks/steedos/stack.sops.env"),
        "{}",
        stderr(&out)
    );
}
