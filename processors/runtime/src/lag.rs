//! Consumer lag as the broker sees it: committed offsets of a group against the high
//! watermarks of its topics. For tools watching processors from outside (the bench, read-model
//! rebuilds, tests); a processor reports its own lag from librdkafka's statistics.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A broker call of the probe failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct LagError {
    what: String,
    source: KafkaError,
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// One consumer group and the topics it reads.
struct Group {
    name: String,
    /// A client carrying the group's id, used only to fetch its committed offsets; it never
    /// joins the group.
    client: BaseConsumer,
    topics: Vec<String>,
}

/// Measures the lag of consumer groups, as the broker sees it.
pub struct LagProbe {
    groups: Vec<Group>,
    watermarks: BaseConsumer,
    /// Partitions per topic.
    partitions: BTreeMap<String, i32>,
}

impl std::fmt::Debug for LagProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
        f.debug_struct("LagProbe").field("groups", &groups).finish()
    }
}

impl LagProbe {
    /// `groups`: (group id, topics it consumes); `partitions`: how many each topic has.
    pub fn new(
        bootstrap: &str,
        groups: Vec<(String, Vec<String>)>,
        partitions: BTreeMap<String, i32>,
    ) -> Result<Self, KafkaError> {
        let client = |group: &str| -> Result<BaseConsumer, KafkaError> {
            ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .set("log_level", "3")
                .create()
        };
        Ok(Self {
            groups: groups
                .into_iter()
                .map(|(name, topics)| {
                    Ok(Group {
                        client: client(&name)?,
                        name,
                        topics,
                    })
                })
                .collect::<Result<_, KafkaError>>()?,
            watermarks: client("troupe-bench-watermarks")?,
            partitions,
        })
    }

    fn partitions(&self, topic: &str) -> i32 {
        self.partitions.get(topic).copied().unwrap_or(1)
    }

    /// The high watermark of every partition of `topics`.
    pub fn high_watermarks(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<(String, i32), i64>, LagError> {
        let mut highs = BTreeMap::new();
        for topic in topics {
            for partition in 0..self.partitions(topic) {
                let (_, high) = self
                    .watermarks
                    .fetch_watermarks(topic, partition, TIMEOUT)
                    .map_err(|source| LagError {
                        what: format!("cannot read the watermarks of {topic}"),
                        source,
                    })?;
                highs.insert((topic.clone(), partition), high);
            }
        }
        Ok(highs)
    }

    /// Messages written but not yet committed, per group. Blocking: call it from a blocking
    /// task.
    pub fn lag(&self) -> Result<BTreeMap<String, i64>, LagError> {
        let mut lag = BTreeMap::new();
        for ((group, _, _), behind) in self.partition_lag()? {
            *lag.entry(group).or_default() += behind;
        }
        Ok(lag)
    }

    /// Messages written but not yet committed, per (group, topic, partition): the high
    /// watermark minus the group's committed offset (everything, when it committed nothing).
    /// Blocking: call it from a blocking task.
    pub fn partition_lag(&self) -> Result<BTreeMap<(String, String, i32), i64>, LagError> {
        let mut topics: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| g.topics.iter().cloned())
            .collect();
        topics.sort();
        topics.dedup();
        let highs = self.high_watermarks(&topics)?;
        let mut lag = BTreeMap::new();
        for group in &self.groups {
            let mut wanted = TopicPartitionList::new();
            for topic in &group.topics {
                for partition in 0..self.partitions(topic) {
                    wanted.add_partition(topic, partition);
                }
            }
            let committed = group
                .client
                .committed_offsets(wanted, TIMEOUT)
                .map_err(|source| LagError {
                    what: format!("cannot read the offsets of group {}", group.name),
                    source,
                })?;
            for element in committed.elements() {
                let topic = element.topic().to_owned();
                let high = highs[&(topic.clone(), element.partition())];
                let done = match element.offset() {
                    Offset::Offset(offset) => offset,
                    _ => 0,
                };
                lag.insert(
                    (group.name.clone(), topic, element.partition()),
                    (high - done).max(0),
                );
            }
        }
        Ok(lag)
    }
}
