//! Many swarms from one repository, for real: a repository with two
//! clusters, `local` (this machine's swarm, `unix:///var/run/docker.sock`)
//! and `remote` (the separate swarm of `scripts/remote-engine.sh up`,
//! reached over TLS with client certificates made here). Each is planned
//! against its own live state and its own facts; applying one leaves the
//! other untouched.
//!
//! Ignored unless asked for: `.ci/run` brings the remote engine up and
//! runs `cargo test --test clusters -- --ignored` in the same step as
//! `remote_engine`. The test that a repository cannot pick an engine the
//! operator did not allow needs no engine and always runs.
mod common;

use common::remote::*;
use common::*;
use serde_json::Value;

/// A policy that reports, for each stack, which cluster it is planned for
/// and on which nodes: a shared policy seeing each cluster's own facts.
const WHERE_POLICY: &str = r#"package shoal.where_planned

warn contains {"rule": "where_planned", "msg": msg} if {
	hosts := [n.hostname | some n in input.cluster.nodes]
	msg := sprintf("stack %s planned for cluster %s on nodes %v", [input.stack, input.cluster.name, hosts])
}
"#;

struct Fixture {
    repo: Repo,
    /// `local`'s own stack, `remote`'s own stack, the shared one both list.
    local: String,
    remote: String,
    shared: String,
    _certs: tempfile::TempDir,
    env: Vec<(String, String)>,
}

fn fixture(prefix: &str) -> Fixture {
    let local = stack_name(&format!("{prefix}l"));
    let remote = stack_name(&format!("{prefix}r"));
    let shared = stack_name(&format!("{prefix}s"));
    let repo = Repo::new();
    repo.write(
        "clusters/local/cluster.yml",
        &format!(
            "engine:\n  host: unix:///var/run/docker.sock\nstacks: [{shared}]\nenv:\n  REPLICAS: \"1\"\n"
        ),
    );
    repo.write(
        "clusters/remote/cluster.yml",
        &format!(
            "engine:\n  host: {}\nstacks: [{shared}]\nenv:\n  REPLICAS: \"2\"\n",
            tls_host()
        ),
    );
    let app = "services:\n  app:\n    image: busybox:1.36\n    command: [\"sleep\", \"3600\"]\n    deploy:\n      replicas: ${REPLICAS}\n";
    repo.write(&format!("clusters/local/stacks/{local}/stack.yml"), app);
    repo.write(&format!("clusters/remote/stacks/{remote}/stack.yml"), app);
    repo.write(&format!("stacks/{shared}/stack.yml"), app);
    repo.write("policies/where_planned.rego", WHERE_POLICY);
    let certs = cert_dir(true, false);
    // TLS for the `tcp://` host of `remote`, as for `-H`; `local` is a
    // unix socket, which TLS settings do not touch.
    let env = vec![
        // The operator allows the two hosts the repository names.
        (
            "SHOAL_ALLOW_HOSTS".to_string(),
            format!("unix:///var/run/docker.sock,{}", tls_host()),
        ),
        ("DOCKER_TLS_VERIFY".to_string(), "1".to_string()),
        (
            "DOCKER_CERT_PATH".to_string(),
            certs.path().display().to_string(),
        ),
    ];
    Fixture {
        repo,
        local,
        remote,
        shared,
        _certs: certs,
        env,
    }
}

impl Fixture {
    fn shoal(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec![args[0], "--repo", self.repo.path().to_str().unwrap()];
        all.extend(&args[1..]);
        if args[0] != "validate" {
            all.extend(["--resolve-image", "never"]);
        }
        shoal_with(&all, &self.env)
    }
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// The created services of one cluster document.
fn created_services(doc: &Value) -> Vec<String> {
    let mut v: Vec<String> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "service" && c["action"] == "create")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Whether something connects to `listener` within `wait` (the
/// connection is closed at once).
fn connected(listener: &std::net::TcpListener, wait: std::time::Duration) -> bool {
    listener.set_nonblocking(true).unwrap();
    wait_until(wait, || match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    })
}

/// A repository that names a host of its own (here a listener of this
/// test, standing for an attacker's engine) is refused before anything
/// connects to it, on plan and apply alike; once the operator allows that
/// exact host, shoal does go there.
#[test]
fn a_cluster_host_the_operator_did_not_allow_is_never_contacted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("tcp://{}", listener.local_addr().unwrap());
    let repo = Repo::new();
    repo.write(
        "clusters/prod/cluster.yml",
        &format!("engine:\n  host: {host}\n"),
    );
    repo.write(
        "clusters/prod/stacks/app/stack.yml",
        "services:\n  app:\n    image: busybox:1.36\n",
    );
    let dir = repo.path().to_str().unwrap();
    let refused =
        format!("clusters/prod/cluster.yml: engine.host: {host} is not an engine this run may use");
    for cmd in ["plan", "apply"] {
        let mut args = vec![cmd, "--repo", dir, "--cluster", "prod"];
        if cmd == "apply" {
            args.push("--auto-approve");
        }
        let o = shoal_env(&args, &[("SHOAL_ALLOW_HOSTS", "")]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains(&refused), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("--allow-host {host}")),
            "{}",
            stderr(&o)
        );
        assert!(!connected(&listener, std::time::Duration::ZERO), "{cmd}");
    }
    // Another host allowed is not this one.
    let o = shoal_env(
        &["plan", "--repo", dir, "--cluster", "prod"],
        &[(
            "SHOAL_ALLOW_HOSTS",
            "tcp://127.0.0.1:1,unix:///var/run/docker.sock",
        )],
    );
    assert_code(&o, 1);
    assert!(stderr(&o).contains(&refused), "{}", stderr(&o));
    assert!(!connected(&listener, std::time::Duration::ZERO));

    // Allowed by the operator: shoal connects (and fails, the listener
    // being no engine), by flag and by environment.
    for (args, env) in [
        (vec!["--allow-host", host.as_str()], vec![]),
        (vec![], vec![("SHOAL_ALLOW_HOSTS", host.as_str())]),
    ] {
        let mut all = vec!["plan", "--repo", dir, "--cluster", "prod"];
        all.extend(args);
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(&all)
            .envs(env)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            connected(&listener, std::time::Duration::from_secs(30)),
            "shoal never connected to the allowed host"
        );
        let o = child.wait_with_output().unwrap();
        assert!(!stderr(&o).contains(&refused), "{}", stderr(&o));
    }
}

#[test]
#[ignore = "needs scripts/remote-engine.sh up (run with --ignored, as .ci/run does)"]
fn all_clusters_plans_each_against_its_own_swarm_and_apply_touches_only_one() {
    check_engine();
    let f = fixture("mc");
    let _local_guard = StackGuard::new(&[&f.local, &f.shared]);
    let _remote_guards = [RemoteStack(f.remote.clone()), RemoteStack(f.shared.clone())];
    let local_host = docker(&["info", "--format", "{{.Name}}"]);

    // Without a cluster, shoal refuses and names the clusters.
    let o = f.shoal(&["plan"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o)
            .contains("describes several swarms (clusters: local, remote); pass --cluster NAME"),
        "{}",
        stderr(&o)
    );

    // --all-clusters plans both, each against its own live state and facts.
    let o = f.shoal(&["plan", "--all-clusters", "--json", "--detailed-exitcode"]);
    assert_code(&o, 2);
    let doc = json(&o);
    assert_eq!(doc["format_version"], 1);
    let clusters = doc["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2);
    assert_eq!(clusters[0]["cluster"], "local");
    assert_eq!(clusters[0]["endpoint"], "unix:///var/run/docker.sock");
    assert_eq!(clusters[1]["cluster"], "remote");
    assert_eq!(clusters[1]["endpoint"], format!("{} (TLS)", tls_host()));
    assert_eq!(
        created_services(&clusters[0]),
        [format!("{}_app", f.local), format!("{}_app", f.shared)]
    );
    assert_eq!(
        created_services(&clusters[1]),
        [format!("{}_app", f.remote), format!("{}_app", f.shared)]
    );
    for c in clusters {
        for change in c["changes"].as_array().unwrap() {
            assert_eq!(change["cluster"], c["cluster"], "{change}");
        }
    }
    assert_eq!(
        doc["summary"]["create"],
        clusters[0]["summary"]["create"].as_u64().unwrap()
            + clusters[1]["summary"]["create"].as_u64().unwrap()
    );
    // Each cluster's own facts: its name and its own nodes.
    let said = |c: &Value| -> String {
        c["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["message"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let local_said = said(&clusters[0]);
    let remote_said = said(&clusters[1]);
    assert!(
        local_said.contains(&format!(
            "stack {} planned for cluster local on nodes [\"{local_host}\"]",
            f.local
        )),
        "{local_said}"
    );
    assert!(
        remote_said.contains(&format!(
            "stack {} planned for cluster remote on nodes [\"shoal-re\"]",
            f.remote
        )),
        "{remote_said}"
    );
    // The cluster's env: 2 replicas on remote, 1 on local.
    let replicas_after = |c: &Value, svc: &str| {
        c["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ch| ch["name"] == svc)
            .and_then(|ch| {
                ch["diff"]
                    .as_array()?
                    .iter()
                    .find(|d| d["path"] == "Mode.Replicated.Replicas")
                    .map(|d| d["after"].clone())
            })
    };
    let shared_svc = format!("{}_app", f.shared);
    assert_eq!(replicas_after(&clusters[0], &shared_svc), Some(1.into()));
    assert_eq!(replicas_after(&clusters[1], &shared_svc), Some(2.into()));

    // Text output: a heading per cluster, then one line over all.
    let o = f.shoal(&["plan", "--all-clusters"]);
    assert_code(&o, 0);
    let text = stdout(&o);
    let local_at = text.find("# cluster local (unix:///var/run/docker.sock)");
    let remote_at = text.find(&format!("# cluster remote ({} (TLS))", tls_host()));
    assert!(
        matches!((local_at, remote_at), (Some(l), Some(r)) if l < r),
        "{text}"
    );
    assert!(
        text.contains("All clusters: 8 to create, 0 to update, 0 to delete (2 clusters)."),
        "{text}"
    );

    // Apply only `remote`: it converges there; the local swarm is untouched.
    let o = f.shoal(&["apply", "--cluster", "remote", "--auto-approve"]);
    assert_code(&o, 0);
    assert_eq!(remote_replicas(&format!("{}_app", f.remote)), Some(2));
    assert_eq!(remote_replicas(&shared_svc), Some(2));
    for stack in [&f.local, &f.remote, &f.shared] {
        assert!(
            !exists("service", &format!("{stack}_app")),
            "apply --cluster remote wrote {stack} to the local swarm"
        );
    }
    // Remote is done, local still has everything to do: exit codes fold.
    assert_code(
        &f.shoal(&["plan", "--cluster", "remote", "--detailed-exitcode"]),
        0,
    );
    let o = f.shoal(&["plan", "--all-clusters", "--json", "--detailed-exitcode"]);
    assert_code(&o, 2);
    let doc = json(&o);
    assert_eq!(doc["clusters"][0]["summary"]["create"], 4);
    assert_eq!(doc["clusters"][1]["summary"]["create"], 0);

    // Both, in the order given; then nothing is left anywhere.
    let o = f.shoal(&[
        "apply",
        "--cluster",
        "local",
        "--cluster",
        "remote",
        "--auto-approve",
    ]);
    assert_code(&o, 0);
    assert_eq!(replicas(&format!("{}_app", f.local)), Some(1));
    assert_eq!(replicas(&shared_svc), Some(1));
    assert!(
        !exists("service", &format!("{}_app", f.remote)),
        "remote's own stack reached the local swarm"
    );
    assert_code(
        &f.shoal(&["plan", "--all-clusters", "--detailed-exitcode"]),
        0,
    );
}

#[test]
#[ignore = "needs scripts/remote-engine.sh up (run with --ignored, as .ci/run does)"]
fn a_failing_cluster_fails_the_run_and_blocks_every_apply() {
    check_engine();
    let f = fixture("mcf");
    let _local_guard = StackGuard::new(&[&f.local, &f.shared]);
    let _remote_guards = [RemoteStack(f.remote.clone()), RemoteStack(f.shared.clone())];
    // Without client certificates the remote engine refuses shoal.
    let no_certs = tempfile::tempdir().unwrap();
    std::fs::copy(
        f._certs.path().join("ca.pem"),
        no_certs.path().join("ca.pem"),
    )
    .unwrap();
    let env = vec![
        // The operator allows the two hosts the repository names.
        (
            "SHOAL_ALLOW_HOSTS".to_string(),
            format!("unix:///var/run/docker.sock,{}", tls_host()),
        ),
        ("DOCKER_TLS_VERIFY".to_string(), "1".to_string()),
        (
            "DOCKER_CERT_PATH".to_string(),
            no_certs.path().display().to_string(),
        ),
    ];
    let run = |args: &[&str]| {
        let mut all = vec![args[0], "--repo", f.repo.path().to_str().unwrap()];
        all.extend(&args[1..]);
        all.extend(["--resolve-image", "never"]);
        shoal_with(&all, &env)
    };
    let o = run(&["plan", "--all-clusters", "--detailed-exitcode"]);
    assert_code(&o, 1);
    assert!(
        stdout(&o).contains("# cluster local") && stdout(&o).contains("failed: remote"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("error: cluster remote:"),
        "{}",
        stderr(&o)
    );
    let o = run(&["apply", "--all-clusters", "--auto-approve"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("nothing was changed on any cluster"),
        "{}",
        stderr(&o)
    );
    assert!(
        !exists("service", &format!("{}_app", f.local)),
        "a failing cluster must stop the apply of every cluster"
    );
    // -H with --cluster: the cluster names its engine.
    let o = f.shoal(&[
        "plan",
        "--cluster",
        "local",
        "-H",
        "unix:///var/run/docker.sock",
    ]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("leave -H/--context out"),
        "{}",
        stderr(&o)
    );
}

/// Removes configs of the local swarm when dropped (an agent's lease and
/// state records).
struct LocalConfigs(Vec<String>);

impl Drop for LocalConfigs {
    fn drop(&mut self) {
        for name in &self.0 {
            docker_quiet(&["config", "rm", name]);
        }
    }
}

#[test]
#[ignore = "needs scripts/remote-engine.sh up (run with --ignored, as .ci/run does)"]
fn the_agent_of_one_cluster_reconciles_only_that_clusters_stacks() {
    use common::agent::{stack_outcome, Agent, GitRemote};
    use std::time::Duration;
    check_engine();
    let f = fixture("mca");
    let _local_guard = StackGuard::new(&[&f.local, &f.shared, &f.remote]);
    let _remote_guards = [RemoteStack(f.remote.clone()), RemoteStack(f.shared.clone())];
    let lease = format!("shoal-lease-{}", f.local);
    let _configs = LocalConfigs(
        [&f.local, &f.shared, &f.remote]
            .iter()
            .map(|s| format!("shoal-state-{s}"))
            .chain([lease.clone()])
            .collect(),
    );
    // The same repository, as the agent reads it: from git.
    let remote = GitRemote::new();
    for rel in [
        "clusters/local/cluster.yml".to_string(),
        "clusters/remote/cluster.yml".to_string(),
        format!("clusters/local/stacks/{}/stack.yml", f.local),
        format!("clusters/remote/stacks/{}/stack.yml", f.remote),
        format!("stacks/{}/stack.yml", f.shared),
    ] {
        remote.write(
            &rel,
            &std::fs::read_to_string(f.repo.path().join(&rel)).unwrap(),
        );
    }
    remote.push("two clusters");
    // On this swarm's manager: `--cluster local`, the local socket (the
    // agent never uses cluster.yml's engine, and holds no TLS material).
    // Never `--prune` here: the swarm is shared with other tests.
    let agent = Agent::start(&remote, &lease, "300s", &["--cluster", "local"]);
    poll(
        "the local cluster's stacks applied",
        Duration::from_secs(90),
        || {
            (stack_outcome(&agent, &f.local).is_some()
                && stack_outcome(&agent, &f.shared).is_some())
            .then_some(())
        },
    );
    assert_eq!(
        replicas(&format!("{}_app", f.local)),
        Some(1),
        "{}",
        agent.logs()
    );
    assert_eq!(
        replicas(&format!("{}_app", f.shared)),
        Some(1),
        "{}",
        agent.logs()
    );
    assert!(
        !exists("service", &format!("{}_app", f.remote)),
        "the agent of `local` deployed `remote`'s own stack\n{}",
        agent.logs()
    );
    assert_eq!(
        remote_docker(&[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("name={}", f.shared)
        ]),
        "",
        "the agent of `local` wrote to the remote swarm"
    );
}
