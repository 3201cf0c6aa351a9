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
use troupe_events::{Envelope, Event, Metadata};
use troupe_runtime::config::env_or;
use troupe_runtime::{Handler, HandlerError};
use uuid::Uuid;

use decide::Context;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The payment service's handler.
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

impl Handler for PaymentService {
    const NAME: &'static str = "payment";

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
        let customer_id = match &envelope.event {
            Event::StockReserved { customer_id, .. }
            | Event::OrderCancelled { customer_id, .. } => customer_id,
            _ => return Ok(Vec::new()),
        };
        let known =
            store::load(conn, meta.order_id, customer_id, self.default_credit_limit).await?;
        let context = Context {
            now_ms,
            review_ms: self.review.as_millis() as i64,
            payment_id: Uuid::now_v7().to_string(),
        };
        let decision = decide::decide(&known, &envelope.event, &context);
        if let Some(after) = &decision.after {
            store::save(conn, meta, customer_id, &known, after).await?;
        }
        Ok(decision.envelopes(meta, Self::NAME, now_ms))
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.timer_interval)
    }

    async fn tick(
        &self,
        conn: &mut PgConnection,
        now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let mut out = Vec::new();
        for due in store::claim_reviews(conn, now_ms, 200).await? {
            let known = store::load(
                conn,
                due.order_id,
                &due.customer_id,
                self.default_credit_limit,
            )
            .await?;
            let decision = decide::review(&known, now_ms);
            let cause = Metadata::fired(
                due.order_id,
                due.correlation_id,
                due.last_event_id,
                Self::NAME,
                now_ms,
            );
            if let Some(after) = &decision.after {
                store::save(conn, &cause, &due.customer_id, &known, after).await?;
            }
            out.extend(decision.emit.into_iter().map(|event| Envelope {
                meta: cause.clone(),
                event,
            }));
        }
        Ok(out)
    }
}
