//! The prepared statements of a copy: every query and write [`CqlStore`] runs, prepared once
//! per store on first use.

use scylla::statement::prepared::PreparedStatement;

use super::{cql, CqlStore};
use crate::store::StoreError;

/// Every statement a copy runs, prepared against its keyspace.
pub(super) struct Statements {
    pub(super) status: PreparedStatement,
    pub(super) customer: PreparedStatement,
    pub(super) lines: PreparedStatement,
    pub(super) currency: PreparedStatement,
    pub(super) total: PreparedStatement,
    pub(super) promotion: PreparedStatement,
    pub(super) reason: PreparedStatement,
    pub(super) step: PreparedStatement,
    pub(super) newest: PreparedStatement,
    pub(super) get_orders: PreparedStatement,
    pub(super) get_lines: PreparedStatement,
    pub(super) index_customer: PreparedStatement,
    pub(super) customer_orders: PreparedStatement,
    pub(super) put_timeline: PreparedStatement,
    pub(super) timeline: PreparedStatement,
    pub(super) get_stock: PreparedStatement,
    pub(super) stock_markers: PreparedStatement,
    pub(super) set_stock: PreparedStatement,
    pub(super) mark_stock: PreparedStatement,
    pub(super) put_sale: PreparedStatement,
    pub(super) sales: PreparedStatement,
    pub(super) put_cancellation: PreparedStatement,
    pub(super) cancellations: PreparedStatement,
    pub(super) get_position: PreparedStatement,
    pub(super) put_position: PreparedStatement,
}

impl CqlStore {
    /// The statements, prepared on first use.
    pub(super) async fn statements(&self) -> Result<&Statements, StoreError> {
        self.statements
            .get_or_try_init(|| async {
                let k = &self.keyspace;
                let prepare =
                    |text: String| async move { self.session.prepare(text).await.map_err(cql) };
                let set = |cells: &str| {
                    prepare(format!(
                        "UPDATE {k}.orders USING TIMESTAMP ? SET {cells} WHERE order_id = ?"
                    ))
                };
                Ok::<_, StoreError>(Statements {
                    status: set("status = ?").await?,
                    customer: set("customer_id = ?").await?,
                    lines: set("lines = ?").await?,
                    currency: set("currency = ?").await?,
                    total: set("total_minor = ?").await?,
                    promotion: set("promotion_code = ?").await?,
                    reason: set("reason = ?, detail = ?").await?,
                    step: set("steps[?] = ?").await?,
                    newest: set("updated_at = ?, last_position = ?").await?,
                    get_orders: prepare(format!(
                        "SELECT order_id, customer_id, status, lines, currency, total_minor, \
                         promotion_code, reason, detail, steps, updated_at, last_position \
                         FROM {k}.orders WHERE order_id IN ?"
                    ))
                    .await?,
                    get_lines: prepare(format!("SELECT lines FROM {k}.orders WHERE order_id = ?"))
                        .await?,
                    index_customer: prepare(format!(
                        "INSERT INTO {k}.customer_orders (customer_id, requested_at, order_id) \
                         VALUES (?, ?, ?)"
                    ))
                    .await?,
                    customer_orders: prepare(format!(
                        "SELECT order_id FROM {k}.customer_orders WHERE customer_id = ?"
                    ))
                    .await?,
                    put_timeline: prepare(format!(
                        "INSERT INTO {k}.timeline (order_id, occurred_at, event_id, event_type, \
                         service, detail) VALUES (?, ?, ?, ?, ?, ?)"
                    ))
                    .await?,
                    timeline: prepare(format!(
                        "SELECT order_id, occurred_at, event_id, event_type, service, detail \
                         FROM {k}.timeline WHERE order_id = ?"
                    ))
                    .await?,
                    get_stock: prepare(format!(
                        "SELECT available, reserved, sold, version FROM {k}.stock \
                         WHERE sku = ? LIMIT 1"
                    ))
                    .await?,
                    stock_markers: prepare(format!(
                        "SELECT marker FROM {k}.stock WHERE sku = ? AND marker IN ?"
                    ))
                    .await?,
                    set_stock: prepare(format!(
                        "UPDATE {k}.stock SET available = ?, reserved = ?, sold = ?, version = ? \
                         WHERE sku = ? IF version = ?"
                    ))
                    .await?,
                    mark_stock: prepare(format!(
                        "INSERT INTO {k}.stock (sku, marker) VALUES (?, ?)"
                    ))
                    .await?,
                    put_sale: prepare(format!(
                        "INSERT INTO {k}.sales (order_id, sku, day, units, revenue_minor) \
                         VALUES (?, ?, ?, ?, ?)"
                    ))
                    .await?,
                    sales: prepare(format!(
                        "SELECT day, sku, units, revenue_minor FROM {k}.sales"
                    ))
                    .await?,
                    put_cancellation: prepare(format!(
                        "INSERT INTO {k}.cancellations (order_id, day, reason) VALUES (?, ?, ?)"
                    ))
                    .await?,
                    cancellations: prepare(format!("SELECT day, reason FROM {k}.cancellations"))
                        .await?,
                    get_position: prepare(format!(
                        "SELECT next_offset FROM {k}.positions WHERE key = ?"
                    ))
                    .await?,
                    put_position: prepare(format!(
                        "UPDATE {k}.positions USING TIMESTAMP ? SET next_offset = ? WHERE key = ?"
                    ))
                    .await?,
                })
            })
            .await
    }
}
