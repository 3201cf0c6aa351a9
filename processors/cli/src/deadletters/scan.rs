//! Reading the whole dead-letter topic, up to its end as it was when the read began, with
//! only committed records (a redrive's transactions).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use troupe_runtime::config::KafkaConfig;

use super::parked::{Position, Record};
use crate::registry_client::RegistryClient;

/// Everything the dead-letter topic holds.
#[derive(Debug, Default)]
pub struct Contents {
    /// Dead letters, in topic order (partition, then offset).
    pub dead_letters: Vec<Record>,
    /// Audit records of earlier redrives.
    pub audit: Vec<Record>,
}

impl Contents {
    /// The dead letters redriven already.
    pub fn redriven(&self) -> BTreeSet<Position> {
        self.audit.iter().filter_map(Record::redriven).collect()
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Reads `topic` from its start to its end as it is now. Blocking.
pub fn read(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<Contents> {
    let consumer: BaseConsumer = kafka
        .client()
        .set("group.id", "troupe-deadletters-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // Retention may delete the start while it is read: go on from the new start.
        .set("auto.offset.reset", "earliest")
        .set("log_level", "3")
        .create()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("cannot reach Kafka at {}", kafka.bootstrap))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(anyhow!(
            "the dead-letter topic {topic} does not exist (troupe topics apply creates it)"
        ));
    }
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
        if high > low {
            ends.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        }
    }
    let mut contents = Contents::default();
    if ends.is_empty() {
        return Ok(contents);
    }
    consumer.assign(&assignment)?;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        let message = match consumer.poll(Duration::from_millis(200)) {
            // The end of a partition as the broker has it now (after any control records,
            // which take offsets but are never delivered).
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
                continue;
            }
            Some(message) => message?,
            None if last_progress.elapsed() > TIMEOUT => {
                return Err(anyhow!(
                "reading {topic} made no progress for {}s (a redrive still running holds its end?)",
                TIMEOUT.as_secs()
            ))
            }
            None => continue,
        };
        last_progress = Instant::now();
        let partition = message.partition();
        let Some(&end) = ends.get(&partition) else {
            continue;
        };
        if message.offset() + 1 >= end {
            ends.remove(&partition);
        }
        if message.offset() >= end {
            // Written after the read began.
            continue;
        }
        let record = Record {
            position: Position {
                partition,
                offset: message.offset(),
            },
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: troupe_runtime::processor::headers_of(message.headers()),
        };
        if record.redriven().is_some() {
            contents.audit.push(record);
        } else {
            contents.dead_letters.push(record);
        }
    }
    contents.dead_letters.sort_by_key(|r| r.position);
    Ok(contents)
}

/// The event type each schema id of `records` stands for, by the registry's record name (for
/// dead letters parked before their original headers were kept). Ids the registry does not
/// know are left out.
pub async fn schema_names(
    registry: &RegistryClient,
    records: &[Record],
) -> anyhow::Result<BTreeMap<u32, String>> {
    let ids: BTreeSet<u32> = records
        .iter()
        .filter(|r| r.event_type().is_none())
        .filter_map(Record::schema_id)
        .collect();
    let mut names = BTreeMap::new();
    for id in ids {
        if let Some(schema) = registry.schema_by_id(id).await? {
            let value: serde_json::Value = serde_json::from_str(&schema).unwrap_or_default();
            if let Some(name) = value["name"].as_str() {
                names.insert(id, name.rsplit('.').next().unwrap_or(name).to_owned());
            }
        }
    }
    Ok(names)
}
