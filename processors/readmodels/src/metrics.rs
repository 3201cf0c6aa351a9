//! The query API's metrics and its saga tracker's, declared in
//! `troupe_observability::catalogue`, served at the API's `/metrics`.

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};
use troupe_runtime::metrics::{counter, gauge, histogram};

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
