//! troupe-registry: a Confluent-compatible schema registry (REST API v1, Avro only) that keeps
//! its state in PostgreSQL.
//!
//! It is the embedded default for local development and tests; production points troupe at a
//! Confluent Schema Registry instead (see the README). The modules split by role:
//! - [`schema`]: parsing and canonical form (pure);
//! - compatibility judgement by Avro resolution rules is pure and lives in
//!   `troupe_events::compat`, shared with `troupe schemas check`;
//! - [`store`]: PostgreSQL, and the rules that need a transaction;
//! - [`api`]: the HTTP surface; [`error`]: Confluent's error codes.

pub mod api;
pub mod error;
pub mod schema;
pub mod store;

use std::future::Future;

use tokio::net::TcpListener;

pub use store::Store;

/// Serves the registry on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api::router(store))
        .with_graceful_shutdown(shutdown)
        .await
}
