//! The runtime shared by every troupe process — the only crate that talks to Kafka.
//!
//! - [`processor`]: `run(config, handler, shutdown)`, the consume → apply → commit loop;
//! - [`group`]: the consumer group: settings, commits, leaving, the lag of owned partitions;
//! - [`handler`]: the one trait a processor implements; [`service`]: a saga service's load →
//!   decide → save → emit, as a handler;
//! - [`outbox`]: inbox, outbox and the relay (exactly-once effects without Kafka transactions);
//! - [`codec`]: the Confluent wire format through the schema registry;
//! - [`deadletter`]: reason codes and headers for bad input;
//! - [`metrics`]: Prometheus metrics and the server of `/metrics` and the probes ([`health`]);
//! - [`internal_events`]: every log line and metric update, one struct each;
//! - [`admin`]: topics from `topics.yaml`; [`topics`]: topic prefixes;
//! - [`config`] (with [`security`]: Kafka SASL/TLS, registry TLS and basic auth), [`db`],
//!   [`telemetry`], [`shutdown`].

pub mod admin;
mod batch;
pub mod codec;
pub mod config;
pub mod db;
pub mod group;
pub mod handler;
pub mod health;
pub mod internal_events;
pub mod lag;
pub mod membership;
pub mod metrics;
pub mod outbox;
mod poison;
pub mod processor;
pub mod publish;
pub mod security;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod topics;
pub mod trace;

/// The dead-letter contract lives with the events (pure, shared with the CLI).
pub use troupe_events::deadletter;

pub use handler::{Handler, HandlerError, Source};
pub use processor::run;
pub use service::{Due, Service, Stateful};
