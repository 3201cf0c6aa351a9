//! `troupe readmodels rebuild|drop|list`: blue/green rebuilds of the read models.
//!
//! A rebuild fills a fresh copy from offset 0 under its own consumer group while the live copy
//! keeps serving, shows progress and lag, and switches the query API over once the new copy has
//! caught up. The old copy is kept (retired) until `drop` is told to remove it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use troupe_readmodels::cql::CqlStore;
use troupe_readmodels::{control, Copy};
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::config::{KafkaConfig, PostgresConfig, ScyllaConfig};
use troupe_runtime::topics::Topics;

use troupe_runtime::lag::LagProbe;

#[derive(Debug, Subcommand)]
pub enum ReadModelsCommand {
    /// Build copy NAME from offset 0 and make it live once it has caught up.
    Rebuild {
        name: String,
        /// Do not start a projector for the copy: one is run elsewhere (a Deployment).
        #[arg(long)]
        no_spawn: bool,
        /// Give up (the copy stays `building`) after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Where troupe-projector is (default: next to this executable).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
    /// Remove a copy that is not live: its database, keyspace and consumer group.
    Drop { name: String },
    /// The copies, their state and their lag.
    List,
}

fn copy(name: &str) -> anyhow::Result<Copy> {
    Copy::new(name).map_err(|e| anyhow!(e))
}

/// Lag of `copies`' projector groups over the projector's topics, with the partition counts
/// the broker reports.
async fn probe(copies: &[Copy], prefix: &str) -> anyhow::Result<(LagProbe, Vec<String>)> {
    let topics: Vec<String> = troupe_readmodels::topics()
        .iter()
        .map(|t| format!("{prefix}{t}"))
        .collect();
    let existing = TopicAdmin::connect(&KafkaConfig::from_env())
        .await?
        .existing_topics()
        .await?;
    let mut partitions = BTreeMap::new();
    for topic in &topics {
        let count = existing
            .get(topic)
            .copied()
            .ok_or_else(|| anyhow!("topic {topic} does not exist (troupe topics apply)"))?;
        partitions.insert(topic.clone(), count);
    }
    let groups = copies.iter().map(|c| (c.group(), topics.clone())).collect();
    Ok((
        LagProbe::connect(&KafkaConfig::from_env(), groups, partitions)?,
        topics,
    ))
}

pub async fn run(command: ReadModelsCommand) -> anyhow::Result<()> {
    let prefix = Topics::from_env().prefix().to_owned();
    let control = control::connect(&PostgresConfig::from_env().url)
        .await
        .context("cannot reach PostgreSQL for the read-model control table")?;
    match command {
        ReadModelsCommand::List => {
            let copies = control::list(&control, &prefix).await?;
            let names: Vec<Copy> = copies
                .iter()
                .map(|c| copy(&c.name))
                .collect::<Result<_, _>>()?;
            let lag = if names.is_empty() {
                BTreeMap::new()
            } else {
                let (lag, _) = probe(&names, &prefix).await?;
                tokio::task::spawn_blocking(move || lag.lag()).await??
            };
            println!("{:<20} {:<9} {:>10}  created", "copy", "state", "lag");
            for (state, name) in copies.iter().zip(&names) {
                println!(
                    "{:<20} {:<9} {:>10}  {}",
                    state.name,
                    state.state,
                    lag.get(&name.group()).copied().unwrap_or(0),
                    state.created_at
                );
            }
            Ok(())
        }
        ReadModelsCommand::Drop { name } => {
            let target = copy(&name)?;
            match control::state(&control, &prefix, &target).await?.as_deref() {
                None => bail!("there is no read-model copy {name}"),
                Some("live") => bail!("copy {name} is live; rebuild another copy first"),
                Some(_) => {}
            }
            let statement = format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                target.database()
            );
            sqlx::query(&statement).execute(&control).await?;
            let cql = CqlStore::connect(
                &ScyllaConfig::from_env().nodes.join(","),
                &target.database(),
            )
            .await
            .map_err(|e| anyhow!(e.0))?;
            cql.drop_keyspace().await.map_err(|e| {
                anyhow!(
                    "database {} dropped, keyspace {} not: {}",
                    target.database(),
                    target.database(),
                    e.0
                )
            })?;
            if let Err(error) = TopicAdmin::connect(&KafkaConfig::from_env())
                .await?
                .delete_group(&target.group())
                .await
            {
                eprintln!(
                    "troupe: consumer group {} not deleted ({error}); stop its projector and delete it later",
                    target.group()
                );
            }
            control::forget(&control, &prefix, &target).await?;
            println!(
                "dropped copy {name}: database and keyspace {} removed",
                target.database()
            );
            Ok(())
        }
        ReadModelsCommand::Rebuild {
            name,
            no_spawn,
            timeout,
            bin_dir,
        } => {
            let target = copy(&name)?;
            if let Some(state) = control::state(&control, &prefix, &target).await? {
                bail!("copy {name} exists ({state}); drop it or choose another name");
            }
            // The broker is asked first: nothing is registered or started if it cannot be.
            let (lag, topics) = probe(std::slice::from_ref(&target), &prefix).await?;
            let state = control::register(&control, &prefix, &target).await?;
            let previous = control::live(&control, &prefix).await?;
            let mut child = None;
            if !no_spawn {
                child = Some(spawn_projector(&target, bin_dir)?);
            }
            let lag = Arc::new(lag);
            let started = Instant::now();
            let mut last_report = Instant::now() - Duration::from_secs(10);
            loop {
                if let Some(child) = child.as_mut() {
                    if let Some(status) = child.0.try_wait()? {
                        bail!(
                            "the projector of copy {name} exited ({status}); log in {}",
                            child.1.display()
                        );
                    }
                }
                let probe = lag.clone();
                let topics = topics.clone();
                let (behind, total) = tokio::task::spawn_blocking(move || {
                    let behind: i64 = probe.lag()?.values().sum();
                    let total: i64 = probe.high_watermarks(&topics)?.values().sum();
                    Ok::<_, anyhow::Error>((behind, total))
                })
                .await??;
                if last_report.elapsed() >= Duration::from_secs(2) || behind == 0 {
                    println!(
                        "rebuild {name}: {} of {total} messages applied, lag {behind} ({:.0} s)",
                        total - behind,
                        started.elapsed().as_secs_f64()
                    );
                    last_report = Instant::now();
                }
                if behind == 0 {
                    break;
                }
                if started.elapsed() > Duration::from_secs(timeout) {
                    bail!("copy {name} has not caught up after {timeout} s (lag {behind}); it stays building");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if state == "live" {
                println!("copy {name} is live (there was no live copy)");
                return Ok(());
            }
            let retired = control::switch(&control, &prefix, &target).await?;
            println!(
                "copy {name} is live; the query API follows within a second{}",
                retired
                    .or(previous)
                    .map(|old| format!(
                        "; copy {old} is retired and kept until `troupe readmodels drop {old}`"
                    ))
                    .unwrap_or_default()
            );
            Ok(())
        }
    }
}

/// Starts `troupe-projector` for `copy` in its own process group, so it outlives this command.
fn spawn_projector(
    copy: &Copy,
    bin_dir: Option<PathBuf>,
) -> anyhow::Result<(std::process::Child, PathBuf)> {
    use std::os::unix::process::CommandExt;
    let dir = crate::bin_dir(bin_dir)?;
    let binary = dir.join("troupe-projector");
    if !binary.exists() {
        bail!("{} is not built (or pass --bin-dir)", binary.display());
    }
    let logs = std::env::var("TROUPE_HOME")
        .map(|home| PathBuf::from(home).join("logs"))
        .unwrap_or_else(|_| std::env::temp_dir());
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("projector-{}.log", copy.name()));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let child = Command::new(&binary)
        .env("TROUPE_READMODEL_COPY", copy.name())
        .env("TROUPE_INSTANCE", format!("projector-{}", copy.name()))
        .env_remove("TROUPE_DATABASE")
        .env_remove("TROUPE_GROUP_ID")
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    // On the local stack, `make down` stops what is recorded in its run directory.
    if let Ok(home) = std::env::var("TROUPE_HOME") {
        let run = PathBuf::from(home).join("run");
        if run.is_dir() {
            let _ = std::fs::write(
                run.join(format!("projector-{}.pid", copy.name())),
                child.id().to_string(),
            );
        }
    }
    println!(
        "started troupe-projector for copy {}: pid {}, log {}",
        copy.name(),
        child.id(),
        log_path.display()
    );
    Ok((child, log_path))
}
