//! `choreography.yaml` as written, and its resolution into the model: every name checked.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    Choreography, ChoreographyError, Effect, OutcomeKind, Reaction, Service, Source, Timer,
};
use crate::domain::EventType;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    sources: BTreeMap<String, RawSource>,
    start: String,
    #[serde(default)]
    interrupts: Vec<String>,
    outcomes: BTreeMap<String, OutcomeKindName>,
    #[serde(default)]
    effects: BTreeMap<String, RawEffect>,
    services: ordered::Ordered<RawService>,
    #[serde(default)]
    observers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    emits: Vec<String>,
    produces_as: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OutcomeKindName {
    Completed,
    Cancelled,
    Rejected,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEffect {
    made_by: String,
    undone_by: String,
    completed_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    code: String,
    #[serde(default)]
    reactions: Vec<RawReaction>,
    #[serde(default)]
    timers: BTreeMap<String, RawTimer>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReaction {
    on: OneOrMany,
    #[serde(default)]
    emits: Vec<String>,
    #[serde(default)]
    may_emit: Vec<String>,
    or_arms: Option<String>,
    handler: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimer {
    armed_by: Option<String>,
    #[serde(default)]
    emits: Vec<String>,
    #[serde(default)]
    may_emit: Vec<String>,
    handler: String,
}

/// A YAML mapping read in file order (services are listed in the order the saga meets them).
mod ordered {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

    #[derive(Debug)]
    pub struct Ordered<T>(pub Vec<(String, T)>);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Entries<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
                type Value = Ordered<T>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a mapping")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut entries = Vec::new();
                    while let Some(entry) = map.next_entry::<String, T>()? {
                        entries.push(entry);
                    }
                    Ok(Ordered(entries))
                }
            }
            deserializer.deserialize_map(Entries(std::marker::PhantomData))
        }
    }
}

fn invalid(message: String) -> ChoreographyError {
    ChoreographyError(message)
}

fn event(name: &str, place: &str) -> Result<EventType, ChoreographyError> {
    EventType::ALL
        .into_iter()
        .find(|e| e.name() == name)
        .ok_or_else(|| invalid(format!("{place}: {name:?} is not an event")))
}

fn events(names: &[String], place: &str) -> Result<Vec<EventType>, ChoreographyError> {
    names.iter().map(|n| event(n, place)).collect()
}

/// Either `emits` or `may_emit` (not both): the events, and whether emitting is optional.
fn emissions(
    emits: &[String],
    may_emit: &[String],
    place: &str,
) -> Result<(Vec<EventType>, bool), ChoreographyError> {
    match (emits.is_empty(), may_emit.is_empty()) {
        (_, true) => Ok((events(emits, place)?, false)),
        (true, false) => Ok((events(may_emit, place)?, true)),
        (false, false) => Err(invalid(format!(
            "{place}: give `emits` or `may_emit`, not both"
        ))),
    }
}

pub(super) fn parse(text: &str) -> Result<Choreography, ChoreographyError> {
    let file: File = serde_yaml::from_str(text).map_err(|e| invalid(format!("{e}")))?;
    let sources = file
        .sources
        .into_iter()
        .map(|(name, s)| {
            Ok(Source {
                emits: events(&s.emits, &format!("source {name}"))?,
                produces_as: s.produces_as,
                name,
            })
        })
        .collect::<Result<Vec<_>, ChoreographyError>>()?;
    let outcomes = file
        .outcomes
        .iter()
        .map(|(name, kind)| {
            let kind = match kind {
                OutcomeKindName::Completed => OutcomeKind::Completed,
                OutcomeKindName::Cancelled => OutcomeKind::Cancelled,
                OutcomeKindName::Rejected => OutcomeKind::Rejected,
            };
            Ok((event(name, "outcomes")?, kind))
        })
        .collect::<Result<BTreeMap<_, _>, ChoreographyError>>()?;
    let effects = file
        .effects
        .into_iter()
        .map(|(name, e)| {
            let place = format!("effect {name}");
            Ok(Effect {
                made_by: event(&e.made_by, &place)?,
                undone_by: event(&e.undone_by, &place)?,
                completed_by: e
                    .completed_by
                    .as_deref()
                    .map(|c| event(c, &place))
                    .transpose()?,
                name,
            })
        })
        .collect::<Result<Vec<_>, ChoreographyError>>()?;
    let mut services = Vec::new();
    for (name, raw) in file.services.0 {
        let mut reactions = Vec::new();
        for (i, r) in raw.reactions.into_iter().enumerate() {
            let place = format!("service {name}, reaction {}", i + 1);
            let on = match r.on {
                OneOrMany::One(e) => vec![event(&e, &place)?],
                OneOrMany::Many(es) => events(&es, &place)?,
            };
            if on.is_empty() {
                return Err(invalid(format!("{place}: `on` names no event")));
            }
            let (emits, optional) = emissions(&r.emits, &r.may_emit, &place)?;
            if let Some(timer) = &r.or_arms {
                if !raw.timers.contains_key(timer) {
                    return Err(invalid(format!(
                        "{place}: arms timer {timer:?}, which {name} does not declare"
                    )));
                }
            }
            reactions.push(Reaction {
                on,
                emits,
                optional,
                or_arms: r.or_arms,
                handler: r.handler,
            });
        }
        let mut timers = Vec::new();
        for (timer, t) in raw.timers {
            let place = format!("service {name}, timer {timer}");
            let (emits, optional) = emissions(&t.emits, &t.may_emit, &place)?;
            timers.push(Timer {
                armed_by: t
                    .armed_by
                    .as_deref()
                    .map(|e| event(e, &place))
                    .transpose()?,
                name: timer,
                emits,
                optional,
                handler: t.handler,
            });
        }
        services.push(Service {
            name,
            code: raw.code,
            reactions,
            timers,
        });
    }
    Ok(Choreography {
        sources,
        start: event(&file.start, "start")?,
        interrupts: events(&file.interrupts, "interrupts")?,
        outcomes,
        effects,
        services,
        observers: file.observers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_event_is_named_with_its_place() {
        let text = super::super::SOURCE.replace("on: StockRejected", "on: StockRejectd");
        let error = parse(&text).unwrap_err();
        assert!(
            error.0.contains("service order") && error.0.contains("\"StockRejectd\""),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let text =
            super::super::SOURCE.replace("    emits: [StockAdjusted]", "    emit: [StockAdjusted]");
        assert!(parse(&text).is_err());
    }
}
