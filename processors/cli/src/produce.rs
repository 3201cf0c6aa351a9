//! `troupe produce`, `troupe stock`, `troupe cancel`, `troupe publish`: the storefront.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::Semaphore;
use troupe_events::domain::CancellationReason;
use troupe_events::{samples, topics, Envelope, Event, EventType, Metadata};
use troupe_runtime::codec::Codec;
use troupe_runtime::config::{KafkaConfig, RegistryConfig};
use troupe_runtime::handler::now_ms;
use troupe_runtime::publish::{Position, Publisher};
use troupe_runtime::topics::Topics;
use uuid::Uuid;

use crate::scenario::{self, Mix, Rng, Scenario};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// How many orders to place.
    #[arg(long, default_value_t = 100)]
    orders: u64,
    /// Orders per second, on a fixed schedule (open loop); 0 for as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// One scenario for every order, or `mixed`.
    #[arg(long, default_value = "mixed")]
    scenario: String,
    /// Shares of a mixed run, e.g. happy=60,out-of-stock=10,cancel=30.
    #[arg(long)]
    mix: Option<Mix>,
    /// Seed of the generator: the same seed places the same orders.
    #[arg(long)]
    seed: Option<u64>,
    /// Do not add the stock the orders need before placing them.
    #[arg(long, conflicts_with = "stock_only")]
    no_stock: bool,
    /// Only add the stock these orders need (same --seed, same orders), and place nothing.
    /// Stock adjustments and orders travel on different topics; a caller that must not race
    /// them adds stock first, waits until the inventory has applied it, then places the orders
    /// with --no-stock.
    #[arg(long)]
    stock_only: bool,
    /// After publishing, wait up to this many seconds for every order's outcome and print them.
    #[arg(long)]
    wait: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum StockCommand {
    /// Set the available quantity of a sku.
    Set { sku: String, quantity: i32 },
    /// Add to (or, negative, take from) the available quantity of a sku.
    Add {
        sku: String,
        #[arg(allow_hyphen_values = true)]
        quantity: i32,
    },
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The order id.
    order: Uuid,
    #[arg(long, default_value = "requested by the customer")]
    reason: String,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// An event type (its sample, for testing one processor), e.g. OrderPlaced.
    #[arg(conflicts_with = "raw")]
    event_type: Option<String>,
    /// The order id to put in the sample's metadata (default: a new one).
    #[arg(long)]
    order: Option<Uuid>,
    /// Publish raw bytes from this file instead (`-` for stdin), unchanged: for bad input.
    #[arg(long, requires = "topic")]
    raw: Option<std::path::PathBuf>,
    /// The base topic for raw bytes, e.g. troupe.orders.events.
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    key: Option<String>,
}

fn publisher() -> anyhow::Result<Publisher> {
    Ok(Publisher::new(
        &KafkaConfig::from_env(),
        &RegistryConfig::from_env(),
        Topics::from_env(),
    )?)
}

/// Checks the broker answers before doing anything (an unreachable broker is one line).
async fn check_broker() -> anyhow::Result<()> {
    troupe_runtime::admin::TopicAdmin::connect(&KafkaConfig::from_env()).await?;
    Ok(())
}

pub async fn stock(command: StockCommand) -> anyhow::Result<()> {
    check_broker().await?;
    let publisher = publisher()?;
    let (sku, delta, set_to) = match command {
        StockCommand::Set { sku, quantity } if quantity < 0 => {
            bail!("cannot set {sku} to {quantity}: stock is never negative")
        }
        StockCommand::Set { sku, quantity } => (sku, 0, Some(quantity)),
        StockCommand::Add { sku, quantity } => (sku, quantity, None),
    };
    let position = publisher.publish(&adjustment(&sku, delta, set_to)).await?;
    println!("published StockAdjusted for {sku} at {position}");
    Ok(())
}

fn adjustment(sku: &str, delta: i32, set_to: Option<i32>) -> Envelope {
    Envelope {
        meta: Metadata::origin(Uuid::nil(), "cli", now_ms()),
        event: Event::StockAdjusted {
            sku: sku.to_owned(),
            delta,
            set_to,
        },
    }
}

pub async fn cancel(args: CancelArgs) -> anyhow::Result<()> {
    check_broker().await?;
    let publisher = publisher()?;
    let envelope = Envelope {
        meta: Metadata::origin(args.order, "cli", now_ms()),
        event: Event::OrderCancellationRequested {
            reason: args.reason,
        },
    };
    let position = publisher.publish(&envelope).await?;
    println!("requested cancellation of {} at {position}", args.order);
    Ok(())
}

pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    check_broker().await?;
    let publisher = publisher()?;
    if let Some(path) = args.raw {
        let bytes = if path.as_os_str() == "-" {
            let mut buffer = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)?;
            buffer
        } else {
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?
        };
        let topic = publisher
            .topics()
            .name(args.topic.as_deref().unwrap_or_default());
        let position = publisher
            .publish_raw(&topic, args.key.as_deref(), &bytes, &[])
            .await?;
        println!(
            "published {} raw bytes to {topic} at {position}",
            bytes.len()
        );
        return Ok(());
    }
    let name = args
        .event_type
        .ok_or_else(|| anyhow!("name an event type, or use --raw FILE --topic TOPIC"))?;
    let event_type = EventType::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| anyhow!("unknown event type {name:?}"))?;
    let envelope = samples::sample(event_type, args.order.unwrap_or_else(Uuid::now_v7));
    let position = publisher.publish(&envelope).await?;
    println!(
        "published {} for order {} to {} at {position}",
        event_type.name(),
        envelope.meta.order_id,
        publisher.topics().name(event_type.topic())
    );
    Ok(())
}

pub async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let mix = match args.scenario.as_str() {
        "mixed" => args.mix.clone().unwrap_or_default(),
        one => Mix(vec![(one.parse::<Scenario>().map_err(|e| anyhow!(e))?, 1)]),
    };
    if args.rate < 0.0 || !args.rate.is_finite() {
        bail!("--rate must be zero or a positive number of orders per second");
    }
    check_broker().await?;
    let publisher = publisher()?;
    let seed = args.seed.unwrap_or_else(|| now_ms() as u64);
    let mut rng = Rng::new(seed);
    let now = now_ms();
    let orders: Vec<scenario::Order> = (0..args.orders)
        .map(|n| {
            let scenario = mix.pick(&mut rng);
            scenario::build(scenario, n, &mut rng, now)
        })
        .collect();

    if !args.no_stock {
        let mut demand: BTreeMap<String, i64> = BTreeMap::new();
        for order in &orders {
            for (sku, units) in order.demand() {
                *demand.entry(sku).or_default() += units;
            }
        }
        for (sku, units) in &demand {
            publisher
                .publish(&adjustment(
                    sku,
                    i32::try_from(*units).unwrap_or(i32::MAX),
                    None,
                ))
                .await?;
        }
        println!(
            "added stock for {} skus ({} units)",
            demand.len(),
            demand.values().sum::<i64>()
        );
        if args.stock_only {
            return Ok(());
        }
    }

    let racing: HashSet<Uuid> = orders
        .iter()
        .filter(|o| o.scenario == Scenario::CancelRace)
        .map(|o| o.order_id)
        .collect();
    let race = if racing.is_empty() {
        None
    } else {
        Some(RaceCancellations::start(&publisher, racing)?)
    };

    let progress = progress_bar(args.orders);
    let started = Instant::now();
    let period = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let in_flight = Arc::new(Semaphore::new(2_000));
    let mut tasks = Vec::with_capacity(orders.len());
    for (i, order) in orders.iter().enumerate() {
        if let Some(period) = period {
            // Open loop: order i leaves at start + i × period, whatever happened before.
            tokio::time::sleep_until(tokio::time::Instant::from_std(started + period * i as u32))
                .await;
        }
        let permit = in_flight.clone().acquire_owned().await?;
        let publisher = publisher.clone();
        let requests = order.requests.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = None;
            for request in &requests {
                last = Some(publisher.publish(request).await?);
            }
            drop(permit);
            if let Some(bar) = &progress {
                bar.inc(1);
            }
            Ok::<Option<Position>, anyhow::Error>(last)
        }));
    }
    let mut last = None;
    for task in tasks {
        last = task.await??.or(last);
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut per_scenario: BTreeMap<Scenario, u64> = BTreeMap::new();
    for order in &orders {
        *per_scenario.entry(order.scenario).or_default() += 1;
    }
    println!(
        "published {} orders in {elapsed:.2} s ({:.0} orders/s), seed {seed}{}",
        orders.len(),
        orders.len() as f64 / elapsed.max(1e-9),
        last.map(|p| format!(", last position {p}"))
            .unwrap_or_default()
    );
    for (scenario, count) in &per_scenario {
        println!("  {:<18} {count}", scenario.name());
    }
    if let Some(race) = race {
        let (asked, racing) = race.finish().await?;
        println!("  cancel-race: asked to cancel {asked} of {racing} orders the moment their payment was authorised");
    }
    if let Some(wait) = args.wait {
        let outcomes = watch_outcomes(&publisher, &orders, Duration::from_secs(wait)).await?;
        report(&orders, &outcomes)?;
    }
    Ok(())
}

fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total < 500 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} orders {per_sec} eta {eta}")
            .expect("valid template"),
    );
    Some(bar)
}

/// How long `cancel-race` waits, after the last order is placed, for the payments it races.
const RACE_WAIT: Duration = Duration::from_secs(60);

/// The `cancel-race` scenario's storefront: watches the payment events from before the orders
/// are placed, and asks to cancel each racing order the moment its payment is authorised, so
/// the cancellation races the shipment that payment triggers.
struct RaceCancellations {
    task: tokio::task::JoinHandle<anyhow::Result<usize>>,
    racing: usize,
    placed: tokio::sync::oneshot::Sender<()>,
}

impl RaceCancellations {
    fn start(publisher: &Publisher, racing: HashSet<Uuid>) -> anyhow::Result<Self> {
        let kafka = KafkaConfig::from_env();
        let topic = publisher.topics().name(topics::PAYMENT_EVENTS);
        let consumer: StreamConsumer = kafka
            .client()
            .set("group.id", format!("troupe-cancel-race-{}", Uuid::now_v7()))
            .set("enable.auto.commit", "false")
            .create()?;
        // From the log end as it is now: only payments of the orders about to be placed.
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) =
                consumer.fetch_watermarks(&topic, partition.id(), Duration::from_secs(10))?;
            assignment.add_partition_offset(&topic, partition.id(), Offset::Offset(high))?;
        }
        consumer.assign(&assignment)?;
        let (placed, mut placed_rx) = tokio::sync::oneshot::channel::<()>();
        let publisher = publisher.clone();
        let count = racing.len();
        let task = tokio::spawn(async move {
            let mut waiting = racing;
            let mut deadline: Option<tokio::time::Instant> = None;
            while !waiting.is_empty() {
                let timeout = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let message = tokio::select! {
                    _ = &mut placed_rx, if deadline.is_none() => {
                        deadline = Some(tokio::time::Instant::now() + RACE_WAIT);
                        continue;
                    }
                    () = timeout => break,
                    message = consumer.recv() => message?,
                };
                let authorised = troupe_runtime::processor::headers_of(message.headers())
                    .iter()
                    .any(|(k, v)| {
                        k == troupe_runtime::processor::EVENT_TYPE_HEADER
                            && v == "PaymentAuthorized"
                    });
                let order = message
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .and_then(|k| k.parse::<Uuid>().ok());
                if let (true, Some(order)) = (authorised, order) {
                    if waiting.remove(&order) {
                        publisher
                            .publish(&Envelope {
                                meta: Metadata::origin(order, "cli", now_ms()),
                                event: Event::OrderCancellationRequested {
                                    reason: "changed my mind as it was paid".into(),
                                },
                            })
                            .await?;
                    }
                }
            }
            Ok(count - waiting.len())
        });
        Ok(Self {
            task,
            racing: count,
            placed,
        })
    }

    /// Waits, at most [`RACE_WAIT`] from now, until every racing order was asked to cancel;
    /// returns how many were, of how many.
    async fn finish(self) -> anyhow::Result<(usize, usize)> {
        let _ = self.placed.send(());
        let asked = self.task.await??;
        Ok((asked, self.racing))
    }
}

/// The terminal outcome of an order: `CONFIRMED`, `REJECTED` or the cancellation reason.
fn outcome(event: &Event) -> Option<String> {
    match event {
        Event::OrderConfirmed { .. } => Some("CONFIRMED".into()),
        Event::OrderRejected { .. } => Some("REJECTED".into()),
        Event::OrderCancelled { reason, .. } => Some(reason.symbol().into()),
        _ => None,
    }
}

/// Reads the order events from the start until every order has an outcome or time is up.
async fn watch_outcomes(
    publisher: &Publisher,
    orders: &[scenario::Order],
    timeout: Duration,
) -> anyhow::Result<HashMap<Uuid, String>> {
    let kafka = KafkaConfig::from_env();
    let topic = publisher.topics().name(topics::ORDER_EVENTS);
    let metadata_client: BaseConsumer = kafka.client().create()?;
    let metadata = metadata_client.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    let consumer: StreamConsumer = kafka
        .client()
        .set("group.id", format!("troupe-cli-{}", Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", kafka.fetch_wait_ms.to_string())
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let codec = Codec::for_registry(&RegistryConfig::from_env(), publisher.topics())?;
    let wanted: HashSet<Uuid> = orders.iter().map(|o| o.order_id).collect();
    let mut outcomes = HashMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    eprintln!(
        "waiting up to {}s for {} outcomes",
        timeout.as_secs(),
        wanted.len()
    );
    while outcomes.len() < wanted.len() {
        let message = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => break,
            Ok(message) => message?,
        };
        let Ok(envelope) = codec.decode(message.payload()).await else {
            continue;
        };
        if !wanted.contains(&envelope.meta.order_id) {
            continue;
        }
        if let Some(result) = outcome(&envelope.event) {
            outcomes.entry(envelope.meta.order_id).or_insert(result);
        }
    }
    Ok(outcomes)
}

fn report(orders: &[scenario::Order], outcomes: &HashMap<Uuid, String>) -> anyhow::Result<()> {
    let mut by_outcome: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_scenario: BTreeMap<Scenario, (u64, u64)> = BTreeMap::new();
    for order in orders {
        let got = outcomes
            .get(&order.order_id)
            .map_or("(no outcome yet)", String::as_str);
        *by_outcome.entry(got).or_default() += 1;
        let entry = by_scenario.entry(order.scenario).or_default();
        entry.0 += 1;
        if order.scenario.expected().contains(&got) {
            entry.1 += 1;
        }
    }
    println!("\noutcome                          orders");
    for (outcome, count) in &by_outcome {
        let label = match *outcome {
            "CONFIRMED" | "REJECTED" | "(no outcome yet)" => outcome.to_string(),
            reason if CancellationReason::from_symbol(reason).is_some() => {
                format!("CANCELLED {reason}")
            }
            other => other.to_string(),
        };
        println!("{label:<32} {count:>6}");
    }
    println!("\nscenario           expected              as expected");
    for (scenario, (total, good)) in &by_scenario {
        println!(
            "{:<18} {:<21} {good}/{total}",
            scenario.name(),
            scenario.expected().join(" or ")
        );
    }
    let missing = orders.len() - outcomes.len();
    if missing > 0 {
        bail!("{missing} order(s) had no outcome in time");
    }
    Ok(())
}
