//! Variable interpolation with docker/cli's template rules.
//!
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`,
//! `${VAR?err}` and `$$` (a literal `$`). Defaults are taken literally, as
//! docker/cli does (no nested substitution). Anything else after a `$` is
//! an invalid template.

/// Why a template could not be substituted.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateError {
    /// Not a valid template (e.g. `${`, `$1`, a `$` at the end).
    Invalid,
    /// `${VAR:?msg}` / `${VAR?msg}` with the variable missing.
    Required { name: String, message: String },
}

/// The outcome of substituting one string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Substituted {
    pub value: String,
    /// Variables looked up without a default that were not set.
    pub unset: Vec<String>,
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Substitute every variable of `template`, looking values up with `lookup`.
pub fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Substituted, TemplateError> {
    let mut out = Substituted::default();
    let chars: Vec<char> = template.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.value.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.value.push('$');
                i += 2;
            }
            Some(&n) if is_name_start(n) => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && is_name_char(chars[end]) {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                out.value.push_str(&plain(&name, lookup, &mut out.unset));
                i = end;
            }
            Some('{') => {
                let close = chars[i + 2..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or(TemplateError::Invalid)?;
                let body: String = chars[i + 2..i + 2 + close].iter().collect();
                out.value.push_str(&braced(&body, lookup, &mut out.unset)?);
                i += 3 + close;
            }
            _ => return Err(TemplateError::Invalid),
        }
    }
    Ok(out)
}

fn plain(name: &str, lookup: &dyn Fn(&str) -> Option<String>, unset: &mut Vec<String>) -> String {
    match lookup(name) {
        Some(v) => v,
        None => {
            if !unset.iter().any(|u| u == name) {
                unset.push(name.to_string());
            }
            String::new()
        }
    }
}

/// The body of `${...}`: a name, optionally followed by `:-`, `-`, `:?` or `?`.
fn braced(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<String, TemplateError> {
    let mut chars = body.chars();
    match chars.next() {
        Some(c) if is_name_start(c) => {}
        _ => return Err(TemplateError::Invalid),
    }
    let name_len = body
        .char_indices()
        .find(|&(_, c)| !is_name_char(c))
        .map(|(i, _)| i)
        .unwrap_or(body.len());
    let (name, rest) = body.split_at(name_len);
    if rest.is_empty() {
        return Ok(plain(name, lookup, unset));
    }
    if ![":-", ":?", "-", "?"].iter().any(|op| rest.starts_with(op)) {
        return Err(TemplateError::Invalid);
    }
    // docker/cli tries the operators in this order on the whole body.
    if let Some((n, default)) = body.split_once(":-") {
        return Ok(match lookup(n) {
            Some(v) if !v.is_empty() => v,
            _ => default.to_string(),
        });
    }
    if let Some((n, default)) = body.split_once('-') {
        return Ok(lookup(n).unwrap_or_else(|| default.to_string()));
    }
    if let Some((n, message)) = body.split_once(":?") {
        return match lookup(n) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(TemplateError::Required {
                name: n.to_string(),
                message: message.to_string(),
            }),
        };
    }
    if let Some((n, message)) = body.split_once('?') {
        return lookup(n).ok_or_else(|| TemplateError::Required {
            name: n.to_string(),
            message: message.to_string(),
        });
    }
    Err(TemplateError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(t: &str) -> Result<Substituted, TemplateError> {
        let lookup = |n: &str| match n {
            "A" => Some("a".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        substitute(t, &lookup)
    }

    fn val(t: &str) -> String {
        sub(t).unwrap().value
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(val("x-$A-${A}"), "x-a-a");
        assert_eq!(val("$A_B"), "");
        assert_eq!(sub("$NOPE ${NOPE}").unwrap().unset, vec!["NOPE"]);
        assert_eq!(val("no vars"), "no vars");
    }

    #[test]
    fn escape() {
        assert_eq!(val("$$HOME $$$A"), "$HOME $a");
    }

    #[test]
    fn defaults() {
        assert_eq!(val("${NOPE:-d}"), "d");
        assert_eq!(val("${EMPTY:-d}"), "d");
        assert_eq!(val("${EMPTY-d}"), "");
        assert_eq!(val("${NOPE-d}"), "d");
        assert_eq!(val("${A:-d}"), "a");
        assert_eq!(
            val("${NOPE:-$A}"),
            "$A",
            "defaults are literal in docker/cli"
        );
        assert!(sub("${NOPE:-d}").unwrap().unset.is_empty());
    }

    #[test]
    fn required() {
        assert_eq!(
            sub("${NOPE:?need it}"),
            Err(TemplateError::Required {
                name: "NOPE".into(),
                message: "need it".into()
            })
        );
        assert!(sub("${EMPTY:?x}").is_err());
        assert_eq!(val("${EMPTY?x}"), "");
        assert!(sub("${NOPE?x}").is_err());
        assert_eq!(val("${A:?x}"), "a");
    }

    #[test]
    fn invalid() {
        for t in ["${", "a$", "$1", "${}", "${1A}", "${A B}", "$-"] {
            assert_eq!(sub(t), Err(TemplateError::Invalid), "{t}");
        }
    }
}

/// The type a few fields are cast to after interpolation, as docker/cli's
/// `interpolateTypeCastMapping` does (only when the string changed).
#[derive(Debug, Clone, Copy)]
enum Cast {
    Int,
    Float,
    Bool,
}

/// `*` matches one path segment (a name or a list index).
const CASTS: &[(&str, Cast)] = &[
    ("services.*.configs.*.mode", Cast::Int),
    ("services.*.secrets.*.mode", Cast::Int),
    ("services.*.healthcheck.retries", Cast::Int),
    ("services.*.healthcheck.disable", Cast::Bool),
    ("services.*.deploy.replicas", Cast::Int),
    ("services.*.deploy.update_config.parallelism", Cast::Int),
    (
        "services.*.deploy.update_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.rollback_config.parallelism", Cast::Int),
    (
        "services.*.deploy.rollback_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.restart_policy.max_attempts", Cast::Int),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Cast::Int,
    ),
    ("services.*.ports.*.target", Cast::Int),
    ("services.*.ports.*.published", Cast::Int),
    ("services.*.ulimits.*", Cast::Int),
    ("services.*.ulimits.*.hard", Cast::Int),
    ("services.*.ulimits.*.soft", Cast::Int),
    ("services.*.privileged", Cast::Bool),
    ("services.*.read_only", Cast::Bool),
    ("services.*.stdin_open", Cast::Bool),
    ("services.*.tty", Cast::Bool),
    ("services.*.volumes.*.read_only", Cast::Bool),
    ("services.*.volumes.*.volume.nocopy", Cast::Bool),
    ("networks.*.external", Cast::Bool),
    ("networks.*.internal", Cast::Bool),
    ("networks.*.attachable", Cast::Bool),
    ("volumes.*.external", Cast::Bool),
    ("secrets.*.external", Cast::Bool),
    ("configs.*.external", Cast::Bool),
];

fn cast_for(path: &[String]) -> Option<Cast> {
    CASTS.iter().find_map(|(pattern, cast)| {
        let segs: Vec<&str> = pattern.split('.').collect();
        (segs.len() == path.len() && segs.iter().zip(path).all(|(s, p)| *s == "*" || s == p))
            .then_some(*cast)
    })
}

fn apply_cast(cast: Cast, s: &str) -> Result<serde_yaml::Value, String> {
    use serde_yaml::Value;
    match cast {
        Cast::Int => s
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .map_err(|_| format!("expected an integer, found {s:?}")),
        Cast::Float => s
            .parse::<f64>()
            .map(|f| Value::Number(f.into()))
            .map_err(|_| format!("expected a number, found {s:?}")),
        Cast::Bool => match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "n" | "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "expected a boolean (true/false, yes/no, on/off), found {s:?}"
            )),
        },
    }
}

/// Interpolate every string value (never keys) under `value`, which sits
/// at `path`. Unset variables are added to `unset`.
pub fn interpolate_value(
    value: &mut serde_yaml::Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<(), (Vec<String>, String)> {
    use serde_yaml::Value;
    match value {
        Value::String(s) => {
            let out = substitute(s, lookup).map_err(|e| {
                let msg = match e {
                    TemplateError::Invalid => format!(
                        "invalid interpolation format {s:?}; you may need to escape any $ with another $"
                    ),
                    TemplateError::Required { name, message } => {
                        format!("required variable {name} is missing a value: {message}")
                    }
                };
                (path.clone(), msg)
            })?;
            for u in out.unset {
                if !unset.contains(&u) {
                    unset.push(u);
                }
            }
            if out.value != *s {
                *value = match cast_for(path) {
                    Some(cast) => apply_cast(cast, &out.value).map_err(|m| (path.clone(), m))?,
                    None => Value::String(out.value),
                };
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                let r = interpolate_value(item, path, lookup, unset);
                path.pop();
                r?;
            }
        }
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                path.push(key);
                let r = interpolate_value(v, path, lookup, unset);
                path.pop();
                r?;
            }
        }
        Value::Tagged(t) => interpolate_value(&mut t.value, path, lookup, unset)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tree_tests {
    use super::*;

    #[test]
    fn casts_interpolated_fields_only() {
        let mut v: serde_yaml::Value = serde_yaml::from_str(
            "services: {web: {deploy: {replicas: '${N}'}, tty: '$B', image: '${N}', user: '5'}}",
        )
        .unwrap();
        let lookup = |n: &str| match n {
            "N" => Some("3".to_string()),
            "B" => Some("yes".to_string()),
            _ => None,
        };
        let mut unset = Vec::new();
        interpolate_value(&mut v, &mut Vec::new(), &lookup, &mut unset).unwrap();
        let want: serde_yaml::Value = serde_yaml::from_str(
            "services: {web: {deploy: {replicas: 3}, tty: true, image: '3', user: '5'}}",
        )
        .unwrap();
        assert_eq!(v, want);
    }

    #[test]
    fn errors_name_the_path() {
        let mut v: serde_yaml::Value =
            serde_yaml::from_str("services: {web: {image: '${X:?set X}'}}").unwrap();
        let (path, msg) =
            interpolate_value(&mut v, &mut Vec::new(), &|_| None, &mut Vec::new()).unwrap_err();
        assert_eq!(path.join("."), "services.web.image");
        assert_eq!(msg, "required variable X is missing a value: set X");
    }
}
