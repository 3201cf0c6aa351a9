//! `troupe bench txpipe`: the floor of troupe's exactly-once design on this machine.
//!
//! The bare pipe's hop, paying what every troupe hop pays for exactly-once effects and nothing
//! else: each batch is one PostgreSQL transaction that records the messages in the inbox and
//! writes them to the outbox (troupe's own tables and statements, [`outbox::claim_inbox`],
//! [`outbox::append`]); after the commit a relay task produces them with the relay's producer
//! and deletes the acknowledged rows. The consumer is the processors' (`group::subscribe`, the
//! same batch size and linger). No decoding, no state, no choreography: what is left between
//! this and the saga is troupe's own work.
//!
//! The relay takes the rows straight from the consumer (no `SELECT` of the outbox), so this is a
//! floor: the best a design of this shape can do here.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use serde::Serialize;
use tokio::sync::mpsc;
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::config::{with_database, KafkaConfig, PostgresConfig, ProcessorConfig};
use troupe_runtime::group;
use troupe_runtime::outbox::{self, OutboxRow};
use troupe_runtime::processor::EVENT_ID_HEADER;
use uuid::Uuid;

use super::{load_input, topic};

/// What one transactional-baseline run measured.
#[derive(Debug, Clone, Serialize)]
pub struct TxPipeResult {
    pub messages: u64,
    pub payload_bytes: usize,
    pub msgs_per_sec: f64,
    pub seconds: f64,
    /// Batches, each one transaction (the deletes are as many again).
    pub transactions: u64,
}

impl std::fmt::Display for TxPipeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "transactional baseline: consume → PostgreSQL (inbox + outbox, one transaction per batch) → produce → delete\n  {} messages of {} bytes: {:>9.0} msgs/s ({:.2} s, {} transactions, {:.0} messages each)",
            self.messages,
            self.payload_bytes,
            self.msgs_per_sec,
            self.seconds,
            self.transactions,
            self.messages as f64 / self.transactions.max(1) as f64
        )
    }
}

/// Loads a fresh input topic, then moves every message through the transactional hop into a
/// fresh output topic; the topics and the database are removed afterwards.
pub async fn txpipe(messages: u64, size: usize) -> anyhow::Result<TxPipeResult> {
    if messages == 0 {
        bail!("--messages must be at least 1");
    }
    let kafka = KafkaConfig::from_env();
    let id = &Uuid::now_v7().simple().to_string()[20..];
    let input = format!("troupe.bench.txpipe.{id}.in");
    let output = format!("troupe.bench.txpipe.{id}.out");
    let database = format!("troupe_bench_txpipe_{id}");
    let admin = TopicAdmin::connect(&kafka).await?;
    admin
        .apply(&[topic(input.clone()), topic(output.clone())])
        .await
        .context("cannot create the bench topics")?;
    load_input(&kafka, &input, messages, size).await?;

    let server = PostgresConfig::from_env().url;
    let result = run(&kafka, &server, &database, &input, &output, messages, size).await;

    if let Err(error) = admin.delete(&[&input, &output]).await {
        eprintln!("troupe: could not delete the bench topics: {error}");
    }
    let mut connection =
        <sqlx::PgConnection as sqlx::Connection>::connect(&with_database(&server, "postgres"))
            .await?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
    ))
    .execute(&mut connection)
    .await?;
    result
}

async fn run(
    kafka: &KafkaConfig,
    server: &str,
    database: &str,
    input: &str,
    output: &str,
    messages: u64,
    size: usize,
) -> anyhow::Result<TxPipeResult> {
    let pool = troupe_runtime::db::connect(&with_database(server, database), 4).await?;
    outbox::ensure_tables(&pool).await?;
    let mut config = ProcessorConfig::from_env("txpipe");
    config.group_id = format!("troupe-bench-txpipe-{database}");
    config.kafka = kafka.clone();
    let consumer = group::subscribe(&config, "txpipe", &[input.to_owned()])?;

    // The relay: produces each committed batch, waits for the acknowledgements, deletes.
    let (to_relay, mut batches) = mpsc::channel::<(Vec<i64>, Vec<OutboxRow>)>(16);
    let producer = outbox::relay_producer(kafka)?;
    let relay_pool = pool.clone();
    let relay = tokio::spawn(async move {
        let mut produced = 0u64;
        while let Some((ids, rows)) = batches.recv().await {
            let mut deliveries = Vec::with_capacity(rows.len());
            for row in &rows {
                let headers = row.headers.iter().fold(
                    OwnedHeaders::new_with_capacity(row.headers.len()),
                    |headers, (name, value)| {
                        headers.insert(Header {
                            key: name,
                            value: Some(value.as_bytes()),
                        })
                    },
                );
                let mut record: FutureRecord<'_, String, Vec<u8>> =
                    FutureRecord::to(&row.topic).headers(headers);
                if let Some(key) = &row.key {
                    record = record.key(key);
                }
                if let Some(payload) = &row.payload {
                    record = record.payload(payload);
                }
                match producer.send_result(record) {
                    Ok(delivery) => deliveries.push(delivery),
                    Err((error, _)) => bail!("cannot enqueue: {error}"),
                }
            }
            super::acknowledged(deliveries).await?;
            sqlx::query("DELETE FROM troupe_outbox WHERE id = ANY($1)")
                .bind(&ids)
                .execute(&relay_pool)
                .await?;
            produced += ids.len() as u64;
        }
        anyhow::Ok(produced)
    });

    let mut consumed = 0u64;
    let mut transactions = 0u64;
    let mut started = None;
    while consumed < messages {
        let first = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("no message for 30 s")??
            .detach();
        started.get_or_insert_with(Instant::now);
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.batch_linger;
        while batch.len() < config.batch_max {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(message) => batch.push(message?.detach()),
                Err(_) => break,
            }
        }
        let (ids, rows) = apply(&pool, &batch, output).await?;
        group::store_applied(&consumer, &batch);
        consumed += batch.len() as u64;
        transactions += 1;
        if to_relay.send((ids, rows)).await.is_err() {
            break;
        }
    }
    drop(to_relay);
    let produced = relay.await.context("the relay task failed")??;
    let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    if produced != messages {
        bail!("moved {produced} of {messages} messages");
    }
    consumer.unsubscribe();
    Ok(TxPipeResult {
        messages,
        payload_bytes: size,
        msgs_per_sec: (messages as f64 / seconds).round(),
        seconds: (seconds * 100.0).round() / 100.0,
        transactions,
    })
}

/// One batch's transaction: the inbox claim and the outbox rows, as a processor writes them.
async fn apply(
    pool: &sqlx::PgPool,
    batch: &[OwnedMessage],
    output: &str,
) -> anyhow::Result<(Vec<i64>, Vec<OutboxRow>)> {
    let event_ids: Vec<Uuid> = batch
        .iter()
        .map(|m| Uuid::from_u64_pair(m.partition() as u64, m.offset() as u64))
        .collect();
    let rows: Vec<OutboxRow> = batch
        .iter()
        .zip(&event_ids)
        .map(|(message, id)| OutboxRow {
            topic: output.to_owned(),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: vec![(EVENT_ID_HEADER.into(), id.to_string())],
        })
        .collect();
    let mut tx = pool.begin().await?;
    outbox::claim_inbox(&mut tx, &event_ids).await?;
    let ids = outbox::append(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok((ids, rows))
}
