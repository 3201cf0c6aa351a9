//! The shipping service's table.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::decide::{Knowledge, Status};

/// Loads (creating if new) and locks what shipping knows of an order.
pub async fn knowledge(
    conn: &mut PgConnection,
    order_id: Uuid,
    correlation_id: Uuid,
    event_id: Uuid,
) -> Result<(Knowledge, Option<String>), sqlx::Error> {
    sqlx::query(
        "INSERT INTO shipments (order_id, correlation_id, last_event_id) VALUES ($1, $2, $3)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(correlation_id)
    .bind(event_id)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(
        "SELECT country, paid, cancelled, status, shipment_id FROM shipments WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((
        Knowledge {
            country: row.get(0),
            paid: row.get(1),
            cancelled: row.get(2),
            status: row.get::<Option<&str>, _>(3).and_then(Status::parse),
        },
        row.get(4),
    ))
}

pub async fn save(
    conn: &mut PgConnection,
    order_id: Uuid,
    knowledge: &Knowledge,
    shipment: Option<(&str, &str)>,
    event_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE shipments SET country = $2, paid = $3, cancelled = $4, status = $5,
             shipment_id = COALESCE($6, shipment_id), carrier = COALESCE($7, carrier),
             last_event_id = $8
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(&knowledge.country)
    .bind(knowledge.paid)
    .bind(knowledge.cancelled)
    .bind(knowledge.status.map(Status::as_str))
    .bind(shipment.map(|s| s.0))
    .bind(shipment.map(|s| s.1))
    .bind(event_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
