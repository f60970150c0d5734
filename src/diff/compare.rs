//! Field-by-field comparison of two canonical specs (see `normalize`),
//! producing changes addressed by paths people can read:
//! `Mode.Replicated.Replicas`, `TaskTemplate.ContainerSpec.Env[FOO]`,
//! `EndpointSpec.Ports[8080/tcp].TargetPort`, `Args[1]`.
use super::normalize::KEYED_FIELDS;
use crate::model::FieldChange;
use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Field(String),
    Key(String),
    Index(usize),
}

impl Seg {
    /// The step to entry `k` of an object: a key in a keyed collection
    /// (`Env[FOO]`), a field otherwise (`.Image`).
    fn child(keyed: bool, k: &str) -> Seg {
        if keyed {
            Seg::Key(k.to_owned())
        } else {
            Seg::Field(k.to_owned())
        }
    }
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Field(f) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(f);
            }
            Seg::Key(k) => {
                out.push('[');
                out.push_str(k);
                out.push(']');
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The secret-name rule lives with the secrets (`secrets::names`).
pub use crate::secrets::is_secret_name;

/// An env entry (`...Env[NAME]`) whose name looks secret.
fn is_sensitive(path: &[Seg]) -> bool {
    path.windows(2).any(|w| match (&w[0], &w[1]) {
        (Seg::Field(f), Seg::Key(k)) => f == "Env" && is_secret_name(k),
        _ => false,
    })
}

/// The changes that turn `before` (live) into `after` (desired).
pub fn diff_tree(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(Some(before), Some(after), &mut Vec::new(), &mut out);
    out
}

/// Every field of a new object (`before` null), one leaf per entry:
/// objects are opened, keyed collections entry by entry (env masked),
/// lists stay whole values (`Args: ["sleep","60"]`).
pub fn fields_of(after: &Value) -> Vec<FieldChange> {
    fn leaves(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<FieldChange>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                let keyed = is_keyed(path);
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for k in keys {
                    path.push(Seg::child(keyed, k));
                    leaves(&map[k], path, out);
                    path.pop();
                }
            }
            _ => out.push(FieldChange {
                path: render_path(path),
                before: Value::Null,
                after: v.clone(),
                sensitive: is_sensitive(path),
            }),
        }
    }
    let mut out = Vec::new();
    if after.as_object().is_some_and(|m| !m.is_empty()) {
        leaves(after, &mut Vec::new(), &mut out);
    }
    out
}

fn is_keyed(path: &[Seg]) -> bool {
    matches!(path.last(), Some(Seg::Field(f)) if KEYED_FIELDS.contains(&f.as_str()))
}

fn walk(
    before: Option<&Value>,
    after: Option<&Value>,
    path: &mut Vec<Seg>,
    out: &mut Vec<FieldChange>,
) {
    if before == after {
        return;
    }
    let empty = Value::Object(Map::new());
    let keyed = is_keyed(path);
    // A keyed collection present on one side only is listed entry by
    // entry, so each env variable is named (and masked) on its own.
    let (before, after) = match (before, after) {
        (None, Some(Value::Object(_))) if keyed => (Some(&empty), after),
        (Some(Value::Object(_)), None) if keyed => (before, Some(&empty)),
        other => other,
    };
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                path.push(Seg::child(keyed, k));
                walk(b.get(k), a.get(k), path, out);
                path.pop();
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) => {
            for i in 0..b.len().max(a.len()) {
                path.push(Seg::Index(i));
                walk(b.get(i), a.get(i), path, out);
                path.pop();
            }
        }
        _ => out.push(FieldChange {
            path: render_path(path),
            before: before.cloned().unwrap_or(Value::Null),
            after: after.cloned().unwrap_or(Value::Null),
            sensitive: is_sensitive(path),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_object_lists_its_leaves_with_env_masked() {
        let spec = json!({
            "Mode": {"Replicated": {"Replicas": 2}},
            "TaskTemplate": {"ContainerSpec": {
                "Args": ["sleep", "60"],
                "Env": {"DB_PASSWORD": "x", "MODE": "prod"}}}});
        let fields = fields_of(&spec);
        let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "Mode.Replicated.Replicas",
                "TaskTemplate.ContainerSpec.Args",
                "TaskTemplate.ContainerSpec.Env[DB_PASSWORD]",
                "TaskTemplate.ContainerSpec.Env[MODE]",
            ]
        );
        assert!(fields.iter().all(|f| f.before.is_null()));
        assert_eq!(fields[1].after, json!(["sleep", "60"]));
        assert!(fields[2].sensitive && !fields[3].sensitive);
    }

    fn paths(c: &[FieldChange]) -> Vec<&str> {
        c.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn equal_trees_have_no_changes() {
        let v = json!({"A": {"B": [1, 2]}});
        assert!(diff_tree(&v, &v).is_empty());
    }

    #[test]
    fn nested_fields_are_dotted() {
        let c = diff_tree(
            &json!({"Mode": {"Replicated": {"Replicas": 2}}}),
            &json!({"Mode": {"Replicated": {"Replicas": 3}}}),
        );
        assert_eq!(paths(&c), ["Mode.Replicated.Replicas"]);
        assert_eq!(
            (c[0].before.clone(), c[0].after.clone()),
            (json!(2), json!(3))
        );
        assert!(!c[0].sensitive);
    }

    #[test]
    fn keyed_collections_use_brackets() {
        let c = diff_tree(
            &json!({"Labels": {"traefik.http.routers.a.rule": "x"}}),
            &json!({"Labels": {"traefik.http.routers.a.rule": "y"}}),
        );
        assert_eq!(paths(&c), ["Labels[traefik.http.routers.a.rule]"]);
    }

    #[test]
    fn lists_compare_by_index_and_absent_is_null() {
        let c = diff_tree(
            &json!({"Args": ["a", "b"]}),
            &json!({"Args": ["a", "c", "d"]}),
        );
        assert_eq!(paths(&c), ["Args[1]", "Args[2]"]);
        assert_eq!(c[1].before, Value::Null);
        assert_eq!(c[1].after, json!("d"));
    }

    #[test]
    fn a_whole_keyed_map_added_is_listed_per_entry_and_masked() {
        let c = diff_tree(
            &json!({"TaskTemplate": {"ContainerSpec": {}}}),
            &json!({"TaskTemplate": {"ContainerSpec": {"Env": {"DB_PASSWORD": "x", "FOO": "bar"}}}}),
        );
        assert_eq!(
            paths(&c),
            [
                "TaskTemplate.ContainerSpec.Env[DB_PASSWORD]",
                "TaskTemplate.ContainerSpec.Env[FOO]"
            ]
        );
        assert!(c[0].sensitive);
        assert!(!c[1].sensitive);
    }

    #[test]
    fn an_absent_plain_object_is_one_change() {
        let c = diff_tree(
            &json!({}),
            &json!({"Healthcheck": {"Test": ["CMD", "true"]}}),
        );
        assert_eq!(paths(&c), ["Healthcheck"]);
        assert_eq!(c[0].before, Value::Null);
    }

    #[test]
    fn secret_looking_names() {
        for n in [
            "DB_PASSWORD",
            "api_token",
            "SecretKey",
            "LICENSE",
            "my_key_file",
            "passwd",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in ["FOO", "ROOT_URL", "MONGO_URL", "PORT"] {
            assert!(!is_secret_name(n), "{n}");
        }
    }
}
