//! The inventory service's tables: stock per sku and one reservation per order. Everything an
//! event touches is loaded locked (`FOR UPDATE`, skus in name order so concurrent transactions
//! queue rather than deadlock) and saved back whole.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};
use troupe_events::domain::SkuQuantity;
use troupe_events::Metadata;
use troupe_runtime::Due;
use uuid::Uuid;

use crate::decide::{Known, Level, Reservation, Status};

fn reservation_of(row: &sqlx::postgres::PgRow) -> Reservation {
    let Json(pairs): Json<Vec<(String, i32)>> = row.get("lines");
    Reservation {
        reservation_id: row.get("reservation_id"),
        lines: pairs
            .into_iter()
            .map(|(sku, quantity)| SkuQuantity { sku, quantity })
            .collect(),
        status: Status::parse(row.get::<&str, _>("status")).unwrap_or(Status::Rejected),
        expires_at: row.get("expires_at"),
    }
}

/// Loads, locked, the reservation of `order_id` and the stock of `skus` and of the
/// reservation's lines. With `create`, a sku never stocked gets an empty row first (an
/// adjustment's).
/// Locks the stock rows of every sku the batch's events touch, in sku order, before any event
/// is handled: each event then locks only rows its transaction already holds. Locked event by
/// event instead, two instances' batches took the same skus in different orders and deadlocked
/// (PostgreSQL detects that after a second, and the batch is retried), which with three
/// instances of inventory cost seconds per order. The skus are the requests' lines and
/// adjustments, and the reservations of the other events' orders (locked already, so stable).
pub async fn lock_stock_of(
    conn: &mut PgConnection,
    events: &[&troupe_events::Envelope],
) -> Result<(), sqlx::Error> {
    let mut skus: BTreeSet<String> = BTreeSet::new();
    let mut orders = Vec::new();
    for envelope in events {
        match &envelope.event {
            troupe_events::Event::OrderPlaced { lines, .. } => {
                skus.extend(lines.iter().map(|l| l.sku.clone()));
            }
            troupe_events::Event::StockAdjusted { sku, .. } => {
                skus.insert(sku.clone());
            }
            _ => orders.push(envelope.meta.order_id),
        }
    }
    if !orders.is_empty() {
        let reserved: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT line->>0 FROM reservations, jsonb_array_elements(lines) AS line
             WHERE order_id = ANY($1)",
        )
        .bind(&orders)
        .fetch_all(&mut *conn)
        .await?;
        skus.extend(reserved);
    }
    if !skus.is_empty() {
        let skus: Vec<String> = skus.into_iter().collect();
        sqlx::query("SELECT sku FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE")
            .bind(&skus)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn load(
    conn: &mut PgConnection,
    order_id: Uuid,
    skus: &[&str],
    create: bool,
) -> Result<Known, sqlx::Error> {
    let reservation = if order_id.is_nil() {
        None
    } else {
        sqlx::query(
            "SELECT reservation_id, lines, status, expires_at FROM reservations
             WHERE order_id = $1 FOR UPDATE",
        )
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(reservation_of)
    };
    let mut wanted: BTreeSet<&str> = skus.iter().copied().collect();
    if let Some(r) = &reservation {
        wanted.extend(r.lines.iter().map(|l| l.sku.as_str()));
    }
    let wanted: Vec<&str> = wanted.into_iter().collect();
    if create {
        sqlx::query(
            "INSERT INTO stock (sku, available, reserved, shipped, adjusted)
             SELECT sku, 0, 0, 0, 0 FROM unnest($1::text[]) AS sku ON CONFLICT (sku) DO NOTHING",
        )
        .bind(&wanted)
        .execute(&mut *conn)
        .await?;
    }
    let rows = sqlx::query(
        "SELECT sku, available, reserved, shipped, adjusted FROM stock
         WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
    )
    .bind(&wanted)
    .fetch_all(&mut *conn)
    .await?;
    let stock = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Level {
                    available: r.get(1),
                    reserved: r.get(2),
                    shipped: r.get(3),
                    adjusted: r.get(4),
                },
            )
        })
        .collect();
    Ok(Known { reservation, stock })
}

/// Writes back what changed between `before` and `after`: the reservation, and the stock
/// rows whose level moved.
pub async fn save(
    conn: &mut PgConnection,
    meta: &Metadata,
    before: &Known,
    after: &Known,
) -> Result<(), sqlx::Error> {
    if let Some(r) = &after.reservation {
        if before.reservation.as_ref() != Some(r) {
            let pairs: Vec<(String, i32)> = r
                .lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity))
                .collect();
            sqlx::query(
                "INSERT INTO reservations (order_id, correlation_id, reservation_id, lines, status,
                                           expires_at, last_event_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,
                     last_event_id = EXCLUDED.last_event_id",
            )
            .bind(meta.order_id)
            .bind(meta.correlation_id)
            .bind(&r.reservation_id)
            .bind(Json(pairs))
            .bind(r.status.as_str())
            .bind(r.expires_at)
            .bind(meta.event_id)
            .execute(&mut *conn)
            .await?;
        }
    }
    let changed: Vec<(&String, &Level)> = after
        .stock
        .iter()
        .filter(|(sku, level)| before.stock.get(*sku) != Some(*level))
        .collect();
    if !changed.is_empty() {
        let skus: Vec<&str> = changed.iter().map(|(s, _)| s.as_str()).collect();
        let column = |f: fn(&Level) -> i32| changed.iter().map(|(_, l)| f(l)).collect::<Vec<_>>();
        let adjusted: Vec<i64> = changed.iter().map(|(_, l)| l.adjusted).collect();
        sqlx::query(
            "UPDATE stock SET available = x.a, reserved = x.r, shipped = x.s, adjusted = x.adj
             FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::bigint[])
                  AS x(sku, a, r, s, adj)
             WHERE stock.sku = x.sku",
        )
        .bind(&skus)
        .bind(column(|l| l.available))
        .bind(column(|l| l.reserved))
        .bind(column(|l| l.shipped))
        .bind(&adjusted)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Claims up to `limit` active reservations due at `now_ms`, locked, each with the metadata
/// its expiry is caused by; rows other instances are claiming are skipped, not waited for.
pub async fn claim_due(
    conn: &mut PgConnection,
    producer: &str,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Due<Known>>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT order_id, correlation_id, last_event_id, reservation_id, lines, status, expires_at
         FROM reservations WHERE status = 'ACTIVE' AND expires_at <= $1
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Due {
            cause: Metadata::fired(
                r.get("order_id"),
                r.get("correlation_id"),
                r.get("last_event_id"),
                producer,
                now_ms,
            ),
            known: Known {
                reservation: Some(reservation_of(r)),
                stock: BTreeMap::new(),
            },
        })
        .collect())
}

/// Every reservation, by order: the service's state as tests and tools read it.
pub async fn reservations(pool: &PgPool) -> Result<BTreeMap<Uuid, Reservation>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT order_id, reservation_id, lines, status, expires_at FROM reservations")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("order_id"), reservation_of(r)))
        .collect())
}

/// Every sku's stock.
pub async fn stock(pool: &PgPool) -> Result<BTreeMap<String, Level>, sqlx::Error> {
    let rows = sqlx::query("SELECT sku, available, reserved, shipped, adjusted FROM stock")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Level {
                    available: r.get(1),
                    reserved: r.get(2),
                    shipped: r.get(3),
                    adjusted: r.get(4),
                },
            )
        })
        .collect())
}
