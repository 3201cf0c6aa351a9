//! The runtime shared by every troupe process.
//!
//! - [`config`]: where the local stack and production tell a process what to connect to.
//! - [`admin`]: create topics from `topics.yaml` and report drift without destroying data.
//! - [`telemetry`]: structured logs; [`shutdown`]: SIGTERM and Ctrl-C.

pub mod admin;
pub mod config;
pub mod shutdown;
pub mod telemetry;
