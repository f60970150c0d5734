//! The nesting depth limit for YAML and JSON read from the repository, and
//! the cheap non-recursive scans that enforce it before any recursive
//! parser (yaml-rust2's loader, yaml_serde's deserializer, serde_json, our
//! own tree walks and their drops) sees the text.
//!
//! Why: a 60 KB file of `- - - …` or `[[[…` nests 30,000 deep; recursive
//! code overflows the stack on it, an abort rather than an error, and the
//! agent's tokio workers only have 2 MiB. Checking the depth with a loop
//! first makes every later recursion bounded, whatever the thread's stack.
use yaml_rust2::parser::{Event, Parser};

/// The deepest nesting of mappings and sequences accepted in a stack file,
/// a SOPS document or SOPS metadata. A compose file is shallow: the deepest
/// standard field (`services.web.deploy.resources.limits.cpus`) is 6 deep,
/// and extension fields or SOPS documents rarely pass 20. 64 leaves room for
/// any honest file, stays under yaml_serde's own limit (128) so ours is the
/// error people see, and keeps every recursive walk a few hundred KB of
/// stack at most.
pub const MAX_DEPTH: usize = 64;

/// A document nests deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// The line is not in the message: callers put it after the file name.
#[error(
    "nesting is deeper than {limit} levels; shoal refuses deeper YAML/JSON so \
     that a crafted file cannot exhaust its stack"
)]
pub struct TooDeep {
    /// The limit that was passed ([`MAX_DEPTH`]).
    pub limit: usize,
    /// 1-based line where the limit was passed.
    pub line: usize,
}

/// Checks that no mapping or sequence in the YAML `text` (every document)
/// nests deeper than `limit`. Pulls yaml-rust2's events one by one (its
/// parser is a state machine; only its `load` recurses), so the check
/// itself uses constant stack. Text that does not parse is not this
/// check's business: `Ok`, and the real parser reports the syntax error.
pub fn check_yaml(text: &str, limit: usize) -> Result<(), TooDeep> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return Ok(()),
            Err(e) => return flow_limit(&e, limit),
            Ok((Event::MappingStart(..) | Event::SequenceStart(..), mark)) => {
                depth += 1;
                if depth > limit {
                    return Err(TooDeep {
                        limit,
                        line: mark.line(),
                    });
                }
            }
            Ok((Event::MappingEnd | Event::SequenceEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
        }
    }
}

/// yaml-rust2's scanner stops at 255 nested flow collections (`[[[…`)
/// with this error, often before it hands out their start events (it scans
/// ahead for simple keys): that is a depth over any limit of ours too.
/// Other scan errors are syntax errors, for the real parser to report.
pub(crate) fn flow_limit(e: &yaml_rust2::ScanError, limit: usize) -> Result<(), TooDeep> {
    if e.info() == "recursion limit exceeded" {
        return Err(TooDeep {
            limit,
            line: e.marker().line(),
        });
    }
    Ok(())
}

/// Checks that no array or object in the JSON `text` nests deeper than
/// `limit`: brackets counted outside strings, in one pass. Malformed JSON
/// is left to the JSON parser.
pub fn check_json(text: &str, limit: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if byte == b'\n' {
            line += 1;
        }
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(TooDeep { limit, line });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `f` on a thread with the stack of the agent's tokio workers
    /// (2 MiB), so a test proves the agent's case, not the 8 MiB main thread.
    pub(crate) fn on_agent_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .expect("spawn a 2 MiB thread")
            .join()
            .expect("the 2 MiB thread did not panic")
    }

    /// 30,000 nested block sequences (`- - - … a`), 60 KB.
    pub(crate) fn deep_block_yaml() -> String {
        format!("x:\n  {}a\n", "- ".repeat(30_000))
    }

    #[test]
    fn deep_yaml_is_refused_in_every_style() {
        let cases = [
            deep_block_yaml(),
            format!("x: {}{}\n", "[".repeat(30_000), "]".repeat(30_000)),
            format!("x: {}\n", "{a: ".repeat(30_000)),
            format!("x:\n{}", {
                let mut s = String::new();
                for i in 0..200 {
                    s.push_str(&" ".repeat(i + 1));
                    s.push_str("k:\n");
                }
                s
            }),
        ];
        for text in cases {
            let err = on_agent_stack(move || check_yaml(&text, MAX_DEPTH)).unwrap_err();
            assert_eq!(err.limit, MAX_DEPTH);
            assert!(err.line >= 1);
            assert!(err.to_string().contains("deeper than 64 levels"), "{err}");
        }
    }

    #[test]
    fn honest_depth_passes() {
        let text = format!(
            "x: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(check_yaml(&text, MAX_DEPTH), Ok(()));
        assert_eq!(
            check_yaml("services:\n  web:\n    image: a\n", MAX_DEPTH),
            Ok(())
        );
        // Not YAML at all: the real parser reports it.
        assert_eq!(check_yaml("a: [\n", MAX_DEPTH), Ok(()));
    }

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(30_000), "]".repeat(30_000));
        let err = on_agent_stack(move || check_json(&deep, MAX_DEPTH)).unwrap_err();
        assert_eq!(err.limit, MAX_DEPTH);
        let quoted = format!("{{\"a\": \"{}\\\"\"}}", "[".repeat(1000));
        assert_eq!(check_json(&quoted, MAX_DEPTH), Ok(()));
        assert_eq!(check_json("{\"a\": [[1], {\"b\": 2}]}", 3), Ok(()));
        assert!(check_json("{\"a\": [[1], {\"b\": 2}]}", 2).is_err());
    }

    #[test]
    fn yaml_serde_at_the_limit_fits_the_agent_stack() {
        // The pre-scan admits MAX_DEPTH; the recursive deserializer, the
        // value's drop and a clone must then fit in 2 MiB (debug build).
        let text = format!(
            "x: {}1{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        on_agent_stack(move || {
            assert_eq!(check_yaml(&text, MAX_DEPTH), Ok(()));
            let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            let copy = v.clone();
            assert_eq!(v, copy);
            // Should a text get past the pre-scan (a syntax yaml-rust2
            // rejects but libyaml accepts), yaml_serde's own limit (128)
            // must still end in an error, not an overflow.
            let deep = format!("x: {}{}\n", "[".repeat(1_000), "]".repeat(1_000));
            let err = serde_yaml::from_str::<serde_yaml::Value>(&deep).unwrap_err();
            assert!(err.to_string().contains("recursion limit"), "{err}");
        });
    }
}
