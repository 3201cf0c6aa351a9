//! The inbox, the outbox and the relay — how a processor's effects happen exactly once without
//! Kafka transactions (see `docs/DESIGN.md`).
//!
//! - The inbox records every event id a processor has applied; an event whose id is already
//!   there is skipped.
//! - The outbox holds the events a transaction will emit, written in the same transaction as
//!   the state change and the inbox rows.
//! - The relay publishes the outbox in id order with an idempotent producer and deletes exactly
//!   the rows the broker acknowledged. A crash between the two re-publishes them; consumers
//!   dedupe on the event id.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::KafkaConfig;
use crate::internal_events::{InternalEvent, OutboxPublished, RelayFailed, RelayProducerReplaced};
use crate::metrics::Metrics;
use crate::trace::{now_us, Trace, TRACE_HEADER};

/// The channel the relay listens on for new outbox rows.
const CHANNEL: &str = "troupe_outbox";

/// Creates the runtime's own tables, idempotently.
pub async fn ensure_tables(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // One runtime schema per database: serialise concurrent start-ups of two instances.
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7477210)")
        .execute(&mut *tx)
        .await?;
    for statement in [
        "CREATE TABLE IF NOT EXISTS troupe_inbox (
            event_id    UUID PRIMARY KEY,
            received_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
        "CREATE TABLE IF NOT EXISTS troupe_outbox (
            id         BIGSERIAL PRIMARY KEY,
            topic      TEXT NOT NULL,
            key        TEXT,
            payload    BYTEA,
            headers    JSONB NOT NULL DEFAULT '[]',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    ] {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The topic's name on the broker (prefix included).
    pub topic: String,
    pub key: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

/// Records `event_ids` as received; returns the ids not seen before (each once, even when the
/// list repeats one).
pub async fn claim_inbox(
    conn: &mut PgConnection,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if event_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = sqlx::query(
        "INSERT INTO troupe_inbox (event_id) SELECT DISTINCT unnest($1::uuid[])
         ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
    )
    .bind(event_ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Forgets an event id claimed in this transaction whose event was not applied (refused and
/// dead-lettered), so that a redriven copy is applied instead of skipped as a duplicate.
pub async fn release_inbox(conn: &mut PgConnection, event_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM troupe_inbox WHERE event_id = $1")
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Appends rows to the outbox, in order, and wakes the relay at commit; returns their ids.
pub async fn append(conn: &mut PgConnection, rows: &[OutboxRow]) -> Result<Vec<i64>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let topics: Vec<&str> = rows.iter().map(|r| r.topic.as_str()).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|r| r.key.as_deref()).collect();
    let payloads: Vec<Option<&[u8]>> = rows.iter().map(|r| r.payload.as_deref()).collect();
    let headers: Vec<Json<&Vec<(String, String)>>> =
        rows.iter().map(|r| Json(&r.headers)).collect();
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO troupe_outbox (topic, key, payload, headers)
         SELECT t, k, p, h FROM unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[])
           WITH ORDINALITY AS x(t, k, p, h, n) ORDER BY n
         RETURNING id",
    )
    .bind(&topics)
    .bind(&keys)
    .bind(&payloads)
    .bind(&headers)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(ids)
}

/// When this process's recent outbox rows were committed, for the relay's trace stamps
/// ([`crate::trace`]): ranges of row ids with the time their transaction's commit returned.
#[derive(Debug, Default)]
pub struct CommitTimes(Mutex<VecDeque<(i64, i64, i64)>>);

impl CommitTimes {
    /// Ranges kept at most: the relay forgets what it published, so this only bounds what rows
    /// nobody publishes (another instance leading the relay) would hold.
    const KEEP: usize = 4096;

    /// Records that the rows `ids` (ascending) were committed at `at` (µs since the epoch).
    pub fn record(&self, ids: &[i64], at: i64) {
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            return;
        };
        let mut ranges = self.0.lock().expect("commit times lock");
        if ranges.len() == Self::KEEP {
            ranges.pop_front();
        }
        ranges.push_back((first, last, at));
    }

    /// The commit time of row `id`, if this process committed it recently.
    pub fn of(&self, id: i64) -> Option<i64> {
        let ranges = self.0.lock().expect("commit times lock");
        ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&id))
            .map(|(_, _, at)| *at)
    }

    /// Forgets the ranges that end at or before `id` (published).
    pub fn forget_through(&self, id: i64) {
        self.0
            .lock()
            .expect("commit times lock")
            .retain(|(_, last, _)| *last > id);
    }
}

/// Forgets inbox entries received more than `keep` ago; returns how many. A duplicate can only
/// arrive while the original is still in a topic, so `keep` must exceed the topics' retention
/// (7 days in `topics.yaml`; the default keeps 8).
pub async fn prune_inbox(pool: &PgPool, keep: Duration) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM troupe_inbox WHERE received_at < now() - make_interval(secs => $1)",
    )
    .bind(keep.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// How many rows wait to be published.
pub async fn pending(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM troupe_outbox")
        .fetch_one(pool)
        .await
}

/// The relay's producer: idempotent (`acks = all`, order kept across retries).
pub fn relay_producer(kafka: &KafkaConfig) -> rdkafka::error::KafkaResult<FutureProducer> {
    kafka
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        .set("log_level", "4")
        .create()
}

/// Publishes the outbox. One relay per processor is active at a time (a session advisory lock
/// on the processor's name); the others stand by, so rows are published in id order.
pub struct Relay {
    pub pool: PgPool,
    pub producer: FutureProducer,
    /// To make a new producer when this one stays stuck (see [`Relay::run`]).
    pub kafka: KafkaConfig,
    pub processor: &'static str,
    /// Woken by this process's own commits; other instances' commits arrive by NOTIFY.
    pub wake: Arc<Notify>,
    /// When this process's rows were committed, for their trace header.
    pub commits: Arc<CommitTimes>,
    pub metrics: Metrics,
    pub batch: i64,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("processor", &self.processor)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Runs until `stop` is cancelled, then publishes what is left and returns.
    ///
    /// A producer whose messages time out [`STUCK_AFTER`] times in a row is replaced by a new
    /// one: after a broker restart librdkafka's producer can stay on a partition leader it
    /// will not find again (seen under load: every delivery timed out for minutes). What it
    /// still held is purged and published again by the new one; consumers drop the copies
    /// that arrive twice (the inbox).
    pub async fn run(mut self, stop: CancellationToken) {
        let mut backoff = Backoff::new();
        let mut timeouts = 0;
        loop {
            match self.lead(&stop).await {
                Ok(()) => return,
                Err(error) => {
                    RelayFailed {
                        processor: self.processor,
                        error: &error,
                    }
                    .emit(&self.metrics);
                    timeouts = if error.timed_out() { timeouts + 1 } else { 0 };
                    if timeouts >= STUCK_AFTER {
                        self.replace_producer();
                        timeouts = 0;
                    }
                    if stop.is_cancelled() {
                        return;
                    }
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = backoff.wait() => {}
                    }
                }
            }
        }
    }

    fn replace_producer(&mut self) {
        match relay_producer(&self.kafka) {
            Ok(producer) => {
                use rdkafka::producer::{Producer, PurgeConfig};
                self.producer
                    .purge(PurgeConfig::default().queue().inflight());
                self.producer = producer;
                RelayProducerReplaced {
                    processor: self.processor,
                }
                .emit(&self.metrics);
            }
            Err(error) => RelayFailed {
                processor: self.processor,
                error: &error,
            }
            .emit(&self.metrics),
        }
    }

    async fn lead(&self, stop: &CancellationToken) -> Result<(), RelayError> {
        let mut lock = self.pool.acquire().await?.detach();
        let key = lock_key(self.processor);
        loop {
            let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut lock)
                .await?;
            if leader {
                break;
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        tracing::info!(processor = self.processor, "outbox relay leading");
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        let mut draining = false;
        loop {
            let published = self.publish_batch().await?;
            OutboxPublished {
                processor: self.processor,
                rows: published,
            }
            .emit(&self.metrics);
            if published as i64 >= self.batch {
                continue;
            }
            if draining {
                return Ok(());
            }
            tokio::select! {
                () = stop.cancelled() => draining = true,
                () = self.wake.notified() => {}
                notice = listener.try_recv() => { notice?; }
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// Publishes up to one batch; returns how many rows went out.
    async fn publish_batch(&self) -> Result<usize, RelayError> {
        let rows = sqlx::query(
            "SELECT id, topic, key, payload, headers FROM troupe_outbox ORDER BY id LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let picked = now_us();
        let mut deliveries = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.get(0);
            let topic: String = row.get(1);
            let key: Option<String> = row.get(2);
            let payload: Option<Vec<u8>> = row.get(3);
            let Json(mut headers): Json<Vec<(String, String)>> = row.get(4);
            for (name, value) in &mut headers {
                if name == TRACE_HEADER {
                    if let Some(trace) = Trace::parse(value) {
                        *value = Trace {
                            committed: self.commits.of(id),
                            relayed: Some(picked),
                            ..trace
                        }
                        .to_header();
                    }
                }
            }
            let mut kafka_headers = OwnedHeaders::new_with_capacity(headers.len());
            for (name, value) in &headers {
                kafka_headers = kafka_headers.insert(Header {
                    key: name,
                    value: Some(value.as_bytes()),
                });
            }
            let mut record: FutureRecord<'_, String, Vec<u8>> =
                FutureRecord::to(&topic).headers(kafka_headers);
            if let Some(key) = &key {
                record = record.key(key);
            }
            if let Some(payload) = &payload {
                record = record.payload(payload);
            }
            // Enqueue without waiting, in order; the idempotent producer keeps the order.
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| RelayError::Kafka(e))?;
            deliveries.push(delivery);
            ids.push(id);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(RelayError::Kafka(error)),
                Err(_) => return Err(RelayError::Canceled),
            }
        }
        sqlx::query("DELETE FROM troupe_outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&self.pool)
            .await?;
        if let Some(&last) = ids.last() {
            self.commits.forget_through(last);
        }
        Ok(ids.len())
    }
}

/// Deliveries timed out in a row before the relay's producer is replaced.
const STUCK_AFTER: u32 = 2;

impl RelayError {
    fn timed_out(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode::MessageTimedOut;
        matches!(self, RelayError::Kafka(e) if e.rdkafka_error_code() == Some(MessageTimedOut))
    }
}

/// The advisory-lock key of a processor's relay.
fn lock_key(processor: &str) -> i64 {
    // FNV-1a: stable across processes and versions, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in processor.bytes().chain(*b"/outbox") {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(rdkafka::error::KafkaError),
    #[error("delivery canceled")]
    Canceled,
}

/// Exponential backoff from 100 ms to 5 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }

    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(5));
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_times_are_found_by_row_id_and_forgotten_once_published() {
        let times = CommitTimes::default();
        times.record(&[3, 4, 5], 100);
        times.record(&[], 150);
        times.record(&[9], 200);
        assert_eq!(times.of(2), None);
        assert_eq!(times.of(4), Some(100));
        assert_eq!(times.of(9), Some(200));
        assert_eq!(times.of(7), None);
        times.forget_through(5);
        assert_eq!(times.of(4), None);
        assert_eq!(times.of(9), Some(200));
    }

    #[test]
    fn commit_times_keep_a_bounded_history() {
        let times = CommitTimes::default();
        for id in 0..(CommitTimes::KEEP as i64 + 10) {
            times.record(&[id], id);
        }
        assert_eq!(times.of(0), None);
        assert_eq!(
            times.of(CommitTimes::KEEP as i64 + 9),
            Some(CommitTimes::KEEP as i64 + 9)
        );
    }

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("order"), lock_key("order"));
        assert_ne!(lock_key("order"), lock_key("payment"));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_five_seconds() {
        let mut backoff = Backoff::new();
        let start = tokio::time::Instant::now();
        for _ in 0..8 {
            backoff.wait().await;
        }
        // 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 + 5
        assert_eq!(start.elapsed(), Duration::from_millis(16_300));
        backoff.reset();
        assert_eq!(backoff.next, Duration::from_millis(100));
    }
}
