use super::*;

fn event(kind: EventKind) -> Event {
    Event {
        kind,
        stacks: vec!["web".into()],
        revision: Revision {
            id: "3f2a9c1d0e5b6a7980706050403020100f0e0d0c".into(),
            subject: Some("Scale web to 3".into()),
        },
        summary: Summary {
            create: 0,
            update: 1,
            delete: 0,
        },
        error: (kind == EventKind::Failed).then(|| "task: non-zero exit (1)".to_string()),
        happened: "The apply failed; shoal retries with backoff, and again on the next commit."
            .into(),
    }
}

#[test]
fn the_same_failure_of_the_same_commit_is_told_once_until_it_recovers() {
    let mut s = NotifyState::default();
    let e = Some("stacks/web/stack.yml:3: bad");
    assert_eq!(
        s.decide("web", Outcome::LoadError, "c1", e, false),
        vec![EventKind::Failed]
    );
    for _ in 0..4 {
        assert!(s
            .decide("web", Outcome::LoadError, "c1", e, false)
            .is_empty());
    }
    // Another error, or another commit failing: told again.
    assert_eq!(
        s.decide("web", Outcome::LoadError, "c1", Some("other"), false),
        vec![EventKind::Failed]
    );
    assert_eq!(
        s.decide("web", Outcome::ApplyFailed, "c2", Some("other"), false),
        vec![EventKind::Failed]
    );
    // The fix: recovered, and the sync itself.
    assert_eq!(
        s.decide("web", Outcome::Applied, "c3", None, false),
        vec![EventKind::Recovered, EventKind::Synced]
    );
    assert!(s
        .decide("web", Outcome::NoChange, "c3", None, false)
        .is_empty());
    // Other stacks have their own memory.
    assert_eq!(
        s.decide("db", Outcome::PolicyDenied, "c3", Some("deny"), false),
        vec![EventKind::Denied]
    );
    assert!(s
        .decide("db", Outcome::PolicyDenied, "c3", Some("deny"), false)
        .is_empty());
    assert_eq!(
        s.decide("db", Outcome::NoChange, "c3", None, false),
        vec![EventKind::Recovered]
    );
}

#[test]
fn drift_is_told_when_healed_and_once_when_reported() {
    let mut s = NotifyState::default();
    assert_eq!(
        s.decide("web", Outcome::Applied, "c1", None, true),
        vec![EventKind::Drift]
    );
    assert_eq!(
        s.decide("web", Outcome::Applied, "c1", None, true),
        vec![EventKind::Drift]
    );
    assert_eq!(
        s.decide("web", Outcome::Drift, "c1", None, false),
        vec![EventKind::Drift]
    );
    assert!(s
        .decide("web", Outcome::Drift, "c1", None, false)
        .is_empty());
    s.forget("web");
    assert_eq!(
        s.decide("web", Outcome::Drift, "c1", None, false),
        vec![EventKind::Drift]
    );
}

#[test]
fn events_parse_by_name() {
    assert_eq!(EventKind::parse("recovered"), Ok(EventKind::Recovered));
    assert_eq!(EventKind::parse("rolled_back"), Ok(EventKind::RolledBack));
    let e = EventKind::parse("rolled-back").unwrap_err();
    assert_eq!(
        e,
        "unknown event \"rolled-back\"; expected one of synced, failed, drift, denied, recovered, rolled_back"
    );
}

#[test]
fn targets_parse_from_shoutrrr_style_urls_and_hide_their_secret_paths() {
    assert_eq!(
        Target::parse("generic+https://hooks.example.com/shoal").unwrap(),
        Target::Generic {
            url: "https://hooks.example.com/shoal".into()
        }
    );
    assert_eq!(
        Target::parse("slack://T000/B000/XXXX").unwrap(),
        Target::Text {
            url: "https://hooks.slack.com/services/T000/B000/XXXX".into(),
            service: "slack"
        }
    );
    assert_eq!(
        Target::parse("discord://tok3n@123456").unwrap(),
        Target::Discord {
            url: "https://discord.com/api/webhooks/123456/tok3n".into()
        }
    );
    assert_eq!(
        Target::parse("ntfy://ntfy.sh/ops-alerts").unwrap(),
        Target::Ntfy {
            url: "https://ntfy.sh/ops-alerts".into()
        }
    );
    assert_eq!(
        Target::parse("mattermost+http://127.0.0.1:8065/hooks/abc").unwrap(),
        Target::Text {
            url: "http://127.0.0.1:8065/hooks/abc".into(),
            service: "mattermost"
        }
    );
    let t = Target::parse("slack+https://hooks.slack.com/services/T/B/secret").unwrap();
    assert_eq!(t.describe(), "slack at hooks.slack.com");
    let e = Target::parse("telegram://token@telegram?chats=1").unwrap_err();
    assert!(
        e.starts_with("telegram://telegram?chats=1/…: unknown notification scheme \"telegram\""),
        "{e}"
    );
    assert!(!e.contains("token"));
}

#[test]
fn slack_mattermost_teams_get_text() {
    let t = Target::parse("slack+https://hooks.slack.com/services/T/B/X").unwrap();
    let r = message(&t, &event(EventKind::Failed), None);
    assert_eq!(r.url, "https://hooks.slack.com/services/T/B/X");
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        doc,
        json!({"text": "*shoal: web failed*\nCommit 3f2a9c1 \"Scale web to 3\"\nChanges: 0 to create, 1 to update, 0 to delete\nError: task: non-zero exit (1)\nThe apply failed; shoal retries with backoff, and again on the next commit."})
    );
    assert!(r
        .headers
        .contains(&("Content-Type".into(), "application/json".into())));
}

#[test]
fn discord_gets_content_within_its_limit() {
    let t = Target::parse("discord+https://discord.com/api/webhooks/1/x").unwrap();
    let mut e = event(EventKind::Failed);
    e.error = Some("x".repeat(5000));
    let doc: Value = serde_json::from_slice(&message(&t, &e, None).body).unwrap();
    let content = doc["content"].as_str().unwrap();
    assert!(content.starts_with("**shoal: web failed**\nCommit 3f2a9c1"));
    assert_eq!(content.chars().count(), 2000);
    assert_eq!(doc["allowed_mentions"], json!({"parse": []}), "no pings");
    assert_eq!(doc.as_object().unwrap().len(), 2);
}

/// A commit subject is repository content: Slack's control sequences in it
/// are shown as text, never acted on.
#[test]
fn slack_text_from_the_repository_is_escaped() {
    let t = Target::parse("slack+https://hooks.slack.com/services/T/B/X").unwrap();
    let mut e = event(EventKind::Synced);
    e.revision.subject = Some("<!channel> see <https://evil.example|here> & more".into());
    let doc: Value = serde_json::from_slice(&message(&t, &e, None).body).unwrap();
    let text = doc["text"].as_str().unwrap();
    assert!(
        text.contains("\"&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; more\""),
        "{text}"
    );
    assert!(!text.contains('<'));
}

#[test]
fn ntfy_gets_the_text_as_body_and_a_title_header() {
    let t = Target::parse("ntfy+https://ntfy.sh/ops").unwrap();
    let r = message(&t, &event(EventKind::Denied), None);
    assert_eq!(r.url, "https://ntfy.sh/ops");
    assert!(r
        .headers
        .contains(&("Title".into(), "shoal: web denied by policy".into())));
    assert!(r.headers.contains(&("Priority".into(), "high".into())));
    assert!(r.headers.contains(&("Tags".into(), "shoal,denied".into())));
    assert!(String::from_utf8(r.body)
        .unwrap()
        .starts_with("Commit 3f2a9c1 \"Scale web to 3\"\n"));
}

#[test]
fn generic_is_the_documented_document_signed_with_hmac() {
    let t = Target::parse("generic+http://127.0.0.1:9/hook").unwrap();
    let r = message(
        &t,
        &event(EventKind::Failed),
        Some(b"It's a Secret to Everybody"),
    );
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["event"], "failed");
    assert_eq!(doc["stacks"], json!(["web"]));
    assert_eq!(doc["commit"]["short"], "3f2a9c1");
    assert_eq!(doc["commit"]["subject"], "Scale web to 3");
    assert_eq!(
        doc["summary"],
        json!({"create": 0, "update": 1, "delete": 0})
    );
    assert_eq!(doc["error"], "task: non-zero exit (1)");
    let sig = r
        .headers
        .iter()
        .find(|(k, _)| k == SIGNATURE_HEADER)
        .map(|(_, v)| v.clone())
        .expect("signed");
    // GitHub's documented test vector for the same scheme.
    assert_eq!(
        sign(b"It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    assert_eq!(sig, sign(b"It's a Secret to Everybody", &r.body));
    let unsigned = message(&t, &event(EventKind::Failed), None);
    assert!(!unsigned.headers.iter().any(|(k, _)| k == SIGNATURE_HEADER));
}

#[test]
fn commit_statuses_use_each_forges_documented_endpoint() {
    let target = |forge, api: &str, repo: &str| CommitStatusTarget {
        forge,
        api: api.into(),
        repo: repo.into(),
        token: "tok".into(),
        target_url: Some("https://shoal.example.com/status".into()),
    };
    let gh = commit_status(
        &target(Forge::Github, "https://api.github.com/", "ops/stacks"),
        "abc",
        "web",
        CommitState::Pending,
        "applying",
    );
    assert_eq!(
        gh.url,
        "https://api.github.com/repos/ops/stacks/statuses/abc"
    );
    assert!(gh
        .headers
        .contains(&("Authorization".into(), "Bearer tok".into())));
    let doc: Value = serde_json::from_slice(&gh.body).unwrap();
    assert_eq!(
        doc,
        json!({"state": "pending", "description": "applying", "context": "shoal/web", "target_url": "https://shoal.example.com/status"})
    );

    let gitea = commit_status(
        &target(Forge::Gitea, "https://git.example.com/api/v1", "ops/stacks"),
        "abc",
        "web",
        CommitState::Failure,
        "failed",
    );
    assert_eq!(
        gitea.url,
        "https://git.example.com/api/v1/repos/ops/stacks/statuses/abc"
    );
    assert!(gitea
        .headers
        .contains(&("Authorization".into(), "token tok".into())));
    assert_eq!(
        serde_json::from_slice::<Value>(&gitea.body).unwrap()["state"],
        "failure"
    );

    let gl = commit_status(
        &target(
            Forge::Gitlab,
            "https://gitlab.example.com/api/v4",
            "ops/stacks",
        ),
        "abc",
        "web",
        CommitState::Failure,
        &"d".repeat(300),
    );
    assert_eq!(
        gl.url,
        "https://gitlab.example.com/api/v4/projects/ops%2Fstacks/statuses/abc"
    );
    assert!(gl.headers.contains(&("PRIVATE-TOKEN".into(), "tok".into())));
    let doc: Value = serde_json::from_slice(&gl.body).unwrap();
    assert_eq!(doc["state"], "failed");
    assert_eq!(doc["name"], "shoal/web");
    assert_eq!(doc["description"].as_str().unwrap().len(), 140);
}
