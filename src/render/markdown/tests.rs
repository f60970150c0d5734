use super::*;
use crate::model::Kind;
use crate::model::Plan;
use crate::model::REPLACE_REQUIRED;
use crate::render::testing::{change, fc};
use crate::render::Commit;
use serde_json::{json, Value};

fn violation(level: Level, object: &str, message: &str) -> Violation {
    Violation {
        policy: "sticky_sessions".into(),
        level,
        object: object.into(),
        message: message.into(),
        skipped: false,
    }
}

fn report<'a>(
    plan: &'a Plan,
    violations: &'a BTreeMap<String, Vec<Violation>>,
    stack_errors: &'a [(String, String)],
) -> Report<'a> {
    Report {
        plan,
        commit: Some(Commit {
            id: "3f2a9c1e0d4b",
            short: "3f2a9c1",
            summary: "Scale steedos to 4",
        }),
        stack_errors,
        policy_errors: &[],
        violations: &[],
        violations_by_stack: violations,
        unmanaged: &[],
    }
}

/// Create, update (with a secret env change), delete, a replace the swarm
/// cannot make in place, a quiet stack and a deny: the whole comment.
#[test]
fn a_plan_with_every_kind_of_change() {
    let plan = Plan {
        changes: vec![
            change(
                Action::Create,
                Kind::Service,
                "steedos",
                "steedos_redis",
                vec![fc("Mode.Replicated.Replicas", Value::Null, json!(1), false)],
            ),
            change(
                Action::Update,
                Kind::Service,
                "steedos",
                "steedos_web",
                vec![
                    fc("Mode.Replicated.Replicas", json!(2), json!(4), false),
                    fc(
                        "TaskTemplate.ContainerSpec.Env[STEEDOS_LICENSE]",
                        json!("abc-123"),
                        json!("def-456"),
                        true,
                    ),
                ],
            ),
            change(
                Action::Delete,
                Kind::Config,
                "steedos",
                "steedos_old",
                vec![],
            ),
            change(
                Action::Update,
                Kind::Network,
                "steedos",
                "steedos_back",
                vec![
                    fc(REPLACE_REQUIRED, Value::Null, Value::Null, false),
                    fc("Internal", json!(false), json!(true), false),
                ],
            ),
            change(Action::Noop, Kind::Service, "infra", "infra_proxy", vec![]),
        ],
    };
    let violations = BTreeMap::from([(
        "steedos".to_string(),
        vec![violation(
            Level::Deny,
            "service steedos_web",
            "2 replicas behind Traefik need the sticky cookie",
        )],
    )]);
    let want = "\
### shoal plan: 1 to create, 2 to update, 1 to delete · 1 denied by policy

Stacks at `3f2a9c1` Scale steedos to 4

**Denied**: 1 policy violation denies this plan; `shoal apply` will refuse it.

<details open>
<summary><b>steedos</b>: 1 to create, 2 to update, 1 to delete · 1 denied</summary>

```diff
+ service steedos_redis
    Mode.Replicated.Replicas: 1

! service steedos_web
    Mode.Replicated.Replicas: 2 -> 4
    TaskTemplate.ContainerSpec.Env[STEEDOS_LICENSE]: (sensitive value changed)

- config steedos_old

! network steedos_back  # cannot be updated in place: apply refuses; remove the stack's services using it, or rename the network
    Internal: false -> true
```

| level | policy | object | message |
| --- | --- | --- | --- |
| **deny** | sticky\\_sessions | service steedos\\_web | 2 replicas behind Traefik need the sticky cookie |

</details>

No changes: `infra`.

<sub>`+` create · `!` update (`~` in the terminal) · `-` delete · sensitive values are never shown</sub>
";
    let got = markdown(&report(&plan, &violations, &[]));
    assert_eq!(got, want, "got:\n{got}");
    assert!(!got.contains("abc-123") && !got.contains("def-456"));
}

/// Errors come first, before any stack, and a message cannot inject
/// markup: HTML is escaped, table pipes and newlines are contained.
#[test]
fn errors_first_and_escaped() {
    let plan = Plan {
        changes: vec![change(
            Action::Update,
            Kind::Service,
            "web",
            "web_app",
            vec![fc("Mode.Replicated.Replicas", json!(1), json!(2), false)],
        )],
    };
    let violations = BTreeMap::from([(
        "web".to_string(),
        vec![Violation {
            skipped: true,
            ..violation(Level::Warn, "service web_app", "a | b\n<script>x</script>")
        }],
    )]);
    let errors = vec![(
        "api".to_string(),
        "stacks/api/stack.yml:3: services.api.image: expected a string, found <b>[1]</b>"
            .to_string(),
    )];
    let policy_errors = vec!["policies/x.rego:1: parse error".to_string()];
    let r = Report {
        policy_errors: &policy_errors,
        ..report(&plan, &violations, &errors)
    };
    let got = markdown(&r);
    let errors_at = got.find("**Errors**").expect("an errors section");
    let stack_at = got.find("<details>").expect("a stack section");
    assert!(errors_at < stack_at, "errors first:\n{got}");
    assert!(got.starts_with("### shoal plan: 0 to create, 1 to update, 0 to delete · 2 errors\n"));
    assert!(got.contains(
        "- **api**: stacks/api/stack.yml:3: services.api.image: expected a string, found &lt;b&gt;\\[1\\]&lt;/b&gt;\n"
    ));
    assert!(got.contains("- policies: policies/x.rego:1: parse error\n"));
    assert!(got.contains("| skipped | sticky\\_sessions | service web\\_app | a \\| b<br>&lt;script&gt;x&lt;/script&gt; |\n"));
    assert!(!got.contains("<script>"));
    // No deny: the section stays closed.
    assert!(got.contains(
        "<details>\n<summary><b>web</b>: 0 to create, 1 to update, 0 to delete</summary>"
    ));
}

/// A config whose content holds a code fence cannot close the block early.
#[test]
fn content_with_backticks_gets_a_longer_fence() {
    let plan = Plan {
        changes: vec![change(
            Action::Update,
            Kind::Config,
            "docs",
            "docs_readme",
            vec![fc("Data", json!("a\n"), json!("```\nb\n"), false)],
        )],
    };
    let got = markdown(&report(&plan, &BTreeMap::new(), &[]));
    assert!(got.contains("\n````diff\n"), "{got}");
    assert!(got.contains("\n````\n"), "{got}");
}

/// No changes at all: a one-line verdict, every stack listed as quiet.
#[test]
fn no_changes() {
    let plan = Plan {
        changes: vec![
            change(Action::Noop, Kind::Service, "a", "a_x", vec![]),
            change(Action::Noop, Kind::Service, "b", "b_x", vec![]),
        ],
    };
    let got = markdown(&Report {
        commit: None,
        ..report(&plan, &BTreeMap::new(), &[])
    });
    assert_eq!(
        got,
        "### shoal plan: no changes\n\nNo changes: `a`, `b`.\n\n<sub>`+` create · `!` update (`~` in the terminal) · `-` delete · sensitive values are never shown</sub>\n"
    );
}

fn big_plan(stacks: &[(&str, usize)]) -> Plan {
    let mut changes = Vec::new();
    for (stack, services) in stacks {
        for i in 0..*services {
            changes.push(change(
                Action::Create,
                Kind::Service,
                stack,
                &format!("{stack}_svc{i:04}"),
                (0..8)
                    .map(|f| {
                        fc(
                            &format!("Labels[label{f}]"),
                            Value::Null,
                            json!("x".repeat(40)),
                            false,
                        )
                    })
                    .collect(),
            ));
        }
    }
    Plan { changes }
}

/// A plan too long for one comment is cut per stack, the longest stack the
/// most; each cut says how much and how to see all; the small stack is whole.
#[test]
fn truncation_cuts_long_stacks_and_says_so() {
    let plan = big_plan(&[("huge", 400), ("small", 2)]);
    let violations = BTreeMap::from([(
        "huge".to_string(),
        vec![violation(Level::Deny, "service huge_svc0000", "denied")],
    )]);
    let full = markdown_within(&report(&plan, &violations, &[]), usize::MAX);
    assert!(full.chars().count() > LIMIT, "the fixture must overflow");
    let got = markdown(&report(&plan, &violations, &[]));
    assert!(
        got.chars().count() <= LIMIT,
        "{} chars",
        got.chars().count()
    );
    assert!(got.contains(
        "of this stack's plan cut to fit a comment; run `shoal plan --stack huge` to see it whole."
    ));
    assert!(!got.contains("run `shoal plan --stack small`"));
    assert!(got.contains("small_svc0001"), "the small stack is whole");
    // What matters to a reviewer survives the cut.
    assert!(got.contains("| **deny** |"));
    assert!(got.starts_with(
        "### shoal plan: 402 to create, 0 to update, 0 to delete · 1 denied by policy\n"
    ));
    // Fences stay balanced.
    assert_eq!(got.lines().filter(|l| l.starts_with("```")).count() % 2, 0);
}

/// Even a document whose errors alone overflow stays under the limit,
/// with its open blocks closed.
#[test]
fn an_overflow_of_errors_is_cut_too() {
    let plan = big_plan(&[("a", 3)]);
    let errors: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("s{i}"), "x".repeat(100)))
        .collect();
    let got = markdown_within(&report(&plan, &BTreeMap::new(), &errors), 20_000);
    assert!(got.chars().count() <= 20_000);
    assert!(
        got.ends_with("run `shoal plan` to see it whole._\n"),
        "{}",
        &got[got.len() - 200..]
    );
    assert_eq!(got.lines().filter(|l| l.starts_with("```")).count() % 2, 0);
}
