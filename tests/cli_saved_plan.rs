//! Reviewed plans applied exactly (`shoal plan --out FILE`, `shoal apply
//! FILE`) on the real swarm: the saved plan applies its changes and no
//! other; a hand scale between plan and apply, an edit of the directory,
//! or a new commit on the branch makes apply refuse and write nothing.
mod common;

use common::agent::GitRemote;
use common::*;

const STACK: &str = r#"version: "3.8"
services:
  web:
    image: busybox:1.36
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    environment:
      DB_PASSWORD: hunter-two-REPLICAS
    deploy:
      replicas: REPLICAS
      update_config:
        monitor: 1s
  side:
    image: busybox:1.36
    command: ["sleep", "3600"]
    stop_grace_period: 1s
"#;

fn stack_file(replicas: u32) -> String {
    STACK.replace("REPLICAS", &replicas.to_string())
}

fn run(args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--resolve-image", "never"]);
    shoal(&all)
}

#[test]
fn a_saved_plan_applies_exactly_or_refuses() {
    let stack = stack_name("saved");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    let dir = repo.path().to_str().unwrap().to_string();
    let web = format!("{stack}_web");
    let side = format!("{stack}_side");
    let out = tempfile::tempdir().unwrap();
    let plan_file = out.path().join("plan.json");
    let plan_path = plan_file.to_str().unwrap().to_string();

    repo.stack(&stack, &stack_file(1));
    assert_code(&run(&["apply", "--repo", &dir, "--auto-approve"]), 0);

    // Reviewed: replicas 1 -> 2 (and its password). Applied exactly: only web is written.
    repo.stack(&stack, &stack_file(2));
    let planned = run(&["plan", "--repo", &dir, "--out", &plan_path]);
    assert_code(&planned, 0);
    let saved = std::fs::read_to_string(&plan_file).expect("the plan file");
    assert!(
        !saved.contains("hunter-two"),
        "a secret-looking value reached the file:\n{saved}"
    );
    let side_before = service_version(&side);
    let applied = shoal(&["apply", &plan_path]);
    assert_code(&applied, 0);
    assert_eq!(replicas(&web), Some(2));
    // One write to web: the spec before it is the one the plan started from.
    let previous = docker(&[
        "service",
        "inspect",
        "--format",
        "{{.PreviousSpec.Mode.Replicated.Replicas}}",
        &web,
    ]);
    assert_eq!(previous.trim(), "1");
    assert_eq!(
        service_version(&side),
        side_before,
        "side was not in the plan"
    );

    // A hand scale between plan and apply: refused, nothing written.
    repo.stack(&stack, &stack_file(3));
    assert_code(&run(&["plan", "--repo", &dir, "--out", &plan_path]), 0);
    docker(&["service", "scale", "--detach", &format!("{web}=5")]);
    let version = service_version(&web);
    let refused = shoal(&["apply", &plan_path]);
    assert_code(&refused, 1);
    let err = stderr(&refused);
    assert!(
        err.contains("no longer holds; nothing was changed"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "service {web}: changed on the swarm since the plan"
        )),
        "{err}"
    );
    assert_eq!(service_version(&web), version, "nothing written");
    assert_eq!(replicas(&web), Some(5));

    // An edit of the directory after the plan: the source moved.
    assert_code(&run(&["plan", "--repo", &dir, "--out", &plan_path]), 0);
    repo.stack(&stack, &stack_file(4));
    let refused = shoal(&["apply", &plan_path]);
    assert_code(&refused, 1);
    assert!(
        stderr(&refused).contains("the source moved"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(service_version(&web), version, "nothing written");

    // A saved plan fixes its source and scope: flags that would change them conflict.
    let both = shoal(&["apply", &plan_path, "--stack", &stack]);
    assert!(
        stderr(&both).contains("cannot be used with"),
        "{}",
        stderr(&both)
    );
}

#[test]
fn a_new_commit_makes_a_saved_plan_stale() {
    let stack = stack_name("savedgit");
    let _guard = StackGuard::new(&[&stack]);
    let remote = GitRemote::new();
    remote.write(&format!("stacks/{stack}/stack.yml"), &stack_file(1));
    remote.push("one replica");
    let url = remote.url();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap().to_string();
    let plan_file = cache.path().join("plan.json");
    let plan_path = plan_file.to_str().unwrap().to_string();

    let planned = run(&[
        "plan",
        "--repo",
        &url,
        "--cache-dir",
        &cache_dir,
        "--out",
        &plan_path,
    ]);
    assert_code(&planned, 0);
    remote.write(&format!("stacks/{stack}/stack.yml"), &stack_file(2));
    remote.push("two replicas");
    let refused = shoal(&["apply", &plan_path, "--cache-dir", &cache_dir]);
    assert_code(&refused, 1);
    assert!(
        stderr(&refused).contains("the source moved"),
        "{}",
        stderr(&refused)
    );
    assert!(names("service", &stack).is_empty(), "nothing was created");

    // Planned again at the new commit, it applies.
    assert_code(
        &run(&[
            "plan",
            "--repo",
            &url,
            "--cache-dir",
            &cache_dir,
            "--out",
            &plan_path,
        ]),
        0,
    );
    assert_code(&shoal(&["apply", &plan_path, "--cache-dir", &cache_dir]), 0);
    assert_eq!(replicas(&format!("{stack}_web")), Some(2));
}
