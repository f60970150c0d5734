//! Errors of policy loading and evaluation. Every error names the policy
//! file and, when the Rego engine knows it, the line and column: a broken
//! guard rail must be found and fixed, never silently mean "no guard rails".
use std::fmt;

/// Where in a policy file something is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// Path in the repository, e.g. `policies/shared_storage.rego`.
    pub file: String,
    /// 1-based line; 0 when unknown.
    pub line: u32,
    /// 1-based column; 0 when unknown.
    pub col: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (0, _) => write!(f, "{}", self.file),
            (line, 0) => write!(f, "{}:{line}", self.file),
            (line, col) => write!(f, "{}:{line}:{col}", self.file),
        }
    }
}

/// What the Rego engine reported: where, what, and the source line.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// The file concerned (the fallback when no line is known).
    pub file: String,
    pub location: Option<Location>,
    pub message: String,
    /// The offending source line with a caret, as the engine printed it.
    pub snippet: String,
}

impl Diagnostic {
    /// `file:line:col: message<note>` and the snippet on the next lines.
    fn render(&self, f: &mut fmt::Formatter<'_>, note: &str) -> fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: {}{note}", self.message)?,
            None => write!(f, "{}: {}{note}", self.file, self.message)?,
        }
        if !self.snippet.is_empty() {
            write!(f, "\n{}", self.snippet)?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, "")
    }
}

/// A policy problem that must stop the caller (apply is blocked).
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum PolicyError {
    /// A policy file or folder could not be read from the tree.
    #[error("{path}: cannot read policy: {message}")]
    Read { path: String, message: String },
    /// Rego that does not parse or compile (syntax, unsafe variables...).
    #[error("{0}")]
    Compile(Box<Diagnostic>),
    /// A rule failed while being evaluated (a runtime error in Rego, such as
    /// a builtin called with a wrong type, an unknown function, or a rule
    /// with conflicting values).
    #[error("{}", EvalDisplay(.diagnostic, .rule, .stack))]
    Eval {
        /// The rule being evaluated, e.g. `data.main.deny`.
        rule: String,
        stack: String,
        diagnostic: Box<Diagnostic>,
    },
    /// The input document could not be handed to the engine.
    #[error("stack {stack}: cannot build the policy input: {message}")]
    Input { stack: String, message: String },
    /// Loading, evaluating or testing the policies ran out of its budget
    /// (time, memory, stack) and was stopped (see `policy::sandbox`).
    #[error("{}: {doing} stopped: {reason}", .files.join(", "))]
    Budget {
        /// The policy files loaded: the job's code, one of them the culprit.
        files: Vec<String>,
        /// `evaluating the policies for stack web`
        doing: String,
        /// Which budget, and how much it was.
        reason: String,
    },
    /// A rule produced a value shoal cannot read (e.g. `deny` is a number,
    /// or a result object has no string `msg`).
    #[error("{location}: {rule}: {message}")]
    BadResult {
        rule: String,
        location: Location,
        message: String,
    },
}

impl PolicyError {
    /// Where in a policy file the problem is, when known.
    pub fn location(&self) -> Option<&Location> {
        match self {
            PolicyError::Read { .. } | PolicyError::Input { .. } | PolicyError::Budget { .. } => {
                None
            }
            PolicyError::Compile(d) | PolicyError::Eval { diagnostic: d, .. } => {
                d.location.as_ref()
            }
            PolicyError::BadResult { location, .. } => Some(location),
        }
    }
}

struct EvalDisplay<'a>(&'a Diagnostic, &'a String, &'a String);

impl fmt::Display for EvalDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let note = format!(" (while evaluating {} for stack {})", self.1, self.2);
        self.0.render(f, &note)
    }
}

/// A regorus error split into location, message and source snippet.
///
/// regorus formats span errors as
/// `\n--> file:line:col\n  |\n4 | code\n  |   ^\nerror: message`.
/// Anything else is kept whole as the message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EngineMessage {
    pub location: Option<Location>,
    pub message: String,
    pub snippet: String,
}

impl EngineMessage {
    /// As a diagnostic about `file` (used when the engine names no file).
    pub(crate) fn into_diagnostic(self, file: &str) -> Box<Diagnostic> {
        Box::new(Diagnostic {
            file: self
                .location
                .as_ref()
                .map(|l| l.file.clone())
                .unwrap_or_else(|| file.to_string()),
            location: self.location,
            message: self.message,
            snippet: self.snippet,
        })
    }

    pub(crate) fn parse(error: &anyhow::Error) -> Self {
        let text = format!("{error:#}");
        let Some(arrow) = text.find("--> ") else {
            return EngineMessage {
                location: None,
                message: text.trim().to_string(),
                snippet: String::new(),
            };
        };
        let prefix = text[..arrow].trim().trim_end_matches(':').trim();
        let rest = &text[arrow + 4..];
        let (head, body) = rest.split_once('\n').unwrap_or((rest, ""));
        let location = parse_location(head.trim());
        let mut snippet = Vec::new();
        let mut message = Vec::new();
        for line in body.lines() {
            if let Some(m) = line.strip_prefix("error: ") {
                message.push(m.to_string());
            } else if !message.is_empty() {
                message.push(line.to_string());
            } else if line.contains('|') {
                snippet.push(line.to_string());
            }
        }
        let mut message = message.join("\n").trim().to_string();
        if !prefix.is_empty() {
            message = if message.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}: {message}")
            };
        }
        // Drop the empty gutter lines (`  |`), keep code and caret.
        let snippet = snippet
            .into_iter()
            .filter(|l| !l.trim().trim_start_matches('|').trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        EngineMessage {
            location,
            message,
            snippet,
        }
    }
}

/// `policies/x.rego:4:7` -> Location (the file name may itself hold `:`).
fn parse_location(s: &str) -> Option<Location> {
    let mut parts = s.rsplitn(3, ':');
    let col = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_string();
    Some(Location { file, line, col })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_regorus_span_errors() {
        let e = anyhow::anyhow!(
            "\n--> policies/b.rego:4:7\n  |\n4 |   msg := \n  |       ^\nerror: expecting `}}` while parsing set"
        );
        let m = EngineMessage::parse(&e);
        assert_eq!(
            m.location,
            Some(Location {
                file: "policies/b.rego".into(),
                line: 4,
                col: 7
            })
        );
        assert_eq!(m.message, "expecting `}` while parsing set");
        assert_eq!(m.snippet, "4 |   msg := \n  |       ^");
    }

    #[test]
    fn keeps_unlocated_errors_whole() {
        let m = EngineMessage::parse(&anyhow::anyhow!("not a valid rule path"));
        assert_eq!(m.location, None);
        assert_eq!(m.message, "not a valid rule path");
    }

    #[test]
    fn displays_file_line_col_first() {
        let e = PolicyError::Compile(Box::new(Diagnostic {
            file: "policies/b.rego".into(),
            location: Some(Location {
                file: "policies/b.rego".into(),
                line: 4,
                col: 7,
            }),
            message: "unexpected token".into(),
            snippet: String::new(),
        }));
        assert_eq!(e.to_string(), "policies/b.rego:4:7: unexpected token");
    }
}
