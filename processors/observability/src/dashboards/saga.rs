//! The saga: outcomes, orders in flight and stalled, compensations, latency end to end and per
//! hop, dead letters and choreography violations.

use super::query::{increase, quantile, sel, sum_rate};
use super::{Colouring, Dashboard, Panel, Section, Unit};

pub(super) fn dashboard() -> Dashboard {
    Dashboard {
        uid: "troupe-saga",
        title: "troupe / Saga",
        description: "The order saga as the query API's tracker sees it (outcomes, orders in flight and stalled, compensations, end-to-end latency) and as the processors see it (latency per hop, dead letters, choreography violations).",
        sections: vec![orders(), latency(), failures()],
    }
}

fn orders() -> Section {
    Section::new(
        "Orders",
        vec![
            Panel::stat("In flight", Unit::Count)
                .describe("Orders with no outcome yet that are still progressing.")
                .query(format!("sum({})", sel("troupe_sagas", r#"state="in_flight""#)), "in flight"),
            Panel::stat("Stalled", Unit::Count)
                .describe("Orders with no outcome and no progress for longer than the allowance of the step they wait on. The TroupeSagasStalled alert fires when any stay stalled for 5 minutes.")
                .query(format!("sum({})", sel("troupe_sagas", r#"state="stalled""#)), "stalled")
                .colour(Colouring::BadAbove(1.0)),
            Panel::timeseries("Orders per second by outcome", Unit::PerSecond("orders"))
                .describe("Orders reaching an outcome: completed, cancelled or rejected.")
                .query(sum_rate("outcome", "troupe_saga_outcomes_total", ""), "{{outcome}}"),
            Panel::timeseries("In flight and stalled", Unit::Count)
                .describe("Orders without an outcome, progressing (in_flight) or stuck (stalled).")
                .query(format!("sum by (state) ({})", sel("troupe_sagas", r#"state=~"in_flight|stalled""#)), "{{state}}"),
            Panel::timeseries("Stalled by step", Unit::Count)
                .describe("Stalled orders by the step they wait on: where the choreography is stuck.")
                .query(format!("sum by (waiting_on) ({})", sel("troupe_sagas_stalled", "")), "{{waiting_on}}"),
            Panel::timeseries("Compensations per second by effect", Unit::PerSecond("compensations"))
                .describe("Effects undone because the saga failed later on: stock released, payment refunded, shipment cancelled.")
                .query(sum_rate("effect", "troupe_saga_compensations_total", ""), "{{effect}}"),
        ],
    )
}

fn latency() -> Section {
    let hop = |q| quantile(q, "troupe_event_hop_seconds", "processor, event_type");
    Section::new(
        "Latency",
        vec![
            Panel::timeseries("End-to-end latency", Unit::Seconds)
                .describe("From an order's request to its outcome, for orders that reached one: 50th, 95th and 99th percentiles.")
                .query(quantile(0.5, "troupe_saga_duration_seconds", ""), "p50")
                .query(quantile(0.95, "troupe_saga_duration_seconds", ""), "p95")
                .query(quantile(0.99, "troupe_saga_duration_seconds", ""), "p99")
                .width(24),
            Panel::timeseries("Hop latency p50", Unit::Seconds)
                .describe("Median time from an event's production to the commit of the batch that applied it, per processor and event type: one hop of the saga.")
                .query(hop(0.5), "{{processor}} {{event_type}}"),
            Panel::timeseries("Hop latency p99", Unit::Seconds)
                .describe("99th percentile of one hop of the saga (event produced to batch committed), per processor and event type.")
                .query(hop(0.99), "{{processor}} {{event_type}}"),
        ],
    )
}

fn failures() -> Section {
    Section::new(
        "Failures",
        vec![
            Panel::timeseries("Dead letters by reason", Unit::PerSecond("msg"))
                .describe("Messages sent to the dead-letter topic, by processor and reason code. Any sustained rate fires TroupeDeadLetters; inspect and redrive them with `troupe deadletters`.")
                .query(sum_rate("processor, reason", "troupe_dead_letters_total", ""), "{{processor}} {{reason}}"),
            Panel::timeseries("Choreography violations", Unit::Count)
                .describe("Events emitted that choreography.yaml does not allow for the reaction that emitted them, per interval: a bug in the processor, not in the data.")
                .query(format!("sum by (processor, on, emitted) ({})", increase("troupe_choreography_violations_total", "")), "{{processor}}: {{on}} → {{emitted}}")
                .colour(Colouring::BadAbove(1.0)),
        ],
    )
}
