//! Consumer lag as the broker sees it: committed offsets of a group against the log ends of its
//! topics. The bench, read-model rebuilds and tests watch groups from outside with it, and each
//! processor reports its own partitions' lag with it (`troupe_consumer_lag_messages`), on a
//! task of its own: librdkafka's statistics reach the application through the same queue as
//! the messages, behind everything prefetched, so under load they arrive seconds late.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

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

/// (topic, partition)
pub type TopicPartition = (String, i32);

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
    /// Reads single records by position (assigned, never subscribed: it joins no group) to
    /// learn how old the oldest uncommitted record is.
    reader: BaseConsumer,
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
    /// A probe of the brokers at `bootstrap`, with the environment's security settings (for
    /// tests and tools that only know an address); see [`LagProbe::connect`].
    pub fn new(
        bootstrap: &str,
        groups: Vec<(String, Vec<String>)>,
        partitions: BTreeMap<String, i32>,
    ) -> Result<Self, KafkaError> {
        Self::connect(&KafkaConfig::from_env_at(bootstrap), groups, partitions)
    }

    /// `groups`: (group id, topics it consumes); `partitions`: how many each topic has.
    pub fn connect(
        kafka: &KafkaConfig,
        groups: Vec<(String, Vec<String>)>,
        partitions: BTreeMap<String, i32>,
    ) -> Result<Self, KafkaError> {
        let client = |group: &str| -> Result<BaseConsumer, KafkaError> {
            kafka
                .client()
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
            reader: kafka
                .client()
                .set("group.id", "troupe-lag-reader")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest")
                .set("enable.partition.eof", "true")
                .set("max.partition.fetch.bytes", "65536")
                .set("queued.max.messages.kbytes", "1024")
                .set("log_level", "3")
                .create()?,
            partitions,
        })
    }

    fn partitions(&self, topic: &str) -> i32 {
        self.partitions.get(topic).copied().unwrap_or(1)
    }

    /// Every topic of every group, once.
    fn all_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| g.topics.iter().cloned())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Every partition of `group`'s topics.
    fn partitions_of(&self, group: &Group) -> Vec<TopicPartition> {
        group
            .topics
            .iter()
            .flat_map(|t| (0..self.partitions(t)).map(move |p| (t.clone(), p)))
            .collect()
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
        Ok(Self::commits(group, partitions)?
            .into_iter()
            .map(|(key, offset)| (key, offset.unwrap_or(0)))
            .collect())
    }

    /// The committed offset of `group` on each of `partitions`, `None` where it has none.
    fn commits(
        group: &Group,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), Option<i64>>, LagError> {
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
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                };
                ((e.topic().to_owned(), e.partition()), done)
            })
            .collect())
    }

    /// Like [`LagProbe::offsets`], for groups whose topics are not known: of each group's
    /// candidate topics, only those it has committed an offset on (on any partition) count as
    /// read by it. Blocking.
    pub fn consumed_offsets(&self) -> Result<PerPartition<(i64, i64)>, LagError> {
        let ends = self.high_watermarks(&self.all_topics())?;
        let mut offsets = BTreeMap::new();
        for group in &self.groups {
            let partitions = self.partitions_of(group);
            let commits = Self::commits(group, &partitions)?;
            let read: std::collections::BTreeSet<&String> = commits
                .iter()
                .filter(|(_, offset)| offset.is_some())
                .map(|((topic, _), _)| topic)
                .collect();
            for ((topic, partition), done) in &commits {
                if read.contains(topic) {
                    let end = ends[&(topic.clone(), *partition)];
                    let key = (group.name.clone(), topic.clone(), *partition);
                    offsets.insert(key, (end, done.unwrap_or(0)));
                }
            }
        }
        Ok(offsets)
    }

    /// The consumer groups the broker knows: their members and the topics assigned to them.
    /// Blocking.
    pub fn list_groups(&self) -> Result<BTreeMap<String, ListedGroup>, LagError> {
        let list = self
            .watermarks
            .fetch_group_list(None, TIMEOUT)
            .map_err(|source| LagError {
                what: "cannot list the consumer groups".into(),
                source,
            })?;
        Ok(list
            .groups()
            .iter()
            .map(|g| {
                let assigned = g
                    .members()
                    .iter()
                    .filter_map(|m| m.assignment())
                    .flat_map(assigned_topics)
                    .collect();
                let members = g.members().len();
                (g.name().to_owned(), ListedGroup { members, assigned })
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
        let ends = self.high_watermarks(&self.all_topics())?;
        let mut offsets = BTreeMap::new();
        for group in &self.groups {
            let partitions = self.partitions_of(group);
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
        Ok(self
            .positions_of(partitions)?
            .into_iter()
            .map(|(key, (end, done))| (key, (end - done).max(0)))
            .collect())
    }

    /// The log end and the first group's committed offset on `partitions`. Blocking.
    pub fn positions_of(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<TopicPartition, (i64, i64)>, LagError> {
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
                (key, (end, done))
            })
            .collect())
    }

    /// Lag in seconds from (log end, committed offset) per partition, at `now_ms`: 0 where the
    /// group has caught up, else the age of the record at the committed offset, the oldest one
    /// not yet committed (read from the broker). 0 too when no record follows the committed
    /// offset (only a transaction's commit marker does: a transactional producer, such as
    /// `troupe deadletters redrive`, leaves one, and the log end counts it). A partition whose
    /// record could not be read in time is left out. Blocking.
    pub fn time_lag<K: Ord + Clone>(
        &self,
        positions: &BTreeMap<K, (String, i32, i64, i64)>,
        now_ms: i64,
    ) -> BTreeMap<K, f64> {
        let behind: Vec<(TopicPartition, i64)> = positions
            .values()
            .filter(|(_, _, end, done)| end > done)
            .map(|(topic, partition, _, done)| ((topic.clone(), *partition), *done))
            .collect();
        let times = self.record_times(&behind);
        positions
            .iter()
            .filter_map(|(key, (topic, partition, end, done))| {
                if end <= done {
                    return Some((key.clone(), 0.0));
                }
                match times.get(&((topic.clone(), *partition), *done))? {
                    Some(at) => Some((key.clone(), ((now_ms - at).max(0)) as f64 / 1000.0)),
                    None => Some((key.clone(), 0.0)),
                }
            })
            .collect()
    }

    /// The timestamp (ms since the epoch) of the record at each (partition, offset); when that
    /// offset holds no record (a transaction marker, a compacted or deleted one), of the next
    /// record; `None` when no record follows. Positions not read in time are left out.
    /// Blocking.
    fn record_times(
        &self,
        at: &[(TopicPartition, i64)],
    ) -> BTreeMap<(TopicPartition, i64), Option<i64>> {
        let mut left: Vec<(TopicPartition, i64)> = at.to_vec();
        left.sort();
        left.dedup();
        let mut times = BTreeMap::new();
        let deadline = std::time::Instant::now() + RECORD_WAIT;
        // One topic and one offset per partition at a time (the end of a partition is reported
        // with its number only): groups at different offsets of one partition, and topics, are
        // read in rounds, each with a time limit of its own.
        while !left.is_empty() && std::time::Instant::now() < deadline {
            let topic = left[0].0 .0.clone();
            let mut round: BTreeMap<i32, i64> = BTreeMap::new();
            left.retain(|((t, partition), offset)| {
                if *t != topic || round.contains_key(partition) {
                    return true;
                }
                round.insert(*partition, *offset);
                false
            });
            let round_deadline = deadline.min(std::time::Instant::now() + ROUND_WAIT);
            for ((partition, offset), time) in self.read_round(&topic, round, round_deadline) {
                times.insert(((topic.clone(), partition), offset), time);
            }
        }
        times
    }

    /// Reads the record at one offset of each partition of `topic` in `round` (partition →
    /// offset); `None` for a partition whose end came first.
    fn read_round(
        &self,
        topic: &str,
        mut round: BTreeMap<i32, i64>,
        deadline: std::time::Instant,
    ) -> Vec<((i32, i64), Option<i64>)> {
        use rdkafka::Message;
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &round {
            if list
                .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .is_err()
            {
                return Vec::new();
            }
        }
        if let Err(error) = self.reader.assign(&list) {
            tracing::debug!(%error, "cannot read the oldest uncommitted records");
            return Vec::new();
        }
        let mut times = Vec::new();
        while !round.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.reader.poll(left) {
                Some(Ok(message)) if message.topic() == topic => {
                    let partition = message.partition();
                    // A record before the offset asked for is left from an earlier assignment.
                    if round
                        .get(&partition)
                        .is_some_and(|o| message.offset() >= *o)
                    {
                        let offset = round.remove(&partition).expect("present");
                        if let Some(time) = message.timestamp().to_millis() {
                            times.push(((partition, offset), Some(time)));
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    if let Some(offset) = round.remove(&partition) {
                        times.push(((partition, offset), None));
                    }
                }
                Some(Err(error)) => tracing::debug!(%error, "reading an uncommitted record"),
                None => break,
            }
        }
        let _ = self.reader.unassign();
        times
    }
}

/// How long [`LagProbe::time_lag`] reads records for, in all and per round.
const RECORD_WAIT: Duration = Duration::from_secs(5);
const ROUND_WAIT: Duration = Duration::from_secs(1);

/// A consumer group as the broker lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedGroup {
    pub members: usize,
    /// The topics its leader assigned to its members (consumer protocol).
    pub assigned: std::collections::BTreeSet<String>,
}

/// The topics of a consumer-protocol assignment (version, then topics with their partitions);
/// none when the bytes are not one.
pub fn assigned_topics(bytes: &[u8]) -> Vec<String> {
    fn read(bytes: &[u8]) -> Option<Vec<String>> {
        let mut at = 2; // the version
        let mut take = |n: usize| -> Option<&[u8]> {
            let slice = bytes.get(at..at + n)?;
            at += n;
            Some(slice)
        };
        let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut topics = Vec::new();
        for _ in 0..count.max(0) {
            let length = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let name = String::from_utf8(take(usize::try_from(length).ok()?)?.to_vec()).ok()?;
            let partitions = i32::from_be_bytes(take(4)?.try_into().ok()?);
            take(4 * usize::try_from(partitions).ok()?)?;
            topics.push(name);
        }
        Some(topics)
    }
    read(bytes).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::assigned_topics;

    #[test]
    fn an_assignment_names_its_topics_and_anything_else_none() {
        let mut bytes = vec![0, 1, 0, 0, 0, 2];
        for (topic, partitions) in [("orders", &[0i32, 3][..]), ("stock", &[5][..])] {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend(0i32.to_be_bytes()); // no user data
        assert_eq!(assigned_topics(&bytes), ["orders", "stock"]);
        assert!(assigned_topics(&bytes[..9]).is_empty(), "cut short");
        assert!(assigned_topics(b"").is_empty());
    }
}
