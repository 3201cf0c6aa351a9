//! What to tell the customer about a terminal order, pure.

use troupe_events::decision::Decision;
use troupe_events::domain::{CancellationReason, Event, NotificationKind};

/// The one message an order's customer gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub notification_id: String,
    pub customer_id: String,
    pub kind: NotificationKind,
    pub message: String,
    pub sent_at: i64,
}

/// Decides whether an event means a message: one per order, for its outcome, never two.
/// `notification_id` and `now_ms` are the new message's id and time.
pub fn decide(
    sent: &Option<Notification>,
    event: &Event,
    notification_id: &str,
    now_ms: i64,
) -> Decision<Notification> {
    if sent.is_some() {
        return Decision::nothing();
    }
    let Some((customer_id, kind, message)) = message(event) else {
        return Decision::nothing();
    };
    let notification = Notification {
        notification_id: notification_id.to_owned(),
        customer_id: customer_id.clone(),
        kind,
        message: message.clone(),
        sent_at: now_ms,
    };
    Decision::emit(
        notification,
        Event::CustomerNotified {
            notification_id: notification_id.to_owned(),
            customer_id,
            kind,
            message,
        },
    )
}

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
    use troupe_events::EventType;
    use troupe_testkit::given::given;

    fn decide_now(sent: &Option<Notification>, event: &Event) -> Decision<Notification> {
        decide(sent, event, "n-1", 1_000)
    }

    #[test]
    fn an_outcome_is_told_once() {
        let confirmed = Event::OrderConfirmed {
            customer_id: "c".into(),
            shipment_id: "s".into(),
        };
        let sent = given("notification", None)
            .when(&confirmed, decide_now)
            .emits(&[EventType::CustomerNotified])
            .after(|n| assert_eq!(n.kind, NotificationKind::Confirmation))
            .into_after();
        given("notification", Some(sent))
            .when(&confirmed, decide_now)
            .emits_nothing()
            .unchanged();
    }

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
