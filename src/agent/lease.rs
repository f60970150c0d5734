//! One applier per swarm: a lease kept in a Swarm config (`shoal-lease`)
//! whose labels name the holder (and, for people, the expiry by the
//! holder's clock). It is taken when free or abandoned, and renewed, by
//! updating with the version index just read, so of two agents racing only
//! one write succeeds.
//!
//! Abandoned means: the lease's version index has not moved for a whole
//! TTL by the *observer's own monotonic clock* (each renewal moves it). No
//! wall clocks are compared, so managers whose clocks disagree never both
//! apply: the holder stops applying one TTL after its last renewal began,
//! and nobody takes over before a TTL without renewals has passed.
use crate::engine::swarm_config::{self, ConfigError, LabeledConfig, WriteError};
use bollard::Docker;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

pub const HOLDER_LABEL: &str = "io.shoal.lease.holder";
pub const EXPIRES_LABEL: &str = "io.shoal.lease.expires-unix-ms";
const DATA: &str = "shoal applier lease; the labels hold the holder and expiry\n";

/// Why the lease could not be read or written (a lost race is no error:
/// see [`Lease::tick`]); the messages name the lease's config.
pub type LeaseError = swarm_config::AccessError;

/// What the lease looks like after a [`Lease::tick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// This agent holds it (until at least `ttl` after the write).
    pub held: bool,
    /// The holder as last read or written; `None` when nobody holds it.
    pub holder: Option<String>,
}

/// What to do with the lease as read (pure, tested without a swarm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it (or the holder let it expire): take it.
    Take,
    /// We hold it: extend it.
    Renew,
    /// Someone else holds it and it has not expired.
    HeldBy(String),
}

/// Decide from the lease's labels, our identity, and how long (by our
/// clock) the lease has gone without a renewal.
pub fn decide(
    labels: &BTreeMap<String, String>,
    me: &str,
    unrenewed_for: Duration,
    ttl: Duration,
) -> Decision {
    let holder = labels.get(HOLDER_LABEL).map(String::as_str).unwrap_or("");
    if holder == me {
        Decision::Renew
    } else if holder.is_empty() || unrenewed_for >= ttl {
        Decision::Take
    } else {
        Decision::HeldBy(holder.to_string())
    }
}

/// This agent's handle on the lease.
pub struct Lease {
    docker: Docker,
    name: String,
    identity: String,
    ttl: Duration,
    /// Local (monotonic) end of our hold: we stop applying at this point
    /// even if a renewal could not be written.
    valid_until: Option<Instant>,
    /// The lease's version index as last read, and when (our clock) we
    /// first saw it: how long it has gone without a renewal.
    observed: Option<(u64, Instant)>,
}

impl Lease {
    pub fn new(docker: Docker, name: &str, identity: &str, ttl: Duration) -> Self {
        Lease {
            docker,
            name: name.to_string(),
            identity: identity.to_string(),
            ttl,
            valid_until: None,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether we hold the lease right now.
    pub fn is_held(&self) -> bool {
        self.valid_until.is_some_and(|t| Instant::now() < t)
    }

    /// Until when (local clock) we may write, if we hold the lease.
    pub fn valid_until(&self) -> Option<Instant> {
        self.valid_until.filter(|t| Instant::now() < *t)
    }

    /// Take, renew or observe the lease. Called every `ttl / 3`.
    pub async fn tick(&mut self) -> Result<LeaseView, LeaseError> {
        let started = Instant::now();
        let now_ms = unix_ms(SystemTime::now());
        let current = match swarm_config::get(&self.docker, &self.name).await {
            Ok(c) => c,
            Err(e) => {
                self.expire_if_due();
                return Err(e.into());
            }
        };
        let labels = self.labels(now_ms + self.ttl.as_millis());
        let unrenewed = current
            .as_ref()
            .map(|c| self.unrenewed_for(c))
            .unwrap_or_default();
        let written = match &current {
            None => swarm_config::create(&self.docker, &self.name, DATA, &labels)
                .await
                .map(|_| ()),
            Some(c) => match decide(&c.labels, &self.identity, unrenewed, self.ttl) {
                Decision::Take | Decision::Renew => {
                    swarm_config::update_labels(&self.docker, c, &labels).await
                }
                Decision::HeldBy(holder) => {
                    self.valid_until = None;
                    return Ok(LeaseView {
                        held: false,
                        holder: Some(holder),
                    });
                }
            },
        };
        match written {
            Ok(()) => {
                self.valid_until = Some(started + self.ttl);
                Ok(LeaseView {
                    held: true,
                    holder: Some(self.identity.clone()),
                })
            }
            Err(WriteError::Conflict(_)) => {
                // Another agent wrote between our read and write.
                self.valid_until = None;
                Ok(LeaseView {
                    held: false,
                    holder: self.read_holder().await,
                })
            }
            Err(e @ WriteError::Engine { .. }) => {
                self.expire_if_due();
                Err(e.into())
            }
        }
    }

    /// Give the lease up (clean shutdown) so another agent takes over at
    /// once instead of after the TTL.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        self.valid_until = None;
        let Some(c) = swarm_config::get(&self.docker, &self.name).await? else {
            return Ok(());
        };
        if decide(&c.labels, &self.identity, Duration::ZERO, self.ttl) != Decision::Renew {
            return Ok(());
        }
        let mut labels = BTreeMap::new();
        labels.insert(HOLDER_LABEL.to_string(), String::new());
        labels.insert(EXPIRES_LABEL.to_string(), "0".to_string());
        match swarm_config::update_labels(&self.docker, &c, &labels).await {
            Ok(()) | Err(WriteError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The lease config as stored (for tests and `/status`).
    pub async fn read(&self) -> Result<Option<LabeledConfig>, ConfigError> {
        swarm_config::get(&self.docker, &self.name).await
    }

    async fn read_holder(&self) -> Option<String> {
        let c = self.read().await.ok()??;
        c.labels
            .get(HOLDER_LABEL)
            .filter(|h| !h.is_empty())
            .cloned()
    }

    /// How long the lease has shown the same version index to us.
    fn unrenewed_for(&mut self, c: &LabeledConfig) -> Duration {
        let now = Instant::now();
        match self.observed {
            Some((version, since)) if version == c.version => now.duration_since(since),
            _ => {
                self.observed = Some((c.version, now));
                Duration::ZERO
            }
        }
    }

    fn expire_if_due(&mut self) {
        if !self.is_held() {
            self.valid_until = None;
        }
    }

    fn labels(&self, expires_ms: u128) -> BTreeMap<String, String> {
        BTreeMap::from([
            (HOLDER_LABEL.to_string(), self.identity.clone()),
            (EXPIRES_LABEL.to_string(), expires_ms.to_string()),
        ])
    }
}

fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The default identity: `hostname:pid` (unique per agent process).
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(holder: &str, expires: u128) -> BTreeMap<String, String> {
        BTreeMap::from([
            (HOLDER_LABEL.to_string(), holder.to_string()),
            (EXPIRES_LABEL.to_string(), expires.to_string()),
        ])
    }

    #[test]
    fn decides_take_renew_or_wait() {
        let ttl = Duration::from_secs(15);
        let s = Duration::from_secs;
        assert_eq!(decide(&BTreeMap::new(), "a", s(0), ttl), Decision::Take);
        assert_eq!(decide(&labels("", 0), "a", s(0), ttl), Decision::Take);
        assert_eq!(decide(&labels("a", 0), "a", s(99), ttl), Decision::Renew);
        assert_eq!(decide(&labels("b", 0), "a", s(15), ttl), Decision::Take);
        // The expiry label is the holder's clock: never trusted, however
        // far in the past it reads.
        assert_eq!(
            decide(&labels("b", 0), "a", s(14), ttl),
            Decision::HeldBy("b".into())
        );
    }
}
