//! Every metric a troupe processor exports, declared once with its help text, and the
//! `/metrics` + `/health` server on a port of its own.
//!
//! Labels are bounded: processor names, topic names, event types and fixed reason codes —
//! never ids or error text.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The process's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    consumed: IntCounterVec,
    handled: IntCounterVec,
    upcasts: IntCounterVec,
    duplicates: IntCounterVec,
    dead_letters: IntCounterVec,
    emitted: IntCounterVec,
    published: IntCounterVec,
    retries: IntCounterVec,
    batch_duration: HistogramVec,
    batch_size: HistogramVec,
    consumer_lag: IntGaugeVec,
    outbox_pending: IntGaugeVec,
    reactions: IntCounterVec,
    violations: IntCounterVec,
    ready: AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let metric =
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        Self {
            inner: Arc::new(Inner {
                consumed: counter(
                    r,
                    "troupe_messages_consumed_total",
                    "Messages read from Kafka, before decoding.",
                    &["processor", "topic"],
                ),
                handled: counter(
                    r,
                    "troupe_events_handled_total",
                    "Events applied by the handler (duplicates excluded).",
                    &["processor", "event_type"],
                ),
                upcasts: counter(
                    r,
                    "troupe_events_upcast_total",
                    "Events written with an older schema version and upcast to the current one before the handler saw them, by the version they were upcast from.",
                    &["processor", "event_type", "from_version"],
                ),
                duplicates: counter(
                    r,
                    "troupe_events_duplicate_total",
                    "Events skipped because the inbox had already seen their id.",
                    &["processor"],
                ),
                dead_letters: counter(
                    r,
                    "troupe_dead_letters_total",
                    "Messages sent to the dead-letter topic, by reason code.",
                    &["processor", "reason"],
                ),
                emitted: counter(
                    r,
                    "troupe_events_emitted_total",
                    "Events written to the outbox.",
                    &["processor", "event_type"],
                ),
                published: counter(
                    r,
                    "troupe_outbox_published_total",
                    "Outbox rows the broker acknowledged.",
                    &["processor"],
                ),
                retries: counter(
                    r,
                    "troupe_retries_total",
                    "Transient failures retried with backoff, by where they happened.",
                    &["processor", "stage"],
                ),
                batch_duration: histogram(
                    r,
                    "troupe_batch_duration_seconds",
                    "Time to decode, apply and commit one batch.",
                    &["processor"],
                    vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                ),
                batch_size: histogram(
                    r,
                    "troupe_batch_messages",
                    "Messages per batch.",
                    &["processor"],
                    vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                ),
                consumer_lag: gauge(
                    r,
                    "troupe_consumer_lag_messages",
                    "Messages between the group's committed offset and the partition's log end, for each partition this member owns, asked of the broker every TROUPE_LAG_INTERVAL_MS.",
                    &["processor", "topic", "partition"],
                ),
                outbox_pending: gauge(
                    r,
                    "troupe_outbox_pending_messages",
                    "Outbox rows not yet published.",
                    &["processor"],
                ),
                reactions: counter(
                    r,
                    "troupe_reactions_total",
                    "Reactions of choreography.yaml exercised: the event reacted to (or timer) and what it emitted (or nothing).",
                    &["processor", "on", "emitted"],
                ),
                violations: counter(
                    r,
                    "troupe_choreography_violations_total",
                    "Events emitted that choreography.yaml does not allow for the reaction that emitted them.",
                    &["processor", "on", "emitted"],
                ),
                ready: AtomicBool::new(false),
                registry,
            }),
        }
    }

    pub fn consumed(&self, processor: &str, topic: &str) {
        self.inner
            .consumed
            .with_label_values(&[processor, topic])
            .inc();
    }

    pub fn upcast(&self, processor: &str, event_type: &str, from_version: u32) {
        self.inner
            .upcasts
            .with_label_values(&[processor, event_type, &from_version.to_string()])
            .inc();
    }

    pub fn handled(&self, processor: &str, event_type: &str) {
        self.inner
            .handled
            .with_label_values(&[processor, event_type])
            .inc();
    }

    pub fn duplicate(&self, processor: &str) {
        self.inner.duplicates.with_label_values(&[processor]).inc();
    }

    pub fn dead_letter(&self, processor: &str, reason: &str) {
        self.inner
            .dead_letters
            .with_label_values(&[processor, reason])
            .inc();
    }

    pub fn emitted(&self, processor: &str, event_type: &str) {
        self.inner
            .emitted
            .with_label_values(&[processor, event_type])
            .inc();
    }

    pub fn outbox_published(&self, processor: &str, count: usize) {
        self.inner
            .published
            .with_label_values(&[processor])
            .inc_by(count as u64);
    }

    pub fn retry(&self, processor: &str, stage: &str) {
        self.inner
            .retries
            .with_label_values(&[processor, stage])
            .inc();
    }

    pub fn batch(&self, processor: &str, seconds: f64, size: usize) {
        self.inner
            .batch_duration
            .with_label_values(&[processor])
            .observe(seconds);
        self.inner
            .batch_size
            .with_label_values(&[processor])
            .observe(size as f64);
    }

    pub fn consumer_lag(&self, processor: &str, topic: &str, partition: i32, lag: i64) {
        self.inner
            .consumer_lag
            .with_label_values(&[processor, topic, &partition.to_string()])
            .set(lag);
    }

    /// Drops the lag of a partition this member no longer owns.
    pub fn forget_consumer_lag(&self, processor: &str, topic: &str, partition: i32) {
        let _ = self.inner.consumer_lag.remove_label_values(&[
            processor,
            topic,
            &partition.to_string(),
        ]);
    }

    pub fn outbox_pending(&self, processor: &str, pending: i64) {
        self.inner
            .outbox_pending
            .with_label_values(&[processor])
            .set(pending);
    }

    pub fn reacted(&self, processor: &str, on: &str, emitted: &str) {
        self.inner
            .reactions
            .with_label_values(&[processor, on, emitted])
            .inc();
    }

    pub fn violated(&self, processor: &str, on: &str, emitted: &str) {
        self.inner
            .violations
            .with_label_values(&[processor, on, emitted])
            .inc();
    }

    /// Marks the process ready (or not) for `/health`.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Relaxed);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.inner.registry.gather(), &mut buffer)
            .expect("text encoding");
        String::from_utf8(buffer).expect("utf-8 exposition")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `/metrics` and `/health` on `listener` until `stop`.
pub async fn serve(listener: TcpListener, metrics: Metrics, stop: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/health", get(health))
        .with_state(metrics);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

async fn render(
    State(metrics): State<Metrics>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

async fn health(State(metrics): State<Metrics>) -> (StatusCode, &'static str) {
    if metrics.inner.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// Writes a Prometheus file-discovery target for this process into `dir` (the local stack's
/// `$TROUPE_HOME/prometheus/targets/`), if there is one. Returns the file written, for
/// [`unregister_scrape_target`] at shutdown.
pub fn register_scrape_target(
    dir: Option<&std::path::Path>,
    processor: &str,
    instance: &str,
    address: SocketAddr,
) -> Option<std::path::PathBuf> {
    let dir = dir?;
    let body = serde_json::json!([{
        "targets": [address.to_string()],
        "labels": {"processor": processor, "instance_name": instance},
    }]);
    let path = dir.join(format!("{processor}-{instance}.json"));
    if let Err(error) = std::fs::write(&path, body.to_string()) {
        tracing::warn!(%error, path = %path.display(), "cannot register with prometheus");
        return None;
    }
    Some(path)
}

/// Removes a file written by [`register_scrape_target`] (a killed process leaves its file;
/// Prometheus then shows the target as down).
pub fn unregister_scrape_target(path: Option<std::path::PathBuf>) {
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
}
