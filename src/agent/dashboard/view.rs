//! The page's view model: what the dashboard shows, as plain values
//! computed from the agent's (masked) status, with no HTML in them. Pure:
//! tested with hand-made statuses.
use super::facts::{PassFacts, StackFacts};
use super::forge;
use crate::agent::reconciler::CommitMeta;
use crate::agent::status::{AgentStatus, Outcome, Role, StackState, StackStatus};
use crate::model::Summary;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Where a stack stands, in the words of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Failed,
    Denied,
    DriftReported,
    Applying,
    Healed,
    InSync,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Failed,
        State::Denied,
        State::DriftReported,
        State::Applying,
        State::Healed,
        State::InSync,
    ];

    pub fn label(self) -> &'static str {
        match self {
            State::InSync => "in sync",
            State::Applying => "applying",
            State::Healed => "drifted and healed",
            State::DriftReported => "drift reported",
            State::Failed => "failed",
            State::Denied => "denied by policy",
        }
    }

    /// A stable token for CSS classes, `data-state` and tests.
    pub fn token(self) -> &'static str {
        match self {
            State::InSync => "in-sync",
            State::Applying => "applying",
            State::Healed => "healed",
            State::DriftReported => "drift",
            State::Failed => "failed",
            State::Denied => "denied",
        }
    }
}

/// A commit as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitView {
    pub id: String,
    pub short: String,
    pub meta: Option<CommitMeta>,
    pub link: Option<String>,
}

/// Commit ids the source could describe, and the source's URL.
#[derive(Debug, Clone, Default)]
pub struct Commits {
    pub known: BTreeMap<String, CommitMeta>,
    pub source_url: Option<String>,
}

impl Commits {
    pub fn view(&self, id: &str) -> CommitView {
        let hex = id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit());
        CommitView {
            id: id.to_string(),
            short: if hex {
                id[..7].to_string()
            } else {
                id.to_string()
            },
            meta: self.known.get(id).cloned(),
            link: self
                .source_url
                .as_deref()
                .filter(|_| hex)
                .and_then(|u| forge::commit_url(u, id)),
        }
    }
}

/// Every commit id a page for `status` may show (to describe them first).
pub fn commit_ids(status: &AgentStatus) -> Vec<String> {
    let mut ids: Vec<String> = status
        .stacks
        .values()
        .flat_map(|s| std::iter::once(s.commit.clone()).chain(s.applied_commit.clone()))
        .chain(status.last_snapshot.iter().map(|s| s.id.clone()))
        .chain(
            status
                .page
                .stacks
                .values()
                .flat_map(|f| f.history.iter().map(|h| h.commit.clone())),
        )
        .chain(
            status
                .page
                .stacks
                .values()
                .filter_map(|f| f.plan.as_ref().map(|p| p.commit.clone())),
        )
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// One stack's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub state: State,
    /// More about the state ("the stack's files do not load", ...).
    pub detail: Option<String>,
    /// The commit the stack is at (last applied or found in sync).
    pub commit: Option<CommitView>,
    /// The commit of the last pass, when it is not the one the stack is at.
    pub attempted: Option<CommitView>,
    pub last_pass: SystemTime,
    pub took: Option<Duration>,
    pub summary: Summary,
    /// The first line of the last error.
    pub error_line: Option<String>,
}

/// The agent's own state, shown at the top.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub identity: String,
    pub role: Role,
    /// Who holds the lease, when another agent does.
    pub holder: Option<String>,
    pub ready: bool,
    pub self_heal: bool,
    pub last_success: Option<SystemTime>,
    pub last_pass: Option<PassFacts>,
    pub next_poll: Option<SystemTime>,
    pub git_fetch_errors: u64,
    pub last_error: Option<String>,
    /// The revision the source was last read at.
    pub source: Option<CommitView>,
    pub applying: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub health: Health,
    pub rows: Vec<Row>,
}

impl Overview {
    /// How many stacks are in each state, worst first, zeros left out.
    pub fn counts(&self) -> Vec<(State, usize)> {
        State::ALL
            .iter()
            .map(|s| (*s, self.rows.iter().filter(|r| r.state == *s).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// An error and the chain of causes it names.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorView {
    pub text: String,
    /// The error split at its `: ` (and line) boundaries, outermost first;
    /// empty when it has no cause.
    pub chain: Vec<String>,
}

/// A policy verdict line.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `deny`, `warn`, `skipped`, `error` or `note`.
    pub level: &'static str,
    pub text: String,
}

/// A line of the plan and how it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanLine {
    /// `create`, `update`, `delete`, `summary` or `field`.
    pub kind: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryView {
    pub commit: CommitView,
    pub outcome: &'static str,
    pub ok: bool,
    pub at: Option<SystemTime>,
    pub error: Option<String>,
    pub drift: bool,
    pub from_record: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackPage {
    pub row: Row,
    pub applied_at: Option<String>,
    pub failures: u32,
    pub plan: Vec<PlanLine>,
    /// The commit and time of that plan.
    pub plan_of: Option<(CommitView, SystemTime)>,
    /// The plan shown is an earlier one: the last pass found no change.
    pub in_sync_since_plan: bool,
    pub verdicts: Vec<Verdict>,
    pub error: Option<ErrorView>,
    /// Newest first.
    pub history: Vec<HistoryView>,
}

pub fn overview(status: &AgentStatus, commits: &Commits) -> Overview {
    let rows = status
        .stacks
        .iter()
        .map(|(name, s)| row(status, name, s, commits))
        .collect();
    Overview {
        health: health(status, commits),
        rows,
    }
}

fn health(status: &AgentStatus, commits: &Commits) -> Health {
    Health {
        identity: status.identity.clone(),
        role: status.role,
        holder: status
            .lease_holder_identity
            .clone()
            .filter(|h| *h != status.identity),
        ready: status.ready,
        self_heal: status.self_heal,
        last_success: status.counters.last_success,
        last_pass: status.page.last_pass,
        next_poll: status.page.next_poll,
        git_fetch_errors: status.counters.git_fetch_errors,
        last_error: status.last_error.clone(),
        source: status.last_snapshot.as_ref().map(|s| commits.view(&s.id)),
        applying: status.page.applying.clone(),
    }
}

fn row(status: &AgentStatus, name: &str, s: &StackStatus, commits: &Commits) -> Row {
    let facts = status.page.stacks.get(name);
    let state = if status.page.applying.as_deref() == Some(name) {
        State::Applying
    } else {
        match s.status {
            StackState::Synced if s.drift => State::Healed,
            StackState::Synced => State::InSync,
            StackState::Drifted => State::DriftReported,
            StackState::LoadError | StackState::ApplyFailed => State::Failed,
            StackState::PolicyDenied => State::Denied,
        }
    };
    let detail = match s.outcome {
        Outcome::LoadError => Some("the stack's files do not load; it was left as it is".into()),
        Outcome::ApplyFailed => Some(format!(
            "apply failed ({} in a row); retried with backoff",
            s.failures.max(1)
        )),
        Outcome::PolicyDenied => Some("a policy denies the plan; nothing was applied".into()),
        Outcome::Drift => Some("the swarm differs from git; not healed (--no-self-heal)".into()),
        Outcome::Applied if s.drift => Some("changed on the swarm by hand; put back".into()),
        _ => None,
    };
    let commit = s.applied_commit.as_deref().map(|c| commits.view(c));
    let attempted =
        (s.applied_commit.as_deref() != Some(s.commit.as_str())).then(|| commits.view(&s.commit));
    Row {
        name: name.to_string(),
        state,
        detail,
        commit,
        attempted,
        last_pass: s.last_reconcile,
        took: facts.map(|f| f.took),
        summary: s.summary.clone(),
        error_line: s
            .error
            .as_deref()
            .and_then(|e| e.lines().map(str::trim).find(|l| !l.is_empty()))
            .map(|l| cut(l, 200)),
    }
}

/// A stack's own page; `None` when the agent does not know the stack.
pub fn stack_page(status: &AgentStatus, name: &str, commits: &Commits) -> Option<StackPage> {
    let s = status.stacks.get(name)?;
    let row = row(status, name, s, commits);
    let empty = StackFacts::default();
    let facts = status.page.stacks.get(name).unwrap_or(&empty);
    let (plan_text, checks) = split_checks(facts.plan.as_ref().map_or("", |p| p.text.as_str()));
    let mut verdicts = verdicts(checks);
    let mut error = s.error.as_deref().map(error_view);
    if s.outcome == Outcome::PolicyDenied {
        if let Some(e) = &s.error {
            let denied = self::verdicts(e);
            if denied.iter().any(|v| v.level != "note") {
                // The denial is the verdicts: shown once, as verdicts.
                verdicts = denied;
                error = None;
            }
        }
    }
    Some(StackPage {
        applied_at: facts.applied_at.clone(),
        failures: s.failures,
        plan: plan_lines(plan_text),
        plan_of: facts.plan.as_ref().map(|p| (commits.view(&p.commit), p.at)),
        in_sync_since_plan: facts.in_sync_since_plan
            && facts.plan.as_ref().is_some_and(|p| p.has_changes),
        verdicts,
        error,
        history: facts
            .history
            .iter()
            .rev()
            .map(|h| HistoryView {
                commit: commits.view(&h.commit),
                outcome: outcome_label(h.outcome, h.drift),
                ok: matches!(h.outcome, Outcome::Applied | Outcome::NoChange),
                at: h.at,
                error: h.error.as_deref().map(|e| cut(e, 300)),
                drift: h.drift,
                from_record: h.from_record,
            })
            .collect(),
        row,
    })
}

fn outcome_label(o: Outcome, drift: bool) -> &'static str {
    match o {
        Outcome::Applied if drift => "drift healed",
        Outcome::Applied => "applied",
        Outcome::NoChange => "already in sync",
        Outcome::Drift => "drift reported",
        Outcome::LoadError => "load error",
        Outcome::PolicyDenied => "denied by policy",
        Outcome::ApplyFailed => "apply failed",
    }
}

/// The plan and the policy checks the pipeline appended to it.
pub fn split_checks(text: &str) -> (&str, &str) {
    if let Some(rest) = text.strip_prefix("Policy checks:\n") {
        return ("", rest);
    }
    match text.rfind("\nPolicy checks:\n") {
        Some(i) => (&text[..i], &text[i + "\nPolicy checks:\n".len()..]),
        None => (text, ""),
    }
}

/// The plan text, line by line, each marked by what it says.
pub fn plan_lines(text: &str) -> Vec<PlanLine> {
    let text = text.trim_end();
    if text.is_empty() {
        return Vec::new();
    }
    text.lines()
        .map(|l| {
            let kind = if l.starts_with("+ ") {
                "create"
            } else if l.starts_with("- ") || l.starts_with("-/+ ") {
                "delete"
            } else if l.starts_with("~ ") || l.starts_with("! ") {
                "update"
            } else if l.starts_with("Plan:") || l.starts_with("No changes") {
                "summary"
            } else {
                "field"
            };
            PlanLine {
                kind,
                text: l.to_string(),
            }
        })
        .collect()
}

/// Policy verdict lines of `shoal plan`'s "Policy checks" text.
pub fn verdicts(text: &str) -> Vec<Verdict> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Policy checks:"))
        .map(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            let level = match first {
                "deny" => "deny",
                "warn" => "warn",
                "skipped" => "skipped",
                "error" => "error",
                _ => "note",
            };
            let text = if level == "note" {
                l
            } else {
                l[first.len()..].trim_start()
            };
            Verdict {
                level,
                text: text.to_string(),
            }
        })
        .collect()
}

/// An error text and its cause chain: lines first, then each line at its
/// `: ` boundaries (`file:line:col` stays whole: no space after its colons).
pub fn error_view(text: &str) -> ErrorView {
    let chain: Vec<String> = text
        .lines()
        .map(|l| {
            let l = l.trim();
            l.strip_prefix("Caused by:")
                .or_else(|| l.strip_prefix("caused by:"))
                .unwrap_or(l)
                .trim()
        })
        .filter(|l| !l.is_empty())
        .flat_map(|l| l.split(": ").map(str::trim).filter(|p| !p.is_empty()))
        .map(str::to_string)
        .collect();
    ErrorView {
        text: text.to_string(),
        chain: if chain.len() > 1 { chain } else { Vec::new() },
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::dashboard::facts::{HistoryEntry, StackFacts};
    use crate::agent::status::SnapshotStatus;

    const C1: &str = "3f2a9c1d0e5b6a7980123456789abcdef0123456";
    const C2: &str = "4b5c6d7e8f90123456789abcdef0123456789abc";

    fn stack(outcome: Outcome, commit: &str, applied: Option<&str>) -> StackStatus {
        StackStatus {
            commit: commit.into(),
            applied_commit: applied.map(str::to_string),
            outcome,
            status: outcome.status(),
            summary: Summary {
                create: 1,
                update: 0,
                delete: 0,
            },
            drift: false,
            error: None,
            last_reconcile: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            failures: 0,
        }
    }

    fn status() -> AgentStatus {
        let mut s = AgentStatus::new("node1:1", true);
        s.role = Role::Leader;
        s.lease_holder_identity = Some("node1:1".into());
        s.last_snapshot = Some(SnapshotStatus {
            id: C2.into(),
            at: SystemTime::UNIX_EPOCH,
        });
        s.stacks
            .insert("web".into(), stack(Outcome::NoChange, C2, Some(C2)));
        let mut broken = stack(Outcome::LoadError, C2, Some(C1));
        broken.error = Some(
            "stacks/broken/stack.yml:3:5: services.app.deploy.replicas: expected an integer".into(),
        );
        s.stacks.insert("broken".into(), broken);
        s
    }

    fn commits() -> Commits {
        Commits {
            known: BTreeMap::from([(
                C2.to_string(),
                CommitMeta {
                    subject: "Scale web".into(),
                    author: "Ada".into(),
                    time: SystemTime::UNIX_EPOCH,
                },
            )]),
            source_url: Some("git@github.com:org/stacks.git".into()),
        }
    }

    #[test]
    fn rows_carry_state_commit_and_the_first_error_line() {
        let o = overview(&status(), &commits());
        let broken = &o.rows[0];
        assert_eq!(
            (broken.name.as_str(), broken.state),
            ("broken", State::Failed)
        );
        assert_eq!(broken.commit.as_ref().unwrap().short, "3f2a9c1");
        assert!(broken.commit.as_ref().unwrap().meta.is_none());
        assert_eq!(broken.attempted.as_ref().unwrap().id, C2);
        assert!(broken
            .error_line
            .as_deref()
            .unwrap()
            .contains("stack.yml:3:5"));
        let web = &o.rows[1];
        assert_eq!(web.state, State::InSync);
        assert!(web.attempted.is_none());
        let c = web.commit.as_ref().unwrap();
        assert_eq!(c.meta.as_ref().unwrap().author, "Ada");
        assert_eq!(
            c.link.as_deref(),
            Some(format!("https://github.com/org/stacks/commit/{C2}").as_str())
        );
        assert_eq!(o.counts(), vec![(State::Failed, 1), (State::InSync, 1)]);
        assert_eq!(o.health.holder, None, "this agent holds the lease");
    }

    #[test]
    fn states_follow_outcome_drift_and_the_stack_being_applied() {
        let mut s = status();
        let mut healed = stack(Outcome::Applied, C2, Some(C2));
        healed.drift = true;
        s.stacks.insert("healed".into(), healed);
        s.stacks
            .insert("drift".into(), stack(Outcome::Drift, C2, Some(C2)));
        s.stacks
            .insert("denied".into(), stack(Outcome::PolicyDenied, C2, None));
        s.page.applying = Some("web".into());
        let o = overview(&s, &Commits::default());
        let state = |n: &str| o.rows.iter().find(|r| r.name == n).unwrap().state;
        assert_eq!(state("healed"), State::Healed);
        assert_eq!(state("drift"), State::DriftReported);
        assert_eq!(state("denied"), State::Denied);
        assert_eq!(state("web"), State::Applying);
        assert_eq!(state("broken"), State::Failed);
    }

    #[test]
    fn the_stack_page_splits_plan_verdicts_error_and_history() {
        let mut s = status();
        s.page.stacks.insert(
            "web".into(),
            StackFacts {
                plan: Some(crate::agent::dashboard::facts::PlanFacts {
                    text: "~ service web_app\n    Mode.Replicated.Replicas: 1 -> 2\n\nPlan: 0 to create, 1 to update, 0 to delete.\n\nPolicy checks:\n  warn [pinned_images] service web_app: image busybox:latest is not pinned\n"
                        .into(),
                    commit: C2.into(),
                    at: SystemTime::UNIX_EPOCH,
                    has_changes: true,
                }),
                in_sync_since_plan: true,
                took: Duration::from_millis(40),
                applied_at: None,
                history: [C1, C2]
                    .iter()
                    .map(|c| HistoryEntry {
                        commit: c.to_string(),
                        outcome: Outcome::Applied,
                        at: None,
                        error: None,
                        drift: false,
                        from_record: false,
                    })
                    .collect(),
            },
        );
        let p = stack_page(&s, "web", &commits()).unwrap();
        let kinds: Vec<&str> = p.plan.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, vec!["update", "field", "field", "summary"]);
        assert_eq!(p.verdicts.len(), 1);
        assert_eq!(p.verdicts[0].level, "warn");
        assert!(p.verdicts[0].text.starts_with("[pinned_images]"));
        assert_eq!(p.history[0].commit.id, C2, "newest first");
        assert!(p.in_sync_since_plan);
        assert_eq!(p.plan_of.as_ref().unwrap().0.id, C2);
        assert!(stack_page(&s, "nope", &commits()).is_none());

        let b = stack_page(&s, "broken", &commits()).unwrap();
        let e = b.error.unwrap();
        assert_eq!(
            e.chain,
            vec![
                "stacks/broken/stack.yml:3:5",
                "services.app.deploy.replicas",
                "expected an integer"
            ]
        );
    }

    #[test]
    fn a_denial_shows_as_verdicts_once() {
        let mut s = status();
        let mut denied = stack(Outcome::PolicyDenied, C2, None);
        denied.error = Some("Policy checks:\n  deny [sticky_sessions] service x_web: needs the cookie\n1 policy violation(s) deny this plan; apply will refuse it.\n".into());
        s.stacks.insert("x".into(), denied);
        let p = stack_page(&s, "x", &commits()).unwrap();
        assert!(p.error.is_none());
        assert_eq!(
            p.verdicts.iter().map(|v| v.level).collect::<Vec<_>>(),
            vec!["deny", "note"]
        );
        // A policy that does not load is an error, not a verdict.
        s.stacks.get_mut("x").unwrap().error = Some("policies do not load: a.rego:3: bad".into());
        let p = stack_page(&s, "x", &commits()).unwrap();
        assert!(p.error.is_some());
    }
}
