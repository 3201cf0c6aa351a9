//! The query side of the saga.
//!
//! - [`model`]: what each event changes in the read models — pure, shared by every store;
//! - [`store`]: the store contract, with [`pg::PgStore`] (order summaries, analytics) and
//!   [`cql::CqlStore`] (orders by customer, timelines, stock) implementing all of it;
//! - [`Projector`]: the processor feeding both stores (`troupe-projector`);
//! - [`api`]: the HTTP query API (`troupe-query`).
//!
//! A *copy* of the read models is one PostgreSQL database and one keyspace, both named
//! `troupe_readmodels_<copy>`, fed by the consumer group `troupe-projector-<copy>`.

pub mod api;
pub mod control;
pub mod cql;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod pg;
pub mod store;
pub mod tracker;

use std::sync::Mutex;

use sqlx::PgConnection;
use troupe_events::Envelope;
use troupe_runtime::publish::Position;
use troupe_runtime::{Handler, HandlerError, Source};

use crate::cql::CqlStore;
use crate::model::Changes;
use crate::pg::PgStore;
use crate::store::ReadStore;

/// The names of a copy of the read models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy(String);

impl Copy {
    /// A copy name: lower-case letters, digits and `_`, at most 32 characters.
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Copy(name.to_owned()))
        } else {
            Err(format!(
                "{name:?} is not a copy name (lower-case letters, digits and _, at most 32)"
            ))
        }
    }

    /// `TROUPE_READMODEL_COPY`, default `a`.
    pub fn from_env() -> Result<Self, String> {
        Copy::new(&troupe_runtime::config::env_or(
            "TROUPE_READMODEL_COPY",
            "a",
        ))
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// The PostgreSQL database and the CQL keyspace of this copy.
    pub fn database(&self) -> String {
        format!("troupe_readmodels_{}", self.0)
    }

    pub fn group(&self) -> String {
        format!("troupe-projector-{}", self.0)
    }
}

/// The topics the projector reads (base names): every topic with events, as the choreography
/// gives an observer.
pub fn topics() -> Vec<&'static str> {
    troupe_events::choreography::Choreography::current().subscriptions(Projector::NAME)
}

/// Feeds both stores. Changes of a batch are collected event by event and written once the
/// runtime has the whole batch ([`Handler::batch_applied`]): one PostgreSQL transaction per
/// batch, then the CQL writes, then the positions. A failure retries the whole batch, which
/// the stores absorb (their writes are idempotent).
pub struct Projector {
    pg: PgStore,
    cql: CqlStore,
    pending: Mutex<Vec<Changes>>,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector").finish_non_exhaustive()
    }
}

impl Projector {
    pub fn new(pg: PgStore, cql: CqlStore) -> Self {
        Self {
            pg,
            cql,
            pending: Mutex::new(Vec::new()),
        }
    }

    fn collect(&self, envelope: &Envelope, position: String) {
        let mut changes = model::changes(envelope);
        changes.position = position;
        self.pending.lock().expect("pending lock").push(changes);
    }
}

fn store_error(error: store::StoreError) -> HandlerError {
    HandlerError::Store(error.0)
}

impl Handler for Projector {
    const NAME: &'static str = "projector";

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        pg::migrator()
    }

    /// Every attempt at a batch starts from nothing collected: an attempt that failed (or
    /// panicked) half-way must not leave its events to be applied again with the retry's.
    async fn before_batch(
        &self,
        _conn: &mut PgConnection,
        _events: &[&Envelope],
    ) -> Result<(), HandlerError> {
        self.pending.lock().expect("pending lock").clear();
        Ok(())
    }

    async fn handle(
        &self,
        _conn: &mut PgConnection,
        envelope: &Envelope,
        _now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        self.collect(envelope, String::new());
        Ok(Vec::new())
    }

    async fn handle_at(
        &self,
        _conn: &mut PgConnection,
        envelope: &Envelope,
        source: Source<'_>,
        _now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let position = Position {
            topic: source.topic.to_owned(),
            partition: source.partition,
            offset: source.offset,
        };
        self.collect(envelope, position.to_string());
        Ok(Vec::new())
    }

    async fn batch_applied(
        &self,
        _conn: &mut PgConnection,
        next_offsets: &[(String, i32, i64)],
    ) -> Result<(), HandlerError> {
        let batch = std::mem::take(&mut *self.pending.lock().expect("pending lock"));
        self.pg.apply(&batch).await.map_err(store_error)?;
        self.cql.apply(&batch).await.map_err(store_error)?;
        self.pg
            .record_positions(next_offsets)
            .await
            .map_err(store_error)?;
        self.cql
            .record_positions(next_offsets)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
