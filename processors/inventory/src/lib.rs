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
use troupe_events::{Envelope, Event, Metadata};
use troupe_runtime::config::env_or;
use troupe_runtime::{Handler, HandlerError};
use uuid::Uuid;

use decide::Context;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The inventory service's handler.
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

impl Handler for InventoryService {
    const NAME: &'static str = "inventory";

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn handle(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
        now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let meta = &envelope.meta;
        let (skus, create): (Vec<&str>, bool) = match &envelope.event {
            Event::OrderPlaced { lines, .. } => {
                (lines.iter().map(|l| l.sku.as_str()).collect(), false)
            }
            Event::StockAdjusted { sku, .. } => (vec![sku.as_str()], true),
            _ => (Vec::new(), false),
        };
        let known = store::load(conn, meta.order_id, &skus, create).await?;
        let context = Context {
            now_ms,
            ttl_ms: self.reservation_ttl.as_millis() as i64,
            reservation_id: Uuid::now_v7().to_string(),
        };
        let decision = decide::decide(&known, &envelope.event, &context);
        if let Some(after) = &decision.after {
            store::save(conn, meta, &known, after).await?;
        }
        Ok(decision.envelopes(meta, Self::NAME, now_ms))
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.timer_interval)
    }

    async fn tick(
        &self,
        conn: &mut PgConnection,
        now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let mut out = Vec::new();
        for due in store::claim_due(conn, now_ms, 200).await? {
            let decision = decide::expire(&due.known, now_ms);
            let cause = Metadata::fired(
                due.order_id,
                due.correlation_id,
                due.last_event_id,
                Self::NAME,
                now_ms,
            );
            if let Some(after) = &decision.after {
                store::save(conn, &cause, &due.known, after).await?;
            }
            out.extend(decision.emit.into_iter().map(|event| Envelope {
                meta: cause.clone(),
                event,
            }));
        }
        Ok(out)
    }
}
