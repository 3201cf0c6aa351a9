//! The notification service's table: at most one message per order, by construction.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgPool, Row};
use troupe_events::domain::NotificationKind;
use uuid::Uuid;

use crate::decide::Notification;

fn notification_of(row: &sqlx::postgres::PgRow) -> Notification {
    Notification {
        notification_id: row.get("notification_id"),
        customer_id: row.get("customer_id"),
        kind: NotificationKind::from_symbol(row.get::<&str, _>("kind"))
            .unwrap_or(NotificationKind::Confirmation),
        message: row.get("message"),
        sent_at: row.get("sent_at"),
    }
}

/// The message sent for an order, if one was, locked.
pub async fn load(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Notification>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT notification_id, customer_id, kind, message, sent_at FROM notifications
         WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(notification_of))
}

/// Records the message of an order. The primary key keeps it unique per order, whatever
/// arrives twice at two instances at once.
pub async fn save(
    conn: &mut PgConnection,
    order_id: Uuid,
    notification: &Notification,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifications (order_id, notification_id, customer_id, kind, message, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(order_id)
    .bind(&notification.notification_id)
    .bind(&notification.customer_id)
    .bind(notification.kind.symbol())
    .bind(&notification.message)
    .bind(notification.sent_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every message, by order: the service's state as tests and tools read it.
pub async fn all(pool: &PgPool) -> Result<BTreeMap<Uuid, Notification>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT order_id, notification_id, customer_id, kind, message, sent_at FROM notifications",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("order_id"), notification_of(r)))
        .collect())
}
