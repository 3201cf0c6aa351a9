//! The saga's choreography, declared once in `choreography.yaml`: which service reacts to which
//! event and what each reaction may emit, the outcomes, the effects and what undoes them.
//!
//! - this module: the model, parsed and checked against [`EventType`]; what each service
//!   subscribes to and may emit ([`Choreography::allows`]), and the arrows end-to-end runs
//!   cover;
//! - [`check`]: the rules a choreography must keep (every path reaches an outcome, every
//!   effect is compensated, …), each a function that returns what is wrong;
//! - [`graph`]: Mermaid and DOT renderings.
//!
//! Pure: no I/O. The repository's file is compiled in ([`Choreography::current`]).

pub mod check;
pub mod graph;
mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use crate::domain::EventType;

/// The repository's `choreography.yaml`, as compiled into this build.
pub const SOURCE: &str = include_str!("../../../../choreography.yaml");

/// A mistake in a choreography file: a name that is not an event, a reaction of no service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid choreography.yaml: {0}")]
pub struct ChoreographyError(pub String);

/// How an order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutcomeKind {
    Completed,
    Cancelled,
    Rejected,
}

/// An effect on the world some service makes, and the events that undo or complete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub name: String,
    pub made_by: EventType,
    pub undone_by: EventType,
    pub completed_by: Option<EventType>,
}

/// Where events come from outside the services (the storefront, the warehouse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub emits: Vec<EventType>,
    /// The producer name `topics.yaml` gives it (`cli`).
    pub produces_as: String,
}

/// One reaction of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// The events it waits for: one, or all of several (a join).
    pub on: Vec<EventType>,
    /// What it may emit; before the outcome, exactly one of them unless `optional`.
    pub emits: Vec<EventType>,
    /// `may_emit`: a guard decides whether it emits at all.
    pub optional: bool,
    /// A timer it may arm instead of emitting now.
    pub or_arms: Option<String>,
    /// The code that decides it, e.g. `decide::reserve`.
    pub handler: String,
}

impl Reaction {
    /// `OrderPlaced`, or `OrderPlaced + PaymentAuthorized` for a join.
    pub fn label(&self) -> String {
        self.on
            .iter()
            .map(|e| e.name())
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// A timer a service keeps in its own tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub name: String,
    /// The event that arms it (`None`: armed by a reaction's `or_arms`).
    pub armed_by: Option<EventType>,
    pub emits: Vec<EventType>,
    pub optional: bool,
    pub handler: String,
}

/// A service: its reactions and timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// The file its decisions live in, linked from the diagram.
    pub code: String,
    pub reactions: Vec<Reaction>,
    pub timers: Vec<Timer>,
}

impl Service {
    /// Every event it reacts to.
    pub fn reacts_to(&self) -> BTreeSet<EventType> {
        self.reactions
            .iter()
            .flat_map(|r| r.on.iter().copied())
            .collect()
    }

    /// Every event it may emit, from reactions and timers.
    pub fn may_emit(&self) -> BTreeSet<EventType> {
        self.reactions
            .iter()
            .flat_map(|r| r.emits.iter().copied())
            .chain(self.timers.iter().flat_map(|t| t.emits.iter().copied()))
            .collect()
    }
}

/// One arrow of the choreography, as the runtime counts it: a service reacting to `on`
/// (an event name, or `timer` for what its timers fire) and what it emitted (`None`: nothing).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Arrow {
    pub service: String,
    pub on: String,
    pub emitted: Option<EventType>,
}

impl std::fmt::Display for Arrow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.emitted {
            Some(e) => write!(f, "{}: {} → {}", self.service, self.on, e.name()),
            None => write!(f, "{}: {} → (nothing)", self.service, self.on),
        }
    }
}

/// The `on` label of what a service's timers emit.
pub const TIMER: &str = "timer";

/// The whole declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choreography {
    pub sources: Vec<Source>,
    pub start: EventType,
    pub interrupts: Vec<EventType>,
    pub outcomes: BTreeMap<EventType, OutcomeKind>,
    pub effects: Vec<Effect>,
    pub services: Vec<Service>,
    /// Processes that read every event and emit none (the projector).
    pub observers: Vec<String>,
}

impl Choreography {
    /// Parses and resolves a choreography file.
    pub fn parse(text: &str) -> Result<Self, ChoreographyError> {
        raw::parse(text)
    }

    /// The choreography compiled into this build. It is checked by this crate's tests, so a
    /// build whose file does not parse cannot pass them.
    pub fn current() -> &'static Choreography {
        static CURRENT: OnceLock<Choreography> = OnceLock::new();
        CURRENT.get_or_init(|| match Choreography::parse(SOURCE) {
            Ok(choreography) => choreography,
            // The file is compiled in and parsed by a unit test: this cannot happen in a
            // tested build.
            Err(error) => panic!("{error}"),
        })
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The base topics a service (or an observer) consumes: those of the events it reacts to;
    /// every topic with events, for an observer.
    pub fn subscriptions(&self, service: &str) -> Vec<&'static str> {
        let events: BTreeSet<EventType> = if self.observers.iter().any(|o| o == service) {
            EventType::ALL.into_iter().collect()
        } else {
            self.service(service)
                .map(Service::reacts_to)
                .unwrap_or_default()
        };
        let topics: BTreeSet<&'static str> = events.into_iter().map(EventType::topic).collect();
        topics.into_iter().collect()
    }

    /// Whether `service` reacts to `on` at all (events of its topics it does not react to are
    /// not handed to it).
    pub fn reacts(&self, service: &str, on: EventType) -> bool {
        self.observers.iter().any(|o| o == service)
            || self
                .service(service)
                .is_some_and(|s| s.reactions.iter().any(|r| r.on.contains(&on)))
    }

    /// Whether `service`, reacting to `on` (or [`TIMER`]), may emit `emitted`.
    pub fn allows(&self, service: &str, on: &str, emitted: EventType) -> bool {
        let Some(service) = self.service(service) else {
            return false;
        };
        if on == TIMER {
            return service.timers.iter().any(|t| t.emits.contains(&emitted));
        }
        service.reactions.iter().any(|r| {
            r.on.iter().any(|e| e.name() == on) && r.emits.contains(&emitted)
                // A reaction that arms a timer may also emit what the timer does, at once.
                || r.or_arms.as_ref().is_some_and(|timer| {
                    r.on.iter().any(|e| e.name() == on)
                        && service
                            .timers
                            .iter()
                            .any(|t| &t.name == timer && t.emits.contains(&emitted))
                })
        })
    }

    /// Every arrow an end-to-end run can exercise: each reaction with each event it may emit
    /// (a reaction that emits nothing, with `None`; a join, once per input), and each timer
    /// with each event it may emit (as [`TIMER`]).
    pub fn arrows(&self) -> Vec<Arrow> {
        let mut arrows = BTreeSet::new();
        for service in &self.services {
            for reaction in &service.reactions {
                // A join fires on whichever of its inputs comes last: any input counts.
                let on = reaction.label();
                if reaction.emits.is_empty() {
                    arrows.insert(Arrow {
                        service: service.name.clone(),
                        on,
                        emitted: None,
                    });
                    continue;
                }
                for emitted in &reaction.emits {
                    arrows.insert(Arrow {
                        service: service.name.clone(),
                        on: on.clone(),
                        emitted: Some(*emitted),
                    });
                }
            }
            for timer in &service.timers {
                for emitted in &timer.emits {
                    arrows.insert(Arrow {
                        service: service.name.clone(),
                        on: TIMER.into(),
                        emitted: Some(*emitted),
                    });
                }
            }
        }
        arrows.into_iter().collect()
    }

    /// The services (and sources) that emit `event`.
    pub fn producers(&self, event: EventType) -> Vec<String> {
        let mut producers: Vec<String> = self
            .sources
            .iter()
            .filter(|s| s.emits.contains(&event))
            .map(|s| s.name.clone())
            .collect();
        producers.extend(
            self.services
                .iter()
                .filter(|s| s.may_emit().contains(&event))
                .map(|s| s.name.clone()),
        );
        producers
    }

    /// The services that react to `event`, and the observers.
    pub fn consumers(&self, event: EventType) -> Vec<String> {
        let mut consumers: Vec<String> = self
            .services
            .iter()
            .filter(|s| s.reacts_to().contains(&event))
            .map(|s| s.name.clone())
            .collect();
        consumers.extend(self.observers.iter().cloned());
        consumers
    }

    /// The effect `event` makes, if it makes one.
    pub fn effect_made_by(&self, event: EventType) -> Option<&Effect> {
        self.effects.iter().find(|e| e.made_by == event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_file_parses_and_names_every_service() {
        let c = Choreography::current();
        let names: Vec<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["order", "inventory", "payment", "shipping", "notification"]
        );
        assert_eq!(c.start, EventType::PlaceOrder);
        assert_eq!(c.outcomes.len(), 3);
    }

    #[test]
    fn subscriptions_are_the_topics_of_the_events_reacted_to() {
        let c = Choreography::current();
        assert_eq!(
            c.subscriptions("inventory"),
            [
                "troupe.inventory.adjustments",
                "troupe.orders.events",
                "troupe.payment.events"
            ]
        );
        assert_eq!(c.subscriptions("notification"), ["troupe.orders.events"]);
        assert_eq!(c.subscriptions("projector").len(), 7);
        assert!(c.subscriptions("nobody").is_empty());
    }

    #[test]
    fn allows_what_a_reaction_or_its_timer_may_emit_and_nothing_else() {
        let c = Choreography::current();
        assert!(c.allows("inventory", "OrderPlaced", EventType::StockReserved));
        assert!(!c.allows("inventory", "OrderPlaced", EventType::StockReleased));
        assert!(c.allows(
            "shipping",
            "PaymentAuthorized",
            EventType::ShipmentScheduled
        ));
        assert!(c.allows("shipping", "OrderPlaced", EventType::ShipmentFailed));
        assert!(c.allows("payment", TIMER, EventType::PaymentDeclined));
        assert!(!c.allows("payment", TIMER, EventType::PaymentRefunded));
        assert!(!c.allows("order", "StockReserved", EventType::OrderConfirmed));
        assert!(!c.allows("nobody", "PlaceOrder", EventType::OrderPlaced));
    }

    #[test]
    fn arrows_list_each_reaction_once_per_emission() {
        let arrows = Choreography::current().arrows();
        let shown: Vec<String> = arrows.iter().map(ToString::to_string).collect();
        for expected in [
            "order: PlaceOrder → OrderRejected",
            "shipping: OrderPlaced + PaymentAuthorized → ShipmentScheduled",
            "shipping: OrderCancelled → ShipmentCancelled",
            "inventory: timer → StockReservationExpired",
            "order: StockReserved → (nothing)",
        ] {
            assert!(
                shown.iter().any(|a| a == expected),
                "{expected} in {shown:?}"
            );
        }
    }
}
