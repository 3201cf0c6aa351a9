//! troupe's event contract, free of Kafka, databases and the network.
//!
//! - [`topology`]: the model of `topics.yaml`;
//! - [`choreography`]: the saga declared in `choreography.yaml`, its checks and its diagram;
//! - [`domain`]: the events handlers see (always the current version);
//! - [`avro`]: mapping to and from Avro values of the published schemas;
//! - [`catalog`]: every schema file, embedded, and write/known version pins;
//! - [`compat`]: compatibility judgement between schema versions (the registry's rules);
//! - [`upcast`]: older versions to the current one; [`topics`]: topic names;
//! - [`validate`]: the structural rules every event obeys;
//! - [`decision`]: the one shape of every service's decision (state after, events to emit);
//! - [`message`]: the headers every published message carries; [`deadletter`]: the
//!   dead-letter topic's headers and reason codes; [`stored`]: the text a registry stores a
//!   schema as.

pub mod avro;
pub mod catalog;
pub mod choreography;
pub mod compat;
pub mod deadletter;
pub mod decision;
pub mod domain;
pub mod message;
pub mod samples;
pub mod stored;
pub mod topics;
pub mod topology;
pub mod upcast;
pub mod validate;

pub use domain::{Envelope, Event, EventType, Metadata};
