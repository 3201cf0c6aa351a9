//! The model of `topics.yaml`: which topics exist, how they are configured, and which Avro
//! records (and which versions of each) they carry.
//!
//! Parsing resolves defaults, so every [`Topic`] is complete; [`Topology::parse`] rejects a
//! file that names a topic twice, a subject twice, or an unknown compatibility level.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// Errors from reading `topics.yaml`.
///
/// All are configuration mistakes: report them to the user and stop.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file is not valid YAML, or has an unknown or missing field.
    #[error("invalid topics.yaml: {0}")]
    Syntax(#[from] serde_yaml::Error),
    /// The file is well formed but says something contradictory.
    #[error("invalid topics.yaml: {0}")]
    Invalid(String),
}

/// Compatibility levels, as the Confluent Schema Registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    /// Every level, in the order the registry documents them.
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    /// The name on the wire, e.g. `BACKWARD_TRANSITIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parses a wire name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.as_str() == name)
    }

    /// Whether new schemas must be readable by old readers' rules in this direction.
    pub fn checks_backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether old readers must be able to read data written with the new schema.
    pub fn checks_forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    /// Whether the check runs against every earlier version rather than the latest only.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }
}

impl std::fmt::Display for Compatibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole of `topics.yaml`, defaults resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub topics: Vec<Topic>,
}

/// One topic, complete.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub name: String,
    pub description: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Broker-side topic configuration (`cleanup.policy`, `retention.ms`, ...).
    pub config: BTreeMap<String, String>,
    /// What the message key holds, e.g. `order_id`.
    pub key: String,
    pub values: Vec<ValueRecord>,
    pub producers: Vec<String>,
    pub consumers: Vec<String>,
}

/// One Avro record a topic carries, and every version of its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRecord {
    /// The record's full name, e.g. `troupe.orders.OrderPlaced`.
    pub record: String,
    /// The subject it is registered under: `<topic>-<record>`.
    pub subject: String,
    /// Schema files relative to `schemas/`, oldest first.
    pub schemas: Vec<String>,
    pub compatibility: Compatibility,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    topics: Vec<RawTopic>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default = "default_partitions")]
    partitions: i32,
    #[serde(default = "default_replication")]
    replication_factor: i32,
    #[serde(default = "default_compatibility")]
    compatibility: Compatibility,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

impl Default for RawDefaults {
    fn default() -> Self {
        Self {
            partitions: default_partitions(),
            replication_factor: default_replication(),
            compatibility: default_compatibility(),
            config: BTreeMap::new(),
        }
    }
}

fn default_partitions() -> i32 {
    6
}
fn default_replication() -> i32 {
    1
}
fn default_compatibility() -> Compatibility {
    Compatibility::BackwardTransitive
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    name: String,
    #[serde(default)]
    description: String,
    partitions: Option<i32>,
    replication_factor: Option<i32>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    key: String,
    #[serde(default)]
    values: Vec<RawValue>,
    #[serde(default)]
    producers: Vec<String>,
    #[serde(default)]
    consumers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue {
    record: String,
    schemas: Vec<String>,
    compatibility: Option<Compatibility>,
}

impl Topology {
    /// Parses the text of `topics.yaml`.
    pub fn parse(text: &str) -> Result<Self, TopologyError> {
        let raw: RawFile = serde_yaml::from_str(text)?;
        let defaults = raw.defaults;
        let mut names = BTreeSet::new();
        let mut subjects = BTreeSet::new();
        let mut topics = Vec::with_capacity(raw.topics.len());
        for t in raw.topics {
            validate_topic_name(&t.name)?;
            if !names.insert(t.name.clone()) {
                return Err(invalid(format!("topic {} is listed twice", t.name)));
            }
            let partitions = t.partitions.unwrap_or(defaults.partitions);
            if partitions < 1 {
                return Err(invalid(format!(
                    "topic {} needs at least one partition",
                    t.name
                )));
            }
            let replication_factor = t.replication_factor.unwrap_or(defaults.replication_factor);
            if replication_factor < 1 {
                return Err(invalid(format!(
                    "topic {} needs a replication factor of at least one",
                    t.name
                )));
            }
            let mut config = defaults.config.clone();
            config.extend(t.config);
            let mut values = Vec::with_capacity(t.values.len());
            for v in t.values {
                if v.schemas.is_empty() {
                    return Err(invalid(format!(
                        "record {} on topic {} lists no schema file",
                        v.record, t.name
                    )));
                }
                let subject = format!("{}-{}", t.name, v.record);
                if !subjects.insert(subject.clone()) {
                    return Err(invalid(format!("subject {subject} is listed twice")));
                }
                values.push(ValueRecord {
                    record: v.record,
                    subject,
                    schemas: v.schemas,
                    compatibility: v.compatibility.unwrap_or(defaults.compatibility),
                });
            }
            topics.push(Topic {
                name: t.name,
                description: t.description,
                partitions,
                replication_factor,
                config,
                key: t.key,
                values,
                producers: t.producers,
                consumers: t.consumers,
            });
        }
        Ok(Topology { topics })
    }

    /// The topic with this name.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// The same topology with every topic name (and so every subject) behind `prefix`.
    pub fn prefixed(&self, prefix: &str) -> Topology {
        let topics = self
            .topics
            .iter()
            .map(|t| {
                let name = format!("{prefix}{}", t.name);
                let values = t
                    .values
                    .iter()
                    .map(|v| ValueRecord {
                        subject: format!("{name}-{}", v.record),
                        ..v.clone()
                    })
                    .collect();
                Topic {
                    name,
                    values,
                    ..t.clone()
                }
            })
            .collect();
        Topology { topics }
    }

    /// Every value record of every topic, in file order.
    pub fn records(&self) -> impl Iterator<Item = (&Topic, &ValueRecord)> {
        self.topics
            .iter()
            .flat_map(|t| t.values.iter().map(move |v| (t, v)))
    }
}

fn invalid(message: String) -> TopologyError {
    TopologyError::Invalid(message)
}

/// Kafka's rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn validate_topic_name(name: &str) -> Result<(), TopologyError> {
    let legal = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 249 || !legal || name == "." || name == ".." {
        return Err(invalid(format!("{name:?} is not a legal Kafka topic name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const SAMPLE: &str = r#"
defaults:
  partitions: 3
  compatibility: FULL
  config:
    retention.ms: "1000"
topics:
  - name: a.events
    key: order_id
    config:
      cleanup.policy: compact
    values:
      - record: ns.A
        schemas: [a/A.v1.avsc, a/A.v2.avsc]
      - record: ns.B
        schemas: [a/B.v1.avsc]
        compatibility: NONE
    producers: [x]
    consumers: [y, z]
  - name: dlq
    key: original
    partitions: 1
"#;

    #[test]
    fn defaults_are_resolved_per_topic() {
        let topology = Topology::parse(SAMPLE).unwrap();
        let a = topology.topic("a.events").unwrap();
        assert_eq!(a.partitions, 3);
        assert_eq!(a.replication_factor, 1);
        assert_eq!(a.config["retention.ms"], "1000");
        assert_eq!(a.config["cleanup.policy"], "compact");
        assert_eq!(a.values[0].subject, "a.events-ns.A");
        assert_eq!(a.values[0].compatibility, Compatibility::Full);
        assert_eq!(a.values[1].compatibility, Compatibility::None);
        assert_eq!(topology.topic("dlq").unwrap().partitions, 1);
        assert_eq!(topology.records().count(), 2);
    }

    #[rstest]
    #[case::duplicate_topic(
        "topics: [{name: a, key: k}, {name: a, key: k}]",
        "topic a is listed twice"
    )]
    #[case::bad_name("topics: [{name: 'a b', key: k}]", "not a legal Kafka topic name")]
    #[case::zero_partitions("topics: [{name: a, key: k, partitions: 0}]", "at least one partition")]
    #[case::no_schema(
        "topics: [{name: a, key: k, values: [{record: R, schemas: []}]}]",
        "lists no schema file"
    )]
    #[case::unknown_field("topics: [{name: a, key: k, colour: red}]", "unknown field")]
    #[case::unknown_level(
        "topics: [{name: a, key: k, values: [{record: R, schemas: [x], compatibility: SIDEWAYS}]}]",
        "unknown variant"
    )]
    fn mistakes_are_reported(#[case] text: &str, #[case] expected: &str) {
        let error = Topology::parse(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
    }

    #[test]
    fn a_prefix_renames_topics_and_subjects() {
        let topology = Topology::parse(SAMPLE).unwrap().prefixed("t1.");
        let a = topology.topic("t1.a.events").unwrap();
        assert_eq!(a.values[0].subject, "t1.a.events-ns.A");
        assert_eq!(a.partitions, 3);
        assert!(topology.topic("a.events").is_none());
    }

    #[test]
    fn compatibility_names_round_trip() {
        for level in Compatibility::ALL {
            assert_eq!(Compatibility::parse(level.as_str()), Some(level));
        }
        assert_eq!(Compatibility::parse("backward"), None);
    }

    #[test]
    fn the_project_topology_parses() {
        let text = include_str!("../../../topics.yaml");
        let topology = Topology::parse(text).unwrap();
        assert!(topology.topic("troupe.orders.events").is_some());
        assert!(topology.records().count() >= 19);
    }
}
