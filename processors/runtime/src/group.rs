//! A processor's membership of its consumer group: the consumer's settings, storing offsets
//! for commit after the database, leaving the group on shutdown, and reporting the lag of the partitions
//! this member owns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::ProcessorConfig;
use crate::internal_events::{InternalEvent, Lag, PartitionLag};
use crate::lag::LagProbe;
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::topics::Topics;

/// The consumer every processor uses.
pub type GroupConsumer = StreamConsumer<GroupContext>;

/// Logs rebalances and failed offset commits.
#[derive(Debug)]
pub struct GroupContext {
    processor: &'static str,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        tracing::info!(processor = self.processor, ?rebalance, "rebalance starting");
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            // Typically during a rebalance. The stored offsets stay ahead of the committed
            // ones, so the next periodic commit sends them again.
            tracing::debug!(%error, processor = self.processor, "offset commit failed; it will be sent again");
        }
    }
}

/// Creates the consumer of processor `processor` and subscribes it to `topics` (full names).
pub fn subscribe(
    config: &ProcessorConfig,
    processor: &'static str,
    topics: &[String],
) -> KafkaResult<GroupConsumer> {
    let kafka_debug = &config.kafka.debug;
    let mut settings = config.kafka.client();
    if !kafka_debug.is_empty() {
        settings.set("debug", kafka_debug);
    }
    if let Some(static_id) = &config.static_member_id {
        // Static membership (KIP-345): a restarted instance takes its old place in the group.
        settings.set("group.instance.id", static_id);
    }
    let consumer: GroupConsumer = settings
        .set("group.id", &config.group_id)
        .set("client.id", &config.instance)
        // Offsets are stored after the database commit ([`store_applied`]), never when a
        // message is handed over; librdkafka commits what is stored every commit interval,
        // sends it again after a failed commit, and commits it before giving up a partition
        // in a rebalance or on close.
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            config.commit_interval.as_millis().to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Incremental rebalancing: a member joining or leaving moves only the partitions that
        // change hands; the others keep flowing.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (config.session_timeout_ms / 10)
                .clamp(100, 3000)
                .to_string(),
        )
        .set("fetch.wait.max.ms", config.kafka.fetch_wait_ms.to_string())
        .set("log_level", if kafka_debug.is_empty() { "4" } else { "7" })
        .create_with_context(GroupContext { processor })?;
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&refs)?;
    Ok(consumer)
}

/// Records `batch` as applied to the database: stores, for each partition, the offset after
/// its last message, for librdkafka's next commit. A partition this member no longer owns (a
/// rebalance took it during the batch) is skipped: its new owner reads those messages again,
/// and its inbox skips what was applied.
pub fn store_applied(consumer: &GroupConsumer, batch: &[OwnedMessage]) {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic(), message.partition()))
            .or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    for ((topic, partition), offset) in next {
        let mut list = TopicPartitionList::new();
        if let Err(error) = list.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::warn!(%error, topic, partition, "cannot record offset");
            continue;
        }
        if let Err(error) = consumer.store_offsets(&list) {
            tracing::debug!(%error, topic, partition, offset, "offset not stored; the partition has moved to another member");
        }
    }
}

/// Closes the consumer: librdkafka commits the stored offsets of the partitions this member
/// owns, synchronously, and leaves the group, so its partitions go to the other members at once
/// instead of after the session timeout. (A static member keeps its place instead, for as long
/// as the session timeout, waiting to be restarted.)
pub async fn leave(consumer: Arc<GroupConsumer>) {
    let closed = tokio::task::spawn_blocking(move || match Arc::try_unwrap(consumer) {
        Ok(consumer) => drop(consumer),
        Err(_) => tracing::warn!(
            "the consumer is still shared; it leaves the group when the last user drops it"
        ),
    });
    if let Err(error) = closed.await {
        tracing::warn!(%error, "closing the consumer failed");
    }
    tracing::info!("left the consumer group");
}

/// Every `config.lag_interval`, asks the broker for the log end and the group's committed
/// offset of each partition this member owns, and sets `troupe_consumer_lag_messages` and
/// `troupe_consumer_lag_seconds` (the age of the record at the committed offset); a
/// partition no longer owned drops out of the metric. It runs beside the consume loop, not in
/// it, so the figure stays current while the loop is busy or stuck (librdkafka's own statistics
/// reach the application behind every prefetched message).
pub async fn report_lag(
    membership: Arc<Membership>,
    config: ProcessorConfig,
    processor: &'static str,
    topics: Topics,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let probe = match LagProbe::connect(
        &config.kafka,
        vec![(config.group_id.clone(), Vec::new())],
        BTreeMap::new(),
    ) {
        Ok(probe) => Arc::new(probe),
        Err(error) => {
            tracing::warn!(%error, processor, "no lag probe; troupe_consumer_lag_messages stays empty");
            return;
        }
    };
    let mut reported: BTreeSet<(String, i32)> = BTreeSet::new();
    let owned_now: Arc<std::sync::Mutex<BTreeSet<(String, i32)>>> = Arc::default();
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(config.lag_interval) => {}
        }
        let owned: Vec<(String, i32)> = match membership.current().assignment() {
            Ok(list) => list
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
            Err(_) => continue,
        };
        *owned_now.lock().expect("owned lock") = owned.iter().cloned().collect();
        let positions = {
            let (probe, owned) = (probe.clone(), owned.clone());
            tokio::task::spawn_blocking(move || probe.positions_of(&owned)).await
        };
        let positions = match positions {
            Ok(Ok(positions)) => positions,
            Ok(Err(error)) => {
                tracing::debug!(%error, processor, "lag not measured this time");
                continue;
            }
            Err(_) => continue,
        };
        for (key, (end, done)) in &positions {
            emit_lag(
                &metrics,
                &topics,
                processor,
                key,
                Lag::Messages((end - done).max(0)),
            );
        }
        // The seconds read a record of each partition behind: on a task of their own, so the
        // messages above keep their pace; one at a time.
        if !measuring.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let (probe, metrics, topics) = (probe.clone(), metrics.clone(), topics.clone());
            let (owned_now, measuring) = (owned_now.clone(), measuring.clone());
            let keyed: BTreeMap<_, _> = positions
                .iter()
                .map(|((t, p), (end, done))| ((t.clone(), *p), (t.clone(), *p, *end, *done)))
                .collect();
            tokio::spawn(async move {
                let seconds = tokio::task::spawn_blocking(move || {
                    probe.time_lag(&keyed, crate::handler::now_ms())
                })
                .await
                .unwrap_or_default();
                let owned = owned_now.lock().expect("owned lock").clone();
                for (key, lag) in seconds.iter().filter(|(key, _)| owned.contains(key)) {
                    emit_lag(&metrics, &topics, processor, key, Lag::Seconds(*lag));
                }
                measuring.store(false, std::sync::atomic::Ordering::Release);
            });
        }
        let now: BTreeSet<(String, i32)> = owned.into_iter().collect();
        for gone in reported.difference(&now) {
            emit_lag(&metrics, &topics, processor, gone, Lag::Gone);
        }
        reported = now;
    }
}

fn emit_lag(
    metrics: &Metrics,
    topics: &Topics,
    processor: &'static str,
    (topic, partition): &(String, i32),
    lag: Lag,
) {
    PartitionLag {
        processor,
        topic: topics.base(topic),
        partition: *partition,
        lag,
    }
    .emit(metrics);
}
