//! The order service's table.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgPool, Row};
use troupe_events::Metadata;
use uuid::Uuid;

use crate::decide::{Order, Status};

const COLUMNS: &str =
    "customer_id, status, reason, detail, total, currency, reserved, paid, shipment_id";

fn order_of(r: &sqlx::postgres::PgRow) -> Order {
    Order {
        customer_id: r.get("customer_id"),
        status: Status::parse(r.get::<&str, _>("status")).unwrap_or(Status::Placed),
        reason: r.get("reason"),
        detail: r.get("detail"),
        total: r.get("total"),
        currency: r.get("currency"),
        reserved: r.get("reserved"),
        paid: r.get("paid"),
        shipment_id: r.get("shipment_id"),
    }
}

/// The order, locked, if this service placed it.
pub async fn load(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM orders WHERE order_id = $1 FOR UPDATE"
    ))
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(order_of))
}

/// Every order: the service's state as tests and tools read it.
pub async fn all(pool: &PgPool) -> Result<BTreeMap<Uuid, Order>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT order_id, {COLUMNS} FROM orders"))
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("order_id"), order_of(r)))
        .collect())
}

pub async fn save(
    conn: &mut PgConnection,
    meta: &Metadata,
    order: &Order,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let finished = order.status.is_terminal().then_some(now_ms);
    sqlx::query(
        "INSERT INTO orders (order_id, correlation_id, customer_id, status, reason, detail, total,
                             currency, reserved, paid, shipment_id, placed_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (order_id) DO UPDATE SET
            status = EXCLUDED.status, reason = EXCLUDED.reason, detail = EXCLUDED.detail,
            reserved = EXCLUDED.reserved, paid = EXCLUDED.paid, shipment_id = EXCLUDED.shipment_id,
            finished_at = COALESCE(orders.finished_at, EXCLUDED.finished_at)",
    )
    .bind(meta.order_id)
    .bind(meta.correlation_id)
    .bind(&order.customer_id)
    .bind(order.status.as_str())
    .bind(&order.reason)
    .bind(&order.detail)
    .bind(order.total)
    .bind(&order.currency)
    .bind(order.reserved)
    .bind(order.paid)
    .bind(&order.shipment_id)
    .bind(now_ms)
    .bind(finished)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
