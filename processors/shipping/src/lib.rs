//! The shipping service: once an order is paid and its destination known, schedules a
//! shipment (or fails it when no carrier serves the country); cancels a scheduled shipment when
//! the order is cancelled in time.
//!
//! - [`decide`]: the decisions, pure;
//! - [`store`]: the `shipments` table.

pub mod decide;
pub mod store;

use sqlx::PgConnection;
use troupe_events::Envelope;
use troupe_runtime::config::env_or;
use troupe_runtime::{Handler, HandlerError};
use uuid::Uuid;

use decide::Carriers;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The shipping service's handler.
#[derive(Debug, Clone)]
pub struct ShippingService {
    pub carriers: Carriers,
}

impl ShippingService {
    /// `TROUPE_SHIPPING_COUNTRIES`: the served countries, comma-separated.
    pub fn from_env() -> Self {
        Self {
            carriers: Carriers::parse(&env_or(
                "TROUPE_SHIPPING_COUNTRIES",
                decide::DEFAULT_COUNTRIES,
            )),
        }
    }
}

impl Handler for ShippingService {
    const NAME: &'static str = "shipping";

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
        let known = store::load(conn, meta.order_id).await?;
        let shipment_id = Uuid::now_v7().to_string();
        let decision = decide::decide(&known, &envelope.event, &self.carriers, &shipment_id);
        if let Some(after) = &decision.after {
            store::save(conn, meta, after).await?;
        }
        Ok(decision.envelopes(meta, Self::NAME, now_ms))
    }
}
