//! `troupe schemas register|check`: every schema under `schemas/`, under the subject
//! `topics.yaml` names, with the subject's compatibility level from `topics.yaml`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use troupe_events::topology::{Topology, ValueRecord};
use troupe_runtime::config::RegistryConfig;

use crate::registry_client::RegistryClient;
use crate::{load_topology, Failed};

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Register every schema version, oldest first, and set each subject's compatibility.
    Register {
        /// The folder holding the .avsc files.
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
    /// Check each local schema against the registry; exit non-zero on an incompatible change.
    Check {
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
}

struct LocalSchema {
    file: String,
    text: String,
}

fn read_schemas(dir: &Path, record: &ValueRecord) -> anyhow::Result<Vec<LocalSchema>> {
    record
        .schemas
        .iter()
        .map(|file| {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {} (listed for {})",
                    path.display(),
                    record.record
                )
            })?;
            Ok(LocalSchema {
                file: file.clone(),
                text,
            })
        })
        .collect()
}

pub async fn run(command: SchemasCommand, file: &Path) -> anyhow::Result<()> {
    let topology = load_topology(file)?;
    let client = RegistryClient::new(&RegistryConfig::from_env().url)?;
    client.ping().await?;
    match command {
        SchemasCommand::Register { dir } => register(&client, &topology, &dir).await,
        SchemasCommand::Check { dir } => check(&client, &topology, &dir).await,
    }
}

async fn register(client: &RegistryClient, topology: &Topology, dir: &Path) -> anyhow::Result<()> {
    let mut failures = 0;
    for (_, record) in topology.records() {
        let schemas = read_schemas(dir, record)?;
        client
            .set_compatibility(&record.subject, record.compatibility.as_str())
            .await?;
        for schema in schemas {
            match client.register(&record.subject, &schema.text).await? {
                Ok(id) => {
                    let version = client
                        .lookup(&record.subject, &schema.text)
                        .await?
                        .map(|f| f.version.to_string())
                        .unwrap_or_else(|| "?".to_owned());
                    println!(
                        "{:<64} v{version:<3} id {id:<5} {}",
                        record.subject, schema.file
                    );
                }
                Err(error) => {
                    failures += 1;
                    eprintln!(
                        "{}: {} refused (error {}): {}",
                        record.subject, schema.file, error.error_code, error.message
                    );
                    break;
                }
            }
        }
    }
    if failures > 0 {
        eprintln!("troupe: {failures} subject(s) could not be registered");
        return Err(Failed.into());
    }
    Ok(())
}

async fn check(client: &RegistryClient, topology: &Topology, dir: &Path) -> anyhow::Result<()> {
    let mut failures = 0;
    for (_, record) in topology.records() {
        let schemas = read_schemas(dir, record)?;
        let configured = client.compatibility(&record.subject).await?;
        if let Some(level) = configured.as_deref() {
            if level != record.compatibility.as_str() {
                println!(
                    "{:<64} compatibility is {level} in the registry, {} in topics.yaml",
                    record.subject, record.compatibility
                );
            }
        }
        for schema in schemas {
            if let Some(found) = client.lookup(&record.subject, &schema.text).await? {
                println!(
                    "{:<64} {} registered as v{} (id {})",
                    record.subject, schema.file, found.version, found.id
                );
                continue;
            }
            let reasons = client
                .incompatibilities(&record.subject, &schema.text)
                .await?;
            if reasons.is_empty() {
                println!(
                    "{:<64} {} is new and compatible",
                    record.subject, schema.file
                );
            } else {
                failures += 1;
                println!("{:<64} {} is INCOMPATIBLE:", record.subject, schema.file);
                for reason in reasons {
                    println!("    {reason}");
                }
            }
        }
    }
    if failures > 0 {
        eprintln!("troupe: {failures} schema(s) are incompatible with the registry");
        return Err(Failed.into());
    }
    Ok(())
}
