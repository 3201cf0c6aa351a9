//! What every published event carries besides its value: the header names processors, the
//! producer CLI and `troupe deadletters` agree on.

/// Header naming the event type on every published event.
pub const EVENT_TYPE_HEADER: &str = "troupe.event_type";
/// Header carrying the event id on every published event.
pub const EVENT_ID_HEADER: &str = "troupe.event_id";
