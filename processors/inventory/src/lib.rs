//! The inventory service: reserves every line of an order or none, releases reservations of
//! cancelled orders, commits those of confirmed ones, applies stock adjustments, and announces
//! reservations whose TTL passed without payment.
//!
//! - [`decide`]: the decisions, pure;
//! - [`store`]: the `stock` and `reservations` tables.

pub mod decide;
pub mod store;

use std::time::Duration;

use sqlx::PgConnection;
use troupe_events::decision::Decision;
use troupe_events::{Envelope, Event, Metadata};
use troupe_runtime::config::env_or;
use troupe_runtime::{Due, Service};
use uuid::Uuid;

use decide::{Context, Known};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The inventory service.
#[derive(Debug, Clone)]
pub struct InventoryService {
    /// How long a reservation waits for payment.
    pub reservation_ttl: Duration,
    /// How often due reservations are looked for.
    pub timer_interval: Duration,
}

impl InventoryService {
    /// `TROUPE_RESERVATION_TTL_MS` (default 30 s), `TROUPE_TIMER_INTERVAL_MS` (default 200 ms).
    pub fn from_env() -> Self {
        let ms = |name: &str, default: &str| {
            Duration::from_millis(env_or(name, default).parse().unwrap_or(30_000))
        };
        Self {
            reservation_ttl: ms("TROUPE_RESERVATION_TTL_MS", "30000"),
            timer_interval: ms("TROUPE_TIMER_INTERVAL_MS", "200"),
        }
    }
}

impl Service for InventoryService {
    const NAME: &'static str = "inventory";
    type Known = Known;
    type After = Known;

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
    ) -> Result<Known, sqlx::Error> {
        let (skus, create): (Vec<&str>, bool) = match &envelope.event {
            Event::OrderPlaced { lines, .. } => {
                (lines.iter().map(|l| l.sku.as_str()).collect(), false)
            }
            Event::StockAdjusted { sku, .. } => (vec![sku.as_str()], true),
            _ => (Vec::new(), false),
        };
        store::load(conn, envelope.meta.order_id, &skus, create).await
    }

    async fn lock_shared(
        &self,
        conn: &mut PgConnection,
        events: &[&Envelope],
    ) -> Result<(), sqlx::Error> {
        store::lock_stock_of(conn, events).await
    }

    fn decide(&self, known: &Known, envelope: &Envelope, now_ms: i64) -> Decision<Known> {
        let context = Context {
            now_ms,
            ttl_ms: self.reservation_ttl.as_millis() as i64,
            reservation_id: Uuid::now_v7().to_string(),
        };
        decide::decide(known, &envelope.event, &context)
    }

    async fn save(
        &self,
        conn: &mut PgConnection,
        cause: &Metadata,
        known: &Known,
        after: &Known,
        _now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        store::save(conn, cause, known, after).await
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.timer_interval)
    }

    async fn due(
        &self,
        conn: &mut PgConnection,
        now_ms: i64,
    ) -> Result<Vec<Due<Known>>, sqlx::Error> {
        store::claim_due(conn, Self::NAME, now_ms, 200).await
    }

    fn fire(&self, known: &Known, now_ms: i64) -> Decision<Known> {
        decide::expire(known, now_ms)
    }
}
