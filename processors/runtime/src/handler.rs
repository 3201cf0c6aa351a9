//! The one trait a processor implements.
//!
//! A handler loads the state an event touches, makes a pure decision, saves the result and
//! returns the events to emit — all on the connection of the runtime's transaction, which also
//! holds the inbox row and the outbox rows. The runtime commits; the handler never does.

use std::future::Future;
use std::time::Duration;

use sqlx::PgConnection;
use troupe_events::Envelope;

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event can never be applied (it contradicts the handler's state in a way no retry
    /// fixes). It is dead-lettered with reason `rejected`. Return this before writing anything:
    /// the runtime does not roll back a rejected event's own writes.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The database failed; the whole batch is retried with backoff.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Another store the handler writes to failed (a read-model store); the whole batch is
    /// retried with backoff. Writes to such a store must be idempotent: a retried batch
    /// writes them again.
    #[error("store: {0}")]
    Store(String),
}

/// Where a message was read: its topic's base name (without prefix), partition and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A processor's business logic.
pub trait Handler: Send + Sync + 'static {
    /// Stable name: the consumer group `troupe-<NAME>`, the `processor` metric label, the
    /// default database `troupe_<NAME>`, and the service (or observer) in `choreography.yaml`,
    /// which says what it subscribes to and may emit.
    const NAME: &'static str;

    /// The migrations of the handler's own tables (`sqlx::migrate!("./migrations")`).
    fn migrator(&self) -> &'static sqlx::migrate::Migrator;

    /// Applies one event; returns the events to emit.
    fn handle(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<Envelope>, HandlerError>> + Send;

    /// Applies one event read at `source`. The runtime calls this; the default forgets where
    /// the event was read and calls [`Handler::handle`]. Read models override it to record
    /// positions.
    fn handle_at(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
        source: Source<'_>,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<Envelope>, HandlerError>> + Send {
        let _ = source;
        self.handle(conn, envelope, now_ms)
    }

    /// Called once per batch, in its transaction, before any event is handled, with every
    /// event of the batch the handler reacts to (duplicates included): the place to lock, in
    /// one order, what events of different orders share. The default does nothing.
    fn before_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&Envelope],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = (conn, events);
        async { Ok(()) }
    }

    /// Called once per batch, in its transaction, before the commit, with the next offset to
    /// read of every partition the batch read from (duplicates and dead letters included).
    /// The default does nothing.
    fn batch_applied(
        &self,
        conn: &mut PgConnection,
        next_offsets: &[(String, i32, i64)],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = (conn, next_offsets);
        async { Ok(()) }
    }

    /// How often [`Handler::tick`] runs; `None` (the default) for no timers.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Fires due timers; returns the events to emit. Timers live in the handler's tables, so
    /// they survive a restart.
    fn tick(
        &self,
        conn: &mut PgConnection,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<Envelope>, HandlerError>> + Send {
        let _ = (conn, now_ms);
        async { Ok(Vec::new()) }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
