//! `troupe bench`: measurements a user can reproduce.
//!
//! - `pipe`: the baseline every saga figure is compared with — a bare rdkafka consume →
//!   produce hop, no decoding, logic or database, on the same broker and with the same topic
//!   settings (6 partitions) as the saga's topics.
//! - `txpipe`: the floor of troupe's exactly-once design — the same hop paying one PostgreSQL
//!   transaction per batch (inbox and outbox rows) before producing; see [`txpipe`].
//! - `saga`: the five processors under open-loop load; see [`saga`].

mod probe;
mod saga;
mod txpipe;

pub use txpipe::{txpipe, TxPipeResult};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::Message;
use troupe_events::topology::Topic;
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::config::KafkaConfig;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// A bare consume → produce hop: the broker's and client's ceiling on this machine.
    Pipe(PipeArgs),
    /// Consume → one PostgreSQL transaction per batch (inbox + outbox) → produce → delete:
    /// what exactly-once through a database costs at all, on this machine.
    Txpipe(PipeArgs),
    /// The saga under open-loop load: sustainable rate, latency percentiles, per-hop latency,
    /// CPU and memory per process, and the ratio against `pipe` measured in the same run.
    Saga(saga::SagaArgs),
}

#[derive(Debug, Args)]
pub struct PipeArgs {
    /// Messages to pipe.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Payload size in bytes (a saga event is 150–400 bytes on the wire).
    #[arg(long, default_value_t = 300)]
    size: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(command: BenchCommand, topics_file: &std::path::Path) -> anyhow::Result<()> {
    match command {
        BenchCommand::Pipe(args) => {
            let result = pipe(args.messages, args.size).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                println!("{result}");
            }
            Ok(())
        }
        BenchCommand::Txpipe(args) => {
            let result = txpipe(args.messages, args.size).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                println!("{result}");
            }
            Ok(())
        }
        BenchCommand::Saga(args) => saga::run(args, topics_file).await,
    }
}

fn topic(name: String) -> Topic {
    Topic {
        name,
        description: "troupe bench pipe".into(),
        partitions: 6,
        replication_factor: 1,
        config: BTreeMap::new(),
        key: "order_id".into(),
        values: vec![],
        producers: vec![],
        consumers: vec![],
    }
}

/// Writes `messages` payloads of `size` bytes to `topic` (10,000 keys); returns the seconds it
/// took, every message acknowledged.
async fn load_input(
    kafka: &KafkaConfig,
    topic: &str,
    messages: u64,
    size: usize,
) -> anyhow::Result<f64> {
    let producer = new_producer(kafka)?;
    let payload = vec![0x5a_u8; size];
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(messages as usize);
    for i in 0..messages {
        let key = (i % 10_000).to_string();
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((error, _)) => bail!("cannot enqueue: {error}"),
        }
    }
    acknowledged(deliveries).await?;
    Ok(started.elapsed().as_secs_f64())
}

/// Waits for every delivery; the first failure is the error.
async fn acknowledged(deliveries: Vec<DeliveryFuture>) -> anyhow::Result<()> {
    for delivery in deliveries {
        delivery
            .await
            .context("delivery canceled")?
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

fn new_producer(kafka: &KafkaConfig) -> anyhow::Result<FutureProducer> {
    Ok(kafka
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "1000000")
        .set("log_level", "3")
        .create()?)
}

/// What one pipe run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PipeResult {
    pub messages: u64,
    pub payload_bytes: usize,
    pub partitions: u32,
    pub produce_msgs_per_sec: f64,
    pub pipe_msgs_per_sec: f64,
    pub pipe_seconds: f64,
    /// The two topics it used (deleted afterwards).
    pub topics: [String; 2],
}

impl std::fmt::Display for PipeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pipe: {} messages of {} bytes, {} partitions\n  produce only:      {:>9.0} msgs/s\n  consume → produce: {:>9.0} msgs/s ({:.2} s)",
            self.messages,
            self.payload_bytes,
            self.partitions,
            self.produce_msgs_per_sec,
            self.pipe_msgs_per_sec,
            self.pipe_seconds
        )
    }
}

/// Loads a fresh input topic with `messages` payloads of `size` bytes, then pipes them through
/// one consume → produce hop into a fresh output topic; both topics are deleted afterwards.
pub async fn pipe(messages: u64, size: usize) -> anyhow::Result<PipeResult> {
    if messages == 0 {
        bail!("--messages must be at least 1");
    }
    let kafka = KafkaConfig::from_env();
    let id = Uuid::now_v7().simple().to_string();
    let input = format!("troupe.bench.pipe.{}.in", &id[..12]);
    let output = format!("troupe.bench.pipe.{}.out", &id[..12]);
    let admin = TopicAdmin::connect(&kafka).await?;
    admin
        .apply(&[topic(input.clone()), topic(output.clone())])
        .await
        .context("cannot create the bench topics")?;

    // Load the input topic first; this rate is reported too.
    let produce_seconds = load_input(&kafka, &input, messages, size).await?;

    // The hop: consume in a group, produce each message to the output topic, commit offsets.
    let consumer: StreamConsumer = kafka
        .client()
        .set("group.id", format!("troupe-bench-{id}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", kafka.fetch_wait_ms.to_string())
        .set("log_level", "3")
        .create()?;
    consumer.subscribe(&[&input])?;
    let out = new_producer(&kafka)?;
    let mut piped = 0u64;
    let mut first = None;
    let mut pending = Vec::with_capacity(10_000);
    while piped < messages {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("no message for 30 s")??;
        first.get_or_insert_with(Instant::now);
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&output);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        match out.send_result(record) {
            Ok(delivery) => pending.push(delivery),
            Err((error, _)) => bail!("cannot enqueue: {error}"),
        }
        piped += 1;
        if pending.len() >= 10_000 || piped == messages {
            for delivery in pending.drain(..) {
                delivery
                    .await
                    .context("delivery canceled")?
                    .map_err(|(e, _)| e)?;
            }
            consumer.commit_consumer_state(CommitMode::Async)?;
        }
    }
    out.flush(Duration::from_secs(30))?;
    let pipe_seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    drop(consumer);
    if let Err(error) = admin.delete(&[&input, &output]).await {
        eprintln!("troupe: could not delete the bench topics: {error}");
    }

    Ok(PipeResult {
        messages,
        payload_bytes: size,
        partitions: 6,
        produce_msgs_per_sec: (messages as f64 / produce_seconds).round(),
        pipe_msgs_per_sec: (messages as f64 / pipe_seconds).round(),
        pipe_seconds,
        topics: [input, output],
    })
}
