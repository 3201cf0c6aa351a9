//! troupe's event contract, free of Kafka, databases and the network.
//!
//! - [`topology`]: the model of `topics.yaml`, the single source of truth for topics and the
//!   schema subjects they carry.

pub mod topology;
