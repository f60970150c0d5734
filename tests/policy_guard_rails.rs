//! The shipped guard rails (policies/guard_rails.rego) end to end on the
//! real swarm: a stack that mounts another stack's external secret (the
//! agent's git key) or the Docker socket is denied by `plan` (exit 3) and
//! `apply` writes nothing; the allow labels let it through.
mod common;

use common::*;

/// A repository with the project's policies and one stack.
fn repo_with(stack: &str, yaml: &str) -> Repo {
    let repo = Repo::new();
    repo.copy_project_dir("policies", "policies");
    repo.stack(stack, yaml);
    repo
}

fn mounting_secret(secret: &str, labels: &str) -> String {
    format!(
        "services:\n  app:\n    image: busybox:1.36\n    command: [sleep, \"3600\"]\n    secrets: [{secret}]\n    deploy:\n      labels: {{{labels}}}\nsecrets:\n  {secret}:\n    external: true\n"
    )
}

/// Nothing of the stack exists on the swarm.
fn assert_nothing_written(stack: &str) {
    for kind in ["service", "network", "config", "secret"] {
        assert!(
            names(kind, stack).is_empty(),
            "apply created a {kind} of {stack}"
        );
    }
    assert!(!exists("service", &format!("{stack}_app")));
}

#[test]
fn a_stack_mounting_the_agent_key_is_denied_and_apply_writes_nothing() {
    let stack = stack_name("grevil");
    let _guard = StackGuard::new(&[&stack]);
    let repo = repo_with(&stack, &mounting_secret("shoal_git_ssh_key", ""));
    let dir = repo.path().to_str().unwrap();

    let plan = shoal(&["plan", "--repo", dir, "--stack", &stack]);
    assert_code(&plan, 3);
    let text = stdout(&plan);
    assert!(text.contains("external_objects"), "rule not named: {text}");
    assert!(
        text.contains(&format!("service {stack}_app of stack {stack}")),
        "service and stack not named: {text}"
    );
    assert!(
        text.contains("secret shoal_git_ssh_key"),
        "secret not named: {text}"
    );
    assert!(
        text.contains(r#"shoal.allow-external: "shoal_git_ssh_key""#),
        "how to allow not said: {text}"
    );

    let apply = shoal(&["apply", "--repo", dir, "--stack", &stack, "--auto-approve"]);
    assert_code(&apply, 3);
    assert_nothing_written(&stack);
}

/// Another stack's existing secret: denied, then allowed by name, and a
/// stack's own external secret (named `<stack>_...`) needs no label.
#[test]
fn another_stacks_secret_is_denied_until_allowed_by_name() {
    let owner = stack_name("growner");
    let thief = stack_name("grthief");
    let secret = format!("{owner}_git_ssh_key");
    let _guard = StackGuard::new(&[&thief, &owner]);
    // Created outside any stack, like the agent's own secrets; labelled
    // with the owner's namespace so the guard above removes it.
    let created = std::process::Command::new("docker")
        .args([
            "secret",
            "create",
            "--label",
            &format!("com.docker.stack.namespace={owner}"),
            &secret,
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"not a key")?;
            child.wait()
        })
        .expect("docker secret create");
    assert!(created.success());

    let repo = repo_with(&thief, &mounting_secret(&secret, ""));
    let dir = repo.path().to_str().unwrap();
    let apply = shoal(&["apply", "--repo", dir, "--stack", &thief, "--auto-approve"]);
    assert_code(&apply, 3);
    assert!(stdout(&apply).contains(&format!("secret {secret}")));
    assert_nothing_written(&thief);

    // Allowed by name on the service: applies.
    let allowed = mounting_secret(&secret, &format!("shoal.allow-external: \"{secret}\""));
    repo.stack(&thief, &allowed);
    let apply = shoal(&["apply", "--repo", dir, "--stack", &thief, "--auto-approve"]);
    assert_code(&apply, 0);
    assert!(exists("service", &format!("{thief}_app")));

    // The owner mounts its own without a label.
    repo.stack(&owner, &mounting_secret(&secret, ""));
    let plan = shoal(&["plan", "--repo", dir, "--stack", &owner]);
    assert_code(&plan, 0);
}

fn binding(source: &str, labels: &str) -> String {
    format!(
        "services:\n  app:\n    image: busybox:1.36\n    command: [sleep, \"3600\"]\n    volumes: [\"{source}:/host:ro\"]\n    deploy:\n      labels: {{{labels}}}\n"
    )
}

#[test]
fn docker_socket_and_its_folders_are_denied_without_the_label() {
    let stack = stack_name("grsock");
    let _guard = StackGuard::new(&[&stack]);
    for source in ["/var/run/docker.sock", "/var/run", "/run/"] {
        let repo = repo_with(&stack, &binding(source, ""));
        let dir = repo.path().to_str().unwrap();
        let apply = shoal(&["apply", "--repo", dir, "--stack", &stack, "--auto-approve"]);
        assert_code(&apply, 3);
        let text = stdout(&apply);
        assert!(
            text.contains("docker_socket") && text.contains(r#"shoal.allow-docker-socket: "true""#),
            "{source}: {text}"
        );
        assert_nothing_written(&stack);
    }
    let repo = repo_with(
        &stack,
        &binding(
            "/var/run/docker.sock",
            "shoal.allow-docker-socket: \"true\"",
        ),
    );
    let plan = shoal(&[
        "plan",
        "--repo",
        repo.path().to_str().unwrap(),
        "--stack",
        &stack,
    ]);
    assert_code(&plan, 0);
}
