//! Observing the saga: every event on its topics, booked per order and phase, for latency end
//! to end and per hop.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use troupe_events::{Envelope, Event, EventType};
use troupe_runtime::codec::Codec;
use troupe_runtime::config::KafkaConfig;
use troupe_runtime::handler::now_ms;
use troupe_runtime::trace::{Trace, TRACE_HEADER};
use uuid::Uuid;

/// An event whose cause the watcher has not seen yet.
#[derive(Clone, Copy)]
pub(super) struct Effect {
    pub(super) event_type: EventType,
    pub(super) appended_ms: i64,
    /// The times its processor recorded (`troupe.trace`).
    pub(super) trace: Option<Trace>,
}

/// The latency of one kind of hop, and of each of its stages ([`troupe_runtime::trace`]), µs.
pub(super) struct HopTimes {
    pub(super) hop: Histogram<u64>,
    pub(super) fetch: Histogram<u64>,
    pub(super) linger: Histogram<u64>,
    pub(super) transaction: Histogram<u64>,
    pub(super) relay_wake: Histogram<u64>,
    pub(super) produce: Histogram<u64>,
}

impl HopTimes {
    fn new() -> Self {
        Self {
            hop: histogram(),
            fetch: histogram(),
            linger: histogram(),
            transaction: histogram(),
            relay_wake: histogram(),
            produce: histogram(),
        }
    }
}

/// A saga event the watcher saw, for per-hop latency.
#[derive(Clone, Copy)]
pub(super) struct Seen {
    pub(super) event_type: EventType,
    pub(super) appended_ms: i64,
}

/// One phase (a step, or the latency phase).
pub(super) struct Phase {
    pub(super) latency: Histogram<u64>,
    pub(super) offered: u64,
    pub(super) completed: u64,
    /// Distinct events seen for the phase's orders (a redelivered message counts once).
    pub(super) events: u64,
    /// Whether hops are recorded (the latency phase only: the others would only add memory).
    pub(super) hops: bool,
}

/// What the watcher and the sender share.
#[derive(Default)]
pub(super) struct Book {
    /// Order id → (phase, scheduled send time, ended).
    pub(super) orders: HashMap<Uuid, (usize, Instant, bool)>,
    pub(super) phases: Vec<Phase>,
    pub(super) seen: HashMap<Uuid, Seen>,
    /// Every event id seen, to count distinct events.
    pub(super) ids: std::collections::HashSet<Uuid>,
    pub(super) waiting: HashMap<Uuid, Vec<Effect>>,
    /// (phase, cause type, effect type) → its latencies.
    pub(super) hops: BTreeMap<(usize, usize, usize), HopTimes>,
}

pub(super) fn histogram() -> Histogram<u64> {
    // Microseconds up to an hour, three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Book {
    pub(super) fn phase(&mut self, hops: bool) -> usize {
        self.phases.push(Phase {
            latency: histogram(),
            offered: 0,
            completed: 0,
            events: 0,
            hops,
        });
        self.phases.len() - 1
    }

    pub(super) fn hop(&mut self, phase: usize, cause: Seen, effect: Effect) {
        let key = (phase, cause.event_type.index(), effect.event_type.index());
        let times = self.hops.entry(key).or_insert_with(HopTimes::new);
        let record = |h: &mut Histogram<u64>, us: i64| {
            let _ = h.record((us.max(0) as u64).max(1));
        };
        record(
            &mut times.hop,
            (effect.appended_ms - cause.appended_ms) * 1000,
        );
        if let Some(stages) = effect
            .trace
            .and_then(|t| t.stages(cause.appended_ms, effect.appended_ms))
        {
            record(&mut times.fetch, stages.fetch);
            record(&mut times.linger, stages.linger);
            record(&mut times.transaction, stages.transaction);
            record(&mut times.relay_wake, stages.relay_wake);
            record(&mut times.produce, stages.produce);
        }
    }

    pub(super) fn observe(
        &mut self,
        envelope: &Envelope,
        appended_ms: i64,
        trace: Option<Trace>,
        at: Instant,
    ) {
        let Some(&(phase, scheduled, ended)) = self.orders.get(&envelope.meta.order_id) else {
            return;
        };
        if self.ids.insert(envelope.meta.event_id) {
            self.phases[phase].events += 1;
        }
        if self.phases[phase].hops {
            let effect = Effect {
                event_type: envelope.event_type(),
                appended_ms,
                trace,
            };
            if let Some(cause_id) = envelope.meta.causation_id {
                match self.seen.get(&cause_id) {
                    Some(&cause) => self.hop(phase, cause, effect),
                    // Topics are fetched independently: an effect can arrive before its cause.
                    None => self.waiting.entry(cause_id).or_default().push(effect),
                }
            }
            let seen = Seen {
                event_type: effect.event_type,
                appended_ms,
            };
            self.seen.insert(envelope.meta.event_id, seen);
            for early in self
                .waiting
                .remove(&envelope.meta.event_id)
                .unwrap_or_default()
            {
                self.hop(phase, seen, early);
            }
        }
        let terminal = matches!(
            envelope.event,
            Event::OrderConfirmed { .. }
                | Event::OrderCancelled { .. }
                | Event::OrderRejected { .. }
        );
        // An order ends once; a redelivered terminal event must not count twice.
        if terminal && !ended {
            let micros = at.saturating_duration_since(scheduled).as_micros() as u64;
            let phase = &mut self.phases[phase];
            let _ = phase.latency.record(micros.max(1));
            phase.completed += 1;
            if let Some(order) = self.orders.get_mut(&envelope.meta.order_id) {
                order.2 = true;
            }
        }
    }
}

/// Reads every saga topic from the beginning and books what it sees.
pub(super) async fn watch(
    topic_names: Vec<String>,
    partitions: BTreeMap<String, i32>,
    codec: Codec,
    book: Arc<Mutex<Book>>,
) -> anyhow::Result<()> {
    let kafka = KafkaConfig::from_env();
    let consumer: StreamConsumer = kafka
        .client()
        .set("group.id", format!("troupe-bench-watch-{}", Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", kafka.fetch_wait_ms.to_string())
        .set("log_level", "3")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for topic in &topic_names {
        for partition in 0..partitions.get(topic).copied().unwrap_or(1) {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    loop {
        let message = consumer.recv().await?;
        let at = Instant::now();
        let Ok(envelope) = codec.decode(message.payload()).await else {
            continue;
        };
        let appended_ms = message.timestamp().to_millis().unwrap_or_else(now_ms);
        let trace = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == TRACE_HEADER)
                .and_then(|h| std::str::from_utf8(h.value?).ok())
                .and_then(Trace::parse)
        });
        book.lock()
            .expect("book lock")
            .observe(&envelope, appended_ms, trace, at);
    }
}
