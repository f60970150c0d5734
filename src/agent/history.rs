//! What was applied to a stack, and what failed: a bounded history of the
//! commits the agent (or `shoal rollback`) applied, kept in the stack's
//! state record in the swarm (label `io.shoal.history`), the commit marked
//! failed after a rollback so it is not retried in a loop, and
//! `POST /sync?stack=NAME` to try it again on request.
use super::http::HttpState;
use super::status::Outcome;
use super::webhook;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// Label of the state record holding the history (a JSON list).
pub const HISTORY_LABEL: &str = "io.shoal.history";
/// Label of the state record naming the commit that failed and was rolled
/// back (the agent does not apply it again on its own).
pub const FAILED_LABEL: &str = "io.shoal.failed-commit";
/// Entries kept, newest first.
pub const MAX_ENTRIES: usize = 20;
/// A summary or error in an entry is cut to this many characters.
const MAX_TEXT: usize = 120;

/// One apply of one commit to one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub commit: String,
    /// RFC 3339, seconds.
    pub at: String,
    /// `ok`, `rolled-back`, `apply-failed`.
    pub outcome: String,
    /// `1 to create, 2 to update, 0 to delete`, or the (cut) error.
    pub summary: String,
    /// Who applied it: `agent` or `rollback`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
}

impl Entry {
    pub fn new(commit: &str, outcome: Outcome, summary: &str, by: &str) -> Entry {
        Entry {
            commit: commit.to_string(),
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            outcome: outcome.as_str().to_string(),
            summary: summary.chars().take(MAX_TEXT).collect(),
            by: by.to_string(),
        }
    }

    /// Whether this commit was applied and converged.
    pub fn good(&self) -> bool {
        self.outcome == Outcome::Applied.as_str()
    }
}

/// Add `entry` first, keeping at most [`MAX_ENTRIES`].
pub fn push(history: &mut Vec<Entry>, entry: Entry) {
    history.insert(0, entry);
    history.truncate(MAX_ENTRIES);
}

/// The label value of a history (compact JSON).
pub fn encode(history: &[Entry]) -> Option<String> {
    (!history.is_empty()).then(|| serde_json::to_string(history).unwrap_or_default())
}

/// A history from its label value; unreadable values (written by a newer
/// shoal, edited by hand) read as empty rather than failing the agent.
pub fn decode(label: Option<&String>) -> Vec<Entry> {
    label
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default()
}

/// The commit `shoal rollback --steps N` goes back to: the N-th good
/// commit before `current` (the commit the stack is at now), newest first.
pub fn steps_back<'a>(
    history: &'a [Entry],
    current: Option<&str>,
    steps: usize,
) -> Option<&'a Entry> {
    let mut seen = std::collections::BTreeSet::new();
    history
        .iter()
        .filter(|e| e.good() && Some(e.commit.as_str()) != current)
        .filter(|e| seen.insert(e.commit.clone()))
        .nth(steps.saturating_sub(1))
}

/// `shoal history` as text.
pub fn render(
    stack: &str,
    history: &[Entry],
    current: Option<&str>,
    failed: Option<&str>,
) -> String {
    let mut out = String::new();
    if history.is_empty() {
        out.push_str(&format!(
            "stack {stack}: no history yet (the agent records each commit it applies; `shoal rollback` too)\n"
        ));
    }
    for e in history {
        let mark = if Some(e.commit.as_str()) == current {
            "*"
        } else {
            " "
        };
        let short: String = e.commit.chars().take(12).collect();
        let by = if e.by.is_empty() {
            String::new()
        } else {
            format!(" ({})", e.by)
        };
        out.push_str(&format!(
            "{mark} {short:<12}  {}  {:<12}  {}{by}\n",
            e.at, e.outcome, e.summary
        ));
    }
    if let Some(c) = current {
        out.push_str(&format!("\n* the stack is at {c}\n"));
    }
    if let Some(f) = failed {
        out.push_str(&format!(
            "commit {f} failed and was rolled back; the agent applies it again only on request (POST /sync?stack={stack}) or tries the next commit\n"
        ));
    }
    out
}

/// `POST /sync?stack=NAME` (or every stack without `stack`): try failed
/// commits again in a pass queued now. Authorised like `/webhook`, by the
/// webhook secret: `X-Gitlab-Token: <secret>` or an HMAC signature
/// header of the (empty or small) body.
pub async fn sync_request(
    State(st): State<HttpState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(secret) = &st.webhook_secret else {
        return (
            StatusCode::NOT_FOUND,
            "sync disabled: start the agent with --webhook-secret-file\n",
        )
            .into_response();
    };
    let stack = uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "stack")
            .map(|(_, v)| v.to_string())
    });
    if let Some(s) = &stack {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !valid {
            return (StatusCode::BAD_REQUEST, "stack: not a stack name\n").into_response();
        }
    }
    let credential = match webhook::Credential::from_headers(&headers) {
        Ok(c) => c,
        Err(refusal) => return (StatusCode::UNAUTHORIZED, format!("{refusal}\n")).into_response(),
    };
    let body = if credential.needs_body() {
        let read = axum::body::to_bytes(body, 64 * 1024);
        match tokio::time::timeout(st.limits.body_read_timeout, read).await {
            Ok(Ok(b)) => b,
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    "body unreadable, over 64 KiB or too slow\n",
                )
                    .into_response()
            }
        }
    } else {
        Default::default()
    };
    match credential.verify(secret, &body) {
        Ok(_) => {
            tracing::info!(
                stack = stack.as_deref().unwrap_or("*"),
                "sync requested: failed commits are tried again"
            );
            st.trigger.retry(stack.as_deref());
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"queued": true, "stack": stack})),
            )
                .into_response()
        }
        Err(refusal) => {
            tracing::warn!(%refusal, "sync refused");
            (StatusCode::UNAUTHORIZED, format!("{refusal}\n")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(commit: &str, outcome: Outcome) -> Entry {
        Entry::new(
            commit,
            outcome,
            "0 to create, 1 to update, 0 to delete",
            "agent",
        )
    }

    #[test]
    fn history_is_bounded_newest_first_and_round_trips() {
        let mut h = Vec::new();
        for i in 0..25 {
            push(&mut h, entry(&format!("c{i}"), Outcome::Applied));
        }
        assert_eq!(h.len(), MAX_ENTRIES);
        assert_eq!(h[0].commit, "c24");
        let label = encode(&h).unwrap();
        assert!(label.len() < 4000, "{}", label.len());
        assert_eq!(decode(Some(&label)), h);
        assert!(decode(Some(&"not json".to_string())).is_empty());
    }

    #[test]
    fn steps_back_skip_failures_and_the_current_commit() {
        let h = vec![
            entry("c4", Outcome::RolledBack),
            entry("c3", Outcome::Applied),
            entry("c2", Outcome::Applied),
            entry("c1", Outcome::Applied),
        ];
        assert_eq!(steps_back(&h, Some("c3"), 1).unwrap().commit, "c2");
        assert_eq!(steps_back(&h, Some("c3"), 2).unwrap().commit, "c1");
        assert!(steps_back(&h, Some("c3"), 3).is_none());
        let text = render("web", &h, Some("c3"), Some("c4"));
        assert!(text.contains("* c3"), "{text}");
        assert!(text.contains("rolled-back"), "{text}");
        assert!(text.contains("POST /sync?stack=web"), "{text}");
    }
}
