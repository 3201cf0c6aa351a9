//! Every service's state at one moment, read through each service's own typed reads (its
//! `store` module), and the invariants the whole system must keep.

use std::collections::BTreeMap;

use sqlx::PgPool;
use troupe_inventory::decide::{Level, Reservation, Status as ReservationStatus};
use troupe_notification::decide::Notification;
use troupe_order::decide::{Order, Status as OrderStatus};
use troupe_payment::decide::{Account, Payment, Status as PaymentStatus};
use troupe_shipping::decide::{Knowledge, Status as ShipmentStatus};
use uuid::Uuid;

/// Every service's state at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub orders: BTreeMap<Uuid, Order>,
    pub reservations: BTreeMap<Uuid, Reservation>,
    pub stock: BTreeMap<String, Level>,
    pub payments: BTreeMap<Uuid, Payment>,
    pub accounts: BTreeMap<String, Account>,
    pub shipments: BTreeMap<Uuid, Knowledge>,
    pub notifications: BTreeMap<Uuid, Notification>,
    pub outbox_pending: i64,
}

impl Snapshot {
    pub(crate) async fn load(pools: &BTreeMap<&'static str, PgPool>) -> Result<Self, sqlx::Error> {
        let mut outbox_pending = 0;
        for pool in pools.values() {
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM troupe_outbox")
                .fetch_one(pool)
                .await?;
            outbox_pending += pending;
        }
        Ok(Snapshot {
            orders: troupe_order::store::all(&pools["order"]).await?,
            reservations: troupe_inventory::store::reservations(&pools["inventory"]).await?,
            stock: troupe_inventory::store::stock(&pools["inventory"]).await?,
            payments: troupe_payment::store::payments(&pools["payment"]).await?,
            accounts: troupe_payment::store::accounts(&pools["payment"]).await?,
            shipments: troupe_shipping::store::all(&pools["shipping"]).await?,
            notifications: troupe_notification::store::all(&pools["notification"]).await?,
            outbox_pending,
        })
    }

    /// Orders per outcome: `CONFIRMED`, `REJECTED`, or the cancellation reason.
    pub fn outcomes(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for order in self.orders.values() {
            let key = match order.status {
                OrderStatus::Cancelled => order.reason.clone().unwrap_or_default(),
                other => other.as_str().to_owned(),
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
        for (id, order) in &self.orders {
            self.order_violations(*id, order, &mut v);
        }
        if self.notifications.len() != self.orders.len() {
            v.push(format!(
                "{} notifications for {} orders",
                self.notifications.len(),
                self.orders.len()
            ));
        }
        self.stock_violations(&mut v);
        self.credit_violations(&mut v);
        v
    }

    /// What each service holds for one order agrees with the order's outcome.
    fn order_violations(&self, id: Uuid, order: &Order, v: &mut Vec<String>) {
        let reservation = self.reservations.get(&id).map(|r| r.status);
        let payment = self.payments.get(&id);
        let net = payment.map_or(0, |p| p.authorized - p.refunded);
        let shipment = self.shipments.get(&id).and_then(|k| k.status);
        let notice = self.notifications.get(&id).map(|n| n.kind.symbol());
        match order.status {
            OrderStatus::Confirmed => {
                if reservation != Some(ReservationStatus::Committed) {
                    v.push(format!("{id} confirmed, stock {reservation:?}"));
                }
                let paid = payment.is_some_and(|p| {
                    p.status == PaymentStatus::Authorized
                        && p.authorized == order.total
                        && p.amount == order.total
                        && p.refunded == 0
                });
                if !paid {
                    v.push(format!(
                        "{id} confirmed, payment {payment:?}, total {}",
                        order.total
                    ));
                }
                if shipment != Some(ShipmentStatus::Scheduled) {
                    v.push(format!("{id} confirmed, shipment {shipment:?}"));
                }
                if notice != Some("CONFIRMATION") {
                    v.push(format!("{id} confirmed, notice {notice:?}"));
                }
            }
            OrderStatus::Cancelled => {
                if reservation.is_some_and(ReservationStatus::holds_stock)
                    || reservation == Some(ReservationStatus::Committed)
                {
                    v.push(format!("{id} cancelled, stock {reservation:?}"));
                }
                if net != 0 {
                    v.push(format!("{id} cancelled, net money {net}"));
                }
                if shipment == Some(ShipmentStatus::Scheduled) {
                    v.push(format!("{id} cancelled, shipment still scheduled"));
                }
                if notice != Some("CANCELLATION") {
                    v.push(format!("{id} cancelled, notice {notice:?}"));
                }
            }
            OrderStatus::Rejected => {
                if reservation.is_some() || payment.is_some() || shipment.is_some() {
                    v.push(format!("{id} rejected but has effects"));
                }
                if notice != Some("REJECTION") {
                    v.push(format!("{id} rejected, notice {notice:?}"));
                }
            }
            OrderStatus::Placed => v.push(format!("{id} is not terminal: PLACED")),
        }
    }

    /// Stock is conserved per sku and agrees with the reservations.
    fn stock_violations(&self, v: &mut Vec<String>) {
        let mut shipped: BTreeMap<&str, i64> = BTreeMap::new();
        let mut held: BTreeMap<&str, i64> = BTreeMap::new();
        for reservation in self.reservations.values() {
            for line in &reservation.lines {
                let quantity = i64::from(line.quantity);
                if reservation.status == ReservationStatus::Committed {
                    *shipped.entry(&line.sku).or_default() += quantity;
                } else if reservation.status.holds_stock() {
                    *held.entry(&line.sku).or_default() += quantity;
                }
            }
        }
        for (sku, level) in &self.stock {
            let Level {
                available,
                reserved,
                shipped: ship,
                adjusted,
            } = *level;
            if i64::from(available) + i64::from(reserved) + i64::from(ship) != adjusted {
                v.push(format!(
                    "{sku}: stock not conserved: {available} + {reserved} + {ship} != {adjusted}"
                ));
            }
            if available < 0 || reserved < 0 || ship < 0 {
                v.push(format!("{sku}: negative stock"));
            }
            if i64::from(ship) != shipped.get(sku.as_str()).copied().unwrap_or(0) {
                v.push(format!(
                    "{sku}: shipped {ship}, committed reservations say {:?}",
                    shipped.get(sku.as_str())
                ));
            }
            if i64::from(reserved) != held.get(sku.as_str()).copied().unwrap_or(0) {
                v.push(format!(
                    "{sku}: reserved {reserved}, open reservations say {:?}",
                    held.get(sku.as_str())
                ));
            }
        }
    }

    /// Each customer's credit used is what their payments hold.
    fn credit_violations(&self, v: &mut Vec<String>) {
        let mut net_per_customer: BTreeMap<&str, i64> = BTreeMap::new();
        for payment in self.payments.values() {
            *net_per_customer.entry(&payment.customer_id).or_default() +=
                payment.authorized - payment.refunded;
        }
        for (customer, account) in &self.accounts {
            let net = net_per_customer
                .get(customer.as_str())
                .copied()
                .unwrap_or(0);
            if account.used != net {
                v.push(format!(
                    "{customer}: credit used {}, payments net {net}",
                    account.used
                ));
            }
        }
    }
}
