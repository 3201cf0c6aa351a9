//! Instrumentation as events: everything worth knowing about a running processor is one struct
//! here, and its [`InternalEvent::emit`] writes the log line and updates the metrics together,
//! so the two cannot drift apart. The runtime never logs a failure or counts one anywhere
//! else. `docs/instrumentation.md` lists them.

use std::fmt::Display;

use crate::metrics::Metrics;

/// Where a transient failure can be retried: the `stage` of `troupe_retries_total`.
pub const RETRY_STAGES: [&str; 5] = ["consume", "rejoin", "batch", "tick", "relay"];

/// Something that happened in a processor.
pub trait InternalEvent {
    fn emit(self, metrics: &Metrics);
}

/// A message was read from Kafka (before decoding).
#[derive(Debug)]
pub struct MessageConsumed<'a> {
    pub processor: &'a str,
    pub topic: &'a str,
}

impl InternalEvent for MessageConsumed<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.consumed(self.processor, self.topic);
    }
}

/// A message written with an older schema version was upcast before the handler saw it.
#[derive(Debug)]
pub struct EventUpcast<'a> {
    pub processor: &'a str,
    pub event_type: &'a str,
    pub from_version: u32,
}

impl InternalEvent for EventUpcast<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            processor = self.processor,
            event_type = self.event_type,
            from_version = self.from_version,
            "event upcast"
        );
        metrics.upcast(self.processor, self.event_type, self.from_version);
    }
}

/// The consumer reported an error (the broker unreachable, a transport failure). librdkafka
/// reconnects by itself; the consume loop keeps polling, without waiting: errors are queued
/// events, read one per poll, and a broker down for a while queues many of them.
#[derive(Debug)]
pub struct KafkaReceiveFailed<'a, E: Display> {
    pub processor: &'a str,
    pub error: &'a E,
}

impl<E: Display> InternalEvent for KafkaReceiveFailed<'_, E> {
    fn emit(self, metrics: &Metrics) {
        tracing::warn!(error = %self.error, processor = self.processor, "kafka consumer error; librdkafka reconnects by itself");
        metrics.retry(self.processor, "consume");
    }
}

/// The broker listed no member of this instance in its group for the watchdog's grace while
/// the loop waited for messages; the consumer was replaced by a new one.
#[derive(Debug)]
pub struct ConsumerRejoined<'a, E: Display + std::fmt::Debug> {
    pub processor: &'a str,
    pub result: &'a Result<(), E>,
}

impl<E: Display + std::fmt::Debug> InternalEvent for ConsumerRejoined<'_, E> {
    fn emit(self, metrics: &Metrics) {
        match self.result {
            Ok(()) => tracing::warn!(processor = self.processor, "the broker lists this instance in no group; the consumer was replaced and joins again"),
            Err(error) => tracing::warn!(%error, processor = self.processor, "the broker lists this instance in no group, and a new consumer could not be created; trying again later"),
        }
        metrics.retry(self.processor, "rejoin");
    }
}

/// Applying a batch failed (the database, a store, the registry); it is retried whole.
#[derive(Debug)]
pub struct BatchFailed<'a, E: Display> {
    pub processor: &'a str,
    pub error: &'a E,
    pub messages: usize,
}

impl<E: Display> InternalEvent for BatchFailed<'_, E> {
    fn emit(self, metrics: &Metrics) {
        tracing::warn!(error = %self.error, processor = self.processor, messages = self.messages, "batch failed; retrying");
        metrics.retry(self.processor, "batch");
    }
}

/// Firing due timers failed; retried on the next tick after a backoff.
#[derive(Debug)]
pub struct TimersFailed<'a, E: Display> {
    pub processor: &'a str,
    pub error: &'a E,
}

impl<E: Display> InternalEvent for TimersFailed<'_, E> {
    fn emit(self, metrics: &Metrics) {
        tracing::warn!(error = %self.error, processor = self.processor, "timers failed; retrying");
        metrics.retry(self.processor, "tick");
    }
}

/// The outbox relay failed (the broker or the database); it starts again from the oldest row.
#[derive(Debug)]
pub struct RelayFailed<'a, E: Display> {
    pub processor: &'a str,
    pub error: &'a E,
}

impl<E: Display> InternalEvent for RelayFailed<'_, E> {
    fn emit(self, metrics: &Metrics) {
        tracing::warn!(error = %self.error, processor = self.processor, "outbox relay failed; retrying");
        metrics.retry(self.processor, "relay");
    }
}

/// The relay's producer timed out again and again and was replaced by a new one.
#[derive(Debug)]
pub struct RelayProducerReplaced<'a> {
    pub processor: &'a str,
}

impl InternalEvent for RelayProducerReplaced<'_> {
    fn emit(self, _metrics: &Metrics) {
        tracing::warn!(
            processor = self.processor,
            "the outbox relay's deliveries kept timing out; its producer was replaced"
        );
    }
}

/// A message went to the dead-letter topic.
#[derive(Debug)]
pub struct DeadLettered<'a> {
    pub processor: &'a str,
    pub reason: &'a str,
    pub detail: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl InternalEvent for DeadLettered<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::warn!(
            processor = self.processor,
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            reason = self.reason,
            error = self.detail,
            "dead-lettered a message"
        );
        metrics.dead_letter(self.processor, self.reason);
    }
}

/// A batch was applied and committed to the database.
#[derive(Debug)]
pub struct BatchApplied<'a> {
    pub processor: &'a str,
    pub seconds: f64,
    pub messages: usize,
    /// Each event applied, and when it occurred (ms since the epoch).
    pub handled: &'a [(&'static str, i64)],
    pub emitted: &'a [&'static str],
    pub duplicates: usize,
    /// When the batch committed (ms since the epoch).
    pub committed_at: i64,
}

impl InternalEvent for BatchApplied<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            processor = self.processor,
            messages = self.messages,
            handled = self.handled.len(),
            emitted = self.emitted.len(),
            duplicates = self.duplicates,
            seconds = self.seconds,
            "batch applied"
        );
        for (event_type, occurred_at) in self.handled {
            metrics.handled(self.processor, event_type);
            let hop = (self.committed_at - occurred_at).max(0) as f64 / 1000.0;
            metrics.hop(self.processor, event_type, hop);
        }
        for event_type in self.emitted {
            metrics.emitted(self.processor, event_type);
        }
        for _ in 0..self.duplicates {
            metrics.duplicate(self.processor);
        }
        metrics.batch(self.processor, self.seconds, self.messages);
    }
}

/// Due timers fired and emitted events.
#[derive(Debug)]
pub struct TimersFired<'a> {
    pub processor: &'a str,
    pub emitted: &'a [&'static str],
}

impl InternalEvent for TimersFired<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            processor = self.processor,
            emitted = self.emitted.len(),
            "timers fired"
        );
        for event_type in self.emitted {
            metrics.emitted(self.processor, event_type);
        }
    }
}

/// A service reacted to an event (or fired a timer, `on = "timer"`) and emitted `emitted`
/// (`None`: nothing): one arrow of the choreography exercised.
#[derive(Debug)]
pub struct Reacted<'a> {
    pub processor: &'a str,
    pub on: &'a str,
    pub emitted: Option<&'a str>,
}

impl InternalEvent for Reacted<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.reacted(self.processor, self.on, self.emitted.unwrap_or("nothing"));
    }
}

/// A handler emitted an event `choreography.yaml` does not allow for that reaction: a bug in
/// the handler or in the declaration. The event is still emitted (refusing it could strand
/// the order); the end-to-end tests fail on any.
#[derive(Debug)]
pub struct ChoreographyViolated<'a> {
    pub processor: &'a str,
    pub on: &'a str,
    pub emitted: &'a str,
}

impl InternalEvent for ChoreographyViolated<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::error!(
            processor = self.processor,
            on = self.on,
            emitted = self.emitted,
            "a reaction emitted an event choreography.yaml does not allow"
        );
        metrics.violated(self.processor, self.on, self.emitted);
    }
}

/// The relay published outbox rows, acknowledged by the broker.
#[derive(Debug)]
pub struct OutboxPublished<'a> {
    pub processor: &'a str,
    pub rows: usize,
}

impl InternalEvent for OutboxPublished<'_> {
    fn emit(self, metrics: &Metrics) {
        if self.rows > 0 {
            tracing::trace!(
                processor = self.processor,
                rows = self.rows,
                "outbox published"
            );
        }
        metrics.outbox_published(self.processor, self.rows);
    }
}

/// How many outbox rows wait (measured every few seconds).
#[derive(Debug)]
pub struct OutboxBacklog<'a> {
    pub processor: &'a str,
    pub pending: i64,
}

impl InternalEvent for OutboxBacklog<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.outbox_pending(self.processor, self.pending);
    }
}

/// The lag of one partition this member owns, as the broker sees it.
#[derive(Debug)]
pub struct PartitionLag<'a> {
    pub processor: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub lag: Lag,
}

/// A figure of [`PartitionLag`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lag {
    /// Messages behind.
    Messages(i64),
    /// Seconds behind.
    Seconds(f64),
    /// The partition is no longer owned here; its figures go.
    Gone,
}

impl InternalEvent for PartitionLag<'_> {
    fn emit(self, metrics: &Metrics) {
        let (processor, topic, partition) = (self.processor, self.topic, self.partition);
        match self.lag {
            Lag::Messages(lag) => metrics.consumer_lag(processor, topic, partition, lag),
            Lag::Seconds(lag) => metrics.consumer_lag_seconds(processor, topic, partition, lag),
            Lag::Gone => metrics.forget_consumer_lag(processor, topic, partition),
        }
    }
}
