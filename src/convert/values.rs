//! Small value conversions docker applies while converting a service:
//! CPUs, capabilities, environment, extra hosts, restart policies.
use serde_json::{Map, Value};

/// Insert `value` under `key` unless it is what Go's `omitempty` drops
/// (null, false, 0, "", empty list or map), so specs carry exactly the keys
/// docker's JSON carries.
pub(crate) fn put(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    let value = value.into();
    let empty = match &value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    if !empty {
        map.insert(key.to_string(), value);
    }
}

/// Insert `value` when present, even if it is a zero value (Go pointers:
/// `Delay: 0s` is sent as `0`).
pub(crate) fn put_some<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        map.insert(key.to_string(), v.into());
    }
}

/// A list of strings as JSON.
pub(crate) fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|s| Value::String(s.clone()))
            .collect(),
    )
}

/// A string map as a JSON object sorted by key.
pub(crate) fn string_map<'a>(items: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    let sorted: std::collections::BTreeMap<_, _> = items.into_iter().collect();
    Value::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// `cpus: "0.5"` -> 500000000 NanoCPUs. Like docker's `opts.ParseCPUs`
/// the value is a rational number (`1.5`, `3/2`, `1e-1`) that must be a
/// whole number of nano CPUs.
pub(crate) fn parse_nano_cpus(value: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {value:?} as a number of CPUs (e.g. \"0.5\" or \"2\")");
    let (num, den) = parse_rational(value.trim()).ok_or_else(bad)?;
    let nano = num.checked_mul(1_000_000_000).ok_or_else(bad)?;
    if den == 0 {
        return Err(bad());
    }
    if nano % den != 0 {
        return Err(format!(
            "{value:?} is too precise: CPUs are counted in units of 0.000000001"
        ));
    }
    i64::try_from(nano / den).map_err(|_| bad())
}

/// A decimal (with optional exponent) or `a/b` fraction as numerator and
/// (positive) denominator.
fn parse_rational(s: &str) -> Option<(i128, i128)> {
    if let Some((a, b)) = s.split_once('/') {
        let a: i128 = a.parse().ok()?;
        let b: i128 = b.parse().ok()?;
        if b == 0 {
            return None;
        }
        return Some(if b < 0 { (-a, -b) } else { (a, b) });
    }
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (neg, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let all: String = format!("{int}{frac}");
    let mut num: i128 = if all.is_empty() { 0 } else { all.parse().ok()? };
    let scale = exp - i32::try_from(frac.len()).ok()?;
    let mut den: i128 = 1;
    if scale >= 0 {
        num = num.checked_mul(10i128.checked_pow(scale as u32)?)?;
    } else {
        den = 10i128.checked_pow(scale.unsigned_abs())?;
    }
    Some((if neg { -num } else { num }, den))
}

/// Normalize a capability as docker does: upper case, `CAP_` prefix,
/// except the special values `ALL` and `RESET`.
fn normalize_capability(cap: &str) -> String {
    let cap = cap.trim().to_uppercase();
    if cap == "ALL" || cap == "RESET" || cap.starts_with("CAP_") {
        cap
    } else {
        format!("CAP_{cap}")
    }
}

/// docker's `EffectiveCapAddCapDrop`: normalized, deduplicated, sorted;
/// `ALL` absorbs the rest of its list, a capability both added and dropped
/// is only added, and `RESET` is dropped from both.
pub(crate) fn effective_capabilities(
    add: &[String],
    drop: &[String],
) -> (Vec<String>, Vec<String>) {
    use std::collections::BTreeSet;
    let norm = |caps: &[String]| -> BTreeSet<String> {
        let set: BTreeSet<String> = caps.iter().map(|c| normalize_capability(c)).collect();
        if set.contains("ALL") {
            BTreeSet::from(["ALL".to_string()])
        } else {
            set
        }
    };
    let (add, drop) = (norm(add), norm(drop));
    let cap_drop = drop
        .iter()
        .filter(|c| !add.contains(*c) && *c != "RESET")
        .cloned()
        .collect();
    let cap_add = add.iter().filter(|c| *c != "RESET").cloned().collect();
    (cap_add, cap_drop)
}

/// Environment as `K=V` sorted; a variable without a value (`FOO:` after the
/// loader found nothing to fill it from) is passed as bare `K`, as docker
/// does (the daemon then leaves it unset in the container).
pub(crate) fn environment<'a>(
    env: impl IntoIterator<Item = (&'a String, &'a Option<String>)>,
) -> Vec<String> {
    let mut out: Vec<String> = env
        .into_iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    out.sort();
    out
}

/// `host:ip` -> `ip host` (SwarmKit's hosts-file notation), order kept.
/// Entries without a `:` are skipped by docker; they are returned as the
/// second list so the caller can warn about them.
pub(crate) fn extra_hosts(entries: &[String]) -> (Vec<String>, Vec<String>) {
    let mut hosts = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        match entry.split_once(':') {
            Some((host, ip)) => hosts.push(format!("{ip} {host}")),
            None => skipped.push(entry.clone()),
        }
    }
    (hosts, skipped)
}

/// The legacy `restart:` value as a swarm restart policy, as docker does
/// when `deploy.restart_policy` is not set: `no`/empty -> none,
/// `always`/`unless-stopped` -> `any`, `on-failure[:N]` -> `on-failure`
/// with `MaxAttempts: N` (0 when N is not given).
pub(crate) fn legacy_restart_policy(restart: &str) -> Result<Option<Value>, String> {
    if restart.is_empty() {
        return Ok(None);
    }
    let (name, count) = match restart.split_once(':') {
        Some(("", _)) => return Err("no policy given before the colon".into()),
        Some((name, count)) => (name, count),
        None => (restart, ""),
    };
    let attempts: i64 = if count.is_empty() {
        0
    } else {
        count
            .parse()
            .map_err(|_| format!("maximum retry count {count:?} must be an integer"))?
    };
    let mut policy = Map::new();
    match name {
        "no" => return Ok(None),
        "always" | "unless-stopped" => {
            policy.insert("Condition".into(), "any".into());
        }
        "on-failure" => {
            policy.insert("Condition".into(), "on-failure".into());
            policy.insert("MaxAttempts".into(), attempts.into());
        }
        other => {
            return Err(format!(
            "unknown restart policy {other:?} (valid: no, always, on-failure[:N], unless-stopped)"
        ))
        }
    }
    Ok(Some(Value::Object(policy)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nano_cpus_parse_like_docker() {
        assert_eq!(parse_nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus("3/2"), Ok(1_500_000_000));
        assert_eq!(parse_nano_cpus("1e-1"), Ok(100_000_000));
        assert_eq!(parse_nano_cpus(".25"), Ok(250_000_000));
        assert!(parse_nano_cpus("0.0000000001")
            .unwrap_err()
            .contains("too precise"));
        assert!(parse_nano_cpus("half").unwrap_err().contains("\"half\""));
        assert!(parse_nano_cpus("").is_err());
    }

    #[test]
    fn capabilities_are_normalized_and_sorted() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (add, drop) = effective_capabilities(
            &s(&["net_admin", "CAP_SYS_TIME", "chown"]),
            &s(&["mknod", "CHOWN", "reset"]),
        );
        assert_eq!(add, s(&["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_TIME"]));
        assert_eq!(drop, s(&["CAP_MKNOD"]));
        let (add, drop) = effective_capabilities(&s(&["all", "net_admin"]), &s(&["ALL"]));
        assert_eq!(add, s(&["ALL"]));
        assert!(drop.is_empty());
    }

    #[test]
    fn environment_sorted_with_bare_names() {
        let env = [
            ("ZED".to_string(), Some("z".to_string())),
            ("A".to_string(), Some(String::new())),
            ("UNSET".to_string(), None),
        ];
        assert_eq!(
            environment(env.iter().map(|(k, v)| (k, v))),
            vec!["A=", "UNSET", "ZED=z"]
        );
    }

    #[test]
    fn extra_hosts_become_ip_first() {
        let (hosts, skipped) = extra_hosts(&[
            "somehost:162.242.195.82".to_string(),
            "v6:::1".to_string(),
            "broken".to_string(),
        ]);
        assert_eq!(hosts, vec!["162.242.195.82 somehost", "::1 v6"]);
        assert_eq!(skipped, vec!["broken"]);
    }

    #[test]
    fn legacy_restart_maps_to_swarm_conditions() {
        assert_eq!(legacy_restart_policy(""), Ok(None));
        assert_eq!(legacy_restart_policy("no"), Ok(None));
        assert_eq!(
            legacy_restart_policy("always"),
            Ok(Some(json!({"Condition": "any"})))
        );
        assert_eq!(
            legacy_restart_policy("unless-stopped"),
            Ok(Some(json!({"Condition": "any"})))
        );
        assert_eq!(
            legacy_restart_policy("on-failure:3"),
            Ok(Some(json!({"Condition": "on-failure", "MaxAttempts": 3})))
        );
        assert_eq!(
            legacy_restart_policy("on-failure"),
            Ok(Some(json!({"Condition": "on-failure", "MaxAttempts": 0})))
        );
        assert!(legacy_restart_policy("sometimes")
            .unwrap_err()
            .contains("sometimes"));
    }

    #[test]
    fn put_omits_go_zero_values() {
        let mut m = Map::new();
        put(&mut m, "a", false);
        put(&mut m, "b", 0);
        put(&mut m, "c", "");
        put(&mut m, "d", json!([]));
        put(&mut m, "e", json!({}));
        put(&mut m, "f", true);
        put_some(&mut m, "g", Some(0));
        assert_eq!(Value::Object(m), json!({"f": true, "g": 0}));
    }
}
