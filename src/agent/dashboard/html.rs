//! The dashboard's HTML, rendered from the view model with maud: every
//! value interpolated with `(...)` is escaped, in text and attributes
//! alike, so repository text (commit subjects, errors, plans) can never
//! become markup. Nothing here uses `PreEscaped` on data.
use super::view::{CommitView, ErrorView, Health, Overview, Row, StackPage, State};
use crate::agent::status::Role;
use maud::{html, Markup, DOCTYPE};
use std::time::{Duration, SystemTime};

/// What every page needs besides its own data.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub now: SystemTime,
    /// The agent's poll interval, for the "next poll" line.
    pub interval: Duration,
    /// "Sync now" is offered.
    pub can_act: bool,
    /// A sign-in can give more than the request has now.
    pub can_sign_in: bool,
    /// The request carries a session cookie that grants something.
    pub signed_in: bool,
    /// A message after an action ("sync of web queued").
    pub notice: Option<String>,
}

/// A whole page: header, the live region (replaced by the page's script
/// every few seconds), footer.
pub fn page(title: &str, ctx: &Ctx, live_src: &str, live: Markup) -> Markup {
    let scripts = html! {
        noscript { meta http-equiv="refresh" content="30"; }
        script src=(super::JS_PATH) defer {}
    };
    document(
        title,
        scripts,
        html! {
            a.skip href="#live" { "Skip to content" }
            header.top {
                a.brand href="/" { "shoal" }
                span.sub { "GitOps agent for Docker Swarm" }
                nav aria-label="Session" {
                    @if ctx.signed_in {
                        form method="post" action="/logout" {
                            button.link type="submit" { "Sign out" }
                        }
                    } @else if ctx.can_sign_in {
                        a href="/login" { "Sign in" }
                    }
                }
            }
            @if let Some(n) = &ctx.notice {
                p.notice role="status" { (n) }
            }
            main #live data-src=(live_src) aria-busy="false" {
                (live)
            }
            footer {
                p #updated {
                    "Shown at " (clock(ctx.now)) ". "
                    span.js-only { "Updates live every few seconds." }
                    noscript { "Reload the page to update (it reloads itself every 30 s)." }
                }
                p { "Machine-readable: " a href="/status" { "/status" } " · " a href="/metrics" { "/metrics" } }
            }
        },
    )
}

/// Every page's document: the same head (charset, viewport, dark colour
/// scheme, title, the embedded stylesheet) with `head_extra`, then `body`.
fn document(title: &str, head_extra: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="dark";
                title { (title) " · shoal" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(super::CSS_PATH);
                (head_extra)
            }
            body { (body) }
        }
    }
}

/// The overview's live region: agent health, then one row per stack.
pub fn overview(o: &Overview, ctx: &Ctx) -> Markup {
    html! {
        (health(&o.health, ctx))
        section aria-labelledby="stacks-h" {
            h2 #stacks-h { "Stacks" }
            p.counts #counts {
                @if o.rows.is_empty() && o.health.role == Role::Standby {
                    "This agent stands by and runs no passes; the lease holder's page shows the stacks."
                } @else if o.rows.is_empty() {
                    "No stack yet: the first pass has not finished, or the repository has no stacks."
                } @else {
                    (o.rows.len()) " stacks: "
                    @for (i, (state, n)) in o.counts().iter().enumerate() {
                        @if i > 0 { ", " }
                        span class=(format!("state state-{}", state.token())) { (n) " " (state.label()) }
                    }
                }
            }
            @if !o.rows.is_empty() {
                div.table-wrap {
                    table.stacks {
                        caption.visually-hidden { "Each stack's state, commit and last pass" }
                        thead { tr {
                            th scope="col" { "Stack" }
                            th scope="col" { "State" }
                            th scope="col" { "Commit" }
                            th scope="col" { "Last pass" }
                            th scope="col" { "Changes" }
                            @if ctx.can_act { th scope="col" { span.visually-hidden { "Actions" } } }
                        } }
                        tbody {
                            @for r in &o.rows { (row(r, ctx)) }
                        }
                    }
                }
            }
        }
    }
}

fn row(r: &Row, ctx: &Ctx) -> Markup {
    html! {
        tr id=(format!("stack-{}", r.name)) data-state=(r.state.token()) {
            th scope="row" data-label="Stack" {
                a href=(stack_href(&r.name)) { (r.name) }
            }
            td data-label="State" {
                (badge(r.state))
                @if let Some(e) = &r.error_line {
                    p.error-line { (e) }
                }
            }
            td data-label="Commit" {
                @if let Some(c) = &r.commit { (commit(c, ctx)) } @else { span.muted { "never applied" } }
                @if let Some(a) = &r.attempted {
                    p.attempted { "last tried: " (commit_id(a)) }
                }
            }
            td data-label="Last pass" {
                (when(r.last_pass, ctx.now))
                @if let Some(t) = r.took { br; span.muted.nowrap { "took " (duration(t)) } }
            }
            td data-label="Changes" { (summary(&r.summary)) }
            @if ctx.can_act {
                td data-label="Actions" { (sync_button(&r.name)) }
            }
        }
    }
}

fn health(h: &Health, ctx: &Ctx) -> Markup {
    let role = match (h.role, &h.holder) {
        (Role::Leader, _) => "applier (holds the lease)".to_string(),
        (Role::Standby, Some(holder)) => format!("standby: {holder} applies"),
        (Role::Standby, None) => "standby".to_string(),
        (Role::Starting, _) => "starting (lease not decided yet)".to_string(),
    };
    html! {
        section.health aria-labelledby="agent-h" {
            h2 #agent-h { "Agent " span.muted { (h.identity) } }
            dl.facts {
                div { dt { "Role" } dd #role data-role=(format!("{:?}", h.role).to_lowercase()) { (role) } }
                div { dt { "Last successful pass" } dd {
                    @match h.last_success { Some(t) => (when(t, ctx.now)), None => span.muted { "none yet" } }
                } }
                div { dt { "Last pass" } dd {
                    @match h.last_pass {
                        Some(p) => { (when(p.started, ctx.now)) ", took " (duration(p.took)) }
                        None => span.muted { "none yet" }
                    }
                } }
                div { dt { "Next poll" } dd {
                    @match h.next_poll {
                        Some(t) if h.role != Role::Standby => (until(t, ctx.now)),
                        _ => span.muted { "every " (duration(ctx.interval)) }
                    }
                } }
                div { dt { "Source" } dd {
                    @match &h.source { Some(c) => (commit(c, ctx)), None => span.muted { "not read yet" } }
                } }
                div { dt { "Git fetch errors" } dd #fetch-errors {
                    span class=(if h.git_fetch_errors > 0 { "bad" } else { "" }) { (h.git_fetch_errors) }
                } }
                div { dt { "Drift" } dd { @if h.self_heal { "healed (git wins)" } @else { "reported, not healed" } } }
                @if let Some(a) = &h.applying {
                    div { dt { "Applying" } dd { (badge(State::Applying)) " " (a) } }
                }
            }
            @if let Some(e) = &h.last_error {
                div.alert role="alert" {
                    strong { "Last pass error: " }
                    span.error-text { (e) }
                }
            }
            @if !h.ready && h.role != Role::Standby {
                p.muted { "The first pass has not finished yet." }
            }
        }
    }
}

/// A stack page's live region.
pub fn stack(p: &StackPage, ctx: &Ctx) -> Markup {
    let r = &p.row;
    html! {
        p.back { a href="/" { "← All stacks" } }
        section aria-labelledby="stack-h" id=(format!("stack-{}", r.name)) data-state=(r.state.token()) {
            h1 #stack-h { "Stack " (r.name) }
            dl.facts {
                div { dt { "State" } dd { (badge(r.state)) @if let Some(d) = &r.detail { " " span.muted { (d) } } } }
                div { dt { "Commit" } dd {
                    @if let Some(c) = &r.commit { (commit(c, ctx)) } @else { span.muted { "never applied" } }
                    @if let Some(at) = &p.applied_at { br; span.muted { "applied " (at) } }
                } }
                @if let Some(a) = &r.attempted {
                    div { dt { "Last tried" } dd { (commit(a, ctx)) } }
                }
                div { dt { "Last pass" } dd {
                    (when(r.last_pass, ctx.now))
                    @if let Some(t) = r.took { ", took " (duration(t)) }
                } }
                div { dt { "Changes" } dd { (summary(&r.summary)) } }
                @if p.failures > 0 { div { dt { "Failed applies in a row" } dd { (p.failures) } } }
            }
            @if ctx.can_act { (sync_button(&r.name)) }
        }
        @if let Some(e) = &p.error { (error(e)) }
        (last_plan(p, ctx))
        (verdicts(p))
        (history(p, ctx))
    }
}

/// The last plan of a stack page, as the agent planned it.
fn last_plan(p: &StackPage, ctx: &Ctx) -> Markup {
    html! {
        section aria-labelledby="plan-h" {
            h2 #plan-h { "Last plan" }
            @if let Some((c, at)) = &p.plan_of {
                p.muted { "Planned at " (commit_id(c)) ", " (when(*at, ctx.now)) "."
                    @if p.in_sync_since_plan { " Applied: later passes found nothing to change." } }
            }
            @if p.plan.is_empty() {
                p.muted { "No plan: the stack did not get that far (see the error)." }
            } @else {
                pre.plan tabindex="0" aria-label="Plan text" {
                    @for l in &p.plan {
                        span class=(format!("pl pl-{}", l.kind)) { (l.text) } "\n"
                    }
                }
            }
        }
    }
}

/// The policy verdicts of a stack page.
fn verdicts(p: &StackPage) -> Markup {
    html! {
        section aria-labelledby="policy-h" {
            h2 #policy-h { "Policy verdicts" }
            @if p.verdicts.is_empty() {
                p.muted { "No policy has anything to say." }
            } @else {
                ul.verdicts {
                    @for v in &p.verdicts {
                        li { span class=(format!("level level-{}", v.level)) { (v.level) } " " (v.text) }
                    }
                }
            }
        }
    }
}

/// A stack page's history, newest first.
fn history(p: &StackPage, ctx: &Ctx) -> Markup {
    html! {
        section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            @if p.history.is_empty() {
                p.muted { "Nothing recorded yet." }
            } @else {
                div.table-wrap {
                    table.history {
                        caption.visually-hidden { "Commits applied and failures, newest first" }
                        thead { tr {
                            th scope="col" { "When" }
                            th scope="col" { "Commit" }
                            th scope="col" { "Outcome" }
                        } }
                        tbody {
                            @for h in &p.history {
                                tr {
                                    td data-label="When" {
                                        @match h.at { Some(t) => (when(t, ctx.now)), None => span.muted { "unknown" } }
                                    }
                                    td data-label="Commit" { (commit(&h.commit, ctx)) }
                                    td data-label="Outcome" {
                                        span class=(if h.ok { "outcome ok" } else { "outcome bad" }) { (h.outcome) }
                                        @if h.from_record { " " span.muted { "(from the swarm's state record)" } }
                                        @if let Some(e) = &h.error { p.error-line { (e) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn error(e: &ErrorView) -> Markup {
    html! {
        section.alert aria-labelledby="error-h" {
            h2 #error-h { "Last error" }
            pre.error-text tabindex="0" { (e.text) }
            @if !e.chain.is_empty() {
                h3 { "Cause chain" }
                ol.chain {
                    @for c in &e.chain { li { (c) } }
                }
            }
        }
    }
}

/// The sign-in page.
pub fn login(message: Option<&str>, actions: bool, read_needs_token: bool) -> Markup {
    let what = match (actions, read_needs_token) {
        (true, true) => "the status token to see the stacks, the UI token to also sync them",
        (true, false) => "the UI token (--ui-token-file) to sync stacks",
        (false, true) => "the status token (--status-token-file) to see the stacks",
        (false, false) => "",
    };
    document(
        "Sign in",
        html! {},
        html! {
            header.top { a.brand href="/" { "shoal" } }
            main.login {
                h1 { "Sign in" }
                @if what.is_empty() {
                    p { "This agent needs no token: the dashboard is open and has no actions (start the agent with --ui-token-file to enable them)." }
                    p { a href="/" { "To the dashboard" } }
                } @else {
                    p { "Paste " (what) "." }
                    @if let Some(m) = message { p.alert role="alert" { (m) } }
                    form method="post" action="/login" {
                        label for="token" { "Token" }
                        input #token name="token" type="password" autocomplete="current-password" required autofocus;
                        button type="submit" { "Sign in" }
                    }
                    p.muted { "Signing in sets a cookie (HttpOnly, SameSite=Strict) for 12 hours; it holds no token." }
                }
            }
        },
    )
}

/// A small page for "not found" and "not allowed".
pub fn message(title: &str, text: &str) -> Markup {
    document(
        title,
        html! {},
        html! {
            header.top { a.brand href="/" { "shoal" } }
            main { h1 { (title) } p { (text) } p { a href="/" { "To the dashboard" } } }
        },
    )
}

fn sync_button(stack: &str) -> Markup {
    html! {
        form.sync method="post" action=(format!("{}/sync", stack_href(stack))) {
            button type="submit" id=(format!("sync-{stack}")) aria-label=(format!("Sync {stack} now")) { "Sync now" }
        }
    }
}

fn badge(s: State) -> Markup {
    html! { span class=(format!("state state-{}", s.token())) { (s.label()) } }
}

fn commit_id(c: &CommitView) -> Markup {
    html! {
        @match &c.link {
            Some(href) => a href=(href) rel="noreferrer" title=(c.id) { code { (c.short) } },
            None => code title=(c.id) { (c.short) },
        }
    }
}

fn commit(c: &CommitView, ctx: &Ctx) -> Markup {
    html! {
        span.commit {
            (commit_id(c))
            @if let Some(m) = &c.meta {
                " " span.subject { (m.subject) }
                br;
                span.muted { (m.author) ", " (when(m.time, ctx.now)) }
            }
        }
    }
}

fn summary(s: &crate::model::Summary) -> Markup {
    html! {
        @if s.create + s.update + s.delete == 0 {
            span.muted { "none" }
        } @else {
            span.summary {
                span.pl-create { "+" (s.create) } " "
                span.pl-update { "~" (s.update) } " "
                span.pl-delete { "-" (s.delete) }
            }
            span.visually-hidden { ": " (s.create) " to create, " (s.update) " to update, " (s.delete) " to delete" }
        }
    }
}

/// `/stacks/<name>`, the name percent-encoded.
pub fn stack_href(name: &str) -> String {
    let mut out = String::from("/stacks/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `<time>` with the UTC time and how long ago.
fn when(t: SystemTime, now: SystemTime) -> Markup {
    html! {
        time datetime=(humantime::format_rfc3339_seconds(t).to_string()) title=(clock(t)) { (ago(t, now)) }
    }
}

fn until(t: SystemTime, now: SystemTime) -> Markup {
    let text = match t.duration_since(now) {
        Ok(d) if d.as_secs() >= 1 => format!("in {}", span(d)),
        _ => "due now".to_string(),
    };
    html! { time datetime=(humantime::format_rfc3339_seconds(t).to_string()) title=(clock(t)) { (text) } }
}

/// `2026-12-03 07:41:52 UTC`
pub fn clock(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// `12 s ago`, `5 min ago`, with the clock time for anything older than
/// a day.
pub fn ago(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(d) if d.as_secs() < 2 => "just now".to_string(),
        Ok(d) if d.as_secs() < 86_400 => format!("{} ago", span(d)),
        Ok(_) => clock(t),
        // A time ahead of this clock (another manager's clock).
        Err(_) => "just now".to_string(),
    }
}

/// A coarse span: `45 s`, `12 min`, `3 h 5 min`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// A precise duration: `850 ms`, `3.4 s`, `2 min 5 s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "< 1 ms".to_string(),
        1..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", d.as_secs_f64()),
        _ => format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::dashboard::view::{self, Commits};
    use crate::agent::reconciler::CommitMeta;
    use crate::agent::status::{AgentStatus, Outcome, StackStatus};
    use std::collections::BTreeMap;

    const C1: &str = "3f2a9c1d0e5b6a7980123456789abcdef0123456";

    fn ctx() -> Ctx {
        Ctx {
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_060),
            interval: Duration::from_secs(30),
            can_act: true,
            can_sign_in: false,
            signed_in: false,
            notice: None,
        }
    }

    /// A status whose every repository-controlled text tries to inject.
    fn hostile() -> (AgentStatus, Commits) {
        let evil = "<script>alert(1)</script>";
        let mut s = AgentStatus::new("node<b>1", true);
        let name = "web\"><img src=x onerror=alert(1)>";
        s.stacks.insert(
            name.into(),
            StackStatus {
                commit: C1.into(),
                applied_commit: Some(C1.into()),
                outcome: Outcome::ApplyFailed,
                status: Outcome::ApplyFailed.status(),
                summary: Default::default(),
                drift: false,
                error: Some(format!("service web_app: {evil}: & more")),
                last_reconcile: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                failures: 2,
                failed_commit: None,
            },
        );
        s.last_error = Some(evil.into());
        s.page.stacks.insert(
            name.into(),
            crate::agent::dashboard::StackFacts {
                plan: Some(crate::agent::dashboard::facts::PlanFacts {
                    text: format!("~ service web_app\n    Labels[x]: \"{evil}\"\n"),
                    commit: C1.into(),
                    at: SystemTime::UNIX_EPOCH,
                    has_changes: true,
                }),
                ..Default::default()
            },
        );
        let commits = Commits {
            known: BTreeMap::from([(
                C1.to_string(),
                CommitMeta {
                    subject: format!("Fix {evil}"),
                    author: "Mallory <m@x>".into(),
                    time: SystemTime::UNIX_EPOCH,
                },
            )]),
            source_url: Some("https://github.com/o/r.git".into()),
        };
        (s, commits)
    }

    #[test]
    fn repository_text_is_escaped_everywhere() {
        let (s, commits) = hostile();
        let o = view::overview(&s, &commits);
        let live = overview(&o, &ctx());
        let html = page("Stacks", &ctx(), "/?fragment=live", live).into_string();
        let name = s.stacks.keys().next().unwrap().clone();
        let stack_html =
            stack(&view::stack_page(&s, &name, &commits).unwrap(), &ctx()).into_string();
        for h in [&html, &stack_html] {
            assert!(!h.contains("<script>alert"), "{h}");
            assert!(!h.contains("<img"), "{h}");
            assert!(h.contains("web&quot;&gt;&lt;img"), "{h}");
            assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{h}");
        }
        assert!(html.contains("Fix &lt;script&gt;"));
        assert!(html.contains("Mallory &lt;m@x&gt;"));
        assert!(html.contains("node&lt;b&gt;1"));
        assert!(html.contains("&amp; more"));
        // The only script is the page's own file.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains(&format!("<script src=\"{}\" defer>", super::super::JS_PATH)));
        // The stack's link is percent-encoded.
        assert!(
            html.contains("href=\"/stacks/web%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E\"")
        );
    }

    #[test]
    fn a_row_shows_state_commit_link_and_sync_only_when_allowed() {
        let (mut s, commits) = hostile();
        s.stacks = BTreeMap::from([("web".to_string(), s.stacks.values().next().unwrap().clone())]);
        let o = view::overview(&s, &commits);
        let html = overview(&o, &ctx()).into_string();
        assert!(
            html.contains("id=\"stack-web\" data-state=\"failed\""),
            "{html}"
        );
        assert!(html.contains(&format!("href=\"https://github.com/o/r/commit/{C1}\"")));
        assert!(html.contains("<code>3f2a9c1</code>"));
        assert!(html.contains("action=\"/stacks/web/sync\""));
        let mut read_only = ctx();
        read_only.can_act = false;
        assert!(!overview(&o, &read_only).into_string().contains("Sync now"));
    }

    #[test]
    fn times_and_durations_read_naturally() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now - Duration::from_secs(42), now), "42 s ago");
        assert_eq!(ago(now - Duration::from_secs(7260), now), "2 h 1 min ago");
        assert_eq!(
            ago(now - Duration::from_secs(90_000), now),
            "2027-01-14 07:00:00 UTC"
        );
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_millis(3400)), "3.4 s");
        assert_eq!(duration(Duration::from_secs(125)), "2 min 5 s");
        assert_eq!(stack_href("a_b-c"), "/stacks/a_b-c");
    }

    #[test]
    fn the_login_form_is_labelled() {
        let html = login(Some("wrong token"), true, true).into_string();
        assert!(html.contains("<label for=\"token\">"));
        assert!(html.contains("id=\"token\""));
        assert!(html.contains("type=\"password\""));
        assert!(html.contains("wrong token"));
    }
}
