//! Byte sizes (`512m`, `1g`, `100k`, `1.5GiB`) as docker/go-units
//! `RAMInBytes` parses them: binary multipliers, optional `i`/`b` suffix.

/// Parse a byte size into bytes.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let bad = || {
        format!("invalid byte size {s:?}; expected a number with an optional unit like 100k, 512m, 1g (b, k, m, g, t, p)")
    };
    let t = s.trim();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_len);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut u = unit.as_str();
    u = u.strip_suffix('b').unwrap_or(u);
    u = u.strip_suffix('i').unwrap_or(u);
    let mult: f64 = match u {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    // "ib" alone or "i" without a unit letter is not valid.
    if u.is_empty() && !unit.is_empty() && unit != "b" {
        return Err(bad());
    }
    let bytes = value * mult;
    if bytes > i64::MAX as f64 {
        return Err(format!("invalid byte size {s:?}: too large"));
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("512m"), Ok(536_870_912));
        assert_eq!(parse_bytes("1g"), Ok(1_073_741_824));
        assert_eq!(parse_bytes("100k"), Ok(102_400));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("100b"), Ok(100));
        assert_eq!(parse_bytes("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_bytes("2MB"), Ok(2_097_152));
    }

    #[test]
    fn rejects_bad_sizes() {
        for s in ["", "5q", "m", "1..2m", ".5m", "1i", "-1m", "1 g b"] {
            let e = parse_bytes(s).unwrap_err();
            assert!(e.contains("expected a number"), "{s}: {e}");
        }
    }
}
