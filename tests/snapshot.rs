//! Every service's state at one moment, and the invariants the whole system must keep.

use std::collections::{BTreeMap, HashMap};

use sqlx::{PgPool, Row};
use uuid::Uuid;

/// One order as the order service knows it.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub customer_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub total: i64,
}

/// Every service's state at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub orders: HashMap<Uuid, OrderRow>,
    /// order → (status, [(sku, qty)])
    pub reservations: HashMap<Uuid, (String, Vec<(String, i32)>)>,
    /// sku → (available, reserved, shipped, adjusted)
    pub stock: BTreeMap<String, (i32, i32, i32, i64)>,
    /// order → (customer, status, amount, authorized, refunded)
    pub payments: HashMap<Uuid, (String, String, i64, i64, i64)>,
    /// customer → (limit, used)
    pub accounts: HashMap<String, (i64, i64)>,
    /// order → status
    pub shipments: HashMap<Uuid, Option<String>>,
    /// order → kind
    pub notifications: HashMap<Uuid, String>,
    pub notification_rows: i64,
    pub outbox_pending: i64,
}

impl Snapshot {
    pub(crate) async fn load(pools: &BTreeMap<&'static str, PgPool>) -> Result<Self, sqlx::Error> {
        let mut s = Snapshot::default();
        for row in sqlx::query("SELECT order_id, customer_id, status, reason, total FROM orders")
            .fetch_all(&pools["order"])
            .await?
        {
            s.orders.insert(
                row.get(0),
                OrderRow {
                    customer_id: row.get(1),
                    status: row.get(2),
                    reason: row.get(3),
                    total: row.get(4),
                },
            );
        }
        for row in sqlx::query("SELECT order_id, status, lines FROM reservations")
            .fetch_all(&pools["inventory"])
            .await?
        {
            let sqlx::types::Json(lines): sqlx::types::Json<Vec<(String, i32)>> = row.get(2);
            s.reservations.insert(row.get(0), (row.get(1), lines));
        }
        for row in sqlx::query("SELECT sku, available, reserved, shipped, adjusted FROM stock")
            .fetch_all(&pools["inventory"])
            .await?
        {
            s.stock
                .insert(row.get(0), (row.get(1), row.get(2), row.get(3), row.get(4)));
        }
        for row in sqlx::query(
            "SELECT order_id, customer_id, status, amount, authorized, refunded FROM payments",
        )
        .fetch_all(&pools["payment"])
        .await?
        {
            s.payments.insert(
                row.get(0),
                (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5)),
            );
        }
        for row in sqlx::query("SELECT customer_id, credit_limit, used FROM accounts")
            .fetch_all(&pools["payment"])
            .await?
        {
            s.accounts.insert(row.get(0), (row.get(1), row.get(2)));
        }
        for row in sqlx::query("SELECT order_id, status FROM shipments")
            .fetch_all(&pools["shipping"])
            .await?
        {
            s.shipments.insert(row.get(0), row.get(1));
        }
        for row in sqlx::query("SELECT order_id, kind FROM notifications")
            .fetch_all(&pools["notification"])
            .await?
        {
            s.notifications.insert(row.get(0), row.get(1));
        }
        s.notification_rows = sqlx::query_scalar("SELECT count(*) FROM notifications")
            .fetch_one(&pools["notification"])
            .await?;
        for pool in pools.values() {
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM troupe_outbox")
                .fetch_one(pool)
                .await?;
            s.outbox_pending += pending;
        }
        Ok(s)
    }

    /// Orders per outcome: `CONFIRMED`, `REJECTED`, or the cancellation reason.
    pub fn outcomes(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for order in self.orders.values() {
            let key = match order.status.as_str() {
                "CANCELLED" => order.reason.clone().unwrap_or_default(),
                other => other.to_owned(),
            };
            *out.entry(key).or_default() += 1;
        }
        out
    }

    /// Every broken invariant, described; empty when the system is consistent and settled.
    pub fn violations(&self, expected_orders: usize) -> Vec<String> {
        let mut v = Vec::new();
        if self.orders.len() != expected_orders {
            v.push(format!(
                "{} orders known, {expected_orders} placed",
                self.orders.len()
            ));
        }
        let mut net_per_customer: HashMap<&str, i64> = HashMap::new();
        for (customer, _, _, authorized, refunded) in self.payments.values() {
            *net_per_customer.entry(customer).or_default() += authorized - refunded;
        }
        for (id, order) in &self.orders {
            let reservation = self.reservations.get(id).map(|(s, _)| s.as_str());
            let payment = self.payments.get(id);
            let net = payment.map_or(0, |p| p.3 - p.4);
            let shipment = self.shipments.get(id).and_then(|s| s.as_deref());
            let notice = self.notifications.get(id).map(String::as_str);
            match order.status.as_str() {
                "CONFIRMED" => {
                    if reservation != Some("COMMITTED") {
                        v.push(format!("{id} confirmed, stock {reservation:?}"));
                    }
                    match payment {
                        Some((_, status, amount, authorized, refunded))
                            if status == "AUTHORIZED"
                                && *authorized == order.total
                                && *amount == order.total
                                && *refunded == 0 => {}
                        other => v.push(format!(
                            "{id} confirmed, payment {other:?}, total {}",
                            order.total
                        )),
                    }
                    if shipment != Some("SCHEDULED") {
                        v.push(format!("{id} confirmed, shipment {shipment:?}"));
                    }
                    if notice != Some("CONFIRMATION") {
                        v.push(format!("{id} confirmed, notice {notice:?}"));
                    }
                }
                "CANCELLED" => {
                    if !matches!(reservation, None | Some("RELEASED") | Some("REJECTED")) {
                        v.push(format!("{id} cancelled, stock {reservation:?}"));
                    }
                    if net != 0 {
                        v.push(format!("{id} cancelled, net money {net}"));
                    }
                    if shipment == Some("SCHEDULED") {
                        v.push(format!("{id} cancelled, shipment still scheduled"));
                    }
                    if notice != Some("CANCELLATION") {
                        v.push(format!("{id} cancelled, notice {notice:?}"));
                    }
                }
                "REJECTED" => {
                    if reservation.is_some() || payment.is_some() || shipment.is_some() {
                        v.push(format!("{id} rejected but has effects"));
                    }
                    if notice != Some("REJECTION") {
                        v.push(format!("{id} rejected, notice {notice:?}"));
                    }
                }
                other => v.push(format!("{id} is not terminal: {other}")),
            }
            let _ = &order.customer_id;
        }
        if self.notification_rows as usize != self.orders.len() {
            v.push(format!(
                "{} notifications for {} orders",
                self.notification_rows,
                self.orders.len()
            ));
        }
        let mut shipped: BTreeMap<&str, i64> = BTreeMap::new();
        let mut held: BTreeMap<&str, i64> = BTreeMap::new();
        for (status, lines) in self.reservations.values() {
            for (sku, quantity) in lines {
                match status.as_str() {
                    "COMMITTED" => *shipped.entry(sku).or_default() += i64::from(*quantity),
                    "ACTIVE" | "PAID" | "EXPIRING" => {
                        *held.entry(sku).or_default() += i64::from(*quantity)
                    }
                    _ => {}
                }
            }
        }
        for (sku, (available, reserved, ship, adjusted)) in &self.stock {
            if i64::from(*available) + i64::from(*reserved) + i64::from(*ship) != *adjusted {
                v.push(format!(
                    "{sku}: stock not conserved: {available} + {reserved} + {ship} != {adjusted}"
                ));
            }
            if *available < 0 || *reserved < 0 || *ship < 0 {
                v.push(format!("{sku}: negative stock"));
            }
            if i64::from(*ship) != shipped.get(sku.as_str()).copied().unwrap_or(0) {
                v.push(format!(
                    "{sku}: shipped {ship}, committed reservations say {:?}",
                    shipped.get(sku.as_str())
                ));
            }
            if i64::from(*reserved) != held.get(sku.as_str()).copied().unwrap_or(0) {
                v.push(format!(
                    "{sku}: reserved {reserved}, open reservations say {:?}",
                    held.get(sku.as_str())
                ));
            }
        }
        for (customer, (_, used)) in &self.accounts {
            let net = net_per_customer
                .get(customer.as_str())
                .copied()
                .unwrap_or(0);
            if *used != net {
                v.push(format!(
                    "{customer}: credit used {used}, payments net {net}"
                ));
            }
        }
        v
    }
}
