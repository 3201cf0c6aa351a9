//! The query API's metrics and its saga tracker's, declared in
//! `troupe_observability::catalogue`, served at the API's `/metrics`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use troupe_observability::catalogue::{self, Kind};

/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    registry: Registry,
    pub(crate) requests: IntCounterVec,
    pub(crate) seconds: HistogramVec,
    pub(crate) position_waits: HistogramVec,
    pub(crate) sagas: IntGaugeVec,
    pub(crate) stalled: IntGaugeVec,
    pub(crate) outcomes: IntCounterVec,
    pub(crate) compensations: IntCounterVec,
    pub(crate) durations: HistogramVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn counter(registry: &Registry, name: &str) -> IntCounterVec {
    let def = catalogue::get(name);
    let metric = IntCounterVec::new(Opts::new(def.name, def.help), def.labels).expect("valid");
    register(registry, metric)
}

fn gauge(registry: &Registry, name: &str) -> IntGaugeVec {
    let def = catalogue::get(name);
    let metric = IntGaugeVec::new(Opts::new(def.name, def.help), def.labels).expect("valid");
    register(registry, metric)
}

fn histogram(registry: &Registry, name: &str) -> HistogramVec {
    let def = catalogue::get(name);
    let Kind::Histogram { buckets } = def.kind else {
        panic!("{name} is not a histogram in the catalogue");
    };
    let opts = HistogramOpts::new(def.name, def.help).buckets(buckets.to_vec());
    register(
        registry,
        HistogramVec::new(opts, def.labels).expect("valid"),
    )
}

impl ApiMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        Self {
            requests: counter(r, "troupe_query_requests_total"),
            seconds: histogram(r, "troupe_query_request_seconds"),
            position_waits: histogram(r, "troupe_query_position_wait_seconds"),
            sagas: gauge(r, "troupe_sagas"),
            stalled: gauge(r, "troupe_sagas_stalled"),
            outcomes: counter(r, "troupe_saga_outcomes_total"),
            compensations: counter(r, "troupe_saga_compensations_total"),
            durations: histogram(r, "troupe_saga_duration_seconds"),
            registry,
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}
