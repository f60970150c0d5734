//! Coalescing triggers: any number of kicks while a pass runs (or before
//! it starts) cause exactly one more pass, never a concurrent one.
use std::collections::BTreeSet;
use std::sync::Mutex;
use tokio::sync::Notify;

/// What asked for a pass (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Startup,
    Interval,
    Webhook,
    DockerEvent,
    FileChange,
    LeaseAcquired,
    Retry,
    /// "Sync now" on the dashboard.
    Dashboard,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::Interval => "interval",
            Reason::Webhook => "webhook",
            Reason::DockerEvent => "docker-event",
            Reason::FileChange => "file-change",
            Reason::LeaseAcquired => "lease-acquired",
            Reason::Retry => "retry",
            Reason::Dashboard => "dashboard",
        }
    }
}

/// A single pending-pass flag plus the reasons gathered since the last
/// pass started. `Notify` keeps at most one permit, which is exactly the
/// coalescing we want.
#[derive(Debug, Default)]
pub struct Trigger {
    notify: Notify,
    reasons: Mutex<BTreeSet<Reason>>,
    /// Stacks someone asked to sync now: their retry wait is skipped.
    stacks: Mutex<BTreeSet<String>>,
}

impl Trigger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask for a pass. Never blocks; repeated kicks merge.
    pub fn kick(&self, reason: Reason) {
        self.reasons_guard().insert(reason);
        self.notify.notify_one();
    }

    /// Wait until at least one kick is pending.
    pub async fn wait(&self) {
        self.notify.notified().await
    }

    /// Take the reasons gathered so far (called when a pass starts, so that
    /// kicks arriving during the pass are kept for the next one).
    pub fn take_reasons(&self) -> Vec<Reason> {
        std::mem::take(&mut *self.reasons_guard())
            .into_iter()
            .collect()
    }

    /// Ask for a pass in which `stack` is retried at once, even if a
    /// failed apply is waiting for its backoff.
    pub fn sync_stack(&self, stack: &str) {
        self.stacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stack.to_string());
        self.kick(Reason::Dashboard);
    }

    /// The stacks asked for by [`Trigger::sync_stack`] since the last call.
    pub fn take_stacks(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.stacks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn reasons_guard(&self) -> std::sync::MutexGuard<'_, BTreeSet<Reason>> {
        // A poisoned set of reasons is still a valid set: keep using it.
        self.reasons.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn kicks_before_waiting_coalesce_into_one() {
        let t = Trigger::new();
        t.kick(Reason::Webhook);
        t.kick(Reason::DockerEvent);
        t.kick(Reason::Webhook);
        t.wait().await;
        assert_eq!(t.take_reasons(), vec![Reason::Webhook, Reason::DockerEvent]);
        // No second permit: the three kicks were one.
        let second = tokio::time::timeout(Duration::from_millis(50), t.wait()).await;
        assert!(second.is_err());
    }
}
