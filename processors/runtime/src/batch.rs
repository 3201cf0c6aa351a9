//! Applying a batch: decode every message, hand each event the service reacts to to the handler
//! in one database transaction with the inbox and the outbox, check what it emits against the
//! choreography, commit, then report. Timers fire the same way.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use sqlx::PgConnection;
use troupe_events::choreography::{Choreography, TIMER};
use troupe_events::{topics as base_topics, Envelope};
use uuid::Uuid;

use crate::codec::{DecodeError, EncodeError};
use crate::deadletter::{dead_letter_headers, Origin, Reason};
use crate::handler::{now_ms, Handler, HandlerError, Source};
use crate::internal_events::{
    BatchApplied, ChoreographyViolated, DeadLettered, EventUpcast, InternalEvent, MessageConsumed,
    Reacted, TimersFired,
};
use crate::outbox::{self, OutboxRow};
use crate::processor::{BatchError, Ctx, EVENT_ID_HEADER, EVENT_TYPE_HEADER};
use crate::trace::{now_us, Trace, TRACE_HEADER};

// The large variant is the common one; boxing it would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Item<'a> {
    /// A decoded event the service reacts to, the message it came from, and when that was
    /// received (µs since the epoch).
    Event(Envelope, &'a OwnedMessage, i64),
    Dead(DeadLetter),
}

/// A message refused, with why and where from.
struct DeadLetter {
    reason: Reason,
    detail: String,
    key: Option<String>,
    payload: Option<Vec<u8>>,
    origin: Origin,
    /// The message's own headers.
    headers: Vec<(String, String)>,
}

impl DeadLetter {
    /// The message's key, bytes and position, unchanged.
    fn of(message: &OwnedMessage, reason: Reason, detail: String) -> Self {
        DeadLetter {
            reason,
            detail,
            // PostgreSQL's text refuses NUL (a binary key, say); it is written escaped, or
            // the dead letter itself could never be written.
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).replace('\0', "\\0")),
            payload: message.payload().map(<[u8]>::to_vec),
            origin: Origin {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
            },
            headers: crate::processor::headers_of(message.headers()),
        }
    }
}

/// A batch-wide handler call's failure as the batch's: it fails the whole batch, which is
/// retried (a refusal here is not one event's, so nothing is dead-lettered).
fn handler_result(result: Result<(), HandlerError>) -> Result<(), BatchError> {
    match result {
        Ok(()) => Ok(()),
        Err(HandlerError::Database(error)) => Err(error.into()),
        Err(HandlerError::Store(error)) => Err(BatchError::Store(error)),
        Err(HandlerError::Rejected(detail)) => {
            Err(BatchError::Store(format!("batch rejected: {detail}")))
        }
    }
}

/// What a panic said, when it said it with a string.
/// `work`'s result, or [`BatchError::Panicked`] when it panicked: a panic in a handler or a
/// timer is an error like any other, never the end of the task that ran it.
pub(crate) async fn caught<T>(
    work: impl std::future::Future<Output = Result<T, BatchError>>,
) -> Result<T, BatchError> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(BatchError::Panicked(panic_message(&*panic))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// What a batch did, reported once it is committed.
#[derive(Default)]
struct Report {
    rows: Vec<OutboxRow>,
    /// (event type, occurred at)
    handled: Vec<(&'static str, i64)>,
    emitted: Vec<&'static str>,
    /// (on, emitted or nothing)
    reactions: Vec<(&'static str, Option<&'static str>)>,
    /// (on, emitted) not allowed by the choreography.
    violations: Vec<(String, &'static str)>,
    dead: Vec<DeadLetter>,
    duplicates: usize,
}

impl<H: Handler> Ctx<H> {
    /// Applies `batch`, whose messages were received at `received` (µs since the epoch). A
    /// panic up to the commit (a handler's, say) is caught and returned as
    /// [`BatchError::Panicked`]: its transaction is dropped, so rolled back. What follows the
    /// commit is not covered: a committed batch must not be tried again.
    pub(crate) async fn apply(
        &self,
        batch: &[OwnedMessage],
        received: &[i64],
    ) -> Result<(), BatchError> {
        let started = Instant::now();
        let (report, ids) = caught(self.transaction(batch, received)).await?;
        if !ids.is_empty() {
            self.commits.record(&ids, now_us());
            self.wake.notify_one();
        }
        self.report(&report, started.elapsed().as_secs_f64(), batch.len());
        Ok(())
    }

    /// The batch's transaction, committed: what it did, and the ids of its outbox rows.
    async fn transaction(
        &self,
        batch: &[OwnedMessage],
        received: &[i64],
    ) -> Result<(Report, Vec<i64>), BatchError> {
        let applied = now_us();
        let items = self.decode(batch, received).await?;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let events: Vec<&Envelope> = items
            .iter()
            .filter_map(|item| match item {
                Item::Event(envelope, _, _) => Some(envelope),
                Item::Dead(_) => None,
            })
            .collect();
        handler_result(self.handler.before_batch(&mut tx, &events).await)?;
        let mut report = self.handle_all(&mut tx, items, now, applied).await?;
        let next = next_offsets(batch, |topic| self.topics.base(topic));
        handler_result(self.handler.batch_applied(&mut tx, &next).await)?;
        for dead in &report.dead {
            report.rows.push(self.dead_letter_row(dead));
        }
        let ids = outbox::append(&mut tx, &report.rows).await?;
        tx.commit().await?;
        Ok((report, ids))
    }

    /// Decodes every message; a transient failure (the registry) fails the batch. Events the
    /// service does not react to are dropped here.
    async fn decode<'a>(
        &self,
        batch: &'a [OwnedMessage],
        received: &[i64],
    ) -> Result<Vec<Item<'a>>, BatchError> {
        let choreography = Choreography::current();
        let mut items = Vec::with_capacity(batch.len());
        for (message, &received) in batch.iter().zip(received) {
            MessageConsumed {
                processor: H::NAME,
                topic: self.topics.base(message.topic()),
            }
            .emit(&self.metrics);
            match self.codec.decode_message(message.payload()).await {
                Ok(decoded) => {
                    let event_type = decoded.envelope.event_type();
                    if let Some(from_version) = decoded.upcast_from {
                        EventUpcast {
                            processor: H::NAME,
                            event_type: event_type.name(),
                            from_version,
                        }
                        .emit(&self.metrics);
                    }
                    if choreography.reacts(H::NAME, event_type) {
                        items.push(Item::Event(decoded.envelope, message, received));
                    }
                }
                Err(DecodeError::Rejected { reason, detail }) => {
                    items.push(Item::Dead(DeadLetter::of(message, reason, detail)));
                }
                Err(transient @ DecodeError::Transient(_)) => return Err(transient.into()),
            }
        }
        Ok(items)
    }

    /// The inbox claim, then each new event through the handler, in order.
    async fn handle_all(
        &self,
        tx: &mut PgConnection,
        items: Vec<Item<'_>>,
        now: i64,
        applied: i64,
    ) -> Result<Report, BatchError> {
        let ids: Vec<Uuid> = items
            .iter()
            .filter_map(|item| match item {
                Item::Event(e, _, _) => Some(e.meta.event_id),
                Item::Dead(_) => None,
            })
            .collect();
        let mut fresh = outbox::claim_inbox(&mut *tx, &ids).await?;
        let mut report = Report::default();
        for item in items {
            let (envelope, message, received) = match item {
                Item::Dead(dead) => {
                    report.dead.push(dead);
                    continue;
                }
                Item::Event(envelope, message, received) => (envelope, message, received),
            };
            if !fresh.remove(&envelope.meta.event_id) {
                report.duplicates += 1;
                continue;
            }
            let on = envelope.event_type().name();
            let span = tracing::debug_span!(
                "handle",
                processor = H::NAME,
                event_type = on,
                order_id = %envelope.meta.order_id,
                correlation_id = %envelope.meta.correlation_id,
            );
            let _enter = span.enter();
            let source = Source {
                topic: self.topics.base(message.topic()),
                partition: message.partition(),
                offset: message.offset(),
            };
            match self
                .handler
                .handle_at(&mut *tx, &envelope, source, now)
                .await
            {
                Ok(outputs) => {
                    report.handled.push((on, envelope.meta.occurred_at));
                    let trace = Trace {
                        received: Some(received),
                        applied: Some(applied),
                        ..Trace::default()
                    };
                    self.emitted(&mut report, on, &outputs, trace).await?;
                }
                Err(HandlerError::Rejected(detail)) => {
                    // Not applied: its id leaves the inbox again, so the event is applied
                    // if it is redriven once the state allows it.
                    outbox::release_inbox(&mut *tx, envelope.meta.event_id).await?;
                    report
                        .dead
                        .push(DeadLetter::of(message, Reason::Rejected, detail));
                }
                Err(HandlerError::Database(error)) => return Err(error.into()),
                Err(HandlerError::Store(error)) => return Err(BatchError::Store(error)),
            }
        }
        Ok(report)
    }

    /// Records what a reaction to `on` (or [`TIMER`]) emitted: outbox rows, the arrows of the
    /// choreography it exercised, and anything the choreography does not allow. Each row
    /// carries `trace`, the times known so far; the relay adds the rest.
    async fn emitted(
        &self,
        report: &mut Report,
        on: &'static str,
        outputs: &[Envelope],
        trace: Trace,
    ) -> Result<(), EncodeError> {
        let choreography = Choreography::current();
        let declared = choreography.service(H::NAME).is_some();
        if declared && outputs.is_empty() {
            report.reactions.push((on, None));
        }
        for output in outputs {
            let emitted = output.event_type().name();
            if declared {
                report.reactions.push((on, Some(emitted)));
                if !choreography.allows(H::NAME, on, output.event_type()) {
                    report.violations.push((on.to_owned(), emitted));
                }
            }
            report.emitted.push(emitted);
            let mut row = self.event_row(output).await?;
            row.headers.push((TRACE_HEADER.into(), trace.to_header()));
            report.rows.push(row);
        }
        Ok(())
    }

    /// Fires the handler's due timers in one transaction with their outbox rows.
    pub(crate) async fn fire_timers(&self) -> Result<(), BatchError> {
        let started = Instant::now();
        let applied = now_us();
        let mut tx = self.pool.begin().await?;
        let outputs = match self.handler.tick(&mut tx, now_ms()).await {
            Ok(outputs) => outputs,
            Err(HandlerError::Database(error)) => return Err(error.into()),
            Err(HandlerError::Store(error)) => return Err(BatchError::Store(error)),
            Err(HandlerError::Rejected(detail)) => {
                return Err(BatchError::Store(format!("a timer was rejected: {detail}")))
            }
        };
        if outputs.is_empty() {
            return Ok(());
        }
        let mut report = Report::default();
        let trace = Trace {
            applied: Some(applied),
            ..Trace::default()
        };
        self.emitted(&mut report, TIMER, &outputs, trace).await?;
        let ids = outbox::append(&mut tx, &report.rows).await?;
        tx.commit().await?;
        self.commits.record(&ids, now_us());
        self.wake.notify_one();
        self.report(&report, started.elapsed().as_secs_f64(), 0);
        Ok(())
    }

    /// Everything a committed batch did, as internal events.
    fn report(&self, report: &Report, seconds: f64, messages: usize) {
        for dead in &report.dead {
            self.dead_lettered(dead);
        }
        for (on, emitted) in &report.reactions {
            Reacted {
                processor: H::NAME,
                on,
                emitted: *emitted,
            }
            .emit(&self.metrics);
        }
        for (on, emitted) in &report.violations {
            ChoreographyViolated {
                processor: H::NAME,
                on,
                emitted,
            }
            .emit(&self.metrics);
        }
        if messages > 0 {
            BatchApplied {
                processor: H::NAME,
                seconds,
                messages,
                handled: &report.handled,
                emitted: &report.emitted,
                duplicates: report.duplicates,
                committed_at: crate::handler::now_ms(),
            }
            .emit(&self.metrics);
        } else {
            TimersFired {
                processor: H::NAME,
                emitted: &report.emitted,
            }
            .emit(&self.metrics);
        }
    }

    pub(crate) async fn event_row(&self, envelope: &Envelope) -> Result<OutboxRow, EncodeError> {
        Ok(OutboxRow {
            topic: self.topics.name(envelope.event_type().topic()),
            key: Some(envelope.key()),
            payload: Some(self.codec.encode(envelope).await?),
            headers: vec![
                (
                    EVENT_TYPE_HEADER.into(),
                    envelope.event_type().name().into(),
                ),
                (EVENT_ID_HEADER.into(), envelope.meta.event_id.to_string()),
            ],
        })
    }

    /// Parks one message that keeps failing deterministically (`crate::poison`): its dead
    /// letter alone, in a transaction of its own.
    pub(crate) async fn park(
        &self,
        message: &OwnedMessage,
        detail: &str,
    ) -> Result<(), BatchError> {
        let dead = DeadLetter::of(message, Reason::HandlerFailed, detail.to_owned());
        let mut tx = self.pool.begin().await?;
        // As for any batch, the handler hears that the message was read past (a read model
        // records its position, so reads waiting for that offset are not held up); nothing was
        // collected for it.
        handler_result(self.handler.before_batch(&mut tx, &[]).await)?;
        let next = next_offsets(std::slice::from_ref(message), |topic| {
            self.topics.base(topic)
        });
        handler_result(self.handler.batch_applied(&mut tx, &next).await)?;
        outbox::append(&mut tx, &[self.dead_letter_row(&dead)]).await?;
        tx.commit().await?;
        self.wake.notify_one();
        self.dead_lettered(&dead);
        Ok(())
    }

    /// A committed dead letter, as its internal event.
    fn dead_lettered(&self, dead: &DeadLetter) {
        DeadLettered {
            processor: H::NAME,
            reason: dead.reason.code(),
            detail: &dead.detail,
            topic: &dead.origin.topic,
            partition: dead.origin.partition,
            offset: dead.origin.offset,
        }
        .emit(&self.metrics);
    }

    fn dead_letter_row(&self, dead: &DeadLetter) -> OutboxRow {
        OutboxRow {
            topic: self.topics.name(base_topics::DEADLETTER),
            key: dead.key.clone(),
            payload: dead.payload.clone(),
            headers: dead_letter_headers(
                dead.reason,
                &dead.detail,
                H::NAME,
                &dead.origin,
                &dead.headers,
            ),
        }
    }
}

/// The next offset to read of every partition `batch` read from, by base topic.
fn next_offsets<'a>(
    batch: &'a [OwnedMessage],
    base: impl Fn(&'a str) -> &'a str,
) -> Vec<(String, i32, i64)> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = next
            .entry((base(message.topic()), message.partition()))
            .or_default();
        *entry = (*entry).max(message.offset() + 1);
    }
    next.into_iter()
        .map(|((t, p), o)| (t.to_owned(), p, o))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_and_the_caller_goes_on() {
        let panicked: Result<(), BatchError> = caught(async { panic!("a timer's bug") }).await;
        assert!(
            matches!(&panicked, Err(BatchError::Panicked(m)) if m == "a timer's bug"),
            "{panicked:?}"
        );
        let formatted: Result<(), BatchError> =
            caught(async { panic!("order {} is broken", 7) }).await;
        assert!(matches!(&formatted, Err(BatchError::Panicked(m)) if m == "order 7 is broken"));
        let failed = caught(async { Err::<(), _>(BatchError::Store("down".into())) }).await;
        assert!(matches!(failed, Err(BatchError::Store(_))));
        assert_eq!(caught(async { Ok::<_, BatchError>(3) }).await.unwrap(), 3);
    }
}
