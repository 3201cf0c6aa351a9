//! The shipping service's table: what it knows of each order.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgPool, Row};
use troupe_events::Metadata;
use uuid::Uuid;

use crate::decide::{Knowledge, Status};

fn knowledge_of(row: &sqlx::postgres::PgRow) -> Knowledge {
    let shipment_id: Option<String> = row.get("shipment_id");
    let carrier: Option<String> = row.get("carrier");
    Knowledge {
        country: row.get("country"),
        paid: row.get("paid"),
        cancelled: row.get("cancelled"),
        status: row.get::<Option<&str>, _>("status").and_then(Status::parse),
        shipment: shipment_id.map(|id| (id, carrier.unwrap_or_default())),
    }
}

/// Loads, locked, what shipping knows of an order (nothing yet: the default).
pub async fn load(conn: &mut PgConnection, order_id: Uuid) -> Result<Knowledge, sqlx::Error> {
    let row = sqlx::query(
        "SELECT country, paid, cancelled, status, shipment_id, carrier FROM shipments
         WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(knowledge_of).unwrap_or_default())
}

/// Writes what shipping knows of an order after an event.
pub async fn save(
    conn: &mut PgConnection,
    meta: &Metadata,
    knowledge: &Knowledge,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO shipments (order_id, correlation_id, country, paid, cancelled, status,
                                shipment_id, carrier, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (order_id) DO UPDATE SET country = EXCLUDED.country, paid = EXCLUDED.paid,
             cancelled = EXCLUDED.cancelled, status = EXCLUDED.status,
             shipment_id = EXCLUDED.shipment_id, carrier = EXCLUDED.carrier,
             last_event_id = EXCLUDED.last_event_id",
    )
    .bind(meta.order_id)
    .bind(meta.correlation_id)
    .bind(&knowledge.country)
    .bind(knowledge.paid)
    .bind(knowledge.cancelled)
    .bind(knowledge.status.map(Status::as_str))
    .bind(knowledge.shipment.as_ref().map(|s| s.0.as_str()))
    .bind(knowledge.shipment.as_ref().map(|s| s.1.as_str()))
    .bind(meta.event_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What shipping knows of every order: its state as tests and tools read it.
pub async fn all(pool: &PgPool) -> Result<BTreeMap<Uuid, Knowledge>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT order_id, country, paid, cancelled, status, shipment_id, carrier FROM shipments",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("order_id"), knowledge_of(r)))
        .collect())
}
