//! Sending dead letters back: each chunk in one Kafka transaction with its audit records, so
//! a dead letter is either back on its topic with a record saying so, or still parked. A run
//! that stops half-way (killed, the broker gone) is resumed by running it again: the audit
//! records say what went back already.

use std::time::Duration;

use anyhow::{anyhow, Context};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use troupe_runtime::config::KafkaConfig;
use troupe_runtime::deadletter::headers;
use uuid::Uuid;

use super::parked::Record;
use super::plan::Verdict;

/// One dead letter to send back.
pub struct Move<'a> {
    pub record: &'a Record,
    pub topic: &'a str,
    pub partition: Option<i32>,
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Messages per second at most; `None`: as fast as the broker takes them.
    pub rate: Option<f64>,
}

/// Where one dead letter went.
#[derive(Debug, Clone)]
pub struct Moved {
    pub from: super::parked::Position,
    pub to: String,
}

/// The moves of `plan`, in plan order.
pub fn moves<'a>(
    records: &'a [Record],
    plan: &'a [(super::parked::Position, Verdict)],
) -> Vec<Move<'a>> {
    let by_position: std::collections::HashMap<_, &Record> =
        records.iter().map(|r| (r.position, r)).collect();
    plan.iter()
        .filter_map(|(position, verdict)| match verdict {
            Verdict::Move { topic, partition } => by_position.get(position).map(|record| Move {
                record,
                topic,
                partition: *partition,
            }),
            Verdict::Held(_) => None,
        })
        .collect()
}

/// A redrive's transactional producer. The transactional id is the same for every run on a
/// dead-letter topic: starting one fences an earlier run still alive, and aborts what a killed
/// run left open, before the topic is read.
pub struct Redriver {
    producer: FutureProducer,
    deadletter_topic: String,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl Redriver {
    pub async fn start(kafka: &KafkaConfig, deadletter_topic: &str) -> anyhow::Result<Self> {
        let producer: FutureProducer = kafka
            .client()
            .set(
                "transactional.id",
                format!("troupe-redrive-{deadletter_topic}"),
            )
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // A run killed mid-transaction holds back read_committed consumers of the
            // partitions it wrote to until the broker aborts it: at most this long.
            .set("transaction.timeout.ms", "10000")
            .set("message.timeout.ms", "10000")
            .set("log_level", "3")
            .create()?;
        let init = producer.clone();
        tokio::task::spawn_blocking(move || init.init_transactions(TIMEOUT))
            .await?
            .with_context(|| format!("cannot start a Kafka transaction at {}", kafka.bootstrap))?;
        Ok(Self {
            producer,
            deadletter_topic: deadletter_topic.to_owned(),
        })
    }

    /// Sends `moves` back, in order, writing an audit record for each to the dead-letter
    /// topic in the same transaction; `on_moved` hears of each committed chunk.
    pub async fn run(
        &self,
        moves: &[Move<'_>],
        pace: &Pace,
        mut on_moved: impl FnMut(&[Moved]),
    ) -> anyhow::Result<usize> {
        let run = Uuid::now_v7().to_string();
        let by = who();
        let chunk = match pace.rate {
            Some(rate) => ((rate / 10.0).ceil() as usize).clamp(1, 100),
            None => 100,
        };
        let mut ticker = pace.rate.map(|rate| {
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(chunk as f64 / rate));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker
        });
        let mut done = 0;
        for part in moves.chunks(chunk) {
            if let Some(ticker) = ticker.as_mut() {
                ticker.tick().await;
            }
            self.producer.begin_transaction()?;
            match send_chunk(&self.producer, &self.deadletter_topic, part, &run, &by).await {
                Ok(moved) => {
                    let producer = self.producer.clone();
                    tokio::task::spawn_blocking(move || producer.commit_transaction(TIMEOUT))
                        .await?
                        .context("the broker refused to commit the redrive's transaction")?;
                    done += moved.len();
                    on_moved(&moved);
                }
                Err(error) => {
                    let producer = self.producer.clone();
                    let _ =
                        tokio::task::spawn_blocking(move || producer.abort_transaction(TIMEOUT))
                            .await;
                    return Err(error);
                }
            }
        }
        Ok(done)
    }
}

async fn send_chunk(
    producer: &FutureProducer,
    deadletter_topic: &str,
    part: &[Move<'_>],
    run: &str,
    by: &str,
) -> anyhow::Result<Vec<Moved>> {
    let mut moved = Vec::with_capacity(part.len());
    // In order, one at a time per key: the idempotent producer keeps a partition's order.
    let mut sent = Vec::with_capacity(part.len());
    for m in part {
        let count = (m.record.redrive_count() + 1).to_string();
        let mut out = OwnedHeaders::new();
        for (name, value) in m.record.original_headers() {
            out = out.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        out = out.insert(Header {
            key: headers::REDRIVE_COUNT,
            value: Some(&count),
        });
        let mut record = FutureRecord::<[u8], [u8]>::to(m.topic).headers(out);
        if let Some(key) = &m.record.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &m.record.payload {
            record = record.payload(payload.as_slice());
        }
        if let Some(partition) = m.partition {
            record = record.partition(partition);
        }
        sent.push(
            producer
                .send_result(record)
                .map_err(|(error, _)| anyhow!("cannot send to {}: {error}", m.topic))?,
        );
    }
    let mut destinations = Vec::with_capacity(part.len());
    for (delivery, m) in sent.into_iter().zip(part) {
        let delivered = delivery
            .await
            .map_err(|_| anyhow!("the producer went away"))?
            .map_err(|(error, _)| anyhow!("{} refused a redriven message: {error}", m.topic))?;
        destinations.push(format!(
            "{}/{}/{}",
            m.topic, delivered.partition, delivered.offset
        ));
    }
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis().to_string())
        .unwrap_or_default();
    let mut audits = Vec::with_capacity(part.len());
    for (m, to) in part.iter().zip(&destinations) {
        let from = m.record.position.to_string();
        let audit_headers = OwnedHeaders::new()
            .insert(Header {
                key: headers::REDRIVEN,
                value: Some(&from),
            })
            .insert(Header {
                key: headers::REDRIVEN_TO,
                value: Some(to),
            })
            .insert(Header {
                key: headers::REDRIVE_RUN,
                value: Some(run),
            })
            .insert(Header {
                key: headers::REDRIVE_BY,
                value: Some(by),
            })
            .insert(Header {
                key: headers::REDRIVE_AT,
                value: Some(&at),
            });
        let mut audit = FutureRecord::<[u8], [u8]>::to(deadletter_topic)
            .headers(audit_headers)
            .partition(m.record.position.partition);
        if let Some(key) = &m.record.key {
            audit = audit.key(key.as_slice());
        }
        audits.push(
            producer
                .send_result(audit)
                .map_err(|(error, _)| anyhow!("cannot write the audit record: {error}"))?,
        );
        moved.push(Moved {
            from: m.record.position,
            to: to.clone(),
        });
    }
    for audit in audits {
        audit
            .await
            .map_err(|_| anyhow!("the producer went away"))?
            .map_err(|(error, _)| anyhow!("the audit record was refused: {error}"))?;
    }
    Ok(moved)
}

/// Who runs the redrive, for the audit record: `$USER@$HOSTNAME` as far as known.
fn who() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}")
}
