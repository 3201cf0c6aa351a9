//! The processor loop: consume a batch, decode it, apply it in one database transaction with
//! the inbox and outbox, commit, then commit the Kafka offsets.
//!
//! `run(config, handler, shutdown)` is the one entry point: every processor's `main.rs` calls
//! it, and tests call it on their own topics and databases.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, Headers, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use troupe_events::{topics as base_topics, Envelope};
use uuid::Uuid;

use crate::codec::{Codec, DecodeError, EncodeError};
use crate::config::ProcessorConfig;
use crate::deadletter::{dead_letter_headers, Origin, Reason};
use crate::group::{self, Applied, GroupConsumer};
use crate::handler::{now_ms, Handler, HandlerError, Source};
use crate::metrics::{self, Metrics};
use crate::outbox::{self, Backoff, OutboxRow, Relay};
use crate::topics::Topics;

/// Header naming the event type on every published event.
pub const EVENT_TYPE_HEADER: &str = "troupe.event_type";
/// Header carrying the event id on every published event.
pub const EVENT_ID_HEADER: &str = "troupe.event_id";

/// Why a processor could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot open the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot create a Kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot listen for metrics on {address}: {source}")]
    Metrics {
        address: String,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// What failed while applying a batch; always retried.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("store: {0}")]
    Store(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

struct Ctx<H> {
    handler: H,
    codec: Codec,
    pool: PgPool,
    topics: Topics,
    metrics: Metrics,
    wake: Arc<Notify>,
}

/// Starts processor `H` and runs it until `shutdown` resolves; then finishes the batch in
/// hand, publishes what its outbox holds, and returns.
pub async fn run<H: Handler>(
    config: ProcessorConfig,
    handler: H,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    let stop = CancellationToken::new();
    let processor = tokio::spawn(start(config, handler, stop.clone()).await?);
    shutdown.await;
    stop.cancel();
    let _ = processor.await;
    Ok(())
}

/// Starts the processor; the returned future completes once it has stopped after `stop` is
/// cancelled. Exposed for tests that stop processors on their own schedule.
pub async fn start<H: Handler>(
    config: ProcessorConfig,
    handler: H,
    stop: CancellationToken,
) -> Result<impl Future<Output = ()> + Send, RuntimeError> {
    let topics = Topics::from_env();
    let pins = config.registry.pins().map_err(RuntimeError::Config)?;
    let metrics = Metrics::new();
    let pool = crate::db::connect(&config.database_url, 8).await?;
    outbox::ensure_tables(&pool).await?;
    handler
        .migrator()
        .run(&pool)
        .await
        .map_err(sqlx::Error::from)?;
    let codec = Codec::with_pins(&config.registry.url, &topics, pins);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        .set("log_level", "4")
        .create()?;
    let subscribed: Vec<String> = handler.topics().iter().map(|t| topics.name(t)).collect();
    let consumer = Arc::new(group::subscribe(&config, H::NAME, &subscribed)?);

    let listener = TcpListener::bind(&config.metrics_listen)
        .await
        .map_err(|source| RuntimeError::Metrics {
            address: config.metrics_listen.clone(),
            source,
        })?;
    let metrics_address = listener
        .local_addr()
        .map_err(|source| RuntimeError::Metrics {
            address: config.metrics_listen.clone(),
            source,
        })?;
    let scrape_target = metrics::register_scrape_target(H::NAME, &config.instance, metrics_address);
    tokio::spawn(metrics::serve(listener, metrics.clone(), stop.clone()));

    let wake = Arc::new(Notify::new());
    let relay_stop = CancellationToken::new();
    let relay = tokio::spawn(
        Relay {
            pool: pool.clone(),
            producer,
            processor: H::NAME,
            wake: wake.clone(),
            metrics: metrics.clone(),
            batch: 1000,
        }
        .run(relay_stop.clone()),
    );

    let ctx = Arc::new(Ctx {
        handler,
        codec,
        pool,
        topics,
        metrics: metrics.clone(),
        wake,
    });
    let ticker = ctx
        .handler
        .tick_interval()
        .map(|every| tokio::spawn(tick_loop(ctx.clone(), every, stop.clone())));
    tokio::spawn(housekeeping(ctx.clone(), config.inbox_keep, stop.clone()));
    let lag = tokio::spawn(group::report_lag(
        consumer.clone(),
        config.clone(),
        H::NAME,
        ctx.topics.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    metrics.set_ready(true);
    tracing::info!(processor = H::NAME, instance = %config.instance, topics = ?subscribed, metrics = %metrics_address, "processor started");

    Ok(async move {
        let applied = consume(&ctx, &consumer, &config, &stop).await;
        metrics.set_ready(false);
        // The lag task shares the consumer; it stops on `stop` too.
        let _ = lag.await;
        group::leave(consumer, applied).await;
        if let Some(ticker) = ticker {
            let _ = ticker.await;
        }
        relay_stop.cancel();
        let _ = relay.await;
        metrics::unregister_scrape_target(scrape_target);
        tracing::info!(processor = H::NAME, "processor stopped");
    })
}

/// Runs batches until `stop`; returns the offsets of the last batch applied.
async fn consume<H: Handler>(
    ctx: &Ctx<H>,
    consumer: &GroupConsumer,
    config: &ProcessorConfig,
    stop: &CancellationToken,
) -> Applied {
    let mut backoff = Backoff::new();
    let mut applied = Applied::default();
    let mut recommit = tokio::time::interval(Duration::from_secs(1));
    recommit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return applied,
            _ = recommit.tick() => {
                applied.recommit(consumer);
                continue;
            }
            message = consumer.recv() => message,
        };
        let first = match first {
            Ok(message) => message.detach(),
            Err(error) => {
                tracing::warn!(%error, processor = H::NAME, "kafka receive failed");
                ctx.metrics.retry(H::NAME, "consume");
                backoff.wait().await;
                continue;
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.batch_linger;
        while batch.len() < config.batch_max {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(error)) => {
                    tracing::warn!(%error, processor = H::NAME, "kafka receive failed");
                    break;
                }
                Err(_) => break,
            }
        }
        loop {
            match ctx.apply(&batch).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, processor = H::NAME, messages = batch.len(), "batch failed; retrying");
                    ctx.metrics.retry(H::NAME, "batch");
                    if stop.is_cancelled() {
                        // Not committed: the batch is delivered again after a restart.
                        return applied;
                    }
                    backoff.wait().await;
                }
            }
        }
        backoff.reset();
        applied.commit(consumer, &batch);
    }
}

// The large variant is the common one; boxing it would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Item<'a> {
    /// A decoded event and the message it came from.
    Event(Envelope, &'a OwnedMessage),
    Dead {
        reason: Reason,
        detail: String,
        key: Option<String>,
        payload: Option<Vec<u8>>,
        origin: Origin,
    },
}

/// A message's key, bytes and position, unchanged, for its dead letter.
fn original(message: &OwnedMessage) -> (Option<String>, Option<Vec<u8>>, Origin) {
    (
        message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        message.payload().map(<[u8]>::to_vec),
        Origin {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        },
    )
}

impl<H: Handler> Ctx<H> {
    async fn apply(&self, batch: &[OwnedMessage]) -> Result<(), BatchError> {
        let started = Instant::now();
        let mut items = Vec::with_capacity(batch.len());
        for message in batch {
            self.metrics
                .consumed(H::NAME, self.topics.base(message.topic()));
            match self.codec.decode_message(message.payload()).await {
                Ok(decoded) => {
                    if let Some(version) = decoded.upcast_from {
                        self.metrics
                            .upcast(H::NAME, decoded.envelope.event_type().name(), version);
                    }
                    items.push(Item::Event(decoded.envelope, message))
                }
                Err(DecodeError::Rejected { reason, detail }) => {
                    tracing::warn!(
                        processor = H::NAME,
                        topic = message.topic(),
                        partition = message.partition(),
                        offset = message.offset(),
                        %reason,
                        error = %detail,
                        "dead-lettering a message"
                    );
                    let (key, payload, origin) = original(message);
                    items.push(Item::Dead {
                        reason,
                        detail,
                        key,
                        payload,
                        origin,
                    })
                }
                Err(transient @ DecodeError::Transient(_)) => return Err(transient.into()),
            }
        }

        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = items
            .iter()
            .filter_map(|item| match item {
                Item::Event(e, _) => Some(e.meta.event_id),
                Item::Dead { .. } => None,
            })
            .collect();
        let mut fresh = outbox::claim_inbox(&mut tx, &ids).await?;
        let mut rows = Vec::new();
        let mut handled = Vec::new();
        let mut emitted = Vec::new();
        let mut dead = Vec::new();
        let mut duplicates = 0;
        for item in items {
            match item {
                Item::Dead {
                    reason,
                    detail,
                    key,
                    payload,
                    origin,
                } => {
                    rows.push(self.dead_letter(reason, &detail, key, payload, &origin));
                    dead.push(reason);
                }
                Item::Event(envelope, message) => {
                    if !fresh.remove(&envelope.meta.event_id) {
                        duplicates += 1;
                        continue;
                    }
                    let span = tracing::debug_span!(
                        "handle",
                        processor = H::NAME,
                        event_type = envelope.event_type().name(),
                        order_id = %envelope.meta.order_id,
                        correlation_id = %envelope.meta.correlation_id,
                    );
                    let _enter = span.enter();
                    let source = Source {
                        topic: self.topics.base(message.topic()),
                        partition: message.partition(),
                        offset: message.offset(),
                    };
                    match self
                        .handler
                        .handle_at(&mut tx, &envelope, source, now)
                        .await
                    {
                        Ok(outputs) => {
                            handled.push(envelope.event_type().name());
                            for output in outputs {
                                emitted.push(output.event_type().name());
                                rows.push(self.event_row(&output).await?);
                            }
                        }
                        Err(HandlerError::Rejected(detail)) => {
                            tracing::warn!(processor = H::NAME, error = %detail, "handler rejected an event");
                            let (key, payload, origin) = original(message);
                            rows.push(self.dead_letter(
                                Reason::Rejected,
                                &detail,
                                key,
                                payload,
                                &origin,
                            ));
                            dead.push(Reason::Rejected);
                        }
                        Err(HandlerError::Database(error)) => return Err(error.into()),
                        Err(HandlerError::Store(error)) => return Err(BatchError::Store(error)),
                    }
                }
            }
        }
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for message in batch {
            let entry = next
                .entry((
                    self.topics.base(message.topic()).to_owned(),
                    message.partition(),
                ))
                .or_default();
            *entry = (*entry).max(message.offset() + 1);
        }
        let next: Vec<(String, i32, i64)> = next.into_iter().map(|((t, p), o)| (t, p, o)).collect();
        match self.handler.batch_applied(&mut tx, &next).await {
            Ok(()) => {}
            Err(HandlerError::Database(error)) => return Err(error.into()),
            Err(HandlerError::Store(error)) => return Err(BatchError::Store(error)),
            Err(HandlerError::Rejected(detail)) => {
                return Err(BatchError::Store(format!("batch rejected: {detail}")))
            }
        }
        outbox::append(&mut tx, &rows).await?;
        tx.commit().await?;
        if !rows.is_empty() {
            self.wake.notify_one();
        }
        for event_type in handled {
            self.metrics.handled(H::NAME, event_type);
        }
        for event_type in emitted {
            self.metrics.emitted(H::NAME, event_type);
        }
        for reason in dead {
            self.metrics.dead_letter(H::NAME, reason.code());
        }
        for _ in 0..duplicates {
            self.metrics.duplicate(H::NAME);
        }
        self.metrics
            .batch(H::NAME, started.elapsed().as_secs_f64(), batch.len());
        Ok(())
    }

    async fn event_row(&self, envelope: &Envelope) -> Result<OutboxRow, EncodeError> {
        Ok(OutboxRow {
            topic: self.topics.name(envelope.event_type().topic()),
            key: Some(envelope.key()),
            payload: Some(self.codec.encode(envelope).await?),
            headers: vec![
                (
                    EVENT_TYPE_HEADER.into(),
                    envelope.event_type().name().into(),
                ),
                (EVENT_ID_HEADER.into(), envelope.meta.event_id.to_string()),
            ],
        })
    }

    fn dead_letter(
        &self,
        reason: Reason,
        detail: &str,
        key: Option<String>,
        payload: Option<Vec<u8>>,
        origin: &Origin,
    ) -> OutboxRow {
        OutboxRow {
            topic: self.topics.name(base_topics::DEADLETTER),
            key,
            payload,
            headers: dead_letter_headers(reason, detail, H::NAME, origin),
        }
    }
}

async fn tick_loop<H: Handler>(ctx: Arc<Ctx<H>>, every: Duration, stop: CancellationToken) {
    let mut backoff = Backoff::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match ctx.fire_timers().await {
            Ok(()) => backoff.reset(),
            Err(error) => {
                tracing::warn!(%error, processor = H::NAME, "timers failed; retrying");
                ctx.metrics.retry(H::NAME, "tick");
                backoff.wait().await;
            }
        }
    }
}

impl<H: Handler> Ctx<H> {
    async fn fire_timers(&self) -> Result<(), BatchError> {
        let mut tx = self.pool.begin().await?;
        let outputs = match self.handler.tick(&mut tx, now_ms()).await {
            Ok(outputs) => outputs,
            Err(HandlerError::Database(error)) => return Err(error.into()),
            Err(HandlerError::Store(error)) => return Err(BatchError::Store(error)),
            Err(HandlerError::Rejected(detail)) => {
                tracing::error!(processor = H::NAME, error = %detail, "a timer was rejected");
                return Ok(());
            }
        };
        let mut rows = Vec::with_capacity(outputs.len());
        for output in &outputs {
            rows.push(self.event_row(output).await?);
        }
        outbox::append(&mut tx, &rows).await?;
        tx.commit().await?;
        for output in &outputs {
            self.metrics.emitted(H::NAME, output.event_type().name());
        }
        if !rows.is_empty() {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Every 5 s: report the outbox's backlog. Every 10 min: prune the inbox.
async fn housekeeping<H: Handler>(ctx: Arc<Ctx<H>>, inbox_keep: Duration, stop: CancellationToken) {
    let mut last_prune = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        if let Ok(pending) = outbox::pending(&ctx.pool).await {
            ctx.metrics.outbox_pending(H::NAME, pending);
        }
        if last_prune.elapsed() >= Duration::from_secs(600) {
            last_prune = Instant::now();
            match outbox::prune_inbox(&ctx.pool, inbox_keep).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(processor = H::NAME, pruned, "inbox pruned"),
                Err(error) => tracing::warn!(%error, processor = H::NAME, "inbox pruning failed"),
            }
        }
    }
}

/// The headers of a message as (name, value) pairs, for tools and tests.
pub fn headers_of<T: Headers + ?Sized>(headers: Option<&T>) -> Vec<(String, String)> {
    let Some(headers) = headers else {
        return Vec::new();
    };
    (0..headers.count())
        .map(|i| {
            let Header { key, value } = headers.get(i);
            (
                key.to_owned(),
                value
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// The whole `main` of a processor binary: logging, configuration from the environment, run
/// until SIGTERM or Ctrl-C. A start-up failure is one line on stderr and exit code 1.
pub async fn main<H: Handler>(handler: H) -> std::process::ExitCode {
    crate::telemetry::init(H::NAME);
    let config = ProcessorConfig::from_env(H::NAME);
    match run(config, handler, crate::shutdown::signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("troupe-{}: {error}", H::NAME);
            std::process::ExitCode::from(1)
        }
    }
}
