//! Given/when/then for a service's pure decisions, the same for every service: given what the
//! service knows, when an event arrives (or a timer fires), then it emits these events and ends
//! in this state. Every emission is checked against `choreography.yaml`: a decision that emits
//! what the service's reaction may not fails the test that made it.
//!
//! ```ignore
//! given("order", Some(placed()))
//!     .when(&shipment_scheduled(), |order, event| decide(order.as_ref(), event))
//!     .emits(&[EventType::OrderConfirmed])
//!     .after(|order| assert_eq!(order.status, Status::Confirmed));
//! ```

use std::fmt::Debug;

use troupe_events::choreography::{Choreography, TIMER};
use troupe_events::decision::Decision;
use troupe_events::{Event, EventType};

/// What `service` knows before the event.
#[derive(Debug)]
pub struct Given<K> {
    service: &'static str,
    known: K,
}

/// Starts a case: `service` (as `choreography.yaml` names it) knowing `known`.
pub fn given<K>(service: &'static str, known: K) -> Given<K> {
    Given { service, known }
}

impl<K> Given<K> {
    /// The service decides about `event`.
    pub fn when<A>(self, event: &Event, decide: impl FnOnce(&K, &Event) -> Decision<A>) -> Then<A> {
        let decision = decide(&self.known, event);
        check(self.service, event.event_type().name(), &decision);
        Then { decision }
    }

    /// The service's timer fires.
    pub fn when_timer<A>(self, fire: impl FnOnce(&K) -> Decision<A>) -> Then<A> {
        let decision = fire(&self.known);
        check(self.service, TIMER, &decision);
        Then { decision }
    }
}

fn check<A>(service: &str, on: &str, decision: &Decision<A>) {
    let choreography = Choreography::current();
    for event in &decision.emit {
        assert!(
            choreography.allows(service, on, event.event_type()),
            "{service} reacting to {on} emitted {}, which choreography.yaml does not allow",
            event.event_type().name()
        );
    }
}

/// What the service decided.
#[derive(Debug)]
pub struct Then<A> {
    decision: Decision<A>,
}

impl<A: Debug> Then<A> {
    /// It emitted exactly events of these types, in this order.
    pub fn emits(self, expected: &[EventType]) -> Self {
        let emitted: Vec<EventType> = self.decision.emit.iter().map(Event::event_type).collect();
        assert_eq!(emitted, expected, "emitted {:#?}", self.decision.emit);
        self
    }

    /// It emitted nothing.
    pub fn emits_nothing(self) -> Self {
        self.emits(&[])
    }

    /// Its state did not change.
    pub fn unchanged(self) -> Self {
        assert!(
            self.decision.after.is_none(),
            "the state changed to {:?}",
            self.decision.after
        );
        self
    }

    /// The emitted events, for a closer look.
    pub fn emitted(&self) -> &[Event] {
        &self.decision.emit
    }

    /// Checks the state after; fails when nothing changed.
    pub fn after(self, check: impl FnOnce(&A)) -> Self {
        check(self.changed());
        self
    }

    fn changed(&self) -> &A {
        self.decision
            .after
            .as_ref()
            .unwrap_or_else(|| panic!("the state did not change: {:?}", self.decision))
    }

    /// The state after, to go on with `given`; fails when nothing changed.
    pub fn into_after(self) -> A {
        self.changed();
        self.decision.after.expect("checked above")
    }
}
