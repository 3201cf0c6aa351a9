//! The notification service: exactly one customer message per terminal order (confirmation,
//! cancellation with its reason, or rejection), kept in its own table.
//!
//! - [`decide`]: the message, pure;
//! - [`store`]: the `notifications` table.

pub mod decide;
pub mod store;

use sqlx::PgConnection;
use troupe_events::Envelope;
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
        let meta = &envelope.meta;
        let sent = store::load(conn, meta.order_id).await?;
        let id = Uuid::now_v7().to_string();
        let decision = decide::decide(&sent, &envelope.event, &id, now_ms);
        if let Some(after) = &decision.after {
            store::save(conn, meta.order_id, after).await?;
        }
        Ok(decision.envelopes(meta, Self::NAME, now_ms))
    }
}
