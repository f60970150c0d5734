//! The policy unit-test runner (`shoal policy test`), like `opa test` /
//! `conftest verify`: every rule named `test_*` is evaluated with all
//! policy and test files loaded; it passes when it is defined and not
//! `false`. Rules named `todo_*` are listed as not run.
use super::error::{EngineMessage, PolicyError};
use super::modules;
use crate::source::Tree;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The result of one test rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum TestOutcome {
    Pass,
    /// The rule was undefined or `false`; `details` says which and carries
    /// the test's `print()` output.
    Fail {
        details: String,
    },
    /// Evaluation failed (runtime error), with file and line.
    Error {
        error: String,
    },
    /// A `todo_*` rule: listed, not run.
    Todo,
}

/// One test rule and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    /// Rule name, e.g. `test_deny_bind_mount`.
    pub name: String,
    /// Package without `data.`, e.g. `shoal.shared_storage_test`.
    pub package: String,
    pub file: String,
    pub line: u32,
    pub outcome: TestOutcome,
    #[serde(with = "duration_ms")]
    pub duration: Duration,
}

impl TestCase {
    /// `shoal.shared_storage_test.test_deny_bind_mount`
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.package, self.name)
    }
}

/// Everything `run_tests` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TestReport {
    pub tests: Vec<TestCase>,
    /// Files that could not be read or compiled; no test runs then.
    #[serde(serialize_with = "errors_as_strings")]
    pub errors: Vec<PolicyError>,
}

impl TestReport {
    /// No load errors and no failing or erroring test.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
            && self
                .tests
                .iter()
                .all(|t| matches!(t.outcome, TestOutcome::Pass | TestOutcome::Todo))
    }

    /// (passed, failed, errors, todo) test counts.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let count =
            |f: fn(&TestOutcome) -> bool| self.tests.iter().filter(|t| f(&t.outcome)).count();
        (
            count(|o| matches!(o, TestOutcome::Pass)),
            count(|o| matches!(o, TestOutcome::Fail { .. })),
            count(|o| matches!(o, TestOutcome::Error { .. })),
            count(|o| matches!(o, TestOutcome::Todo)),
        )
    }

    /// Text for people: one line per test, details under failures, and a
    /// closing summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        for t in &self.tests {
            let (tag, detail) = match &t.outcome {
                TestOutcome::Pass => ("PASS", None),
                TestOutcome::Fail { details } => ("FAIL", Some(details.as_str())),
                TestOutcome::Error { error } => ("ERROR", Some(error.as_str())),
                TestOutcome::Todo => ("TODO", None),
            };
            out.push_str(&format!(
                "{tag:<5} {}:{} {} ({:.1}ms)\n",
                t.file,
                t.line,
                t.full_name(),
                t.duration.as_secs_f64() * 1000.0
            ));
            for line in detail.into_iter().flat_map(str::lines) {
                out.push_str(&format!("      {line}\n"));
            }
        }
        let (pass, fail, error, todo) = self.counts();
        out.push_str(&format!(
            "policy tests: {pass} passed, {fail} failed, {error} errors, {todo} todo{}\n",
            if self.errors.is_empty() {
                ""
            } else {
                " (policies did not load)"
            }
        ));
        out
    }
}

/// Run the unit tests of `policies/` in `tree`: all `.rego` files (policies
/// and `*_test.rego`) are loaded together, then every `test_*` rule is
/// evaluated on its own, without input (tests supply it with `with input as`).
/// With a worker (see [`sandbox`](super::sandbox)), the tests run there,
/// within [`TESTS`](super::sandbox::TESTS).
pub fn run_tests(tree: &dyn Tree) -> TestReport {
    let files = match modules::read_files(tree) {
        Ok(f) => f,
        Err(e) => {
            return TestReport {
                tests: Vec::new(),
                errors: vec![e],
            }
        }
    };
    if files.is_empty() || super::sandbox::worker().is_none() {
        return tests_of(files);
    }
    match super::sandbox::run(super::sandbox::Job::Test { files }, super::sandbox::TESTS) {
        Ok(tests) => TestReport {
            tests,
            errors: Vec::new(),
        },
        Err(e) => TestReport {
            tests: Vec::new(),
            errors: vec![e],
        },
    }
}

/// The tests of `files`, run in this process.
pub(crate) fn tests_of(files: Vec<modules::RegoFile>) -> TestReport {
    let mut report = TestReport::default();
    let engine = modules::compile(&files).and_then(|engine| {
        let declared = modules::declared_rules(&engine)?;
        Ok((engine, declared))
    });
    let (mut engine, declared) = match engine {
        Ok(x) => x,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    engine.set_gather_prints(true);
    let mut seen = BTreeSet::new();
    for rule in declared {
        let todo = rule.name.starts_with("todo_");
        if !(rule.name.starts_with("test_") || todo) {
            continue;
        }
        let path = format!("{}.{}", rule.package, rule.name);
        if !seen.insert(path.clone()) {
            continue; // several bodies of one test rule: one test
        }
        let started = Instant::now();
        let outcome = if todo {
            TestOutcome::Todo
        } else {
            run_one(&mut engine, &path)
        };
        report.tests.push(TestCase {
            name: rule.name,
            package: rule.package.trim_start_matches("data.").to_string(),
            file: rule.location.file,
            line: rule.location.line,
            outcome,
            duration: started.elapsed(),
        });
    }
    report
}

fn run_one(engine: &mut regorus::Engine, path: &str) -> TestOutcome {
    engine.set_input(regorus::Value::Undefined);
    let result = engine.eval_rule(path.to_string());
    let prints = engine.take_prints().unwrap_or_default();
    let with_prints = |what: String| {
        let mut details = what;
        for p in &prints {
            details.push_str(&format!("\nprint: {p}"));
        }
        details
    };
    match result {
        Ok(regorus::Value::Undefined) => TestOutcome::Fail {
            details: with_prints(format!(
                "{path} is undefined: an expression in its body did not hold"
            )),
        },
        Ok(regorus::Value::Bool(false)) => TestOutcome::Fail {
            details: with_prints(format!("{path} is false")),
        },
        Ok(_) => TestOutcome::Pass,
        Err(e) => {
            let m = EngineMessage::parse(&e);
            let at = m.location.map(|l| format!("{l}: ")).unwrap_or_default();
            let snippet = if m.snippet.is_empty() {
                String::new()
            } else {
                format!("\n{}", m.snippet)
            };
            TestOutcome::Error {
                error: with_prints(format!("{at}{}{snippet}", m.message)),
            }
        }
    }
}

mod duration_ms {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        let ms = <f64 as serde::Deserialize>::deserialize(d)?;
        Ok(std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }
}

fn errors_as_strings<S: serde::Serializer>(
    errors: &[PolicyError],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(errors.iter().map(|e| e.to_string()))
}
