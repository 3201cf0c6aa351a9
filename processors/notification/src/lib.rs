//! The notification service: exactly one customer message per terminal order (confirmation,
//! cancellation with its reason, or rejection), kept in its own table.
//!
//! - [`decide`]: the message, pure.

pub mod decide;

use sqlx::PgConnection;
use troupe_events::{Envelope, Event};
use troupe_runtime::{Handler, HandlerError};
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The notification service's handler.
#[derive(Debug, Clone, Default)]
pub struct NotificationService;

impl Handler for NotificationService {
    const NAME: &'static str = "notification";

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn handle(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
        now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let Some((customer_id, kind, message)) = decide::message(&envelope.event) else {
            return Ok(Vec::new());
        };
        let notification_id = Uuid::now_v7().to_string();
        // The primary key makes the message unique per order, whatever arrives twice.
        let sent = sqlx::query(
            "INSERT INTO notifications (order_id, notification_id, customer_id, kind, message, sent_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(envelope.meta.order_id)
        .bind(&notification_id)
        .bind(&customer_id)
        .bind(kind.symbol())
        .bind(&message)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if sent == 0 {
            return Ok(Vec::new());
        }
        Ok(vec![Envelope::caused_by(
            &envelope.meta,
            Self::NAME,
            now_ms,
            Event::CustomerNotified {
                notification_id,
                customer_id,
                kind,
                message,
            },
        )])
    }
}
