//! The shipping service: once an order is paid and its destination known, schedules a
//! shipment (or fails it when no carrier serves the country); cancels a scheduled shipment when
//! the order is cancelled in time.
//!
//! - [`decide`]: the decisions, pure;
//! - [`store`]: the `shipments` table.

pub mod decide;
pub mod store;

use sqlx::PgConnection;
use troupe_events::decision::Decision;
use troupe_events::{Envelope, Metadata};
use troupe_runtime::config::env_or;
use troupe_runtime::Service;
use uuid::Uuid;

use decide::{Carriers, Knowledge};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The shipping service.
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

impl Service for ShippingService {
    const NAME: &'static str = "shipping";
    type Known = Knowledge;
    type After = Knowledge;

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
    ) -> Result<Knowledge, sqlx::Error> {
        store::load(conn, envelope.meta.order_id).await
    }

    fn decide(&self, known: &Knowledge, envelope: &Envelope, _now_ms: i64) -> Decision<Knowledge> {
        let shipment_id = Uuid::now_v7().to_string();
        decide::decide(known, &envelope.event, &self.carriers, &shipment_id)
    }

    async fn save(
        &self,
        conn: &mut PgConnection,
        cause: &Metadata,
        _known: &Knowledge,
        after: &Knowledge,
        _now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        store::save(conn, cause, after).await
    }
}
