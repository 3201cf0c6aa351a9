//! `troupe`: the operator's command line.

mod bench;
mod deadletters;
mod deploy;
mod lag;
mod orders;
mod produce;
mod readmodels;
mod registry_client;
mod saga;
mod sagas;
mod scenario;
mod schemas;
mod topics;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "troupe",
    version,
    about = "Operate troupe: topics, schemas and saga traffic"
)]
struct Cli {
    /// The topology file.
    #[arg(
        long,
        global = true,
        default_value = "topics.yaml",
        env = "TROUPE_TOPICS_FILE"
    )]
    topics_file: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and check topics from topics.yaml.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Register and check the Avro schemas under schemas/.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
    /// Place orders that take every path through the saga.
    Produce(produce::ProduceArgs),
    /// Replenish or correct stock.
    #[command(subcommand)]
    Stock(produce::StockCommand),
    /// Ask to cancel an order (accepted until it ships).
    Cancel(produce::CancelArgs),
    /// Publish one sample event, or raw bytes, for testing a single processor.
    Publish(produce::PublishArgs),
    /// Measure: `troupe bench saga` under open-loop load, `troupe bench pipe` the bare-Kafka
    /// baseline.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Read orders through the query API (`TROUPE_QUERY_URL`).
    #[command(subcommand)]
    Orders(orders::OrdersCommand),
    /// Rebuild (blue/green), list and drop copies of the read models.
    #[command(subcommand)]
    Readmodels(readmodels::ReadModelsCommand),
    /// Run the processors, the projector and the query API as local processes (the demo).
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// What is parked on the dead-letter topic, and sending it back: stats, list, show,
    /// redrive.
    #[command(subcommand)]
    Deadletters(deadletters::DeadLettersCommand),
    /// Consumer lag of every group, in messages and seconds, as the broker sees it; `troupe lag
    /// export` serves it to Prometheus.
    Lag(lag::LagArgs),
    /// The causation tree of one order's events, with the time each hop took (query API).
    Trace(trace::TraceArgs),
    /// The saga tracker (through the query API): orders stalled or in flight.
    #[command(subcommand)]
    Sagas(sagas::SagasCommand),
    /// The choreography (choreography.yaml): check it, draw it.
    #[command(subcommand)]
    Saga(saga::SagaCommand),
}

/// What a command reports when it ran but found a problem (drift, incompatibility): the
/// details are printed already; the process exits 1.
#[derive(Debug)]
pub struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("check failed")
    }
}

impl std::error::Error for Failed {}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            use clap::error::ErrorKind;
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = error.print();
                return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line: clap's first line, without the usage block.
            let text = error.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "troupe: {} (see troupe --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    // Kafka and registry security: a setting that cannot work stops every command here.
    if let Err(error) = troupe_runtime::config::check_env() {
        eprintln!("troupe: {error}");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Topics(command) => topics::run(command, &cli.topics_file).await,
            Command::Schemas(command) => schemas::run(command, &cli.topics_file).await,
            Command::Produce(args) => produce::produce(args).await,
            Command::Stock(command) => produce::stock(command).await,
            Command::Cancel(args) => produce::cancel(args).await,
            Command::Publish(args) => produce::publish(args).await,
            Command::Bench(command) => bench::run(command, &cli.topics_file).await,
            Command::Orders(command) => orders::run(command).await,
            Command::Readmodels(command) => readmodels::run(command).await,
            Command::Saga(command) => saga::run(command, &cli.topics_file).await,
            Command::Sagas(command) => sagas::run(command).await,
            Command::Trace(args) => trace::run(args).await,
            Command::Lag(args) => lag::run(args, &cli.topics_file).await,
            Command::Deploy(command) => deploy::run(command).await,
            Command::Deadletters(command) => deadletters::run(command, &cli.topics_file).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<Failed>() => ExitCode::from(1),
        Err(error) => {
            eprintln!("troupe: {}", one_line(&error));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Reads and parses the topology file.
pub fn load_topology(path: &std::path::Path) -> anyhow::Result<troupe_events::topology::Topology> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let topology = troupe_events::topology::Topology::parse(&text)?;
    // TROUPE_TOPIC_PREFIX puts every topic (and so every subject) behind a prefix.
    let topics = troupe_runtime::topics::Topics::from_env();
    Ok(if topics.prefix().is_empty() {
        topology
    } else {
        topology.prefixed(topics.prefix())
    })
}

/// Where the troupe binaries are: `explicit`, or the directory of this executable (cargo puts
/// every binary of the workspace there).
pub fn bin_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(dir) => Ok(dir),
        None => std::env::current_exe()?
            .parent()
            .map(std::path::Path::to_path_buf)
            .ok_or_else(|| anyhow::anyhow!("no directory for this executable")),
    }
}
