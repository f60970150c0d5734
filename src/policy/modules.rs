//! Reading `policies/` from a tree and compiling it into a regorus engine,
//! with the rules each file declares (names and lines come from the parsed
//! AST, so a rule that evaluates to undefined is still known).
use super::error::{Diagnostic, EngineMessage, Location, PolicyError};
use crate::source::Tree;
use serde_json::Value;

/// The folder of the stacks repository holding policies.
pub const POLICY_DIR: &str = "policies";

/// One `.rego` file read from the tree.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RegoFile {
    pub path: String,
    pub text: String,
}

impl RegoFile {
    /// `*_test.rego` files hold unit tests, not policies.
    pub(crate) fn is_test(&self) -> bool {
        self.path.ends_with("_test.rego")
    }
}

/// A rule head declared in a module.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeclaredRule {
    /// Package path as regorus queries it, e.g. `data.shoal.shared_storage`.
    pub package: String,
    /// The rule's name, e.g. `deny` or `test_allow_nfs`.
    pub name: String,
    pub location: Location,
}

/// Every `.rego` file under `policies/` (recursively), sorted by path.
/// No folder means no files.
pub(crate) fn read_files(tree: &dyn Tree) -> Result<Vec<RegoFile>, PolicyError> {
    let mut files = Vec::new();
    collect(tree, POLICY_DIR, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn collect(tree: &dyn Tree, dir: &str, out: &mut Vec<RegoFile>) -> Result<(), PolicyError> {
    let names = tree.list(dir).map_err(|e| PolicyError::Read {
        path: dir.to_string(),
        message: e.to_string(),
    })?;
    for name in names {
        let path = format!("{dir}/{name}");
        if tree.is_file(&path) {
            if !name.ends_with(".rego") {
                continue; // README.md, data files...
            }
            let bytes = tree.read(&path).map_err(|e| PolicyError::Read {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let text = String::from_utf8(bytes).map_err(|_| PolicyError::Read {
                path: path.clone(),
                message: "not valid UTF-8".to_string(),
            })?;
            out.push(RegoFile { path, text });
        } else {
            collect(tree, &path, out)?;
        }
    }
    Ok(())
}

/// An engine holding `files`, prepared (analysed) so that compile errors
/// surface now, not at the first evaluation.
pub(crate) fn compile(files: &[RegoFile]) -> Result<regorus::Engine, PolicyError> {
    let mut engine = regorus::Engine::new();
    for file in files {
        engine
            .add_policy(file.path.clone(), file.text.clone())
            .map_err(|e| compile_error(&file.path, &e))?;
    }
    // Preparing the engine runs the analyser over all modules: conflicting
    // rules, unsafe variables and unknown functions are reported here.
    let first = files.first().map(|f| f.path.as_str()).unwrap_or(POLICY_DIR);
    engine
        .eval_query("true".to_string(), false)
        .map_err(|e| compile_error(first, &e))?;
    Ok(engine)
}

fn compile_error(file: &str, error: &anyhow::Error) -> PolicyError {
    PolicyError::Compile(EngineMessage::parse(error).into_diagnostic(file))
}

/// The rules (not functions) every module of `engine` declares, in file
/// order. A name declared by several bodies is listed once per body.
pub(crate) fn declared_rules(engine: &regorus::Engine) -> Result<Vec<DeclaredRule>, PolicyError> {
    let internal = |message: String| {
        PolicyError::Compile(Box::new(Diagnostic {
            file: POLICY_DIR.to_string(),
            location: None,
            message,
            snippet: String::new(),
        }))
    };
    let packages = engine
        .get_packages()
        .map_err(|e| internal(format!("cannot list policy packages: {e:#}")))?;
    let ast = engine
        .get_ast_as_json()
        .map_err(|e| internal(format!("cannot read policy syntax tree: {e:#}")))?;
    let ast: Value = serde_json::from_str(&ast)
        .map_err(|e| internal(format!("cannot read policy syntax tree: {e}")))?;
    let modules = ast.as_array().cloned().unwrap_or_default();
    let mut rules = Vec::new();
    for (module, package) in modules.iter().zip(packages) {
        let file = module["source"]["file"].as_str().unwrap_or_default();
        for rule in module["ast"]["rules"].as_array().into_iter().flatten() {
            if let Some((name, line, col)) = rule_head(rule) {
                rules.push(DeclaredRule {
                    package: package.clone(),
                    name,
                    location: Location {
                        file: file.to_string(),
                        line,
                        col,
                    },
                });
            }
        }
    }
    Ok(rules)
}

/// Name and position of a rule's head when it is a plain name (`deny`,
/// `deny contains x`, `x := 1`, `default x := false`); `None` for
/// functions and ref heads such as `a.b.c := 1`.
fn rule_head(rule: &Value) -> Option<(String, u32, u32)> {
    let refr = if let Some(spec) = rule.get("Spec") {
        let head = &spec["head"];
        let head = head.get("Compr").or_else(|| head.get("Set"))?;
        &head["refr"]
    } else {
        &rule.get("Default")?["refr"]
    };
    let var = refr.get("Var")?;
    let name = var["value"].as_str()?.to_string();
    let line = var["span"]["line"].as_u64().unwrap_or(0) as u32;
    let col = var["span"]["col"].as_u64().unwrap_or(0) as u32;
    Some((name, line, col))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> RegoFile {
        RegoFile {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn lists_rule_heads_but_not_functions() {
        let engine = compile(&[file(
            "policies/a.rego",
            "package a.b\n\ndeny contains msg if { msg := \"x\" }\n\nf(x) := x\n\ndefault ok := false\n\nwarn_latest contains {\"msg\": \"y\"} if true\n",
        )])
        .unwrap();
        let rules = declared_rules(&engine).unwrap();
        let names: Vec<_> = rules
            .iter()
            .map(|r| (r.package.as_str(), r.name.as_str(), r.location.line))
            .collect();
        assert_eq!(
            names,
            vec![
                ("data.a.b", "deny", 3),
                ("data.a.b", "ok", 7),
                ("data.a.b", "warn_latest", 9)
            ]
        );
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let err = compile(&[file(
            "policies/broken.rego",
            "package x\n\ndeny contains msg if {\n  msg := \n}\n",
        )])
        .unwrap_err();
        let location = err.location().unwrap();
        assert!(matches!(err, PolicyError::Compile(_)));
        assert_eq!(location.file, "policies/broken.rego");
        assert_eq!(location.line, 4);
        assert!(
            err.to_string().starts_with("policies/broken.rego:4:"),
            "{err}"
        );
    }
}
