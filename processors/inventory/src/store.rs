//! The inventory service's tables: stock per sku and one reservation per order.

use std::collections::BTreeMap;

use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use troupe_events::domain::SkuQuantity;
use uuid::Uuid;

use crate::decide::Status;

/// A reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub reservation_id: String,
    pub lines: Vec<SkuQuantity>,
    pub status: Status,
}

fn to_pairs(lines: &[SkuQuantity]) -> Vec<(String, i32)> {
    lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect()
}

pub async fn reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT reservation_id, lines, status FROM reservations WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| {
        let Json(pairs): Json<Vec<(String, i32)>> = r.get(1);
        Reservation {
            reservation_id: r.get(0),
            lines: pairs
                .into_iter()
                .map(|(sku, quantity)| SkuQuantity { sku, quantity })
                .collect(),
            status: Status::parse(r.get::<&str, _>(2)).unwrap_or(Status::Rejected),
        }
    }))
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
    correlation_id: Uuid,
    reservation_id: &str,
    lines: &[SkuQuantity],
    status: Status,
    expires_at: i64,
    event_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reservations (order_id, correlation_id, reservation_id, lines, status,
                                   expires_at, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(order_id)
    .bind(correlation_id)
    .bind(reservation_id)
    .bind(Json(to_pairs(lines)))
    .bind(status.as_str())
    .bind(expires_at)
    .bind(event_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn set_status(
    conn: &mut PgConnection,
    order_id: Uuid,
    status: Status,
    event_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reservations SET status = $2, last_event_id = $3 WHERE order_id = $1")
        .bind(order_id)
        .bind(status.as_str())
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Locks the stock rows of `skus` (in sku order, so concurrent transactions queue rather than
/// deadlock) and returns what is available.
pub async fn lock_available(
    conn: &mut PgConnection,
    skus: &[&str],
) -> Result<BTreeMap<String, i32>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT sku, available FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE")
            .bind(skus)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// How stock moves between columns.
#[derive(Debug, Clone, Copy)]
pub enum Movement {
    /// available → reserved
    Reserve,
    /// reserved → available
    Release,
    /// reserved → shipped
    Commit,
}

pub async fn move_stock(
    conn: &mut PgConnection,
    lines: &[SkuQuantity],
    movement: Movement,
) -> Result<(), sqlx::Error> {
    let set = match movement {
        Movement::Reserve => "available = available - x.q, reserved = reserved + x.q",
        Movement::Release => "available = available + x.q, reserved = reserved - x.q",
        Movement::Commit => "reserved = reserved - x.q, shipped = shipped + x.q",
    };
    let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity).collect();
    sqlx::query(&format!(
        "UPDATE stock SET {set} FROM unnest($1::text[], $2::int[]) AS x(sku, q)
         WHERE stock.sku = x.sku"
    ))
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks one sku's row, creating it empty first; returns what is available.
pub async fn lock_sku(conn: &mut PgConnection, sku: &str) -> Result<i32, sqlx::Error> {
    sqlx::query(
        "INSERT INTO stock (sku, available, reserved, shipped, adjusted) VALUES ($1, 0, 0, 0, 0)
         ON CONFLICT (sku) DO NOTHING",
    )
    .bind(sku)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT available FROM stock WHERE sku = $1 FOR UPDATE")
        .bind(sku)
        .fetch_one(&mut *conn)
        .await
}

pub async fn adjust(conn: &mut PgConnection, sku: &str, change: i32) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE stock SET available = available + $2, adjusted = adjusted + $2 WHERE sku = $1",
    )
    .bind(sku)
    .bind(change)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A reservation whose TTL has passed.
#[derive(Debug, Clone)]
pub struct Due {
    pub order_id: Uuid,
    pub correlation_id: Uuid,
    pub reservation_id: String,
    pub last_event_id: Uuid,
}

/// Claims up to `limit` active reservations due at `now_ms`, marking them EXPIRING. Rows other
/// instances are claiming are skipped, not waited for.
pub async fn claim_due(
    conn: &mut PgConnection,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE reservations SET status = 'EXPIRING' WHERE order_id IN (
             SELECT order_id FROM reservations WHERE status = 'ACTIVE' AND expires_at <= $1
             ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING order_id, correlation_id, reservation_id, last_event_id",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Due {
            order_id: r.get(0),
            correlation_id: r.get(1),
            reservation_id: r.get(2),
            last_event_id: r.get(3),
        })
        .collect())
}
