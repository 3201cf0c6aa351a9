//! The payment service's tables.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::decide::Status;

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub payment_id: String,
    pub customer_id: String,
    pub amount: i64,
    pub currency: String,
    pub status: Status,
}

pub async fn payment(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT payment_id, customer_id, amount, currency, status FROM payments
         WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| Payment {
        payment_id: r.get(0),
        customer_id: r.get(1),
        amount: r.get(2),
        currency: r.get(3),
        status: Status::parse(r.get::<&str, _>(4)).unwrap_or(Status::Cancelled),
    }))
}

/// Locks the customer's account (created with `default_limit` on first sight); returns
/// (credit limit, used).
pub async fn lock_account(
    conn: &mut PgConnection,
    customer_id: &str,
    default_limit: i64,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query(
        "INSERT INTO accounts (customer_id, credit_limit, used) VALUES ($1, $2, 0)
         ON CONFLICT (customer_id) DO NOTHING",
    )
    .bind(customer_id)
    .bind(default_limit)
    .execute(&mut *conn)
    .await?;
    let row =
        sqlx::query("SELECT credit_limit, used FROM accounts WHERE customer_id = $1 FOR UPDATE")
            .bind(customer_id)
            .fetch_one(&mut *conn)
            .await?;
    Ok((row.get(0), row.get(1)))
}

pub async fn add_used(
    conn: &mut PgConnection,
    customer_id: &str,
    change: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE accounts SET used = used + $2 WHERE customer_id = $1")
        .bind(customer_id)
        .bind(change)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts or updates the payment row of an order.
#[allow(clippy::too_many_arguments)]
pub async fn upsert(
    conn: &mut PgConnection,
    order_id: Uuid,
    correlation_id: Uuid,
    payment: &Payment,
    review_until: Option<i64>,
    authorized: i64,
    refunded: i64,
    event_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payments (order_id, correlation_id, payment_id, customer_id, amount, currency,
                               status, review_until, authorized, refunded, last_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,
             review_until = EXCLUDED.review_until,
             authorized = payments.authorized + EXCLUDED.authorized,
             refunded = payments.refunded + EXCLUDED.refunded,
             last_event_id = EXCLUDED.last_event_id",
    )
    .bind(order_id)
    .bind(correlation_id)
    .bind(&payment.payment_id)
    .bind(&payment.customer_id)
    .bind(payment.amount)
    .bind(&payment.currency)
    .bind(payment.status.as_str())
    .bind(review_until)
    .bind(authorized)
    .bind(refunded)
    .bind(event_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A payment whose review has ended.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub order_id: Uuid,
    pub correlation_id: Uuid,
    pub last_event_id: Uuid,
    pub payment: Payment,
}

/// Claims reviews due at `now_ms`, skipping rows another instance holds.
pub async fn claim_reviews(
    conn: &mut PgConnection,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Reviewed>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT order_id, correlation_id, last_event_id, payment_id, customer_id, amount, currency
         FROM payments WHERE status = 'IN_REVIEW' AND review_until <= $1
         ORDER BY review_until LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Reviewed {
            order_id: r.get(0),
            correlation_id: r.get(1),
            last_event_id: r.get(2),
            payment: Payment {
                payment_id: r.get(3),
                customer_id: r.get(4),
                amount: r.get(5),
                currency: r.get(6),
                status: Status::InReview,
            },
        })
        .collect())
}
