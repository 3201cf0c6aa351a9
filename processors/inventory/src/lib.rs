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
use troupe_events::domain::Money;
use troupe_events::{Envelope, Event, Metadata};
use troupe_runtime::config::env_or;
use troupe_runtime::{Handler, HandlerError};
use uuid::Uuid;

use decide::{Action, Status};
use store::Movement;

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

fn emit(cause: &Metadata, now_ms: i64, event: Event) -> Envelope {
    Envelope::caused_by(cause, InventoryService::NAME, now_ms, event)
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
        match &envelope.event {
            Event::OrderPlaced {
                customer_id,
                lines,
                currency,
                total,
                ..
            } => {
                if store::reservation(conn, meta.order_id).await?.is_some() {
                    return Ok(Vec::new());
                }
                let demand = decide::demand(lines);
                let skus: Vec<&str> = demand.iter().map(|d| d.sku.as_str()).collect();
                let available = store::lock_available(conn, &skus).await?;
                let reservation_id = Uuid::now_v7().to_string();
                match decide::reserve(&available, &demand) {
                    Ok(reserved) => {
                        let expires_at = now_ms + self.reservation_ttl.as_millis() as i64;
                        store::move_stock(conn, &reserved, Movement::Reserve).await?;
                        store::insert_reservation(
                            conn,
                            meta.order_id,
                            meta.correlation_id,
                            &reservation_id,
                            &reserved,
                            Status::Active,
                            expires_at,
                            meta.event_id,
                        )
                        .await?;
                        Ok(vec![emit(
                            meta,
                            now_ms,
                            Event::StockReserved {
                                reservation_id,
                                lines: reserved,
                                customer_id: customer_id.clone(),
                                total: Money {
                                    minor: *total,
                                    currency: currency.clone(),
                                },
                                expires_at,
                            },
                        )])
                    }
                    Err(shortages) => {
                        store::insert_reservation(
                            conn,
                            meta.order_id,
                            meta.correlation_id,
                            &reservation_id,
                            &[],
                            Status::Rejected,
                            now_ms,
                            meta.event_id,
                        )
                        .await?;
                        Ok(vec![emit(meta, now_ms, Event::StockRejected { shortages })])
                    }
                }
            }
            Event::OrderCancelled { .. }
            | Event::OrderConfirmed { .. }
            | Event::PaymentAuthorized { .. } => {
                let Some(reservation) = store::reservation(conn, meta.order_id).await? else {
                    return Ok(Vec::new());
                };
                let reservation_id = reservation.reservation_id.clone();
                let lines = reservation.lines.clone();
                match decide::on_event(Some(reservation.status), &envelope.event) {
                    Action::Release => {
                        store::move_stock(conn, &lines, Movement::Release).await?;
                        store::set_status(conn, meta.order_id, Status::Released, meta.event_id)
                            .await?;
                        Ok(vec![emit(
                            meta,
                            now_ms,
                            Event::StockReleased {
                                reservation_id,
                                lines,
                            },
                        )])
                    }
                    Action::Commit => {
                        store::move_stock(conn, &lines, Movement::Commit).await?;
                        store::set_status(conn, meta.order_id, Status::Committed, meta.event_id)
                            .await?;
                        Ok(vec![emit(
                            meta,
                            now_ms,
                            Event::StockCommitted {
                                reservation_id,
                                lines,
                            },
                        )])
                    }
                    Action::MarkPaid => {
                        store::set_status(conn, meta.order_id, Status::Paid, meta.event_id).await?;
                        Ok(Vec::new())
                    }
                    Action::Nothing => Ok(Vec::new()),
                }
            }
            Event::StockAdjusted { sku, delta, set_to } => {
                let available = store::lock_sku(conn, sku).await?;
                let change = decide::adjustment(available, *delta, *set_to);
                store::adjust(conn, sku, change).await?;
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.timer_interval)
    }

    async fn tick(
        &self,
        conn: &mut PgConnection,
        now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let due = store::claim_due(conn, now_ms, 200).await?;
        Ok(due
            .into_iter()
            .map(|d| Envelope {
                meta: Metadata::fired(
                    d.order_id,
                    d.correlation_id,
                    d.last_event_id,
                    Self::NAME,
                    now_ms,
                ),
                event: Event::StockReservationExpired {
                    reservation_id: d.reservation_id,
                },
            })
            .collect())
    }
}
