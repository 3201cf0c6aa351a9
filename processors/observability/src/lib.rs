//! What troupe shows operators. [`catalogue`] names every metric any troupe process exports,
//! once: the processors, the query API, the saga tracker and the lag exporter register theirs
//! from it, and the dashboards and alert rules are checked against it.
//!
//! - [`dashboards`]: the Grafana dashboards as Rust data, rendered to the JSON files under
//!   `observability/dashboards/` by `troupe-dashboards render`;
//! - [`lint`]: the rules every rendered dashboard passes;
//! - [`promql`]: what a PromQL expression reads, checked against the catalogue;
//! - [`alerts`]: the Prometheus alert rules of `observability/alerts.yml`, read back.

pub mod alerts;
pub mod catalogue;
pub mod dashboards;
pub mod lint;
pub mod promql;

pub use alerts::{alert_rules, AlertRule};
pub use dashboards::{panel_queries, PanelQuery};
