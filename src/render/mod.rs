//! Rendering a plan for people (text, markdown) and machines (JSON). All
//! come from the same [`Plan`] and [`Report`]; sensitive values never leave
//! here unmasked.
use crate::compose::duration::format_duration;
use crate::image::split_digest;
use crate::model::{Action, Change, FieldChange, Plan, IMAGE_PATH, REPLACE_REQUIRED};
use serde_json::{json, Value};
use std::fmt::Write as _;

pub mod json;
pub mod markdown;
mod report;
pub use report::{Commit, Report};
mod policy;
#[cfg(test)]
pub(crate) mod testing;

pub use policy::violations_text;

/// How to render text.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// ANSI colours; the caller decides (terminal and `NO_COLOR`).
    pub color: bool,
}

impl TextOptions {
    /// Colour when standard output is a terminal and `NO_COLOR` is unset
    /// or empty (<https://no-color.org>).
    pub fn for_stdout() -> TextOptions {
        use std::io::IsTerminal as _;
        let no_color = std::env::var("NO_COLOR").ok();
        TextOptions {
            color: color_wanted(std::io::stdout().is_terminal(), no_color.as_deref()),
        }
    }
}

/// The colour decision: a terminal, and `NO_COLOR` absent or empty.
pub fn color_wanted(is_terminal: bool, no_color: Option<&str>) -> bool {
    is_terminal && no_color.is_none_or(str::is_empty)
}

/// What replaces a sensitive value in JSON.
pub const MASK: &str = "(sensitive)";

/// Fields holding nanoseconds, shown as Go durations (`10s`, `1m30s`).
const DURATION_FIELDS: &[&str] = &[
    "Delay",
    "Interval",
    "Timeout",
    "StartPeriod",
    "StartInterval",
    "Monitor",
    "Window",
    "StopGracePeriod",
];

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const BOLD_RED: &str = "\x1b[31;1m";
const RESET: &str = "\x1b[0m";

/// ANSI colour when `on`, plain text otherwise: the one place escape codes
/// are written.
struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("{code}{s}{RESET}")
        } else {
            s.to_owned()
        }
    }
}

/// The plan as terraform-like text: one block per changed object (`+`
/// create, `~` update, `-` delete; unchanged objects are not shown), then
/// a summary line.
pub fn text(plan: &Plan, opts: &TextOptions) -> String {
    let paint = Paint { on: opts.color };
    let mut out = String::new();
    blocks(&mut out, &plan.changes, &paint);
    let s = plan.summary();
    if plan.has_changes() {
        let line = format!(
            "Plan: {} to create, {} to update, {} to delete.",
            s.create, s.update, s.delete
        );
        out.push_str(&paint.wrap(BOLD, &line));
    } else {
        out.push_str("No changes. The swarm matches the repository.");
    }
    out.push('\n');
    out
}

/// The blocks of `changes` (no-ops left out) without colour and without
/// the summary line: the body a per-stack section of another format wraps.
pub(crate) fn plain_blocks<'a>(changes: impl IntoIterator<Item = &'a Change>) -> String {
    let mut out = String::new();
    blocks(&mut out, changes, &Paint { on: false });
    out
}

fn blocks<'a>(out: &mut String, changes: impl IntoIterator<Item = &'a Change>, paint: &Paint) {
    for c in changes.into_iter().filter(|c| c.action != Action::Noop) {
        block(out, c, paint);
        out.push('\n');
    }
}

fn block(out: &mut String, c: &Change, paint: &Paint) {
    let (sym, color) = match c.action {
        Action::Create => ("+", GREEN),
        Action::Update => ("~", YELLOW),
        Action::Delete => ("-", RED),
        Action::Noop => (" ", ""),
    };
    let _ = write!(
        out,
        "{}",
        paint.wrap(color, &format!("{sym} {} {}", c.kind, c.name))
    );
    if c.requires_replace() {
        let _ = write!(
            out,
            "  {}",
            paint.wrap(
                RED,
                "# cannot be updated in place: apply refuses; remove the stack's services using it, or rename the network"
            )
        );
    }
    out.push('\n');
    for f in c.diff.iter().filter(|f| f.path != REPLACE_REQUIRED) {
        if c.action == Action::Create {
            created_field(out, f, paint);
        } else {
            field(out, f, paint);
        }
    }
}

/// A field of a new object: its value (a config's text as added lines).
fn created_field(out: &mut String, f: &FieldChange, paint: &Paint) {
    if f.sensitive || !f.before.is_null() || f.after.as_str().is_some_and(|s| s.contains('\n')) {
        return field(out, f, paint);
    }
    let last = f.path.rsplit(['.', '[']).next().unwrap_or("");
    let _ = writeln!(out, "    {}: {}", f.path, show(&f.after, last));
}

fn field(out: &mut String, f: &FieldChange, paint: &Paint) {
    if f.sensitive {
        let what = match (f.before.is_null(), f.after.is_null()) {
            (true, _) => "(sensitive value added)",
            (_, true) => "(sensitive value removed)",
            _ => "(sensitive value changed)",
        };
        let _ = writeln!(out, "    {}: {what}", f.path);
        return;
    }
    let multiline = |v: &Value| v.as_str().is_some_and(|s| s.contains('\n'));
    if multiline(&f.before) || multiline(&f.after) {
        let _ = writeln!(out, "    {}:", f.path);
        text_diff(
            out,
            f.before.as_str().unwrap_or(""),
            f.after.as_str().unwrap_or(""),
            paint,
        );
        return;
    }
    if let Some(line) = image_digest_change(f) {
        let _ = writeln!(out, "    {}: {line}", f.path);
        return;
    }
    let last = f.path.rsplit(['.', '[']).next().unwrap_or("");
    let _ = writeln!(
        out,
        "    {}: {} -> {}",
        f.path,
        show(&f.before, last),
        show(&f.after, last)
    );
}

/// Same tag, new digest: `app:3.0 sha256:ab12… -> sha256:cd34…`, so the
/// moved digest stands out (an unpinned side reads `(no digest)`).
fn image_digest_change(f: &FieldChange) -> Option<String> {
    if f.path != IMAGE_PATH {
        return None;
    }
    let (before, before_digest) = split_digest(f.before.as_str()?);
    let (after, after_digest) = split_digest(f.after.as_str()?);
    if before != after || (before_digest.is_none() && after_digest.is_none()) {
        return None;
    }
    let short = |d: Option<&str>| match d {
        Some(d) if d.chars().count() > 19 => format!("{}…", d.chars().take(19).collect::<String>()),
        Some(d) => d.to_string(),
        None => "(no digest)".to_string(),
    };
    Some(format!(
        "{after} {} -> {}",
        short(before_digest),
        short(after_digest)
    ))
}

/// A unified diff of two texts, indented under the field.
fn text_diff(out: &mut String, before: &str, after: &str, paint: &Paint) {
    let diff = similar::TextDiff::from_lines(before, after);
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        let _ = writeln!(
            out,
            "      {}",
            paint.wrap(CYAN, &hunk.header().to_string())
        );
        for change in hunk.iter_changes() {
            let (sign, color) = match change.tag() {
                similar::ChangeTag::Delete => ("-", RED),
                similar::ChangeTag::Insert => ("+", GREEN),
                similar::ChangeTag::Equal => (" ", ""),
            };
            let line = change.value().trim_end_matches('\n');
            let text = format!("{sign}{line}");
            let _ = write!(
                out,
                "      {}",
                if color.is_empty() {
                    text
                } else {
                    paint.wrap(color, &text)
                }
            );
            out.push('\n');
            if change.missing_newline() {
                let _ = writeln!(out, "      \\ No newline at end of file");
            }
        }
    }
}

/// Compact JSON, except nanosecond durations (also inside objects, e.g.
/// a whole `Healthcheck` added: `{"Interval":"30s",...}`).
fn show(v: &Value, field: &str) -> String {
    if DURATION_FIELDS.contains(&field) {
        if let Some(ns) = v.as_i64() {
            return format_duration(ns);
        }
    }
    durations_in(v).to_string()
}

fn durations_in(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let shown = match v.as_i64() {
                        Some(ns) if DURATION_FIELDS.contains(&k.as_str()) => {
                            json!(format_duration(ns))
                        }
                        _ => durations_in(v),
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(durations_in).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use crate::render::testing::{change, fc};

    /// A plan with one update of service `s_web`.
    fn web_update(diff: Vec<FieldChange>) -> Plan {
        Plan {
            changes: vec![change(Action::Update, Kind::Service, "s", "s_web", diff)],
        }
    }

    fn sample() -> Plan {
        Plan {
            changes: vec![
                change(Action::Noop, Kind::Network, "s", "s_default", vec![]),
                change(
                    Action::Create,
                    Kind::Config,
                    "s",
                    "s_conf-1a2b3c4d",
                    vec![fc("Data", json!("a\nb\n"), json!("a\nc\n"), false)],
                ),
                change(
                    Action::Update,
                    Kind::Service,
                    "s",
                    "s_web",
                    vec![
                        fc("Mode.Replicated.Replicas", json!(2), json!(3), false),
                        fc(
                            "TaskTemplate.ContainerSpec.Env[DB_PASSWORD]",
                            json!("a"),
                            json!("b"),
                            true,
                        ),
                        fc(
                            "TaskTemplate.ContainerSpec.Healthcheck.Interval",
                            json!(10_000_000_000u64),
                            json!(90_000_000_000u64),
                            false,
                        ),
                        fc("Labels[traefik.enable]", Value::Null, json!("true"), false),
                    ],
                ),
                change(Action::Delete, Kind::Secret, "s", "s_old", vec![]),
            ],
        }
    }

    #[test]
    fn text_without_colour() {
        let want = "\
+ config s_conf-1a2b3c4d
    Data:
      @@ -1,2 +1,2 @@
       a
      -b
      +c

~ service s_web
    Mode.Replicated.Replicas: 2 -> 3
    TaskTemplate.ContainerSpec.Env[DB_PASSWORD]: (sensitive value changed)
    TaskTemplate.ContainerSpec.Healthcheck.Interval: 10s -> 1m30s
    Labels[traefik.enable]: null -> \"true\"

- secret s_old

Plan: 1 to create, 1 to update, 1 to delete.
";
        assert_eq!(text(&sample(), &TextOptions { color: false }), want);
    }

    #[test]
    fn text_with_colour() {
        let plan = Plan {
            changes: vec![
                change(
                    Action::Update,
                    Kind::Service,
                    "s",
                    "s_web",
                    vec![fc("Mode.Replicated.Replicas", json!(1), json!(2), false)],
                ),
                change(Action::Delete, Kind::Service, "s", "s_old", vec![]),
            ],
        };
        let want = "\x1b[33m~ service s_web\x1b[0m
    Mode.Replicated.Replicas: 1 -> 2

\x1b[31m- service s_old\x1b[0m

\x1b[1mPlan: 0 to create, 1 to update, 1 to delete.\x1b[0m
";
        assert_eq!(text(&plan, &TextOptions { color: true }), want);
    }

    #[test]
    fn coloured_text_diff_lines() {
        let plan = Plan {
            changes: vec![change(
                Action::Update,
                Kind::Config,
                "s",
                "c",
                vec![fc("Data", json!("x\n"), json!("y\n"), false)],
            )],
        };
        let t = text(&plan, &TextOptions { color: true });
        assert!(t.contains("      \x1b[36m@@ -1 +1 @@\x1b[0m\n"), "{t}");
        assert!(t.contains("      \x1b[31m-x\x1b[0m\n"), "{t}");
        assert!(t.contains("      \x1b[32m+y\x1b[0m\n"), "{t}");
    }

    #[test]
    fn created_objects_show_their_values_not_arrows() {
        let plan = Plan {
            changes: vec![change(
                Action::Create,
                Kind::Service,
                "s",
                "s_web",
                vec![
                    fc("Mode.Replicated.Replicas", json!(null), json!(2), false),
                    fc(
                        "TaskTemplate.ContainerSpec.Env[API_TOKEN]",
                        json!(null),
                        json!("t"),
                        true,
                    ),
                ],
            )],
        };
        let out = text(&plan, &TextOptions { color: false });
        assert!(
            out.contains("+ service s_web\n    Mode.Replicated.Replicas: 2\n"),
            "{out}"
        );
        assert!(
            out.contains("Env[API_TOKEN]: (sensitive value added)"),
            "{out}"
        );
        assert!(!out.contains("null"), "{out}");
    }

    #[test]
    fn a_moved_digest_reads_as_tag_and_digests() {
        let old = "sha256:ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";
        let new = "sha256:cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34";
        let plan = web_update(vec![fc(
            IMAGE_PATH,
            json!(format!("app:3.0@{old}")),
            json!(format!("app:3.0@{new}")),
            false,
        )]);
        let out = text(&plan, &TextOptions { color: false });
        assert!(
            out.contains(
                "TaskTemplate.ContainerSpec.Image: app:3.0 sha256:ab12ab12ab12… -> sha256:cd34cd34cd34…"
            ),
            "{out}"
        );
        // A new tag reads as a plain value change.
        let plan = web_update(vec![fc(
            IMAGE_PATH,
            json!("app:3.0"),
            json!("app:3.1"),
            false,
        )]);
        let out = text(&plan, &TextOptions { color: false });
        assert!(out.contains(r#"Image: "app:3.0" -> "app:3.1""#), "{out}");
    }

    #[test]
    fn no_changes_text() {
        let plan = Plan {
            changes: vec![change(Action::Noop, Kind::Service, "s", "s_web", vec![])],
        };
        assert_eq!(
            text(&plan, &TextOptions::default()),
            "No changes. The swarm matches the repository.\n"
        );
    }

    #[test]
    fn sensitive_added_and_removed() {
        let plan = web_update(vec![
            fc("Env[API_TOKEN]", Value::Null, json!("t"), true),
            fc("Env[OLD_KEY]", json!("k"), Value::Null, true),
        ]);
        let t = text(&plan, &TextOptions::default());
        assert!(
            t.contains("    Env[API_TOKEN]: (sensitive value added)\n"),
            "{t}"
        );
        assert!(
            t.contains("    Env[OLD_KEY]: (sensitive value removed)\n"),
            "{t}"
        );
        assert!(!t.contains("\"t\"") && !t.contains("\"k\""), "{t}");
    }

    #[test]
    fn replace_required_is_a_note_not_a_field() {
        let plan = Plan {
            changes: vec![change(
                Action::Update,
                Kind::Network,
                "s",
                "s_front",
                vec![
                    fc(
                        REPLACE_REQUIRED,
                        Value::Null,
                        json!("networks cannot be updated in place"),
                        false,
                    ),
                    fc("Internal", Value::Null, json!(true), false),
                ],
            )],
        };
        let t = text(&plan, &TextOptions::default());
        assert!(
            t.starts_with("~ network s_front  # cannot be updated in place"),
            "{t}"
        );
        assert!(t.contains("    Internal: null -> true\n"), "{t}");
        assert!(!t.contains(&format!("    {REPLACE_REQUIRED}")), "{t}");
    }

    #[test]
    fn durations_inside_a_whole_object() {
        let plan = web_update(vec![fc(
            "TaskTemplate.ContainerSpec.Healthcheck",
            Value::Null,
            json!({"Test": ["CMD", "true"], "Interval": 30_000_000_000u64, "Retries": 3}),
            false,
        )]);
        let t = text(&plan, &TextOptions::default());
        assert!(
            t.contains(r#"    TaskTemplate.ContainerSpec.Healthcheck: null -> {"Test":["CMD","true"],"Interval":"30s","Retries":3}"#),
            "{t}"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(color_wanted(true, None));
        assert!(color_wanted(true, Some("")));
        assert!(!color_wanted(true, Some("1")));
        assert!(!color_wanted(false, None));
    }

    #[test]
    fn go_durations() {
        for (ns, s) in [
            (0, "0s"),
            (500, "500ns"),
            (1_500, "1.5µs"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (10_000_000_000, "10s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(format_duration(ns), s);
        }
    }

    #[test]
    fn json_document_masks_and_keeps_its_shape() {
        let plan = sample();
        let errors = vec![("api".to_string(), "stacks/api/stack.yml: bad".to_string())];
        let policy_errors = vec!["policies/x.rego: parse error".to_string()];
        let report = Report {
            plan: &plan,
            commit: Some(Commit {
                id: "abc1234def",
                short: "abc1234",
                summary: "Scale web",
            }),
            stack_errors: &errors,
            policy_errors: &policy_errors,
            violations: &[],
            violations_by_stack: &Default::default(),
            unmanaged: &["old".to_string()],
        };
        let doc = json::json(&report);
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "format_version",
                "changes",
                "summary",
                "violations",
                "errors",
                "commit",
                "unmanaged"
            ]
        );
        assert_eq!(doc["format_version"], json!(json::FORMAT_VERSION));
        assert_eq!(
            doc["summary"],
            json!({"create": 1, "update": 1, "delete": 1})
        );
        assert_eq!(
            doc["commit"],
            json!({"id": "abc1234def", "short": "abc1234", "summary": "Scale web"})
        );
        assert_eq!(
            doc["errors"],
            json!([
                {"stack": "api", "message": "stacks/api/stack.yml: bad"},
                {"policy": true, "message": "policies/x.rego: parse error"}
            ])
        );
        assert_eq!(doc["unmanaged"], json!(["old"]));
        let changes = doc["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 3, "noop left out");
        let web = &changes[1];
        assert_eq!(web["action"], json!("update"));
        assert_eq!(web["kind"], json!("service"));
        assert_eq!(web["name"], json!("s_web"));
        assert_eq!(web["stack"], json!("s"));
        assert_eq!(
            web["diff"][1],
            json!({"path": "TaskTemplate.ContainerSpec.Env[DB_PASSWORD]", "before": "(sensitive)", "after": "(sensitive)"})
        );
        assert_eq!(
            web["diff"][3],
            json!({"path": "Labels[traefik.enable]", "before": null, "after": "true"})
        );
        assert_eq!(
            web["diff"][0],
            json!({"path": "Mode.Replicated.Replicas", "before": 2, "after": 3})
        );
    }
}
