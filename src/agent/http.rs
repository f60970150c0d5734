//! The agent's HTTP surface: `/healthz`, `/metrics`, `/status` and the
//! `POST /webhook` trigger. Handlers only read the shared status or kick
//! the trigger; they never reconcile themselves.
use super::status::{AgentStatus, Role};
use super::trigger::{Reason, Trigger};
use super::{metrics, webhook};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::{Arc, Mutex};

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub status: Arc<Mutex<AgentStatus>>,
    pub trigger: Arc<Trigger>,
    /// `None`: the webhook is disabled.
    pub webhook_secret: Option<Arc<Vec<u8>>>,
}

impl HttpState {
    fn snapshot(&self) -> AgentStatus {
        // A poisoned status is still the last status written.
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The router with every endpoint.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status_json))
        .route("/webhook", post(webhook_trigger))
        .with_state(state)
}

async fn healthz(State(st): State<HttpState>) -> Response {
    let s = st.snapshot();
    let (code, body) = health(&s);
    (code, body).into_response()
}

/// 200 once the first pass finished (a standby agent is healthy too: it
/// is ready to take over); 503 with the reason before.
pub fn health(s: &AgentStatus) -> (StatusCode, String) {
    if s.role == Role::Standby {
        return (StatusCode::OK, "ok: standby\n".to_string());
    }
    if s.ready {
        return (StatusCode::OK, "ok\n".to_string());
    }
    let why = s
        .last_error
        .as_deref()
        .unwrap_or("the first reconcile has not finished yet");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {why}\n"),
    )
}

async fn metrics_text(State(st): State<HttpState>) -> Response {
    let text = metrics::render(&st.snapshot());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

async fn status_json(State(st): State<HttpState>) -> Response {
    Json(st.snapshot().to_json()).into_response()
}

async fn webhook_trigger(State(st): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &st.webhook_secret else {
        return (
            StatusCode::NOT_FOUND,
            "webhook disabled: start the agent with --webhook-secret-file\n",
        )
            .into_response();
    };
    match webhook::verify(secret, &headers, &body) {
        Ok(sender) => {
            tracing::info!(?sender, "webhook accepted; reconcile queued");
            st.trigger.kick(Reason::Webhook);
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"queued": true})),
            )
                .into_response()
        }
        Err(refusal) => {
            tracing::warn!(%refusal, "webhook refused");
            (StatusCode::UNAUTHORIZED, format!("{refusal}\n")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_503_with_the_error_until_ready() {
        let mut s = AgentStatus::new("a", true);
        assert_eq!(health(&s).0, StatusCode::SERVICE_UNAVAILABLE);
        s.last_error = Some("git fetch: connection refused".into());
        let (code, body) = health(&s);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("connection refused"));
        s.ready = true;
        assert_eq!(health(&s).0, StatusCode::OK);
        let mut standby = AgentStatus::new("b", true);
        standby.role = Role::Standby;
        assert_eq!(health(&standby).0, StatusCode::OK);
    }
}
