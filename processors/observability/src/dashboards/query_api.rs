//! The query API: requests, errors, latency, and reads that wait for their own writes.

use super::query::{quantile, rate, sum_rate};
use super::{Colouring, Dashboard, Panel, Section, Unit};

pub(super) fn dashboard() -> Dashboard {
    // 0 rather than no series for a route without a server error.
    let all = rate("troupe_query_requests_total", "");
    let errors = format!(
        "(sum by (route) ({}) or 0 * sum by (route) ({all})) / sum by (route) ({all})",
        rate("troupe_query_requests_total", r#"status=~"5..""#),
    );
    let latency = |q| quantile(q, "troupe_query_request_seconds", "route");
    let wait = |q| quantile(q, "troupe_query_position_wait_seconds", "outcome");
    Dashboard {
        uid: "troupe-query-api",
        title: "troupe / Query API",
        description: "The query API (troupe-query): requests by route and status, server errors, latency, and reads with min_position that wait for the projector to apply their own writes.",
        sections: vec![
            Section::new(
                "Requests",
                vec![
                    Panel::timeseries("Requests by route and status", Unit::RequestsPerSecond)
                        .describe("Requests per second by matched route and HTTP status.")
                        .query(sum_rate("route, status", "troupe_query_requests_total", ""), "{{route}} {{status}}"),
                    Panel::timeseries("Error ratio (5xx)", Unit::Ratio)
                        .describe("Share of each route's requests answered with a 5xx status.")
                        .query(errors, "{{route}}")
                        .colour(Colouring::BadAbove(0.01)),
                    Panel::timeseries("Latency by route", Unit::Seconds)
                        .describe("Request latency per route, including any wait for min_position: median and 99th percentile.")
                        .query(latency(0.5), "p50 {{route}}")
                        .query(latency(0.99), "p99 {{route}}")
                        .width(24),
                ],
            ),
            Section::new(
                "Read your writes",
                vec![
                    Panel::timeseries("Position waits by outcome", Unit::PerSecond("waits"))
                        .describe("Reads with min_position that had to wait, by outcome: reached (the store applied the position in time) or timeout.")
                        .query(sum_rate("outcome", "troupe_query_position_wait_seconds_count", ""), "{{outcome}}"),
                    Panel::timeseries("Position wait time", Unit::Seconds)
                        .describe("How long reads with min_position waited for the store to apply that position, by outcome: median and 99th percentile.")
                        .query(wait(0.5), "p50 {{outcome}}")
                        .query(wait(0.99), "p99 {{outcome}}"),
                ],
            ),
        ],
    }
}
