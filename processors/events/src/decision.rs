//! The one shape of every service's decision, pure: given what the service knows and an event,
//! the state after it (`None`: nothing changes) and the events to emit. Each service's `lib.rs`
//! loads what the event touches, calls its `decide`, saves `after` and emits `emit`.

use crate::domain::{Envelope, Event, Metadata};

/// What a service decided about one event (or one timer).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<S> {
    /// The state after the event; `None` when nothing changes.
    pub after: Option<S>,
    /// The events to emit, in order.
    pub emit: Vec<Event>,
}

impl<S> Decision<S> {
    /// Nothing changes, nothing is emitted.
    pub fn nothing() -> Self {
        Self {
            after: None,
            emit: Vec::new(),
        }
    }

    /// The state changes; nothing is emitted.
    pub fn state(after: S) -> Self {
        Self {
            after: Some(after),
            emit: Vec::new(),
        }
    }

    /// The state changes and `event` is emitted.
    pub fn emit(after: S, event: Event) -> Self {
        Self {
            after: Some(after),
            emit: vec![event],
        }
    }

    /// The emitted events as envelopes caused by `cause`, from `producer`.
    pub fn envelopes(&self, cause: &Metadata, producer: &str, now_ms: i64) -> Vec<Envelope> {
        self.emit
            .iter()
            .map(|event| Envelope::caused_by(cause, producer, now_ms, event.clone()))
            .collect()
    }
}
