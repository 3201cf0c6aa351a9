//! `troupe bench saga`: the five processors under open-loop load.
//!
//! One run, on one machine and one broker:
//! 1. the bare pipe ([`super::pipe`]) is measured first, while the machine is otherwise idle;
//! 2. the five processors start on topics and databases of their own (a fresh prefix);
//! 3. **stepping**: orders are offered on a fixed clock at rising rates; during each step the
//!    broker's view of consumer lag is sampled, and a step is *sustainable* when the lag stays
//!    flat over its second half. The first step that is not ends the stepping; every step is
//!    drained before the next starts;
//! 4. **latency**: orders at half the sustainable rate; end-to-end latency counts from each
//!    order's *scheduled* send time (so a stall in the sender cannot hide) to the terminal
//!    order event observed; per-hop latency comes from the timestamps the events carry;
//! 5. CPU seconds and memory of every process, broker and database included, per phase.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::Serialize;
use tokio::task::JoinSet;
use troupe_events::topology::Topology;
use troupe_events::{topics, Envelope, Event, EventType, Metadata};
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::codec::Codec;
use troupe_runtime::config::{with_database, KafkaConfig, PostgresConfig, RegistryConfig};
use troupe_runtime::handler::now_ms;
use troupe_runtime::publish::Publisher;
use troupe_runtime::topics::Topics;
use uuid::Uuid;

use super::probe::{self, ProcSample};
use super::PipeResult;
use crate::scenario::{self, Mix, Rng};
use troupe_runtime::lag::LagProbe;

/// The processors a saga deployment runs.
const SERVICES: [&str; 5] = ["order", "inventory", "payment", "shipping", "notification"];

/// Orders per second of the warm-up.
const WARMUP_RATE: f64 = 20.0;

/// Stock every catalog sku starts with: more than any run can sell.
const STOCK: i32 = 1_000_000_000;

#[derive(Debug, Args)]
pub struct SagaArgs {
    /// Rates to step through, in orders per second (default: --start-rate, times --factor,
    /// up to --max-rate).
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    #[arg(long, default_value_t = 50.0)]
    start_rate: f64,
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    #[arg(long, default_value_t = 5000.0)]
    max_rate: f64,
    /// Seconds of load per step.
    #[arg(long, default_value_t = 20)]
    step_seconds: u64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 30)]
    latency_seconds: u64,
    /// Rate of the latency phase (default: half the sustainable rate).
    #[arg(long)]
    latency_rate: Option<f64>,
    /// Shares of each path through the saga, as for `troupe produce` (default: all happy).
    #[arg(long, default_value = "happy=1")]
    mix: Mix,
    /// Messages for the pipe baseline.
    #[arg(long, default_value_t = 200_000)]
    pipe_messages: u64,
    /// Where the processor binaries are (default: next to this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Print the result as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the JSON result to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the bench's topics and databases afterwards.
    #[arg(long)]
    keep: bool,
}

impl SagaArgs {
    fn ladder(&self) -> anyhow::Result<Vec<f64>> {
        if !self.rates.is_empty() {
            if self.rates.iter().any(|r| !r.is_finite() || *r <= 0.0) {
                bail!("--rates must be positive numbers of orders per second");
            }
            return Ok(self.rates.clone());
        }
        if self.start_rate <= 0.0 || self.factor <= 1.0 || self.max_rate < self.start_rate {
            bail!("need --start-rate > 0, --factor > 1 and --max-rate >= --start-rate");
        }
        let mut rates = vec![self.start_rate];
        while let Some(last) = rates.last().copied() {
            let next = (last * self.factor).round();
            if next > self.max_rate {
                break;
            }
            rates.push(next);
        }
        Ok(rates)
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
            mean_ms: (histogram.mean() / 10.0).round() / 100.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    pub name: String,
    pub cpu_seconds: f64,
    /// CPU seconds per wall second (1.0 = one core busy).
    pub cores: f64,
    /// The largest resident set seen while sampling (every 500 ms).
    pub peak_rss_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub rate: f64,
    pub seconds: f64,
    pub orders: u64,
    pub completed: u64,
    pub offered_msgs_per_sec: f64,
    /// Slope of the total consumer lag over the step's second half, messages per second.
    pub lag_growth_per_sec: f64,
    pub mean_lag: f64,
    pub max_lag: i64,
    /// Slope of the orders in flight (scheduled, not ended) over the second half, orders/s.
    pub in_flight_growth_per_sec: f64,
    pub mean_in_flight: f64,
    pub sustainable: bool,
    pub drained: bool,
    pub drain_seconds: f64,
    pub latency: Percentiles,
    pub machine_busy: f64,
    pub processes: Vec<ProcessReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HopReport {
    pub from: String,
    pub to: String,
    /// From the cause's append to the log to the effect's.
    pub hop: Percentiles,
    /// Of that, from the effect's decision (its `occurred_at`) to its append: the outbox relay.
    pub relay: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub rate: f64,
    pub seconds: f64,
    pub orders: u64,
    pub completed: u64,
    pub end_to_end: Percentiles,
    pub hops: Vec<HopReport>,
    pub machine_busy: f64,
    pub processes: Vec<ProcessReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SagaReport {
    pub bench: &'static str,
    /// Names the run's topics (`bench-<run>.`), groups and databases (`troupe_bench_<run>_*`).
    pub run: String,
    pub cpus: usize,
    pub mix: String,
    pub pipe: PipeResult,
    pub steps: Vec<StepReport>,
    /// Distinct events per order, counted by the observer, not assumed.
    pub messages_per_order: f64,
    /// Messages written beyond the distinct events: redeliveries of the at-least-once relay
    /// (consumers drop them by event id).
    pub duplicate_messages: i64,
    pub sustainable_orders_per_sec: Option<f64>,
    pub sustainable_msgs_per_sec: Option<f64>,
    /// (orders/s × messages per order) ÷ pipe messages/s.
    pub ratio_to_pipe: Option<f64>,
    pub latency: Option<LatencyReport>,
    pub dead_letters: i64,
}

// ---------------------------------------------------------------------------------------------
// Deciding whether a step was sustainable.

/// What the lag samples of a step say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub growth_per_sec: f64,
    pub mean_lag: f64,
    pub max_lag: i64,
    pub sustainable: bool,
}

/// Lag growth (messages per second) below which a step counts as flat at any rate: batching
/// makes the lag of a few hundred messages a second saw-tooth by about this much.
const LAG_GROWTH_FLOOR: f64 = 25.0;
/// The same for orders in flight (orders per second).
const IN_FLIGHT_GROWTH_FLOOR: f64 = 3.0;

/// Whether a backlog sampled over a step stayed flat: over the step's second half it grows by
/// less than 5% of the offered rate (or `floor`) and holds less than two seconds of traffic on
/// average.
///
/// A step is sustainable when two backlogs stay flat: the consumer lag the broker sees, and
/// the orders in flight (scheduled, not yet ended). The second catches what the first cannot:
/// events waiting in an outbox, or a sender falling behind its schedule.
pub fn verdict(samples: &[(f64, i64)], offered_per_sec: f64, floor: f64) -> Verdict {
    let end = samples.last().map_or(0.0, |s| s.0);
    let half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t >= end / 2.0)
        .map(|(t, l)| (*t, *l as f64))
        .collect();
    let n = half.len() as f64;
    let max_lag = samples.iter().map(|s| s.1).max().unwrap_or(0);
    if half.len() < 2 {
        return Verdict {
            growth_per_sec: 0.0,
            mean_lag: half.first().map_or(0.0, |s| s.1),
            max_lag,
            sustainable: false,
        };
    }
    let mean_t = half.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_lag = half.iter().map(|s| s.1).sum::<f64>() / n;
    let covariance: f64 = half.iter().map(|s| (s.0 - mean_t) * (s.1 - mean_lag)).sum();
    let variance: f64 = half.iter().map(|s| (s.0 - mean_t).powi(2)).sum();
    let growth_per_sec = if variance > 0.0 {
        covariance / variance
    } else {
        0.0
    };
    Verdict {
        growth_per_sec,
        mean_lag,
        max_lag,
        sustainable: growth_per_sec <= (0.05 * offered_per_sec).max(floor)
            && mean_lag <= 2.0 * offered_per_sec,
    }
}

// ---------------------------------------------------------------------------------------------
// The deployment under test.

struct Running {
    service: &'static str,
    child: Child,
    metrics_port: u16,
}

/// The five processors on topics and databases of their own.
struct Deployment {
    id: String,
    topics: Topics,
    topology: Topology,
    logs: PathBuf,
    running: Vec<Running>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Deployment {
    async fn start(topics_file: &Path, bin_dir: &Path) -> anyhow::Result<Self> {
        for service in SERVICES {
            let binary = bin_dir.join(format!("troupe-{service}"));
            if !binary.exists() {
                bail!(
                    "{} is not built; run `cargo build --release --bins` (or pass --bin-dir)",
                    binary.display()
                );
            }
        }
        let id = Uuid::now_v7().simple().to_string()[20..].to_owned();
        let prefix = format!("bench-{id}.");
        let text = std::fs::read_to_string(topics_file)
            .with_context(|| format!("cannot read {}", topics_file.display()))?;
        let topology = Topology::parse(&text)?.prefixed(&prefix);
        let kafka = KafkaConfig::from_env();
        TopicAdmin::connect(&kafka)
            .await?
            .apply(&topology.topics)
            .await
            .context("cannot create the bench topics")?;
        let logs = std::env::temp_dir().join(format!("troupe-bench-{id}"));
        std::fs::create_dir_all(&logs)?;
        let mut deployment = Deployment {
            id,
            topics: Topics::with_prefix(prefix),
            topology,
            logs,
            running: Vec::new(),
        };
        for service in SERVICES {
            deployment.spawn(service, bin_dir)?;
        }
        for i in 0..deployment.running.len() {
            deployment.wait_healthy(i).await?;
        }
        Ok(deployment)
    }

    fn database(&self, service: &str) -> String {
        format!("troupe_bench_{}_{service}", self.id)
    }

    fn group(&self, service: &str) -> String {
        format!("troupe-bench-{}-{service}", self.id)
    }

    fn spawn(&mut self, service: &'static str, bin_dir: &Path) -> anyhow::Result<()> {
        let metrics_port = free_port()?;
        let log = std::fs::File::create(self.logs.join(format!("{service}.log")))?;
        let child = Command::new(bin_dir.join(format!("troupe-{service}")))
            .env("TROUPE_TOPIC_PREFIX", self.topics.prefix())
            .env("TROUPE_DATABASE", self.database(service))
            .env("TROUPE_GROUP_ID", self.group(service))
            .env("TROUPE_INSTANCE", format!("{service}-0"))
            .env("TROUPE_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start troupe-{service}"))?;
        self.running.push(Running {
            service,
            child,
            metrics_port,
        });
        Ok(())
    }

    async fn wait_healthy(&mut self, index: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!(
            "http://127.0.0.1:{}/health",
            self.running[index].metrics_port
        );
        let service = self.running[index].service;
        loop {
            if let Some(status) = self.running[index].child.try_wait()? {
                bail!(
                    "troupe-{service} exited during start-up ({status}): {}",
                    last_line(&self.logs.join(format!("{service}.log")))
                );
            }
            if let Ok(response) = reqwest::get(&url).await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "troupe-{service} not healthy after 60 s (log in {})",
                    self.logs.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails when a processor died under load.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for running in &mut self.running {
            if let Some(status) = running.child.try_wait()? {
                bail!(
                    "troupe-{} died during the bench ({status}): {}",
                    running.service,
                    last_line(&self.logs.join(format!("{}.log", running.service)))
                );
            }
        }
        Ok(())
    }

    /// (group, topics it consumes) for every processor.
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        SERVICES
            .iter()
            .map(|service| {
                let topics = self
                    .topology
                    .topics
                    .iter()
                    .filter(|t| t.consumers.iter().any(|c| c == service))
                    .map(|t| t.name.clone())
                    .collect();
                (self.group(service), topics)
            })
            .collect()
    }

    /// The saga's topics: every topic but the dead-letter one.
    fn saga_topics(&self) -> Vec<String> {
        let deadletter = self.topics.name(topics::DEADLETTER);
        self.topology
            .topics
            .iter()
            .map(|t| t.name.clone())
            .filter(|t| *t != deadletter)
            .collect()
    }

    /// Stops the processors, then (unless `keep`) deletes the topics and drops the databases.
    async fn teardown(mut self, keep: bool) -> anyhow::Result<()> {
        for running in &mut self.running {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
        if keep {
            eprintln!(
                "kept topics {}* and databases troupe_bench_{}_*",
                self.topics.prefix(),
                self.id
            );
            return Ok(());
        }
        let names: Vec<String> = self
            .topology
            .topics
            .iter()
            .map(|t| t.name.clone())
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        TopicAdmin::connect(&KafkaConfig::from_env())
            .await?
            .delete(&names)
            .await?;
        let url = with_database(&PostgresConfig::from_env().url, "postgres");
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await?;
        for service in SERVICES {
            let statement = format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.database(service)
            );
            sqlx::query(&statement).execute(&mut connection).await?;
        }
        let _ = std::fs::remove_dir_all(&self.logs);
        Ok(())
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for running in &mut self.running {
            let _ = running.child.kill();
        }
    }
}

fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "(no output)".into())
}

// ---------------------------------------------------------------------------------------------
// Observing the saga.

/// An event whose cause the watcher has not seen yet.
#[derive(Clone, Copy)]
struct Effect {
    event_type: EventType,
    appended_ms: i64,
    occurred_ms: i64,
}

/// A saga event the watcher saw, for per-hop latency.
#[derive(Clone, Copy)]
struct Seen {
    event_type: EventType,
    appended_ms: i64,
}

/// One phase (a step, or the latency phase).
struct Phase {
    latency: Histogram<u64>,
    offered: u64,
    completed: u64,
    /// Distinct events seen for the phase's orders (a redelivered message counts once).
    events: u64,
    /// Whether hops are recorded (the latency phase only: the others would only add memory).
    hops: bool,
}

/// What the watcher and the sender share.
#[derive(Default)]
struct Book {
    /// Order id → (phase, scheduled send time, ended).
    orders: HashMap<Uuid, (usize, Instant, bool)>,
    phases: Vec<Phase>,
    seen: HashMap<Uuid, Seen>,
    /// Every event id seen, to count distinct events.
    ids: std::collections::HashSet<Uuid>,
    waiting: HashMap<Uuid, Vec<Effect>>,
    /// (cause type, effect type) → (hop µs, relay µs).
    hops: BTreeMap<(usize, usize), (Histogram<u64>, Histogram<u64>)>,
}

fn histogram() -> Histogram<u64> {
    // Microseconds up to an hour, three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Book {
    fn phase(&mut self, hops: bool) -> usize {
        self.phases.push(Phase {
            latency: histogram(),
            offered: 0,
            completed: 0,
            events: 0,
            hops,
        });
        self.phases.len() - 1
    }

    fn hop(&mut self, cause: Seen, effect: Effect) {
        let key = (cause.event_type.index(), effect.event_type.index());
        let (hop, relay) = self
            .hops
            .entry(key)
            .or_insert_with(|| (histogram(), histogram()));
        let us = |ms: i64| (ms.max(0) as u64).saturating_mul(1000).max(1);
        let _ = hop.record(us(effect.appended_ms - cause.appended_ms));
        let _ = relay.record(us(effect.appended_ms - effect.occurred_ms));
    }

    fn observe(&mut self, envelope: &Envelope, appended_ms: i64, at: Instant) {
        let Some(&(phase, scheduled, ended)) = self.orders.get(&envelope.meta.order_id) else {
            return;
        };
        if self.ids.insert(envelope.meta.event_id) {
            self.phases[phase].events += 1;
        }
        if self.phases[phase].hops {
            let effect = Effect {
                event_type: envelope.event_type(),
                appended_ms,
                occurred_ms: envelope.meta.occurred_at,
            };
            if let Some(cause_id) = envelope.meta.causation_id {
                match self.seen.get(&cause_id) {
                    Some(&cause) => self.hop(cause, effect),
                    // Topics are fetched independently: an effect can arrive before its cause.
                    None => self.waiting.entry(cause_id).or_default().push(effect),
                }
            }
            let seen = Seen {
                event_type: effect.event_type,
                appended_ms,
            };
            self.seen.insert(envelope.meta.event_id, seen);
            for early in self
                .waiting
                .remove(&envelope.meta.event_id)
                .unwrap_or_default()
            {
                self.hop(seen, early);
            }
        }
        let terminal = matches!(
            envelope.event,
            Event::OrderConfirmed { .. }
                | Event::OrderCancelled { .. }
                | Event::OrderRejected { .. }
        );
        // An order ends once; a redelivered terminal event must not count twice.
        if terminal && !ended {
            let micros = at.saturating_duration_since(scheduled).as_micros() as u64;
            let phase = &mut self.phases[phase];
            let _ = phase.latency.record(micros.max(1));
            phase.completed += 1;
            if let Some(order) = self.orders.get_mut(&envelope.meta.order_id) {
                order.2 = true;
            }
        }
    }
}

/// Reads every saga topic from the beginning and books what it sees.
async fn watch(
    topic_names: Vec<String>,
    partitions: BTreeMap<String, i32>,
    codec: Codec,
    book: Arc<Mutex<Book>>,
) -> anyhow::Result<()> {
    let kafka = KafkaConfig::from_env();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", format!("troupe-bench-watch-{}", Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", kafka.fetch_wait_ms.to_string())
        .set("log_level", "3")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for topic in &topic_names {
        for partition in 0..partitions.get(topic).copied().unwrap_or(1) {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    loop {
        let message = consumer.recv().await?;
        let at = Instant::now();
        let Ok(envelope) = codec.decode(message.payload()).await else {
            continue;
        };
        let appended_ms = message.timestamp().to_millis().unwrap_or_else(now_ms);
        book.lock()
            .expect("book lock")
            .observe(&envelope, appended_ms, at);
    }
}

// ---------------------------------------------------------------------------------------------
// Load.

/// The open-loop sender.
struct Load<'a> {
    publisher: &'a Publisher,
    book: &'a Arc<Mutex<Book>>,
    mix: &'a Mix,
    rng: Rng,
    /// Orders built so far (numbers customers and addresses).
    counter: u64,
}

impl Load<'_> {
    /// Offers orders at `rate` per second for `seconds` on a fixed clock. Returns how many.
    async fn offer(&mut self, phase: usize, rate: f64, seconds: f64) -> anyhow::Result<u64> {
        let total = (rate * seconds).round() as u64;
        let start = Instant::now();
        let mut sends = JoinSet::new();
        for i in 0..total {
            // Open loop: order i is due at start + i / rate, whatever happened before.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            let scenario = self.mix.pick(&mut self.rng);
            let order = scenario::build(scenario, self.counter, &mut self.rng, now_ms());
            self.counter += 1;
            {
                let mut book = self.book.lock().expect("book lock");
                book.orders.insert(order.order_id, (phase, due, false));
                book.phases[phase].offered += 1;
            }
            let publisher = self.publisher.clone();
            sends.spawn(async move {
                for request in &order.requests {
                    publisher.publish(request).await?;
                }
                Ok::<(), anyhow::Error>(())
            });
            while let Some(done) = sends.try_join_next() {
                done??;
            }
        }
        while let Some(done) = sends.join_next().await {
            done??;
        }
        Ok(total)
    }
}

/// Samples lag and processes every 500 ms while `work` runs.
struct Sampler {
    lag: Vec<(f64, i64)>,
    /// Orders of the phase scheduled and not yet ended.
    in_flight: Vec<(f64, i64)>,
    peak_rss: Vec<u64>,
    first: Vec<ProcSample>,
    last: Vec<ProcSample>,
    machine_first: Option<(u64, u64)>,
    machine_last: Option<(u64, u64)>,
    started: Instant,
    last_at: Instant,
}

/// The processes a report covers: the five processors, then the stack's servers and the
/// bench itself.
struct Watched {
    names: Vec<String>,
    pids: Vec<Vec<u32>>,
    ticks: f64,
}

impl Watched {
    fn new(deployment: &Deployment) -> Self {
        let mut names = Vec::new();
        let mut pids = Vec::new();
        for running in &deployment.running {
            names.push(format!("troupe-{}", running.service));
            pids.push(vec![running.child.id()]);
        }
        for (name, found) in [
            ("broker (Apache Kafka)", probe::pids_with_arg("kafka.Kafka")),
            ("postgresql (all backends)*", probe::pids_named("postgres")),
            ("troupe-registry", probe::pids_named("troupe-registry")),
        ] {
            if !found.is_empty() {
                names.push(name.to_owned());
                pids.push(found);
            }
        }
        names.push("troupe bench (load + watcher)".into());
        pids.push(vec![std::process::id()]);
        Self {
            names,
            pids,
            ticks: probe::clock_ticks(),
        }
    }

    /// CPU summed over each entry's pids, RSS of the largest (PostgreSQL's backends share
    /// their buffers: a sum would count them many times). Backends come and go, so they are
    /// looked up again on every sample.
    fn sample(&mut self) -> Vec<ProcSample> {
        for (name, pids) in self.names.iter().zip(self.pids.iter_mut()) {
            if name.starts_with("postgresql") {
                *pids = probe::pids_named("postgres");
            }
        }
        self.pids
            .iter()
            .map(|pids| {
                pids.iter()
                    .filter_map(|pid| probe::sample(*pid, self.ticks))
                    .fold(ProcSample::default(), |a, b| ProcSample {
                        cpu_seconds: a.cpu_seconds + b.cpu_seconds,
                        rss_bytes: a.rss_bytes.max(b.rss_bytes),
                    })
            })
            .collect()
    }
}

impl Sampler {
    fn new(watched: &mut Watched) -> Self {
        let first = watched.sample();
        Self {
            lag: Vec::new(),
            in_flight: Vec::new(),
            peak_rss: first.iter().map(|s| s.rss_bytes).collect(),
            last: first.clone(),
            first,
            machine_first: probe::machine_ticks(),
            machine_last: None,
            started: Instant::now(),
            last_at: Instant::now(),
        }
    }

    async fn tick(&mut self, watched: &mut Watched, probes: &Probes<'_>) -> anyhow::Result<()> {
        let probe = probes.lag.clone();
        let total: i64 = tokio::task::spawn_blocking(move || probe.lag())
            .await??
            .values()
            .sum();
        let now = Instant::now();
        let t = now.duration_since(self.started).as_secs_f64();
        self.lag.push((t, total));
        let in_flight = {
            let book = probes.book.lock().expect("book lock");
            let phase = &book.phases[probes.phase];
            phase.offered as i64 - phase.completed as i64
        };
        self.in_flight.push((t, in_flight));
        self.last_at = now;
        self.last = watched.sample();
        for (peak, now) in self.peak_rss.iter_mut().zip(&self.last) {
            *peak = (*peak).max(now.rss_bytes);
        }
        self.machine_last = probe::machine_ticks();
        Ok(())
    }

    fn processes(&self, watched: &Watched) -> Vec<ProcessReport> {
        let wall = self
            .last_at
            .duration_since(self.started)
            .as_secs_f64()
            .max(1e-9);
        watched
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let cpu = (self.last[i].cpu_seconds - self.first[i].cpu_seconds).max(0.0);
                ProcessReport {
                    name: name.clone(),
                    cpu_seconds: round2(cpu),
                    cores: round2(cpu / wall),
                    peak_rss_mib: round2(self.peak_rss[i] as f64 / (1024.0 * 1024.0)),
                }
            })
            .collect()
    }

    /// The share of the machine's CPU time that was busy.
    fn machine_busy(&self) -> f64 {
        match (self.machine_first, self.machine_last) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                round2((b1 - b0) as f64 / (t1 - t0) as f64)
            }
            _ => 0.0,
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// What a sampler reads besides `/proc`: the broker's lag, and the book of the phase.
struct Probes<'a> {
    lag: &'a Arc<LagProbe>,
    book: &'a Arc<Mutex<Book>>,
    phase: usize,
}

/// Runs `work` while sampling every 500 ms. The two run concurrently (`join!`, not
/// `select!`): a sample that takes long must never hold back the sender's schedule.
async fn sampled<F, T>(
    work: F,
    watched: &mut Watched,
    probes: Probes<'_>,
) -> anyhow::Result<(T, Sampler)>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut sampler = Sampler::new(watched);
    let finished = tokio::sync::Notify::new();
    let working = async {
        let result = work.await;
        finished.notify_one();
        result
    };
    let sampling = async {
        let mut interval = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                () = finished.notified() => break,
                _ = interval.tick() => sampler.tick(watched, &probes).await?,
            }
        }
        // One last sample at the end of the work.
        sampler.tick(watched, &probes).await
    };
    let (result, sampling) = tokio::join!(working, sampling);
    sampling?;
    Ok((result?, sampler))
}

/// What "nothing left to do" is checked against.
struct Quiet<'a> {
    lag: &'a Arc<LagProbe>,
    /// One connection pool per processor database.
    outboxes: &'a [sqlx::PgPool],
    topics: &'a [String],
}

impl Quiet<'_> {
    /// (rows waiting in outboxes, consumer lag, messages written).
    async fn snapshot(&self) -> anyhow::Result<(i64, i64, i64)> {
        let mut waiting = 0;
        for pool in self.outboxes {
            let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM troupe_outbox")
                .fetch_one(pool)
                .await?;
            waiting += rows;
        }
        let probe = self.lag.clone();
        let topics = self.topics.to_vec();
        let (lag, written) = tokio::task::spawn_blocking(move || {
            Ok::<_, anyhow::Error>((probe.lag()?.values().sum(), sum_highs(&probe, &topics)?))
        })
        .await??;
        Ok((waiting, lag, written))
    }
}

/// Waits until every order of `phase` ended and the saga is quiet: two snapshots in a row with
/// empty outboxes, no consumer lag and no new message. A message being handled shows as lag;
/// an effect committed but not yet published shows in its outbox; one published since the
/// last snapshot changes the message count. Returns how long it took, or `None` at `timeout`.
async fn drain(
    book: &Arc<Mutex<Book>>,
    phase: usize,
    orders: u64,
    quiet: &Quiet<'_>,
    timeout: Duration,
) -> anyhow::Result<Option<f64>> {
    let started = Instant::now();
    let mut previous = None;
    loop {
        let completed = book.lock().expect("book lock").phases[phase].completed;
        if completed >= orders {
            let now = quiet.snapshot().await?;
            if now.0 == 0 && now.1 == 0 {
                if previous == Some(now) {
                    return Ok(Some(started.elapsed().as_secs_f64()));
                }
                previous = Some(now);
            } else {
                previous = None;
            }
        }
        if started.elapsed() > timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sum_highs(lag: &LagProbe, topics: &[String]) -> anyhow::Result<i64> {
    Ok(lag.high_watermarks(topics)?.values().sum())
}

// ---------------------------------------------------------------------------------------------
// The run.

pub async fn run(args: SagaArgs, topics_file: &Path) -> anyhow::Result<()> {
    let ladder = args.ladder()?;
    if args.step_seconds < 2 || args.latency_seconds < 2 {
        bail!("--step-seconds and --latency-seconds must be at least 2");
    }
    if let Some(rate) = args.latency_rate {
        if !rate.is_finite() || rate <= 0.0 {
            bail!("--latency-rate must be a positive number of orders per second");
        }
    }
    let bin_dir = crate::bin_dir(args.bin_dir.clone())?;
    let kafka = KafkaConfig::from_env();
    TopicAdmin::connect(&kafka).await?;

    eprintln!(
        "bench: measuring the bare pipe ({} messages)",
        args.pipe_messages
    );
    let pipe = super::pipe(args.pipe_messages, 300).await?;
    eprintln!("bench: pipe {:.0} msgs/s", pipe.pipe_msgs_per_sec);

    let deployment = Deployment::start(topics_file, &bin_dir).await?;
    let result = measure(&args, &ladder, pipe, deployment).await;
    let (report, deployment) = result?;
    deployment.teardown(args.keep).await?;

    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print_report(&report);
    }
    Ok(())
}

/// What one phase of load gave.
struct PhaseRun {
    phase: usize,
    orders: u64,
    sampler: Sampler,
    seconds: f64,
    /// How long draining took, or `None` when it did not within `timeout`.
    drained: Option<f64>,
    timeout: Duration,
}

/// Offers `rate` orders a second for `seconds` while sampling, checks the processors survived,
/// then drains. `hops`: record per-hop latency (the latency phase).
async fn run_phase(
    load: &mut Load<'_>,
    watched: &mut Watched,
    deployment: &mut Deployment,
    quiet: &Quiet<'_>,
    hops: bool,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<PhaseRun> {
    let book = load.book;
    let phase = book.lock().expect("book lock").phase(hops);
    let started = Instant::now();
    let (orders, sampler) = sampled(
        load.offer(phase, rate, seconds as f64),
        watched,
        Probes {
            lag: quiet.lag,
            book,
            phase,
        },
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    deployment.check_alive()?;
    let timeout = Duration::from_secs(120 + seconds * 2);
    let drained = drain(book, phase, orders, quiet, timeout).await?;
    Ok(PhaseRun {
        phase,
        orders,
        sampler,
        seconds: elapsed,
        drained,
        timeout,
    })
}

async fn measure(
    args: &SagaArgs,
    ladder: &[f64],
    pipe: PipeResult,
    mut deployment: Deployment,
) -> anyhow::Result<(SagaReport, Deployment)> {
    let kafka = KafkaConfig::from_env();
    let registry = RegistryConfig::from_env();
    let publisher = Publisher::new(&kafka, &registry, deployment.topics.clone())?;
    let partitions: BTreeMap<String, i32> = deployment
        .topology
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions))
        .collect();
    let lag = Arc::new(LagProbe::new(
        &kafka.bootstrap,
        deployment.groups(),
        partitions.clone(),
    )?);
    let saga_topics = deployment.saga_topics();
    let mut outboxes = Vec::new();
    for service in SERVICES {
        let url = with_database(
            &PostgresConfig::from_env().url,
            &deployment.database(service),
        );
        outboxes.push(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .with_context(|| format!("cannot open the {service} database"))?,
        );
    }
    let quiet = Quiet {
        lag: &lag,
        outboxes: &outboxes,
        topics: &saga_topics,
    };

    // Stock for everything, applied before the first order.
    for sku in scenario::catalog() {
        publisher
            .publish(&Envelope {
                meta: Metadata::origin(Uuid::nil(), "bench", now_ms()),
                event: Event::StockAdjusted {
                    sku,
                    delta: 0,
                    set_to: Some(STOCK),
                },
            })
            .await?;
    }
    let book = Arc::new(Mutex::new(Book::default()));
    let stock_phase = book.lock().expect("book lock").phase(false);
    if drain(&book, stock_phase, 0, &quiet, Duration::from_secs(60))
        .await?
        .is_none()
    {
        bail!("the inventory did not apply the stock within 60 s");
    }

    let codec = Codec::new(&registry.url, &deployment.topics);
    let watcher = tokio::spawn(watch(saga_topics.clone(), partitions, codec, book.clone()));
    let mut watched = Watched::new(&deployment);
    let mut load = Load {
        publisher: &publisher,
        book: &book,
        mix: &args.mix,
        rng: Rng::new(now_ms() as u64),
        counter: 0,
    };

    // Warm-up, not reported: every consumer group joined, every schema id cached, every
    // database connection open before the first measured order.
    let warmup = book.lock().expect("book lock").phase(false);
    let orders = load.offer(warmup, WARMUP_RATE, 2.0).await?;
    if drain(&book, warmup, orders, &quiet, Duration::from_secs(120))
        .await?
        .is_none()
    {
        bail!(
            "the warm-up orders did not complete within 120 s (processor logs in {})",
            deployment.logs.display()
        );
    }
    let mut messages_per_order = 8.0;
    let mut total_orders = 0u64;
    let mut measured = Vec::new();
    let baseline = sum_highs(&lag, &saga_topics)?;
    // Distinct events per order over the measured phases; the topics' message count on top of
    // that is the at-least-once relay's duplicates.
    let distinct = |book: &Arc<Mutex<Book>>, phases: &[usize]| -> u64 {
        let book = book.lock().expect("book lock");
        phases.iter().map(|p| book.phases[*p].events).sum()
    };

    let mut steps = Vec::new();
    let mut sustainable = None;
    for &rate in ladder {
        eprintln!("bench: step {rate} orders/s for {} s", args.step_seconds);
        let offered = rate * messages_per_order;
        let PhaseRun {
            phase,
            orders,
            sampler,
            seconds,
            drained,
            timeout,
        } = run_phase(
            &mut load,
            &mut watched,
            &mut deployment,
            &quiet,
            false,
            rate,
            args.step_seconds,
        )
        .await?;
        let lag_verdict = verdict(&sampler.lag, offered, LAG_GROWTH_FLOOR);
        let in_flight_verdict = verdict(&sampler.in_flight, rate, IN_FLIGHT_GROWTH_FLOOR);
        total_orders += orders;
        measured.push(phase);
        if drained.is_some() && total_orders > 0 {
            messages_per_order = distinct(&book, &measured) as f64 / total_orders as f64;
        }
        let (latency, completed) = {
            let book = book.lock().expect("book lock");
            (
                Percentiles::of(&book.phases[phase].latency),
                book.phases[phase].completed,
            )
        };
        let step = StepReport {
            rate,
            seconds: round2(seconds),
            orders,
            completed,
            offered_msgs_per_sec: round2(offered),
            lag_growth_per_sec: round2(lag_verdict.growth_per_sec),
            mean_lag: round2(lag_verdict.mean_lag),
            max_lag: lag_verdict.max_lag,
            in_flight_growth_per_sec: round2(in_flight_verdict.growth_per_sec),
            mean_in_flight: round2(in_flight_verdict.mean_lag),
            sustainable: lag_verdict.sustainable
                && in_flight_verdict.sustainable
                && drained.is_some(),
            drained: drained.is_some(),
            drain_seconds: round2(drained.unwrap_or(timeout.as_secs_f64())),
            latency,
            machine_busy: sampler.machine_busy(),
            processes: sampler.processes(&watched),
        };
        eprintln!(
            "bench:   lag growth {:.0} msgs/s, mean lag {:.0}, in flight {:.0} (growth {:.0}/s), p99 {:.1} ms, {}",
            step.lag_growth_per_sec,
            step.mean_lag,
            step.mean_in_flight,
            step.in_flight_growth_per_sec,
            step.latency.p99_ms,
            if step.sustainable { "sustainable" } else { "NOT sustainable" }
        );
        let ok = step.sustainable;
        let drained = step.drained;
        steps.push(step);
        if ok {
            sustainable = Some(rate);
        } else {
            break;
        }
        if !drained {
            break;
        }
    }

    let latency_rate = args
        .latency_rate
        .or(sustainable.map(|r| r / 2.0))
        .unwrap_or(ladder[0] / 2.0);
    let all_drained = steps.iter().all(|s| s.drained);
    let latency = if all_drained {
        eprintln!(
            "bench: latency at {latency_rate} orders/s for {} s",
            args.latency_seconds
        );
        let PhaseRun {
            phase,
            orders,
            sampler,
            seconds,
            drained,
            ..
        } = run_phase(
            &mut load,
            &mut watched,
            &mut deployment,
            &quiet,
            true,
            latency_rate,
            args.latency_seconds,
        )
        .await?;
        if drained.is_none() {
            bail!("the latency phase did not drain: the saga does not keep up at {latency_rate} orders/s");
        }
        total_orders += orders;
        measured.push(phase);
        messages_per_order = distinct(&book, &measured) as f64 / total_orders as f64;
        let book = book.lock().expect("book lock");
        let hops = book
            .hops
            .iter()
            .map(|(&(from, to), (hop, relay))| HopReport {
                from: EventType::ALL[from].name().to_owned(),
                to: EventType::ALL[to].name().to_owned(),
                hop: Percentiles::of(hop),
                relay: Percentiles::of(relay),
            })
            .collect();
        Some(LatencyReport {
            rate: latency_rate,
            seconds: round2(seconds),
            orders,
            completed: book.phases[phase].completed,
            end_to_end: Percentiles::of(&book.phases[phase].latency),
            hops,
            machine_busy: sampler.machine_busy(),
            processes: sampler.processes(&watched),
        })
    } else {
        None
    };
    watcher.abort();

    let dead_letters = sum_highs(&lag, &[deployment.topics.name(topics::DEADLETTER)])?;
    let sustainable_msgs = sustainable.map(|r| round2(r * messages_per_order));
    let written = sum_highs(&lag, &saga_topics)? - baseline;
    let duplicates = (written - distinct(&book, &measured) as i64).max(0);
    let report = SagaReport {
        bench: "saga",
        run: deployment.id.clone(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mix: format!("{:?}", args.mix.0),
        ratio_to_pipe: sustainable_msgs
            .map(|m| (m / pipe.pipe_msgs_per_sec * 1000.0).round() / 1000.0),
        pipe,
        steps,
        messages_per_order: round2(messages_per_order),
        duplicate_messages: duplicates,
        sustainable_orders_per_sec: sustainable,
        sustainable_msgs_per_sec: sustainable_msgs,
        latency,
        dead_letters,
    };
    Ok((report, deployment))
}

fn print_percentiles(label: &str, p: &Percentiles) {
    println!(
        "  {label:<44} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
    );
}

fn print_processes(processes: &[ProcessReport]) {
    println!(
        "  {:<32} {:>10} {:>7} {:>10}",
        "process", "cpu s", "cores", "peak MiB"
    );
    for p in processes {
        println!(
            "  {:<32} {:>10.2} {:>7.2} {:>10.1}",
            p.name, p.cpu_seconds, p.cores, p.peak_rss_mib
        );
    }
}

fn print_report(report: &SagaReport) {
    println!("{}", report.pipe);
    println!("\nsaga steps ({} cpus, mix {}):", report.cpus, report.mix);
    println!(
        "  {:>8} {:>7} {:>9} {:>11} {:>9} {:>10} {:>8} {:>8} {:>6}  verdict",
        "orders/s",
        "orders",
        "msgs/s",
        "lag growth",
        "mean lag",
        "in flight",
        "p50 ms",
        "p99 ms",
        "busy"
    );
    for s in &report.steps {
        println!(
            "  {:>8.0} {:>7} {:>9.0} {:>11.0} {:>9.0} {:>10.0} {:>8.1} {:>8.1} {:>5.0}%  {}",
            s.rate,
            s.orders,
            s.offered_msgs_per_sec,
            s.lag_growth_per_sec,
            s.mean_lag,
            s.mean_in_flight,
            s.latency.p50_ms,
            s.latency.p99_ms,
            s.machine_busy * 100.0,
            match (s.sustainable, s.drained) {
                (true, _) => "sustainable",
                (false, true) => "backlog grows",
                (false, false) => "backlog grows, did not drain",
            }
        );
    }
    println!(
        "\nmessages per order: {:.2} (duplicates written by the relays: {})",
        report.messages_per_order, report.duplicate_messages
    );
    match (report.sustainable_orders_per_sec, report.sustainable_msgs_per_sec, report.ratio_to_pipe) {
        (Some(orders), Some(msgs), Some(ratio)) => println!(
            "sustainable: {orders:.0} orders/s = {msgs:.0} msgs/s = {ratio:.3} × the pipe's {:.0} msgs/s",
            report.pipe.pipe_msgs_per_sec
        ),
        _ => println!("sustainable: none of the rates tried"),
    }
    if let Some(latency) = &report.latency {
        println!(
            "\nlatency at {:.0} orders/s for {:.0} s ({} of {} orders ended), ms:",
            latency.rate, latency.seconds, latency.completed, latency.orders
        );
        println!(
            "  {:<44} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        print_percentiles(
            "end to end (scheduled send → terminal event)",
            &latency.end_to_end,
        );
        for hop in &latency.hops {
            print_percentiles(&format!("{} → {}", hop.from, hop.to), &hop.hop);
            print_percentiles("    of which outbox relay", &hop.relay);
        }
        println!(
            "\nprocesses during the latency phase (machine {:.0}% busy):",
            latency.machine_busy * 100.0
        );
        print_processes(&latency.processes);
    }
    if let Some(last) = report.steps.last() {
        println!(
            "\nprocesses during the last step, {:.0} orders/s (machine {:.0}% busy):",
            last.rate,
            last.machine_busy * 100.0
        );
        print_processes(&last.processes);
    }
    println!("\ndead letters: {}", report.dead_letters);
    println!("* CPU summed over every backend; memory is the largest backend's.");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(f: impl Fn(f64) -> i64) -> Vec<(f64, i64)> {
        (0..40)
            .map(|i| (i as f64 * 0.5, f(i as f64 * 0.5)))
            .collect()
    }

    #[test]
    fn a_flat_noisy_lag_is_sustainable() {
        let v = verdict(
            &samples(|t| 200 + ((t * 7.0) as i64 % 5) * 40),
            1000.0,
            LAG_GROWTH_FLOOR,
        );
        assert!(v.sustainable, "{v:?}");
        assert!(v.growth_per_sec.abs() < 50.0, "{v:?}");
    }

    #[test]
    fn a_growing_lag_is_not() {
        // 300 msgs/s of growth against 1000 offered: falling behind by 30%.
        let v = verdict(&samples(|t| (t * 300.0) as i64), 1000.0, LAG_GROWTH_FLOOR);
        assert!(!v.sustainable, "{v:?}");
        assert!((v.growth_per_sec - 300.0).abs() < 1.0, "{v:?}");
    }

    #[test]
    fn a_flat_but_deep_backlog_is_not() {
        // Flat at five seconds' worth of traffic: the step started behind and never caught up.
        let v = verdict(&samples(|_| 5000), 1000.0, LAG_GROWTH_FLOOR);
        assert!(!v.sustainable, "{v:?}");
    }

    #[test]
    fn too_few_samples_decide_nothing_good() {
        assert!(!verdict(&[(0.0, 0)], 1000.0, LAG_GROWTH_FLOOR).sustainable);
        assert!(!verdict(&[], 1000.0, LAG_GROWTH_FLOOR).sustainable);
    }

    #[test]
    fn the_default_ladder_rises_by_the_factor_to_the_cap() {
        let args = SagaArgs {
            rates: vec![],
            start_rate: 100.0,
            factor: 2.0,
            max_rate: 1000.0,
            step_seconds: 10,
            latency_seconds: 10,
            latency_rate: None,
            mix: "happy=1".parse().unwrap(),
            pipe_messages: 1,
            bin_dir: None,
            json: false,
            out: None,
            keep: false,
        };
        assert_eq!(args.ladder().unwrap(), vec![100.0, 200.0, 400.0, 800.0]);
        let bad = SagaArgs {
            factor: 1.0,
            ..args
        };
        assert!(bad.ladder().is_err());
    }

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut h = histogram();
        for us in [1_000u64, 2_000, 3_000, 4_000, 100_000] {
            h.record(us).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 5);
        assert!((p.p50_ms - 3.0).abs() < 0.01, "{p:?}");
        assert!((p.max_ms - 100.0).abs() < 0.1, "{p:?}");
        assert!(p.p50_ms <= p.p90_ms && p.p90_ms <= p.p99_ms && p.p99_ms <= p.max_ms);
    }
}
