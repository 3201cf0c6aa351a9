//! The order service: validates PlaceOrder requests, then follows each order through the saga
//! to exactly one terminal state (confirmed, cancelled with a reason, or rejected).
//!
//! - [`decide`]: the decisions, pure;
//! - [`store`]: the `orders` table.

pub mod decide;
pub mod store;

use sqlx::PgConnection;
use troupe_events::Envelope;
use troupe_runtime::{Handler, HandlerError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The order service's handler.
#[derive(Debug, Clone, Default)]
pub struct OrderService;

impl Handler for OrderService {
    const NAME: &'static str = "order";

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn handle(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
        now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let order = store::load(conn, envelope.meta.order_id).await?;
        let decision = decide::decide(order.as_ref(), &envelope.event);
        if let Some(after) = &decision.after {
            store::save(conn, &envelope.meta, after, now_ms).await?;
        }
        Ok(decision.envelopes(&envelope.meta, Self::NAME, now_ms))
    }
}
