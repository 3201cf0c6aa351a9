//! The processors: are they up, how long their batches take, what flows through them, and
//! what they retry, upcast and skip.

use super::query::{quantile, rate, sel, sum_rate};
use super::{Colouring, Dashboard, Panel, Section, Unit};

const EVENTS_PER_S: Unit = Unit::PerSecond("events");

pub(super) fn dashboard() -> Dashboard {
    Dashboard {
        uid: "troupe-processors",
        title: "troupe / Processors",
        description: "The order, inventory, payment, shipping and notification processors and the projector: scrape health, batches, throughput through the inbox and outbox, retries, upcasts and duplicates.",
        sections: vec![health(), batches(), throughput(), retries()],
    }
}

fn health() -> Section {
    Section::new(
        "Health",
        vec![Panel::stat("Targets up", Unit::Count)
            .describe("Whether Prometheus could scrape each target on its last try (1 up, 0 down). The TroupeTargetDown alert fires after 1 minute down.")
            .query(sel("up", ""), "{{processor}}{{component}} {{instance_name}} {{instance}}")
            .colour(Colouring::UpDown)
            .width(24)],
    )
}

fn batches() -> Section {
    let duration = |q| quantile(q, "troupe_batch_duration_seconds", "processor");
    let mean_size = format!(
        "sum by (processor) ({}) / sum by (processor) ({})",
        rate("troupe_batch_messages_sum", ""),
        rate("troupe_batch_messages_count", "")
    );
    Section::new(
        "Batches",
        vec![
            Panel::timeseries("Batch duration", Unit::Seconds)
                .describe("Time to decode, apply and commit one batch, per processor: median and 99th percentile.")
                .query(duration(0.5), "p50 {{processor}}")
                .query(duration(0.99), "p99 {{processor}}"),
            Panel::timeseries("Batch size", Unit::Count)
                .describe("Mean messages per batch, per processor, and the 99th percentile. Batches near the maximum mean the processor is behind and reading full batches.")
                .query(mean_size, "mean {{processor}}")
                .query(quantile(0.99, "troupe_batch_messages", "processor"), "p99 {{processor}}"),
        ],
    )
}

fn throughput() -> Section {
    Section::new(
        "Throughput",
        vec![
            Panel::timeseries("Consumed", Unit::PerSecond("msg"))
                .describe("Messages read from Kafka per processor and topic, before decoding.")
                .query(sum_rate("processor, topic", "troupe_messages_consumed_total", ""), "{{processor}} / {{topic}}"),
            Panel::timeseries("Handled", EVENTS_PER_S)
                .describe("Events applied by each processor's handler, by event type (duplicates excluded).")
                .query(sum_rate("processor, event_type", "troupe_events_handled_total", ""), "{{processor}} {{event_type}}"),
            Panel::timeseries("Emitted and published", EVENTS_PER_S)
                .describe("Events each processor wrote to its outbox, against outbox rows the broker acknowledged. Published below emitted for long means a growing outbox.")
                .query(sum_rate("processor", "troupe_events_emitted_total", ""), "emitted {{processor}}")
                .query(sum_rate("processor", "troupe_outbox_published_total", ""), "published {{processor}}"),
            Panel::timeseries("Outbox backlog", Unit::Count)
                .describe("Outbox rows not yet published, per processor. The TroupeOutboxBacklogGrowing alert fires when it grows past 1000 for 10 minutes.")
                .query(format!("max by (processor) ({})", sel("troupe_outbox_pending_messages", "")), "{{processor}}")
                .colour(Colouring::BadAbove(1000.0)),
            Panel::timeseries("Reactions", Unit::PerSecond("reactions"))
                .describe("Reactions of choreography.yaml exercised, per processor: the event (or timer) reacted to and what it emitted.")
                .query(sum_rate("processor, on, emitted", "troupe_reactions_total", ""), "{{processor}}: {{on}} → {{emitted}}")
                .width(24),
        ],
    )
}

fn retries() -> Section {
    Section::new(
        "Retries, upcasts and duplicates",
        vec![
            Panel::timeseries("Retries by stage", Unit::PerSecond("retries"))
                .describe("Transient failures retried with backoff, per processor and the stage they happened in. A steady rate points at a struggling dependency.")
                .query(sum_rate("processor, stage", "troupe_retries_total", ""), "{{processor}} {{stage}}")
                .width(8),
            Panel::timeseries("Upcasts by event type and version", EVENTS_PER_S)
                .describe("Events written with an older schema version and upcast before the handler saw them, by event type and the version upcast from.")
                .query(sum_rate("event_type, from_version", "troupe_events_upcast_total", ""), "{{event_type}} v{{from_version}}")
                .width(8),
            Panel::timeseries("Duplicates skipped", EVENTS_PER_S)
                .describe("Events skipped because the processor's inbox had already seen their id (redeliveries after a rebalance or a retry).")
                .query(sum_rate("processor", "troupe_events_duplicate_total", ""), "{{processor}}")
                .width(8),
        ],
    )
}
