//! `troupe bench saga`: the five processors under open-loop load.
//!
//! One run, on one machine and one broker:
//! 1. the two baselines are measured first, while the machine is otherwise idle: the bare pipe
//!    ([`super::pipe`]) and the transactional one ([`super::txpipe`]);
//! 2. the five processors start on topics and databases of their own (a fresh prefix),
//!    `--instances` of each;
//! 3. **stepping**: orders are offered on a fixed clock at rising rates; during each step the
//!    broker's view of consumer lag is sampled, and a step is *sustainable* when the lag stays
//!    flat over its second half. The first step that is not ends the stepping; every step is
//!    drained before the next starts;
//! 4. **latency**: orders at shares of the sustainable rate (10%, 50%, 90%); end-to-end
//!    latency counts from each order's *scheduled* send time (so a stall in the sender cannot
//!    hide) to the terminal order event observed; per-hop latency and its stages come from the
//!    broker's append times and the processors' trace header;
//! 5. CPU seconds and memory of every process, broker and database included, per phase, and
//!    what one order costs (CPU per process, PostgreSQL transactions and WAL flushes).

mod cost;
mod deployment;
mod latency;
mod load;
mod observe;
mod report;
mod sample;
mod steps;
mod verdict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use troupe_deploy::Process;
use troupe_events::{topics, Envelope, Event, Metadata};
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::codec::Codec;
use troupe_runtime::config::{with_database, KafkaConfig, PostgresConfig, RegistryConfig};
use troupe_runtime::handler::now_ms;
use troupe_runtime::lag::LagProbe;
use troupe_runtime::publish::Publisher;
use uuid::Uuid;

use super::{PipeResult, TxPipeResult};
use crate::scenario::{self, Mix, Rng};
use deployment::Deployment;
use load::Load;
use observe::{watch, Book};
use report::{print_report, SagaReport};
use sample::{drain, round2, sampled, sum_highs, Probes, Quiet, Sampler, Watched};

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
    /// Seconds of each latency phase.
    #[arg(long, default_value_t = 60)]
    latency_seconds: u64,
    /// Shares of the sustainable rate at which latency is measured.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,0.9")]
    latency_fractions: Vec<f64>,
    /// One latency phase at this rate instead (orders per second).
    #[arg(long)]
    latency_rate: Option<f64>,
    /// Shares of each path through the saga, as for `troupe produce` (default: all happy).
    #[arg(long, default_value = "happy=1")]
    mix: Mix,
    /// Instances of each processor.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Messages for each baseline (the bare pipe and the transactional one).
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

    fn validate(&self) -> anyhow::Result<()> {
        if self.step_seconds < 2 || self.latency_seconds < 2 {
            bail!("--step-seconds and --latency-seconds must be at least 2");
        }
        if let Some(rate) = self.latency_rate {
            if !rate.is_finite() || rate <= 0.0 {
                bail!("--latency-rate must be a positive number of orders per second");
            }
        }
        if self
            .latency_fractions
            .iter()
            .any(|f| !f.is_finite() || *f <= 0.0 || *f > 1.0)
        {
            bail!("--latency-fractions must be shares of the sustainable rate, in (0, 1]");
        }
        if self.instances == 0 || self.instances > 6 {
            bail!("--instances must be 1 to 6 (the topics have 6 partitions)");
        }
        Ok(())
    }
}

pub async fn run(args: SagaArgs, topics_file: &Path) -> anyhow::Result<()> {
    let ladder = args.ladder()?;
    args.validate()?;
    let bin_dir = crate::bin_dir(args.bin_dir.clone())?;
    let kafka = KafkaConfig::from_env();
    TopicAdmin::connect(&kafka).await?;

    eprintln!("bench: the bare pipe ({} messages)", args.pipe_messages);
    let pipe = super::pipe(args.pipe_messages, 300).await?;
    eprintln!("bench: pipe {:.0} msgs/s", pipe.pipe_msgs_per_sec);
    eprintln!(
        "bench: the transactional baseline ({} messages)",
        args.pipe_messages
    );
    let txpipe = super::txpipe(args.pipe_messages, 300).await?;
    eprintln!("bench: transactional {:.0} msgs/s", txpipe.msgs_per_sec);

    let deployment = Deployment::start(topics_file, &bin_dir, args.instances).await?;
    let result = measure(&args, &ladder, (pipe, txpipe), deployment).await;
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

/// Everything the phases of a run share.
struct Bench<'a> {
    load: Load<'a>,
    watched: Watched,
    deployment: &'a mut Deployment,
    quiet: Quiet<'a>,
    book: &'a Arc<Mutex<Book>>,
}

impl Bench<'_> {
    /// Offers `rate` orders a second for `seconds` while sampling, checks the processors
    /// survived, then drains. `hops`: record per-hop latency (the latency phases).
    async fn run_phase(&mut self, hops: bool, rate: f64, seconds: u64) -> anyhow::Result<PhaseRun> {
        let book = self.book;
        let phase = book.lock().expect("book lock").phase(hops);
        let started = Instant::now();
        let (orders, sampler) = sampled(
            self.load.offer(phase, rate, seconds as f64),
            &mut self.watched,
            Probes {
                lag: self.quiet.lag,
                book,
                phase,
            },
        )
        .await?;
        let elapsed = started.elapsed().as_secs_f64();
        self.deployment.processes.check_alive()?;
        let timeout = Duration::from_secs(120 + seconds * 2);
        let drained = drain(book, phase, orders, &self.quiet, timeout).await?;
        Ok(PhaseRun {
            phase,
            orders,
            sampler,
            seconds: elapsed,
            drained,
            timeout,
        })
    }

    /// Distinct events seen for the orders of `phases`.
    fn distinct(&self, phases: &[usize]) -> u64 {
        let book = self.book.lock().expect("book lock");
        phases.iter().map(|p| book.phases[*p].events).sum()
    }
}

async fn measure(
    args: &SagaArgs,
    ladder: &[f64],
    (pipe, txpipe): (PipeResult, TxPipeResult),
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
    let lag = Arc::new(LagProbe::connect(
        &kafka,
        deployment.groups(),
        partitions.clone(),
    )?);
    let saga_topics = deployment.saga_topics();
    let server = PostgresConfig::from_env().url;
    let databases: Vec<String> = Process::services()
        .iter()
        .map(|p| deployment.database(p.name()))
        .collect();
    let mut outboxes = Vec::new();
    for database in &databases {
        outboxes.push(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&with_database(&server, database))
                .await
                .with_context(|| format!("cannot open the database {database}"))?,
        );
    }
    let postgres = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&with_database(&server, "postgres"))
        .await
        .context("cannot open PostgreSQL's statistics")?;
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

    let codec = Codec::for_registry(&registry, &deployment.topics)?;
    let watcher = tokio::spawn(watch(saga_topics.clone(), partitions, codec, book.clone()));
    let watched = Watched::new(&deployment);
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
            deployment.logs().display()
        );
    }
    let baseline = sum_highs(&lag, &saga_topics)?;
    let mut bench = Bench {
        load,
        watched,
        deployment: &mut deployment,
        quiet,
        book: &book,
    };
    let stepped = steps::step_through(&mut bench, args, ladder).await?;
    let latency = if stepped.steps.iter().all(|s| s.drained) {
        let rates = latency::rates(args, stepped.sustainable, ladder[0]);
        latency::measure(
            &mut bench,
            &rates,
            args.latency_seconds,
            &postgres,
            &databases,
        )
        .await?
    } else {
        latency::Measured::default()
    };
    watcher.abort();

    let mut measured = stepped.phases.clone();
    measured.extend(&latency.phases);
    let total_orders = stepped.orders + latency.orders;
    let distinct = bench.distinct(&measured);
    let messages_per_order = if total_orders > 0 {
        distinct as f64 / total_orders as f64
    } else {
        stepped.messages_per_order
    };
    let topics = bench.deployment.topics.clone();
    let dead_letters = sum_highs(&lag, &[topics.name(topics::DEADLETTER)])?;
    let sustainable_msgs = stepped.sustainable.map(|r| round2(r * messages_per_order));
    let written = sum_highs(&lag, &saga_topics)? - baseline;
    let duplicates = (written - distinct as i64).max(0);
    let report = SagaReport {
        bench: "saga",
        run: deployment.id.clone(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mix: format!("{:?}", args.mix.0),
        instances: args.instances,
        ratio_to_pipe: sustainable_msgs.map(|m| round3(m / pipe.pipe_msgs_per_sec)),
        ratio_to_txpipe: sustainable_msgs.map(|m| round3(m / txpipe.msgs_per_sec)),
        pipe,
        txpipe,
        steps: stepped.steps,
        messages_per_order: round2(messages_per_order),
        duplicate_messages: duplicates,
        sustainable_orders_per_sec: stepped.sustainable,
        sustainable_msgs_per_sec: sustainable_msgs,
        latency: latency.reports,
        dead_letters,
    };
    Ok((report, deployment))
}

/// Three decimals: the ratios are small.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_ladder_rises_by_the_factor_to_the_cap() {
        let args = SagaArgs {
            rates: vec![],
            start_rate: 100.0,
            factor: 2.0,
            max_rate: 1000.0,
            step_seconds: 10,
            latency_seconds: 10,
            latency_fractions: vec![0.5],
            latency_rate: None,
            mix: "happy=1".parse().unwrap(),
            instances: 1,
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
}
