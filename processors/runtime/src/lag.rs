//! Consumer lag as the broker sees it: committed offsets of a group against the log ends of its
//! topics. The bench, read-model rebuilds and tests watch groups from outside with it, and each
//! processor reports its own partitions' lag with it (`troupe_consumer_lag_messages`), on a
//! task of its own: librdkafka's statistics reach the application through the same queue as
//! the messages, behind everything prefetched, so under load they arrive seconds late.

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

/// A figure per (group, topic, partition).
pub type PerPartition<T> = BTreeMap<(String, String, i32), T>;

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
            watermarks: client("troupe-lag-watermarks")?,
            partitions,
        })
    }

    fn partitions(&self, topic: &str) -> i32 {
        self.partitions.get(topic).copied().unwrap_or(1)
    }

    /// The log end (the offset the next message will get) of every partition of `topics`, in
    /// one request: ListOffsets for the latest offset.
    pub fn high_watermarks(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<(String, i32), i64>, LagError> {
        let partitions: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|t| (0..self.partitions(t)).map(move |p| (t.clone(), p)))
            .collect();
        self.ends(&partitions)
    }

    fn ends(&self, partitions: &[(String, i32)]) -> Result<BTreeMap<(String, i32), i64>, LagError> {
        let mut wanted = TopicPartitionList::new();
        for (topic, partition) in partitions {
            wanted
                .add_partition_offset(topic, *partition, Offset::End)
                .map_err(|source| LagError {
                    what: format!("cannot ask for the end of {topic}"),
                    source,
                })?;
        }
        let ends = self.list_ends(wanted)?;
        let mut highs = BTreeMap::new();
        for element in ends.elements() {
            let Offset::Offset(end) = element.offset() else {
                return Err(LagError {
                    what: format!(
                        "no log end for {}/{}: {:?}",
                        element.topic(),
                        element.partition(),
                        element.offset()
                    ),
                    source: element
                        .error()
                        .err()
                        .unwrap_or(KafkaError::NoMessageReceived),
                });
            };
            highs.insert((element.topic().to_owned(), element.partition()), end);
        }
        Ok(highs)
    }

    /// ListOffsets, asked again while a partition has no leader yet or its leader moves (a
    /// topic just created, a broker restarting), up to the probe's timeout.
    fn list_ends(&self, wanted: TopicPartitionList) -> Result<TopicPartitionList, LagError> {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            match self.watermarks.offsets_for_times(wanted.clone(), TIMEOUT) {
                Err(source) if is_retriable(&source) && std::time::Instant::now() < deadline => {
                    tracing::debug!(%source, "log ends not readable yet");
                    std::thread::sleep(Duration::from_millis(100));
                }
                result => {
                    return result.map_err(|source| LagError {
                        what: "cannot read the log ends".into(),
                        source,
                    })
                }
            }
        }
    }

    /// The committed offset of `group` on each of `partitions` (0 when it committed nothing:
    /// the topics are read from the start).
    fn committed(
        group: &Group,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), i64>, LagError> {
        let mut wanted = TopicPartitionList::new();
        for (topic, partition) in partitions {
            wanted.add_partition(topic, *partition);
        }
        let committed = group
            .client
            .committed_offsets(wanted, TIMEOUT)
            .map_err(|source| LagError {
                what: format!("cannot read the offsets of group {}", group.name),
                source,
            })?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| {
                let done = match e.offset() {
                    Offset::Offset(offset) => offset,
                    _ => 0,
                };
                ((e.topic().to_owned(), e.partition()), done)
            })
            .collect())
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

    /// Messages written but not yet committed, per (group, topic, partition): the log end
    /// minus the group's committed offset. Blocking: call it from a blocking task.
    pub fn partition_lag(&self) -> Result<PerPartition<i64>, LagError> {
        Ok(self
            .offsets()?
            .into_iter()
            .map(|(key, (end, committed))| (key, (end - committed).max(0)))
            .collect())
    }

    /// Per (group, topic, partition) of every group's topics: the log end and the group's
    /// committed offset. Blocking: call it from a blocking task.
    pub fn offsets(&self) -> Result<PerPartition<(i64, i64)>, LagError> {
        let mut topics: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| g.topics.iter().cloned())
            .collect();
        topics.sort();
        topics.dedup();
        let ends = self.high_watermarks(&topics)?;
        let mut offsets = BTreeMap::new();
        for group in &self.groups {
            let partitions: Vec<(String, i32)> = group
                .topics
                .iter()
                .flat_map(|t| (0..self.partitions(t)).map(move |p| (t.clone(), p)))
                .collect();
            for ((topic, partition), done) in Self::committed(group, &partitions)? {
                let end = ends[&(topic.clone(), partition)];
                offsets.insert((group.name.clone(), topic, partition), (end, done));
            }
        }
        Ok(offsets)
    }

    /// The lag of the first group on `partitions` only (a processor's own assignment): log
    /// end minus committed offset, per (topic, partition). Blocking.
    pub fn lag_of(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), i64>, LagError> {
        let Some(group) = self.groups.first() else {
            return Ok(BTreeMap::new());
        };
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let ends = self.ends(partitions)?;
        Ok(Self::committed(group, partitions)?
            .into_iter()
            .map(|(key, done)| {
                let end = ends.get(&key).copied().unwrap_or(done);
                (key, (end - done).max(0))
            })
            .collect())
    }
}

/// Errors a broker reports while leadership is being settled; asking again shortly succeeds.
fn is_retriable(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::{
        LeaderNotAvailable, NotLeaderForPartition, UnknownTopicOrPartition,
    };
    matches!(
        error.rdkafka_error_code(),
        Some(NotLeaderForPartition | LeaderNotAvailable | UnknownTopicOrPartition)
    )
}
