//! `troupe topics apply|check|list`.

use std::path::Path;

use clap::Subcommand;
use troupe_runtime::admin::{TopicAdmin, TopicStatus};
use troupe_runtime::config::KafkaConfig;

use crate::{load_topology, Failed};

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create the topics that are missing; report drift of the others without changing them.
    Apply,
    /// Exit non-zero when a topic is missing or differs from topics.yaml.
    Check,
    /// List the topics of topics.yaml with their producers and consumers.
    List,
}

pub async fn run(command: TopicsCommand, file: &Path) -> anyhow::Result<()> {
    let topology = load_topology(file)?;
    if let TopicsCommand::List = command {
        for topic in &topology.topics {
            println!(
                "{:<32} {:>2} partitions  key {:<9} {} -> {}",
                topic.name,
                topic.partitions,
                topic.key,
                topic.producers.join(","),
                topic.consumers.join(",")
            );
        }
        return Ok(());
    }
    let admin = TopicAdmin::connect(&KafkaConfig::from_env()).await?;
    let statuses = match command {
        TopicsCommand::Apply => admin.apply(&topology.topics).await?,
        _ => admin.check(&topology.topics).await?,
    };
    let mut problems = 0;
    for (name, status) in &statuses {
        match status {
            TopicStatus::Created => println!("created   {name}"),
            TopicStatus::InSync => println!("in sync   {name}"),
            TopicStatus::InSyncPartitionsOnly => {
                println!("in sync   {name} (partitions; the broker does not report topic config)")
            }
            TopicStatus::Missing => println!("missing   {name}"),
            TopicStatus::Drifted(drift) => {
                println!("drift     {name}");
                for d in drift {
                    println!("          {d}");
                }
            }
        }
        if status.is_problem() {
            problems += 1;
        }
    }
    match command {
        TopicsCommand::Check if problems > 0 => {
            eprintln!("troupe: {problems} topic(s) differ from {}", file.display());
            Err(Failed.into())
        }
        TopicsCommand::Apply if problems > 0 => {
            eprintln!(
                "troupe: {problems} topic(s) drifted; nothing was changed (fix topics.yaml or the topic by hand)"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}
