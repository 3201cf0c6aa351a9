//! Every metric a troupe process exports: its name, kind, labels and help text, declared once.
//!
//! Labels are bounded: processor, group and topic names, partitions, event types and fixed
//! codes (reasons, stages, states), never ids or error text.

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram { buckets: &'static [f64] },
}

/// Which process exports a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exporter {
    /// Every processor (order, inventory, payment, shipping, notification) and the projector.
    Processor,
    /// The query API (`troupe-query`), including the saga tracker.
    QueryApi,
    /// `troupe lag export`: the broker's view of every group, independent of the processors.
    LagExporter,
}

/// One metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    pub exporter: Exporter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const SAGA_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

use Exporter::{LagExporter, Processor, QueryApi};
use Kind::{Counter, Gauge, Histogram};

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
    exporter: Exporter,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
        exporter,
    }
}

/// Every metric, grouped by the process that exports it.
pub const METRICS: &[Metric] = &[
    // The processors and the projector (processors/runtime/src/metrics.rs).
    m("troupe_messages_consumed_total", Counter, &["processor", "topic"],
      "Messages read from Kafka, before decoding.", Processor),
    m("troupe_events_handled_total", Counter, &["processor", "event_type"],
      "Events applied by the handler (duplicates excluded).", Processor),
    m("troupe_events_upcast_total", Counter, &["processor", "event_type", "from_version"],
      "Events written with an older schema version and upcast to the current one before the handler saw them, by the version they were upcast from.", Processor),
    m("troupe_events_duplicate_total", Counter, &["processor"],
      "Events skipped because the inbox had already seen their id.", Processor),
    m("troupe_dead_letters_total", Counter, &["processor", "reason"],
      "Messages sent to the dead-letter topic, by reason code.", Processor),
    m("troupe_events_emitted_total", Counter, &["processor", "event_type"],
      "Events written to the outbox.", Processor),
    m("troupe_outbox_published_total", Counter, &["processor"],
      "Outbox rows the broker acknowledged.", Processor),
    m("troupe_retries_total", Counter, &["processor", "stage"],
      "Transient failures retried with backoff, by where they happened.", Processor),
    m("troupe_batch_duration_seconds", Histogram { buckets: &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5] }, &["processor"],
      "Time to decode, apply and commit one batch.", Processor),
    m("troupe_batch_messages", Histogram { buckets: &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0] }, &["processor"],
      "Messages per batch.", Processor),
    m("troupe_event_hop_seconds", Histogram { buckets: LATENCY_BUCKETS }, &["processor", "event_type"],
      "From the time an event occurred (its producer wrote it) to the commit of the batch that applied it here: one hop of the saga.", Processor),
    m("troupe_consumer_lag_messages", Gauge, &["processor", "topic", "partition"],
      "Messages between the group's committed offset and the partition's log end, for each partition this member owns, asked of the broker every TROUPE_LAG_INTERVAL_MS.", Processor),
    m("troupe_consumer_lag_seconds", Gauge, &["processor", "topic", "partition"],
      "How far behind in time the group is on each partition this member owns, asked with the lag in messages: 0 when caught up, else the age of the record at the committed offset (the oldest not yet committed), read from the broker.", Processor),
    m("troupe_outbox_pending_messages", Gauge, &["processor"],
      "Outbox rows not yet published.", Processor),
    m("troupe_reactions_total", Counter, &["processor", "on", "emitted"],
      "Reactions of choreography.yaml exercised: the event reacted to (or timer) and what it emitted (or nothing).", Processor),
    m("troupe_choreography_violations_total", Counter, &["processor", "on", "emitted"],
      "Events emitted that choreography.yaml does not allow for the reaction that emitted them.", Processor),
    // The query API and its saga tracker (processors/readmodels).
    m("troupe_query_requests_total", Counter, &["route", "status"],
      "Query API requests by route and HTTP status.", QueryApi),
    m("troupe_query_request_seconds", Histogram { buckets: LATENCY_BUCKETS }, &["route"],
      "Query API request latency, including any wait for min_position.", QueryApi),
    m("troupe_query_position_wait_seconds", Histogram { buckets: LATENCY_BUCKETS }, &["route", "outcome"],
      "Time a read with min_position waited for the store to apply that position (outcome: reached or timeout).", QueryApi),
    m("troupe_sagas", Gauge, &["state"],
      "Orders by saga state: in_flight (no outcome yet, progressing), stalled (no outcome and no progress for longer than the allowance of the step it waits on), completed, cancelled, rejected.", QueryApi),
    m("troupe_sagas_stalled", Gauge, &["waiting_on"],
      "Stalled orders by the step they wait on (the status they are stuck at).", QueryApi),
    m("troupe_saga_outcomes_total", Counter, &["outcome"],
      "Orders that reached an outcome (completed, cancelled, rejected) since the tracker started.", QueryApi),
    m("troupe_saga_compensations_total", Counter, &["effect"],
      "Effects undone (stock, payment, shipment) since the tracker started.", QueryApi),
    m("troupe_saga_duration_seconds", Histogram { buckets: SAGA_BUCKETS }, &["outcome"],
      "From the order's request to its outcome, for orders that reached one since the tracker started.", QueryApi),
    // The lag exporter (`troupe lag export`).
    m("troupe_group_lag_messages", Gauge, &["group", "topic", "partition"],
      "Messages between the group's committed offset and the partition's log end, as the broker sees them.", LagExporter),
    m("troupe_group_lag_seconds", Gauge, &["group", "topic", "partition"],
      "Age of the oldest record the group has not committed (the record at its committed offset); 0 when it has caught up.", LagExporter),
    m("troupe_group_committed_offset", Gauge, &["group", "topic", "partition"],
      "The group's committed offset.", LagExporter),
    m("troupe_topic_log_end_offset", Gauge, &["topic", "partition"],
      "The partition's log-end offset (high watermark).", LagExporter),
    m("troupe_group_lag_velocity", Gauge, &["group", "topic"],
      "How fast the group's lag on the topic changes, in messages per second over the last two observations (positive: growing).", LagExporter),
    m("troupe_group_time_to_close_seconds", Gauge, &["group", "topic"],
      "At the current velocity, seconds until the group's lag on the topic reaches 0 (0 when there is none, +Inf when it is not shrinking).", LagExporter),
    m("troupe_group_members", Gauge, &["group"],
      "Members of the consumer group the broker knows (0: no instance of that processor is running).", LagExporter),
    m("troupe_lag_exporter_errors_total", Counter, &[],
      "Observations of the broker that failed (the figures keep their last values).", LagExporter),
];

/// The metric called `name`. Panics when there is none: a name in code that is not in the
/// catalogue is a bug the first test run shows.
pub fn get(name: &str) -> &'static Metric {
    METRICS
        .iter()
        .find(|metric| metric.name == name)
        .unwrap_or_else(|| panic!("{name} is not in troupe_observability::catalogue::METRICS"))
}

/// The series names Prometheus stores for a metric: a histogram has `_bucket`, `_sum` and
/// `_count`.
pub fn series_names(metric: &Metric) -> Vec<String> {
    match metric.kind {
        Kind::Histogram { .. } => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{}{suffix}", metric.name))
            .collect(),
        _ => vec![metric.name.to_owned()],
    }
}

/// The metric a series name belongs to (`troupe_batch_messages_bucket` → `troupe_batch_messages`).
pub fn metric_of_series(series: &str) -> Option<&'static Metric> {
    METRICS
        .iter()
        .find(|metric| series_names(metric).iter().any(|name| name == series))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prometheus_conventional() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a metric is declared twice");
        for metric in METRICS {
            assert!(metric.name.starts_with("troupe_"), "{}", metric.name);
            let counter = metric.kind == Kind::Counter;
            assert_eq!(counter, metric.name.ends_with("_total"), "{}", metric.name);
            assert!(
                metric.help.ends_with('.') || metric.help.ends_with(')'),
                "{}",
                metric.name
            );
        }
    }

    #[test]
    fn histogram_series_map_back_to_their_metric() {
        assert_eq!(
            metric_of_series("troupe_batch_messages_bucket").map(|m| m.name),
            Some("troupe_batch_messages")
        );
        assert!(metric_of_series("troupe_batch_messages").is_none());
        assert!(metric_of_series("troupe_no_such_metric").is_none());
    }
}
