//! One look at the broker: every consumer group's committed offsets against the log ends of
//! the topology's topics, the age of each group's oldest uncommitted record, and its members.
//! The same figures back `troupe lag` and the exporter.

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::config::KafkaConfig;
use troupe_runtime::lag::LagProbe;

/// What a group's partition looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub log_end: i64,
    pub committed: i64,
    /// Messages behind: log end − committed.
    pub lag: i64,
    /// Seconds behind (`None`: the oldest uncommitted record could not be read this time).
    pub seconds: Option<f64>,
}

/// (group, topic, partition)
pub type Key = (String, String, i32);

/// One observation.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// When it was made, ms since the epoch.
    pub at_ms: i64,
    pub partitions: BTreeMap<Key, Figures>,
    /// Every group the broker knows that reads a topology topic, with its member count.
    pub members: BTreeMap<String, usize>,
}

/// Observes the groups reading `topics` (every group that committed on one of them, or only
/// `only` when given).
pub struct Observer {
    kafka: KafkaConfig,
    topics: Vec<String>,
    only: Vec<String>,
    /// The probe of the groups that read the topics (its clients are reused while the set is
    /// unchanged).
    probe: Option<(Vec<String>, LagProbe)>,
    /// Groups found to commit on none of the topics, and until when they are left out: the
    /// many groups of other topics (tests, benches) cost one question now and then.
    ignored: BTreeMap<String, Instant>,
    /// A probe of no group, to list the groups.
    lister: LagProbe,
    partitions: BTreeMap<String, i32>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// Groups of troupe's own tools that never consume: left out of every figure.
fn is_internal(group: &str) -> bool {
    group.starts_with("troupe-lag-")
}

impl Observer {
    pub async fn connect(topics: Vec<String>, only: Vec<String>) -> anyhow::Result<Self> {
        let kafka = KafkaConfig::from_env();
        let existing = TopicAdmin::connect(&kafka)
            .await?
            .existing_topics()
            .await
            .with_context(|| format!("cannot reach Kafka at {}", kafka.bootstrap))?;
        let partitions: BTreeMap<String, i32> = topics
            .iter()
            .filter_map(|t| existing.get(t).map(|count| (t.clone(), *count)))
            .collect();
        anyhow::ensure!(
            !partitions.is_empty(),
            "none of the topology's topics exists on {} (troupe topics apply)",
            kafka.bootstrap
        );
        Ok(Self {
            lister: LagProbe::connect(&kafka, Vec::new(), BTreeMap::new())?,
            ignored: BTreeMap::new(),
            kafka,
            topics: partitions.keys().cloned().collect(),
            only,
            probe: None,
            partitions,
        })
    }

    /// Looks at the broker once. Blocking: call it from a blocking task.
    pub fn observe(&mut self, now_ms: impl Fn() -> i64) -> anyhow::Result<Observation> {
        let listed = self.lister.list_groups()?;
        let now = Instant::now();
        self.ignored.retain(|_, until| now < *until);
        let known: Vec<String> = self.probe.iter().flat_map(|(set, _)| set.clone()).collect();
        let mut groups: Vec<String> = Vec::new();
        for group in listed.keys() {
            if is_internal(group) || !(self.only.is_empty() || self.only.contains(group)) {
                continue;
            }
            let assigned = &listed[group].assigned;
            if known.contains(group)
                || !self.only.is_empty()
                || assigned.iter().any(|t| self.partitions.contains_key(t))
            {
                groups.push(group.clone());
            } else if !self.ignored.contains_key(group) {
                // A group with members reads what its members were assigned: only one with
                // none (empty, or rebalancing) is asked for its commits, and not again soon.
                let members = listed[group].members;
                if !assigned.is_empty() {
                    self.ignored.insert(group.clone(), now + RECHECK_EMPTY);
                } else if self.commits_on_topics(group)? {
                    groups.push(group.clone());
                } else {
                    let wait = if members > 0 {
                        RECHECK_ACTIVE
                    } else {
                        RECHECK_EMPTY
                    };
                    self.ignored.insert(group.clone(), now + wait);
                }
            }
        }
        for wanted in &self.only {
            if !groups.contains(wanted) {
                groups.push(wanted.clone());
            }
        }
        groups.sort();
        if groups.is_empty() {
            self.probe = None;
            return Ok(Observation {
                at_ms: now_ms(),
                ..Observation::default()
            });
        }
        if self.probe.as_ref().map(|(set, _)| set) != Some(&groups) {
            let probe = LagProbe::connect(
                &self.kafka,
                groups
                    .iter()
                    .map(|g| (g.clone(), self.topics.clone()))
                    .collect(),
                self.partitions.clone(),
            )?;
            self.probe = Some((groups.clone(), probe));
        }
        let (_, probe) = self.probe.as_ref().expect("probe just set");
        let offsets = probe.consumed_offsets()?;
        let at_ms = now_ms();
        let keyed = offsets
            .iter()
            .map(|(key, (end, done))| (key.clone(), (key.1.clone(), key.2, *end, *done)))
            .collect();
        let seconds = probe.time_lag(&keyed, at_ms);
        let partitions = offsets
            .into_iter()
            .map(|(key, (log_end, committed))| {
                let figures = Figures {
                    log_end,
                    committed,
                    lag: (log_end - committed).max(0),
                    seconds: seconds.get(&key).copied(),
                };
                (key, figures)
            })
            .collect::<BTreeMap<_, _>>();
        let members = groups
            .iter()
            .filter(|g| partitions.keys().any(|(group, _, _)| group == *g))
            .map(|g| (g.clone(), listed.get(g).map_or(0, |l| l.members)))
            .collect();
        Ok(Observation {
            at_ms,
            partitions,
            members,
        })
    }

    /// Whether `group` committed an offset on any partition of the topics.
    fn commits_on_topics(&self, group: &str) -> anyhow::Result<bool> {
        let client: BaseConsumer = self
            .kafka
            .client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("log_level", "3")
            .create()?;
        let mut wanted = TopicPartitionList::new();
        for (topic, count) in &self.partitions {
            for partition in 0..*count {
                wanted.add_partition(topic, partition);
            }
        }
        let committed = client.committed_offsets(wanted, Duration::from_secs(10))?;
        Ok(committed
            .elements()
            .iter()
            .any(|e| matches!(e.offset(), Offset::Offset(_))))
    }
}

/// How long a group found not to read the topics is left out before it is asked again: a
/// group with members (it may commit on them soon), and an empty one.
const RECHECK_ACTIVE: Duration = Duration::from_secs(20);
const RECHECK_EMPTY: Duration = Duration::from_secs(300);
