//! Consumer lag: the broker's view of every group (the lag exporter) and the processors' own.

use super::query::{increase, rate, sel};
use super::{Colouring, Dashboard, Panel, Section, Unit};

const MSG_PER_S: Unit = Unit::PerSecond("msg");

pub(super) fn dashboard() -> Dashboard {
    Dashboard {
        uid: "troupe-consumer-lag",
        title: "troupe / Consumer lag",
        description: "How far each consumer group is behind its topics, whether it is catching up, and which partitions are worst. The broker's view comes from `troupe lag export`; the processors report their own view of the partitions they own.",
        sections: vec![overview(), rates(), processors_view()],
    }
}

fn overview() -> Section {
    let worst_seconds = format!(
        "topk(10, max by (group, topic, partition) ({}))",
        sel("troupe_group_lag_seconds", "")
    );
    let worst_messages = format!(
        "max by (group, topic, partition) ({}) and on (group, topic, partition) {worst_seconds}",
        sel("troupe_group_lag_messages", "")
    );
    Section::new(
        "Overview",
        vec![
            Panel::timeseries("Max lag per group", Unit::Seconds)
                .describe("Age of the oldest record each group has not committed, the worst partition of the group. The TroupeConsumerLagHigh alert fires above 60 s for 5 minutes.")
                .query(format!("max by (group) ({})", sel("troupe_group_lag_seconds", "")), "{{group}}")
                .colour(Colouring::BadAbove(60.0)),
            Panel::table("Worst partitions", Unit::Seconds)
                .describe("The ten partitions with the oldest uncommitted record, with their lag in messages.")
                .query(worst_seconds, "lag")
                .query(worst_messages, "lag (messages)")
                .field_unit(1, Unit::Count),
            Panel::stat("Group members", Unit::Count)
                .describe("Members of each consumer group the broker knows. 0 means no instance of that processor is running (alert TroupeGroupHasNoMembers).")
                .query(format!("max by (group) ({})", sel("troupe_group_members", "")), "{{group}}")
                .colour(Colouring::BadWhenZero)
                .width(18),
            Panel::stat("Lag exporter errors", Unit::Count)
                .describe("Failed observations of the broker by the lag exporter in the interval; while it fails, the lag figures keep their last values.")
                .query(format!("sum({})", increase("troupe_lag_exporter_errors_total", "")), "errors")
                .colour(Colouring::BadAbove(1.0)),
        ],
    )
}

fn rates() -> Section {
    Section::new(
        "Messages, rates and trend",
        vec![
            Panel::timeseries("Lag in messages per group and topic", Unit::Count)
                .describe("Messages between each group's committed offsets and the log ends, summed over the topic's partitions.")
                .query(format!("sum by (group, topic) ({})", sel("troupe_group_lag_messages", "")), "{{group}} / {{topic}}"),
            Panel::timeseries("Produced against consumed", MSG_PER_S)
                .describe("Messages written to each topic (rate of the log-end offsets) against messages each group commits (rate of its committed offsets). Consumed below produced for long means growing lag.")
                .query(format!("sum by (topic) ({})", rate("troupe_topic_log_end_offset", "")), "produced {{topic}}")
                .query(format!("sum by (group, topic) ({})", rate("troupe_group_committed_offset", "")), "consumed {{group}} / {{topic}}"),
            Panel::timeseries("Lag velocity", MSG_PER_S)
                .describe("How fast each group's lag on a topic changes: positive while it grows. The TroupeConsumerLagGrowing alert fires when it stays positive for 10 minutes over 1000 messages of lag.")
                .query(format!("max by (group, topic) ({})", sel("troupe_group_lag_velocity", "")), "{{group}} / {{topic}}"),
            Panel::timeseries("Time to close the lag", Unit::Seconds)
                .describe("At the current velocity, how long until the group's lag on the topic is 0; 0 when there is none, no value (infinite) while it is not shrinking.")
                .query(format!("max by (group, topic) ({})", sel("troupe_group_time_to_close_seconds", "")), "{{group}} / {{topic}}"),
        ],
    )
}

fn processors_view() -> Section {
    Section::new(
        "The processors' own view",
        vec![
            Panel::timeseries("Lag per processor (seconds)", Unit::Seconds)
                .describe("How far behind each processor says it is on the partitions it owns: 0 when caught up, else the age of the last record it applied.")
                .query(format!("max by (processor, topic) ({})", sel("troupe_consumer_lag_seconds", "")), "{{processor}} / {{topic}}"),
            Panel::timeseries("Lag per processor (messages)", Unit::Count)
                .describe("Messages between each processor's committed offsets and the log ends of the partitions it owns, summed per topic.")
                .query(format!("sum by (processor, topic) ({})", sel("troupe_consumer_lag_messages", "")), "{{processor}} / {{topic}}"),
        ],
    )
}
