//! The metrics a troupe processor exports (declared, with their help text, in
//! `troupe_observability::catalogue`), and the server of `/metrics` and the probes (`/live`,
//! `/ready`, `/health`; see [`crate::health`]) on a port of its own.
//!
//! Labels are bounded: processor names, topic names, event types and fixed reason codes —
//! never ids or error text.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use troupe_observability::catalogue::{self, Kind};

use crate::health::Health;

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
    consumer_lag_seconds: GaugeVec,
    hops: HistogramVec,
    outbox_pending: IntGaugeVec,
    reactions: IntCounterVec,
    violations: IntCounterVec,
    health: Arc<Health>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Registers the catalogue's counter `name` in `registry` (every troupe process registers its
/// metrics through these four).
pub fn counter(registry: &Registry, name: &str) -> IntCounterVec {
    let def = catalogue::get(name);
    let metric = IntCounterVec::new(Opts::new(def.name, def.help), def.labels).expect("valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

/// Registers the catalogue's gauge `name` (integer values).
pub fn gauge(registry: &Registry, name: &str) -> IntGaugeVec {
    let def = catalogue::get(name);
    let metric = IntGaugeVec::new(Opts::new(def.name, def.help), def.labels).expect("valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

/// Registers the catalogue's gauge `name` (float values).
pub fn float_gauge(registry: &Registry, name: &str) -> GaugeVec {
    let def = catalogue::get(name);
    let metric = GaugeVec::new(Opts::new(def.name, def.help), def.labels).expect("valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

/// Registers the catalogue's histogram `name` with its buckets.
pub fn histogram(registry: &Registry, name: &str) -> HistogramVec {
    let def = catalogue::get(name);
    let Kind::Histogram { buckets } = def.kind else {
        panic!("{name} is not a histogram in the catalogue");
    };
    let opts = HistogramOpts::new(def.name, def.help).buckets(buckets.to_vec());
    let metric = HistogramVec::new(opts, def.labels).expect("valid metric");
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
                consumed: counter(r, "troupe_messages_consumed_total"),
                handled: counter(r, "troupe_events_handled_total"),
                upcasts: counter(r, "troupe_events_upcast_total"),
                duplicates: counter(r, "troupe_events_duplicate_total"),
                dead_letters: counter(r, "troupe_dead_letters_total"),
                emitted: counter(r, "troupe_events_emitted_total"),
                published: counter(r, "troupe_outbox_published_total"),
                retries: counter(r, "troupe_retries_total"),
                batch_duration: histogram(r, "troupe_batch_duration_seconds"),
                batch_size: histogram(r, "troupe_batch_messages"),
                consumer_lag: gauge(r, "troupe_consumer_lag_messages"),
                consumer_lag_seconds: float_gauge(r, "troupe_consumer_lag_seconds"),
                hops: histogram(r, "troupe_event_hop_seconds"),
                outbox_pending: gauge(r, "troupe_outbox_pending_messages"),
                reactions: counter(r, "troupe_reactions_total"),
                violations: counter(r, "troupe_choreography_violations_total"),
                health: Arc::new(Health::default()),
                registry,
            }),
        }
    }

    /// Exports 0 for the counters of bounded label sets a processor may never increment (no
    /// duplicate, no dead letter of a reason, no retry at a stage), so dashboards and alerts
    /// see a series with 0 rather than none.
    pub fn announce(&self, processor: &str) {
        let inner = &self.inner;
        let _ = inner.duplicates.with_label_values(&[processor]);
        for reason in crate::deadletter::Reason::ALL {
            let _ = inner
                .dead_letters
                .with_label_values(&[processor, reason.code()]);
        }
        for stage in crate::internal_events::RETRY_STAGES {
            let _ = inner.retries.with_label_values(&[processor, stage]);
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

    pub fn consumer_lag_seconds(&self, processor: &str, topic: &str, partition: i32, lag: f64) {
        self.inner
            .consumer_lag_seconds
            .with_label_values(&[processor, topic, &partition.to_string()])
            .set(lag);
    }

    /// Drops the lag of a partition this member no longer owns.
    pub fn forget_consumer_lag(&self, processor: &str, topic: &str, partition: i32) {
        let labels = [processor, topic, &partition.to_string()];
        let _ = self.inner.consumer_lag.remove_label_values(&labels);
        let _ = self.inner.consumer_lag_seconds.remove_label_values(&labels);
    }

    /// One hop of the saga: an event applied `seconds` after it occurred.
    pub fn hop(&self, processor: &str, event_type: &str, seconds: f64) {
        self.inner
            .hops
            .with_label_values(&[processor, event_type])
            .observe(seconds);
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

    /// What the probes read.
    pub fn health(&self) -> &Arc<Health> {
        &self.inner.health
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

/// Serves `/metrics` and the probes on `listener` until `stop`.
pub async fn serve(listener: TcpListener, metrics: Metrics, stop: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/health", get(ready))
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

async fn live(State(metrics): State<Metrics>) -> (StatusCode, String) {
    match metrics.health().live() {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn ready(State(metrics): State<Metrics>) -> (StatusCode, &'static str) {
    match metrics.health().ready() {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Writes a Prometheus file-discovery target for this process into `dir` (the local stack's
/// `$TROUPE_HOME/prometheus/targets/`), if there is one, labelled with `processor` and
/// `instance_name`. `key` tells deployments apart on one stack (a processor passes its group):
/// an instance restarted under the same names replaces its file. Returns the file written, for
/// [`unregister_scrape_target`] at shutdown.
pub fn register_scrape_target(
    dir: Option<&std::path::Path>,
    processor: &str,
    instance: &str,
    key: &str,
    address: SocketAddr,
) -> Option<std::path::PathBuf> {
    let dir = dir?;
    let body = serde_json::json!([{
        "targets": [address.to_string()],
        "labels": {"processor": processor, "instance_name": instance},
    }]);
    let path = dir.join(format!("{processor}-{instance}-{key}.json"));
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
