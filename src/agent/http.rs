//! The agent's HTTP surface: `/healthz`, `/metrics`, `/status` and the
//! `POST /webhook` trigger, and the server that bounds what a client may
//! hold (connections, time, body size). Handlers only read the shared
//! status or kick the trigger; they never reconcile themselves.
use super::status::{AgentStatus, Role};
use super::trigger::{Reason, Trigger};
use super::{mask, metrics, webhook};
use crate::secrets::Redactor;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What one client may hold of the server. The defaults keep the worst
/// case (every connection sending a full webhook body) near
/// `(max_connections + LOOPBACK_CONNECTIONS) * (HEADER_BUFFER +
/// webhook_max_body)` = 77 MiB, well inside the agent's 256 MiB, and free a
/// held connection within seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest `POST /webhook` body. A push event is a few KB (GitHub and
    /// GitLab list at most 20 commits); GitHub caps any delivery at 25 MB,
    /// which is far more than a push needs. A bigger body is answered 413
    /// and triggers nothing; the next poll still finds the commit.
    pub webhook_max_body: usize,
    /// How long a client may take to send a request's headers, counted from
    /// when the server starts waiting for them: on a new connection and
    /// between keep-alive requests, so it also bounds idle connections.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a webhook body.
    pub body_read_timeout: Duration,
    /// Connections from other hosts served at once; as many more wait,
    /// served in arrival order as soon as one closes; beyond that a new
    /// connection is closed at once. Loopback clients (the container's
    /// HEALTHCHECK) have a pool of their own, [`LOOPBACK_CONNECTIONS`], so
    /// remote clients holding every slot cannot make /healthz fail.
    pub max_connections: usize,
    /// A connection is closed (after its request in flight) at this age, so
    /// a client that reads its responses slowly cannot keep a slot either.
    pub max_connection_age: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            webhook_max_body: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 64,
            max_connection_age: Duration::from_secs(60),
        }
    }
}

/// Connections from loopback served at once (and as many waiting).
pub const LOOPBACK_CONNECTIONS: usize = 8;

/// A cap on connections served at once, with a bounded FIFO queue of
/// accepted connections waiting for a slot.
#[derive(Clone)]
struct Pool {
    serving: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
}

impl Pool {
    fn new(size: usize) -> Pool {
        Pool {
            serving: Arc::new(Semaphore::new(size.max(1))),
            waiting: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// A free slot serves a new connection at once; otherwise it waits in
    /// the queue, in arrival order; `None` when the queue is full too.
    /// (Taking a queue place first would count a burst of new connections
    /// against the queue before any of them got its free slot, and close
    /// some unanswered.)
    fn admit(&self) -> Option<Admission> {
        match self.serving.clone().try_acquire_owned() {
            Ok(slot) => Some(Admission::Serving(slot)),
            Err(_) => self
                .waiting
                .clone()
                .try_acquire_owned()
                .ok()
                .map(Admission::Queued),
        }
    }
}

/// How an accepted connection got in: a slot of its own, or a place in
/// the queue for one.
enum Admission {
    Serving(OwnedSemaphorePermit),
    Queued(OwnedSemaphorePermit),
}

impl Admission {
    /// The connection's slot: at once, or once one frees (leaving the
    /// queue then); `None` when the server stops first.
    async fn slot(self, pool: &Pool, stop: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        match self {
            Admission::Serving(slot) => Some(slot),
            Admission::Queued(_place) => tokio::select! {
                _ = stop.cancelled() => None,
                // The semaphores are never closed.
                p = pool.serving.clone().acquire_owned() => p.ok(),
            },
        }
    }
}

/// Largest read buffer of a connection, which bounds a request's headers
/// (hyper's default is ~400 KiB; real requests send under 8 KiB).
const HEADER_BUFFER: usize = 64 * 1024;

/// How long a connection may finish its request in flight once the server
/// stops or the connection reached its age.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub status: Arc<Mutex<AgentStatus>>,
    pub trigger: Arc<Trigger>,
    /// `None`: the webhook is disabled.
    pub webhook_secret: Option<Arc<Vec<u8>>>,
    /// `Some`: `/status` requires `Authorization: Bearer <token>`.
    pub status_token: Option<Arc<Vec<u8>>>,
    /// Masks the errors `/status` and `/healthz` show.
    pub redactor: Redactor,
    pub limits: HttpLimits,
}

impl HttpState {
    /// The status as it may be shown: every error masked.
    pub(crate) fn snapshot(&self) -> AgentStatus {
        // A poisoned status is still the last status written.
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let m = |e: &mut Option<String>| {
            if let Some(text) = e {
                *text = mask::error_text(&self.redactor, text);
            }
        };
        m(&mut s.last_error);
        for stack in s.stacks.values_mut() {
            m(&mut stack.error);
        }
        s
    }
}

/// The router with every endpoint.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status_json))
        .route("/webhook", post(webhook_trigger))
        .route("/sync", post(super::history::sync_request))
        .with_state(state)
}

/// Serve `app` on `listener` until `stop`, then let the requests in flight
/// finish (at most [`CLOSE_GRACE`]). hyper's HTTP/1 connection enforces
/// the header timeout and the header size; tokio semaphores (fair, so
/// first come, first served) cap the connections served at once, one pool
/// for remote peers and one for loopback; the timeouts and the connection
/// age free a held slot within seconds. Connections are tasks of a
/// [`JoinSet`]: dropping this future closes all of them.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let remote = Pool::new(limits.max_connections);
    let local = Pool::new(LOOPBACK_CONNECTIONS);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HEADER_BUFFER)
        .keep_alive(true);
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or the peer left before the
                    // accept: wait a little rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let pool = if peer.ip().to_canonical().is_loopback() {
            local.clone()
        } else {
            remote.clone()
        };
        let Some(admitted) = pool.admit() else {
            tracing::debug!(%peer, "HTTP connection closed: every slot taken and the queue full");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn =
            http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let stop = stop.clone();
        connections.spawn(async move {
            let Some(_serving) = admitted.slot(&pool, &stop).await else {
                return;
            };
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "HTTP connection closed");
                    }
                    return;
                }
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(limits.max_connection_age) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
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

async fn status_json(State(st): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(token) = &st.status_token {
        if !bearer_matches(&headers, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"shoal /status\"")],
                "/status requires Authorization: Bearer <the --status-token-file token>\n",
            )
                .into_response();
        }
    }
    Json(st.snapshot().to_json()).into_response()
}

/// Whether the request carries `Authorization: Bearer <token>` (the scheme
/// is case-insensitive, RFC 9110); the token is compared in constant time.
pub fn bearer_matches(headers: &HeaderMap, token: &[u8]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        return false;
    };
    let (scheme, given) = (&value[..space], value[space..].trim_ascii());
    scheme.eq_ignore_ascii_case(b"bearer") && bool::from(given.ct_eq(token))
}

/// A refusal sent before the body was read: the connection is closed after
/// it, so the unread body is never taken in.
fn refuse_early(code: StatusCode, text: String) -> Response {
    let mut r = (code, text).into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// `POST /webhook`: everything the headers can decide is decided before
/// the body is read (endpoint disabled, no or malformed credential, a
/// GitLab token, a declared length over the limit); the body is then read
/// up to the limit and within the body timeout, and its HMAC checked.
async fn webhook_trigger(State(st): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let Some(secret) = &st.webhook_secret else {
        return refuse_early(
            StatusCode::NOT_FOUND,
            "webhook disabled: start the agent with --webhook-secret-file\n".into(),
        );
    };
    let limit = st.limits.webhook_max_body;
    let credential = match webhook::Credential::from_headers(&headers) {
        Ok(c) => c,
        Err(refusal) => return accept_or_refuse(&st, Err(refusal)),
    };
    if !credential.needs_body() {
        // A token is decided by the headers: the body is never read.
        return accept_or_refuse(&st, credential.verify(secret, &[]));
    }
    let too_big = || {
        tracing::warn!(limit, "webhook refused: body over the limit");
        refuse_early(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "webhook body over {limit} bytes: not read; the next poll picks the commit up\n"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_big();
    }
    let read = axum::body::to_bytes(body, limit);
    let body = match tokio::time::timeout(st.limits.body_read_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        // A chunked body past the limit: to_bytes stopped reading there.
        Ok(Err(e)) if is_length_limit(&e) => return too_big(),
        Ok(Err(e)) => {
            return refuse_early(
                StatusCode::BAD_REQUEST,
                format!("webhook body unreadable: {e}\n"),
            )
        }
        Err(_) => {
            tracing::warn!(timeout = ?st.limits.body_read_timeout, "webhook refused: body too slow");
            return refuse_early(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "webhook body not received within {:?}\n",
                    st.limits.body_read_timeout
                ),
            );
        }
    };
    accept_or_refuse(&st, credential.verify(secret, &body))
}

/// 202 and a reconcile queued, or 401 naming what did not match.
fn accept_or_refuse(
    st: &HttpState,
    verdict: Result<webhook::Sender, webhook::Refusal>,
) -> Response {
    match verdict {
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
            refuse_early(StatusCode::UNAUTHORIZED, format!("{refusal}\n"))
        }
    }
}

/// Whether a body error is `to_bytes` stopping at its limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
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

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_token_must_match_exactly() {
        let t = b"s3cr3t-token";
        assert!(bearer_matches(&with_auth("Bearer s3cr3t-token"), t));
        assert!(bearer_matches(&with_auth("bearer  s3cr3t-token "), t));
        for wrong in [
            "Bearer s3cr3t-toke",
            "Bearer s3cr3t-token2",
            "Basic s3cr3t-token",
            "s3cr3t-token",
            "Bearer",
            "Bearer ",
        ] {
            assert!(!bearer_matches(&with_auth(wrong), t), "{wrong}");
        }
        assert!(!bearer_matches(&HeaderMap::new(), t));
    }

    #[test]
    fn status_errors_are_masked() {
        let redactor = Redactor::new();
        redactor.register("pl41n-secret");
        let mut s = AgentStatus::new("a", true);
        s.last_error = Some("source: https://bot:ghp_tok@git.example/r.git: 403".into());
        s.stacks.insert(
            "web".into(),
            crate::agent::status::StackStatus {
                commit: "c".into(),
                applied_commit: None,
                outcome: crate::agent::status::Outcome::ApplyFailed,
                status: crate::agent::status::StackState::ApplyFailed,
                summary: Default::default(),
                drift: false,
                error: Some("env: DB_PASSWORD=pl41n-secret".into()),
                last_reconcile: std::time::SystemTime::UNIX_EPOCH,
                failures: 1,
                failed_commit: None,
            },
        );
        let st = HttpState {
            status: Arc::new(Mutex::new(s)),
            trigger: Arc::new(Trigger::new()),
            webhook_secret: None,
            status_token: None,
            redactor,
            limits: HttpLimits::default(),
        };
        let shown = st.snapshot();
        assert_eq!(
            shown.last_error.as_deref(),
            Some("source: https://***@git.example/r.git: 403")
        );
        assert_eq!(
            shown.stacks["web"].error.as_deref(),
            Some("env: DB_PASSWORD=(sensitive)")
        );
        let (_, body) = health(&shown);
        assert!(!body.contains("ghp_tok"), "{body}");
    }

    #[test]
    fn default_limits_are_the_documented_ones() {
        let l = HttpLimits::default();
        assert_eq!(l.webhook_max_body, 1 << 20);
        assert_eq!(l.header_read_timeout, Duration::from_secs(10));
        assert_eq!(l.body_read_timeout, Duration::from_secs(10));
        assert_eq!(l.max_connections, 64);
    }
}
