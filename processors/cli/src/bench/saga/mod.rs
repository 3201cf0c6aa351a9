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

mod deployment;
mod load;
mod observe;
mod report;
mod sample;
mod verdict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use troupe_events::{topics, Envelope, Event, EventType, Metadata};
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::codec::Codec;
use troupe_runtime::config::{with_database, KafkaConfig, PostgresConfig, RegistryConfig};
use troupe_runtime::lag::LagProbe;
use troupe_runtime::publish::Publisher;

use super::PipeResult;
use crate::scenario::{self, Mix, Rng};
use deployment::Deployment;
use load::Load;
use observe::{watch, Book};
use report::{print_report, HopReport, LatencyReport, Percentiles, SagaReport, StepReport};
use sample::{drain, round2, sampled, sum_highs, Probes, Quiet, Sampler, Watched};
use troupe_deploy::Process;
use troupe_runtime::handler::now_ms;
use uuid::Uuid;
use verdict::{verdict, IN_FLIGHT_GROWTH_FLOOR, LAG_GROWTH_FLOOR};

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
    deployment.processes.check_alive()?;
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
    for service in Process::services().iter().map(Process::name) {
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
            deployment.logs().display()
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
}
