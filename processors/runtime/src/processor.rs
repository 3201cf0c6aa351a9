//! The processor loop: consume a batch, decode it, apply it in one database transaction with
//! the inbox and outbox, commit, then commit the Kafka offsets.
//!
//! `run(config, handler, shutdown)` is the one entry point: every processor's `main.rs` calls
//! it, and tests call it on their own topics and databases.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, Headers};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use troupe_events::choreography::Choreography;

use crate::codec::{Codec, DecodeError, EncodeError};
use crate::config::ProcessorConfig;
use crate::group;
use crate::handler::Handler;
use crate::internal_events::{
    ConsumerRejoined, InternalEvent, KafkaReceiveFailed, OutboxBacklog, TimersFailed,
};
use crate::membership::{self, Membership, Watchdog};
use crate::metrics::{self, Metrics};
use crate::outbox::{self, Backoff, CommitTimes, Relay};
use crate::poison;
use crate::topics::Topics;
use crate::trace::now_us;

pub use troupe_events::message::{EVENT_ID_HEADER, EVENT_TYPE_HEADER};

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
pub(crate) enum BatchError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("store: {0}")]
    Store(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("handler panicked: {0}")]
    Panicked(String),
}

pub(crate) struct Ctx<H> {
    pub(crate) handler: H,
    pub(crate) codec: Codec,
    pub(crate) pool: PgPool,
    pub(crate) topics: Topics,
    pub(crate) metrics: Metrics,
    pub(crate) wake: Arc<Notify>,
    pub(crate) commits: Arc<CommitTimes>,
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
    let topics = config.topics.clone();
    let pins = config.registry.pins().map_err(RuntimeError::Config)?;
    let metrics = Metrics::new();
    metrics.announce(H::NAME);
    let pool = crate::db::connect(&config.database_url, 8).await?;
    outbox::ensure_tables(&pool).await?;
    handler
        .migrator()
        .run(&pool)
        .await
        .map_err(sqlx::Error::from)?;
    let codec = Codec::with_pins(&config.registry, &topics, pins)
        .map_err(|e| RuntimeError::Config(e.to_string()))?;

    let producer = outbox::relay_producer(&config.kafka)?;
    let subscribed: Vec<String> = Choreography::current()
        .subscriptions(H::NAME)
        .iter()
        .map(|t| topics.name(t))
        .collect();
    if subscribed.is_empty() {
        return Err(RuntimeError::Config(format!(
            "{} is neither a service nor an observer in choreography.yaml: it would read nothing",
            H::NAME
        )));
    }
    let membership = Arc::new(Membership::subscribe(&config, H::NAME, &subscribed)?);

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
    let scrape_target = metrics::register_scrape_target(
        config.scrape_targets.as_deref(),
        H::NAME,
        &config.instance,
        &config.group_id,
        metrics_address,
    );
    tokio::spawn(metrics::serve(listener, metrics.clone(), stop.clone()));

    let wake = Arc::new(Notify::new());
    let commits = Arc::new(CommitTimes::default());
    let relay_stop = CancellationToken::new();
    let relay = tokio::spawn(
        Relay {
            pool: pool.clone(),
            producer,
            kafka: config.kafka.clone(),
            processor: H::NAME,
            wake: wake.clone(),
            commits: commits.clone(),
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
        commits,
    });
    let ticker = ctx
        .handler
        .tick_interval()
        .map(|every| tokio::spawn(tick_loop(ctx.clone(), every, stop.clone())));
    tokio::spawn(housekeeping(ctx.clone(), config.inbox_keep, stop.clone()));
    let lag = tokio::spawn(group::report_lag(
        membership.clone(),
        config.clone(),
        H::NAME,
        ctx.topics.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    let session = Duration::from_millis(config.session_timeout_ms);
    let health_watch = tokio::spawn(crate::health::watch(
        metrics.health().clone(),
        ctx.pool.clone(),
        membership.clone(),
        stop.clone(),
    ));
    // The loop turns at least every session timeout (its membership watch), and on every batch
    // attempt; three missed turns, or a minute, mean it is stuck.
    metrics
        .health()
        .set_started(true, (3 * session).max(Duration::from_secs(60)));
    tracing::info!(processor = H::NAME, instance = %config.instance, topics = ?subscribed, metrics = %metrics_address, kafka_security = %config.kafka.security, "processor started");

    Ok(async move {
        consume(&ctx, &membership, &config, &stop).await;
        metrics
            .health()
            .set_started(false, (3 * session).max(Duration::from_secs(60)));
        // The lag and health tasks share the consumer; they stop on `stop` too.
        let _ = lag.await;
        let _ = health_watch.await;
        match Arc::try_unwrap(membership) {
            Ok(membership) => membership.leave().await,
            Err(_) => tracing::warn!(
                "the consumer is still shared; it leaves the group when the last user drops it"
            ),
        }
        if let Some(ticker) = ticker {
            let _ = ticker.await;
        }
        relay_stop.cancel();
        let _ = relay.await;
        metrics::unregister_scrape_target(scrape_target);
        tracing::info!(processor = H::NAME, "processor stopped");
    })
}

/// Runs batches until `stop`, storing the offsets of each batch applied. While it waits for
/// messages, it checks every session timeout that the broker still lists this instance in its
/// group, and replaces the consumer when not (see [`membership`]).
async fn consume<H: Handler>(
    ctx: &Ctx<H>,
    membership: &Arc<Membership>,
    config: &ProcessorConfig,
    stop: &CancellationToken,
) {
    let session = Duration::from_millis(config.session_timeout_ms);
    let mut watchdog = Watchdog::new(membership::grace(session));
    let mut last_received = Instant::now();
    let mut watch = tokio::time::interval(session);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ctx.metrics.health().beat();
        let consumer = membership.current();
        let first = tokio::select! {
            () = stop.cancelled() => return,
            message = consumer.recv() => message,
            _ = watch.tick() => {
                if last_received.elapsed() >= session {
                    watch_membership(ctx, membership, &mut watchdog).await;
                }
                continue;
            }
        };
        let first = match first {
            Ok(message) => (message.detach(), now_us()),
            Err(error) => {
                // No back-off here: an earlier version waited up to 5 s after each error, and
                // the errors queued while the broker was down then held the consumer back for
                // minutes after it came back.
                KafkaReceiveFailed {
                    processor: H::NAME,
                    error: &error,
                }
                .emit(&ctx.metrics);
                continue;
            }
        };
        last_received = Instant::now();
        watchdog.observe(membership::Seen::Member, last_received);
        let (first, received) = first;
        let mut batch = vec![first];
        // When each message was received, for the trace of what it causes.
        let mut received = vec![received];
        let deadline = tokio::time::Instant::now() + config.batch_linger;
        while batch.len() < config.batch_max {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => {
                    batch.push(message.detach());
                    received.push(now_us());
                }
                Ok(Err(error)) => {
                    KafkaReceiveFailed {
                        processor: H::NAME,
                        error: &error,
                    }
                    .emit(&ctx.metrics);
                    break;
                }
                Err(_) => break,
            }
        }
        if let poison::Outcome::Stopped = poison::apply(ctx, &batch, &received, stop).await {
            // Not stored: the batch is delivered again after a restart.
            return;
        }
        group::store_applied(&consumer, &batch);
    }
}

/// Asks the broker whether this instance is in its group and replaces the consumer when the
/// watchdog says so.
async fn watch_membership<H: Handler>(
    ctx: &Ctx<H>,
    membership: &Arc<Membership>,
    watchdog: &mut Watchdog,
) {
    let asking = membership.clone();
    let Ok(seen) = tokio::task::spawn_blocking(move || asking.seen()).await else {
        return;
    };
    if watchdog.observe(seen, Instant::now()) {
        let result = membership.rejoin();
        ConsumerRejoined {
            processor: H::NAME,
            result: &result,
        }
        .emit(&ctx.metrics);
    }
}

async fn tick_loop<H: Handler>(ctx: Arc<Ctx<H>>, every: Duration, stop: CancellationToken) {
    let mut backoff = Backoff::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        // A timer that panics is retried with backoff like one that fails: the loop goes on.
        match crate::batch::caught(ctx.fire_timers()).await {
            Ok(()) => backoff.reset(),
            Err(error) => {
                TimersFailed {
                    processor: H::NAME,
                    error: &error,
                }
                .emit(&ctx.metrics);
                backoff.wait().await;
            }
        }
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
            OutboxBacklog {
                processor: H::NAME,
                pending,
            }
            .emit(&ctx.metrics);
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
/// until SIGTERM or Ctrl-C. A start-up failure is one line on stderr and exit code 1; a
/// security setting that cannot work ([`crate::config::check_env`]), exit code 2.
pub async fn main<H: Handler>(handler: H) -> std::process::ExitCode {
    crate::telemetry::init(H::NAME);
    if let Err(error) = crate::config::check_env() {
        eprintln!("troupe-{}: {error}", H::NAME);
        return std::process::ExitCode::from(2);
    }
    let config = ProcessorConfig::from_env(H::NAME);
    match run(config, handler, crate::shutdown::signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("troupe-{}: {error}", H::NAME);
            std::process::ExitCode::from(1)
        }
    }
}
