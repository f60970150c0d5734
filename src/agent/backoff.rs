//! Per-stack retry backoff after a failed apply: 5 s doubling to a 5 min
//! cap, reset by a success or by a new revision of the source.
use std::time::{Duration, Instant};

pub const INITIAL: Duration = Duration::from_secs(5);
pub const CAP: Duration = Duration::from_secs(300);

/// The retry state of one stack. Pure: the caller passes the clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    /// The snapshot whose apply failed; a different one may be tried at once.
    failed_snapshot: Option<String>,
    not_before: Option<Instant>,
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1-based).
    pub fn delay(failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        INITIAL.saturating_mul(factor).min(CAP)
    }

    /// Record a failed apply of `snapshot` at `now`; returns the delay.
    pub fn fail(&mut self, snapshot: &str, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.failed_snapshot = Some(snapshot.to_string());
        let delay = Self::delay(self.failures);
        self.not_before = Some(now + delay);
        delay
    }

    /// Record a success: the next failure starts from the initial delay.
    pub fn reset(&mut self) {
        *self = Backoff::default();
    }

    /// Whether an apply of `snapshot` may run at `now`. A new snapshot
    /// (someone pushed a fix) is tried at once and restarts the sequence.
    pub fn ready(&mut self, snapshot: &str, now: Instant) -> bool {
        if self
            .failed_snapshot
            .as_deref()
            .is_some_and(|s| s != snapshot)
        {
            self.reset();
        }
        self.not_before.is_none_or(|t| now >= t)
    }

    /// When the next retry is due, if one is pending.
    pub fn due(&self) -> Option<Instant> {
        self.not_before
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_five_seconds_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=9).map(|n| Backoff::delay(n).as_secs()).collect();
        assert_eq!(secs, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(Backoff::delay(1000), CAP);
    }

    #[test]
    fn waits_after_a_failure_and_resets_on_success() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert!(b.ready("c1", t0));
        assert_eq!(b.fail("c1", t0), Duration::from_secs(5));
        assert!(!b.ready("c1", t0 + Duration::from_secs(4)));
        assert!(b.ready("c1", t0 + Duration::from_secs(5)));
        assert_eq!(b.fail("c1", t0), Duration::from_secs(10));
        b.reset();
        assert!(b.ready("c1", t0));
        assert_eq!(b.fail("c1", t0), Duration::from_secs(5));
    }

    #[test]
    fn a_new_snapshot_is_tried_at_once() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        b.fail("c1", t0);
        b.fail("c1", t0);
        assert!(!b.ready("c1", t0));
        assert!(b.ready("c2", t0));
        assert_eq!(b.failures(), 0);
    }
}
