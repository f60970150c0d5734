//! Images that change under the same tag, against a real registry on
//! loopback (Debian's docker-registry, htpasswd auth) and the real swarm:
//! `--resolve-image` pins services to the registry digest as `docker stack
//! deploy` does, a re-pushed tag plans as an image update and rolls out,
//! credentials come from a docker config file (entries or a credential
//! helper), and a wrong password is a clear error that changes nothing.
//!
//! Needs `docker-registry` and `htpasswd` (`.ci/run` installs them);
//! without them the tests skip, unless SHOAL_REQUIRE_TOOLS=1.
mod common;

use common::registry::{build_and_push, DockerConfig, Registry, TOOLS, TOOLS_HINT};
use common::{assert_code, docker, service_spec, shoal_env, stack_name, stderr, stdout};
use common::{Repo, StackGuard};
use std::time::Duration;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-registry-pw";

fn stack_file(image: &str) -> String {
    format!(
        "version: \"3.8\"\nservices:\n  web:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    stop_grace_period: 1s\n"
    )
}

fn image_of(service: &str) -> String {
    service_spec(service)
        .and_then(|s| {
            s.pointer("/Spec/TaskTemplate/ContainerSpec/Image")
                .and_then(|v| v.as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

fn label_of(service: &str) -> String {
    service_spec(service)
        .and_then(|s| {
            s.pointer("/Spec/Labels/com.docker.stack.image")
                .and_then(|v| v.as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

/// The image of the running task of `service`, once there is exactly one
/// running task and it runs `want`.
fn wait_running_image(service: &str, want: &str) {
    common::poll(
        &format!("{service} to run {want}"),
        Duration::from_secs(90),
        || {
            let out = docker(&[
                "service",
                "ps",
                "--no-trunc",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Image}} {{.CurrentState}}",
                service,
            ]);
            let lines: Vec<&str> = out.lines().collect();
            (lines.len() == 1 && lines[0].starts_with(&format!("{want} Running"))).then_some(())
        },
    );
}

fn short(digest: &str) -> &str {
    &digest[..19]
}

#[test]
fn a_re_pushed_tag_plans_as_an_image_update_rolls_out_and_then_plans_clean() {
    if !common::tools_available(TOOLS, TOOLS_HINT) {
        return;
    }
    let registry = Registry::start(Some((USER, PASSWORD)));
    let config = DockerConfig::new();
    config.login(&registry.addr, USER, PASSWORD);
    let tag = registry.image("app:3.0");
    let digest_a = build_and_push(&config, &tag, "a");

    let stack = stack_name("reg");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    repo.stack(&stack, &stack_file(&tag));
    let repo_dir = repo.path().to_str().unwrap();
    let service = format!("{stack}_web");
    let config_dir = config.path().to_str().unwrap().to_string();
    let env = [("DOCKER_CONFIG", config_dir.as_str())];
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--repo", repo_dir, "--stack", &stack]);
        shoal_env(&all, &env)
    };

    // First apply: the service is pinned to the digest, the label keeps the tag.
    let o = run(&["apply", "--auto-approve", "--with-registry-auth"]);
    assert_code(&o, 0);
    assert_eq!(image_of(&service), format!("{tag}@{digest_a}"));
    assert_eq!(label_of(&service), tag);
    assert_code(&run(&["plan", "--detailed-exitcode"]), 0);

    // docker stack deploy pins the same way: the same reference, byte for byte.
    let parity = stack_name("regdk");
    let _parity_guard = StackGuard::new(&[&parity]);
    let file = repo.stack(&parity, &stack_file(&tag));
    config.docker(&[
        "stack",
        "deploy",
        "--with-registry-auth",
        "-c",
        file.to_str().unwrap(),
        &parity,
    ]);
    assert_eq!(image_of(&format!("{parity}_web")), image_of(&service));
    repo.remove(&format!("stacks/{parity}"));

    // A different image pushed under the same tag.
    let version_before = common::service_version(&service).unwrap();
    let digest_b = build_and_push(&config, &tag, "b");
    assert_ne!(digest_a, digest_b);
    // Drop the local copy: the swarm must pull it from the registry, with
    // the credentials sent by --with-registry-auth.
    docker(&["image", "rm", &tag]);

    let o = run(&["plan", "--detailed-exitcode"]);
    assert_code(&o, 2);
    let text = stdout(&o);
    let line = format!(
        "TaskTemplate.ContainerSpec.Image: {tag} {}… -> {}…",
        short(&digest_a),
        short(&digest_b)
    );
    assert!(text.contains(&format!("~ service {service}")), "{text}");
    assert!(text.contains(&line), "want {line:?} in\n{text}");
    assert!(text.contains("Plan: 0 to create, 1 to update, 0 to delete."));

    let o = run(&["plan", "--json"]);
    assert_code(&o, 0);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let change = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == service.as_str())
        .unwrap();
    assert_eq!(change["action"], "update");
    assert_eq!(
        change["diff"],
        serde_json::json!([{"path": "TaskTemplate.ContainerSpec.Image",
            "before": format!("{tag}@{digest_a}"), "after": format!("{tag}@{digest_b}")}])
    );

    // docker's other modes: the tag did not change in the repository, so
    // `changed` and `never` keep what runs.
    assert_code(
        &run(&["plan", "--detailed-exitcode", "--resolve-image", "changed"]),
        0,
    );
    assert_code(
        &run(&["plan", "--detailed-exitcode", "--resolve-image", "never"]),
        0,
    );
    assert_eq!(common::service_version(&service), Some(version_before));

    // Apply rolls the service to the new digest, pulled from the registry.
    let o = run(&["apply", "--auto-approve", "--with-registry-auth"]);
    assert_code(&o, 0);
    assert_eq!(image_of(&service), format!("{tag}@{digest_b}"));
    wait_running_image(&service, &format!("{tag}@{digest_b}"));
    let repo_name = tag.rsplit_once(':').unwrap().0;
    docker(&["image", "inspect", &format!("{repo_name}@{digest_b}")]);

    // And then the plan is clean.
    let o = run(&["plan", "--detailed-exitcode"]);
    assert_code(&o, 0);
    assert!(!stdout(&o).contains(PASSWORD) && !stderr(&o).contains(PASSWORD));
}

#[test]
fn a_wrong_password_or_no_login_is_a_clear_error_that_changes_nothing() {
    if !common::tools_available(TOOLS, TOOLS_HINT) {
        return;
    }
    let registry = Registry::start(Some((USER, PASSWORD)));
    let pusher = DockerConfig::new();
    pusher.login(&registry.addr, USER, PASSWORD);
    let tag = registry.image("app:1.0");
    build_and_push(&pusher, &tag, "wrong-pw");

    let stack = stack_name("regpw");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    repo.stack(&stack, &stack_file(&tag));
    let repo_dir = repo.path().to_str().unwrap();
    let service = format!("{stack}_web");

    // A config whose entry for the registry has a wrong password.
    let wrong = DockerConfig::new();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:not-the-pw"));
    wrong.write(&format!(
        r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
        registry.addr
    ));
    let wrong_dir = wrong.path().to_str().unwrap();
    for cmd in [
        vec!["plan"],
        vec!["apply", "--auto-approve", "--with-registry-auth"],
    ] {
        let mut args = cmd.clone();
        args.extend(["--repo", repo_dir, "--stack", &stack]);
        let o = shoal_env(&args, &[("DOCKER_CONFIG", wrong_dir)]);
        assert_code(&o, 1);
        let err = stderr(&o);
        for want in [
            format!("stack {stack}"),
            format!("service {service}"),
            format!("registry {} refused the credentials in", registry.addr),
            wrong.file().display().to_string(),
            format!("docker login {}", registry.addr),
        ] {
            assert!(err.contains(&want), "{cmd:?}: want {want:?} in\n{err}");
        }
        assert!(!err.contains("not-the-pw") && !stdout(&o).contains("not-the-pw"));
        assert!(
            common::service_spec(&service).is_none(),
            "{cmd:?} created {service}"
        );
    }

    // No credentials for the registry at all.
    let empty = DockerConfig::new();
    let o = shoal_env(
        &["plan", "--repo", repo_dir, "--stack", &stack],
        &[("DOCKER_CONFIG", empty.path().to_str().unwrap())],
    );
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "registry {} requires credentials and {} has none for it",
            registry.addr,
            empty.file().display()
        )),
        "{err}"
    );
}

#[test]
fn credentials_from_a_credential_helper_pin_the_image() {
    if !common::tools_available(TOOLS, TOOLS_HINT) {
        return;
    }
    let registry = Registry::start(Some((USER, PASSWORD)));
    let pusher = DockerConfig::new();
    pusher.login(&registry.addr, USER, PASSWORD);
    let tag = registry.image("helper:2.0");
    let digest = build_and_push(&pusher, &tag, "helper");

    // A credential helper program, as docker-credential-pass & co are.
    let config = DockerConfig::new();
    let bin = config.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-shoaltest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n[ \"$server\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{{\"ServerURL\":\"'$server'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
            registry.addr
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    config.write(&format!(
        r#"{{"credHelpers":{{"{}":"shoaltest"}}}}"#,
        registry.addr
    ));

    let stack = stack_name("reghl");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    repo.stack(&stack, &stack_file(&tag));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = shoal_env(
        &[
            "apply",
            "--auto-approve",
            "--repo",
            repo.path().to_str().unwrap(),
            "--stack",
            &stack,
        ],
        &[
            ("DOCKER_CONFIG", config.path().to_str().unwrap()),
            ("PATH", &path),
        ],
    );
    assert_code(&o, 0);
    assert_eq!(image_of(&format!("{stack}_web")), format!("{tag}@{digest}"));
    assert!(!stdout(&o).contains(PASSWORD) && !stderr(&o).contains(PASSWORD));
}

#[test]
fn the_agent_rolls_out_a_re_pushed_tag_on_its_interval_even_without_self_heal() {
    if !common::tools_available(TOOLS, TOOLS_HINT) {
        return;
    }
    use common::agent::{Agent, GitRemote};
    let registry = Registry::start(Some((USER, PASSWORD)));
    let config = DockerConfig::new();
    config.login(&registry.addr, USER, PASSWORD);
    let tag = registry.image("agent:1.0");
    let digest_a = build_and_push(&config, &tag, "agent-a");

    let stack = stack_name("regag");
    let _guard = StackGuard::new(&[&stack]);
    let remote = GitRemote::new();
    remote.write(&format!("stacks/{stack}/stack.yml"), &stack_file(&tag));
    remote.push("add the app");
    let service = format!("{stack}_web");
    let lease = format!("shoal-lease-{stack}");
    let agent = Agent::start_env(
        &remote,
        &lease,
        "2s",
        &["--stack", &stack, "--with-registry-auth", "--no-self-heal"],
        &[("DOCKER_CONFIG", config.path().to_str().unwrap())],
    );
    common::poll("the agent to deploy", Duration::from_secs(60), || {
        (image_of(&service) == format!("{tag}@{digest_a}")).then_some(())
    });

    // Same commit, new image under the same tag: the registry changed, not
    // the swarm by hand, so even --no-self-heal rolls it out.
    let digest_b = build_and_push(&config, &tag, "agent-b");
    let pushed = std::time::Instant::now();
    common::poll("the new digest live", Duration::from_secs(2 + 5), || {
        (image_of(&service) == format!("{tag}@{digest_b}")).then_some(())
    });
    eprintln!("re-pushed tag live after {:?}", pushed.elapsed());
    let logs = agent.logs();
    assert!(!logs.contains(PASSWORD), "the password reached the log");
    assert!(!logs.contains("drift:"), "{logs}");
}

#[test]
fn a_registry_that_never_answers_does_not_hold_the_plan() {
    // Accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let stack = stack_name("reghang");
    let repo = Repo::new();
    repo.stack(&stack, &stack_file(&format!("{addr}/app:1.0")));
    let started = std::time::Instant::now();
    let o = shoal_env(
        &[
            "plan",
            "--detailed-exitcode",
            "--repo",
            repo.path().to_str().unwrap(),
            "--stack",
            &stack,
        ],
        &[],
    );
    let took = started.elapsed();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("could not be accessed on a registry to record its digest"),
        "{}",
        stderr(&o)
    );
    assert!(took < Duration::from_secs(30), "plan took {took:?}");
    eprintln!("plan with a silent registry took {took:?}");
}
