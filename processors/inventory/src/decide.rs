//! The inventory service's decisions, pure.
//!
//! A reservation holds stock from OrderPlaced until the order's terminal event: OrderConfirmed
//! commits it (the stock leaves the warehouse), OrderCancelled releases it. Its expiry only
//! *announces* itself (StockReservationExpired): the stock stays reserved until the order
//! service — the one arbiter of an order's outcome — cancels, so an expiry racing a
//! confirmation can never release stock that is then shipped.

use std::collections::BTreeMap;

use troupe_events::domain::{Event, OrderLine, Shortage, SkuQuantity};

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Stock held, waiting for payment; the expiry timer runs.
    Active,
    /// Payment arrived; no longer expires.
    Paid,
    /// The TTL passed; StockReservationExpired was emitted; stock still held.
    Expiring,
    Released,
    Committed,
    /// Nothing could be reserved (StockRejected); holds no stock.
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Paid => "PAID",
            Status::Expiring => "EXPIRING",
            Status::Released => "RELEASED",
            Status::Committed => "COMMITTED",
            Status::Rejected => "REJECTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Status::Active,
            Status::Paid,
            Status::Expiring,
            Status::Released,
            Status::Committed,
            Status::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the reservation holds stock.
    pub fn holds_stock(self) -> bool {
        matches!(self, Status::Active | Status::Paid | Status::Expiring)
    }
}

/// Sums an order's lines per sku (an order may name a sku twice).
pub fn demand(lines: &[OrderLine]) -> Vec<SkuQuantity> {
    let mut per_sku: BTreeMap<&str, i32> = BTreeMap::new();
    for line in lines {
        *per_sku.entry(&line.sku).or_default() += line.quantity;
    }
    per_sku
        .into_iter()
        .map(|(sku, quantity)| SkuQuantity {
            sku: sku.to_owned(),
            quantity,
        })
        .collect()
}

/// All or nothing: the lines to reserve, or every shortage.
pub fn reserve(
    available: &BTreeMap<String, i32>,
    demand: &[SkuQuantity],
) -> Result<Vec<SkuQuantity>, Vec<Shortage>> {
    let shortages: Vec<Shortage> = demand
        .iter()
        .filter_map(|want| {
            let have = available.get(&want.sku).copied().unwrap_or(0);
            (have < want.quantity).then(|| Shortage {
                sku: want.sku.clone(),
                requested: want.quantity,
                available: have,
            })
        })
        .collect();
    if shortages.is_empty() {
        Ok(demand.to_vec())
    } else {
        Err(shortages)
    }
}

/// What an event on the order or payment topics does to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Give the stock back (StockReleased).
    Release,
    /// The stock leaves the warehouse (StockCommitted).
    Commit,
    /// Payment arrived: stop the expiry timer.
    MarkPaid,
    Nothing,
}

pub fn on_event(status: Option<Status>, event: &Event) -> Action {
    let Some(status) = status else {
        return Action::Nothing;
    };
    match event {
        Event::OrderCancelled { .. } if status.holds_stock() => Action::Release,
        Event::OrderConfirmed { .. } if status.holds_stock() => Action::Commit,
        Event::PaymentAuthorized { .. } if status == Status::Active => Action::MarkPaid,
        _ => Action::Nothing,
    }
}

/// The change an adjustment makes to available stock: `delta`, or what reaches `set_to`, never
/// below zero on hand.
pub fn adjustment(available: i32, delta: i32, set_to: Option<i32>) -> i32 {
    let target = match set_to {
        Some(target) => target.max(0),
        None => available.saturating_add(delta).max(0),
    };
    target - available
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn stock(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(s, q)| (s.to_string(), *q)).collect()
    }

    fn line(sku: &str, quantity: i32) -> OrderLine {
        OrderLine {
            sku: sku.into(),
            quantity,
            unit_price: 100,
        }
    }

    #[test]
    fn demand_sums_lines_of_the_same_sku() {
        let d = demand(&[line("a", 1), line("b", 2), line("a", 3)]);
        assert_eq!(
            d,
            vec![
                SkuQuantity {
                    sku: "a".into(),
                    quantity: 4
                },
                SkuQuantity {
                    sku: "b".into(),
                    quantity: 2
                }
            ]
        );
    }

    #[test]
    fn reservation_is_all_or_nothing() {
        let have = stock(&[("a", 5), ("b", 1)]);
        assert!(reserve(&have, &demand(&[line("a", 5), line("b", 1)])).is_ok());
        let shortages =
            reserve(&have, &demand(&[line("a", 2), line("b", 2), line("c", 1)])).unwrap_err();
        assert_eq!(
            shortages,
            vec![
                Shortage {
                    sku: "b".into(),
                    requested: 2,
                    available: 1
                },
                Shortage {
                    sku: "c".into(),
                    requested: 1,
                    available: 0
                }
            ]
        );
    }

    #[rstest]
    #[case(Status::Active, "cancelled", Action::Release)]
    #[case(Status::Paid, "cancelled", Action::Release)]
    #[case(Status::Expiring, "cancelled", Action::Release)]
    #[case(Status::Released, "cancelled", Action::Nothing)]
    #[case(Status::Committed, "cancelled", Action::Nothing)]
    #[case(Status::Rejected, "cancelled", Action::Nothing)]
    #[case(Status::Active, "confirmed", Action::Commit)]
    #[case(Status::Expiring, "confirmed", Action::Commit)]
    #[case(Status::Committed, "confirmed", Action::Nothing)]
    #[case(Status::Active, "paid", Action::MarkPaid)]
    #[case(Status::Expiring, "paid", Action::Nothing)]
    fn reservation_transitions(
        #[case] status: Status,
        #[case] what: &str,
        #[case] expected: Action,
    ) {
        let event = match what {
            "cancelled" => Event::OrderCancelled {
                customer_id: "c".into(),
                reason: troupe_events::domain::CancellationReason::CustomerRequest,
                detail: String::new(),
            },
            "confirmed" => Event::OrderConfirmed {
                customer_id: "c".into(),
                shipment_id: "s".into(),
            },
            _ => {
                troupe_events::samples::sample(
                    troupe_events::EventType::PaymentAuthorized,
                    uuid::Uuid::nil(),
                )
                .event
            }
        };
        assert_eq!(on_event(Some(status), &event), expected);
        assert_eq!(on_event(None, &event), Action::Nothing);
    }

    #[rstest]
    #[case(3, 5, None, 5)]
    #[case(3, -2, None, -2)]
    #[case(3, -10, None, -3)]
    #[case(3, 0, Some(10), 7)]
    #[case(3, 99, Some(0), -3)]
    #[case(3, 0, Some(-4), -3)]
    fn adjustments_never_go_below_zero(
        #[case] available: i32,
        #[case] delta: i32,
        #[case] set_to: Option<i32>,
        #[case] change: i32,
    ) {
        assert_eq!(adjustment(available, delta, set_to), change);
        assert!(available + adjustment(available, delta, set_to) >= 0);
    }
}
