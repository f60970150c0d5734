//! Telling people what the agent did: chat and webhook notifications
//! (`--notify URL`) and commit statuses on the forge (`--commit-status`).
//!
//! Three parts, split as the loop is: [`NotifyState::decide`] (pure) turns a
//! stack's outcome into events, once per distinct failure; [`message`]
//! (pure) renders an event for a target's documented API; the [`Notifier`]
//! delivers in the background, one bounded queue and task per target, with
//! retries and backoff, so a target that is down never slows a pass (what
//! does not fit the queue is dropped and counted in `/metrics`).
use super::status::Outcome;
use crate::model::Summary;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What happened to a stack, as `--notify-events` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// Changes of a new revision were applied.
    Synced,
    /// The stack could not be loaded or applied.
    Failed,
    /// The swarm differed from the applied revision (healed or reported).
    Drift,
    /// A policy denied the stack's plan.
    Denied,
    /// The first success after a failure or a denial.
    Recovered,
    /// An apply failed and its changes were rolled back.
    RolledBack,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Synced,
        EventKind::Failed,
        EventKind::Drift,
        EventKind::Denied,
        EventKind::Recovered,
        EventKind::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Synced => "synced",
            EventKind::Failed => "failed",
            EventKind::Drift => "drift",
            EventKind::Denied => "denied",
            EventKind::Recovered => "recovered",
            EventKind::RolledBack => "rolled_back",
        }
    }

    pub fn parse(s: &str) -> Result<EventKind, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown event {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// The revision an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Revision {
    /// A commit id, or `dir:<digest>` for a directory.
    pub id: String,
    /// The commit's subject line, when known.
    pub subject: Option<String>,
}

impl Revision {
    pub fn short(&self) -> &str {
        if self.id.starts_with("dir:") {
            &self.id
        } else {
            &self.id[..self.id.len().min(7)]
        }
    }
}

/// One thing to tell about one stack (a healed drift may name several).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// The stacks it is about (one, or every stack a pass healed).
    pub stacks: Vec<String>,
    pub revision: Revision,
    pub summary: Summary,
    /// The error, masked as on `/status`.
    pub error: Option<String>,
    /// What shoal did about it, in a sentence.
    pub happened: String,
}

/// What a stack was last notified about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Notified {
    kind: EventKind,
    revision: String,
    error: Option<String>,
}

/// Per-stack memory of what was told, so the same failure of the same
/// revision is told once, until it changes or recovers.
#[derive(Debug, Default)]
pub struct NotifyState {
    last: BTreeMap<String, Notified>,
}

impl NotifyState {
    /// The events one stack's outcome of a pass gives (before filtering by
    /// `--notify-events`). `drift` marks an apply that healed drift.
    pub fn decide(
        &mut self,
        stack: &str,
        outcome: Outcome,
        revision: &str,
        error: Option<&str>,
        drift: bool,
    ) -> Vec<EventKind> {
        let was_failing = self.last.get(stack).is_some_and(|n| {
            matches!(
                n.kind,
                EventKind::Failed | EventKind::Denied | EventKind::RolledBack
            )
        });
        let now = |kind| Notified {
            kind,
            revision: revision.to_string(),
            error: error.map(str::to_string),
        };
        let told = |this: &mut Self, kind: EventKind| -> bool {
            let n = now(kind);
            let repeat = this.last.get(stack) == Some(&n);
            this.last.insert(stack.to_string(), n);
            !repeat
        };
        match outcome {
            Outcome::LoadError | Outcome::ApplyFailed => {
                if told(self, EventKind::Failed) {
                    vec![EventKind::Failed]
                } else {
                    vec![]
                }
            }
            Outcome::RolledBack => {
                if told(self, EventKind::RolledBack) {
                    vec![EventKind::RolledBack]
                } else {
                    vec![]
                }
            }
            Outcome::PolicyDenied => {
                if told(self, EventKind::Denied) {
                    vec![EventKind::Denied]
                } else {
                    vec![]
                }
            }
            Outcome::Drift => {
                // Reported, not healed: once per revision until in sync.
                if told(self, EventKind::Drift) {
                    vec![EventKind::Drift]
                } else {
                    vec![]
                }
            }
            Outcome::Applied | Outcome::NoChange => {
                let mut out = Vec::new();
                if was_failing {
                    out.push(EventKind::Recovered);
                }
                if outcome == Outcome::Applied {
                    out.push(if drift {
                        EventKind::Drift
                    } else {
                        EventKind::Synced
                    });
                }
                self.last.insert(stack.to_string(), now(EventKind::Synced));
                out
            }
        }
    }

    /// A stack that left the source is forgotten.
    pub fn forget(&mut self, stack: &str) {
        self.last.remove(stack);
    }
}

/// What shoal did about an outcome, for the message.
pub fn happened(kind: EventKind, outcome: Outcome, self_heal: bool) -> String {
    match (kind, outcome) {
        (EventKind::Failed, Outcome::LoadError) => {
            "The stack's files do not load; it is left as it is on the swarm until a new commit fixes them.".into()
        }
        (EventKind::Failed, _) => {
            "The apply failed; shoal retries with backoff, and again on the next commit.".into()
        }
        (EventKind::Denied, _) => {
            "A policy denies the plan; nothing was applied.".into()
        }
        (EventKind::Drift, Outcome::Drift) if !self_heal => {
            "The swarm was changed by hand; not healed (--no-self-heal).".into()
        }
        (EventKind::Drift, _) => {
            "The swarm was changed by hand; shoal put the repository's state back.".into()
        }
        (EventKind::Recovered, _) => "Back in sync after a failure.".into(),
        (EventKind::RolledBack, _) => {
            "The rollout failed; the services were restored to the last good commit's specs. The commit is marked failed and not retried until a new commit or POST /sync.".into()
        }
        (EventKind::Synced, _) => "Applied.".into(),
    }
}

/// Where messages go, as given to `--notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `generic+https://host/path` (or `generic+http://`): the event as a
    /// JSON document, signed when a secret is set.
    Generic { url: String },
    /// Slack incoming webhook: `slack+https://hooks.slack.com/services/...`
    /// or shoutrrr's `slack://A/B/C`. Mattermost and Teams incoming
    /// webhooks take the same `{"text"}` body: `mattermost+https://...`,
    /// `teams+https://...`.
    Text { url: String, service: &'static str },
    /// Discord webhook: `discord+https://discord.com/api/webhooks/ID/TOKEN`
    /// or shoutrrr's `discord://TOKEN@ID`.
    Discord { url: String },
    /// ntfy topic: `ntfy+https://ntfy.sh/topic` or `ntfy://host/topic`.
    Ntfy { url: String },
}

impl Target {
    pub fn parse(raw: &str) -> Result<Target, String> {
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| format!("{}: not a URL", mask(raw)))?;
        let http = |rest: &str, tls: &str| format!("{tls}://{rest}");
        let target = match scheme {
            "generic+https" => Target::Generic { url: http(rest, "https") },
            "generic+http" => Target::Generic { url: http(rest, "http") },
            "slack+https" | "slack+http" => Target::Text {
                url: http(rest, &scheme[6..]),
                service: "slack",
            },
            "slack" => Target::Text {
                url: format!("https://hooks.slack.com/services/{}", rest.trim_matches('/')),
                service: "slack",
            },
            "mattermost+https" | "mattermost+http" => Target::Text {
                url: http(rest, &scheme[11..]),
                service: "mattermost",
            },
            "teams+https" | "teams+http" => Target::Text {
                url: http(rest, &scheme[6..]),
                service: "teams",
            },
            "discord+https" | "discord+http" => Target::Discord {
                url: http(rest, &scheme[8..]),
            },
            "discord" => {
                let (token, id) = rest
                    .trim_end_matches('/')
                    .split_once('@')
                    .ok_or_else(|| "discord://TOKEN@ID: the token and webhook id are missing".to_string())?;
                Target::Discord {
                    url: format!("https://discord.com/api/webhooks/{id}/{token}"),
                }
            }
            "ntfy+https" | "ntfy+http" => Target::Ntfy {
                url: http(rest, &scheme[5..]),
            },
            "ntfy" => Target::Ntfy { url: http(rest, "https") },
            other => {
                return Err(format!(
                    "{}: unknown notification scheme {other:?}; use generic+https://, slack+https:// (or slack://), discord+https:// (or discord://), ntfy+https:// (or ntfy://), mattermost+https://, teams+https://",
                    mask(raw)
                ))
            }
        };
        Ok(target)
    }

    /// The target for logs: the service and host, never the path (a
    /// webhook URL's path is its secret).
    pub fn describe(&self) -> String {
        let (service, url) = match self {
            Target::Generic { url } => ("generic", url),
            Target::Text { url, service } => (*service, url),
            Target::Discord { url } => ("discord", url),
            Target::Ntfy { url } => ("ntfy", url),
        };
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        format!("{service} at {host}")
    }
}

/// A URL for an error message: the path is a webhook's secret.
fn mask(raw: &str) -> String {
    match raw.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(not a URL)".into(),
    }
}

/// An HTTP request to send: URL, headers, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The text of an event for chat: a title line, then details.
pub fn text(event: &Event) -> (String, String) {
    let stacks = event.stacks.join(", ");
    let title = match event.kind {
        EventKind::Synced => format!("shoal: {stacks} synced"),
        EventKind::Failed => format!("shoal: {stacks} failed"),
        EventKind::Drift => format!("shoal: drift in {stacks}"),
        EventKind::Denied => format!("shoal: {stacks} denied by policy"),
        EventKind::Recovered => format!("shoal: {stacks} recovered"),
        EventKind::RolledBack => format!("shoal: {stacks} failed and rolled back"),
    };
    let s = &event.summary;
    let mut body = format!("Commit {}", event.revision.short());
    if let Some(subject) = &event.revision.subject {
        body.push_str(&format!(" \"{subject}\""));
    }
    body.push_str(&format!(
        "\nChanges: {} to create, {} to update, {} to delete",
        s.create, s.update, s.delete
    ));
    if let Some(e) = &event.error {
        body.push_str(&format!("\nError: {e}"));
    }
    body.push_str(&format!("\n{}", event.happened));
    (title, body)
}

/// The event as the generic target's JSON document (its schema is in the
/// README): stable field names, one document per event.
pub fn generic_document(event: &Event) -> Value {
    let (title, text) = text(event);
    json!({
        "event": event.kind.as_str(),
        "stacks": event.stacks,
        "commit": {
            "id": event.revision.id,
            "short": event.revision.short(),
            "subject": event.revision.subject,
        },
        "summary": {
            "create": event.summary.create,
            "update": event.summary.update,
            "delete": event.summary.delete,
        },
        "error": event.error,
        "happened": event.happened,
        "title": title,
        "text": text,
    })
}

/// The header carrying the generic target's signature:
/// `sha256=<hex HMAC-SHA256 of the body>`, as GitHub signs webhooks.
pub const SIGNATURE_HEADER: &str = "X-Shoal-Signature-256";

/// The request for `event` to `target`, in the body format each service
/// documents.
pub fn message(target: &Target, event: &Event, secret: Option<&[u8]>) -> Request {
    let (title, body) = text(event);
    let json_request = |url: &str, doc: Value| Request {
        url: url.to_string(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: doc.to_string().into_bytes(),
    };
    match target {
        Target::Generic { url } => {
            let mut req = json_request(url, generic_document(event));
            if let Some(secret) = secret {
                req.headers
                    .push((SIGNATURE_HEADER.into(), sign(secret, &req.body)));
            }
            req
        }
        // Slack (and the compatible Mattermost/Teams webhooks): `text` with
        // Slack's mrkdwn: the title in bold.
        // Commit subjects and errors come from the repository: `&`, `<`
        // and `>` are escaped as Slack documents, so a subject holding
        // `<!channel>` or a link is shown, not acted on.
        Target::Text { url, .. } => json_request(
            url,
            json!({"text": format!("*{}*\n{}", slack_escape(&title), slack_escape(&body))}),
        ),
        // Discord: `content`, at most 2000 characters; `allowed_mentions`
        // empty, so an `@everyone` in a commit subject pings nobody.
        Target::Discord { url } => {
            let content: String = format!("**{title}**\n{body}").chars().take(2000).collect();
            json_request(
                url,
                json!({"content": content, "allowed_mentions": {"parse": []}}),
            )
        }
        // ntfy: the body is the message; title, priority and tags are headers.
        Target::Ntfy { url } => Request {
            url: url.clone(),
            headers: vec![
                ("Title".into(), title),
                (
                    "Priority".into(),
                    match event.kind {
                        EventKind::Failed | EventKind::Denied | EventKind::RolledBack => "high",
                        _ => "default",
                    }
                    .into(),
                ),
                ("Tags".into(), format!("shoal,{}", event.kind.as_str())),
            ],
            body: body.into_bytes(),
        },
    }
}

/// Text for Slack's `text` field: the three characters Slack's message
/// formatting gives meaning to, escaped as its documentation says.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A forge to report commit statuses to (`--commit-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Github,
    Gitea,
    Gitlab,
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    Pending,
    Success,
    Failure,
}

/// Where and how commit statuses are set.
#[derive(Debug, Clone)]
pub struct CommitStatusTarget {
    pub forge: Forge,
    /// The REST API base: `https://api.github.com`,
    /// `https://gitea.example.com/api/v1`, `https://gitlab.example.com/api/v4`.
    pub api: String,
    /// `owner/repo` (GitHub, Gitea) or the project's id or path (GitLab).
    pub repo: String,
    pub token: String,
    /// A link for the status (the agent's `/status` page), if any.
    pub target_url: Option<String>,
}

/// The request that sets `state` for `commit` and `stack`, on the
/// endpoint each forge documents:
/// GitHub `POST /repos/{owner}/{repo}/statuses/{sha}`,
/// Gitea `POST /repos/{owner}/{repo}/statuses/{sha}`,
/// GitLab `POST /projects/{id}/statuses/{sha}`.
pub fn commit_status(
    t: &CommitStatusTarget,
    commit: &str,
    stack: &str,
    state: CommitState,
    description: &str,
) -> Request {
    let api = t.api.trim_end_matches('/');
    // GitHub caps the description at 140 characters.
    let description: String = description.chars().take(140).collect();
    let context = format!("shoal/{stack}");
    let (url, auth, doc) = match t.forge {
        Forge::Github | Forge::Gitea => {
            let state = match state {
                CommitState::Pending => "pending",
                CommitState::Success => "success",
                CommitState::Failure => "failure",
            };
            let mut doc = json!({"state": state, "description": description, "context": context});
            if let Some(u) = &t.target_url {
                doc["target_url"] = json!(u);
            }
            let auth = if t.forge == Forge::Github {
                ("Authorization".to_string(), format!("Bearer {}", t.token))
            } else {
                ("Authorization".to_string(), format!("token {}", t.token))
            };
            (
                format!("{api}/repos/{}/statuses/{commit}", t.repo),
                auth,
                doc,
            )
        }
        Forge::Gitlab => {
            let state = match state {
                CommitState::Pending => "pending",
                CommitState::Success => "success",
                CommitState::Failure => "failed",
            };
            let mut doc = json!({"state": state, "description": description, "name": context});
            if let Some(u) = &t.target_url {
                doc["target_url"] = json!(u);
            }
            let project =
                url::form_urlencoded::byte_serialize(t.repo.as_bytes()).collect::<String>();
            (
                format!("{api}/projects/{project}/statuses/{commit}"),
                ("PRIVATE-TOKEN".to_string(), t.token.clone()),
                doc,
            )
        }
    };
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        auth,
    ];
    if t.forge == Forge::Github {
        headers.push(("Accept".into(), "application/vnd.github+json".into()));
    }
    Request {
        url,
        headers,
        body: doc.to_string().into_bytes(),
    }
}

/// How many messages wait per target before new ones are dropped.
pub const QUEUE: usize = 64;
/// Attempts per message, and the wait before the first retry (doubling).
pub const ATTEMPTS: u32 = 5;
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivery in the background: one queue and task per destination.
#[derive(Clone)]
pub struct Notifier {
    targets: Vec<(Target, tokio::sync::mpsc::Sender<Request>)>,
    commit_status: Option<(CommitStatusTarget, tokio::sync::mpsc::Sender<Request>)>,
    events: Vec<EventKind>,
    secret: Option<Arc<Vec<u8>>>,
    /// Messages dropped because a queue was full (`/metrics`).
    pub dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Target URLs hold webhook secrets: only their description.
        f.debug_struct("Notifier")
            .field(
                "targets",
                &self
                    .targets
                    .iter()
                    .map(|(t, _)| t.describe())
                    .collect::<Vec<_>>(),
            )
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Start one delivery task per target (and one for commit statuses).
    /// Must be called inside a tokio runtime.
    pub fn start(
        targets: Vec<Target>,
        events: Vec<EventKind>,
        secret: Option<Vec<u8>>,
        commit_status: Option<CommitStatusTarget>,
    ) -> Notifier {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // A redirect could carry a signed body or a token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let spawn = |what: String| {
            let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
            tokio::spawn(deliver(client.clone(), what, rx));
            tx
        };
        Notifier {
            targets: targets
                .into_iter()
                .map(|t| {
                    let tx = spawn(t.describe());
                    (t, tx)
                })
                .collect(),
            commit_status: commit_status.map(|c| {
                let tx = spawn(format!("{:?} commit statuses", c.forge));
                (c, tx)
            }),
            events,
            secret: secret.map(Arc::new),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }

    /// Queue `event` for every target; never waits.
    pub fn send(&self, event: &Event) {
        if !self.wants(event.kind) {
            return;
        }
        for (target, tx) in &self.targets {
            let req = message(target, event, self.secret.as_deref().map(Vec::as_slice));
            self.queue(tx, req, &target.describe());
        }
    }

    /// Set a commit status, if configured; never waits. Directory sources
    /// have no commit and get none.
    pub fn commit_status(
        &self,
        revision: &str,
        stack: &str,
        state: CommitState,
        description: &str,
    ) {
        let Some((target, tx)) = &self.commit_status else {
            return;
        };
        if revision.starts_with("dir:") {
            return;
        }
        let req = commit_status(target, revision, stack, state, description);
        self.queue(tx, req, "commit status");
    }

    fn queue(&self, tx: &tokio::sync::mpsc::Sender<Request>, req: Request, what: &str) {
        if tx.try_send(req).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(to = %what, "notification queue full; message dropped");
        }
    }
}

/// Send each queued request, retrying with backoff; a request that still
/// fails after [`ATTEMPTS`] is logged and dropped.
async fn deliver(
    client: reqwest::Client,
    what: String,
    mut rx: tokio::sync::mpsc::Receiver<Request>,
) {
    while let Some(req) = rx.recv().await {
        let mut wait = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let mut builder = client.post(&req.url).body(req.body.clone());
            for (k, v) in &req.headers {
                builder = builder.header(k, v);
            }
            let error = match builder.send().await {
                Ok(resp) if resp.status().is_success() => break,
                Ok(resp) => format!("HTTP {}", resp.status()),
                // reqwest's error names the URL: keep only its kind.
                Err(e) => error_kind(&e),
            };
            if attempt == ATTEMPTS {
                tracing::warn!(to = %what, error = %error, "notification not delivered after {ATTEMPTS} attempts");
                break;
            }
            tracing::debug!(to = %what, error = %error, retry_in = ?wait, "notification failed; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }
}

fn error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests;
