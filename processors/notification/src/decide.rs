//! What to tell the customer about a terminal order, pure.

use troupe_events::domain::{CancellationReason, Event, NotificationKind};

/// The message for a terminal event; `None` for every other event.
pub fn message(event: &Event) -> Option<(String, NotificationKind, String)> {
    match event {
        Event::OrderConfirmed {
            customer_id,
            shipment_id,
        } => Some((
            customer_id.clone(),
            NotificationKind::Confirmation,
            format!("Your order is confirmed and on its way (shipment {shipment_id})."),
        )),
        Event::OrderCancelled {
            customer_id,
            reason,
            detail,
        } => Some((
            customer_id.clone(),
            NotificationKind::Cancellation,
            format!("Your order was cancelled: {}. {detail}", explain(*reason)),
        )),
        Event::OrderRejected {
            customer_id,
            reason,
        } => Some((
            customer_id.clone(),
            NotificationKind::Rejection,
            format!("We could not accept your order: {reason}."),
        )),
        _ => None,
    }
}

fn explain(reason: CancellationReason) -> &'static str {
    match reason {
        CancellationReason::OutOfStock => "some items are out of stock",
        CancellationReason::PaymentDeclined => "the payment was declined",
        CancellationReason::ShipmentFailed => "we cannot ship to your address",
        CancellationReason::ReservationExpired => "payment did not arrive in time",
        CancellationReason::CustomerRequest => "you asked us to",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_terminal_event_has_a_message_and_nothing_else_does() {
        for reason in CancellationReason::ALL {
            let (_, kind, text) = message(&Event::OrderCancelled {
                customer_id: "c".into(),
                reason,
                detail: "d".into(),
            })
            .unwrap();
            assert_eq!(kind, NotificationKind::Cancellation);
            assert!(text.contains(explain(reason)));
        }
        assert!(message(&Event::OrderConfirmed {
            customer_id: "c".into(),
            shipment_id: "s".into()
        })
        .is_some());
        assert!(message(&Event::OrderRejected {
            customer_id: "c".into(),
            reason: "r".into()
        })
        .is_some());
        assert!(message(&Event::ShipmentFailed { reason: "r".into() }).is_none());
    }
}
