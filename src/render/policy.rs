//! Violations as people read them, under the plan.
use super::{Paint, BOLD_RED, DIM, YELLOW};
use crate::policy::{Level, Violation};

/// The block printed under a plan: denials, warnings, skipped rules and
/// policy errors. Empty when there is nothing to say.
pub fn violations_text(violations: &[Violation], errors: &[String], color: bool) -> String {
    let paint = |code: &str, s: &str| Paint { on: color }.wrap(code, s);
    let mut out = String::new();
    if !violations.is_empty() {
        out.push_str("Policy checks:\n");
        for v in violations {
            let tag = match (v.skipped, v.level) {
                (true, _) => paint(DIM, "skipped"),
                (false, Level::Deny) => paint(BOLD_RED, "deny"),
                (false, Level::Warn) => paint(YELLOW, "warn"),
            };
            out.push_str(&format!(
                "  {tag} [{}] {}: {}",
                v.policy, v.object, v.message
            ));
            if v.skipped {
                out.push_str(" (skipped by shoal.policy.skip)");
            }
            out.push('\n');
        }
    }
    if !errors.is_empty() {
        out.push_str("Policy errors (apply is blocked until they are fixed):\n");
        for e in errors {
            out.push_str(&format!("  {} {e}\n", paint(BOLD_RED, "error")));
        }
    }
    let denies = violations.iter().filter(|v| v.blocks()).count();
    if denies > 0 {
        out.push_str(&format!(
            "{denies} policy violation(s) deny this plan; apply will refuse it.\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(level: Level, skipped: bool) -> Violation {
        Violation {
            policy: "shared_storage".into(),
            level,
            object: "service s_web".into(),
            message: "use S3".into(),
            skipped,
        }
    }

    #[test]
    fn names_rule_object_and_message_and_counts_denials() {
        let text = violations_text(
            &[
                v(Level::Deny, false),
                v(Level::Warn, false),
                v(Level::Deny, true),
            ],
            &[],
            false,
        );
        assert!(text.contains("  deny [shared_storage] service s_web: use S3\n"));
        assert!(text.contains("  warn [shared_storage] service s_web: use S3\n"));
        assert!(text.contains(
            "skipped [shared_storage] service s_web: use S3 (skipped by shoal.policy.skip)"
        ));
        assert!(text.contains("1 policy violation(s) deny this plan"));
    }

    #[test]
    fn nothing_to_say_is_empty() {
        assert_eq!(violations_text(&[], &[], false), "");
    }

    #[test]
    fn policy_errors_are_listed() {
        let text = violations_text(&[], &["policies/x.rego:3: bad".into()], false);
        assert!(text.contains("policies/x.rego:3: bad"));
    }
}
