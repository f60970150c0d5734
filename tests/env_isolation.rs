//! The agent's (or CLI's) own credentials never reach a stack: a stack that
//! interpolates `${SOPS_AGE_KEY}`, names a bare `SHOAL_GIT_TOKEN:` or has an
//! env file with a bare key gets nothing, the plan never prints them, and
//! `--env-allow` chooses which other process variables stacks may read.
//! Real binary, real swarm.
mod common;

use common::agent::*;
use common::*;
use std::time::Duration;

/// Values no output and no service may ever hold.
const AGE_KEY: &str = "AGE-SECRET-KEY-1ENVISOLATIONTESTQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
const GIT_TOKEN: &str = "ghp_envisolation7h3k9q2m";
const KEY_FILE_BODY: &str =
    "AGE-SECRET-KEY-1KEYFILEBODYENVISOLATIONQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";

/// A stack that tries every way of reading shoal's credentials (under
/// names the plan does not mask, so a leak would show), plus a
/// secret-looking name with a plain value (`DB_PASS`), which the plan masks.
fn hostile_stack() -> &'static str {
    concat!(
        "version: \"3.8\"\n",
        "services:\n",
        "  app:\n",
        "    image: busybox:1.36\n",
        "    command: [\"sleep\", \"3600\"]\n",
        "    env_file:\n",
        "      - ./app.env\n",
        "    environment:\n",
        "      LOOT_A: ${SOPS_AGE_KEY}\n",
        "      LOOT_B: \"t=${SHOAL_GIT_TOKEN:-none}\"\n",
        "      SHOAL_GIT_TOKEN:\n",
        "      DB_PASS: hunter2\n",
    )
}

/// The repository with [`hostile_stack`]; the env file's bare keys ask for
/// the key and the key file's path.
fn hostile_repo(stack: &str) -> Repo {
    let repo = Repo::new();
    repo.stack(stack, hostile_stack());
    repo.write(
        &format!("stacks/{stack}/app.env"),
        "SOPS_AGE_KEY\nSOPS_AGE_KEY_FILE\nPLAIN=visible\n",
    );
    repo
}

/// The credentials in the environment of the shoal process, with a key
/// file (content secret too) and no default SOPS key places of the host.
struct Creds {
    dir: tempfile::TempDir,
}

impl Creds {
    fn new() -> Creds {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keys.txt"), format!("{KEY_FILE_BODY}\n")).unwrap();
        Creds { dir }
    }
    fn key_file(&self) -> String {
        self.dir.path().join("keys.txt").display().to_string()
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SOPS_AGE_KEY", AGE_KEY.to_string()),
            ("SOPS_AGE_KEY_FILE", self.key_file()),
            ("SHOAL_GIT_TOKEN", GIT_TOKEN.to_string()),
            (
                "XDG_CONFIG_HOME",
                self.dir.path().join("no-config").display().to_string(),
            ),
        ]
    }
}

fn run(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    shoal_env(args, &env)
}

fn assert_no_credential(what: &str, text: &str) {
    for secret in [AGE_KEY, GIT_TOKEN, KEY_FILE_BODY] {
        assert!(!text.contains(secret), "{what} holds {secret}:\n{text}");
    }
}

/// The service's env entries (`NAME=value`).
fn service_env(service: &str) -> Vec<String> {
    let spec = service_spec(service).expect("service exists");
    spec.pointer("/Spec/TaskTemplate/ContainerSpec/Env")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn plan_and_validate_never_read_or_print_shoals_credentials() {
    let stack = stack_name("envplan");
    let repo = hostile_repo(&stack);
    let creds = Creds::new();
    let dir = repo.path().to_str().unwrap();
    for args in [
        vec!["plan", "--repo", dir],
        vec!["plan", "--repo", dir, "--json"],
        vec!["plan", "--repo", dir, "--env-allow", "*"],
        vec!["validate", "--repo", dir],
        vec!["validate", "--repo", dir, "--json"],
    ] {
        let o = run(&args, &creds.env());
        let all = format!("{}\n{}", stdout(&o), stderr(&o));
        assert!(
            matches!(o.status.code(), Some(0) | Some(2)),
            "{args:?}: {all}"
        );
        assert_no_credential(&format!("{args:?}"), &all);
        if args[0] == "plan" && !args.contains(&"--json") {
            // Said why, naming each variable asked for.
            for name in ["SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SHOAL_GIT_TOKEN"] {
                assert!(
                    all.contains(&format!(
                        "The {name} variable is not read from the environment: it is one of shoal's own credentials"
                    )),
                    "{args:?}: no warning for {name}:\n{all}"
                );
            }
            // A secret-looking name is masked, whatever its value.
            assert!(
                all.contains("Env[DB_PASS]: (sensitive value added)"),
                "{all}"
            );
            assert!(!all.contains("hunter2"), "{all}");
            assert!(all.contains("Env[PLAIN]: \"visible\""), "{all}");
        }
    }
}

#[test]
fn env_allow_narrows_what_the_cli_reads() {
    let stack = stack_name("envallow");
    let repo = Repo::new();
    repo.stack(
        &stack,
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    environment:\n      COLOUR: \"c-${APP_COLOUR}\"\n      OTHER: \"o-${OTHER_VAR}\"\n",
    );
    let dir = repo.path().to_str().unwrap();
    let env = vec![
        ("APP_COLOUR", "blue".to_string()),
        ("OTHER_VAR", "green".to_string()),
    ];
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", "--repo", dir, "--stack", &stack];
        args.extend_from_slice(extra);
        let o = run(&args, &env);
        assert_code(&o, 0);
        format!("{}\n{}", stdout(&o), stderr(&o))
    };
    // Default: the CLI reads the process environment, as docker does.
    let all = plan(&[]);
    assert!(
        all.contains("\"c-blue\"") && all.contains("\"o-green\""),
        "{all}"
    );
    // Narrowed to APP_: OTHER_VAR reads as unset, with the reason.
    let some = plan(&["--env-allow", "APP_"]);
    assert!(
        some.contains("\"c-blue\"") && some.contains("\"o-\""),
        "{some}"
    );
    assert!(
        some.contains("The OTHER_VAR variable is not read from the environment: stacks may not read this process variable (see --env-allow)"),
        "{some}"
    );
    // A comma list and repeats add up; '' allows none.
    let both = plan(&["--env-allow", "NOPE_,OTHER_", "--env-allow", "APP_COLOUR"]);
    assert!(
        both.contains("\"c-blue\"") && both.contains("\"o-green\""),
        "{both}"
    );
    let none = plan(&["--env-allow", ""]);
    assert!(none.contains("\"c-\"") && none.contains("\"o-\""), "{none}");
}

#[test]
fn apply_ships_no_credential_into_the_service() {
    let stack = stack_name("envapply");
    let _guard = StackGuard::new(&[&stack]);
    let repo = hostile_repo(&stack);
    let creds = Creds::new();
    let dir = repo.path().to_str().unwrap();
    let o = run(
        &[
            "apply",
            "--repo",
            dir,
            "--stack",
            &stack,
            "--auto-approve",
            "--no-wait",
        ],
        &creds.env(),
    );
    let all = format!("{}\n{}", stdout(&o), stderr(&o));
    assert_code(&o, 0);
    assert_no_credential("apply output", &all);
    let env = service_env(&format!("{stack}_app"));
    assert_no_credential("the service's env", &env.join("\n"));
    assert!(
        !env.iter().any(|e| e.contains(&creds.key_file())),
        "{env:?}"
    );
    // The stack's own values do arrive.
    assert!(env.contains(&"PLAIN=visible".to_string()), "{env:?}");
    assert!(env.contains(&"DB_PASS=hunter2".to_string()), "{env:?}");
    assert!(env.contains(&"LOOT_B=t=none".to_string()), "{env:?}");
}

#[test]
fn the_agent_ships_none_of_its_credentials_and_by_default_reads_no_process_variable() {
    let stack = stack_name("envagent");
    let _guard = StackGuard::new(&[&stack]);
    let remote = GitRemote::new();
    remote.write(
        &format!("stacks/{stack}/stack.yml"),
        &format!(
            "{}      FROM_HOST: \"h-${{AGENT_HOST_VAR}}\"\n",
            hostile_stack()
        ),
    );
    remote.write(
        &format!("stacks/{stack}/app.env"),
        "SOPS_AGE_KEY\nSOPS_AGE_KEY_FILE\nPLAIN=visible\n",
    );
    remote.push("a stack that reaches for the agent's credentials");
    let creds = Creds::new();
    let mut env = creds.env();
    env.push(("AGENT_HOST_VAR", "host-only".to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lease = format!("shoal-lease-{stack}");
    // The default: no --env-allow.
    let agent = Agent::start_env(&remote, &lease, "300s", &["--stack", &stack], &env);
    let service = format!("{stack}_app");
    poll("the agent to deploy", Duration::from_secs(60), || {
        service_spec(&service).map(|_| ())
    });
    let first = service_env(&service);
    assert_no_credential("the service's env", &first.join("\n"));
    // The agent reads no process variable it was not allowed to.
    assert!(first.contains(&"FROM_HOST=h-".to_string()), "{first:?}");
    assert!(first.contains(&"LOOT_B=t=none".to_string()), "{first:?}");
    poll("the pass recorded", Duration::from_secs(30), || {
        stack_outcome(&agent, &stack)
    });
    assert_no_credential("/status", &agent.status().to_string());
    assert_no_credential("the agent's log", &agent.logs());
    drop(agent);

    // The operator allows AGENT_HOST_ (and every SHOAL_ variable): the
    // stack now reads AGENT_HOST_VAR, still not SHOAL_GIT_TOKEN.
    let agent = Agent::start_env(
        &remote,
        &lease,
        "300s",
        &["--stack", &stack, "--env-allow", "AGENT_HOST_,SHOAL_"],
        &env,
    );
    let second = poll(
        "the allowed variable applied",
        Duration::from_secs(60),
        || {
            let e = service_env(&service);
            e.contains(&"FROM_HOST=h-host-only".to_string())
                .then_some(e)
        },
    );
    assert_no_credential("the service's env", &second.join("\n"));
    assert!(second.contains(&"LOOT_B=t=none".to_string()), "{second:?}");
    assert_no_credential("the agent's log", &agent.logs());
}

/// A decrypted value shorter than the redactor's minimum (`ab`) under a
/// name that says nothing is still masked where it is a whole field value.
#[test]
fn a_short_decrypted_value_is_masked_as_a_field_value() {
    if !common::sops::tools_available() {
        return;
    }
    let stack = stack_name("envshort");
    let repo = Repo::new();
    repo.stack(
        &stack,
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    environment:\n      SHORT: ${SHORT_VAR}\n      TAB: tab\n",
    );
    let keys = tempfile::tempdir().unwrap();
    let (key, recipient) = common::sops::age_key(&keys.path().join("key.txt"));
    let path = repo.write(&format!("stacks/{stack}/stack.sops.env"), "SHORT_VAR=ab\n");
    let o = std::process::Command::new("sops")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env("XDG_CONFIG_HOME", keys.path().join("no-config"))
        .args(["-e", "-i", "--age", &recipient])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "sops: {o:?}");
    let dir = repo.path().to_str().unwrap();
    let env = vec![
        ("SOPS_AGE_KEY_FILE", key.display().to_string()),
        (
            "XDG_CONFIG_HOME",
            keys.path().join("no-config").display().to_string(),
        ),
    ];
    let text = run(&["plan", "--repo", dir, "--stack", &stack], &env);
    assert_code(&text, 0);
    let text = stdout(&text);
    assert!(
        text.contains("Env[SHORT]: (sensitive value added)"),
        "{text}"
    );
    // Not replaced inside other text.
    assert!(text.contains("Env[TAB]: \"tab\""), "{text}");
    let json = run(&["plan", "--repo", dir, "--stack", &stack, "--json"], &env);
    assert_code(&json, 0);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let fields = doc.to_string();
    assert!(!fields.contains("\"ab\""), "{fields}");
    assert!(
        fields.contains("\"path\":\"TaskTemplate.ContainerSpec.Env[SHORT]\"")
            && fields.contains("(sensitive)"),
        "{fields}"
    );
}
