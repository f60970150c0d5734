//! Rolling a failed rollout back (`--rollback-on-failure`, the agent's
//! default): the services this run updated get back the exact specs they
//! had before it (read just before each write), services it created are
//! removed unless a service it did not touch depends on them, and the
//! configs, secrets and networks it created are removed once the restored
//! services converged and nothing uses them. Nothing this run found on the
//! swarm is deleted: deletes only ever run after a rollout converged, so
//! the previous version's configs and secrets are still there.
use super::{converge, waves::Order, ApplyOptions, ApplyReport, Written};
use crate::engine::{Engine, EngineError};
use crate::model::Kind;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What a run must remember to undo itself: the spec of each service just
/// before this run wrote it, and the ids of the services it created.
#[derive(Debug, Default)]
pub struct Undo {
    enabled: bool,
    inner: Mutex<UndoInner>,
}

#[derive(Debug, Default)]
struct UndoInner {
    /// Service name -> (id, spec before this run).
    befores: BTreeMap<String, (String, Value)>,
    /// Service name -> id, for services this run created.
    created: BTreeMap<String, String>,
}

impl Undo {
    pub fn new(enabled: bool) -> Undo {
        Undo {
            enabled,
            inner: Mutex::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UndoInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn before(&self, name: &str, id: &str, spec: &Value) {
        if self.enabled {
            self.lock()
                .befores
                .insert(name.to_string(), (id.to_string(), spec.clone()));
        }
    }

    pub(crate) fn created(&self, name: &str, id: &str) {
        if self.enabled {
            self.lock().created.insert(name.to_string(), id.to_string());
        }
    }
}

/// What the rollback did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RollbackReport {
    /// Services written back to their specs before the run.
    pub restored: Vec<String>,
    /// Services already back at their previous spec (Swarm rolled them
    /// back itself).
    pub already_back: Vec<String>,
    /// Objects the failed run created and the rollback removed
    /// (`service x`, `config y`).
    pub removed: Vec<String>,
    /// Objects the failed run created that stay, and why.
    pub kept: Vec<String>,
    /// The restored services converged.
    pub converged: bool,
    /// What went wrong during the rollback itself.
    pub problems: Vec<String>,
}

impl std::fmt::Display for RollbackReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.restored.is_empty() {
            parts.push(format!(
                "restored {} to the spec before this run",
                self.restored.join(", ")
            ));
        }
        if !self.already_back.is_empty() {
            parts.push(format!(
                "{} already back at the previous spec",
                self.already_back.join(", ")
            ));
        }
        if !self.removed.is_empty() {
            parts.push(format!(
                "removed what this run created: {}",
                self.removed.join(", ")
            ));
        }
        if !self.kept.is_empty() {
            parts.push(format!("kept {}", self.kept.join(", ")));
        }
        if parts.is_empty() {
            parts.push("nothing was written, nothing to restore".into());
        }
        let verdict = if !self.problems.is_empty() {
            format!("rollback incomplete: {}", self.problems.join("; "))
        } else if self.converged {
            "the rollback converged".to_string()
        } else {
            "the rollback did not converge".to_string()
        };
        write!(f, "rolled back: {}; {verdict}", parts.join("; "))
    }
}

/// Undo what `written` (the failed run's report) wrote.
pub async fn roll_back(
    engine: &Engine,
    undo: &Undo,
    written: &ApplyReport,
    order: &Order,
    opts: &ApplyOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> RollbackReport {
    let (befores, created_ids) = {
        let inner = undo.lock();
        (inner.befores.clone(), inner.created.clone())
    };
    let mut report = RollbackReport::default();
    let updated = services(&written.updated);
    let created_services = services(&written.created);
    progress(&format!(
        "rolling back: {} service(s) to restore, {} created by this run",
        updated.len(),
        created_services.len()
    ));
    // 1. Updated services get their exact previous spec back.
    let waits = restore_updated(engine, &updated, &befores, &mut report, progress).await;
    // 2. Created services go, unless a service this run did not create
    // depends on one.
    for name in created_services {
        if let Some(why) = keep_created_service(name, order, &created_ids) {
            report.kept.push(why);
            continue;
        }
        let id = created_ids.get(name).map_or(name.as_str(), String::as_str);
        match engine.remove(Kind::Service, id, name).await {
            Ok(()) | Err(EngineError::NotFound { .. }) => {
                progress(&format!("service {name}: removed"));
                report.removed.push(format!("service {name}"));
            }
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    // 3. The restored services converge.
    wait_restored(engine, &waits, opts.timeout, &mut report, progress).await;
    // 4. Then the configs, secrets and networks this run created, when
    // nothing uses them (the daemon refuses what is in use).
    let support: Vec<_> = written
        .created
        .iter()
        .filter(|w| w.kind != Kind::Service)
        .collect();
    if !report.converged {
        for w in support {
            report
                .kept
                .push(format!("{w} (until the rollback converges)"));
        }
        return report;
    }
    remove_support(engine, &support, opts.timeout, &mut report, progress).await;
    report
}

/// The names of the services among `written`.
fn services(written: &[Written]) -> Vec<&String> {
    written
        .iter()
        .filter(|w| w.kind == Kind::Service)
        .map(|w| &w.name)
        .collect()
}

/// Why a service this run created stays: services this run did not create
/// depend on it (`service s_db (s_web depend on it)`). Pure.
fn keep_created_service(
    name: &str,
    order: &Order,
    created_ids: &BTreeMap<String, String>,
) -> Option<String> {
    let users: Vec<&str> = order
        .gates
        .iter()
        .filter(|(user, gates)| {
            !created_ids.contains_key(*user) && gates.iter().any(|g| g.service == name)
        })
        .map(|(user, _)| user.as_str())
        .collect();
    (!users.is_empty()).then(|| format!("service {name} ({} depend on it)", users.join(", ")))
}

/// Write back the spec each of the `updated` services had before this run;
/// the (name, id) of those written, to wait for.
async fn restore_updated(
    engine: &Engine,
    updated: &[&String],
    befores: &BTreeMap<String, (String, Value)>,
    report: &mut RollbackReport,
    progress: &(dyn Fn(&str) + Sync),
) -> Vec<(String, String)> {
    let mut waits = Vec::new();
    for &name in updated {
        let Some((id, before)) = befores.get(name) else {
            report
                .problems
                .push(format!("{name}: its spec before this run is unknown"));
            continue;
        };
        match restore(engine, id, before).await {
            Ok(true) => {
                progress(&format!("service {name}: restored"));
                report.restored.push(name.clone());
                waits.push((name.clone(), id.clone()));
            }
            Ok(false) => report.already_back.push(name.clone()),
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    waits
}

/// Wait (together, within `timeout`) for the restored services to converge;
/// sets `report.converged`.
async fn wait_restored(
    engine: &Engine,
    waits: &[(String, String)],
    timeout: Duration,
    report: &mut RollbackReport,
    progress: &(dyn Fn(&str) + Sync),
) {
    let deadline = Instant::now() + timeout;
    let results = futures_util::future::join_all(
        waits
            .iter()
            .map(|(name, id)| converge::wait_service(engine, name, id, deadline, progress)),
    )
    .await;
    let failed: Vec<String> = waits
        .iter()
        .zip(results)
        .filter_map(|((name, _), r)| r.err().map(|why| format!("{name} ({why})")))
        .collect();
    report.converged = failed.is_empty();
    if !failed.is_empty() {
        report
            .problems
            .push(format!("did not converge: {}", failed.join(", ")));
    }
}

/// Remove the configs, secrets and networks this run created, in that
/// order; what is still in use stays (a network is retried for up to a
/// minute while the removed tasks shut down).
async fn remove_support(
    engine: &Engine,
    support: &[&Written],
    timeout: Duration,
    report: &mut RollbackReport,
    progress: &(dyn Fn(&str) + Sync),
) {
    let release = Instant::now() + timeout.min(Duration::from_secs(60));
    for kind in [Kind::Config, Kind::Secret, Kind::Network] {
        for w in support.iter().filter(|w| w.kind == kind) {
            loop {
                match engine.remove(kind, &w.name, &w.name).await {
                    Ok(()) | Err(EngineError::NotFound { .. }) => {
                        progress(&format!("{w}: removed"));
                        report.removed.push(w.to_string());
                    }
                    // A network's removed tasks are still shutting down.
                    Err(EngineError::InUse { .. })
                        if kind == Kind::Network && Instant::now() < release =>
                    {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    Err(EngineError::InUse { .. }) => {
                        report.kept.push(format!("{w} (in use)"));
                    }
                    Err(e) => report.problems.push(e.to_string()),
                }
                break;
            }
        }
    }
}

/// Write `before` back to service `id`; `Ok(false)` when it already has
/// that spec (Swarm rolled it back itself).
async fn restore(engine: &Engine, id: &str, before: &Value) -> Result<bool, EngineError> {
    for _ in 0..3 {
        let live = engine.inspect_service(id).await?;
        if &live["Spec"] == before {
            return Ok(false);
        }
        let version = live["Version"]["Index"].as_u64().unwrap_or_default();
        match engine.update(Kind::Service, id, version, before).await {
            Ok(_) => return Ok(true),
            Err(EngineError::OutOfSequence { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(EngineError::OutOfSequence {
        what: format!("restore service {id} (changed concurrently 3 times)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_what_was_restored_removed_and_kept() {
        let r = RollbackReport {
            restored: vec!["s_web".into()],
            removed: vec!["service s_new".into(), "config s_app-1a2b3c4d".into()],
            converged: true,
            ..Default::default()
        };
        assert_eq!(
            r.to_string(),
            "rolled back: restored s_web to the spec before this run; removed what this run created: service s_new, config s_app-1a2b3c4d; the rollback converged"
        );
        let r = RollbackReport {
            already_back: vec!["s_web".into()],
            problems: vec!["did not converge: s_web (timed out)".into()],
            ..Default::default()
        };
        assert!(r.to_string().contains("rollback incomplete"), "{r}");
    }

    #[test]
    fn a_disabled_undo_remembers_nothing() {
        let u = Undo::new(false);
        u.before("s_web", "id", &serde_json::json!({}));
        u.created("s_new", "id2");
        assert!(u.lock().befores.is_empty() && u.lock().created.is_empty());
    }

    #[test]
    fn a_created_service_stays_while_a_service_not_created_depends_on_it() {
        use crate::apply::waves::Gate;
        use crate::compose::depends::Condition;
        let on = |service: &str| {
            vec![Gate {
                service: service.into(),
                condition: Condition::Started,
                stack: None,
            }]
        };
        let order = Order {
            gates: BTreeMap::from([
                ("s_web".to_string(), on("s_db")),
                ("s_api".to_string(), on("s_db")),
                ("s_new".to_string(), on("s_cache")),
            ]),
        };
        let created = BTreeMap::from([
            ("s_db".to_string(), "id1".to_string()),
            ("s_cache".to_string(), "id2".to_string()),
            ("s_new".to_string(), "id3".to_string()),
        ]);
        assert_eq!(
            keep_created_service("s_db", &order, &created).as_deref(),
            Some("service s_db (s_api, s_web depend on it)")
        );
        // Its only user goes too.
        assert_eq!(keep_created_service("s_cache", &order, &created), None);
        assert_eq!(keep_created_service("s_new", &order, &created), None);
    }
}
