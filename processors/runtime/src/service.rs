//! A saga service, as its four steps: load what an event touches, decide (pure), save what
//! changed, emit. [`Stateful`] turns any [`Service`] into a [`Handler`], so the plumbing is
//! written once and every service's `lib.rs` holds only its own loading and saving.

use std::future::Future;
use std::time::Duration;

use sqlx::PgConnection;
use troupe_events::decision::Decision;
use troupe_events::{Envelope, Metadata};
use uuid::Uuid;

use crate::handler::{Handler, HandlerError};

/// A timer that is due: what caused it (its events are caused by this), and what the service
/// knows of its order.
#[derive(Debug)]
pub struct Due<K> {
    pub cause: Metadata,
    pub known: K,
}

/// A saga service's state and decisions.
pub trait Service: Send + Sync + 'static {
    /// The service's name in `choreography.yaml`, its group and database.
    const NAME: &'static str;
    /// What the service knows when an event arrives.
    type Known: Send + Sync;
    /// What a decision leaves behind, to save.
    type After: Send + Sync;

    /// The migrations of the service's tables.
    fn migrator(&self) -> &'static sqlx::migrate::Migrator;

    /// Loads (locked) what `envelope` touches.
    fn load(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<Self::Known, sqlx::Error>> + Send;

    /// Locks, at the start of a batch and after its orders are locked, what events of
    /// different orders share (inventory: the stock rows of every sku the batch touches, in
    /// sku order). The default locks nothing more.
    fn lock_shared(
        &self,
        conn: &mut PgConnection,
        events: &[&Envelope],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        let _ = (conn, events);
        async { Ok(()) }
    }

    /// The pure decision.
    fn decide(
        &self,
        known: &Self::Known,
        envelope: &Envelope,
        now_ms: i64,
    ) -> Decision<Self::After>;

    /// Saves what the decision changed; `cause` is the event (or the timer's cause).
    fn save(
        &self,
        conn: &mut PgConnection,
        cause: &Metadata,
        known: &Self::Known,
        after: &Self::After,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// How often timers are looked for; `None` (the default) for a service without timers.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Claims (locked) the timers due at `now_ms`.
    fn due(
        &self,
        conn: &mut PgConnection,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<Due<Self::Known>>, sqlx::Error>> + Send {
        let _ = (conn, now_ms);
        async { Ok(Vec::new()) }
    }

    /// The pure decision of a due timer.
    fn fire(&self, known: &Self::Known, now_ms: i64) -> Decision<Self::After> {
        let _ = (known, now_ms);
        Decision::nothing()
    }
}

/// The namespace of the per-order advisory locks (the two-key form, apart from the runtime's
/// single-key locks).
const ORDER_LOCKS: i32 = 0x7472_6F75;

/// Locks `orders` until the transaction ends, in one sorted order so that two batches never
/// wait on each other in a cycle. A batch of a [`Stateful`] service takes these locks before
/// anything else ([`Handler::before_batch`]). Row locks are not enough: two members of a group can hold events of one order
/// from different topics at once, and when the order's first event finds no row to lock, both
/// would decide from nothing and the later save would overwrite the earlier (a shipment that
/// never heard of its payment was seen so, with two instances of each service).
pub async fn lock_orders(conn: &mut PgConnection, orders: &[Uuid]) -> Result<(), sqlx::Error> {
    let mut keys: Vec<i32> = orders.iter().map(|id| order_lock_key(*id)).collect();
    keys.sort_unstable();
    keys.dedup();
    if !keys.is_empty() {
        sqlx::query("SELECT count(pg_advisory_xact_lock($1, k)) FROM unnest($2::int4[]) AS k")
            .bind(ORDER_LOCKS)
            .bind(&keys)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// An order's lock key: 32 bits of its id (two orders sharing one only wait for each other).
fn order_lock_key(order_id: Uuid) -> i32 {
    let (high, low) = order_id.as_u64_pair();
    (high ^ low ^ (high >> 32) ^ (low >> 32)) as u32 as i32
}

/// A [`Service`] as the runtime's [`Handler`].
#[derive(Debug, Clone)]
pub struct Stateful<S>(pub S);

impl<S: Service> Handler for Stateful<S> {
    const NAME: &'static str = S::NAME;

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        self.0.migrator()
    }

    /// The batch's orders first, then what the service shares between orders.
    async fn before_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&Envelope],
    ) -> Result<(), HandlerError> {
        let orders: Vec<Uuid> = events.iter().map(|e| e.meta.order_id).collect();
        lock_orders(conn, &orders).await?;
        self.0.lock_shared(conn, events).await?;
        Ok(())
    }

    async fn handle(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
        now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let known = self.0.load(conn, envelope).await?;
        let decision = self.0.decide(&known, envelope, now_ms);
        if let Some(after) = &decision.after {
            self.0
                .save(conn, &envelope.meta, &known, after, now_ms)
                .await?;
        }
        Ok(decision.envelopes(&envelope.meta, S::NAME, now_ms))
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.0.tick_interval()
    }

    async fn tick(
        &self,
        conn: &mut PgConnection,
        now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let mut out = Vec::new();
        for due in self.0.due(conn, now_ms).await? {
            let decision = self.0.fire(&due.known, now_ms);
            if let Some(after) = &decision.after {
                self.0
                    .save(conn, &due.cause, &due.known, after, now_ms)
                    .await?;
            }
            // A timer's events are the cause's own: they carry its metadata.
            out.extend(decision.emit.into_iter().map(|event| Envelope {
                meta: due.cause.clone(),
                event,
            }));
        }
        Ok(out)
    }
}
