//! The Steedos example starts in its documented order on the real swarm
//! (stand-in images): MongoDB healthy -> mongodb-init completed -> Steedos
//! healthy -> Traefik, with Redis and MinIO in the first wave.
mod common;

use common::*;
use std::time::SystemTime;

fn created(service: &str) -> SystemTime {
    let spec = service_spec(service).unwrap_or_else(|| panic!("{service} missing"));
    let t: humantime::Timestamp = spec["CreatedAt"].as_str().unwrap().parse().unwrap();
    t.into()
}

#[test]
fn the_steedos_example_starts_mongodb_then_init_then_steedos_then_traefik() {
    let (repo, key) = steedos_example();
    let stack = stack_name("rost");
    let _guard = StackGuard::new(&[&stack]);
    // The example under a test name, Traefik on a free port.
    let yml = std::fs::read_to_string(repo.path().join("stacks/steedos/stack.yml")).unwrap();
    let port = common::agent::free_port();
    std::fs::rename(
        repo.path().join("stacks/steedos"),
        repo.path().join(format!("stacks/{stack}")),
    )
    .unwrap();
    repo.stack(&stack, &yml.replace("\"80:80\"", &format!("\"{port}:80\"")));
    let node = docker(&["info", "--format", "{{.Name}}"]);
    let out = shoal_env(
        &[
            "apply",
            "--repo",
            repo.path().to_str().unwrap(),
            "--stack",
            &stack,
            "--auto-approve",
            "--resolve-image",
            "never",
            "--timeout",
            "3m",
        ],
        &[
            ("SHOAL_AGE_KEY_FILE", key.as_str()),
            ("DATA_NODE", node.as_str()),
        ],
    );
    assert_code(&out, 0);
    let text = stdout(&out);
    for waiting in [
        format!("waiting for {stack}_mongodb: 0/1 healthy"),
        format!("waiting for {stack}_mongodb-init: 0/1 completed"),
        format!("waiting for {stack}_steedos: 0/2 healthy"),
    ] {
        assert!(text.contains(&waiting), "no `{waiting}` in:\n{text}");
    }
    let s = |name: &str| created(&format!("{stack}_{name}"));
    assert!(s("mongodb") < s("mongodb-init"), "init before mongodb");
    assert!(s("mongodb-init") < s("steedos"), "steedos before init");
    assert!(s("steedos") < s("traefik"), "traefik before steedos");
    for first in ["redis", "minio"] {
        let gap = s(first)
            .duration_since(s("mongodb"))
            .unwrap_or_else(|e| e.duration());
        assert!(gap.as_secs() < 3, "{first} waited {gap:?}");
    }
}
