//! Cluster-aware policies on a real two-node swarm (a worker engine in its
//! own network namespace, see scripts/two-node.sh). Ignored unless asked
//! for with `--ignored` (.ci/run does, after `scripts/two-node.sh up`).
mod common;

use common::*;
use std::time::Duration;

const TWO_NODES: &str = "needs a second node: scripts/two-node.sh up, then cargo test --test policy_two_node -- --ignored";

/// These tests are ignored unless asked for; asked for, a one-node swarm
/// is a failure that says how to add the second node.
fn require_two_nodes() {
    let nodes = docker(&["node", "ls", "-q"]);
    assert!(
        nodes.lines().count() >= 2,
        "the swarm has one node: {TWO_NODES}"
    );
}

fn copy_policies(repo: &Repo) {
    repo.copy_project_dir("policies", "policies");
}

fn manager_hostname() -> String {
    docker(&["info", "--format", "{{.Name}}"])
        .trim()
        .to_string()
}

#[test]
#[ignore = "needs a second node: scripts/two-node.sh up"]
fn seed_stack_with_local_storage_is_refused_on_two_nodes() {
    require_two_nodes();
    let stack = stack_name("seed");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    copy_policies(&repo);
    repo.stack(&stack, include_str!("fixtures/seed/stack.yml"));
    std::fs::create_dir_all(repo.path().join(format!("stacks/{stack}/steedos-storage"))).unwrap();
    let dir = repo.path().to_str().unwrap();
    let host = manager_hostname();
    let env = [("DATA_NODE", host.as_str())];

    let plan = shoal_env(&["plan", "--repo", dir, "--stack", &stack], &env);
    assert_code(&plan, 3);
    let text = stdout(&plan);
    assert!(text.contains("shared_storage"), "policy not named: {text}");
    assert!(
        text.contains(&format!("{stack}_steedos")),
        "service not named: {text}"
    );
    assert!(text.contains("S3"), "fix not named: {text}");

    let apply = shoal_env(
        &["apply", "--repo", dir, "--stack", &stack, "--auto-approve"],
        &env,
    );
    assert_code(&apply, 3);
    for kind in ["service", "network", "config", "secret"] {
        assert!(names(kind, &stack).is_empty(), "apply created a {kind}");
    }
}

#[test]
#[ignore = "needs a second node: scripts/two-node.sh up"]
fn example_steedos_stack_with_s3_applies_on_two_nodes() {
    require_two_nodes();
    let stack = stack_name("std");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    copy_policies(&repo);
    // The whole folder: its credentials are in stack.sops.env, encrypted
    // for the example's test key.
    repo.copy_project_dir("stacks/steedos", &format!("stacks/{stack}"));
    let file = format!("stacks/{stack}/stack.yml");
    let content = std::fs::read_to_string(repo.path().join(&file)).unwrap();
    // The example publishes port 80; keep the test off it.
    repo.write(&file, &content.replace("\"80:80\"", "\"18081:80\""));
    let key = format!(
        "{}/stacks/steedos/age-test-key.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let host = manager_hostname();
    let out = shoal_env(
        &[
            "apply",
            "--repo",
            repo.path().to_str().unwrap(),
            "--stack",
            &stack,
            "--auto-approve",
            "--timeout",
            "120s",
        ],
        &[
            ("DATA_NODE", host.as_str()),
            ("SHOAL_AGE_KEY_FILE", key.as_str()),
        ],
    );
    assert_code(&out, 0);
    // Both Steedos replicas run, spread over the two nodes.
    let svc = format!("{stack}_steedos");
    let nodes = poll(
        "steedos running on two nodes",
        Duration::from_secs(60),
        || {
            let out = docker(&[
                "service",
                "ps",
                &svc,
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}} {{.CurrentState}}",
            ]);
            let running: Vec<&str> = out.lines().filter(|l| l.contains("Running")).collect();
            (running.len() == 2).then(|| {
                running
                    .iter()
                    .map(|l| l.split(' ').next().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
        },
    );
    assert_eq!(nodes.len(), 2);
}
