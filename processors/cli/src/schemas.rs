//! `troupe schemas register|check`: every schema under `schemas/`, under the subject
//! `topics.yaml` names, with the subject's compatibility level from `topics.yaml`.
//!
//! `check` judges each subject's files against each other first (no registry needed, so CI
//! catches an incompatible new version before anything is registered), then against what the
//! registry holds.

use std::path::{Path, PathBuf};

use anyhow::Context;
use apache_avro::Schema;
use clap::Subcommand;
use troupe_events::compat::{self, Existing};
use troupe_events::topology::{Topology, ValueRecord};
use troupe_events::{catalog, upcast, EventType};
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
    /// Check each subject's local schema files against each other, then against the
    /// registry; exit non-zero on an incompatible change, with the reason.
    Check {
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
        /// Only the local files: no registry needed.
        #[arg(long)]
        offline: bool,
    },
    /// Every version of every event this binary reads, the upcaster from each to the next, and
    /// which version it writes (TROUPE_WRITE_SCHEMA_VERSIONS applied).
    Versions,
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
    let connect = || async {
        let client = RegistryClient::new(&RegistryConfig::from_env())?;
        client.ping().await?;
        anyhow::Ok(client)
    };
    match command {
        SchemasCommand::Versions => versions(),
        SchemasCommand::Register { dir } => {
            let topology = load_topology(file)?;
            register(&connect().await?, &topology, &dir).await
        }
        SchemasCommand::Check { dir, offline } => {
            let topology = load_topology(file)?;
            let mut failures = check_files(&topology, &dir)?;
            if !offline {
                failures += check(&connect().await?, &topology, &dir).await?;
            }
            if failures > 0 {
                eprintln!("troupe: {failures} schema(s) are incompatible");
                return Err(Failed.into());
            }
            Ok(())
        }
    }
}

fn versions() -> anyhow::Result<()> {
    let pins = RegistryConfig::from_env()
        .pins()
        .map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "{:<27} {:<8} {:<40} {:<8} upcast to the next version",
        "EVENT", "VERSION", "RECORD", "WRITES"
    );
    for event_type in EventType::ALL {
        for file in catalog::versions(event_type) {
            let name = if file.version == 1 {
                event_type.name()
            } else {
                ""
            };
            let writes = if pins.writes(event_type) == file {
                "yes"
            } else {
                ""
            };
            let upcast = upcast::upcaster(event_type, file.version)
                .map_or(if file.is_current() { "(current)" } else { "" }, |u| {
                    u.change
                });
            println!(
                "{name:<27} v{:<7} {:<40} {writes:<8} {upcast}",
                file.version,
                file.record_name()
            );
        }
    }
    Ok(())
}

/// Each subject's files against the ones before them, at the subject's level; every file must
/// parse and declare the record it is listed under. Returns how many files fail.
fn check_files(topology: &Topology, dir: &Path) -> anyhow::Result<usize> {
    let mut failures = 0;
    for (_, record) in topology.records() {
        let mut earlier: Vec<Schema> = Vec::new();
        for file in read_schemas(dir, record)? {
            let schema = match Schema::parse_str(&file.text) {
                Ok(schema) => schema,
                Err(error) => {
                    failures += 1;
                    println!(
                        "{:<64} {} does not parse: {error}",
                        record.subject, file.file
                    );
                    break;
                }
            };
            let declared = match &schema {
                Schema::Record(r) => r.name.fullname(None),
                _ => String::from("no record"),
            };
            if declared != record.record {
                failures += 1;
                println!(
                    "{:<64} {} declares {declared}, but topics.yaml lists it under {}",
                    record.subject, file.file, record.record
                );
            }
            let existing: Vec<Existing<'_>> = earlier
                .iter()
                .enumerate()
                .map(|(i, schema)| Existing {
                    version: i as i32 + 1,
                    schema,
                })
                .collect();
            let reasons = compat::check(record.compatibility, &schema, &existing);
            if !reasons.is_empty() {
                failures += 1;
                println!(
                    "{:<64} {} is INCOMPATIBLE with the files listed before it:",
                    record.subject, file.file
                );
                for reason in reasons {
                    println!("    {reason}");
                }
            }
            earlier.push(schema);
        }
    }
    if failures == 0 {
        println!("local schema files: every subject's versions are compatible at its level");
    }
    Ok(failures)
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

/// Each local file against the registry. Returns how many are incompatible.
async fn check(client: &RegistryClient, topology: &Topology, dir: &Path) -> anyhow::Result<usize> {
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
    Ok(failures)
}
