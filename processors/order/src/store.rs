//! The order service's table.

use sqlx::{PgConnection, Row};
use troupe_events::Metadata;
use uuid::Uuid;

use crate::decide::{Order, Status};

pub async fn load(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT customer_id, status, reason, detail, total, currency, reserved, paid, shipment_id
         FROM orders WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| Order {
        customer_id: r.get(0),
        status: Status::parse(r.get::<&str, _>(1)).unwrap_or(Status::Placed),
        reason: r.get(2),
        detail: r.get(3),
        total: r.get(4),
        currency: r.get(5),
        reserved: r.get(6),
        paid: r.get(7),
        shipment_id: r.get(8),
    }))
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
