//! `shoal history` and `shoal rollback` on a git repository with three
//! commits, against the real swarm.
mod common;

use common::agent::GitRemote;
use common::*;

fn stack_yml(value: &str) -> String {
    format!(
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    command: [\"sleep\", \"3600\"]\n    stop_grace_period: 1s\n    environment:\n      LEVEL: \"{value}\"\n"
    )
}

fn env_of(service: &str) -> Vec<String> {
    service_spec(service).unwrap()["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn history_lists_three_applied_commits_and_rollback_steps_back_one() {
    let stack = stack_name("rohi");
    let _guard = StackGuard::new(&[&stack]);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap().to_string();
    let remote = GitRemote::new();
    let url = remote.url();
    let svc = format!("{stack}_app");
    let base = |cmd: &str| -> Vec<String> {
        [
            cmd,
            "--repo",
            &url,
            "--stack",
            &stack,
            "--cache-dir",
            &cache_dir,
            "--resolve-image",
            "never",
            "--auto-approve",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |args: &[String]| shoal(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for (i, level) in ["one", "two", "three"].iter().enumerate() {
        remote.write(&format!("stacks/{stack}/stack.yml"), &stack_yml(level));
        remote.push(&format!("level {level}"));
        let out = run(&base("apply"));
        assert_code(&out, 0);
        assert!(
            env_of(&svc).contains(&format!("LEVEL={level}")),
            "commit {i}"
        );
    }
    let history = shoal(&["history", "--stack", &stack]);
    assert_code(&history, 0);
    let text = stdout(&history);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" ok ")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with('*'), "the newest is current: {text}");
    assert!(
        lines[0].contains("0 to create, 1 to update, 0 to delete"),
        "{text}"
    );
    assert!(lines[2].contains("2 to create"), "{text}");

    // One step back: the second commit, through plan and apply.
    let mut args = base("rollback");
    args.extend(["--steps".to_string(), "1".to_string()]);
    let out = run(&args);
    assert_code(&out, 0);
    let said = stdout(&out);
    assert!(said.contains("LEVEL"), "the plan is shown first: {said}");
    assert!(env_of(&svc).contains(&"LEVEL=two".to_string()));
    let json = shoal(&["history", "--stack", &stack, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let h = doc["history"].as_array().unwrap();
    assert_eq!(h.len(), 4, "{doc}");
    assert_eq!(h[0]["by"], "rollback");
    assert_eq!(h[0]["commit"], h[2]["commit"], "back at the second commit");
    assert_eq!(
        doc["failed_commit"], h[1]["commit"],
        "the third is marked failed"
    );
    assert!(stdout(&shoal(&["history", "--stack", &stack])).contains("failed and was rolled back"));

    // A directory has no commits to go back to: rollback says what it needs.
    let dir = Repo::new();
    dir.stack(&stack, &stack_yml("dir"));
    let out = shoal(&[
        "rollback",
        "--repo",
        dir.path().to_str().unwrap(),
        "--stack",
        &stack,
    ]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("git repository"), "{}", stderr(&out));
}
