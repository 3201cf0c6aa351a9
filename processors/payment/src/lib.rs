//! The payment service: authorises an order's amount against the customer's credit limit
//! (after a manual review for some customers), declines what does not fit, and refunds the
//! payments of cancelled orders.
//!
//! - [`decide`]: the decisions, pure;
//! - [`store`]: the `accounts` and `payments` tables.

pub mod decide;
pub mod store;

use std::time::Duration;

use sqlx::PgConnection;
use troupe_events::decision::Decision;
use troupe_events::{Envelope, Event, Metadata};
use troupe_runtime::config::env_or;
use troupe_runtime::{Due, Service};
use uuid::Uuid;

use decide::{Context, Known};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The payment service.
#[derive(Debug, Clone)]
pub struct PaymentService {
    /// Credit limit of a customer seen for the first time, in minor units.
    pub default_credit_limit: i64,
    /// How long a manual review takes.
    pub review: Duration,
    pub timer_interval: Duration,
}

impl PaymentService {
    /// `TROUPE_CREDIT_LIMIT_MINOR` (default 100000 = 1,000.00), `TROUPE_PAYMENT_REVIEW_MS`
    /// (default 60 s), `TROUPE_TIMER_INTERVAL_MS` (default 200 ms).
    pub fn from_env() -> Self {
        let number =
            |name: &str, default: i64| env_or(name, default.to_string()).parse().unwrap_or(default);
        Self {
            default_credit_limit: number("TROUPE_CREDIT_LIMIT_MINOR", 100_000),
            review: Duration::from_millis(number("TROUPE_PAYMENT_REVIEW_MS", 60_000) as u64),
            timer_interval: Duration::from_millis(number("TROUPE_TIMER_INTERVAL_MS", 200) as u64),
        }
    }
}

/// The customer an event is about, when payment reacts to it.
fn customer_of(event: &Event) -> Option<&str> {
    match event {
        Event::StockReserved { customer_id, .. } | Event::OrderCancelled { customer_id, .. } => {
            Some(customer_id)
        }
        _ => None,
    }
}

impl Service for PaymentService {
    const NAME: &'static str = "payment";
    type Known = Known;
    type After = Known;

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
    ) -> Result<Known, sqlx::Error> {
        // Payment reacts only to events that name the customer (choreography.yaml).
        let customer = customer_of(&envelope.event).unwrap_or_default();
        store::load(
            conn,
            envelope.meta.order_id,
            customer,
            self.default_credit_limit,
        )
        .await
    }

    fn decide(&self, known: &Known, envelope: &Envelope, now_ms: i64) -> Decision<Known> {
        let context = Context {
            now_ms,
            review_ms: self.review.as_millis() as i64,
            payment_id: Uuid::now_v7().to_string(),
        };
        decide::decide(known, &envelope.event, &context)
    }

    async fn save(
        &self,
        conn: &mut PgConnection,
        cause: &Metadata,
        known: &Known,
        after: &Known,
        _now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        store::save(conn, cause, known, after).await
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.timer_interval)
    }

    async fn due(
        &self,
        conn: &mut PgConnection,
        now_ms: i64,
    ) -> Result<Vec<Due<Known>>, sqlx::Error> {
        store::claim_reviews(conn, Self::NAME, now_ms, 200, self.default_credit_limit).await
    }

    fn fire(&self, known: &Known, now_ms: i64) -> Decision<Known> {
        decide::review(known, now_ms)
    }
}
