//! The notification service: exactly one customer message per terminal order (confirmation,
//! cancellation with its reason, or rejection), kept in its own table.
//!
//! - [`decide`]: the message, pure;
//! - [`store`]: the `notifications` table.

pub mod decide;
pub mod store;

use sqlx::PgConnection;
use troupe_events::decision::Decision;
use troupe_events::{Envelope, Metadata};
use troupe_runtime::Service;
use uuid::Uuid;

use decide::Notification;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The notification service.
#[derive(Debug, Clone, Default)]
pub struct NotificationService;

impl Service for NotificationService {
    const NAME: &'static str = "notification";
    type Known = Option<Notification>;
    type After = Notification;

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
    ) -> Result<Option<Notification>, sqlx::Error> {
        store::load(conn, envelope.meta.order_id).await
    }

    fn decide(
        &self,
        sent: &Option<Notification>,
        envelope: &Envelope,
        now_ms: i64,
    ) -> Decision<Notification> {
        let id = Uuid::now_v7().to_string();
        decide::decide(sent, &envelope.event, &id, now_ms)
    }

    async fn save(
        &self,
        conn: &mut PgConnection,
        cause: &Metadata,
        _sent: &Option<Notification>,
        after: &Notification,
        _now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        store::save(conn, cause.order_id, after).await
    }
}
