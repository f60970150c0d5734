//! Turning what a rule evaluated to into [`Violation`]s, and the
//! `shoal.policy.skip` label.
use super::error::{Location, PolicyError};
use super::{Level, Violation};
use crate::model::{DesiredObject, DesiredStack};
use serde_json::Value;
use std::collections::BTreeSet;

/// Service label silencing rules for that service: `rule[,rule...]`.
pub const SKIP_LABEL: &str = "shoal.policy.skip";

/// A rule shoal evaluates: `deny`, `warn`, `violation`, optionally with a
/// `_<id>` suffix (`deny_shared_storage`), as conftest does.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ResultRule {
    /// Query path, e.g. `data.main.deny_latest`.
    pub path: String,
    pub name: String,
    pub level: Level,
    /// The policy id results get when they carry no `rule` field.
    pub default_id: String,
    /// Where the rule is (first) declared.
    pub location: Location,
}

/// The level of a rule named like a conftest result rule, or `None`.
pub(crate) fn result_level(name: &str) -> Option<Level> {
    let (prefix, level) = [
        ("deny", Level::Deny),
        ("violation", Level::Deny),
        ("warn", Level::Warn),
    ]
    .into_iter()
    .find(|(p, _)| name.starts_with(p))?;
    let rest = &name[prefix.len()..];
    let suffix_ok = rest.is_empty()
        || (rest.len() > 1
            && rest.starts_with('_')
            && rest[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'));
    suffix_ok.then_some(level)
}

/// The id of results of rule `name` declared in `files` of `package`:
/// the suffix of `deny_<id>`; for a bare `deny`/`warn`/`violation`, the
/// file's stem when one file declares it, else the package path.
pub(crate) fn default_id(name: &str, package: &str, files: &BTreeSet<&str>) -> String {
    if let Some((_, suffix)) = name.split_once('_') {
        return suffix.to_string();
    }
    match files.iter().collect::<Vec<_>>().as_slice() {
        [one] => {
            let base = one.rsplit('/').next().unwrap_or(one);
            base.trim_end_matches(".rego").to_string()
        }
        _ => package.trim_start_matches("data.").to_string(),
    }
}

/// The violations in `value`, what `rule` evaluated to for `stack`.
pub(crate) fn read_results(
    rule: &ResultRule,
    value: Value,
    stack: &DesiredStack,
) -> Result<Vec<Violation>, PolicyError> {
    let bad = |message: String| PolicyError::BadResult {
        rule: rule.path.clone(),
        location: rule.location.clone(),
        message,
    };
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(bad(format!(
                "expected a set of messages (strings or objects with \"msg\"), found {}",
                kind_of(&other)
            )))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let (message, id, object) = match &item {
            Value::String(msg) => (msg.clone(), None, None),
            Value::Object(fields) => {
                let msg = match fields.get("msg") {
                    Some(Value::String(m)) => m.clone(),
                    _ => {
                        return Err(bad(format!(
                            "result {item} has no string \"msg\" field; write {{\"msg\": \"...\", \"service\": name}}"
                        )))
                    }
                };
                let id = optional_string(fields.get("rule"), "rule", &item).map_err(&bad)?;
                let service =
                    optional_string(fields.get("service"), "service", &item).map_err(&bad)?;
                let object =
                    optional_string(fields.get("object"), "object", &item).map_err(&bad)?;
                let object = match (service, object) {
                    (Some(s), _) => Some(format!("service {}", service_name(stack, &s))),
                    (None, o) => o,
                };
                (msg, id, object)
            }
            other => {
                return Err(bad(format!(
                    "a result must be a string or an object with \"msg\", found {}",
                    kind_of(other)
                )))
            }
        };
        out.push(Violation {
            policy: id.unwrap_or_else(|| rule.default_id.clone()),
            level: rule.level,
            object: object.unwrap_or_else(|| format!("stack {}", stack.name)),
            message,
            skipped: false,
        });
    }
    Ok(out)
}

fn optional_string(v: Option<&Value>, field: &str, item: &Value) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "result {item}: \"{field}\" must be a non-empty string, found {}",
            kind_of(other)
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The full name of the service a result names: either already full
/// (`steedos_web`) or the compose name (`web`).
fn service_name(stack: &DesiredStack, name: &str) -> String {
    if stack.services.iter().any(|s| s.name == name) {
        return name.to_string();
    }
    let full = format!("{}_{name}", stack.name);
    if stack.services.iter().any(|s| s.name == full) {
        full
    } else {
        name.to_string()
    }
}

/// Mark violations whose service silences their rule with [`SKIP_LABEL`].
pub(crate) fn apply_skips(violations: &mut [Violation], stack: &DesiredStack) {
    for v in violations.iter_mut() {
        let Some(name) = v.object.strip_prefix("service ") else {
            continue;
        };
        if let Some(service) = stack.services.iter().find(|s| s.name == name) {
            v.skipped = skipped_rules(service).contains(v.policy.as_str());
        }
    }
}

/// The rules a service silences. The label may sit in compose
/// `deploy.labels` or `labels` (seen in the loaded compose service and in
/// the converted spec).
pub(crate) fn skipped_rules(service: &DesiredObject) -> BTreeSet<String> {
    let places = [
        &service.source["deploy"]["labels"],
        &service.source["labels"],
        &service.spec["Labels"],
        &service.spec["TaskTemplate"]["ContainerSpec"]["Labels"],
    ];
    places
        .iter()
        .filter_map(|labels| labels.get(SKIP_LABEL)?.as_str())
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &str, level: Level) -> ResultRule {
        ResultRule {
            path: format!("data.main.{name}"),
            name: name.into(),
            level,
            default_id: "fallback".into(),
            location: Location {
                file: "policies/p.rego".into(),
                line: 3,
                col: 1,
            },
        }
    }

    fn stack() -> DesiredStack {
        DesiredStack {
            name: "st".into(),
            services: vec![DesiredObject {
                name: "st_web".into(),
                spec: json!({"Name": "st_web", "Labels": {SKIP_LABEL: "a, b"}}),
                source: json!({"labels": {SKIP_LABEL: "c"}}),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn recognises_conftest_rule_names() {
        assert_eq!(result_level("deny"), Some(Level::Deny));
        assert_eq!(result_level("violation_x"), Some(Level::Deny));
        assert_eq!(result_level("warn_no_latest"), Some(Level::Warn));
        assert_eq!(result_level("denylist"), None);
        assert_eq!(result_level("deny_"), None);
        assert_eq!(result_level("allow"), None);
    }

    #[test]
    fn ids_come_from_suffix_then_file_then_package() {
        let one: BTreeSet<&str> = ["policies/latest.rego"].into();
        let two: BTreeSet<&str> = ["policies/a.rego", "policies/b.rego"].into();
        assert_eq!(default_id("deny_x", "data.main", &two), "x");
        assert_eq!(default_id("warn", "data.main", &one), "latest");
        assert_eq!(default_id("deny", "data.main", &two), "main");
    }

    #[test]
    fn reads_strings_and_structured_results() {
        let value = json!([
            "plain",
            {"msg": "m", "rule": "r", "service": "web"},
            {"msg": "n", "object": "network st_x"}
        ]);
        let out = read_results(&rule("warn", Level::Warn), value, &stack()).unwrap();
        let got: Vec<_> = out
            .iter()
            .map(|v| {
                (
                    v.policy.as_str(),
                    v.object.as_str(),
                    v.message.as_str(),
                    v.level,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("fallback", "stack st", "plain", Level::Warn),
                ("r", "service st_web", "m", Level::Warn),
                ("fallback", "network st_x", "n", Level::Warn),
            ]
        );
    }

    #[test]
    fn unreadable_results_are_errors_with_location() {
        let err = read_results(
            &rule("deny", Level::Deny),
            json!([{"message": "x"}]),
            &stack(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("policies/p.rego:3:1: data.main.deny: "),
            "{err}"
        );
        let err = read_results(&rule("deny", Level::Deny), json!(true), &stack()).unwrap_err();
        assert!(err.to_string().contains("found a boolean"), "{err}");
    }

    #[test]
    fn skip_label_is_read_from_compose_and_spec() {
        let s = stack();
        let rules = skipped_rules(&s.services[0]);
        assert_eq!(rules, ["a", "b", "c"].map(String::from).into());
        let mut v = vec![
            Violation {
                policy: "b".into(),
                level: Level::Deny,
                object: "service st_web".into(),
                message: "m".into(),
                skipped: false,
            },
            Violation {
                policy: "z".into(),
                level: Level::Deny,
                object: "service st_web".into(),
                message: "m".into(),
                skipped: false,
            },
        ];
        apply_skips(&mut v, &s);
        assert!(v[0].skipped);
        assert!(!v[1].skipped);
    }
}
