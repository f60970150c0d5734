//! Safe rollouts through `shoal apply` on the real swarm, with stand-in
//! images: health-gated waves from `depends_on`, failed jobs, failures
//! Swarm rolls back itself, and `--rollback-on-failure`.
mod common;

use common::*;
use std::time::{Duration, Instant};

/// `docker inspect` of the service's tasks, newest first.
fn tasks(service: &str) -> Vec<serde_json::Value> {
    let ids = docker(&["service", "ps", "-q", "--no-trunc", service]);
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["inspect"];
    args.extend(ids.split_whitespace());
    let v: serde_json::Value = serde_json::from_str(&docker(&args)).expect("task json");
    let mut t = v.as_array().cloned().unwrap_or_default();
    t.sort_by(|a, b| b["CreatedAt"].as_str().cmp(&a["CreatedAt"].as_str()));
    t
}

fn time(v: &serde_json::Value) -> humantime::Timestamp {
    v.as_str()
        .expect("timestamp")
        .parse()
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn since(a: &serde_json::Value, b: &serde_json::Value) -> Duration {
    let (a, b): (std::time::SystemTime, std::time::SystemTime) = (time(a).into(), time(b).into());
    b.duration_since(a).unwrap_or_default()
}

fn apply(repo: &Repo, stack: &str, more: &[&str]) -> std::process::Output {
    let path = repo.path().to_str().unwrap().to_string();
    let mut args = vec![
        "apply",
        "--repo",
        &path,
        "--stack",
        stack,
        "--auto-approve",
        "--resolve-image",
        "never",
    ];
    args.extend(more);
    shoal(&args)
}

#[test]
fn a_service_healthy_dependency_is_written_first_and_the_dependant_only_once_it_is_healthy() {
    let stack = stack_name("roh");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    // `a` turns healthy 6 s after it starts; `b` waits for that; `c`
    // depends on nothing and goes in the first wave with `a`.
    repo.stack(
        &stack,
        r#"version: "3.8"
services:
  a:
    image: busybox:1.36
    command: ["sh", "-c", "sleep 6; touch /ready; exec sleep 3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/ready"]
      interval: 1s
      start_period: 60s
  b:
    image: busybox:1.36
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    depends_on:
      a:
        condition: service_healthy
  c:
    image: busybox:1.36
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"#,
    );
    let started = Instant::now();
    let out = apply(&repo, &stack, &["--timeout", "60s"]);
    let took = started.elapsed();
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("waiting for {stack}_a: 0/1 healthy")),
        "{text}"
    );
    let (a, b, c) = (
        service_spec(&format!("{stack}_a")).unwrap(),
        service_spec(&format!("{stack}_b")).unwrap(),
        service_spec(&format!("{stack}_c")).unwrap(),
    );
    // `a` became healthy (its task went `running`) before `b` was created.
    let a_task = tasks(&format!("{stack}_a"))
        .into_iter()
        .find(|t| t["Status"]["State"] == "running")
        .expect("a running task of a");
    let healthy_at = &a_task["Status"]["Timestamp"];
    let healthy: std::time::SystemTime = time(healthy_at).into();
    let created: std::time::SystemTime = time(&b["CreatedAt"]).into();
    assert!(
        healthy <= created,
        "b created {} before a was healthy {}",
        b["CreatedAt"],
        healthy_at
    );
    let gap = since(&a["CreatedAt"], &b["CreatedAt"]);
    assert!(gap >= Duration::from_secs(5), "b only {gap:?} after a");
    // `c` did not wait.
    assert!(
        since(&a["CreatedAt"], &c["CreatedAt"]) < Duration::from_secs(2),
        "c waited: a {} c {}",
        a["CreatedAt"],
        c["CreatedAt"]
    );
    // No longer than needed: 6 s of health, then b converging, plus slack
    // for a loaded machine.
    assert!(took < Duration::from_secs(30), "apply took {took:?}");
    // The specs are what docker writes: no trace of depends_on.
    assert!(!b.to_string().contains("depends_on"));
}

#[test]
fn a_failing_job_keeps_its_dependants_from_starting_and_apply_names_it() {
    let stack = stack_name("roj");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    repo.stack(
        &stack,
        r#"version: "3.8"
services:
  init:
    image: busybox:1.36
    command: ["sh", "-c", "echo initiating; exit 1"]
    deploy:
      mode: replicated-job
  web:
    image: busybox:1.36
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    depends_on:
      init:
        condition: service_completed_successfully
"#,
    );
    let out = apply(&repo, &stack, &["--timeout", "60s"]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("job {stack}_init failed: task: non-zero exit (1)")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "not started (they wait for {stack}_init): {stack}_web"
        )),
        "{err}"
    );
    assert!(
        service_spec(&format!("{stack}_web")).is_none(),
        "the dependant was created"
    );
}

const V1: &str = r#"version: "3.8"
services:
  app:
    image: busybox:1.36
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      update_config:
        monitor: 2s
        FAILURE
"#;

#[test]
fn a_failed_update_is_rolled_back_to_the_previous_spec_and_planned_again() {
    let stack = stack_name("rorb");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    let v1 = V1.replace("FAILURE", "failure_action: pause");
    repo.stack(&stack, &v1);
    assert_code(&apply(&repo, &stack, &[]), 0);
    let service = format!("{stack}_app");
    let before = service_spec(&service).unwrap()["Spec"].clone();
    // The new command makes every task exit 1.
    repo.stack(
        &stack,
        &v1.replace(r#"["sleep", "3600"]"#, r#"["sh", "-c", "exit 1"]"#),
    );
    let out = apply(
        &repo,
        &stack,
        &["--rollback-on-failure", "--timeout", "60s"],
    );
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("task: non-zero exit (1)"), "{err}");
    assert!(
        err.contains(&format!(
            "rolled back: restored {service} to the spec before this run"
        )),
        "{err}"
    );
    assert!(err.contains("the rollback converged"), "{err}");
    let after = service_spec(&service).unwrap();
    assert_eq!(
        after["Spec"]["TaskTemplate"]["ContainerSpec"],
        before["TaskTemplate"]["ContainerSpec"]
    );
    assert!(
        wait_until(Duration::from_secs(30), || tasks(&service).iter().any(
            |t| t["Status"]["State"] == "running" && t["DesiredState"] == "running"
        )),
        "the restored service is not running"
    );
    // The swarm is at the old commit: the plan shows the failed change again.
    let path = repo.path().to_str().unwrap().to_string();
    let plan = shoal(&[
        "plan",
        "--repo",
        &path,
        "--stack",
        &stack,
        "--resolve-image",
        "never",
        "--detailed-exitcode",
    ]);
    assert_code(&plan, 2);
    assert!(stdout(&plan).contains("exit 1"), "{}", stdout(&plan));
}

#[test]
fn an_update_swarm_rolls_back_by_itself_is_reported_as_failed() {
    let stack = stack_name("rosw");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    let v1 = V1.replace("FAILURE", "failure_action: rollback");
    repo.stack(&stack, &v1);
    assert_code(&apply(&repo, &stack, &[]), 0);
    repo.stack(
        &stack,
        &v1.replace(r#"["sleep", "3600"]"#, r#"["sh", "-c", "exit 1"]"#),
    );
    let out = apply(&repo, &stack, &["--timeout", "90s"]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{stack}_app")) && err.contains("roll"),
        "{err}"
    );
    assert!(err.contains("task: non-zero exit (1)"), "{err}");
    assert!(!stdout(&out).contains("Apply complete"), "{}", stdout(&out));
}

#[test]
fn a_stack_that_needs_another_is_applied_after_it_is_healthy_and_unknown_stacks_are_load_errors() {
    let infra = stack_name("roxi");
    let app = stack_name("roxa");
    let _guard = StackGuard::new(&[&infra, &app]);
    let repo = Repo::new();
    repo.stack(
        &infra,
        r#"version: "3.8"
services:
  db:
    image: busybox:1.36
    command: ["sh", "-c", "sleep 4; touch /ready; exec sleep 3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/ready"]
      interval: 1s
      start_period: 60s
"#,
    );
    repo.stack(
        &app,
        &format!(
            r#"version: "3.8"
x-shoal:
  depends_on: [{infra}]
services:
  web:
    image: busybox:1.36
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"#
        ),
    );
    let path = repo.path().to_str().unwrap().to_string();
    let out = shoal(&[
        "apply",
        "--repo",
        &path,
        "--stack",
        &infra,
        "--stack",
        &app,
        "--auto-approve",
        "--resolve-image",
        "never",
        "--timeout",
        "60s",
    ]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains(&format!("waiting for {infra}_db: 0/1 healthy")),
        "{}",
        stdout(&out)
    );
    let db = service_spec(&format!("{infra}_db")).unwrap();
    let web = service_spec(&format!("{app}_web")).unwrap();
    let gap = since(&db["CreatedAt"], &web["CreatedAt"]);
    assert!(gap >= Duration::from_secs(3), "web only {gap:?} after db");

    // A stack that needs one the repository does not have: a load error
    // naming both, and nothing applied.
    repo.stack(
        &app,
        "version: \"3.8\"\nx-shoal:\n  depends_on: [nowhere]\nservices:\n  web:\n    image: busybox:1.36\n    command: [\"sleep\", \"60\"]\n",
    );
    let out = shoal(&[
        "plan",
        "--repo",
        &path,
        "--stack",
        &app,
        "--resolve-image",
        "never",
    ]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains(&format!(
            "stack {app}: x-shoal.depends_on: stack {app} depends on stack \"nowhere\", which is not in the repository"
        )),
        "{}",
        stderr(&out)
    );
}
