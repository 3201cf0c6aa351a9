//! Topic administration from `topics.yaml`: create what is missing, report drift, never delete
//! or shrink anything.
//!
//! The comparison is a pure function ([`diff`]); [`TopicAdmin`] only reads the broker's view and
//! creates topics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use troupe_events::topology::Topic;

use crate::config::KafkaConfig;

/// Errors from talking to the broker's admin API.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The broker did not answer in time: check the address and that it runs.
    #[error("cannot reach Kafka at {bootstrap}: {source}")]
    Unreachable {
        bootstrap: String,
        #[source]
        source: KafkaError,
    },
    /// The broker answered with an error for one topic.
    #[error("broker refused the change to topic {topic}: {code}")]
    CreateRefused {
        topic: String,
        code: RDKafkaErrorCode,
    },
    /// Any other client error; usually transient, safe to retry.
    #[error("kafka admin call failed: {0}")]
    Client(#[from] KafkaError),
}

/// What the broker reports about one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualTopic {
    pub partitions: i32,
    /// Topic configuration as the broker reports it; `None` when the broker does not answer
    /// DescribeConfigs for topics.
    pub config: Option<BTreeMap<String, String>>,
}

/// One way a topic differs from `topics.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The topic has a different partition count. Never changed automatically: adding
    /// partitions re-maps keys to partitions and breaks per-order ordering.
    Partitions { expected: i32, actual: i32 },
    /// A configuration entry differs or is missing.
    Config {
        key: String,
        expected: String,
        actual: Option<String>,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Partitions { expected, actual } => {
                write!(
                    f,
                    "partitions: topics.yaml says {expected}, broker has {actual}"
                )
            }
            Drift::Config {
                key,
                expected,
                actual: Some(actual),
            } => write!(f, "{key}: topics.yaml says {expected}, broker has {actual}"),
            Drift::Config {
                key,
                expected,
                actual: None,
            } => write!(f, "{key}: topics.yaml says {expected}, broker has no value"),
        }
    }
}

/// The outcome for one topic of `apply` or `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    /// Did not exist; `apply` created it (`check` reports it as missing).
    Created,
    Missing,
    /// Exists and matches.
    InSync,
    /// Exists and matches as far as the broker tells: it does not report topic configuration.
    InSyncPartitionsOnly,
    /// Exists and differs; nothing was changed.
    Drifted(Vec<Drift>),
}

impl TopicStatus {
    /// Whether `check` should fail on this status.
    pub fn is_problem(&self) -> bool {
        matches!(self, TopicStatus::Missing | TopicStatus::Drifted(_))
    }
}

/// Compares one topic's desired state with what the broker reports.
pub fn diff(desired: &Topic, actual: &ActualTopic) -> TopicStatus {
    let mut drift = Vec::new();
    if desired.partitions != actual.partitions {
        drift.push(Drift::Partitions {
            expected: desired.partitions,
            actual: actual.partitions,
        });
    }
    let Some(config) = &actual.config else {
        return if drift.is_empty() {
            TopicStatus::InSyncPartitionsOnly
        } else {
            TopicStatus::Drifted(drift)
        };
    };
    for (key, expected) in &desired.config {
        let actual = config.get(key);
        if actual != Some(expected) {
            drift.push(Drift::Config {
                key: key.clone(),
                expected: expected.clone(),
                actual: actual.cloned(),
            });
        }
    }
    if drift.is_empty() {
        TopicStatus::InSync
    } else {
        TopicStatus::Drifted(drift)
    }
}

/// A thin client over the broker's admin API.
pub struct TopicAdmin {
    client: Arc<AdminClient<DefaultClientContext>>,
    config: KafkaConfig,
}

impl std::fmt::Debug for TopicAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicAdmin")
            .field("bootstrap", &self.config.bootstrap)
            .finish()
    }
}

impl TopicAdmin {
    /// Connects and checks the broker answers within the request timeout.
    pub async fn connect(config: &KafkaConfig) -> Result<Self, AdminError> {
        let client: AdminClient<DefaultClientContext> = config
            .client()
            .set("socket.timeout.ms", "10000")
            .set("log_level", "3")
            .create()?;
        let admin = Self {
            client: Arc::new(client),
            config: config.clone(),
        };
        admin.existing_topics().await?;
        Ok(admin)
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new().request_timeout(Some(self.config.request_timeout))
    }

    /// Partition counts of every topic the broker has.
    pub async fn existing_topics(&self) -> Result<BTreeMap<String, i32>, AdminError> {
        self.partition_counts(false).await
    }

    /// Per topic, its partitions (`led_only`: only those with a leader and no error, the
    /// ones a client can produce to and list offsets of).
    async fn partition_counts(&self, led_only: bool) -> Result<BTreeMap<String, i32>, AdminError> {
        let client = Arc::clone(&self.client);
        let timeout = self.config.request_timeout;
        let bootstrap = self.config.bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            let metadata = client
                .inner()
                .fetch_metadata(None, timeout)
                .map_err(|source| AdminError::Unreachable { bootstrap, source })?;
            Ok(metadata
                .topics()
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions()
                        .iter()
                        .filter(|p| !led_only || (p.leader() >= 0 && p.error().is_none()));
                    (t.name().to_owned(), partitions.count() as i32)
                })
                .collect())
        })
        .await
        .expect("metadata task panicked")
    }

    /// The topic configuration the broker reports, or `None` when it does not answer
    /// DescribeConfigs for this topic.
    pub async fn topic_config(
        &self,
        topic: &str,
    ) -> Result<Option<BTreeMap<String, String>>, AdminError> {
        let results = match self
            .client
            .describe_configs(&[ResourceSpecifier::Topic(topic)], &self.options())
            .await
        {
            Ok(results) => results,
            Err(error) => {
                tracing::debug!(%error, topic, "describe configs unsupported");
                return Ok(None);
            }
        };
        let Some(Ok(resource)) = results.into_iter().next() else {
            return Ok(None);
        };
        if resource.entries.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            resource
                .entries
                .into_iter()
                .filter_map(|e| e.value.map(|v| (e.name, v)))
                .collect(),
        ))
    }

    async fn actual(
        &self,
        topic: &Topic,
        existing: &BTreeMap<String, i32>,
    ) -> Result<Option<ActualTopic>, AdminError> {
        let Some(&partitions) = existing.get(&topic.name) else {
            return Ok(None);
        };
        Ok(Some(ActualTopic {
            partitions,
            config: self.topic_config(&topic.name).await?,
        }))
    }

    /// Reports each topic's status without changing anything.
    pub async fn check(&self, topics: &[Topic]) -> Result<Vec<(String, TopicStatus)>, AdminError> {
        let existing = self.existing_topics().await?;
        let mut out = Vec::with_capacity(topics.len());
        for topic in topics {
            let status = match self.actual(topic, &existing).await? {
                Some(actual) => diff(topic, &actual),
                None => TopicStatus::Missing,
            };
            out.push((topic.name.clone(), status));
        }
        Ok(out)
    }

    /// Creates the missing topics and reports drift of the others; never alters or deletes.
    pub async fn apply(&self, topics: &[Topic]) -> Result<Vec<(String, TopicStatus)>, AdminError> {
        let mut statuses = self.check(topics).await?;
        let missing: Vec<&Topic> = topics
            .iter()
            .zip(&statuses)
            .filter(|(_, (_, status))| *status == TopicStatus::Missing)
            .map(|(topic, _)| topic)
            .collect();
        if missing.is_empty() {
            return Ok(statuses);
        }
        let configs: Vec<Vec<(&str, &str)>> = missing
            .iter()
            .map(|t| {
                t.config
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect()
            })
            .collect();
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .zip(&configs)
            .map(|(t, config)| {
                config.iter().fold(
                    NewTopic::new(
                        &t.name,
                        t.partitions,
                        TopicReplication::Fixed(t.replication_factor),
                    ),
                    |topic, (k, v)| topic.set(k, v),
                )
            })
            .collect();
        let results = self
            .client
            .create_topics(&new_topics, &self.options())
            .await?;
        for result in results {
            match result {
                Ok(name) => set_status(&mut statuses, &name, TopicStatus::Created),
                // Another process created it between our check and create: fine.
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    set_status(&mut statuses, &name, TopicStatus::InSyncPartitionsOnly)
                }
                Err((topic, code)) => return Err(AdminError::CreateRefused { topic, code }),
            }
        }
        self.wait_for_metadata(&missing).await?;
        Ok(statuses)
    }

    /// Deletes topics (the bench harness's own; `apply` never deletes anything).
    pub async fn delete(&self, topics: &[&str]) -> Result<(), AdminError> {
        for result in self.client.delete_topics(topics, &self.options()).await? {
            if let Err((topic, code)) = result {
                return Err(AdminError::CreateRefused { topic, code });
            }
        }
        Ok(())
    }

    /// Deletes a consumer group (a dropped read-model copy's). A group with live members is
    /// refused by the broker; the error says so.
    pub async fn delete_group(&self, group: &str) -> Result<(), String> {
        match self.client.delete_groups(&[group], &self.options()).await {
            Err(error) => Err(error.to_string()),
            Ok(results) => match results.into_iter().next() {
                Some(Err((_, code))) => Err(code.to_string()),
                _ => Ok(()),
            },
        }
    }

    /// Waits until the broker's metadata lists every created topic with a leader for each of
    /// its partitions, so a caller can produce to them and list their offsets at once (a
    /// freshly started broker can take seconds to elect them).
    async fn wait_for_metadata(&self, topics: &[&Topic]) -> Result<(), AdminError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        loop {
            let existing = self.partition_counts(true).await?;
            let ready = topics
                .iter()
                .all(|t| existing.get(&t.name).is_some_and(|&p| p >= t.partitions));
            if ready || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn set_status(statuses: &mut [(String, TopicStatus)], name: &str, status: TopicStatus) {
    if let Some(entry) = statuses.iter_mut().find(|(n, _)| n == name) {
        entry.1 = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(partitions: i32, config: &[(&str, &str)]) -> Topic {
        Topic {
            name: "t".into(),
            description: String::new(),
            partitions,
            replication_factor: 1,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            key: "order_id".into(),
            values: vec![],
            producers: vec![],
            consumers: vec![],
        }
    }

    fn actual(partitions: i32, config: Option<&[(&str, &str)]>) -> ActualTopic {
        ActualTopic {
            partitions,
            config: config.map(|c| {
                c.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
        }
    }

    #[test]
    fn matching_topic_is_in_sync() {
        let desired = topic(6, &[("retention.ms", "1")]);
        let got = actual(6, Some(&[("retention.ms", "1"), ("segment.ms", "9")]));
        assert_eq!(diff(&desired, &got), TopicStatus::InSync);
    }

    #[test]
    fn partition_and_config_drift_are_both_reported() {
        let desired = topic(6, &[("retention.ms", "1"), ("cleanup.policy", "delete")]);
        let got = actual(3, Some(&[("retention.ms", "2")]));
        let TopicStatus::Drifted(drift) = diff(&desired, &got) else {
            panic!("expected drift");
        };
        assert_eq!(
            drift,
            vec![
                Drift::Partitions {
                    expected: 6,
                    actual: 3
                },
                Drift::Config {
                    key: "cleanup.policy".into(),
                    expected: "delete".into(),
                    actual: None
                },
                Drift::Config {
                    key: "retention.ms".into(),
                    expected: "1".into(),
                    actual: Some("2".into())
                },
            ]
        );
    }

    #[test]
    fn a_broker_without_config_reports_is_checked_on_partitions() {
        let desired = topic(6, &[("retention.ms", "1")]);
        assert_eq!(
            diff(&desired, &actual(6, None)),
            TopicStatus::InSyncPartitionsOnly
        );
        assert!(diff(&desired, &actual(2, None)).is_problem());
    }
}
