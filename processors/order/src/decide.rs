//! The order service's decisions, pure: (the order as known, an event) → (the order after,
//! events to emit). The order service is the arbiter of every order's terminal state: the first
//! decisive event it sees wins, and everything after a terminal state is ignored — the other
//! services compensate their own effects when they see the terminal event.

use troupe_events::decision::Decision;
use troupe_events::domain::{Address, CancellationReason, Event, OrderLine};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Placed,
    Confirmed,
    Cancelled,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Placed => "PLACED",
            Status::Confirmed => "CONFIRMED",
            Status::Cancelled => "CANCELLED",
            Status::Rejected => "REJECTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Status::Placed,
            Status::Confirmed,
            Status::Cancelled,
            Status::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        self != Status::Placed
    }
}

/// The order service's record of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub customer_id: String,
    pub status: Status,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub total: i64,
    pub currency: String,
    pub reserved: bool,
    pub paid: bool,
    pub shipment_id: Option<String>,
}

/// At most this many lines per order.
pub const MAX_LINES: usize = 100;

/// Why a PlaceOrder request is not acceptable, if it is not.
pub fn validate_request(
    customer_id: &str,
    lines: &[OrderLine],
    currency: &str,
    address: &Address,
    promotion_code: Option<&str>,
) -> Option<String> {
    if let Some(Err(reason)) = promotion_code.map(troupe_events::validate::promotion_code) {
        return Some(reason);
    }
    if customer_id.trim().is_empty() {
        return Some("customer id is empty".into());
    }
    if lines.is_empty() {
        return Some("order has no lines".into());
    }
    if lines.len() > MAX_LINES {
        return Some(format!(
            "order has {} lines; at most {MAX_LINES}",
            lines.len()
        ));
    }
    if let Some(line) = lines.iter().find(|l| l.sku.trim().is_empty()) {
        return Some(format!(
            "a line has an empty sku (quantity {})",
            line.quantity
        ));
    }
    if let Some(line) = lines
        .iter()
        .find(|l| l.quantity <= 0 || l.quantity > 10_000)
    {
        return Some(format!("line {} has quantity {}", line.sku, line.quantity));
    }
    if let Some(line) = lines.iter().find(|l| l.unit_price < 0) {
        return Some(format!("line {} has a negative price", line.sku));
    }
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Some(format!("currency {currency:?} is not an ISO 4217 code"));
    }
    if address.country.len() != 2 || !address.country.chars().all(|c| c.is_ascii_uppercase()) {
        return Some(format!(
            "country {:?} is not an ISO 3166 code",
            address.country
        ));
    }
    None
}

/// The total of an order's lines in minor units.
pub fn total(lines: &[OrderLine]) -> i64 {
    lines
        .iter()
        .map(|l| i64::from(l.quantity) * l.unit_price)
        .sum()
}

/// Decides what an event means for an order: the order after it, and what to emit.
pub fn decide(order: Option<&Order>, event: &Event) -> Decision<Order> {
    match (order, event) {
        (
            None,
            Event::PlaceOrder {
                customer_id,
                lines,
                currency,
                shipping_address,
                promotion_code,
            },
        ) => place(
            customer_id,
            lines,
            currency,
            shipping_address,
            promotion_code.as_deref(),
        ),
        // A repeated request for an order that exists already: idempotent by order id.
        (Some(_), Event::PlaceOrder { .. }) => Decision::nothing(),
        // Nothing to say about an order this service never placed.
        (None, _) => Decision::nothing(),
        (Some(order), _) if order.status.is_terminal() => Decision::nothing(),
        (Some(order), event) => follow(order, event),
    }
}

fn place(
    customer_id: &str,
    lines: &[OrderLine],
    currency: &str,
    address: &Address,
    promotion_code: Option<&str>,
) -> Decision<Order> {
    if let Some(reason) = validate_request(customer_id, lines, currency, address, promotion_code) {
        return Decision::emit(
            Order {
                customer_id: customer_id.to_owned(),
                status: Status::Rejected,
                reason: Some(reason.clone()),
                detail: None,
                total: 0,
                currency: currency.to_owned(),
                reserved: false,
                paid: false,
                shipment_id: None,
            },
            Event::OrderRejected {
                customer_id: customer_id.to_owned(),
                reason,
            },
        );
    }
    let total = total(lines);
    Decision::emit(
        Order {
            customer_id: customer_id.to_owned(),
            status: Status::Placed,
            reason: None,
            detail: None,
            total,
            currency: currency.to_owned(),
            reserved: false,
            paid: false,
            shipment_id: None,
        },
        Event::OrderPlaced {
            customer_id: customer_id.to_owned(),
            lines: lines.to_vec(),
            currency: currency.to_owned(),
            shipping_address: address.clone(),
            total,
            promotion_code: promotion_code.map(str::to_owned),
        },
    )
}

fn cancel(order: &Order, reason: CancellationReason, detail: String) -> Decision<Order> {
    let mut after = order.clone();
    after.status = Status::Cancelled;
    after.reason = Some(reason.symbol().to_owned());
    after.detail = Some(detail.clone());
    Decision::emit(
        after,
        Event::OrderCancelled {
            customer_id: order.customer_id.clone(),
            reason,
            detail,
        },
    )
}

fn update(order: &Order, change: impl FnOnce(&mut Order)) -> Decision<Order> {
    let mut after = order.clone();
    change(&mut after);
    Decision::state(after)
}

/// An open order learns of a step of the saga.
fn follow(order: &Order, event: &Event) -> Decision<Order> {
    match event {
        Event::StockReserved { .. } => update(order, |o| o.reserved = true),
        Event::PaymentAuthorized { .. } => update(order, |o| o.paid = true),
        Event::ShipmentScheduled { shipment_id, .. } => {
            let mut after = order.clone();
            after.status = Status::Confirmed;
            after.shipment_id = Some(shipment_id.clone());
            Decision::emit(
                after,
                Event::OrderConfirmed {
                    customer_id: order.customer_id.clone(),
                    shipment_id: shipment_id.clone(),
                },
            )
        }
        Event::StockRejected { shortages } => {
            let detail = shortages
                .iter()
                .map(|s| {
                    format!(
                        "{}: {} requested, {} available",
                        s.sku, s.requested, s.available
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            cancel(order, CancellationReason::OutOfStock, detail)
        }
        Event::PaymentDeclined { reason, .. } => {
            cancel(order, CancellationReason::PaymentDeclined, reason.clone())
        }
        Event::ShipmentFailed { reason } => {
            cancel(order, CancellationReason::ShipmentFailed, reason.clone())
        }
        Event::StockReservationExpired { .. } => cancel(
            order,
            CancellationReason::ReservationExpired,
            "payment did not arrive before the reservation expired".into(),
        ),
        Event::OrderCancellationRequested { reason } => {
            cancel(order, CancellationReason::CustomerRequest, reason.clone())
        }
        _ => Decision::nothing(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use troupe_events::domain::{EventType, Money, Shortage};
    use troupe_events::samples::sample;
    use troupe_testkit::given::given;
    use uuid::Uuid;

    fn request() -> Event {
        sample(EventType::PlaceOrder, Uuid::now_v7()).event
    }

    fn event(event_type: EventType) -> Event {
        sample(event_type, Uuid::nil()).event
    }

    fn decide_known(order: &Option<Order>, event: &Event) -> Decision<Order> {
        decide(order.as_ref(), event)
    }

    fn placed() -> Order {
        given("order", None)
            .when(&request(), decide_known)
            .into_after()
    }

    #[test]
    fn a_valid_request_places_the_order_with_its_total() {
        let then = given("order", None)
            .when(&request(), decide_known)
            .emits(&[EventType::OrderPlaced])
            .after(|order| {
                assert_eq!(order.status, Status::Placed);
                assert_eq!(order.total, 2 * 1999 + 3450);
            });
        assert!(matches!(
            then.emitted(),
            [Event::OrderPlaced { total: 7448, .. }]
        ));
    }

    #[test]
    fn the_promotion_code_travels_with_the_order() {
        let then = given("order", None).when(&request(), decide_known);
        assert!(matches!(
            then.emitted(),
            [Event::OrderPlaced { promotion_code: Some(code), .. }] if code == "SPRING-10"
        ));
    }

    #[rstest]
    #[case::no_lines(|e: &mut Event| if let Event::PlaceOrder { lines, .. } = e { lines.clear() }, "no lines")]
    #[case::zero_quantity(|e: &mut Event| if let Event::PlaceOrder { lines, .. } = e { lines[0].quantity = 0 }, "quantity 0")]
    #[case::negative_price(|e: &mut Event| if let Event::PlaceOrder { lines, .. } = e { lines[0].unit_price = -1 }, "negative price")]
    #[case::bad_currency(|e: &mut Event| if let Event::PlaceOrder { currency, .. } = e { *currency = "euros".into() }, "ISO 4217")]
    #[case::bad_country(|e: &mut Event| if let Event::PlaceOrder { shipping_address, .. } = e { shipping_address.country = "England".into() }, "ISO 3166")]
    #[case::bad_promotion_code(|e: &mut Event| if let Event::PlaceOrder { promotion_code, .. } = e { *promotion_code = Some("spring 10%".into()) }, "promotion code")]
    fn invalid_requests_are_rejected_with_a_reason(
        #[case] spoil: fn(&mut Event),
        #[case] expected: &str,
    ) {
        let mut request = request();
        spoil(&mut request);
        let then = given("order", None)
            .when(&request, decide_known)
            .emits(&[EventType::OrderRejected])
            .after(|order| assert_eq!(order.status, Status::Rejected));
        let [Event::OrderRejected { reason, .. }] = then.emitted() else {
            panic!("expected a rejection");
        };
        assert!(reason.contains(expected), "{reason}");
    }

    #[test]
    fn the_happy_path_ends_confirmed() {
        let order = given("order", Some(placed()))
            .when(&event(EventType::StockReserved), decide_known)
            .emits_nothing()
            .into_after();
        let order = given("order", Some(order))
            .when(&event(EventType::PaymentAuthorized), decide_known)
            .emits_nothing()
            .after(|o| assert!(o.reserved && o.paid))
            .into_after();
        given("order", Some(order))
            .when(&event(EventType::ShipmentScheduled), decide_known)
            .emits(&[EventType::OrderConfirmed])
            .after(|o| assert_eq!(o.status, Status::Confirmed));
    }

    #[rstest]
    #[case(Event::StockRejected { shortages: vec![Shortage { sku: "a".into(), requested: 2, available: 1 }] }, CancellationReason::OutOfStock)]
    #[case(Event::PaymentDeclined { customer_id: "c".into(), reason: "limit".into() }, CancellationReason::PaymentDeclined)]
    #[case(Event::ShipmentFailed { reason: "no carrier".into() }, CancellationReason::ShipmentFailed)]
    #[case(Event::StockReservationExpired { reservation_id: "r".into() }, CancellationReason::ReservationExpired)]
    #[case(Event::OrderCancellationRequested { reason: "mind changed".into() }, CancellationReason::CustomerRequest)]
    fn each_failure_cancels_with_its_reason(
        #[case] event: Event,
        #[case] reason: CancellationReason,
    ) {
        let then = given("order", Some(placed()))
            .when(&event, decide_known)
            .emits(&[EventType::OrderCancelled])
            .after(|order| {
                assert_eq!(order.status, Status::Cancelled);
                assert_eq!(order.reason.as_deref(), Some(reason.symbol()));
            });
        assert!(
            matches!(then.emitted(), [Event::OrderCancelled { reason: r, .. }] if *r == reason)
        );
    }

    #[test]
    fn nothing_changes_a_terminal_order() {
        let cancelled = given("order", Some(placed()))
            .when(
                &Event::OrderCancellationRequested { reason: "x".into() },
                decide_known,
            )
            .into_after();
        let confirmed = given("order", Some(placed()))
            .when(&event(EventType::ShipmentScheduled), decide_known)
            .into_after();
        for order in [cancelled, confirmed] {
            for late in [
                event(EventType::ShipmentScheduled),
                event(EventType::PaymentAuthorized),
                Event::StockReservationExpired {
                    reservation_id: "r".into(),
                },
                Event::OrderCancellationRequested {
                    reason: "late".into(),
                },
                request(),
            ] {
                given("order", Some(order.clone()))
                    .when(&late, decide_known)
                    .emits_nothing()
                    .unchanged();
            }
        }
    }

    #[test]
    fn events_about_unknown_orders_are_ignored() {
        let refund = Event::PaymentRefunded {
            payment_id: "p".into(),
            customer_id: "c".into(),
            amount: Money {
                minor: 1,
                currency: "EUR".into(),
            },
        };
        assert_eq!(decide(None, &refund), Decision::nothing());
        given("order", None::<Order>)
            .when(
                &Event::OrderCancellationRequested { reason: "x".into() },
                decide_known,
            )
            .emits_nothing()
            .unchanged();
    }
}
