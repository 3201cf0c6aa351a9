//! The payment service's tables: one payment per order, one account per customer. What an
//! event touches is loaded locked and saved back whole.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgPool, Row};
use troupe_events::Metadata;
use troupe_runtime::Due;
use uuid::Uuid;

use crate::decide::{Account, Known, Payment, Status};

const PAYMENT_COLUMNS: &str =
    "payment_id, customer_id, amount, currency, status, review_until, authorized, refunded";

fn payment_of(row: &sqlx::postgres::PgRow) -> Payment {
    Payment {
        payment_id: row.get("payment_id"),
        customer_id: row.get("customer_id"),
        amount: row.get("amount"),
        currency: row.get("currency"),
        status: Status::parse(row.get::<&str, _>("status")).unwrap_or(Status::Cancelled),
        review_until: row.get("review_until"),
        authorized: row.get("authorized"),
        refunded: row.get("refunded"),
    }
}

/// Loads, locked, the payment of `order_id` and the account of `customer_id` (created with
/// `default_limit` on first sight).
pub async fn load(
    conn: &mut PgConnection,
    order_id: Uuid,
    customer_id: &str,
    default_limit: i64,
) -> Result<Known, sqlx::Error> {
    let payment = sqlx::query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE"
    ))
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(payment_of);
    let account = lock_account(conn, customer_id, default_limit).await?;
    Ok(Known { payment, account })
}

async fn lock_account(
    conn: &mut PgConnection,
    customer_id: &str,
    default_limit: i64,
) -> Result<Account, sqlx::Error> {
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
    Ok(Account {
        customer_id: customer_id.to_owned(),
        credit_limit: row.get(0),
        used: row.get(1),
    })
}

/// Writes back what changed: the payment row of the order, the account's credit used.
pub async fn save(
    conn: &mut PgConnection,
    meta: &Metadata,
    before: &Known,
    after: &Known,
) -> Result<(), sqlx::Error> {
    if let Some(payment) = &after.payment {
        if before.payment.as_ref() != Some(payment) {
            sqlx::query(
                "INSERT INTO payments (order_id, correlation_id, payment_id, customer_id, amount,
                                       currency, status, review_until, authorized, refunded,
                                       last_event_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,
                     review_until = EXCLUDED.review_until, authorized = EXCLUDED.authorized,
                     refunded = EXCLUDED.refunded, last_event_id = EXCLUDED.last_event_id",
            )
            .bind(meta.order_id)
            .bind(meta.correlation_id)
            .bind(&payment.payment_id)
            .bind(&payment.customer_id)
            .bind(payment.amount)
            .bind(&payment.currency)
            .bind(payment.status.as_str())
            .bind(payment.review_until)
            .bind(payment.authorized)
            .bind(payment.refunded)
            .bind(meta.event_id)
            .execute(&mut *conn)
            .await?;
        }
    }
    if after.account != before.account {
        sqlx::query("UPDATE accounts SET used = $2 WHERE customer_id = $1")
            .bind(&after.account.customer_id)
            .bind(after.account.used)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Claims reviews due at `now_ms`, locked, each with what payment knows of its order and the
/// metadata its verdict is caused by; rows another instance holds are skipped.
pub async fn claim_reviews(
    conn: &mut PgConnection,
    producer: &str,
    now_ms: i64,
    limit: i64,
    default_limit: i64,
) -> Result<Vec<Due<Known>>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT order_id, correlation_id, last_event_id, {PAYMENT_COLUMNS}
         FROM payments WHERE status = 'IN_REVIEW' AND review_until <= $1
         ORDER BY review_until LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut due = Vec::with_capacity(rows.len());
    for row in &rows {
        let payment = payment_of(row);
        let account = lock_account(conn, &payment.customer_id, default_limit).await?;
        due.push(Due {
            cause: Metadata::fired(
                row.get("order_id"),
                row.get("correlation_id"),
                row.get("last_event_id"),
                producer,
                now_ms,
            ),
            known: Known {
                payment: Some(payment),
                account,
            },
        });
    }
    Ok(due)
}

/// Every payment, by order: the service's state as tests and tools read it.
pub async fn payments(pool: &PgPool) -> Result<BTreeMap<Uuid, Payment>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT order_id, {PAYMENT_COLUMNS} FROM payments"))
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("order_id"), payment_of(r)))
        .collect())
}

/// Every customer's account.
pub async fn accounts(pool: &PgPool) -> Result<BTreeMap<String, Account>, sqlx::Error> {
    let rows = sqlx::query("SELECT customer_id, credit_limit, used FROM accounts")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Account {
                    customer_id: r.get(0),
                    credit_limit: r.get(1),
                    used: r.get(2),
                },
            )
        })
        .collect())
}
