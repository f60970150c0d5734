//! Parity with `docker stack deploy`, against the real swarm: a stack
//! deployed by docker plans as no change, a stack applied by shoal equals
//! the one docker deploys, and apply writes only what differs.
mod common;

use common::*;
use std::time::Duration;

const RICH: &str = include_str!("fixtures/parity/rich.yml");

/// Ports the fixture publishes; tests running at once shift them by an
/// offset of their own (two stacks cannot publish the same port).
const PORTS: [u64; 2] = [18080, 18443];

/// The rich fixture with its published ports shifted by `offset`.
fn rich_yaml(offset: u64) -> String {
    let mut yaml = RICH.to_string();
    for port in PORTS {
        yaml = yaml.replace(&port.to_string(), &(port + offset).to_string());
    }
    yaml
}

/// A repository holding the rich fixture as `stacks/<stack>/stack.yml`.
fn rich_repo(stack: &str, offset: u64) -> Repo {
    rich_repo_with(stack, &rich_yaml(offset))
}

fn rich_repo_with(stack: &str, yaml: &str) -> Repo {
    let repo = Repo::new();
    repo.stack(stack, yaml);
    for f in ["web.env", "app.conf", "api_key.txt"] {
        let content = std::fs::read_to_string(format!(
            "{}/tests/fixtures/parity/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        repo.write(&format!("stacks/{stack}/{f}"), &content);
    }
    repo
}

fn stack_file(repo: &Repo, stack: &str) -> std::path::PathBuf {
    repo.path().join(format!("stacks/{stack}/stack.yml"))
}

#[test]
fn stack_deployed_by_docker_plans_as_no_change() {
    let stack = stack_name("par");
    let _guard = StackGuard::new(&[&stack]);
    let repo = rich_repo(&stack, 20);
    docker_stack_deploy(&stack_file(&repo, &stack), &stack);

    let repo_arg = repo.path().to_str().unwrap();
    let out = shoal(&["plan", "--repo", repo_arg, "--detailed-exitcode"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));

    let out = shoal(&["plan", "--repo", repo_arg, "--json"]);
    assert_code(&out, 0);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["create"], 0);
    assert_eq!(doc["summary"]["update"], 0);
    assert_eq!(doc["summary"]["delete"], 0);
}

/// Replace the stack name in every string so two stacks' specs compare.
fn renamed(v: &serde_json::Value, from: &str, to: &str) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => serde_json::Value::String(s.replace(from, to)),
        serde_json::Value::Array(a) => a.iter().map(|x| renamed(x, from, to)).collect(),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, x)| (k.replace(from, to), renamed(x, from, to)))
            .collect(),
        other => other.clone(),
    }
}

/// Config/secret/network IDs differ between two stacks by nature: drop the
/// config and secret IDs (the names stay) and name networks by name.
fn without_ids(mut spec: serde_json::Value) -> serde_json::Value {
    if let Some(nets) = spec
        .pointer_mut("/TaskTemplate/Networks")
        .and_then(|v| v.as_array_mut())
    {
        for net in nets {
            let id = net["Target"].as_str().unwrap_or_default().to_string();
            let name = docker(&["network", "inspect", "--format", "{{.Name}}", &id]);
            net["Target"] = name.trim().into();
        }
    }
    for key in ["Configs", "Secrets"] {
        if let Some(refs) = spec
            .pointer_mut(&format!("/TaskTemplate/ContainerSpec/{key}"))
            .and_then(|v| v.as_array_mut())
        {
            for r in refs {
                if let Some(o) = r.as_object_mut() {
                    o.remove("ConfigID");
                    o.remove("SecretID");
                }
            }
        }
    }
    spec
}

#[test]
fn shoal_apply_creates_what_docker_stack_deploy_creates() {
    let by_docker = stack_name("pd");
    let by_shoal = stack_name("ps");
    let _guard = StackGuard::new(&[&by_docker, &by_shoal]);
    let docker_repo = rich_repo(&by_docker, 0);
    docker_stack_deploy(&stack_file(&docker_repo, &by_docker), &by_docker);

    let repo = rich_repo(&by_shoal, 10);
    let out = shoal(&[
        "apply",
        "--repo",
        repo.path().to_str().unwrap(),
        "--auto-approve",
        "--no-wait",
    ]);
    assert_code(&out, 0);

    for kind in ["service", "config", "secret", "network"] {
        let a = names(kind, &by_docker);
        let b: Vec<String> = names(kind, &by_shoal)
            .iter()
            .map(|n| n.replace(&by_shoal, &by_docker))
            .collect();
        assert_eq!(a, b, "{kind} names");
    }
    for svc in ["web", "worker", "plain"] {
        let a = service_spec(&format!("{by_docker}_{svc}")).unwrap()["Spec"].clone();
        let mut b = service_spec(&format!("{by_shoal}_{svc}")).unwrap()["Spec"].clone();
        if let Some(ports) = b
            .pointer_mut("/EndpointSpec/Ports")
            .and_then(|p| p.as_array_mut())
        {
            for port in ports {
                if let Some(published) = port["PublishedPort"].as_u64() {
                    port["PublishedPort"] = (published - 10).into();
                }
            }
        }
        assert_eq!(
            without_ids(a),
            renamed(&without_ids(b), &by_shoal, &by_docker),
            "service {svc} differs between docker stack deploy and shoal apply"
        );
    }

    // Switching back: `docker stack deploy` over the shoal-applied stack
    // changes nothing of substance, so shoal still plans no change.
    docker_stack_deploy(&stack_file(&repo, &by_shoal), &by_shoal);
    let out = shoal(&[
        "plan",
        "--repo",
        repo.path().to_str().unwrap(),
        "--stack",
        &by_shoal,
        "--detailed-exitcode",
    ]);
    assert_code(&out, 0);
}

#[test]
fn apply_writes_only_what_differs_and_heals_hand_made_drift() {
    let stack = stack_name("pw");
    let _guard = StackGuard::new(&[&stack]);
    let repo = rich_repo(&stack, 30);
    let repo_arg = repo.path().to_str().unwrap().to_string();
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "--repo", &repo_arg, "--auto-approve"];
        args.extend_from_slice(extra);
        shoal(&args)
    };
    assert_code(&apply(&["--timeout", "60s"]), 0);

    let web = format!("{stack}_web");
    let plain = format!("{stack}_plain");
    let before = (service_version(&web), service_version(&plain));
    let out = apply(&[]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));
    assert_eq!(
        (service_version(&web), service_version(&plain)),
        before,
        "a no-change apply moved a version index"
    );

    // Hand-made drift: git wins.
    docker(&["service", "scale", "--detach", &format!("{plain}=3")]);
    let out = shoal(&["plan", "--repo", &repo_arg, "--detailed-exitcode"]);
    assert_code(&out, 2);
    let text = stdout(&out);
    assert!(text.contains(&format!("~ service {plain}")), "{text}");
    assert!(text.contains("Mode.Replicated.Replicas: 3 -> 1"), "{text}");
    assert!(
        text.contains("Plan: 0 to create, 1 to update, 0 to delete."),
        "{text}"
    );
    let web_version = service_version(&web);
    assert_code(&apply(&["--timeout", "60s"]), 0);
    assert_eq!(replicas(&plain), Some(1));
    assert_eq!(service_version(&web), web_version, "web was rewritten");

    // A service removed from the file is deleted; nothing else moves.
    let full = rich_yaml(30);
    let yaml = full.replace(
        "  plain:\n    # Fully qualified: docker sends the familiar alpine:3.20.\n    image: docker.io/library/alpine:3.20\n    command: sleep 3600\n",
        "",
    );
    assert_ne!(yaml, full);
    repo.stack(&stack, &yaml);
    let out = apply(&["--timeout", "60s"]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains(&format!("- service {plain}")),
        "{}",
        stdout(&out)
    );
    poll("plain removed", Duration::from_secs(30), || {
        service_spec(&plain).is_none().then_some(())
    });
    assert_eq!(service_version(&web), web_version, "web was rewritten");
}

#[test]
fn a_removed_stack_folder_is_deleted_only_with_prune() {
    let stack = stack_name("pp");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    repo.stack(
        &stack,
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    command: sleep 3600\n",
    );
    let repo_arg = repo.path().to_str().unwrap().to_string();
    assert_code(
        &shoal(&[
            "apply",
            "--repo",
            &repo_arg,
            "--auto-approve",
            "--timeout",
            "60s",
        ]),
        0,
    );
    repo.remove(&format!("stacks/{stack}"));
    // Another stack keeps the repository non-empty.
    let other = stack_name("pq");
    let _guard2 = StackGuard::new(&[&other]);
    repo.stack(
        &other,
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    command: sleep 3600\n",
    );
    let out = shoal(&["plan", "--repo", &repo_arg, "--stack", &other]);
    assert_code(&out, 0);
    let out = shoal(&["plan", "--repo", &repo_arg]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("--prune"), "{}", stdout(&out));
    assert!(service_spec(&format!("{stack}_app")).is_some());

    let out = shoal(&["plan", "--repo", &repo_arg, "--prune", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let deletes: Vec<&str> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "delete")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(deletes.contains(&format!("{stack}_app").as_str()), "{doc}");
    assert!(
        deletes.contains(&format!("{stack}_default").as_str()),
        "{doc}"
    );
}
