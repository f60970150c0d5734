//! `shoal plan --format markdown` against the real swarm: the comment a
//! pull request gets for an edit of a deployed stack (a replica change and
//! a secret-looking value), with the same exit codes as text and JSON, and
//! `--json` still the same as `--format json`.
mod common;

use common::*;

const STACK: &str = r#"version: "3.8"
services:
  web:
    image: busybox:1.36
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    environment:
      DB_PASSWORD: REPLACE_PASSWORD
    deploy:
      replicas: REPLICAS
      update_config:
        monitor: 1s
"#;

fn stack_file(replicas: u32, password: &str) -> String {
    STACK
        .replace("REPLICAS", &replicas.to_string())
        .replace("REPLACE_PASSWORD", password)
}

#[test]
fn markdown_plan_of_an_edit() {
    let stack = stack_name("md");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    let dir = repo.path().to_str().unwrap().to_string();
    repo.stack(&stack, &stack_file(1, "first-pass-word"));
    let applied = shoal(&[
        "apply",
        "--repo",
        &dir,
        "--auto-approve",
        "--resolve-image",
        "never",
    ]);
    assert_code(&applied, 0);

    repo.stack(&stack, &stack_file(2, "second-pass-word"));
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "--repo",
            &dir,
            "--resolve-image",
            "never",
            "--detailed-exitcode",
        ];
        args.extend_from_slice(extra);
        shoal(&args)
    };

    let md = plan(&["--format", "markdown"]);
    assert_code(&md, 2);
    let text = stdout(&md);
    assert!(
        text.starts_with("### shoal plan: 0 to create, 1 to update, 0 to delete\n"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "<details>\n<summary><b>{stack}</b>: 0 to create, 1 to update, 0 to delete</summary>\n\n```diff\n! service {stack}_web\n"
    )));
    assert!(
        text.contains("    Mode.Replicated.Replicas: 1 -> 2\n"),
        "{text}"
    );
    assert!(text
        .contains("    TaskTemplate.ContainerSpec.Env[DB_PASSWORD]: (sensitive value changed)\n"));
    assert!(!text.contains("pass-word"), "a secret leaked:\n{text}");

    // --json is --format json; the two cannot be given together.
    let json = plan(&["--json"]);
    assert_code(&json, 2);
    let format_json = plan(&["--format", "json"]);
    assert_eq!(stdout(&json), stdout(&format_json));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("a JSON plan");
    assert_eq!(doc["summary"]["update"], 1);
    let both = plan(&["--json", "--format", "text"]);
    assert!(
        stderr(&both).contains("'--json' cannot be used with '--format <FORMAT>'"),
        "{}",
        stderr(&both)
    );

    // Nothing was written by any of the plans.
    assert_eq!(replicas(&format!("{stack}_web")), Some(1));
}
