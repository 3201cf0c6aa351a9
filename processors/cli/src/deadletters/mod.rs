//! `troupe deadletters stats|list|show|redrive`: what is parked on the dead-letter topic, why,
//! and sending it back to where it came from, in each key's order. See
//! `docs/dead-letters.md`.

mod parked;
mod plan;
mod redrive;
mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use troupe_events::topics;
use troupe_runtime::config::{KafkaConfig, ProcessorConfig, RegistryConfig};
use troupe_runtime::topics::Topics;

use crate::registry_client::RegistryClient;
use parked::{age_bucket, event_type_or, parse_time, Filter, Position, Record};
use plan::{Rules, Verdict};

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Counts of what is parked, by reason, processor, event type and age.
    Stats {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        json: bool,
    },
    /// The dead letters still parked, oldest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Also those redriven already, with where they went.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One dead letter: its headers and its payload decoded through the registry.
    Show {
        /// OFFSET, or PARTITION/OFFSET, on the dead-letter topic.
        position: Position,
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters back to the topic they were read from, keeping each key's order.
    Redrive {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show what would move and what would stay, and why; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Messages per second at most.
        #[arg(long)]
        rate: Option<f64>,
        /// A dead letter redriven this many times already stays parked.
        #[arg(long, default_value_t = 3)]
        max_redrives: u32,
        /// Move a dead letter even when an earlier one of its key stays parked.
        #[arg(long)]
        ignore_key_order: bool,
        /// Move dead letters parked longer ago than the consumers' inbox remembers event ids
        /// (TROUPE_INBOX_KEEP_HOURS, default 192): those that applied the message could apply
        /// it again.
        #[arg(long)]
        past_inbox_memory: bool,
        #[arg(long)]
        json: bool,
    },
}

/// Filters shared by `stats`, `list` and `redrive`; each may be given several times.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// A reason code (no_confluent_framing, unknown_schema_id, undecodable_avro,
    /// invalid_event, rejected, handler_failed).
    #[arg(long = "reason")]
    reasons: Vec<String>,
    /// The processor that parked it.
    #[arg(long = "processor")]
    processors: Vec<String>,
    /// The event type (OrderPlaced, ...).
    #[arg(long = "event-type")]
    event_types: Vec<String>,
    /// The message key: an order id (a sku for stock adjustments).
    #[arg(long)]
    key: Option<String>,
    /// Parked at or after: RFC 3339, or an age (30m, 2h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Parked before: RFC 3339, or an age.
    #[arg(long)]
    until: Option<String>,
}

impl FilterArgs {
    fn filter(self, now_ms: i64) -> anyhow::Result<Filter> {
        let time = |text: Option<String>| text.map(|t| parse_time(&t, now_ms)).transpose();
        let filter = Filter {
            reasons: self.reasons,
            processors: self.processors,
            event_types: self.event_types,
            key: self.key,
            since_ms: time(self.since)?,
            until_ms: time(self.until)?,
        };
        filter.validate()?;
        Ok(filter)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The dead-letter topic as read now, with each dead letter's event type.
struct Parked {
    contents: scan::Contents,
    event_types: BTreeMap<Position, String>,
    topic: String,
}

impl Parked {
    async fn read() -> anyhow::Result<Self> {
        let topic = Topics::from_env().name(topics::DEADLETTER);
        let kafka = KafkaConfig::from_env();
        let contents = {
            let topic = topic.clone();
            tokio::task::spawn_blocking(move || scan::read(&kafka, &topic)).await??
        };
        let registry = RegistryClient::new(&RegistryConfig::from_env())?;
        // Only dead letters without an event-type header ask the registry.
        let names = if contents
            .dead_letters
            .iter()
            .any(|r| r.event_type().is_none())
        {
            scan::schema_names(&registry, &contents.dead_letters)
                .await
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let event_types = contents
            .dead_letters
            .iter()
            .map(|r| (r.position, event_type_or(r, &names)))
            .collect();
        Ok(Self {
            contents,
            event_types,
            topic,
        })
    }

    fn event_type(&self, record: &Record) -> &str {
        self.event_types
            .get(&record.position)
            .map_or("-", String::as_str)
    }

    fn selected<'a>(&'a self, filter: &'a Filter) -> impl Fn(&Record) -> bool + 'a {
        move |record| filter.matches(record, self.event_type(record))
    }
}

pub async fn run(command: DeadLettersCommand, topics_file: &Path) -> anyhow::Result<()> {
    let now = now_ms();
    match command {
        DeadLettersCommand::Stats { filter, json } => {
            let filter = filter.filter(now)?;
            let parked = Parked::read().await?;
            stats(&parked, &filter, now, json);
        }
        DeadLettersCommand::List { filter, all, json } => {
            let filter = filter.filter(now)?;
            let parked = Parked::read().await?;
            list(&parked, &filter, all, json);
        }
        DeadLettersCommand::Show { position, json } => {
            let parked = Parked::read().await?;
            show(&parked, position, json).await?;
        }
        DeadLettersCommand::Redrive {
            filter,
            dry_run,
            rate,
            max_redrives,
            ignore_key_order,
            past_inbox_memory,
            json,
        } => {
            if rate.is_some_and(|r| !(0.01..=100_000.0).contains(&r)) {
                bail!("--rate must be between 0.01 and 100000 messages per second");
            }
            let filter = filter.filter(now)?;
            let topology = crate::load_topology(topics_file)?;
            // Before reading: fences an earlier run and aborts what a killed one left open,
            // so the read sees every committed move.
            let redriver = if dry_run {
                None
            } else {
                let topic = Topics::from_env().name(topics::DEADLETTER);
                Some(redrive::Redriver::start(&KafkaConfig::from_env(), &topic).await?)
            };
            let parked = Parked::read().await?;
            let writable: BTreeSet<String> = topology
                .topics
                .iter()
                .map(|t| t.name.clone())
                .filter(|name| *name != parked.topic)
                .collect();
            let allowed = |topic: &str| writable.contains(topic);
            // A day's margin: the consumers that applied it may have done so before it was
            // parked, by as much as the parking one lagged.
            let inbox_keep = ProcessorConfig::from_env("troupe")
                .inbox_keep
                .saturating_sub(std::time::Duration::from_secs(24 * 3600));
            let rules = Rules {
                allowed: &allowed,
                max_redrives,
                keep_key_order: !ignore_key_order,
                parked_after_ms: (!past_inbox_memory).then(|| now - inbox_keep.as_millis() as i64),
            };
            let plan = plan::plan(
                &parked.contents.dead_letters,
                &parked.contents.redriven(),
                parked.selected(&filter),
                &rules,
            );
            redrive_plan(&parked, &plan, redriver.as_ref(), rate, json).await?;
        }
    }
    Ok(())
}

fn time_text(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

fn stats(parked: &Parked, filter: &Filter, now: i64, json: bool) {
    let redriven = parked.contents.redriven();
    let waiting: Vec<&Record> = parked
        .contents
        .dead_letters
        .iter()
        .filter(|r| !redriven.contains(&r.position))
        .filter(|r| parked.selected(filter)(r))
        .collect();
    let mut by: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for record in &waiting {
        let age = now - record.timestamp_ms.unwrap_or(now);
        for (dimension, value) in [
            ("reason", record.reason().to_owned()),
            ("processor", record.processor().to_owned()),
            ("event_type", parked.event_type(record).to_owned()),
            ("age", age_bucket(age).to_owned()),
        ] {
            *by.entry(dimension).or_default().entry(value).or_default() += 1;
        }
    }
    if json {
        println!(
            "{}",
            json!({
                "parked": waiting.len(),
                "redriven": redriven.len(),
                "by": by,
            })
        );
        return;
    }
    println!(
        "{} parked, {} redriven already ({})",
        waiting.len(),
        redriven.len(),
        parked.topic
    );
    for (dimension, counts) in &by {
        println!("by {dimension}:");
        for (value, count) in counts {
            println!("  {value:<28} {count:>8}");
        }
    }
}

fn summary(parked: &Parked, record: &Record) -> Value {
    json!({
        "position": record.position.to_string(),
        "parked_at": time_text(record.timestamp_ms),
        "reason": record.reason(),
        "processor": record.processor(),
        "event_type": parked.event_type(record),
        "key": record.key_text(),
        "from": format!(
            "{}/{}/{}",
            record.origin_topic().unwrap_or("-"),
            record.header(troupe_runtime::deadletter::headers::PARTITION).unwrap_or("-"),
            record.header(troupe_runtime::deadletter::headers::OFFSET).unwrap_or("-"),
        ),
        "redrives": record.redrive_count(),
        "error": record.header(troupe_runtime::deadletter::headers::ERROR),
    })
}

fn list(parked: &Parked, filter: &Filter, all: bool, json: bool) {
    let went: BTreeMap<Position, &str> = parked
        .contents
        .audit
        .iter()
        .filter_map(|a| {
            Some((
                a.redriven()?,
                a.header(troupe_runtime::deadletter::headers::REDRIVEN_TO)?,
            ))
        })
        .collect();
    let rows: Vec<Value> = parked
        .contents
        .dead_letters
        .iter()
        .filter(|r| all || !went.contains_key(&r.position))
        .filter(|r| parked.selected(filter)(r))
        .map(|r| {
            let mut row = summary(parked, r);
            row["redriven_to"] = json!(went.get(&r.position));
            row
        })
        .collect();
    if json {
        println!("{}", Value::Array(rows));
        return;
    }
    println!(
        "{:<10} {:<20} {:<20} {:<12} {:<22} {:<38} FROM",
        "POSITION", "PARKED", "REASON", "PROCESSOR", "EVENT", "KEY"
    );
    for row in &rows {
        let text = |k: &str| row[k].as_str().unwrap_or("-").to_owned();
        let mut from = text("from");
        if let Some(to) = row["redriven_to"].as_str() {
            from = format!("{from} (redriven to {to})");
        }
        println!(
            "{:<10} {:<20} {:<20} {:<12} {:<22} {:<38} {from}",
            text("position"),
            text("parked_at"),
            text("reason"),
            text("processor"),
            text("event_type"),
            text("key"),
        );
    }
    println!("{} dead letter(s)", rows.len());
}

async fn show(parked: &Parked, position: Position, json: bool) -> anyhow::Result<()> {
    let record = parked
        .contents
        .dead_letters
        .iter()
        .find(|r| r.position == position)
        .ok_or_else(|| anyhow!("no dead letter at {position} on {}", parked.topic))?;
    let payload = decode(record).await;
    let mut out = summary(parked, record);
    out["headers"] = json!(record.headers);
    out["payload"] = payload;
    if json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

/// The payload as JSON, decoded with its writer schema from the registry; or why not, with
/// the bytes in hex.
async fn decode(record: &Record) -> Value {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let Some(bytes) = record.payload.as_deref() else {
        return json!({ "error": "no payload" });
    };
    let undecoded = |why: String| json!({ "error": why, "hex": hex(bytes) });
    let Some(id) = record.schema_id() else {
        return undecoded("not Confluent-framed".into());
    };
    let registry = match RegistryClient::new(&RegistryConfig::from_env()) {
        Ok(registry) => registry,
        Err(error) => return undecoded(error.to_string()),
    };
    let schema = match registry.schema_by_id(id).await {
        Ok(Some(schema)) => schema,
        Ok(None) => return undecoded(format!("the registry does not know schema id {id}")),
        Err(error) => return undecoded(error.to_string()),
    };
    let decoded = apache_avro::Schema::parse_str(&schema)
        .map_err(|e| e.to_string())
        .and_then(|schema| {
            apache_avro::reader::datum::GenericDatumReader::builder(&schema)
                .build()
                .and_then(|reader| reader.read_value(&mut &bytes[5..]))
                .map_err(|e| e.to_string())
        })
        .and_then(|value| Value::try_from(value).map_err(|e| e.to_string()));
    match decoded {
        Ok(value) => json!({ "schema_id": id, "value": value }),
        Err(why) => undecoded(format!("does not decode with schema id {id}: {why}")),
    }
}

async fn redrive_plan(
    parked: &Parked,
    plan: &[(Position, Verdict)],
    redriver: Option<&redrive::Redriver>,
    rate: Option<f64>,
    json: bool,
) -> anyhow::Result<()> {
    let dry_run = redriver.is_none();
    let held: Vec<(Position, &str)> = plan
        .iter()
        .filter_map(|(p, v)| match v {
            Verdict::Held(why) => Some((*p, why.as_str())),
            Verdict::Move { .. } => None,
        })
        .collect();
    let moves = redrive::moves(&parked.contents.dead_letters, plan);
    if !json {
        for (position, why) in &held {
            println!("stays   {position}: {why}");
        }
    }
    let mut moved = Vec::new();
    if dry_run {
        for m in &moves {
            if !json {
                println!("would move {} -> {}", m.record.position, m.topic);
            }
        }
    } else if let Some(redriver) = redriver {
        let pace = redrive::Pace { rate };
        redriver
            .run(&moves, &pace, |chunk| {
                for m in chunk {
                    if !json {
                        println!("moved   {} -> {}", m.from, m.to);
                    }
                }
                moved.extend(chunk.iter().cloned());
            })
            .await?;
    }
    if json {
        println!(
            "{}",
            json!({
                "dry_run": dry_run,
                "would_move": if dry_run { moves.iter().map(|m| json!({"from": m.record.position.to_string(), "to": m.topic})).collect::<Vec<_>>() } else { Vec::new() },
                "moved": moved.iter().map(|m| json!({"from": m.from.to_string(), "to": m.to})).collect::<Vec<_>>(),
                "held": held.iter().map(|(p, why)| json!({"position": p.to_string(), "why": why})).collect::<Vec<_>>(),
            })
        );
    } else {
        let verb = if dry_run { "would move" } else { "moved" };
        let count = if dry_run { moves.len() } else { moved.len() };
        println!("{verb} {count}, {} stay parked", held.len());
    }
    Ok(())
}
