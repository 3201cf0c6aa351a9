//! The order service: validates PlaceOrder requests, then follows each order through the saga
//! to exactly one terminal state (confirmed, cancelled with a reason, or rejected).
//!
//! - [`decide`]: the decisions, pure;
//! - [`store`]: the `orders` table.

pub mod decide;
pub mod store;

use sqlx::PgConnection;
use troupe_events::decision::Decision;
use troupe_events::{Envelope, Metadata};
use troupe_runtime::Service;

use decide::Order;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The order service.
#[derive(Debug, Clone, Default)]
pub struct OrderService;

impl Service for OrderService {
    const NAME: &'static str = "order";
    type Known = Option<Order>;
    type After = Order;

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
    ) -> Result<Option<Order>, sqlx::Error> {
        store::load(conn, envelope.meta.order_id).await
    }

    fn decide(&self, known: &Option<Order>, envelope: &Envelope, _now_ms: i64) -> Decision<Order> {
        decide::decide(known.as_ref(), &envelope.event)
    }

    async fn save(
        &self,
        conn: &mut PgConnection,
        cause: &Metadata,
        _known: &Option<Order>,
        after: &Order,
        now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        store::save(conn, cause, after, now_ms).await
    }
}
