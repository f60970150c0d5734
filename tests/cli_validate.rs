//! `shoal validate` and `shoal policy test`: offline checks, no swarm needed.
mod common;

use common::*;

fn seed_repo() -> Repo {
    let repo = Repo::new();
    repo.stack("steedos", include_str!("fixtures/seed/stack.yml"));
    std::fs::create_dir_all(repo.path().join("stacks/steedos/steedos-storage")).unwrap();
    // The project's own policies.
    repo.copy_project_dir("policies", "policies");
    repo
}

#[test]
fn seed_stack_validates_on_one_node_and_is_denied_on_two() {
    let repo = seed_repo();
    let dir = repo.path().to_str().unwrap();

    let one = shoal(&["validate", "--repo", dir, "--nodes", "1"]);
    assert_code(&one, 0);

    let two = shoal(&["validate", "--repo", dir, "--nodes", "2", "--json"]);
    assert_code(&two, 3);
    let doc: serde_json::Value = serde_json::from_slice(&two.stdout).unwrap();
    let denies: Vec<&serde_json::Value> = doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["level"] == "deny")
        .collect();
    assert!(
        denies.iter().any(|v| v["object"]
            .as_str()
            .unwrap_or("")
            .contains("steedos_steedos")
            && v["message"].as_str().unwrap_or("").contains("S3")),
        "no shared-storage denial naming steedos_steedos and S3: {doc}"
    );
}

#[test]
fn example_steedos_stack_passes_policies_on_three_nodes() {
    let (repo, key) = steedos_example();
    let out = shoal_env(
        &[
            "validate",
            "--repo",
            repo.path().to_str().unwrap(),
            "--nodes",
            "3",
        ],
        &[("SHOAL_AGE_KEY_FILE", key.as_str())],
    );
    assert_code(&out, 0);
}

#[test]
fn shipped_policy_tests_pass() {
    let out = shoal(&["policy", "test", "--repo", env!("CARGO_MANIFEST_DIR")]);
    assert_code(&out, 0);
}

#[test]
fn a_broken_policy_blocks_with_file_and_line() {
    let repo = seed_repo();
    repo.write(
        "policies/broken.rego",
        "package main\n\ndeny[msg] {\n  msg := \n}\n",
    );
    let out = shoal(&[
        "validate",
        "--repo",
        repo.path().to_str().unwrap(),
        "--nodes",
        "1",
    ]);
    assert_code(&out, 3);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("policies/broken.rego"), "{all}");
}

#[test]
fn a_bad_stack_file_names_file_line_and_field() {
    let repo = Repo::new();
    repo.stack(
        "bad",
        "version: \"3.8\"\nservices:\n  web:\n    image: busybox:1.36\n    deploy:\n      replicas: two\n",
    );
    let out = shoal(&["validate", "--repo", repo.path().to_str().unwrap()]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("stacks/bad/stack.yml"), "{err}");
    assert!(err.contains(":6"), "no line number: {err}");
    assert!(err.contains("replicas"), "{err}");
}

#[test]
fn the_agents_own_stack_loads_and_passes_policies() {
    let repo = Repo::new();
    repo.copy_project_dir("stacks/shoal", "stacks/shoal");
    repo.copy_project_dir("policies", "policies");
    let out = shoal(&[
        "validate",
        "--repo",
        repo.path().to_str().unwrap(),
        "--nodes",
        "3",
        "--managers",
        "3",
    ]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("stack shoal: 1 services"),
        "{}",
        stdout(&out)
    );
}
