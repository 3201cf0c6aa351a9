//! The deployment under test: the five processors on topics and databases of their own, started
//! through `troupe-deploy` like the demo's and the tests', and removed afterwards.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use troupe_deploy::{Process, Spec};
use troupe_events::choreography::Choreography;
use troupe_events::topics;
use troupe_events::topology::Topology;
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::config::{with_database, KafkaConfig, PostgresConfig};
use troupe_runtime::topics::Topics;
use uuid::Uuid;

/// The saga's processes, and the names they were given.
pub(super) struct Deployment {
    pub id: String,
    pub topics: Topics,
    pub topology: Topology,
    pub processes: troupe_deploy::Deployment,
}

impl Deployment {
    /// Creates the topics and starts `instances` of each processor, waiting until all are
    /// healthy.
    pub async fn start(
        topics_file: &Path,
        bin_dir: &Path,
        instances: usize,
    ) -> anyhow::Result<Self> {
        let id = format!("bench_{}", &Uuid::now_v7().simple().to_string()[20..]);
        let prefix = format!("{id}.");
        let text = std::fs::read_to_string(topics_file)
            .with_context(|| format!("cannot read {}", topics_file.display()))?;
        let topology = Topology::parse(&text)?.prefixed(&prefix);
        let kafka = KafkaConfig::from_env();
        TopicAdmin::connect(&kafka)
            .await?
            .apply(&topology.topics)
            .await
            .context("cannot create the bench topics")?;
        // The servers as this process reaches them; every variable of the stack passes on.
        let servers = std::env::vars()
            .filter(|(k, _)| k.starts_with("TROUPE_") && k != "TROUPE_HOME")
            .collect();
        let processes = troupe_deploy::Deployment::new(Spec {
            name: Some(id.clone()),
            topic_prefix: prefix.clone(),
            servers,
            settings: vec![("RUST_LOG".into(), "warn".into())],
            bin_dir: bin_dir.to_owned(),
            logs: std::env::temp_dir().join(format!("troupe-{id}")),
            detached: None,
        });
        processes
            .start(&Process::services(), Duration::from_secs(60))
            .await?;
        for number in 1..instances {
            for process in Process::services() {
                processes.spawn(process, number, &[])?;
            }
        }
        for number in 1..instances {
            for process in Process::services() {
                processes
                    .wait_healthy(process.name(), number, Duration::from_secs(60))
                    .await?;
            }
        }
        Ok(Self {
            id,
            topics: Topics::with_prefix(prefix),
            topology,
            processes,
        })
    }

    pub fn database(&self, service: &str) -> String {
        self.processes.database(service)
    }

    /// (group, topics it consumes) for every service, as the choreography says.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let choreography = Choreography::current();
        choreography
            .services
            .iter()
            .map(|service| {
                let topics = choreography
                    .subscriptions(&service.name)
                    .iter()
                    .map(|t| self.topics.name(t))
                    .collect();
                (self.processes.group(&service.name), topics)
            })
            .collect()
    }

    /// The saga's topics: every topic but the dead-letter one.
    pub fn saga_topics(&self) -> Vec<String> {
        let deadletter = self.topics.name(topics::DEADLETTER);
        self.topology
            .topics
            .iter()
            .map(|t| t.name.clone())
            .filter(|t| *t != deadletter)
            .collect()
    }

    /// Where the processors' logs are.
    pub fn logs(&self) -> &Path {
        &self.processes.spec().logs
    }

    /// Stops the processors, then (unless `keep`) deletes the topics and drops the databases.
    pub async fn teardown(self, keep: bool) -> anyhow::Result<()> {
        let Deployment {
            id,
            topics: prefixed,
            topology,
            processes,
        } = self;
        let logs = processes.spec().logs.clone();
        let databases: Vec<String> = Process::services()
            .iter()
            .map(|p| processes.database(p.name()))
            .collect();
        drop(processes);
        if keep {
            eprintln!(
                "kept topics {}* and databases troupe_*_{id}",
                prefixed.prefix()
            );
            return Ok(());
        }
        let names: Vec<&str> = topology.topics.iter().map(|t| t.name.as_str()).collect();
        TopicAdmin::connect(&KafkaConfig::from_env())
            .await?
            .delete(&names)
            .await?;
        let url = with_database(&PostgresConfig::from_env().url, "postgres");
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await?;
        for database in databases {
            let statement = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
            sqlx::query(&statement).execute(&mut connection).await?;
        }
        let _ = std::fs::remove_dir_all(&logs);
        Ok(())
    }
}
