//! Connection settings, defaults in code, overridden by the environment.
//!
//! The variable names are the ones `.troupe/stack.env` exports after `make up`, and the ones a
//! Helm `env:` entry sets in production.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use troupe_events::catalog::Pins;

use crate::security::{KafkaSecurity, RegistrySecurity, SecurityError};
use crate::topics::Topics;

/// The default ports of the local stack (`scripts/stack.sh`), all on 127.0.0.1.
pub mod ports {
    pub const KAFKA: u16 = 29092;
    pub const SCHEMA_REGISTRY: u16 = 28081;
    pub const POSTGRES: u16 = 25432;
    pub const CQL: u16 = 29042;
    pub const PROMETHEUS: u16 = 29090;
}

/// Reads `name` from the environment, or `default` when unset or empty.
pub fn env_or(name: &str, default: impl Into<String>) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => default.into(),
    }
}

/// Checks the settings a person can get wrong in a way no retry fixes — Kafka's and the
/// registry's security ([`crate::security`]) — so that a process refuses to start with one line
/// naming the variable, instead of failing at its first connection. Every entry point calls it
/// first (`processor::main`, the projector, the CLI); [`KafkaConfig::from_env`] and
/// [`RegistryConfig::from_env`] rely on it.
pub fn check_env() -> Result<(), SecurityError> {
    KafkaSecurity::from_env()?;
    RegistrySecurity::from_env()?;
    Ok(())
}

/// A security setting from the environment, which [`check_env`] has checked at start: an error
/// here means a caller that did not, and panics with the variable's name.
fn checked<T>(parsed: Result<T, SecurityError>) -> T {
    parsed.unwrap_or_else(|error| panic!("{error} (config::check_env reports this at start)"))
}

/// How to reach Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `TROUPE_KAFKA_BOOTSTRAP`: comma-separated `host:port` list.
    pub bootstrap: String,
    /// `TROUPE_KAFKA_SECURITY_PROTOCOL`, `TROUPE_KAFKA_SASL_*`, `TROUPE_KAFKA_SSL_*`: SASL and
    /// TLS, for every client of the process.
    pub security: KafkaSecurity,
    /// How long an administrative call may take before the broker counts as unreachable.
    pub request_timeout: Duration,
    /// `TROUPE_KAFKA_FETCH_WAIT_MS` (default 100): the longest the broker may hold a fetch
    /// while no data is there (`fetch.wait.max.ms`). Kafka answers as soon as one byte arrives
    /// (`fetch.min.bytes` 1), so this costs no latency: it only sets how often an idle consumer
    /// asks again.
    pub fetch_wait_ms: u64,
    /// `TROUPE_KAFKA_DEBUG`: librdkafka debug contexts (e.g. `cgrp,fetch`), logged at debug.
    pub debug: String,
    /// `TROUPE_PRODUCE_TIMEOUT_MS` (default 15000): how long the CLI's publisher keeps a
    /// message it could not deliver (the broker down, say) before the command fails.
    pub produce_timeout_ms: u64,
}

impl KafkaConfig {
    pub fn from_env() -> Self {
        Self {
            bootstrap: env_or(
                "TROUPE_KAFKA_BOOTSTRAP",
                format!("127.0.0.1:{}", ports::KAFKA),
            ),
            security: checked(KafkaSecurity::from_env()),
            request_timeout: Duration::from_secs(10),
            fetch_wait_ms: number("TROUPE_KAFKA_FETCH_WAIT_MS", 100),
            debug: env_or("TROUPE_KAFKA_DEBUG", ""),
            produce_timeout_ms: number("TROUPE_PRODUCE_TIMEOUT_MS", 15_000),
        }
    }

    /// The environment's settings with the brokers at `bootstrap` (tests and tools that know
    /// only an address).
    pub fn from_env_at(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            ..Self::from_env()
        }
    }

    /// The start of every Kafka client's configuration — consumers, producers, admin clients:
    /// the brokers and the security settings ([`KafkaSecurity::apply`]).
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        self.security.apply(&mut config);
        config
    }
}

/// How to reach a Confluent-compatible schema registry, and which schema versions to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `TROUPE_SCHEMA_REGISTRY_URL`, e.g. `http://127.0.0.1:28081`.
    pub url: String,
    /// `TROUPE_SCHEMA_REGISTRY_USERNAME` / `_PASSWORD` (basic auth) and
    /// `TROUPE_SCHEMA_REGISTRY_CA_LOCATION` (a CA to trust).
    pub security: RegistrySecurity,
    /// `TROUPE_WRITE_SCHEMA_VERSIONS`, e.g. `OrderPlaced=2,PaymentAuthorized=1` or `*=1`: write
    /// these older versions instead of the current ones, during a rollout (consumers first).
    pub write_versions: String,
    /// `TROUPE_KNOWN_SCHEMA_VERSIONS`, same form: read as if built before any later version
    /// existed (resolve into the newest known one, or dead-letter an unknown record). For
    /// rehearsing rollouts against an "old release"; production leaves it unset.
    pub known_versions: String,
}

impl RegistryConfig {
    pub fn from_env() -> Self {
        Self {
            url: env_or(
                "TROUPE_SCHEMA_REGISTRY_URL",
                format!("http://127.0.0.1:{}", ports::SCHEMA_REGISTRY),
            ),
            security: checked(RegistrySecurity::from_env()),
            write_versions: env_or("TROUPE_WRITE_SCHEMA_VERSIONS", ""),
            known_versions: env_or("TROUPE_KNOWN_SCHEMA_VERSIONS", ""),
        }
    }

    /// A registry at `url`, without credentials, current versions everywhere.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            security: RegistrySecurity::default(),
            write_versions: String::new(),
            known_versions: String::new(),
        }
    }

    /// The version pins, checked against the catalog.
    pub fn pins(&self) -> Result<Pins, String> {
        Pins::parse(&self.write_versions, &self.known_versions).map_err(|e| {
            format!("TROUPE_WRITE_SCHEMA_VERSIONS / TROUPE_KNOWN_SCHEMA_VERSIONS: {e}")
        })
    }
}

/// How to reach PostgreSQL. Each service appends its own database name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `TROUPE_POSTGRES_URL`: a server URL without a database path, e.g.
    /// `postgres://troupe@127.0.0.1:25432`.
    pub url: String,
}

impl PostgresConfig {
    pub fn from_env() -> Self {
        Self {
            url: env_or(
                "TROUPE_POSTGRES_URL",
                format!("postgres://troupe@127.0.0.1:{}", ports::POSTGRES),
            ),
        }
    }

    /// The URL of one database on this server.
    pub fn database_url(&self, database: &str) -> String {
        with_database(&self.url, database)
    }
}

/// A whole number from the environment, or `default` when unset or not a number.
fn number(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Replaces (or adds) the database path of a PostgreSQL URL, keeping any query string.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..authority_end], database);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// How to reach the CQL read-model store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScyllaConfig {
    /// `TROUPE_SCYLLA_NODES`: comma-separated `host:port` list.
    pub nodes: Vec<String>,
}

impl ScyllaConfig {
    pub fn from_env() -> Self {
        let nodes = env_or("TROUPE_SCYLLA_NODES", format!("127.0.0.1:{}", ports::CQL));
        Self {
            nodes: nodes
                .split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }
}

/// Everything a processor process needs. [`ProcessorConfig::from_env`] is the only place that
/// reads it from the environment; `processor::run` takes it whole and reads nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    pub kafka: KafkaConfig,
    /// `TROUPE_TOPIC_PREFIX`: every topic behind a prefix (tests, several environments on one
    /// cluster).
    pub topics: Topics,
    /// `$TROUPE_HOME/prometheus/targets` when it exists: where the local stack's Prometheus
    /// discovers processors to scrape.
    pub scrape_targets: Option<PathBuf>,
    pub registry: RegistryConfig,
    /// The processor's own database.
    pub database_url: String,
    /// `TROUPE_GROUP_ID`, default `troupe-<name>`.
    pub group_id: String,
    /// `TROUPE_INSTANCE`, default `<name>-<host>-<pid>`: names this process in logs and metrics,
    /// and is its client id, by which the membership watchdog finds it in its group.
    pub instance: String,
    /// `TROUPE_METRICS_LISTEN`, default `127.0.0.1:0` (any free port).
    pub metrics_listen: String,
    /// `TROUPE_STATIC_MEMBER_ID`: a stable identity in the consumer group (a StatefulSet pod
    /// name, say), so a restarted instance takes back its partitions without a rebalance.
    /// Optional: without it a member leaves the group on SIGTERM, and one that dies is replaced
    /// after the session timeout.
    pub static_member_id: Option<String>,
    /// `TROUPE_KAFKA_SESSION_TIMEOUT_MS` (default 10000): how long the group waits for a
    /// silent member (killed, frozen) before giving its partitions to the others.
    pub session_timeout_ms: u64,
    /// `TROUPE_LAG_INTERVAL_MS` (default 5000): how often the processor asks the broker for
    /// its partitions' lag (`troupe_consumer_lag_messages`).
    pub lag_interval: Duration,
    /// `TROUPE_COMMIT_INTERVAL_MS` (default 200): how often the offsets of applied batches
    /// are committed to the group. A crash re-reads at most this much (the inbox skips it).
    pub commit_interval: Duration,
    /// `TROUPE_INBOX_KEEP_HOURS`: how long processed event ids are remembered (default 192,
    /// one day more than the topics' 7-day retention).
    pub inbox_keep: Duration,
    /// `TROUPE_BATCH_MAX`: messages per transaction.
    pub batch_max: usize,
    /// `TROUPE_BATCH_LINGER_MS`: how long a batch waits to fill once it has one message.
    pub batch_linger: Duration,
}

impl ProcessorConfig {
    /// The configuration of processor `name` from the environment; the database is
    /// `TROUPE_DATABASE` or `troupe_<name>` on `TROUPE_POSTGRES_URL`, the group
    /// `TROUPE_GROUP_ID` or `troupe-<name>`.
    pub fn from_env(name: &str) -> Self {
        Self::from_env_or(name, &format!("troupe_{name}"), &format!("troupe-{name}"))
    }

    /// As [`ProcessorConfig::from_env`], with other defaults for the database and the group
    /// (the projector names them after its read-model copy).
    pub fn from_env_or(name: &str, database: &str, group: &str) -> Self {
        let database = env_or("TROUPE_DATABASE", database);
        Self {
            kafka: KafkaConfig::from_env(),
            topics: Topics::with_prefix(env_or("TROUPE_TOPIC_PREFIX", "")),
            scrape_targets: scrape_targets_dir(),
            registry: RegistryConfig::from_env(),
            database_url: PostgresConfig::from_env().database_url(&database),
            group_id: env_or("TROUPE_GROUP_ID", group),
            instance: env_or("TROUPE_INSTANCE", default_instance(name)),
            metrics_listen: env_or("TROUPE_METRICS_LISTEN", "127.0.0.1:0"),
            static_member_id: std::env::var("TROUPE_STATIC_MEMBER_ID")
                .ok()
                .filter(|v| !v.is_empty()),
            session_timeout_ms: number("TROUPE_KAFKA_SESSION_TIMEOUT_MS", 10_000),
            lag_interval: Duration::from_millis(number("TROUPE_LAG_INTERVAL_MS", 5_000)),
            commit_interval: Duration::from_millis(number("TROUPE_COMMIT_INTERVAL_MS", 200)),
            inbox_keep: Duration::from_secs(number("TROUPE_INBOX_KEEP_HOURS", 192) * 3600),
            batch_max: number("TROUPE_BATCH_MAX", 500) as usize,
            batch_linger: Duration::from_millis(number("TROUPE_BATCH_LINGER_MS", 2)),
        }
    }
}

/// `<name>-<host>-<pid>`: unique per process even in containers, where every process may be
/// pid 1 (the host name is the pod's name there).
fn default_instance(name: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{name}-{host}-{}", std::process::id())
}

/// `$TROUPE_HOME/prometheus/targets` when it exists: where the local stack's Prometheus
/// discovers what to scrape (every process with a `/metrics` adds a file there).
pub fn scrape_targets_dir() -> Option<PathBuf> {
    std::env::var_os("TROUPE_HOME")
        .map(|home| PathBuf::from(home).join("prometheus/targets"))
        .filter(|dir| dir.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_set_on_urls_with_and_without_a_path() {
        assert_eq!(
            with_database("postgres://troupe@127.0.0.1:25432", "order"),
            "postgres://troupe@127.0.0.1:25432/order"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432/postgres?sslmode=disable", "payment"),
            "postgres://u:p@db:5432/payment?sslmode=disable"
        );
        assert_eq!(with_database("postgres://db/", "x"), "postgres://db/x");
    }
}
