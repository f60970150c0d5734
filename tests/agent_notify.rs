//! The agent tells people, on the real swarm: a loopback receiver stands in
//! for a generic webhook (HMAC-signed JSON), Slack, Discord, ntfy and
//! GitHub's commit status API; each body is checked against what the
//! service documents. A broken commit polled many times is told once, its
//! fix is told as recovered, and a notification target that is down does
//! not keep the agent from converging.
mod common;

use common::agent::*;
use common::receiver::Receiver;
use common::*;
use std::time::{Duration, Instant};

const HMAC_KEY: &str = "notify-hmac-key";

fn head(remote: &GitRemote) -> String {
    let o = std::process::Command::new("git")
        .current_dir(&remote.work)
        .args(["rev-parse", "HEAD"])
        .output()
        .expect("git");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn generic_events(r: &Receiver, event: &str, commit: &str) -> Vec<serde_json::Value> {
    r.on("/hook")
        .iter()
        .map(|x| x.json())
        .filter(|d| d["event"] == event && d["commit"]["id"] == commit)
        .collect()
}

fn reconciles(agent: &Agent, outcome: &str) -> u64 {
    let needle = format!("shoal_reconciles_total{{outcome=\"{outcome}\"}} ");
    agent
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[test]
fn the_agent_notifies_once_per_failure_and_sets_commit_statuses() {
    let app = AppStack::pushed("notify");
    let r = Receiver::start();
    let files = tempfile::tempdir().unwrap();
    let key = files.path().join("hmac");
    std::fs::write(&key, HMAC_KEY).unwrap();
    let token = files.path().join("token");
    std::fs::write(&token, "gh-token-123\n").unwrap();
    // Nothing listens on this port: a target that is down.
    let dead = format!("generic+http://127.0.0.1:{}/down", free_port());
    let generic = r.url("generic+http", "/hook");
    let slack = r.url("slack+http", "/slack/T/B/X");
    let discord = r.url("discord+http", "/discord/1/tok");
    let ntfy = r.url("ntfy+http", "/ntfy/ops");
    let api = r.url("http", "/gh");
    let agent = Agent::start(
        &app.remote,
        &app.lease,
        "1s",
        &[
            "--notify",
            &generic,
            "--notify",
            &slack,
            "--notify",
            &discord,
            "--notify",
            &ntfy,
            "--notify",
            &dead,
            "--notify-secret-file",
            key.to_str().unwrap(),
            "--commit-status",
            "github",
            "--commit-status-api",
            &api,
            "--commit-status-repo",
            "ops/stacks",
            "--commit-status-token-file",
            token.to_str().unwrap(),
        ],
    );
    let first = head(&app.remote);

    // The first sync: every target hears of it in its own format.
    poll(
        "synced on the generic target",
        Duration::from_secs(60),
        || generic_events(&r, "synced", &first).pop(),
    );
    let hook = r.on("/hook").into_iter().next().unwrap();
    assert_eq!(
        hook.header("X-Shoal-Signature-256"),
        Some(github_signature(&hook.body, HMAC_KEY).as_str()),
        "the generic body is signed with the HMAC key"
    );
    let doc = hook.json();
    assert_eq!(doc["stacks"], serde_json::json!([app.stack]));
    assert_eq!(doc["commit"]["short"], first[..7]);
    assert_eq!(doc["commit"]["subject"], "add stack");
    assert_eq!(doc["summary"]["create"], 2, "the network and the service");
    let slack_text = poll("slack", Duration::from_secs(30), || {
        r.on("/slack/T/B/X")
            .first()
            .map(|x| x.json()["text"].clone())
    });
    assert!(
        slack_text.as_str().unwrap().starts_with(&format!(
            "*shoal: {} synced*\nCommit {}",
            app.stack,
            &first[..7]
        )),
        "{slack_text}"
    );
    let discord_doc = poll("discord", Duration::from_secs(30), || {
        r.on("/discord/1/tok").first().map(|x| x.json())
    });
    assert!(discord_doc["content"]
        .as_str()
        .unwrap()
        .starts_with(&format!("**shoal: {} synced**", app.stack)));
    let ntfy_msg = poll("ntfy", Duration::from_secs(30), || {
        r.on("/ntfy/ops").first().cloned()
    });
    assert_eq!(
        ntfy_msg.header("Title"),
        Some(format!("shoal: {} synced", app.stack).as_str())
    );
    assert!(String::from_utf8_lossy(&ntfy_msg.body).starts_with(&format!("Commit {}", &first[..7])));
    // GitHub's commit status API: pending while applying, then success.
    let statuses_path = format!("/gh/repos/ops/stacks/statuses/{first}");
    let states = poll("two commit statuses", Duration::from_secs(30), || {
        let s: Vec<serde_json::Value> = r.on(&statuses_path).iter().map(|x| x.json()).collect();
        (s.len() >= 2).then_some(s)
    });
    assert_eq!(states[0]["state"], "pending");
    assert_eq!(states[1]["state"], "success");
    assert_eq!(states[1]["context"], format!("shoal/{}", app.stack));
    let sent = r.on(&statuses_path);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].header("Authorization"), Some("Bearer gh-token-123"));

    // A broken commit, polled again and again: told once.
    app.remote.write(
        &format!("stacks/{}/stack.yml", app.stack),
        "services: [not, a, mapping\n",
    );
    app.remote.push("break the stack");
    let broken = head(&app.remote);
    poll(
        "the broken commit is a load error",
        Duration::from_secs(30),
        || (stack_outcome(&agent, &app.stack).as_deref() == Some("load-error")).then_some(()),
    );
    let before = reconciles(&agent, "load-error");
    poll(
        "five more passes over the broken commit",
        Duration::from_secs(30),
        || (reconciles(&agent, "load-error") >= before + 5).then_some(()),
    );
    let failed = generic_events(&r, "failed", &broken);
    assert_eq!(failed.len(), 1, "told once: {failed:?}");
    assert!(failed[0]["error"]
        .as_str()
        .unwrap()
        .contains(&format!("stacks/{}/stack.yml", app.stack)));
    let broken_statuses = r.on(&format!("/gh/repos/ops/stacks/statuses/{broken}"));
    assert_eq!(broken_statuses.len(), 1);
    assert_eq!(broken_statuses[0].json()["state"], "failure");

    // The fix: recovered, and the change converges on time although one
    // target is down (its retries run beside the passes, not in them).
    app.remote
        .write(&format!("stacks/{}/stack.yml", app.stack), &app_stack(2));
    app.remote.push("fix, two replicas");
    let fixed = head(&app.remote);
    let pushed = Instant::now();
    poll("two replicas", Duration::from_secs(30), || {
        (replicas(&app.svc) == Some(2)).then_some(())
    });
    let took = pushed.elapsed();
    assert!(took < Duration::from_secs(15), "converged in {took:?}");
    poll("recovered", Duration::from_secs(30), || {
        generic_events(&r, "recovered", &fixed).pop()
    });
    poll("synced again", Duration::from_secs(30), || {
        generic_events(&r, "synced", &fixed).pop()
    });
    assert!(agent
        .metrics()
        .contains("shoal_notifications_dropped_total 0"));
    assert!(
        !agent.logs().contains("gh-token-123"),
        "the token never reaches the logs"
    );
}

/// Gitea's and GitLab's commit status endpoints, with their own paths,
/// auth headers and state names, in order: pending, then the outcome.
#[test]
fn commit_statuses_on_gitea_and_gitlab() {
    for (forge, api_path, path_of, auth, success) in [
        (
            "gitea",
            "/gitea/api/v1",
            "/gitea/api/v1/repos/ops/stacks/statuses/",
            ("Authorization", "token forge-token"),
            "success",
        ),
        (
            "gitlab",
            "/gitlab/api/v4",
            "/gitlab/api/v4/projects/ops%2Fstacks/statuses/",
            ("PRIVATE-TOKEN", "forge-token"),
            "success",
        ),
    ] {
        let app = AppStack::pushed(&format!("cs{forge}"));
        let r = Receiver::start();
        let files = tempfile::tempdir().unwrap();
        let token = files.path().join("token");
        std::fs::write(&token, "forge-token").unwrap();
        let api = r.url("http", api_path);
        let _agent = Agent::start(
            &app.remote,
            &app.lease,
            "1s",
            &[
                "--commit-status",
                forge,
                "--commit-status-api",
                &api,
                "--commit-status-repo",
                "ops/stacks",
                "--commit-status-token-file",
                token.to_str().unwrap(),
                "--status-url",
                "https://shoal.example.com/status",
            ],
        );
        let commit = head(&app.remote);
        let path = format!("{path_of}{commit}");
        let sent = poll(
            &format!("{forge}: two statuses"),
            Duration::from_secs(60),
            || {
                let s = r.on(&path);
                (s.len() >= 2).then_some(s)
            },
        );
        assert_eq!(sent[0].method, "POST");
        assert_eq!(sent[0].header(auth.0), Some(auth.1), "{forge}");
        let states: Vec<String> = sent
            .iter()
            .map(|x| x.json()["state"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(states, ["pending", success], "{forge}");
        let last = sent[1].json();
        assert_eq!(last["target_url"], "https://shoal.example.com/status");
        let context_field = if forge == "gitlab" { "name" } else { "context" };
        assert_eq!(last[context_field], format!("shoal/{}", app.stack));
    }
}
