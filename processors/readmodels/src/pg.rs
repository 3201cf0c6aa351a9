//! The read models in PostgreSQL: guarded upserts, one transaction per batch.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::model::{
    Changes, Fact, Line, OrderSummary, Status, StockChange, StockLevel, TimelineEntry,
};
use crate::store::{DailyStats, ReadStore, ReasonDay, SkuDay, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The migrations of the PostgreSQL read models (the projector's runtime runs them too).
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// A copy of the read models in one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// An order's events with what caused each and where it was read, in the order they
    /// occurred (`troupe trace`).
    pub async fn trace(&self, order_id: Uuid) -> Result<Vec<TraceEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.event_id, t.occurred_at, t.event_type, t.service, t.detail,
                    e.causation_id, e.position
               FROM timeline t LEFT JOIN event_trace e ON e.event_id = t.event_id
              WHERE t.order_id = $1 ORDER BY t.occurred_at, t.event_id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| TraceEntry {
                event_id: r.get("event_id"),
                causation_id: r.get("causation_id"),
                occurred_at: r.get("occurred_at"),
                event_type: r.get("event_type"),
                service: r.get("service"),
                detail: r.get("detail"),
                position: r.get("position"),
            })
            .collect())
    }
}

/// One event of an order's causation tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraceEntry {
    pub event_id: Uuid,
    /// The event that caused it (`None`: the start, or an event of a source).
    pub causation_id: Option<Uuid>,
    pub occurred_at: i64,
    pub event_type: String,
    pub service: String,
    pub detail: String,
    /// Where the projector read it, `topic/partition@offset` (`None` for events applied before
    /// positions were recorded).
    pub position: Option<String>,
}

const SUMMARY_UPSERT: &str = r#"
INSERT INTO order_summary AS s
    (order_id, customer_id, status, status_rank, lines, currency, total_minor, reason, detail,
     steps, updated_at, last_position, promotion_code)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (order_id) DO UPDATE SET
    customer_id = COALESCE(s.customer_id, EXCLUDED.customer_id),
    status = CASE WHEN EXCLUDED.status_rank > s.status_rank THEN EXCLUDED.status ELSE s.status END,
    status_rank = GREATEST(s.status_rank, EXCLUDED.status_rank),
    lines = COALESCE(s.lines, EXCLUDED.lines),
    currency = COALESCE(s.currency, EXCLUDED.currency),
    total_minor = COALESCE(s.total_minor, EXCLUDED.total_minor),
    promotion_code = COALESCE(s.promotion_code, EXCLUDED.promotion_code),
    reason = COALESCE(s.reason, EXCLUDED.reason),
    detail = CASE WHEN s.reason IS NULL THEN EXCLUDED.detail ELSE s.detail END,
    steps = EXCLUDED.steps || s.steps,
    last_position = CASE WHEN (EXCLUDED.updated_at, EXCLUDED.last_position COLLATE "C")
                              >= (s.updated_at, COALESCE(s.last_position, '') COLLATE "C")
                         THEN EXCLUDED.last_position ELSE s.last_position END,
    updated_at = GREATEST(s.updated_at, EXCLUDED.updated_at)"#;

async fn apply_one(conn: &mut PgConnection, changes: &Changes) -> Result<(), StoreError> {
    if let Some(change) = &changes.summary {
        let at = changes.timeline.as_ref().map_or(0, |t| t.occurred_at);
        let steps: serde_json::Value = match change.step {
            Some((step, time)) => serde_json::json!({ step.column(): time }),
            None => serde_json::json!({}),
        };
        let lines = change
            .lines
            .as_ref()
            .map(|l| serde_json::to_value(l).expect("lines serialise"));
        sqlx::query(SUMMARY_UPSERT)
            .bind(change.order_id)
            .bind(&change.customer_id)
            .bind(change.status.map(Status::name))
            .bind(change.status.map_or(-1, Status::rank))
            .bind(lines)
            .bind(&change.currency)
            .bind(change.total_minor)
            .bind(change.reason.as_ref().map(|r| r.0.as_str()))
            .bind(change.reason.as_ref().map(|r| r.1.as_str()))
            .bind(steps)
            .bind(at)
            .bind(&changes.position)
            .bind(&change.promotion_code)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(entry) = &changes.timeline {
        sqlx::query(
            "INSERT INTO event_trace (event_id, order_id, causation_id, position)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(entry.event_id)
        .bind(entry.order_id)
        .bind(changes.causation_id)
        .bind(&changes.position)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO timeline (order_id, event_id, occurred_at, event_type, service, detail)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(entry.order_id)
        .bind(entry.event_id)
        .bind(entry.occurred_at)
        .bind(&entry.event_type)
        .bind(&entry.service)
        .bind(&entry.detail)
        .execute(&mut *conn)
        .await?;
    }
    match &changes.fact {
        Some(Fact::Confirmed { order_id, day }) => {
            // The order's lines, summed per sku; the order service writes OrderPlaced before
            // OrderConfirmed on the same partition, so the lines are known by now.
            sqlx::query(
                "INSERT INTO sales (order_id, sku, day, units, revenue_minor)
                 SELECT s.order_id, l.sku, $2, sum(l.quantity)::bigint,
                        sum(l.quantity * l.unit_price_minor)::bigint
                 FROM order_summary s,
                      jsonb_to_recordset(s.lines) AS l(sku text, quantity bigint, unit_price_minor bigint)
                 WHERE s.order_id = $1
                 GROUP BY s.order_id, l.sku
                 ON CONFLICT DO NOTHING",
            )
            .bind(order_id)
            .bind(day)
            .execute(&mut *conn)
            .await?;
        }
        Some(Fact::Cancelled {
            order_id,
            day,
            reason,
        }) => {
            sqlx::query(
                "INSERT INTO cancellations (order_id, day, reason) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(order_id)
            .bind(day)
            .bind(reason)
            .execute(&mut *conn)
            .await?;
        }
        None => {}
    }
    Ok(())
}

/// Applies a batch's stock moves, sku by sku in name order: two projectors of one copy lock
/// the skus they share in the same order and never deadlock on them. Each (event, sku) is
/// applied once, marked in the same transaction.
async fn apply_stock(conn: &mut PgConnection, batch: &[Changes]) -> Result<(), StoreError> {
    let mut per_sku: BTreeMap<&str, Vec<&StockChange>> = BTreeMap::new();
    for change in batch.iter().flat_map(|c| &c.stock) {
        per_sku.entry(&change.sku).or_default().push(change);
    }
    for (sku, changes) in per_sku {
        // The row first, so that FOR UPDATE has a row to lock: two projectors changing a new
        // sku at once would otherwise both start from nothing.
        sqlx::query(
            "INSERT INTO stock (sku, available, reserved, sold) VALUES ($1, 0, 0, 0)
             ON CONFLICT DO NOTHING",
        )
        .bind(sku)
        .execute(&mut *conn)
        .await?;
        let row =
            sqlx::query("SELECT available, reserved, sold FROM stock WHERE sku = $1 FOR UPDATE")
                .bind(sku)
                .fetch_one(&mut *conn)
                .await?;
        let mut level = StockLevel {
            available: row.get(0),
            reserved: row.get(1),
            sold: row.get(2),
        };
        for change in changes {
            let fresh = sqlx::query(
                "INSERT INTO stock_applied (event_id, sku) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(change.event_id)
            .bind(sku)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if fresh > 0 {
                level = level.after(change.kind);
            }
        }
        sqlx::query("UPDATE stock SET available = $2, reserved = $3, sold = $4 WHERE sku = $1")
            .bind(sku)
            .bind(level.available)
            .bind(level.reserved)
            .bind(level.sold)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn summary(row: &sqlx::postgres::PgRow) -> OrderSummary {
    let lines: Option<serde_json::Value> = row.get("lines");
    let steps: serde_json::Value = row.get("steps");
    let status: Option<String> = row.get("status");
    OrderSummary {
        order_id: row.get("order_id"),
        customer_id: row.get("customer_id"),
        status: status.as_deref().and_then(Status::from_name),
        lines: lines
            .and_then(|l| serde_json::from_value::<Vec<Line>>(l).ok())
            .unwrap_or_default(),
        currency: row.get("currency"),
        total_minor: row.get("total_minor"),
        promotion_code: row.get("promotion_code"),
        reason: row.get("reason"),
        detail: row.get("detail"),
        steps: serde_json::from_value::<BTreeMap<String, i64>>(steps).unwrap_or_default(),
        updated_at: row.get("updated_at"),
        last_position: row.get("last_position"),
    }
}

impl ReadStore for PgStore {
    async fn prepare(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError(format!("migrations: {e}")))
    }

    async fn apply(&self, batch: &[Changes]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for changes in batch {
            apply_one(&mut tx, changes).await?;
        }
        apply_stock(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_positions(
        &self,
        next_offsets: &[(String, i32, i64)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (topic, partition, next) in next_offsets {
            sqlx::query(
                "INSERT INTO positions (topic, partition, next_offset) VALUES ($1, $2, $3)
                 ON CONFLICT (topic, partition)
                 DO UPDATE SET next_offset = GREATEST(positions.next_offset, EXCLUDED.next_offset)",
            )
            .bind(topic)
            .bind(partition)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn position(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT next_offset FROM positions WHERE topic = $1 AND partition = $2",
        )
        .bind(topic)
        .bind(partition)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn order(&self, order_id: Uuid) -> Result<Option<OrderSummary>, StoreError> {
        let row = sqlx::query("SELECT * FROM order_summary WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(summary))
    }

    async fn customer_orders(
        &self,
        customer_id: &str,
        limit: usize,
        page: usize,
    ) -> Result<Vec<OrderSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM order_summary WHERE customer_id = $1 AND steps ? 'requested_at'
             ORDER BY (steps->>'requested_at')::bigint DESC, order_id
             LIMIT $2 OFFSET $3",
        )
        .bind(customer_id)
        .bind(limit as i64)
        .bind((limit * page) as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(summary).collect())
    }

    async fn timeline(&self, order_id: Uuid) -> Result<Vec<TimelineEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT order_id, occurred_at, event_id, event_type, service, detail FROM timeline
             WHERE order_id = $1 ORDER BY occurred_at, event_id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| TimelineEntry {
                order_id: r.get(0),
                occurred_at: r.get(1),
                event_id: r.get(2),
                event_type: r.get(3),
                service: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }

    async fn stock(&self, sku: &str) -> Result<Option<StockLevel>, StoreError> {
        let row = sqlx::query("SELECT available, reserved, sold FROM stock WHERE sku = $1")
            .bind(sku)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| StockLevel {
            available: r.get(0),
            reserved: r.get(1),
            sold: r.get(2),
        }))
    }

    async fn daily_stats(&self) -> Result<DailyStats, StoreError> {
        let sales = sqlx::query(
            "SELECT day, sku, sum(revenue_minor)::bigint, sum(units)::bigint FROM sales
             GROUP BY day, sku ORDER BY day, sku",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| SkuDay {
            day: r.get(0),
            sku: r.get(1),
            confirmed_revenue_minor: r.get(2),
            units: r.get(3),
        })
        .collect();
        let cancellations = sqlx::query(
            "SELECT day, reason, count(*) FROM cancellations GROUP BY day, reason ORDER BY day, reason",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| ReasonDay {
            day: r.get(0),
            reason: r.get(1),
            orders: r.get(2),
        })
        .collect();
        Ok(DailyStats {
            sales,
            cancellations,
        })
    }
}
