//! docker's env-file syntax (`docker run --env-file`, compose `env_file`):
//! `KEY=VALUE` lines taken literally (no quote handling), `#` comments and
//! blank lines skipped, a bare `KEY` takes its value from the variables and
//! is dropped when unset.

/// Parse the text of an env file. `lookup` resolves bare `KEY` lines.
/// Errors name the 1-based line.
pub fn parse_env_file(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        let key = key.trim_start();
        if key.is_empty() {
            return Err((line_no, format!("no variable name on line {line:?}")));
        }
        if key.contains(char::is_whitespace) {
            return Err((
                line_no,
                format!("variable {key:?} contains whitespace; expected KEY=VALUE"),
            ));
        }
        match value {
            Some(v) => out.push((key.to_string(), v.to_string())),
            None => {
                if let Some(v) = lookup(key) {
                    out.push((key.to_string(), v));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(n: &str) -> Option<String> {
        (n == "SET").then(|| "from-vars".to_string())
    }

    #[test]
    fn parses_lines() {
        let got = parse_env_file(
            "# comment\n\nA=1\n  B=two words\nC=\"quoted\"\nD=\nSET\nUNSET\nE=a=b\n",
            &lookup,
        )
        .unwrap();
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "\"quoted\""),
            ("D", ""),
            ("SET", "from-vars"),
            ("E", "a=b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rejects_bad_keys() {
        let (line, msg) = parse_env_file("A=1\nBAD KEY=1\n", &lookup).unwrap_err();
        assert_eq!(line, 2);
        assert!(msg.contains("BAD KEY"), "{msg}");
        let (line, _) = parse_env_file("=1\n", &lookup).unwrap_err();
        assert_eq!(line, 1);
    }
}
