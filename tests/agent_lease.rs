//! The applier lease and the per-stack state records against the real
//! Swarm config store.
mod common;

use common::bollard as docker;
use shoal::agent::lease::{Lease, EXPIRES_LABEL, HOLDER_LABEL};
use shoal::agent::record::{self, StackRecord};
use shoal::agent::status::Outcome;
use shoal::engine::swarm_config;
use std::time::{Duration, Instant};

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn exactly_one_contender_holds_and_the_other_takes_over_after_the_ttl() {
    let d = docker().await;
    let name = unique("agent-lease");
    let ttl = Duration::from_secs(2);
    let mut a = Lease::new(d.clone(), &name, "agent-a", ttl);
    let mut b = Lease::new(d.clone(), &name, "agent-b", ttl);

    // Race for the absent lease, then a few renew rounds: never both.
    for _ in 0..4 {
        let (ra, rb) = tokio::join!(a.tick(), b.tick());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra.held ^ rb.held, "exactly one holds: a={ra:?} b={rb:?}");
        assert_eq!(ra.holder, rb.holder, "both see the same holder");
    }
    let (holder, other) = if a.is_held() {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let holder_id = holder.identity().to_string();
    let stored = holder.read().await.unwrap().unwrap();
    assert_eq!(stored.labels[HOLDER_LABEL], holder_id);
    assert!(stored.labels[EXPIRES_LABEL].parse::<u128>().is_ok());

    // The holder stops renewing (killed). Until the TTL is over the other
    // stays out; then it takes over.
    let stopped = Instant::now();
    let took_over = loop {
        let v = other.tick().await.unwrap();
        if v.held {
            break stopped.elapsed();
        }
        assert_eq!(v.holder.as_deref(), Some(holder_id.as_str()));
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "no takeover within 10s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        took_over >= ttl - Duration::from_millis(300),
        "taken over after {took_over:?}, before the TTL of {ttl:?}"
    );
    // The old holder notices on its next tick.
    let v = holder.tick().await.unwrap();
    assert!(!v.held);
    assert_eq!(v.holder.as_deref(), Some(other.identity()));

    // A clean release lets the other take it at once.
    other.release().await.unwrap();
    assert!(!other.is_held());
    assert!(holder.tick().await.unwrap().held);

    swarm_config::remove(&d, &name).await.unwrap();
}

/// A holder whose clock runs behind writes expiry times already past by
/// everyone else's clock. Its renewals still keep the lease: a standby
/// judges by the version index and its own clock, never by wall time.
#[tokio::test]
async fn a_holder_with_a_slow_clock_keeps_the_lease_while_it_renews() {
    let d = docker().await;
    let name = unique("agent-lease-skew");
    let ttl = Duration::from_secs(2);
    let renew = |n: u64| {
        std::collections::BTreeMap::from([
            (HOLDER_LABEL.to_string(), "slow-clock".to_string()),
            // An hour in the past (the holder's clock), changing per renewal.
            (EXPIRES_LABEL.to_string(), (1_000 + n).to_string()),
        ])
    };
    swarm_config::create(&d, &name, "lease\n", &renew(0))
        .await
        .unwrap();
    let mut standby = Lease::new(d.clone(), &name, "standby", ttl);
    let started = Instant::now();
    let mut n = 0;
    // Two TTLs of renewals every 300 ms: the standby never takes it.
    while started.elapsed() < ttl * 2 {
        let v = standby.tick().await.unwrap();
        assert!(
            !v.held,
            "taken from a renewing holder after {:?}",
            started.elapsed()
        );
        assert_eq!(v.holder.as_deref(), Some("slow-clock"));
        n += 1;
        let current = swarm_config::get(&d, &name).await.unwrap().unwrap();
        swarm_config::update_labels(&d, &current, &renew(n))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The holder stops renewing: the standby takes over one TTL later.
    let stopped = Instant::now();
    let took_over = loop {
        if standby.tick().await.unwrap().held {
            break stopped.elapsed();
        }
        assert!(stopped.elapsed() < Duration::from_secs(10), "no takeover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        took_over >= ttl - Duration::from_millis(300),
        "{took_over:?}"
    );
    swarm_config::remove(&d, &name).await.unwrap();
}

#[tokio::test]
async fn state_records_are_written_only_when_they_change() {
    let d = docker().await;
    let stack = unique("agent_rec");
    let mut rec = StackRecord {
        commit: Some("c1".into()),
        applied_at: Some("2026-11-30T00:00:00Z".into()),
        outcome: Some(Outcome::Applied),
        attempted: Some("c1".into()),
        error: None,
        images: std::collections::BTreeMap::from([(
            format!("{stack}_app"),
            "app:3.0@sha256:ab".to_string(),
        )]),
    };
    assert!(record::save(&d, &stack, &rec).await.unwrap(), "created");
    let stored = swarm_config::get(&d, &record::config_name(&stack))
        .await
        .unwrap()
        .expect("the record config exists");
    let v1 = stored.version;
    assert!(!stored.labels.contains_key("com.docker.stack.namespace"));
    assert_eq!(record::load(&d, &stack).await.unwrap(), Some(rec.clone()));

    // Same record: nothing is written (a quiet pass leaves no trace).
    assert!(!record::save(&d, &stack, &rec).await.unwrap());
    let same = swarm_config::get(&d, &record::config_name(&stack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.version, v1);

    // A new outcome updates the labels in place (new version index).
    rec.outcome = Some(Outcome::ApplyFailed);
    rec.attempted = Some("c2".into());
    rec.error = Some("web_app: no such image".into());
    assert!(record::save(&d, &stack, &rec).await.unwrap());
    let updated = swarm_config::get(&d, &record::config_name(&stack))
        .await
        .unwrap()
        .unwrap();
    assert!(updated.version > v1);
    assert_eq!(updated.id, stored.id, "updated in place, not recreated");
    assert_eq!(updated.labels[record::OUTCOME_LABEL], "apply-failed");
    assert_eq!(updated.labels[record::COMMIT_LABEL], "c1");
    let all = record::load_all(&d).await.unwrap();
    assert_eq!(all.get(&stack), Some(&rec));

    record::remove(&d, &stack).await.unwrap();
    assert_eq!(record::load(&d, &stack).await.unwrap(), None);
}
