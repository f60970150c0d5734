//! Policies: Rego rules (conftest conventions) evaluated in-process with regorus.
//!
//! Owns the guard rails checked before apply: `policies/*.rego` of the
//! stacks repository are compiled once ([`PolicySet::load`]) and evaluated
//! per stack ([`PolicySet::evaluate`]) over the desired state and the
//! cluster facts; `*_test.rego` files are unit tests ([`run_tests`]).
//!
//! Conventions (conftest's, see `policies/README.md`):
//! - every package found is evaluated; rules named `deny`, `violation`,
//!   `warn`, or with a suffix (`deny_<id>`), are sets of results;
//! - a result is a string or an object `{"msg", "rule"?, "service"?, "object"?}`;
//! - `deny`/`violation` results block apply, `warn` results are reported;
//! - a service label `shoal.policy.skip=<id>[,<id>]` marks that rule's
//!   results for the service as skipped (kept, with `skipped: true`).
//!
//! Errors in policies (syntax, compile, runtime, unreadable results) are
//! errors, never "no violations": the caller must not apply.
mod error;
mod input;
mod modules;
mod results;
pub mod sandbox;
mod testing;

pub use error::{Diagnostic, Location, PolicyError};
pub use input::input_document;
pub use modules::POLICY_DIR;
pub use results::SKIP_LABEL;
pub use testing::{run_tests, TestCase, TestOutcome, TestReport};

use crate::model::{ClusterFacts, DesiredStack};
use crate::source::Tree;
use error::EngineMessage;
use results::ResultRule;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// How serious a violation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Blocks apply (from `deny*` and `violation*` rules).
    Deny,
    /// Reported, does not block (from `warn*` rules).
    Warn,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Deny => "deny",
            Level::Warn => "warn",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding of one rule about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule id: a result's `rule` field, else the `<id>` of a
    /// `deny_<id>` rule, else the policy file's stem (`pinned_images`).
    /// This is what `shoal.policy.skip` names.
    pub policy: String,
    pub level: Level,
    /// What it is about: `service steedos_web` (from a result's `service`),
    /// a result's `object` verbatim, or `stack <name>`.
    pub object: String,
    pub message: String,
    /// The service silenced this rule with `shoal.policy.skip`; reported,
    /// never blocking.
    pub skipped: bool,
}

impl Violation {
    /// Whether this violation must stop apply.
    pub fn blocks(&self) -> bool {
        self.level == Level::Deny && !self.skipped
    }
}

/// The compiled policies of a repository.
///
/// Compiled once; [`PolicySet::evaluate`] only sets the input and evaluates
/// the result rules, so it is cheap enough for every reconcile.
pub struct PolicySet {
    /// Prepared engine when policies run in-process (no worker, see
    /// [`sandbox`]); cloned per evaluation (modules and analysis are
    /// shared, so the clone is cheap) to keep `evaluate(&self)` usable from
    /// several threads.
    engine: Option<Mutex<regorus::Engine>>,
    /// The policy sources, which a worker compiles for each evaluation.
    sources: Vec<modules::RegoFile>,
    rules: Vec<ResultRule>,
    /// `[<rule path>, ...]`: every result rule in one query.
    query: String,
    files: Vec<String>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("files", &self.files)
            .field("rules", &self.rule_paths())
            .finish()
    }
}

impl PolicySet {
    /// Load and compile every `.rego` file under `policies/` of `tree`
    /// (recursively), except `*_test.rego`. No `policies/` folder gives an
    /// empty set. Syntax and compile errors name file and line. With a
    /// worker (see [`sandbox`]), compiling runs there, within
    /// [`sandbox::EVALUATION`].
    pub fn load(tree: &dyn Tree) -> Result<PolicySet, PolicyError> {
        let files: Vec<_> = modules::read_files(tree)?
            .into_iter()
            .filter(|f| !f.is_test())
            .collect();
        if files.is_empty() || sandbox::worker().is_none() {
            return Self::from_files(files);
        }
        let rules: Vec<ResultRule> = sandbox::run(
            sandbox::Job::Load {
                files: files.clone(),
            },
            sandbox::EVALUATION,
        )?;
        Ok(PolicySet {
            engine: None,
            query: query_of(&rules),
            files: files.iter().map(|f| f.path.clone()).collect(),
            sources: files,
            rules,
        })
    }

    /// A set with no policies: evaluates to no violations.
    pub fn empty() -> PolicySet {
        PolicySet {
            engine: None,
            sources: Vec::new(),
            rules: Vec::new(),
            query: String::new(),
            files: Vec::new(),
        }
    }

    fn from_files(files: Vec<modules::RegoFile>) -> Result<PolicySet, PolicyError> {
        if files.is_empty() {
            return Ok(Self::empty());
        }
        let engine = modules::compile(&files)?;
        let rules = result_rules(&modules::declared_rules(&engine)?);
        Ok(PolicySet {
            engine: Some(Mutex::new(engine)),
            query: query_of(&rules),
            files: files.iter().map(|f| f.path.clone()).collect(),
            sources: files,
            rules,
        })
    }

    /// The policy files loaded, e.g. `policies/shared_storage.rego`.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Whether there is nothing to evaluate.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The result rules evaluated, as query paths (`data.main.deny`).
    pub fn rule_paths(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.path.as_str()).collect()
    }

    /// Evaluate every result rule over `stack` and `facts` (the input
    /// document is [`input_document`]). Violations come sorted: denies
    /// first, then by policy, object and message. Skipped ones are kept
    /// with `skipped: true`. A runtime error in a rule is an error.
    pub fn evaluate(
        &self,
        stack: &DesiredStack,
        facts: &ClusterFacts,
    ) -> Result<Vec<Violation>, PolicyError> {
        if self.rules.is_empty() {
            return Ok(Vec::new());
        }
        // Converted here, before any engine; a failure must not read as
        // "no input, no violations".
        let json = input::input_json(stack, facts).map_err(|e| PolicyError::Input {
            stack: stack.name.clone(),
            message: e.to_string(),
        })?;
        let values: Vec<serde_json::Value> = match &self.engine {
            Some(engine) => {
                let mut engine = match engine.lock() {
                    Ok(e) => e.clone(),
                    // A panic elsewhere cannot corrupt the prepared engine: it is
                    // only ever cloned under this lock, never mutated.
                    Err(poisoned) => poisoned.into_inner().clone(),
                };
                rule_values(&mut engine, &self.rules, &self.query, &stack.name, &json)?
            }
            None => sandbox::run(
                sandbox::Job::Evaluate {
                    files: self.sources.clone(),
                    rules: self.rules.clone(),
                    query: self.query.clone(),
                    stack: stack.name.clone(),
                    input: json,
                },
                sandbox::EVALUATION,
            )?,
        };
        let mut violations = Vec::new();
        for (rule, json) in self.rules.iter().zip(values) {
            violations.extend(results::read_results(rule, json, stack)?);
        }
        results::apply_skips(&mut violations, stack);
        violations.sort_by(|a, b| {
            (a.level, &a.policy, &a.object, &a.message)
                .cmp(&(b.level, &b.policy, &b.object, &b.message))
        });
        violations.dedup();
        Ok(violations)
    }
}

/// `[<rule path>, ...]`: every result rule in one query.
fn query_of(rules: &[ResultRule]) -> String {
    let paths: Vec<&str> = rules.iter().map(|r| r.path.as_str()).collect();
    format!("[{}]", paths.join(", "))
}

/// Each result rule's value over `input` (JSON), as JSON; what a worker
/// answers for [`sandbox::Job::Evaluate`].
pub(crate) fn rule_values(
    engine: &mut regorus::Engine,
    rules: &[ResultRule],
    query: &str,
    stack: &str,
    input: &str,
) -> Result<Vec<serde_json::Value>, PolicyError> {
    let input = regorus::Value::from_json_str(input).map_err(|e| PolicyError::Input {
        stack: stack.to_string(),
        message: format!("{e:#}"),
    })?;
    engine.set_input(input);
    let values = match all_at_once(engine, query, rules.len()) {
        Some(values) => values,
        None => one_by_one(engine, rules, stack)?,
    };
    rules
        .iter()
        .zip(values)
        .map(|(rule, value)| {
            to_json(&value).map_err(|message| PolicyError::BadResult {
                rule: rule.path.clone(),
                location: rule.location.clone(),
                message,
            })
        })
        .collect()
}

/// All result rules in one query (`[data.a.deny, data.b.warn, ...]`), so
/// helper rules shared between packages are computed once. `None` when the
/// query does not give one value per rule (a complete rule is undefined, or
/// an error): the caller then evaluates rule by rule, which also names the
/// rule that failed.
fn all_at_once(
    engine: &mut regorus::Engine,
    query: &str,
    rules: usize,
) -> Option<Vec<regorus::Value>> {
    let results = engine.eval_query(query.to_string(), false).ok()?;
    let [only] = results.result.as_slice() else {
        return None;
    };
    let values = only.expressions.first()?.value.as_array().ok()?;
    (values.len() == rules).then(|| values.to_vec())
}

fn one_by_one(
    engine: &mut regorus::Engine,
    rules: &[ResultRule],
    stack: &str,
) -> Result<Vec<regorus::Value>, PolicyError> {
    rules
        .iter()
        .map(|rule| {
            engine
                .eval_rule(rule.path.clone())
                .map_err(|e| eval_error(rule, stack, &e))
        })
        .collect()
}

/// The conftest result rules among `declared`, one per package and name,
/// with their default id and first declaration.
fn result_rules(declared: &[modules::DeclaredRule]) -> Vec<ResultRule> {
    let mut by_path: BTreeMap<String, (ResultRule, BTreeSet<&str>)> = BTreeMap::new();
    for d in declared {
        let Some(level) = results::result_level(&d.name) else {
            continue;
        };
        let path = format!("{}.{}", d.package, d.name);
        let entry = by_path.entry(path.clone()).or_insert_with(|| {
            let rule = ResultRule {
                path,
                name: d.name.clone(),
                level,
                default_id: String::new(),
                location: d.location.clone(),
            };
            (rule, BTreeSet::new())
        });
        entry.1.insert(d.location.file.as_str());
    }
    by_path
        .into_values()
        .map(|(mut rule, files)| {
            let package = rule.path.trim_end_matches(&rule.name).trim_end_matches('.');
            rule.default_id = results::default_id(&rule.name, package, &files);
            rule
        })
        .collect()
}

fn eval_error(rule: &ResultRule, stack: &str, error: &anyhow::Error) -> PolicyError {
    PolicyError::Eval {
        rule: rule.path.clone(),
        stack: stack.to_string(),
        diagnostic: EngineMessage::parse(error).into_diagnostic(&rule.location.file),
    }
}

/// A regorus value as JSON; undefined becomes `null` (no results).
pub(crate) fn to_json(value: &regorus::Value) -> Result<serde_json::Value, String> {
    if matches!(value, regorus::Value::Undefined) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::to_value(value).map_err(|e| format!("cannot read the rule's value: {e}"))
}

#[cfg(test)]
mod tests;
