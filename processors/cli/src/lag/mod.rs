//! `troupe lag`: every consumer group's lag on the topology's topics, in messages and in
//! seconds, as the broker sees it; `troupe lag export` serves the same figures to Prometheus.

mod export;
mod observe;
mod rates;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use observe::{Observation, Observer};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LagArgs {
    #[command(subcommand)]
    command: Option<LagCommand>,
    #[command(flatten)]
    show: ShowArgs,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// Only this group (repeatable); default: every group that committed on a topology topic.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Every partition, not only the groups' totals and the partitions behind.
    #[arg(long)]
    all: bool,
    /// One JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum LagCommand {
    /// Serve the figures as Prometheus metrics (lag in messages and seconds, velocity, time
    /// to close, members), observing the broker every --interval.
    Export {
        #[arg(
            long,
            env = "TROUPE_LAG_EXPORTER_LISTEN",
            default_value = "127.0.0.1:29308"
        )]
        listen: SocketAddr,
        /// Seconds between two looks at the broker.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
        /// Only this group (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
}

pub fn now_ms() -> i64 {
    troupe_runtime::handler::now_ms()
}

pub async fn run(args: LagArgs, topics_file: &Path) -> anyhow::Result<()> {
    let topics: Vec<String> = crate::load_topology(topics_file)?
        .topics
        .into_iter()
        .map(|t| t.name)
        .collect();
    match args.command {
        Some(LagCommand::Export {
            listen,
            interval,
            groups,
        }) => {
            let observer = Observer::connect(topics, groups).await?;
            let stop = troupe_runtime::shutdown::signal();
            export::run(observer, listen, Duration::from_secs(interval), stop).await
        }
        None => {
            let ShowArgs { groups, all, json } = args.show;
            let mut observer = Observer::connect(topics, groups).await?;
            let observation = tokio::task::spawn_blocking(move || observer.observe(now_ms))
                .await
                .map_err(|e| anyhow::anyhow!("the observation panicked: {e}"))??;
            if json {
                println!("{}", to_json(&observation));
            } else {
                print!("{}", table(&observation, all));
            }
            Ok(())
        }
    }
}

/// Per group: (members, lag, the worst partition's seconds).
fn totals(o: &Observation) -> BTreeMap<&str, (usize, i64, Option<f64>)> {
    let mut totals: BTreeMap<&str, (usize, i64, Option<f64>)> = o
        .members
        .iter()
        .map(|(group, members)| (group.as_str(), (*members, 0, None)))
        .collect();
    for ((group, _, _), f) in &o.partitions {
        let entry = totals.entry(group).or_default();
        entry.1 += f.lag;
        if let Some(s) = f.seconds {
            entry.2 = Some(entry.2.map_or(s, |worst: f64| worst.max(s)));
        }
    }
    totals
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "?".to_owned(), |s| format!("{s:.1}"))
}

fn table(o: &Observation, all: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if o.members.is_empty() {
        out.push_str("no consumer group has committed on the topology's topics\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<32} {:>7} {:>10} {:>9}",
        "GROUP", "MEMBERS", "LAG", "SECONDS"
    );
    for (group, (members, lag, worst)) in totals(o) {
        let _ = writeln!(
            out,
            "{group:<32} {members:>7} {lag:>10} {:>9}",
            seconds(worst)
        );
    }
    let shown: Vec<_> = o
        .partitions
        .iter()
        .filter(|(_, f)| all || f.lag > 0)
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<32} {:<34} {:>4} {:>10} {:>10} {:>8} {:>9}",
            "GROUP", "TOPIC", "PART", "LOG END", "COMMITTED", "LAG", "SECONDS"
        );
        for ((group, topic, partition), f) in shown {
            let _ = writeln!(
                out,
                "{group:<32} {topic:<34} {partition:>4} {:>10} {:>10} {:>8} {:>9}",
                f.log_end,
                f.committed,
                f.lag,
                seconds(f.seconds)
            );
        }
    }
    out
}

fn to_json(o: &Observation) -> serde_json::Value {
    let groups: Vec<_> = totals(o)
        .into_iter()
        .map(|(group, (members, lag, worst))| {
            json!({"group": group, "members": members, "lag": lag, "max_seconds": worst})
        })
        .collect();
    let partitions: Vec<_> = o
        .partitions
        .iter()
        .map(|((group, topic, partition), f)| {
            json!({
                "group": group, "topic": topic, "partition": partition,
                "log_end": f.log_end, "committed": f.committed,
                "lag": f.lag, "seconds": f.seconds,
            })
        })
        .collect();
    json!({"observed_at_ms": o.at_ms, "groups": groups, "partitions": partitions})
}
