//! The rules a choreography keeps. Each check returns what is wrong, one sentence per problem;
//! [`all`] runs them all. `troupe saga check` prints them, and a unit test runs them on the
//! repository's file.
//!
//! The path checks explore every order of events the declaration allows, for one order: each
//! reaction fires once when its events have happened, picking any event it may emit; a timer
//! fires once after it is armed; an interrupt may arrive at any moment before the outcome. A
//! service that has heard of the outcome (it emitted it, or reacted to it) emits nothing more:
//! that is what the services do, and what lets an effect made in a race be undone.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{Choreography, OutcomeKind};
use crate::domain::EventType;
use crate::topology::Topology;

/// Every problem any check finds.
pub fn all(choreography: &Choreography, topology: &Topology) -> Vec<String> {
    let mut problems = producers_and_consumers(choreography);
    let exploration = Exploration::run(choreography);
    problems.extend(exploration.problems.iter().cloned());
    problems.extend(paths_reach_an_outcome(&exploration));
    problems.extend(effects_are_compensated(choreography, &exploration));
    problems.extend(no_effect_after_an_outcome(choreography));
    problems.extend(topics_agree(choreography, topology));
    problems
}

/// Every event has a producer and at least one consumer.
pub fn producers_and_consumers(c: &Choreography) -> Vec<String> {
    let mut problems = Vec::new();
    for event in EventType::ALL {
        let consumers: Vec<String> = c
            .services
            .iter()
            .filter(|s| s.reacts_to().contains(&event))
            .map(|s| s.name.clone())
            .collect();
        if c.producers(event).is_empty() {
            problems.push(format!("{} has no producer", event.name()));
        }
        // Observers read everything; an event only they read still needs no reaction, but an
        // event nobody reacts to and nobody observes is lost.
        if consumers.is_empty() && c.observers.is_empty() {
            problems.push(format!("{} has no consumer", event.name()));
        }
    }
    problems
}

/// One order's state in the exploration, as bit sets: events happened (by
/// [`EventType::index`]), reactions fired and timers armed or fired (by their place in
/// [`Flat`]), services that know the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct State {
    happened: u32,
    fired: u64,
    armed: u64,
    done_timers: u64,
    informed: u64,
}

fn bit(event: EventType) -> u32 {
    1 << event.index()
}

fn events_of(mask: u32) -> BTreeSet<EventType> {
    EventType::ALL
        .into_iter()
        .filter(|e| mask & bit(*e) != 0)
        .collect()
}

/// The reactions and timers of every service, numbered.
struct Flat<'a> {
    c: &'a Choreography,
    /// (service index, reaction, inputs as a mask)
    reactions: Vec<(usize, &'a super::Reaction, u32)>,
    /// (service index, timer)
    timers: Vec<(usize, &'a super::Timer)>,
    outcomes: u32,
}

impl<'a> Flat<'a> {
    fn new(c: &'a Choreography) -> Result<Self, String> {
        let mut reactions = Vec::new();
        let mut timers = Vec::new();
        for (si, service) in c.services.iter().enumerate() {
            for reaction in &service.reactions {
                let inputs = reaction.on.iter().fold(0, |m, e| m | bit(*e));
                reactions.push((si, reaction, inputs));
            }
            for timer in &service.timers {
                timers.push((si, timer));
            }
        }
        if reactions.len() > 64 || timers.len() > 64 || c.services.len() > 64 {
            return Err("the exploration handles at most 64 reactions, timers and services".into());
        }
        let outcomes = c.outcomes.keys().fold(0, |m, e| m | bit(*e));
        Ok(Self {
            c,
            reactions,
            timers,
            outcomes,
        })
    }

    fn timer_index(&self, service: usize, name: &str) -> Option<usize> {
        self.timers
            .iter()
            .position(|(si, t)| *si == service && t.name == name)
    }
}

/// What the exploration found.
#[derive(Debug, Default)]
pub struct Exploration {
    /// States with no outcome where nothing has to happen any more: the events that happened.
    stuck: Vec<BTreeSet<EventType>>,
    /// For each outcome, every event that can happen in an order that ends with it.
    with_outcome: BTreeMap<EventType, BTreeSet<EventType>>,
    /// The exploration itself could not finish.
    problems: Vec<String>,
}

/// A limit on explored states: far above what a saga of this size needs.
const MAX_STATES: usize = 5_000_000;

impl Exploration {
    pub fn run(c: &Choreography) -> Self {
        let mut found = Exploration::default();
        let flat = match Flat::new(c) {
            Ok(flat) => flat,
            Err(problem) => {
                found.problems.push(problem);
                return found;
            }
        };
        let start = State {
            happened: bit(c.start),
            fired: 0,
            armed: 0,
            done_timers: 0,
            informed: 0,
        };
        let mut with_outcome: BTreeMap<u32, u32> = BTreeMap::new();
        let mut stuck: BTreeSet<u32> = BTreeSet::new();
        let mut seen: HashSet<State> = HashSet::new();
        let mut stack = vec![start];
        let mut next = Vec::new();
        while let Some(state) = stack.pop() {
            if !seen.insert(state) {
                continue;
            }
            if seen.len() > MAX_STATES {
                found
                    .problems
                    .push(format!("the exploration stopped after {MAX_STATES} states"));
                break;
            }
            let outcome = state.happened & flat.outcomes;
            if outcome != 0 {
                *with_outcome.entry(outcome).or_default() |= state.happened;
            }
            next.clear();
            let mandatory = moves(&flat, &state, &mut next);
            if outcome == 0 && !mandatory {
                stuck.insert(state.happened);
            }
            stack.extend(next.iter().copied());
        }
        for (outcomes, happened) in with_outcome {
            for outcome in events_of(outcomes) {
                found
                    .with_outcome
                    .entry(outcome)
                    .or_default()
                    .extend(events_of(happened));
            }
        }
        found.stuck = stuck.into_iter().map(events_of).collect();
        found
    }
}

/// Pushes every next state from `state` onto `next`; returns whether any of them is a move
/// that has to happen (a reaction that emits, a timer that fires), as opposed to one that may
/// (an interrupt, a guarded emission, an optional timer, a no-op).
fn moves(flat: &Flat<'_>, state: &State, next: &mut Vec<State>) -> bool {
    let decided = state.happened & flat.outcomes != 0;
    let mut mandatory = false;
    let emit = |from: State, service: usize, event: EventType| {
        let mut to = from;
        to.happened |= bit(event);
        if bit(event) & flat.outcomes != 0 {
            to.informed |= 1 << service;
        }
        to
    };
    for (ri, (si, reaction, inputs)) in flat.reactions.iter().enumerate() {
        if state.fired & (1 << ri) != 0 || state.happened & inputs != *inputs {
            continue;
        }
        let mut fired = *state;
        fired.fired |= 1 << ri;
        if inputs & flat.outcomes != 0 {
            fired.informed |= 1 << si;
        }
        if state.informed & (1 << si) != 0 {
            // The service knows the outcome: it does nothing more.
            next.push(fired);
            continue;
        }
        let must = !reaction.optional && !reaction.emits.is_empty();
        mandatory |= must;
        for event in &reaction.emits {
            next.push(emit(fired, *si, *event));
        }
        if let Some(ti) = reaction
            .or_arms
            .as_ref()
            .and_then(|timer| flat.timer_index(*si, timer))
        {
            let mut armed = fired;
            armed.armed |= 1 << ti;
            next.push(armed);
        }
        if !must {
            next.push(fired);
        }
    }
    for (ti, (si, timer)) in flat.timers.iter().enumerate() {
        let armed = state.armed & (1 << ti) != 0
            || timer.armed_by.is_some_and(|e| state.happened & bit(e) != 0);
        if !armed || state.done_timers & (1 << ti) != 0 {
            continue;
        }
        let mut fired = *state;
        fired.armed &= !(1 << ti);
        fired.done_timers |= 1 << ti;
        if state.informed & (1 << si) != 0 {
            next.push(fired);
            continue;
        }
        mandatory |= !timer.optional;
        for event in &timer.emits {
            next.push(emit(fired, *si, *event));
        }
        if timer.optional {
            next.push(fired);
        }
    }
    if !decided {
        for interrupt in &flat.c.interrupts {
            if state.happened & bit(*interrupt) == 0 {
                let mut to = *state;
                to.happened |= bit(*interrupt);
                next.push(to);
            }
        }
    }
    mandatory
}

fn names(events: &BTreeSet<EventType>) -> String {
    events
        .iter()
        .map(|e| e.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every way an order can go, from the start event, ends in an outcome.
pub fn paths_reach_an_outcome(exploration: &Exploration) -> Vec<String> {
    exploration
        .stuck
        .iter()
        .map(|happened| {
            format!(
                "an order can stop with no outcome after {}: nothing more has to happen",
                names(happened)
            )
        })
        .collect()
}

/// Every effect that can be made in an order that ends cancelled (or rejected) is undone by the
/// service that made it, in reaction to that outcome.
pub fn effects_are_compensated(c: &Choreography, exploration: &Exploration) -> Vec<String> {
    let mut problems = Vec::new();
    for (outcome, kind) in &c.outcomes {
        if *kind == OutcomeKind::Completed {
            continue;
        }
        let Some(happened) = exploration.with_outcome.get(outcome) else {
            continue;
        };
        for effect in c.effects.iter().filter(|e| happened.contains(&e.made_by)) {
            let owners: Vec<&super::Service> = c
                .services
                .iter()
                .filter(|s| s.may_emit().contains(&effect.made_by))
                .collect();
            for owner in owners {
                let undoes = owner
                    .reactions
                    .iter()
                    .any(|r| r.on.contains(outcome) && r.emits.contains(&effect.undone_by));
                if !undoes {
                    problems.push(format!(
                        "{} ({}) can be made in an order that ends {}, and {} has no reaction to {} that emits {}",
                        effect.name,
                        effect.made_by.name(),
                        outcome.name(),
                        owner.name,
                        outcome.name(),
                        effect.undone_by.name()
                    ));
                }
            }
        }
    }
    problems
}

/// No reaction to an outcome, nor anything it leads to, makes a new effect.
pub fn no_effect_after_an_outcome(c: &Choreography) -> Vec<String> {
    let mut problems = Vec::new();
    let mut after: BTreeSet<EventType> = c.outcomes.keys().copied().collect();
    loop {
        let mut grown = after.clone();
        for service in &c.services {
            for reaction in &service.reactions {
                if !reaction.on.iter().any(|e| after.contains(e)) {
                    continue;
                }
                for event in &reaction.emits {
                    if let Some(effect) = c.effect_made_by(*event) {
                        let problem = format!(
                            "{} reacts to {} (after an outcome) with {}, a new {}",
                            service.name,
                            reaction.label(),
                            event.name(),
                            effect.name
                        );
                        if !problems.contains(&problem) {
                            problems.push(problem);
                        }
                    }
                    grown.insert(*event);
                }
            }
        }
        if grown == after {
            return problems;
        }
        after = grown;
    }
}

/// `topics.yaml`'s producers and consumers of every topic are those this file implies: who
/// emits and who reacts to the events the topic carries, the observers, and the dead-letter
/// topic written by every processor.
pub fn topics_agree(c: &Choreography, topology: &Topology) -> Vec<String> {
    let mut problems = Vec::new();
    let processors: BTreeSet<String> = c
        .services
        .iter()
        .map(|s| s.name.clone())
        .chain(c.observers.iter().cloned())
        .collect();
    for topic in &topology.topics {
        let carried: Vec<EventType> = EventType::ALL
            .into_iter()
            .filter(|e| e.topic() == topic.name)
            .collect();
        let (producers, consumers): (BTreeSet<String>, BTreeSet<String>) = if carried.is_empty() {
            // The dead-letter topic: every processor may write to it; nothing reads it.
            (processors.clone(), BTreeSet::new())
        } else {
            let mut producers = BTreeSet::new();
            let mut consumers = BTreeSet::new();
            for event in &carried {
                for source in c.sources.iter().filter(|s| s.emits.contains(event)) {
                    producers.insert(source.produces_as.clone());
                }
                for service in &c.services {
                    if service.may_emit().contains(event) {
                        producers.insert(service.name.clone());
                    }
                    if service.reacts_to().contains(event) {
                        consumers.insert(service.name.clone());
                    }
                }
                consumers.extend(c.observers.iter().cloned());
            }
            (producers, consumers)
        };
        let declared = |names: &[String]| names.iter().cloned().collect::<BTreeSet<String>>();
        for (what, expected, listed) in [
            ("producers", &producers, declared(&topic.producers)),
            ("consumers", &consumers, declared(&topic.consumers)),
        ] {
            if *expected != listed {
                problems.push(format!(
                    "topics.yaml: {} lists {what} [{}]; choreography.yaml implies [{}]",
                    topic.name,
                    listed.iter().cloned().collect::<Vec<_>>().join(", "),
                    expected.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choreography::SOURCE;

    fn topology() -> Topology {
        Topology::parse(include_str!("../../../../topics.yaml")).unwrap()
    }

    fn problems_of(text: &str) -> Vec<String> {
        all(&Choreography::parse(text).unwrap(), &topology())
    }

    /// The repository's file with one replacement, which must apply.
    fn broken(from: &str, to: &str) -> String {
        assert!(
            SOURCE.contains(from),
            "{from:?} is not in choreography.yaml"
        );
        SOURCE.replacen(from, to, 1)
    }

    fn assert_found(problems: &[String], expected: &str) {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected a problem containing {expected:?}, got {problems:#?}"
        );
    }

    #[test]
    fn the_repository_choreography_keeps_every_rule() {
        let problems = all(Choreography::current(), &topology());
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn an_event_nobody_emits_is_found() {
        let text = broken("        may_emit: [ShipmentCancelled]\n", "");
        assert_found(&problems_of(&text), "ShipmentCancelled has no producer");
    }

    #[test]
    fn an_event_nobody_reads_is_found() {
        let c = Choreography::parse(&broken("observers: [projector]", "observers: []")).unwrap();
        assert_found(
            &producers_and_consumers(&c),
            "CustomerNotified has no consumer",
        );
    }

    #[test]
    fn a_reaction_that_may_stop_an_order_is_found() {
        // Shipping only *may* answer a paid order: an order can then wait for ever.
        let text = broken(
            "        emits: [ShipmentScheduled, ShipmentFailed]",
            "        may_emit: [ShipmentScheduled, ShipmentFailed]",
        );
        assert_found(&problems_of(&text), "can stop with no outcome after");
    }

    #[test]
    fn an_effect_without_its_compensation_is_found() {
        let text = broken(
            "      - on: OrderCancelled\n        may_emit: [PaymentRefunded]\n        handler: decide::on_cancelled\n",
            "",
        );
        assert_found(
            &problems_of(&text),
            "payment (PaymentAuthorized) can be made in an order that ends OrderCancelled, and payment has no reaction to OrderCancelled that emits PaymentRefunded",
        );
    }

    #[test]
    fn a_shipment_a_late_cancellation_can_race_must_be_cancellable() {
        let text = broken("        may_emit: [ShipmentCancelled]\n", "");
        assert_found(
            &problems_of(&text),
            "shipment (ShipmentScheduled) can be made in an order that ends OrderCancelled",
        );
    }

    #[test]
    fn an_effect_after_an_outcome_is_found() {
        let text = broken(
            "        may_emit: [StockCommitted]",
            "        may_emit: [StockCommitted, StockReserved]",
        );
        assert_found(
            &problems_of(&text),
            "inventory reacts to OrderConfirmed (after an outcome) with StockReserved",
        );
    }

    #[test]
    fn topics_yaml_disagreeing_is_found() {
        let mut topology = topology();
        let payment = topology
            .topics
            .iter_mut()
            .find(|t| t.name == "troupe.payment.events")
            .unwrap();
        payment.consumers.retain(|c| c != "inventory");
        assert_found(
            &topics_agree(Choreography::current(), &topology),
            "topics.yaml: troupe.payment.events lists consumers [order, projector, shipping]",
        );
    }
}
