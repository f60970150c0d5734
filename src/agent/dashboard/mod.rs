//! The agent's web dashboard on its listen address: `GET /` (agent health
//! and one row per stack), `GET /stacks/<name>` (last plan, policy
//! verdicts, last error with its causes, history), `POST
//! /stacks/<name>/sync` ("sync now"), and sign-in. Server-rendered HTML
//! that works without JavaScript; a small embedded script refreshes the
//! live region every few seconds. Reading follows `/status`'s rule, acting
//! needs `--ui-token-file` (see [`auth`]). Everything it shows comes from
//! the shared status, masked like `/status`.
pub mod auth;
pub mod facts;
pub mod forge;
pub mod html;
pub mod view;

pub use facts::{HistoryEntry, PageFacts, PassFacts, StackFacts, StepEnd};

use super::http::HttpState;
use super::mask;
use super::reconciler::{CommitMeta, Reconciler};
use super::status::AgentStatus;
use auth::{Access, Grant};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub const CSS_PATH: &str = "/ui/app.css";
pub const JS_PATH: &str = "/ui/app.js";
const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// Longest sign-in form body (a token is well under 1 KiB).
const LOGIN_BODY_MAX: usize = 4096;
/// Commit descriptions kept (ids are immutable, so they never go stale).
const COMMIT_CACHE: usize = 512;

/// No script but our own file, no style but our own sheet, no frames, forms
/// only to this agent: a defence in depth behind the escaping.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Looks a commit id up in the source (blocking).
type Describe = dyn Fn(&str) -> Option<CommitMeta> + Send + Sync;

/// Where commit subjects, authors and times come from: the reconciler's
/// source (the git cache), asked off the async threads and remembered.
#[derive(Clone)]
pub struct Source {
    describe: Arc<Describe>,
    url: Option<String>,
    cache: Arc<Mutex<HashMap<String, CommitMeta>>>,
}

impl Source {
    pub fn of<R: Reconciler>(reconciler: &Arc<R>) -> Source {
        let r = reconciler.clone();
        Source {
            url: reconciler.source_url(),
            describe: Arc::new(move |id| r.describe(id)),
            cache: Arc::default(),
        }
    }

    async fn commits(&self, ids: Vec<String>) -> view::Commits {
        let mut known = BTreeMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                match cache.get(&id) {
                    Some(m) => {
                        known.insert(id, m.clone());
                    }
                    None => missing.push(id),
                }
            }
        }
        if !missing.is_empty() {
            let describe = self.describe.clone();
            let found = tokio::task::spawn_blocking(move || {
                missing
                    .into_iter()
                    .filter_map(|id| describe(&id).map(|m| (id, m)))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() + found.len() > COMMIT_CACHE {
                cache.clear();
            }
            for (id, m) in found {
                cache.insert(id.clone(), m.clone());
                known.insert(id, m);
            }
        }
        view::Commits {
            known,
            source_url: self.url.clone(),
        }
    }
}

#[derive(Clone)]
struct Dash {
    http: HttpState,
    source: Source,
    access: Access,
    interval: Duration,
}

impl Dash {
    /// The status as the page may show it: `/status`'s masking, and the
    /// same for the plans and errors only the page shows.
    /// What a reader of the pages gets: their grant, the agent's status
    /// and the commits it names; the sign-in page when they may not read.
    async fn read(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Grant, AgentStatus, view::Commits), Response> {
        let grant = self.access.grant(headers, SystemTime::now());
        if !self.access.can_read(grant) {
            return Err(sign_in_first(self));
        }
        let status = self.status();
        let commits = self.source.commits(view::commit_ids(&status)).await;
        Ok((grant, status, commits))
    }

    fn status(&self) -> AgentStatus {
        let mut s = self.http.snapshot();
        let m = |t: &mut String| *t = mask::error_text(&self.http.redactor, t);
        for f in s.page.stacks.values_mut() {
            if let Some(p) = &mut f.plan {
                m(&mut p.text);
            }
            for h in &mut f.history {
                if let Some(e) = &mut h.error {
                    m(e);
                }
            }
        }
        s
    }

    fn ctx(&self, grant: Grant, headers: &HeaderMap, notice: Option<String>) -> html::Ctx {
        let has_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains(auth::COOKIE)));
        html::Ctx {
            now: SystemTime::now(),
            interval: self.interval,
            can_act: self.access.can_act(grant),
            can_sign_in: (self.access.actions_enabled() && grant < Grant::Act)
                || (!self.access.read_is_open() && grant < Grant::Read),
            signed_in: has_cookie && grant > Grant::None,
            notice,
        }
    }
}

/// The dashboard's routes, to merge with the agent's router.
pub fn router(
    http: HttpState,
    source: Source,
    ui_token: Option<Arc<Vec<u8>>>,
    interval: Duration,
) -> Router {
    let access = Access {
        status_token: http.status_token.clone(),
        ui_token,
    };
    Router::new()
        .route("/", get(overview))
        .route("/stacks/{name}", get(stack))
        .route("/stacks/{name}/sync", post(sync))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(CSS_PATH, get(|| async { asset("text/css", CSS) }))
        .route(JS_PATH, get(|| async { asset("text/javascript", JS) }))
        .with_state(Dash {
            http,
            source,
            access,
            interval,
        })
}

#[derive(serde::Deserialize)]
struct PageQuery {
    /// `live`: only the live region (the page's script asks for it).
    fragment: Option<String>,
    /// Set after "sync now" redirected back.
    synced: Option<String>,
}

async fn overview(
    State(d): State<Dash>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let (grant, status, commits) = match d.read(&headers).await {
        Ok(seen) => seen,
        Err(sign_in) => return sign_in,
    };
    let o = view::overview(&status, &commits);
    let ctx = d.ctx(grant, &headers, None);
    let live = html::overview(&o, &ctx);
    live_or_page(&q, "Stacks", &ctx, "/?fragment=live", live)
}

async fn stack(
    State(d): State<Dash>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let (grant, status, commits) = match d.read(&headers).await {
        Ok(seen) => seen,
        Err(sign_in) => return sign_in,
    };
    let Some(p) = view::stack_page(&status, &name, &commits) else {
        return html_response(
            StatusCode::NOT_FOUND,
            html::message(
                "No such stack",
                &format!("This agent reports no stack named {name:?}."),
            ),
        );
    };
    let notice = q
        .synced
        .is_some()
        .then(|| format!("Sync of {name} queued: the next pass starts now."));
    let ctx = d.ctx(grant, &headers, notice);
    let live = html::stack(&p, &ctx);
    let live_src = format!("{}?fragment=live", html::stack_href(&name));
    live_or_page(&q, &name, &ctx, &live_src, live)
}

/// The live region alone when the page's script asks for it
/// (`?fragment=live`), else the whole page around it.
fn live_or_page(
    q: &PageQuery,
    title: &str,
    ctx: &html::Ctx,
    live_src: &str,
    live: maud::Markup,
) -> Response {
    if q.fragment.as_deref() == Some("live") {
        return html_response(StatusCode::OK, live);
    }
    html_response(StatusCode::OK, html::page(title, ctx, live_src, live))
}

/// "Sync now": a pass right away, with the stack's retry wait skipped.
async fn sync(State(d): State<Dash>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if !d.access.actions_enabled() {
        return plain(
            StatusCode::NOT_FOUND,
            "dashboard actions are disabled: start the agent with --ui-token-file\n",
        );
    }
    if !auth::same_origin(&headers) {
        return plain(
            StatusCode::FORBIDDEN,
            "refused: the request came from another site\n",
        );
    }
    let grant = d.access.grant(&headers, SystemTime::now());
    if !d.access.can_act(grant) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"shoal dashboard\"")],
            "sync needs the --ui-token-file token: Authorization: Bearer <token>, or sign in at /login\n",
        )
            .into_response();
    }
    if !d.http.snapshot().stacks.contains_key(&name) {
        return plain(StatusCode::NOT_FOUND, "no such stack\n");
    }
    tracing::info!(stack = %name, "dashboard: sync now");
    d.http.trigger.sync_stack(&name);
    if headers.contains_key(header::AUTHORIZATION) {
        // An API client: no page to go back to.
        return (StatusCode::ACCEPTED, "sync queued\n").into_response();
    }
    redirect(&format!("{}?synced=1", html::stack_href(&name)), None)
}

async fn login_form(State(d): State<Dash>) -> Response {
    html_response(
        StatusCode::OK,
        html::login(None, d.access.actions_enabled(), !d.access.read_is_open()),
    )
}

async fn login(State(d): State<Dash>, headers: HeaderMap, body: Body) -> Response {
    if !auth::same_origin(&headers) {
        return plain(
            StatusCode::FORBIDDEN,
            "refused: the request came from another site\n",
        );
    }
    let read = axum::body::to_bytes(body, LOGIN_BODY_MAX);
    let Ok(Ok(bytes)) = tokio::time::timeout(d.http.limits.body_read_timeout, read).await else {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "sign-in form too large or too slow\n",
        );
    };
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let now = SystemTime::now();
    let grant = d.access.grant_of_token(token.as_bytes());
    let Some(value) = d.access.session_value(grant, now) else {
        tracing::warn!("dashboard: sign-in refused (wrong token)");
        // Slow down guessing; tokens are compared in constant time.
        tokio::time::sleep(Duration::from_millis(500)).await;
        return html_response(
            StatusCode::UNAUTHORIZED,
            html::login(
                Some("That token is not this agent's status or UI token."),
                d.access.actions_enabled(),
                !d.access.read_is_open(),
            ),
        );
    };
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    redirect("/", Some(auth::set_cookie(&value, secure)))
}

async fn logout(headers: HeaderMap) -> Response {
    if !auth::same_origin(&headers) {
        return plain(
            StatusCode::FORBIDDEN,
            "refused: the request came from another site\n",
        );
    }
    redirect("/", Some(auth::clear_cookie()))
}

fn sign_in_first(d: &Dash) -> Response {
    let mut r = html_response(
        StatusCode::UNAUTHORIZED,
        html::login(
            Some("This agent's status is private: sign in with its status token (or send Authorization: Bearer)."),
            d.access.actions_enabled(),
            true,
        ),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"shoal dashboard\""),
    );
    r
}

fn secure_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn html_response(code: StatusCode, markup: Markup) -> Response {
    let mut r = (
        code,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response();
    secure_headers(&mut r);
    r
}

fn plain(code: StatusCode, text: &'static str) -> Response {
    let mut r = (code, text).into_response();
    secure_headers(&mut r);
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response();
    secure_headers(&mut r);
    r
}

/// 303 to `to` (a page of this agent), with a cookie to set.
fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut r = (StatusCode::SEE_OTHER, "").into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    secure_headers(&mut r);
    r
}
