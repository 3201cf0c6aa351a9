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
use troupe_events::domain::Money;
use troupe_events::{Envelope, Event, Metadata};
use troupe_runtime::config::env_or;
use troupe_runtime::{Handler, HandlerError};
use uuid::Uuid;

use decide::{OnCancelled, OnReserved, Status, Verdict};
use store::Payment;

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

    /// Judges a payment against the customer's credit and records the outcome.
    async fn settle(
        &self,
        conn: &mut PgConnection,
        order_id: Uuid,
        correlation_id: Uuid,
        event_id: Uuid,
        mut payment: Payment,
    ) -> Result<Event, sqlx::Error> {
        let (limit, used) =
            store::lock_account(conn, &payment.customer_id, self.default_credit_limit).await?;
        match decide::judge(limit, used, payment.amount) {
            Verdict::Authorize => {
                store::add_used(conn, &payment.customer_id, payment.amount).await?;
                payment.status = Status::Authorized;
                store::upsert(
                    conn,
                    order_id,
                    correlation_id,
                    &payment,
                    None,
                    payment.amount,
                    0,
                    event_id,
                )
                .await?;
                Ok(Event::PaymentAuthorized {
                    payment_id: payment.payment_id,
                    customer_id: payment.customer_id,
                    amount: Money {
                        minor: payment.amount,
                        currency: payment.currency,
                    },
                })
            }
            Verdict::Decline(reason) => {
                payment.status = Status::Declined;
                store::upsert(
                    conn,
                    order_id,
                    correlation_id,
                    &payment,
                    None,
                    0,
                    0,
                    event_id,
                )
                .await?;
                Ok(Event::PaymentDeclined {
                    customer_id: payment.customer_id,
                    reason,
                })
            }
        }
    }
}

fn caused(cause: &Metadata, now_ms: i64, event: Event) -> Envelope {
    Envelope::caused_by(cause, PaymentService::NAME, now_ms, event)
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
        match &envelope.event {
            Event::StockReserved {
                customer_id, total, ..
            } => {
                let existing = store::payment(conn, meta.order_id).await?;
                let payment = Payment {
                    payment_id: Uuid::now_v7().to_string(),
                    customer_id: customer_id.clone(),
                    amount: total.minor,
                    currency: total.currency.clone(),
                    status: Status::InReview,
                };
                match decide::on_reserved(
                    existing.map(|p| p.status),
                    customer_id,
                    now_ms,
                    self.review.as_millis() as i64,
                ) {
                    OnReserved::Ignore => Ok(Vec::new()),
                    OnReserved::Review { until } => {
                        store::upsert(
                            conn,
                            meta.order_id,
                            meta.correlation_id,
                            &payment,
                            Some(until),
                            0,
                            0,
                            meta.event_id,
                        )
                        .await?;
                        Ok(Vec::new())
                    }
                    OnReserved::Judge => {
                        let event = self
                            .settle(
                                conn,
                                meta.order_id,
                                meta.correlation_id,
                                meta.event_id,
                                payment,
                            )
                            .await?;
                        Ok(vec![caused(meta, now_ms, event)])
                    }
                }
            }
            Event::OrderCancelled { customer_id, .. } => {
                let existing = store::payment(conn, meta.order_id).await?;
                match decide::on_cancelled(existing.as_ref().map(|p| p.status)) {
                    OnCancelled::Refund => {
                        let mut payment = existing.expect("a payment to refund");
                        store::add_used(conn, &payment.customer_id, -payment.amount).await?;
                        payment.status = Status::Refunded;
                        store::upsert(
                            conn,
                            meta.order_id,
                            meta.correlation_id,
                            &payment,
                            None,
                            0,
                            payment.amount,
                            meta.event_id,
                        )
                        .await?;
                        Ok(vec![caused(
                            meta,
                            now_ms,
                            Event::PaymentRefunded {
                                payment_id: payment.payment_id,
                                customer_id: payment.customer_id,
                                amount: Money {
                                    minor: payment.amount,
                                    currency: payment.currency,
                                },
                            },
                        )])
                    }
                    OnCancelled::EndReview => {
                        let mut payment = existing.expect("a payment in review");
                        payment.status = Status::Cancelled;
                        store::upsert(
                            conn,
                            meta.order_id,
                            meta.correlation_id,
                            &payment,
                            None,
                            0,
                            0,
                            meta.event_id,
                        )
                        .await?;
                        Ok(Vec::new())
                    }
                    OnCancelled::Remember => {
                        let marker = Payment {
                            payment_id: String::new(),
                            customer_id: customer_id.clone(),
                            amount: 0,
                            currency: String::new(),
                            status: Status::Cancelled,
                        };
                        store::upsert(
                            conn,
                            meta.order_id,
                            meta.correlation_id,
                            &marker,
                            None,
                            0,
                            0,
                            meta.event_id,
                        )
                        .await?;
                        Ok(Vec::new())
                    }
                    OnCancelled::Nothing => Ok(Vec::new()),
                }
            }
            _ => Ok(Vec::new()),
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.timer_interval)
    }

    async fn tick(
        &self,
        conn: &mut PgConnection,
        now_ms: i64,
    ) -> Result<Vec<Envelope>, HandlerError> {
        let due = store::claim_reviews(conn, now_ms, 200).await?;
        let mut out = Vec::with_capacity(due.len());
        for reviewed in due {
            let event = self
                .settle(
                    conn,
                    reviewed.order_id,
                    reviewed.correlation_id,
                    reviewed.last_event_id,
                    reviewed.payment,
                )
                .await?;
            out.push(Envelope {
                meta: Metadata::fired(
                    reviewed.order_id,
                    reviewed.correlation_id,
                    reviewed.last_event_id,
                    Self::NAME,
                    now_ms,
                ),
                event,
            });
        }
        Ok(out)
    }
}
