//! The agent survives a Docker Engine restart: it keeps running, reports
//! the outage, and recovers by itself. Disruptive (it stops dockerd for
//! every test on the machine), so it is ignored unless asked for with
//! `--ignored`, as a step of its own in .ci/run.
mod common;

use common::agent::*;
use common::*;
use std::process::Command;
use std::time::Duration;

fn dockerd_pid() -> Option<String> {
    let out = Command::new("pidof").arg("dockerd").output().ok()?;
    let pids = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Only the host's engine (a two-node worker runs its own dockerd).
    pids.split_whitespace()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .map(|c| !c.contains("shoal-n2"))
                .unwrap_or(false)
        })
        .map(str::to_string)
}

fn engine_up() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "active")
        .unwrap_or(false)
}

#[test]
#[ignore = "stops and starts dockerd: cargo test --test agent_engine_restart -- --ignored"]
fn agent_survives_an_engine_restart() {
    let f = AppStack::pushed("gr");
    let (stack, svc, remote) = (&f.stack, &f.svc, &f.remote);
    let mut agent = Agent::start(remote, &f.lease, "1s", &[]);
    poll("stack applied", Duration::from_secs(30), || {
        (replicas(svc) == Some(1)).then_some(())
    });

    // Stop the engine.
    let pid = dockerd_pid().expect("dockerd pid");
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    poll("dockerd stopped", Duration::from_secs(60), || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    // The agent keeps running and says the engine is gone.
    poll(
        "outage reported in /status",
        Duration::from_secs(20),
        || {
            let status = agent.status();
            status["last_error"].as_str().map(str::to_string)
        },
    );
    assert_eq!(
        agent.child.try_wait().unwrap(),
        None,
        "agent died with the engine"
    );

    // Start it again, the way .ci/run does.
    Command::new("sh")
        .args([
            "-c",
            "setsid nohup /usr/sbin/dockerd >/tmp/dockerd-restart.log 2>&1 &",
        ])
        .status()
        .unwrap();
    poll("engine back", Duration::from_secs(90), || {
        engine_up().then_some(())
    });

    // A push after the outage applies without restarting the agent.
    remote.write(&format!("stacks/{stack}/stack.yml"), &app_stack(2));
    remote.push("scale to 2");
    poll("recovered and applied", Duration::from_secs(60), || {
        (replicas(svc) == Some(2)).then_some(())
    });
    poll("error cleared", Duration::from_secs(30), || {
        agent.status()["last_error"].is_null().then_some(())
    });
    let (code, _) = http(agent.port, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(code, 200);
}
