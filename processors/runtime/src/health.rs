//! What a processor answers its probes: `/live` (the consume loop is turning) and `/ready`
//! (started, its database answers, and the group has given it partitions). `/health` is
//! `/ready`, as before the two were told apart.
//!
//! Liveness never depends on a server: a processor waiting for its database or broker is alive,
//! and restarting it would not bring either back. Readiness does, so a Deployment's rollout and
//! a PodDisruptionBudget see an instance that cannot work as unavailable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::Consumer;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::membership::Membership;

/// How often the watch asks the database and the consumer.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The state the probes read. Shared by the loop (which beats), the watch and the server.
#[derive(Debug, Default)]
pub struct Health {
    started: AtomicBool,
    /// Unix milliseconds of the consume loop's last turn (a receive, a batch attempt, a tick).
    beat_ms: AtomicU64,
    /// Milliseconds without a beat after which the process is not alive (0: not set yet).
    stall_after_ms: AtomicU64,
    database: AtomicBool,
    assigned: AtomicBool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Health {
    /// Started (or stopping, with `false`); the loop must beat at least every `stall_after`.
    pub fn set_started(&self, started: bool, stall_after: Duration) {
        self.stall_after_ms
            .store(stall_after.as_millis() as u64, Ordering::Relaxed);
        self.beat();
        self.started.store(started, Ordering::Relaxed);
    }

    /// The consume loop turned.
    pub fn beat(&self) {
        self.beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    fn observe(&self, database: bool, assigned: bool) {
        self.database.store(database, Ordering::Relaxed);
        self.assigned.store(assigned, Ordering::Relaxed);
    }

    /// `Ok`, or why the process is not alive.
    pub fn live(&self) -> Result<(), String> {
        self.live_at(now_ms())
    }

    fn live_at(&self, now_ms: u64) -> Result<(), String> {
        let stall = self.stall_after_ms.load(Ordering::Relaxed);
        let idle = now_ms.saturating_sub(self.beat_ms.load(Ordering::Relaxed));
        if stall > 0 && idle > stall {
            return Err(format!(
                "the consume loop has not turned for {idle} ms (limit {stall} ms)"
            ));
        }
        Ok(())
    }

    /// `Ok`, or why the process should not count as available.
    pub fn ready(&self) -> Result<(), &'static str> {
        if !self.started.load(Ordering::Relaxed) {
            return Err("not started (or stopping)");
        }
        if !self.database.load(Ordering::Relaxed) {
            return Err("the database does not answer");
        }
        if !self.assigned.load(Ordering::Relaxed) {
            return Err("no partition assigned by the consumer group");
        }
        Ok(())
    }
}

/// Asks, every 2 s until `stop`, whether the database answers `SELECT 1` within 2 s and whether
/// the group has assigned this member partitions.
pub async fn watch(
    health: Arc<Health>,
    pool: PgPool,
    membership: Arc<Membership>,
    stop: CancellationToken,
) {
    loop {
        let database = matches!(
            tokio::time::timeout(WATCH_EVERY, sqlx::query("SELECT 1").execute(&pool)).await,
            Ok(Ok(_))
        );
        let assigned = membership
            .current()
            .assignment()
            .is_ok_and(|partitions| partitions.count() > 0);
        health.observe(database, assigned);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Health {
        let health = Health::default();
        health.set_started(true, Duration::from_secs(60));
        health
    }

    #[test]
    fn ready_needs_start_database_and_partitions() {
        let health = Health::default();
        assert_eq!(health.ready(), Err("not started (or stopping)"));
        let health = started();
        assert_eq!(health.ready(), Err("the database does not answer"));
        health.observe(true, false);
        assert_eq!(
            health.ready(),
            Err("no partition assigned by the consumer group")
        );
        health.observe(true, true);
        assert_eq!(health.ready(), Ok(()));
        health.observe(false, true);
        assert!(health.ready().is_err());
        health.observe(true, true);
        health.set_started(false, Duration::from_secs(60));
        assert!(health.ready().is_err());
    }

    #[test]
    fn live_until_the_loop_stops_turning() {
        let health = started();
        let beat = health.beat_ms.load(Ordering::Relaxed);
        assert!(health.live_at(beat + 60_000).is_ok());
        let stalled = health.live_at(beat + 60_001).unwrap_err();
        assert!(stalled.contains("has not turned"), "{stalled}");
        // A server being away does not make a process dead.
        health.observe(false, false);
        assert!(health.live_at(beat + 1).is_ok());
    }

    #[test]
    fn alive_before_it_knows_its_limit() {
        assert!(Health::default().live_at(u64::MAX).is_ok());
    }
}
