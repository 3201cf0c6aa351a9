//! The shipping service: once an order is paid and its destination known, schedules a
//! shipment (or fails it when no carrier serves the country); cancels a scheduled shipment when
//! the order is cancelled in time.
//!
//! - [`decide`]: the decisions, pure;
//! - [`store`]: the `shipments` table.

pub mod decide;
pub mod store;

use sqlx::PgConnection;
use troupe_events::{Envelope, Event};
use troupe_runtime::config::env_or;
use troupe_runtime::{Handler, HandlerError};
use uuid::Uuid;

use decide::{Carriers, Status, Step};

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
        let relevant = matches!(
            envelope.event,
            Event::OrderPlaced { .. }
                | Event::PaymentAuthorized { .. }
                | Event::OrderCancelled { .. }
        );
        if !relevant {
            return Ok(Vec::new());
        }
        let (mut knowledge, shipment_id) =
            store::knowledge(conn, meta.order_id, meta.correlation_id, meta.event_id).await?;
        match &envelope.event {
            Event::OrderPlaced {
                shipping_address, ..
            } => knowledge.country = Some(shipping_address.country.clone()),
            Event::PaymentAuthorized { .. } => knowledge.paid = true,
            Event::OrderCancelled { .. } => knowledge.cancelled = true,
            _ => {}
        }
        let emit = |event| Envelope::caused_by(meta, Self::NAME, now_ms, event);
        let (out, shipment) = match decide::next(&knowledge, &self.carriers) {
            Step::Schedule { carrier } => {
                knowledge.status = Some(Status::Scheduled);
                let id = Uuid::now_v7().to_string();
                let country = knowledge.country.clone().unwrap_or_default();
                (
                    vec![emit(Event::ShipmentScheduled {
                        shipment_id: id.clone(),
                        carrier: carrier.clone(),
                        country,
                    })],
                    Some((id, carrier)),
                )
            }
            Step::Fail { reason } => {
                knowledge.status = Some(Status::Failed);
                (vec![emit(Event::ShipmentFailed { reason })], None)
            }
            Step::CancelShipment => {
                knowledge.status = Some(Status::Cancelled);
                (
                    vec![emit(Event::ShipmentCancelled {
                        shipment_id: shipment_id.unwrap_or_default(),
                    })],
                    None,
                )
            }
            Step::Wait => (Vec::new(), None),
        };
        store::save(
            conn,
            meta.order_id,
            &knowledge,
            shipment
                .as_ref()
                .map(|(id, carrier)| (id.as_str(), carrier.as_str())),
            meta.event_id,
        )
        .await?;
        Ok(out)
    }
}
