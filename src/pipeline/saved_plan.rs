//! Saved plans (`shoal plan --out FILE`, then `shoal apply FILE`): a plan
//! file records what a reviewed plan was computed from, so apply can
//! refuse when anything moved since instead of applying something nobody
//! reviewed.
//!
//! What the file holds: the source (repository, ref, and the commit id or
//! the directory's content digest), the run's scope and image mode, the
//! plan as its JSON document (masked: for people reading the file), and a
//! fingerprint of every object in scope: its action, the live version index
//! it was planned against, and a SHA-256 of the spec apply would write.
//! No decrypted value is kept, not even inside a digest: spec digests are
//! taken after the redactor masked every decrypted value, and a secret's
//! data is left out (the pinned source revision binds it: apply re-reads
//! the same commit or the same directory content, and decrypts it again).
use crate::model::Kind;
use crate::model::{Action, Plan};
use crate::secrets::Redactor;
use crate::source::git::{mask_userinfo, RemoteUrl};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The format tag of plan files; another tag is refused.
pub const FORMAT: &str = "shoal-plan/1";

/// The largest plan file read back (a 200-service plan is ~1 MB).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    pub source: SavedSource,
    /// The `--stack` filter of the plan run (empty: every stack).
    pub stacks: Vec<String>,
    pub prune: bool,
    /// `always`, `changed` or `never`.
    pub resolve_image: String,
    pub keep_versions: usize,
    /// Every object in scope, in plan order.
    pub objects: Vec<ObjectPrint>,
    /// The plan as `shoal plan --format json` prints it, for reading.
    pub plan: serde_json::Value,
}

/// Where the plan's desired state came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSource {
    /// `--repo` as given, without any credentials a URL carried.
    pub repo: String,
    /// `--ref` as given (none: the remote's HEAD).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// The commit id for a git source, `dir:<digest>` for a directory.
    pub revision: String,
}

/// One object of the plan, as apply will check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPrint {
    pub kind: String,
    pub name: String,
    pub action: String,
    /// The live object's version index the plan was made against.
    pub live_version: Option<u64>,
    /// `sha256:<hex>` of the spec apply writes (creates and updates).
    pub spec: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl SavedPlan {
    pub fn write(&self, path: &Path) -> Result<(), SavedPlanError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| file_error(path, e))?;
        std::fs::write(path, text + "\n").map_err(|e| file_error(path, e))
    }

    pub fn read(path: &Path) -> Result<SavedPlan, SavedPlanError> {
        use std::io::Read as _;
        let file = std::fs::File::open(path).map_err(|e| file_error(path, e))?;
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| file_error(path, e))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(file_error(
                path,
                format!("larger than {MAX_FILE_BYTES} bytes, the limit for a plan file"),
            ));
        }
        let saved: SavedPlan = serde_json::from_str(&text).map_err(|e| {
            file_error(
                path,
                format!("not a shoal plan file ({e}); make one with `shoal plan --out FILE`"),
            )
        })?;
        if saved.format != FORMAT {
            return Err(file_error(
                path,
                format!(
                    "plan file format {:?}; this shoal reads {FORMAT:?}: plan again with this version",
                    saved.format
                ),
            ));
        }
        Ok(saved)
    }
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> SavedPlanError {
    SavedPlanError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The fingerprint of every object of `plan` (no-ops included: an object
/// changed by hand since the plan makes the plan stale too).
pub fn fingerprint(plan: &Plan, redactor: &Redactor) -> Vec<ObjectPrint> {
    plan.changes
        .iter()
        .map(|c| ObjectPrint {
            kind: c.kind.as_str().to_string(),
            name: c.name.clone(),
            action: action_name(c.action).to_string(),
            live_version: c.live_version,
            spec: match c.action {
                Action::Create | Action::Update => c
                    .desired
                    .as_ref()
                    .map(|spec| spec_digest(c.kind, spec, redactor)),
                Action::Delete | Action::Noop => None,
            },
        })
        .collect()
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
        Action::Noop => "none",
    }
}

/// SHA-256 of the spec as compact JSON, decrypted values masked and a
/// secret's data left out.
fn spec_digest(kind: Kind, spec: &serde_json::Value, redactor: &Redactor) -> String {
    let mut spec = spec.clone();
    if kind == Kind::Secret {
        if let Some(m) = spec.as_object_mut() {
            m.remove("Data");
        }
    }
    redactor.redact_json(&mut spec);
    let text = spec.to_string();
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// What differs between the objects a plan was saved with and the objects
/// of the same plan made now, one line per object, in plan order. Empty
/// when the plan still holds exactly.
pub fn staleness(saved: &[ObjectPrint], now: &[ObjectPrint]) -> Vec<String> {
    let key = |o: &ObjectPrint| (o.kind.clone(), o.name.clone());
    let now_by: std::collections::BTreeMap<_, _> = now.iter().map(|o| (key(o), o)).collect();
    let saved_keys: std::collections::BTreeSet<_> = saved.iter().map(key).collect();
    let mut out = Vec::new();
    for s in saved {
        let what = format!("{} {}", s.kind, s.name);
        match now_by.get(&key(s)) {
            None => out.push(format!(
                "{what}: was planned ({}), and is no longer in the plan",
                s.action
            )),
            Some(n) if n.action != s.action => {
                out.push(format!("{what}: planned as {}, now {}", s.action, n.action))
            }
            Some(n) if n.live_version != s.live_version => out.push(format!(
                "{what}: changed on the swarm since the plan (version {} -> {})",
                version(s.live_version),
                version(n.live_version)
            )),
            Some(n) if n.spec != s.spec => out.push(format!(
                "{what}: what apply would write is not what was planned"
            )),
            Some(_) => {}
        }
    }
    for n in now.iter().filter(|n| !saved_keys.contains(&key(n))) {
        out.push(format!(
            "{} {}: not in the saved plan, now {}",
            n.kind, n.name, n.action
        ));
    }
    out
}

fn version(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// A repository URL without credentials, for storing: a token in the
/// URL's user name or password must not end up in a plan file. The URL
/// libgit2 is given is already without them (see [`RemoteUrl`]); apply
/// takes the token from `SHOAL_GIT_TOKEN` or `--git-token-file` again.
pub fn repo_without_credentials(repo: &str) -> String {
    RemoteUrl::parse(repo).map_or_else(|_| mask_userinfo(repo), |u| u.connect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Change;
    use serde_json::json;

    fn change(
        action: Action,
        kind: Kind,
        name: &str,
        version: Option<u64>,
        spec: serde_json::Value,
    ) -> Change {
        Change {
            action,
            kind,
            name: name.into(),
            stack: "s".into(),
            diff: Vec::new(),
            desired: (!spec.is_null()).then_some(spec),
            live_id: version.map(|_| "id".into()),
            live_version: version,
        }
    }

    fn plan() -> Plan {
        Plan {
            changes: vec![
                change(
                    Action::Update,
                    Kind::Service,
                    "s_web",
                    Some(7),
                    json!({"Name": "s_web", "Mode": {"Replicated": {"Replicas": 2}}}),
                ),
                change(
                    Action::Noop,
                    Kind::Service,
                    "s_db",
                    Some(3),
                    json!({"Name": "s_db"}),
                ),
                change(
                    Action::Create,
                    Kind::Secret,
                    "s_pw",
                    None,
                    json!({"Name": "s_pw", "Data": "aHVudGVyMg=="}),
                ),
                change(
                    Action::Delete,
                    Kind::Config,
                    "s_old",
                    Some(1),
                    serde_json::Value::Null,
                ),
            ],
        }
    }

    #[test]
    fn the_same_plan_is_not_stale() {
        let r = Redactor::new();
        assert!(staleness(&fingerprint(&plan(), &r), &fingerprint(&plan(), &r)).is_empty());
    }

    #[test]
    fn every_kind_of_move_is_named() {
        let r = Redactor::new();
        let saved = fingerprint(&plan(), &r);
        let mut now = plan();
        // A hand scale of a service the plan left alone: a new version and a change.
        now.changes[1] = change(
            Action::Update,
            Kind::Service,
            "s_db",
            Some(4),
            json!({"Name": "s_db"}),
        );
        // The service planned for update moved on the swarm.
        now.changes[0].live_version = Some(8);
        // The config to delete is gone already; a new object appeared.
        now.changes.remove(3);
        now.changes.push(change(
            Action::Create,
            Kind::Network,
            "s_new",
            None,
            json!({"Name": "s_new"}),
        ));
        assert_eq!(
            staleness(&saved, &fingerprint(&now, &r)),
            vec![
                "service s_web: changed on the swarm since the plan (version 7 -> 8)",
                "service s_db: planned as none, now update",
                "config s_old: was planned (delete), and is no longer in the plan",
                "network s_new: not in the saved plan, now create",
            ]
        );
    }

    #[test]
    fn a_different_spec_is_stale() {
        let r = Redactor::new();
        let saved = fingerprint(&plan(), &r);
        let mut now = plan();
        now.changes[0].desired =
            Some(json!({"Name": "s_web", "Mode": {"Replicated": {"Replicas": 3}}}));
        assert_eq!(
            staleness(&saved, &fingerprint(&now, &r)),
            vec!["service s_web: what apply would write is not what was planned"]
        );
    }

    /// Neither a decrypted value nor a secret's data reaches the file,
    /// not even as the input of a digest.
    #[test]
    fn no_decrypted_value_is_digested() {
        let r = Redactor::new();
        r.register("hunter2-but-longer");
        let with = |v: &str| {
            let p = Plan {
                changes: vec![change(
                    Action::Create,
                    Kind::Service,
                    "s_web",
                    None,
                    json!({"Env": [format!("PW={v}")]}),
                )],
            };
            fingerprint(&p, &r)
        };
        assert_eq!(with("hunter2-but-longer"), with("(sensitive)"));
        let secret = |data: &str| {
            let p = Plan {
                changes: vec![change(
                    Action::Create,
                    Kind::Secret,
                    "s_pw",
                    None,
                    json!({"Name": "s_pw", "Data": data}),
                )],
            };
            fingerprint(&p, &r)
        };
        assert_eq!(secret("aHVudGVyMg=="), secret("b3RoZXI="));
    }

    #[test]
    fn credentials_are_not_stored() {
        assert_eq!(
            repo_without_credentials("https://ghp_abc@git.example.com/ops/stacks.git"),
            "https://git.example.com/ops/stacks.git"
        );
        assert_eq!(
            repo_without_credentials("https://user:tok@git.example.com/x.git"),
            "https://git.example.com/x.git"
        );
        assert_eq!(
            repo_without_credentials("ssh://git@git.example.com/x.git"),
            "ssh://git@git.example.com/x.git"
        );
        assert_eq!(repo_without_credentials("git@host:x.git"), "git@host:x.git");
        assert_eq!(repo_without_credentials("./stacks-repo"), "./stacks-repo");
    }

    #[test]
    fn a_file_round_trips_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let saved = SavedPlan {
            format: FORMAT.into(),
            source: SavedSource {
                repo: ".".into(),
                git_ref: None,
                revision: "dir:abc".into(),
            },
            stacks: vec!["web".into()],
            prune: false,
            resolve_image: "never".into(),
            keep_versions: 1,
            objects: fingerprint(&plan(), &Redactor::new()),
            plan: json!({"changes": []}),
        };
        saved.write(&path).unwrap();
        assert_eq!(SavedPlan::read(&path).unwrap(), saved);
        std::fs::write(&path, "{\"format\": \"shoal-plan/9\"}").unwrap();
        let e = SavedPlan::read(&path).unwrap_err().to_string();
        assert!(e.contains("not a shoal plan file"), "{e}");
        let mut other = serde_json::to_value(&saved).unwrap();
        other["format"] = json!("shoal-plan/9");
        std::fs::write(&path, other.to_string()).unwrap();
        let e = SavedPlan::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("plan file format \"shoal-plan/9\"; this shoal reads \"shoal-plan/1\""),
            "{e}"
        );
    }
}
