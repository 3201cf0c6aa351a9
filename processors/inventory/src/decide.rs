//! The inventory service's decisions, pure.
//!
//! A reservation holds stock from OrderPlaced until the order's terminal event: OrderConfirmed
//! commits it (the stock leaves the warehouse), OrderCancelled releases it. Its expiry only
//! *announces* itself (StockReservationExpired): the stock stays reserved until the order
//! service — the one arbiter of an order's outcome — cancels, so an expiry racing a
//! confirmation can never release stock that is then shipped.

use std::collections::BTreeMap;

use troupe_events::decision::Decision;
use troupe_events::domain::{Event, Money, OrderLine, Shortage, SkuQuantity};

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

/// A reservation: the order's hold on stock, or the record that none could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub reservation_id: String,
    pub lines: Vec<SkuQuantity>,
    pub status: Status,
    /// When it stops waiting for payment (ms since the epoch).
    pub expires_at: i64,
}

/// Stock of one sku. Conservation: `adjusted = available + reserved + shipped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Level {
    pub available: i32,
    pub reserved: i32,
    pub shipped: i32,
    /// The sum of every adjustment applied.
    pub adjusted: i64,
}

/// What inventory knows when an event arrives: the order's reservation and the stock of the
/// skus the event touches (a sku it never stocked has no entry: nothing available).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub reservation: Option<Reservation>,
    pub stock: BTreeMap<String, Level>,
}

/// What a decision needs besides what is known: the time, how long a reservation waits for
/// payment, and the id a new reservation gets.
#[derive(Debug, Clone)]
pub struct Context {
    pub now_ms: i64,
    pub ttl_ms: i64,
    pub reservation_id: String,
}

/// How stock moves between columns.
#[derive(Debug, Clone, Copy)]
enum Movement {
    /// available → reserved
    Reserve,
    /// reserved → available
    Release,
    /// reserved → shipped
    Commit,
}

/// `known` with `lines` moved, and the reservation in `status`.
fn moved(known: &Known, lines: &[SkuQuantity], movement: Movement, status: Status) -> Known {
    let mut after = known.clone();
    for line in lines {
        let level = after.stock.entry(line.sku.clone()).or_default();
        let q = line.quantity;
        match movement {
            Movement::Reserve => {
                level.available -= q;
                level.reserved += q;
            }
            Movement::Release => {
                level.available += q;
                level.reserved -= q;
            }
            Movement::Commit => {
                level.reserved -= q;
                level.shipped += q;
            }
        }
    }
    if let Some(reservation) = &mut after.reservation {
        reservation.status = status;
    }
    after
}

/// Decides what an event means for an order's reservation and the stock: the state after it
/// and what to emit.
pub fn decide(known: &Known, event: &Event, ctx: &Context) -> Decision<Known> {
    let reservation = known.reservation.as_ref();
    match event {
        Event::OrderPlaced {
            customer_id,
            lines,
            currency,
            total,
            ..
        } => {
            // Reserved (or refused) once per order, whatever arrives twice.
            if reservation.is_some() {
                return Decision::nothing();
            }
            let available = known
                .stock
                .iter()
                .map(|(sku, level)| (sku.clone(), level.available))
                .collect();
            match reserve(&available, &demand(lines)) {
                Ok(reserved) => {
                    let expires_at = ctx.now_ms + ctx.ttl_ms;
                    let held = Known {
                        reservation: Some(Reservation {
                            reservation_id: ctx.reservation_id.clone(),
                            lines: reserved.clone(),
                            status: Status::Active,
                            expires_at,
                        }),
                        stock: known.stock.clone(),
                    };
                    Decision::emit(
                        moved(&held, &reserved, Movement::Reserve, Status::Active),
                        Event::StockReserved {
                            reservation_id: ctx.reservation_id.clone(),
                            lines: reserved,
                            customer_id: customer_id.clone(),
                            total: Money {
                                minor: *total,
                                currency: currency.clone(),
                            },
                            expires_at,
                        },
                    )
                }
                Err(shortages) => Decision::emit(
                    Known {
                        reservation: Some(Reservation {
                            reservation_id: ctx.reservation_id.clone(),
                            lines: Vec::new(),
                            status: Status::Rejected,
                            expires_at: ctx.now_ms,
                        }),
                        stock: known.stock.clone(),
                    },
                    Event::StockRejected { shortages },
                ),
            }
        }
        Event::OrderCancelled { .. } => match reservation {
            Some(r) if r.status.holds_stock() => Decision::emit(
                moved(known, &r.lines, Movement::Release, Status::Released),
                Event::StockReleased {
                    reservation_id: r.reservation_id.clone(),
                    lines: r.lines.clone(),
                },
            ),
            _ => Decision::nothing(),
        },
        Event::OrderConfirmed { .. } => match reservation {
            Some(r) if r.status.holds_stock() => Decision::emit(
                moved(known, &r.lines, Movement::Commit, Status::Committed),
                Event::StockCommitted {
                    reservation_id: r.reservation_id.clone(),
                    lines: r.lines.clone(),
                },
            ),
            _ => Decision::nothing(),
        },
        // Payment arrived: the reservation no longer expires.
        Event::PaymentAuthorized { .. } => match reservation {
            Some(r) if r.status == Status::Active => {
                let mut after = known.clone();
                if let Some(r) = &mut after.reservation {
                    r.status = Status::Paid;
                }
                Decision::state(after)
            }
            _ => Decision::nothing(),
        },
        Event::StockAdjusted { sku, delta, set_to } => {
            let mut after = known.clone();
            let level = after.stock.entry(sku.clone()).or_default();
            let change = adjustment(level.available, *delta, *set_to);
            level.available += change;
            level.adjusted += i64::from(change);
            Decision::state(after)
        }
        _ => Decision::nothing(),
    }
}

/// The reservation timer: an active reservation past its time announces its expiry and keeps
/// its stock until the order service decides (module docs).
pub fn expire(known: &Known, now_ms: i64) -> Decision<Known> {
    match &known.reservation {
        Some(r) if r.status == Status::Active && r.expires_at <= now_ms => {
            let mut after = known.clone();
            if let Some(r) = &mut after.reservation {
                r.status = Status::Expiring;
            }
            Decision::emit(
                after,
                Event::StockReservationExpired {
                    reservation_id: r.reservation_id.clone(),
                },
            )
        }
        _ => Decision::nothing(),
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
    use troupe_events::samples::sample;
    use troupe_events::EventType;
    use troupe_testkit::given::given;
    use uuid::Uuid;

    fn stock(pairs: &[(&str, i32)]) -> BTreeMap<String, Level> {
        pairs
            .iter()
            .map(|(s, q)| {
                let level = Level {
                    available: *q,
                    adjusted: i64::from(*q),
                    ..Level::default()
                };
                (s.to_string(), level)
            })
            .collect()
    }

    fn line(sku: &str, quantity: i32) -> OrderLine {
        OrderLine {
            sku: sku.into(),
            quantity,
            unit_price: 100,
        }
    }

    fn ctx() -> Context {
        Context {
            now_ms: 1_000,
            ttl_ms: 500,
            reservation_id: "r-1".into(),
        }
    }

    fn placed(lines: Vec<OrderLine>) -> Event {
        let mut event = sample(EventType::OrderPlaced, Uuid::nil()).event;
        if let Event::OrderPlaced { lines: l, .. } = &mut event {
            *l = lines;
        }
        event
    }

    fn decide_now(known: &Known, event: &Event) -> Decision<Known> {
        decide(known, event, &ctx())
    }

    fn conserved(known: &Known) -> bool {
        known.stock.values().all(|l| {
            i64::from(l.available) + i64::from(l.reserved) + i64::from(l.shipped) == l.adjusted
                && l.available >= 0
                && l.reserved >= 0
        })
    }

    fn holding(status: Status) -> Known {
        let mut known = Known {
            reservation: None,
            stock: stock(&[("a", 5)]),
        };
        known = given("inventory", known)
            .when(&placed(vec![line("a", 2)]), decide_now)
            .into_after();
        if let Some(r) = &mut known.reservation {
            r.status = status;
        }
        known
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
    fn a_reservation_holds_every_line_or_none() {
        let known = Known {
            reservation: None,
            stock: stock(&[("a", 5), ("b", 1)]),
        };
        given("inventory", known.clone())
            .when(&placed(vec![line("a", 5), line("b", 1)]), decide_now)
            .emits(&[EventType::StockReserved])
            .after(|after| {
                assert_eq!(after.stock["a"].available, 0);
                assert_eq!(after.stock["a"].reserved, 5);
                assert_eq!(after.reservation.as_ref().unwrap().expires_at, 1_500);
                assert!(conserved(after));
            });
        let then = given("inventory", known)
            .when(
                &placed(vec![line("a", 2), line("b", 2), line("c", 1)]),
                decide_now,
            )
            .emits(&[EventType::StockRejected])
            .after(|after| {
                assert_eq!(after.reservation.as_ref().unwrap().status, Status::Rejected);
                assert_eq!(after.stock["a"].available, 5, "nothing held");
            });
        let [Event::StockRejected { shortages }] = then.emitted() else {
            panic!("a rejection");
        };
        assert_eq!(
            shortages,
            &vec![
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

    #[test]
    fn an_order_placed_twice_is_reserved_once() {
        given("inventory", holding(Status::Active))
            .when(&placed(vec![line("a", 2)]), decide_now)
            .emits_nothing()
            .unchanged();
    }

    fn cancelled() -> Event {
        Event::OrderCancelled {
            customer_id: "c".into(),
            reason: troupe_events::domain::CancellationReason::CustomerRequest,
            detail: String::new(),
        }
    }

    fn confirmed() -> Event {
        Event::OrderConfirmed {
            customer_id: "c".into(),
            shipment_id: "s".into(),
        }
    }

    #[rstest]
    #[case(Status::Active, "cancelled", &[EventType::StockReleased], Some(Status::Released))]
    #[case(Status::Paid, "cancelled", &[EventType::StockReleased], Some(Status::Released))]
    #[case(Status::Expiring, "cancelled", &[EventType::StockReleased], Some(Status::Released))]
    #[case(Status::Released, "cancelled", &[], None)]
    #[case(Status::Committed, "cancelled", &[], None)]
    #[case(Status::Rejected, "cancelled", &[], None)]
    #[case(Status::Active, "confirmed", &[EventType::StockCommitted], Some(Status::Committed))]
    #[case(Status::Expiring, "confirmed", &[EventType::StockCommitted], Some(Status::Committed))]
    #[case(Status::Committed, "confirmed", &[], None)]
    #[case(Status::Active, "paid", &[], Some(Status::Paid))]
    #[case(Status::Expiring, "paid", &[], None)]
    fn reservation_transitions(
        #[case] status: Status,
        #[case] what: &str,
        #[case] emits: &[EventType],
        #[case] after: Option<Status>,
    ) {
        let event = match what {
            "cancelled" => cancelled(),
            "confirmed" => confirmed(),
            _ => sample(EventType::PaymentAuthorized, Uuid::nil()).event,
        };
        let then = given("inventory", holding(status))
            .when(&event, decide_now)
            .emits(emits);
        match after {
            Some(expected) => {
                then.after(|known| {
                    assert_eq!(known.reservation.as_ref().unwrap().status, expected);
                    assert!(conserved(known));
                });
            }
            None => {
                then.unchanged();
            }
        }
        given("inventory", Known::default())
            .when(&event, decide_now)
            .emits_nothing()
            .unchanged();
    }

    #[test]
    fn an_expiry_announces_itself_and_keeps_the_stock() {
        let known = holding(Status::Active);
        given("inventory", known.clone())
            .when_timer(|k| expire(k, 1_499))
            .emits_nothing()
            .unchanged();
        given("inventory", known)
            .when_timer(|k| expire(k, 1_500))
            .emits(&[EventType::StockReservationExpired])
            .after(|after| {
                assert_eq!(after.reservation.as_ref().unwrap().status, Status::Expiring);
                assert_eq!(after.stock["a"].reserved, 2, "still held");
            });
        given("inventory", holding(Status::Paid))
            .when_timer(|k| expire(k, 9_999))
            .emits_nothing()
            .unchanged();
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
        let event = Event::StockAdjusted {
            sku: "a".into(),
            delta,
            set_to,
        };
        given(
            "inventory",
            Known {
                reservation: None,
                stock: stock(&[("a", available)]),
            },
        )
        .when(&event, decide_now)
        .emits_nothing()
        .after(|after| {
            assert_eq!(after.stock["a"].available, available + change);
            assert!(conserved(after));
        });
    }
}
