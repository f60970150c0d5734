//! `depends_on` between the services of a stack, and `x-shoal.depends_on`
//! between stacks: parsing both compose forms, and the checks a loader
//! makes (unknown services or stacks, cycles, a completion condition on a
//! service that never completes). `docker stack deploy` ignores all of it;
//! shoal uses it only to order and gate its writes (`apply::waves`).
use super::model::Config;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The compose spec's conditions, with its names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// `service_started` (the list form's meaning): every task started.
    Started,
    /// `service_healthy`: every task running, and healthy where the
    /// service has a health check.
    Healthy,
    /// `service_completed_successfully`: a job whose tasks all completed.
    CompletedSuccessfully,
}

impl Condition {
    pub const NAMES: [&'static str; 3] = [
        "service_started",
        "service_healthy",
        "service_completed_successfully",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
            Condition::CompletedSuccessfully => "service_completed_successfully",
        }
    }

    fn parse(s: &str) -> Option<Condition> {
        match s {
            "service_started" => Some(Condition::Started),
            "service_healthy" => Some(Condition::Healthy),
            "service_completed_successfully" => Some(Condition::CompletedSuccessfully),
            _ => None,
        }
    }
}

/// One dependency of a service on another of the same stack (compose key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    /// `required: false`: a dependency that does not exist is skipped.
    pub required: bool,
}

/// A `depends_on` that cannot be used: the field path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependsError {
    pub path: Vec<String>,
    pub message: String,
}

fn error(path: &[&str], message: String) -> DependsError {
    DependsError {
        path: path.iter().map(|s| s.to_string()).collect(),
        message,
    }
}

/// The dependencies of service `name`, from its `depends_on` as loaded
/// (the list or the map form).
pub fn parse(name: &str, value: &Value) -> Result<Vec<Dependency>, DependsError> {
    let at = ["services", name, "depends_on"];
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => parse_list(&at, items),
        Value::Object(map) => map
            .iter()
            .map(|(service, opts)| parse_entry(&at, service, opts))
            .collect(),
        other => Err(error(
            &at,
            format!(
                "expected a list of services or a mapping of service to condition, found {other}"
            ),
        )),
    }
}

/// The list form: service names, each once, each `service_started`.
fn parse_list(at: &[&str], items: &[Value]) -> Result<Vec<Dependency>, DependsError> {
    let mut out: Vec<Dependency> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(service) = item.as_str() else {
            return Err(error(
                &[at, &[i.to_string().as_str()]].concat(),
                format!("expected a service name, found {item}"),
            ));
        };
        if !seen.insert(service) {
            return Err(error(at, format!("{service:?} is listed twice")));
        }
        out.push(Dependency {
            service: service.to_string(),
            condition: Condition::Started,
            required: true,
        });
    }
    Ok(out)
}

/// One entry of the map form: `service: {condition, required, restart}`
/// (or no options: started and required).
fn parse_entry(at: &[&str], service: &str, opts: &Value) -> Result<Dependency, DependsError> {
    let here = [at, &[service]].concat();
    let opts = match opts {
        Value::Null => serde_json::Map::new(),
        Value::Object(o) => o.clone(),
        other => {
            return Err(error(
                &here,
                format!("expected a mapping with `condition`, found {other}"),
            ))
        }
    };
    let mut condition = Condition::Started;
    let mut required = true;
    for (key, v) in &opts {
        match (key.as_str(), v) {
            ("condition", Value::String(s)) => {
                condition = Condition::parse(s).ok_or_else(|| {
                    error(
                        &[&here[..], &["condition"]].concat(),
                        format!(
                            "unknown condition {s:?}; expected {}",
                            Condition::NAMES.join(", ")
                        ),
                    )
                })?;
            }
            ("required", Value::Bool(b)) => required = *b,
            // docker compose restarts the dependant when the
            // dependency is updated; Swarm keeps it running.
            ("restart", Value::Bool(_)) => {}
            (key @ ("condition" | "required" | "restart"), v) => {
                return Err(error(
                    &[&here[..], &[key]].concat(),
                    format!(
                        "expected {}, found {v}",
                        if key == "condition" {
                            "a condition name"
                        } else {
                            "true or false"
                        }
                    ),
                ))
            }
            (key, _) => {
                return Err(error(
                    &[&here[..], &[key]].concat(),
                    "unknown key; expected condition, required or restart".into(),
                ))
            }
        }
    }
    Ok(Dependency {
        service: service.to_string(),
        condition,
        required,
    })
}

/// Every service's dependencies (`required: false` ones on services that
/// do not exist dropped), after the checks: each names a service of the
/// stack; `service_completed_successfully` only on a job; no cycle.
pub fn of_config(config: &Config) -> Result<BTreeMap<String, Vec<Dependency>>, DependsError> {
    let mut graph = BTreeMap::new();
    for (name, svc) in &config.services {
        let Some(value) = &svc.depends_on else {
            continue;
        };
        let mut deps = parse(name, value)?;
        deps.retain(|d| d.required || config.services.contains_key(&d.service));
        for d in &deps {
            let path = ["services", name, "depends_on", d.service.as_str()];
            let Some(target) = config.services.get(&d.service) else {
                let known: Vec<&str> = config.services.keys().map(String::as_str).collect();
                return Err(error(
                    &path,
                    format!(
                        "{name} depends on {:?}, which is not a service of this stack (services: {})",
                        d.service,
                        known.join(", ")
                    ),
                ));
            };
            let mode = target
                .deploy
                .as_ref()
                .and_then(|d| d.mode.clone())
                .unwrap_or_default();
            if d.condition == Condition::CompletedSuccessfully && !mode.ends_with("-job") {
                return Err(error(
                    &path,
                    format!(
                        "{name} waits for {} to complete, but {} is not a job (deploy.mode: {}); Swarm restarts the tasks of a service, so it never completes: give {} `deploy.mode: replicated-job`, or use service_started or service_healthy",
                        d.service,
                        d.service,
                        if mode.is_empty() { "replicated" } else { &mode },
                        d.service
                    ),
                ));
            }
        }
        graph.insert(name.clone(), deps);
    }
    let edges: BTreeMap<&str, Vec<&str>> = graph
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(|d| d.service.as_str()).collect()))
        .collect();
    if let Some(cycle) = find_cycle(&edges) {
        let first = cycle[0].to_string();
        return Err(error(
            &["services", &first, "depends_on"],
            format!("dependency cycle: {}", cycle.join(" -> ")),
        ));
    }
    Ok(graph)
}

/// The stacks a stack file needs (`x-shoal: {depends_on: [infra]}` at the
/// top level, which docker ignores like every `x-` key).
pub fn stack_needs(x_shoal: Option<&Value>) -> Result<Vec<String>, DependsError> {
    let Some(x) = x_shoal else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = x else {
        return Err(error(
            &["x-shoal"],
            format!("expected a mapping like `{{depends_on: [infra]}}`, found {x}"),
        ));
    };
    let mut needs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (key, v) in map {
        match (key.as_str(), v) {
            ("depends_on", Value::Array(items)) => {
                for item in items {
                    match item.as_str() {
                        Some(s) if !s.is_empty() => {
                            if seen.insert(s) {
                                needs.push(s.to_string())
                            }
                        }
                        _ => {
                            return Err(error(
                                &["x-shoal", "depends_on"],
                                format!(
                                    "expected stack names (folders under stacks/), found {item}"
                                ),
                            ))
                        }
                    }
                }
            }
            ("depends_on", other) => {
                return Err(error(
                    &["x-shoal", "depends_on"],
                    format!("expected a list of stack names, found {other}"),
                ))
            }
            (other, _) => {
                return Err(error(
                    &["x-shoal", other],
                    "unknown key; x-shoal knows depends_on".into(),
                ))
            }
        }
    }
    Ok(needs)
}

/// Check the stacks' needs against the repository: each names a stack
/// that exists, and no cycle. Returns, per stack, why it cannot be used
/// (naming both ends).
pub fn check_stacks(
    needs: &BTreeMap<String, Vec<String>>,
    existing: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut problems = BTreeMap::new();
    for (stack, wanted) in needs {
        for w in wanted {
            if w == stack || !existing.contains(w) {
                let known: Vec<&str> = existing.iter().map(String::as_str).collect();
                problems.insert(
                    stack.clone(),
                    if w == stack {
                        format!("x-shoal.depends_on: stack {stack} depends on itself")
                    } else {
                        format!(
                            "x-shoal.depends_on: stack {stack} depends on stack {w:?}, which is not in the repository (stacks: {})",
                            known.join(", ")
                        )
                    },
                );
            }
        }
    }
    let edges: BTreeMap<&str, Vec<&str>> = needs
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    if let Some(cycle) = find_cycle(&edges) {
        let text = format!(
            "x-shoal.depends_on: stack dependency cycle: {}",
            cycle.join(" -> ")
        );
        for s in &cycle {
            problems
                .entry(s.to_string())
                .or_insert_with(|| text.clone());
        }
    }
    problems
}

/// Stacks in an order where each comes after the stacks it needs (those
/// outside `stacks` are ignored); ties keep name order. Cycles were
/// refused at load, but a stack left in one comes last rather than never.
pub fn stack_order(stacks: &[String], needs: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let all: BTreeSet<&String> = stacks.iter().collect();
    let mut placed: Vec<String> = Vec::new();
    let mut done: BTreeSet<&String> = BTreeSet::new();
    let mut left: Vec<&String> = stacks.iter().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|s| {
                needs
                    .get(*s)
                    .into_iter()
                    .flatten()
                    .all(|n| !all.contains(n) || done.contains(n) || n == *s)
            })
            .collect();
        let take = if ready.is_empty() {
            vec![left[0]]
        } else {
            ready
        };
        for s in take {
            placed.push(s.clone());
            done.insert(s);
        }
        left.retain(|l| !done.contains(l));
    }
    placed
}

/// A cycle in a dependency graph, as `a -> b -> a`, if there is one.
fn find_cycle<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for &start in edges.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Iterative depth-first search: repository input, no recursion.
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Open);
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let succ = edges.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if *next < succ.len() {
                let to = succ[*next];
                *next += 1;
                match marks.get(to) {
                    Some(Mark::Open) => {
                        let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[from..].iter().map(|(n, _)| *n).collect();
                        cycle.push(to);
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(to, Mark::Open);
                        stack.push((to, 0));
                    }
                }
            } else {
                marks.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(yaml: &str) -> Config {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn both_forms_parse_with_the_compose_meanings() {
        let list = parse("web", &json!(["db", "cache"])).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|d| d.condition == Condition::Started));
        let map = parse(
            "web",
            &json!({"db": {"condition": "service_healthy"},
                    "init": {"condition": "service_completed_successfully", "restart": true},
                    "cache": {"condition": "service_started", "required": false}}),
        )
        .unwrap();
        let by: BTreeMap<_, _> = map.iter().map(|d| (d.service.as_str(), d)).collect();
        assert_eq!(by["db"].condition, Condition::Healthy);
        assert_eq!(by["init"].condition, Condition::CompletedSuccessfully);
        assert!(!by["cache"].required);
    }

    #[test]
    fn bad_conditions_say_what_is_valid() {
        let e = parse("web", &json!({"db": {"condition": "healthy"}})).unwrap_err();
        assert_eq!(
            e.path,
            vec!["services", "web", "depends_on", "db", "condition"]
        );
        assert!(e.message.contains("service_healthy"), "{}", e.message);
        let e = parse("web", &json!({"db": {"when": 1}})).unwrap_err();
        assert!(e.message.contains("condition, required or restart"));
    }

    #[test]
    fn unknown_services_name_both_ends() {
        let c = config("services:\n  web: {image: x, depends_on: [db]}\n  cache: {image: x}\n");
        let e = of_config(&c).unwrap_err();
        assert_eq!(e.path, vec!["services", "web", "depends_on", "db"]);
        assert_eq!(
            e.message,
            "web depends on \"db\", which is not a service of this stack (services: web, cache)"
        );
        let optional = config(
            "services:\n  web: {image: x, depends_on: {db: {condition: service_started, required: false}}}\n",
        );
        assert!(of_config(&optional).unwrap()["web"].is_empty());
    }

    #[test]
    fn cycles_are_refused_with_the_path() {
        let c = config(
            "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [c]}\n  c: {image: x, depends_on: [a]}\n",
        );
        let e = of_config(&c).unwrap_err();
        assert_eq!(e.message, "dependency cycle: a -> b -> c -> a");
        let own = config("services:\n  a: {image: x, depends_on: [a]}\n");
        assert_eq!(
            of_config(&own).unwrap_err().message,
            "dependency cycle: a -> a"
        );
    }

    #[test]
    fn completion_needs_a_job() {
        let c = config(
            "services:\n  web: {image: x, depends_on: {init: {condition: service_completed_successfully}}}\n  init: {image: x}\n",
        );
        let e = of_config(&c).unwrap_err();
        assert!(e.message.contains("init is not a job"), "{}", e.message);
        let ok = config(
            "services:\n  web: {image: x, depends_on: {init: {condition: service_completed_successfully}}}\n  init: {image: x, deploy: {mode: replicated-job}}\n",
        );
        assert_eq!(
            of_config(&ok).unwrap()["web"][0].condition,
            Condition::CompletedSuccessfully
        );
    }

    #[test]
    fn stacks_need_existing_stacks_without_cycles() {
        assert_eq!(
            stack_needs(Some(&json!({"depends_on": ["infra", "infra"]}))).unwrap(),
            vec!["infra"]
        );
        assert!(stack_needs(Some(&json!({"depends_on": "infra"}))).is_err());
        assert!(stack_needs(Some(&json!({"after": ["x"]})))
            .unwrap_err()
            .message
            .contains("knows depends_on"));
        let existing: BTreeSet<String> = ["app", "infra", "db"].map(String::from).into();
        let needs = BTreeMap::from([
            ("app".to_string(), vec!["infra".to_string()]),
            ("db".to_string(), vec!["nope".to_string()]),
        ]);
        let p = check_stacks(&needs, &existing);
        assert_eq!(p.len(), 1);
        assert!(
            p["db"].contains("stack db depends on stack \"nope\""),
            "{}",
            p["db"]
        );
        let cyclic = BTreeMap::from([
            ("app".to_string(), vec!["infra".to_string()]),
            ("infra".to_string(), vec!["app".to_string()]),
        ]);
        let p = check_stacks(&cyclic, &existing);
        assert_eq!(
            p["app"],
            "x-shoal.depends_on: stack dependency cycle: app -> infra -> app"
        );
        assert!(p.contains_key("infra"));
    }

    #[test]
    fn stacks_are_ordered_after_what_they_need() {
        let stacks: Vec<String> = ["app", "edge", "infra"].map(String::from).into();
        let needs = BTreeMap::from([
            ("app".to_string(), vec!["infra".to_string()]),
            (
                "edge".to_string(),
                vec!["app".to_string(), "elsewhere".to_string()],
            ),
        ]);
        assert_eq!(stack_order(&stacks, &needs), vec!["infra", "app", "edge"]);
    }
}
