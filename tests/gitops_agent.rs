//! `shoal agent` end to end: a real bare git repository served over
//! `file://`, the real swarm, the agent as a separate process.
mod common;

use common::agent::*;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn pushes_are_applied_by_polling_and_by_webhook() {
    let f = AppStack::pushed("ga");
    let (stack, svc, lease, remote) = (&f.stack, &f.svc, &f.lease, &f.remote);

    // Polling: a new stack, then replicas 3, live within interval + 5 s.
    {
        let agent = Agent::start(remote, lease, "2s", &[]);
        poll("new stack applied", Duration::from_secs(30), || {
            (replicas(svc) == Some(1)).then_some(())
        });
        poll("healthz 200", Duration::from_secs(10), || {
            let (code, _) = http(agent.port, "GET", "/healthz", &[], b"")?;
            (code == 200).then_some(())
        });
        remote.write(&format!("stacks/{stack}/stack.yml"), &app_stack(3));
        let pushed = Instant::now();
        remote.push("scale app to 3");
        poll("replicas 3 by polling", Duration::from_secs(2 + 5), || {
            (replicas(svc) == Some(3)).then_some(())
        });
        eprintln!("poll push-to-live: {:?}", pushed.elapsed());
    }

    // Webhook: with a 300 s interval, a signed webhook makes a push live
    // within 3 s; a bad signature gets 401 and changes nothing.
    let agent = Agent::start(remote, lease, "300s", &[]);
    poll("first reconcile", Duration::from_secs(30), || {
        stack_outcome(&agent, stack)
    });
    remote.write(&format!("stacks/{stack}/stack.yml"), &app_stack(2));
    remote.push("scale app to 2");
    assert_eq!(webhook(agent.port, "sha256=0000"), 401);
    assert_eq!(webhook(agent.port, ""), 401);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        replicas(svc),
        Some(3),
        "a rejected webhook changed the swarm"
    );
    let pushed = Instant::now();
    assert_eq!(signed_webhook(agent.port), 202);
    poll("replicas 2 by webhook", Duration::from_secs(3), || {
        (replicas(svc) == Some(2)).then_some(())
    });
    eprintln!("webhook push-to-live: {:?}", pushed.elapsed());
}

#[test]
fn hand_made_drift_is_healed_or_reported() {
    let f = AppStack::pushed("gd");
    let (stack, svc, lease, remote) = (&f.stack, &f.svc, &f.lease, &f.remote);
    {
        let agent = Agent::start(remote, lease, "300s", &[]);
        poll("stack applied", Duration::from_secs(30), || {
            (replicas(svc) == Some(1)).then_some(())
        });
        poll("first pass recorded", Duration::from_secs(10), || {
            stack_outcome(&agent, stack)
        });
        docker(&["service", "scale", "--detach", &format!("{svc}=3")]);
        let scaled = Instant::now();
        // The event stream, not the 300 s poll, brings it back.
        poll("drift healed", Duration::from_secs(10), || {
            (replicas(svc) == Some(1)).then_some(())
        });
        eprintln!("drift healed in {:?}", scaled.elapsed());
        // The spec is rewritten before the agent's convergence wait ends;
        // the pass counts the correction after that wait.
        assert!(
            wait_until(Duration::from_secs(30), || agent
                .metrics()
                .contains("shoal_drift_corrections_total 1")),
            "{}",
            agent.metrics()
        );
    }
    let agent = Agent::start(remote, lease, "300s", &["--no-self-heal"]);
    poll("first pass recorded", Duration::from_secs(30), || {
        stack_outcome(&agent, stack)
    });
    docker(&["service", "scale", "--detach", &format!("{svc}=2")]);
    poll("drift reported", Duration::from_secs(10), || {
        (stack_outcome(&agent, stack).as_deref() == Some("drift")).then_some(())
    });
    assert_eq!(replicas(svc), Some(2), "--no-self-heal changed the swarm");
}

#[test]
fn a_broken_push_changes_nothing_and_the_next_good_push_applies() {
    let stack = stack_name("gb");
    let other = stack_name("gc");
    let _guard = StackGuard::new(&[&stack, &other]);
    let remote = GitRemote::new();
    remote.write(&format!("stacks/{stack}/stack.yml"), &app_stack(1));
    remote.write(&format!("stacks/{other}/stack.yml"), &app_stack(1));
    remote.push("two stacks");
    let lease = format!("shoal-lease-{stack}");
    let svc = format!("{stack}_app");
    let other_svc = format!("{other}_app");
    let agent = Agent::start(&remote, &lease, "1s", &[]);
    poll("stacks applied", Duration::from_secs(30), || {
        (replicas(&svc) == Some(1) && replicas(&other_svc) == Some(1)).then_some(())
    });
    let version = service_version(&svc);

    // A broken file for one stack, a real change for the other.
    remote.write(
        &format!("stacks/{stack}/stack.yml"),
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    deploy:\n      replicas: [\n",
    );
    remote.write(&format!("stacks/{other}/stack.yml"), &app_stack(2));
    remote.push("break one stack");
    poll("load error reported", Duration::from_secs(15), || {
        (stack_outcome(&agent, &stack).as_deref() == Some("load-error")).then_some(())
    });
    poll(
        "the other stack still applies",
        Duration::from_secs(15),
        || (replicas(&other_svc) == Some(2)).then_some(()),
    );
    let status = agent.status();
    let error = status["stacks"][&stack]["error"].as_str().unwrap_or("");
    assert!(error.contains("stack.yml"), "{status}");
    assert!(
        agent.metrics().contains(&format!(
            "shoal_stack_status{{stack=\"{stack}\",status=\"load-error\"}} 1"
        )),
        "{}",
        agent.metrics()
    );
    assert_eq!(
        service_version(&svc),
        version,
        "the broken stack was touched"
    );
    assert!(service_spec(&svc).is_some(), "the broken stack was deleted");

    // A README-only commit writes nothing.
    remote.write(&format!("stacks/{stack}/stack.yml"), &app_stack(1));
    remote.push("fix the stack");
    poll("fixed stack synced", Duration::from_secs(15), || {
        (stack_outcome(&agent, &stack).as_deref() == Some("no-change")
            || stack_outcome(&agent, &stack).as_deref() == Some("ok"))
        .then_some(())
    });
    let versions = (service_version(&svc), service_version(&other_svc));
    remote.write("README.md", "stacks, documented\n");
    remote.push("docs only");
    let head = poll("README commit seen", Duration::from_secs(15), || {
        let status = agent.status();
        let commit = status["stacks"][&stack]["commit"].as_str()?.to_string();
        let out = Command::new("git")
            .current_dir(&remote.work)
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()?;
        (String::from_utf8_lossy(&out.stdout).trim() == commit).then_some(commit)
    });
    assert!(!head.is_empty());
    assert_eq!(
        (service_version(&svc), service_version(&other_svc)),
        versions,
        "a README-only commit wrote to a service"
    );
    // The broken file was reported in the log, naming the file.
    let logs = agent.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains(&stack) && l.contains("stack.yml")),
        "{logs}"
    );
}

#[test]
fn two_agents_one_applier_and_takeover() {
    let f = AppStack::pushed("gl");
    let (stack, svc, lease, remote) = (&f.stack, &f.svc, &f.lease, &f.remote);
    let a = Agent::start(remote, lease, "1s", &[]);
    let b = Agent::start(remote, lease, "1s", &[]);
    poll("stack applied", Duration::from_secs(30), || {
        (replicas(svc) == Some(1)).then_some(())
    });
    let roles = || {
        (
            a.status()["role"].as_str().unwrap_or("").to_string(),
            b.status()["role"].as_str().unwrap_or("").to_string(),
        )
    };
    let (ra, rb) = poll("one leader, one standby", Duration::from_secs(15), || {
        let (ra, rb) = roles();
        let mut sorted = [ra.clone(), rb.clone()];
        sorted.sort();
        (sorted == ["leader", "standby"]).then_some((ra, rb))
    });
    assert_ne!(ra, rb);
    let (leader, standby) = if ra == "leader" { (a, b) } else { (b, a) };

    // Kill the leader (no clean release): the standby takes over and applies.
    drop(leader);
    remote.write(&format!("stacks/{stack}/stack.yml"), &app_stack(2));
    remote.push("scale to 2");
    poll("standby took over", Duration::from_secs(20), || {
        (standby.status()["role"] == "leader").then_some(())
    });
    poll("new leader applies", Duration::from_secs(20), || {
        (replicas(svc) == Some(2)).then_some(())
    });
}

#[test]
fn sigterm_exits_zero_quickly_and_an_unreachable_remote_is_survived() {
    let f = AppStack::pushed("gs");
    let (stack, svc, lease, remote) = (&f.stack, &f.svc, &f.lease, &f.remote);
    let mut agent = Agent::start(remote, lease, "1s", &[]);
    poll("stack applied", Duration::from_secs(30), || {
        (replicas(svc) == Some(1)).then_some(())
    });

    // The remote goes away: the agent keeps running and reports it.
    let moved = remote.bare.with_extension("moved");
    std::fs::rename(&remote.bare, &moved).unwrap();
    poll("fetch errors counted", Duration::from_secs(15), || {
        let m = agent.metrics();
        let line = m
            .lines()
            .find(|l| l.starts_with("shoal_git_fetch_errors_total"))?
            .to_string();
        (!line.ends_with(" 0")).then_some(())
    });
    assert_eq!(agent.child.try_wait().unwrap(), None, "agent died");
    // It comes back: the next push applies.
    std::fs::rename(&moved, &remote.bare).unwrap();
    remote.write(&format!("stacks/{stack}/stack.yml"), &app_stack(2));
    remote.push("scale to 2");
    poll("recovered", Duration::from_secs(15), || {
        (replicas(svc) == Some(2)).then_some(())
    });

    let started = Instant::now();
    agent.signal("-TERM");
    let status = poll("agent exit", Duration::from_secs(10), || {
        agent.child.try_wait().unwrap()
    });
    assert!(status.success(), "exit status {status:?}\n{}", agent.logs());
    eprintln!("SIGTERM to exit: {:?}", started.elapsed());
}

#[test]
fn plan_and_apply_read_a_git_url_and_name_the_commit() {
    let stack = stack_name("gu");
    let _guard = StackGuard::new(&[&stack]);
    let remote = GitRemote::new();
    remote.write(&format!("stacks/{stack}/stack.yml"), &app_stack(1));
    remote.push("scale app to 1");
    let cache = tempfile::tempdir().unwrap();
    let url = remote.url();
    let cache_dir = cache.path().to_str().unwrap();
    let args = |cmd: &[&str]| {
        let mut a = cmd.to_vec();
        a.extend(["--repo", &url, "--ref", "main", "--cache-dir", cache_dir]);
        shoal(&a)
    };
    let head = {
        let out = Command::new("git")
            .current_dir(&remote.work)
            .args(["rev-parse", "--short=7", "HEAD"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let out = args(&["plan"]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains(&format!("stacks at {head} \"scale app to 1\"")),
        "{}",
        stdout(&out)
    );
    let out = args(&["apply", "--auto-approve", "--timeout", "60s"]);
    assert_code(&out, 0);
    assert_eq!(replicas(&format!("{stack}_app")), Some(1));
    let out = args(&["plan", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["commit"]["short"], head.as_str());
    assert_eq!(doc["summary"]["create"], 0);
}
