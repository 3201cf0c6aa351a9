//! The shipping service's decisions, pure. Shipping learns an order's destination, payment and
//! cancellation from three topics, in any order; after each it asks [`next`] what to do.

use std::collections::BTreeSet;

use troupe_events::decision::Decision;
use troupe_events::domain::Event;

/// Where a shipment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Scheduled,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "SCHEDULED",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Status::Scheduled, Status::Failed, Status::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What shipping knows of one order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knowledge {
    pub country: Option<String>,
    pub paid: bool,
    pub cancelled: bool,
    pub status: Option<Status>,
    /// The shipment scheduled, and its carrier.
    pub shipment: Option<(String, String)>,
}

/// The next step for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Schedule { carrier: String },
    Fail { reason: String },
    CancelShipment,
    Wait,
}

/// The carrier network: which countries it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carriers {
    pub served: BTreeSet<String>,
}

impl Carriers {
    /// Parses a comma-separated list of ISO country codes.
    pub fn parse(list: &str) -> Self {
        Self {
            served: list
                .split(',')
                .map(|c| c.trim().to_ascii_uppercase())
                .filter(|c| !c.is_empty())
                .collect(),
        }
    }

    /// The carrier for a country, if one serves it.
    pub fn carrier(&self, country: &str) -> Option<String> {
        self.served.contains(country).then(|| {
            match country {
                "US" | "CA" | "MX" => "troupe-freight-americas",
                "GB" | "IE" => "troupe-post-uk",
                _ => "troupe-post-eu",
            }
            .to_owned()
        })
    }
}

/// The default network.
pub const DEFAULT_COUNTRIES: &str = "AT,BE,CA,CH,DE,DK,ES,FI,FR,GB,IE,IT,LU,MX,NL,NO,PL,PT,SE,US";

pub fn next(knowledge: &Knowledge, carriers: &Carriers) -> Step {
    match (knowledge.status, knowledge.cancelled) {
        (Some(Status::Scheduled), true) => Step::CancelShipment,
        (Some(_), _) | (None, true) => Step::Wait,
        (None, false) => match (&knowledge.country, knowledge.paid) {
            (Some(country), true) => match carriers.carrier(country) {
                Some(carrier) => Step::Schedule { carrier },
                None => Step::Fail {
                    reason: format!("no carrier serves {country}"),
                },
            },
            _ => Step::Wait,
        },
    }
}

/// Decides what an event means for an order's shipment: shipping learns the destination, the
/// payment and the cancellation in any order, and acts once it knows enough ([`next`]).
/// `shipment_id` is the id a new shipment gets.
pub fn decide(
    known: &Knowledge,
    event: &Event,
    carriers: &Carriers,
    shipment_id: &str,
) -> Decision<Knowledge> {
    let mut after = known.clone();
    match event {
        Event::OrderPlaced {
            shipping_address, ..
        } => after.country = Some(shipping_address.country.clone()),
        Event::PaymentAuthorized { .. } => after.paid = true,
        Event::OrderCancelled { .. } => after.cancelled = true,
        _ => return Decision::nothing(),
    }
    let emit = match next(&after, carriers) {
        Step::Schedule { carrier } => {
            after.status = Some(Status::Scheduled);
            after.shipment = Some((shipment_id.to_owned(), carrier.clone()));
            Some(Event::ShipmentScheduled {
                shipment_id: shipment_id.to_owned(),
                carrier,
                country: after.country.clone().unwrap_or_default(),
            })
        }
        Step::Fail { reason } => {
            after.status = Some(Status::Failed);
            Some(Event::ShipmentFailed { reason })
        }
        Step::CancelShipment => {
            after.status = Some(Status::Cancelled);
            Some(Event::ShipmentCancelled {
                shipment_id: after
                    .shipment
                    .as_ref()
                    .map(|s| s.0.clone())
                    .unwrap_or_default(),
            })
        }
        Step::Wait => None,
    };
    if after == *known {
        return Decision::nothing();
    }
    Decision {
        after: Some(after),
        emit: emit.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use troupe_events::samples::sample;
    use troupe_events::EventType;
    use troupe_testkit::given::given;
    use uuid::Uuid;

    fn carriers() -> Carriers {
        Carriers::parse(DEFAULT_COUNTRIES)
    }

    fn knowing(
        country: Option<&str>,
        paid: bool,
        cancelled: bool,
        status: Option<Status>,
    ) -> Knowledge {
        Knowledge {
            country: country.map(str::to_owned),
            paid,
            cancelled,
            status,
            shipment: None,
        }
    }

    fn decide_with(known: &Knowledge, event: &Event) -> Decision<Knowledge> {
        decide(known, event, &carriers(), "s-1")
    }

    fn event(event_type: EventType) -> Event {
        sample(event_type, Uuid::nil()).event
    }

    #[test]
    fn a_paid_order_ships_whichever_arrives_last_and_a_cancellation_cancels_it() {
        // Payment before the address: nothing yet, then the address schedules it.
        let paid = given("shipping", Knowledge::default())
            .when(&event(EventType::PaymentAuthorized), decide_with)
            .emits_nothing()
            .into_after();
        let scheduled = given("shipping", paid)
            .when(&event(EventType::OrderPlaced), decide_with)
            .emits(&[EventType::ShipmentScheduled])
            .after(|k| assert_eq!(k.shipment.as_ref().map(|s| s.0.as_str()), Some("s-1")))
            .into_after();
        let then = given("shipping", scheduled)
            .when(&event(EventType::OrderCancelled), decide_with)
            .emits(&[EventType::ShipmentCancelled])
            .after(|k| assert_eq!(k.status, Some(Status::Cancelled)));
        assert!(matches!(
            then.emitted(),
            [Event::ShipmentCancelled { shipment_id }] if shipment_id == "s-1"
        ));
    }

    #[test]
    fn a_cancelled_order_is_never_shipped_and_repeats_change_nothing() {
        let cancelled = given("shipping", Knowledge::default())
            .when(&event(EventType::OrderCancelled), decide_with)
            .emits_nothing()
            .into_after();
        let known = given("shipping", cancelled)
            .when(&event(EventType::OrderPlaced), decide_with)
            .emits_nothing()
            .into_after();
        let known = given("shipping", known)
            .when(&event(EventType::PaymentAuthorized), decide_with)
            .emits_nothing()
            .into_after();
        given("shipping", known)
            .when(&event(EventType::PaymentAuthorized), decide_with)
            .emits_nothing()
            .unchanged();
    }

    #[rstest]
    #[case::paid_and_served(knowing(Some("DE"), true, false, None), Step::Schedule { carrier: "troupe-post-eu".into() })]
    #[case::paid_unserved(knowing(Some("AQ"), true, false, None), Step::Fail { reason: "no carrier serves AQ".into() })]
    #[case::paid_before_address(knowing(None, true, false, None), Step::Wait)]
    #[case::address_before_payment(knowing(Some("DE"), false, false, None), Step::Wait)]
    #[case::cancelled_before_payment(knowing(Some("DE"), true, true, None), Step::Wait)]
    #[case::cancelled_after_scheduling(
        knowing(Some("DE"), true, true, Some(Status::Scheduled)),
        Step::CancelShipment
    )]
    #[case::cancelled_twice(knowing(Some("DE"), true, true, Some(Status::Cancelled)), Step::Wait)]
    #[case::scheduled_stays(knowing(Some("DE"), true, false, Some(Status::Scheduled)), Step::Wait)]
    #[case::failed_stays(knowing(Some("AQ"), true, true, Some(Status::Failed)), Step::Wait)]
    fn steps(#[case] knowledge: Knowledge, #[case] expected: Step) {
        assert_eq!(next(&knowledge, &carriers()), expected);
    }
}
