//! Push triggers: the Docker event stream (someone changed or removed a
//! stack object behind shoal's back) and file changes of a local source
//! directory. Both only kick the trigger; bursts coalesce there.
use super::status::AgentStatus;
use super::trigger::{Reason, Trigger};
use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Quiet time before a burst of file changes triggers a pass.
pub const FILE_DEBOUNCE: Duration = Duration::from_millis(300);
/// Wait before reconnecting a broken event stream.
const EVENTS_RECONNECT: Duration = Duration::from_secs(5);

/// The server-side filter: service updates/removals and removals of the
/// objects a stack owns. Swarm events carry only the object's name (no
/// labels), so a `label=com.docker.stack.namespace` filter would drop them
/// all; stack membership is checked here by name instead.
pub fn event_filters() -> HashMap<String, Vec<String>> {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    HashMap::from([
        (
            "type".to_string(),
            strings(&["service", "network", "config", "secret"]),
        ),
        ("event".to_string(), strings(&["update", "remove"])),
    ])
}

/// Whether an event is about an object of one of `stacks` and worth a
/// pass. Rolling-update progress (`updatestate.*` attributes) follows
/// every apply and says nothing new; network/config/secret updates are
/// not drift of interest (only their removal is).
pub fn is_relevant(ev: &EventMessage, stacks: &BTreeSet<String>) -> bool {
    let Some(attrs) = ev.actor.as_ref().and_then(|a| a.attributes.as_ref()) else {
        return false;
    };
    if attrs.keys().any(|k| k.starts_with("updatestate.")) {
        return false;
    }
    let typ = ev.typ.map(|t| t.to_string()).unwrap_or_default();
    let action = ev.action.as_deref().unwrap_or("");
    let wanted = match typ.as_str() {
        "service" => action == "update" || action == "remove",
        "network" | "config" | "secret" => action == "remove",
        _ => false,
    };
    let Some(name) = attrs.get("name") else {
        return false;
    };
    wanted && belongs_to_any(name, stacks)
}

/// `docker stack deploy` names objects `<stack>_<name>`.
fn belongs_to_any(name: &str, stacks: &BTreeSet<String>) -> bool {
    stacks.iter().any(|s| {
        name.strip_prefix(s.as_str())
            .is_some_and(|rest| rest.starts_with('_'))
    })
}

/// Follow the event stream until `shutdown`, kicking a pass for relevant
/// events. Reconnects (and kicks once, since events may have been missed)
/// when the stream breaks.
pub async fn docker_events(
    docker: Docker,
    status: Arc<Mutex<AgentStatus>>,
    trigger: Arc<Trigger>,
    shutdown: CancellationToken,
) {
    let mut first = true;
    while !shutdown.is_cancelled() {
        if !first {
            trigger.kick(Reason::DockerEvent);
        }
        first = false;
        let opts = EventsOptions {
            filters: Some(event_filters()),
            ..Default::default()
        };
        let mut stream = docker.events(Some(opts));
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = stream.next() => n,
            };
            match next {
                Some(Ok(ev)) => {
                    let stacks = known_stacks(&status);
                    if is_relevant(&ev, &stacks) {
                        tracing::info!(
                            kind = ev.typ.map(|t| t.to_string()).unwrap_or_default(),
                            action = ev.action.as_deref().unwrap_or(""),
                            name = ev
                                .actor
                                .as_ref()
                                .and_then(|a| a.attributes.as_ref())
                                .and_then(|a| a.get("name"))
                                .map(String::as_str)
                                .unwrap_or(""),
                            "stack object changed on the swarm; reconcile queued"
                        );
                        trigger.kick(Reason::DockerEvent);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "docker event stream broke; reconnecting");
                    break;
                }
                None => break,
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVENTS_RECONNECT) => {}
        }
    }
}

fn known_stacks(status: &Mutex<AgentStatus>) -> BTreeSet<String> {
    let s = status.lock().unwrap_or_else(|e| e.into_inner());
    s.stacks.keys().cloned().collect()
}

/// The folders of a source directory whose changes matter.
pub fn watched_dirs(root: &Path) -> Vec<PathBuf> {
    ["stacks", "policies"]
        .iter()
        .map(|d| root.join(d))
        .filter(|p| p.is_dir())
        .collect()
}

/// Watch `stacks/` and `policies/` under `root`; a burst of changes kicks
/// one pass after [`FILE_DEBOUNCE`] of quiet. Runs until `shutdown`.
pub async fn file_changes(
    root: PathBuf,
    trigger: Arc<Trigger>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let relevant = match res {
            Ok(ev) => !matches!(ev.kind, notify::EventKind::Access(_)),
            Err(_) => true,
        };
        if relevant {
            // The receiver is gone only after shutdown; nothing to do then.
            let _ = tx.send(());
        }
    })
    .map_err(|e| format!("file watcher: {e}"))?;
    let dirs = watched_dirs(&root);
    if dirs.is_empty() {
        return Err(format!(
            "{}: neither stacks/ nor policies/ exists; file changes are not watched",
            root.display()
        ));
    }
    for d in &dirs {
        watcher
            .watch(d, RecursiveMode::Recursive)
            .map_err(|e| format!("watching {}: {e}", d.display()))?;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            got = rx.recv() => if got.is_none() { return Ok(()) },
        }
        // Debounce: wait until the burst is over.
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                got = tokio::time::timeout(FILE_DEBOUNCE, rx.recv()) => match got {
                    Ok(Some(())) => continue,
                    Ok(None) => return Ok(()),
                    Err(_) => break,
                },
            }
        }
        tracing::info!(dir = %root.display(), "files changed; reconcile queued");
        trigger.kick(Reason::FileChange);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{EventActor, EventMessageTypeEnum};

    fn ev(typ: EventMessageTypeEnum, action: &str, attrs: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("x".into()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_stack_objects_and_real_changes_count() {
        use EventMessageTypeEnum as T;
        let stacks = BTreeSet::from(["web".to_string()]);
        assert!(is_relevant(
            &ev(T::SERVICE, "update", &[("name", "web_app")]),
            &stacks
        ));
        assert!(is_relevant(
            &ev(T::SERVICE, "remove", &[("name", "web_app")]),
            &stacks
        ));
        assert!(is_relevant(
            &ev(T::NETWORK, "remove", &[("name", "web_default")]),
            &stacks
        ));
        assert!(is_relevant(
            &ev(T::SECRET, "remove", &[("name", "web_key")]),
            &stacks
        ));
        // Rolling-update progress of our own apply.
        assert!(!is_relevant(
            &ev(
                T::SERVICE,
                "update",
                &[("name", "web_app"), ("updatestate.new", "updating")]
            ),
            &stacks
        ));
        // Not a stack we manage; a prefix that is not `<stack>_`.
        assert!(!is_relevant(
            &ev(T::SERVICE, "update", &[("name", "db_app")]),
            &stacks
        ));
        assert!(!is_relevant(
            &ev(T::SERVICE, "update", &[("name", "webby_app")]),
            &stacks
        ));
        // Our own state record and config label updates.
        assert!(!is_relevant(
            &ev(T::CONFIG, "update", &[("name", "shoal-state-web")]),
            &stacks
        ));
        assert!(!is_relevant(
            &ev(T::CONFIG, "update", &[("name", "web_conf")]),
            &stacks
        ));
    }

    #[tokio::test]
    async fn a_burst_of_file_changes_kicks_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("stacks/web")).unwrap();
        let trigger = Arc::new(Trigger::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(file_changes(
            dir.path().to_path_buf(),
            trigger.clone(),
            shutdown.clone(),
        ));
        // Give the watcher a moment to register before writing.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..5 {
            std::fs::write(dir.path().join("stacks/web/stack.yml"), format!("v{i}")).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), trigger.wait())
            .await
            .expect("file change kicks a pass");
        assert_eq!(trigger.take_reasons(), vec![Reason::FileChange]);
        // Files outside stacks/ and policies/ are not watched.
        std::fs::write(dir.path().join("README.md"), "x").unwrap();
        let again = tokio::time::timeout(Duration::from_millis(800), trigger.wait()).await;
        assert!(again.is_err(), "the burst kicked more than once");
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }
}
