//! Driving and observing a saga run: waiting for orders, the traffic generator's exit, the
//! schema versions on the topics, counters in a metrics text and the dead letters.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use troupe_e2e::Saga;
use troupe_events::{catalog, topics};
use troupe_testkit::wait_until;

/// Waits until the order service knows `count` orders.
pub async fn wait_orders(saga: &Saga, count: usize) {
    wait_until(
        &format!("{count} orders placed"),
        Duration::from_secs(120),
        || async { (saga.snapshot().await.orders.len() >= count).then_some(()) },
    )
    .await;
}

/// Events on the saga's topics `bases` by (event type, the schema version they were written
/// with); fails on any message that does not decode.
pub async fn versions_on(saga: &Saga, bases: &[&str]) -> BTreeMap<(&'static str, u32), usize> {
    let mut versions = BTreeMap::new();
    for decoded in saga.read_all(bases).await {
        let decoded = decoded.expect("every message on the topics decodes");
        let event_type = decoded.envelope.event_type();
        let version = decoded
            .upcast_from
            .unwrap_or(catalog::current(event_type).version);
        *versions.entry((event_type.name(), version)).or_default() += 1;
    }
    versions
}

/// Fails unless every (event type, version) of `expected` occurs in `versions`.
pub fn assert_versions(versions: &BTreeMap<(&str, u32), usize>, expected: &[(&str, u32)]) {
    for key in expected {
        assert!(
            versions.get(key).copied().unwrap_or(0) > 0,
            "no {} v{} on the topics: {versions:?}",
            key.0,
            key.1
        );
    }
}

/// The sum of a counter's samples whose labels include all of `labels`.
pub fn counter(text: &str, name: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The dead letters on the saga's dead-letter topic: (reason, processor, error) headers.
pub fn dead_letter_headers(saga: &Saga) -> Vec<(String, String, String)> {
    let consumer = saga.reader();
    let topic = format!("{}{}", saga.prefix, topics::DEADLETTER);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let expected = saga.dead_letters();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (seen.len() as i64) < expected && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.unwrap();
        let get = |name: &str| troupe_e2e::header(&message, name);
        seen.push((
            get("troupe.dlq.reason"),
            get("troupe.dlq.processor"),
            get("troupe.dlq.error"),
        ));
    }
    seen
}
