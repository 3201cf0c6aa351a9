//! Dead letters: a message a processor cannot accept goes, unchanged, to the dead-letter topic
//! with headers saying why, and the processor moves on.

use serde::{Deserialize, Serialize};

/// Fixed reason codes (a bounded metric label, and the `troupe.dlq.reason` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The value is missing, too short, or does not start with the magic byte 0.
    NoConfluentFraming,
    /// The registry does not know the schema id.
    UnknownSchemaId,
    /// The bytes do not decode with the writer schema.
    UndecodableAvro,
    /// It decodes, but is not a troupe event or breaks an event rule.
    InvalidEvent,
    /// The handler refused it (a state it can never apply to).
    Rejected,
    /// Applying it failed the same deterministic way (a constraint or data error from the
    /// database, or a handler panic) every time it was tried alone.
    HandlerFailed,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::NoConfluentFraming,
        Reason::UnknownSchemaId,
        Reason::UndecodableAvro,
        Reason::InvalidEvent,
        Reason::Rejected,
        Reason::HandlerFailed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::NoConfluentFraming => "no_confluent_framing",
            Reason::UnknownSchemaId => "unknown_schema_id",
            Reason::UndecodableAvro => "undecodable_avro",
            Reason::InvalidEvent => "invalid_event",
            Reason::Rejected => "rejected",
            Reason::HandlerFailed => "handler_failed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Header names on a dead letter.
pub mod headers {
    pub const REASON: &str = "troupe.dlq.reason";
    pub const ERROR: &str = "troupe.dlq.error";
    pub const PROCESSOR: &str = "troupe.dlq.processor";
    pub const TOPIC: &str = "troupe.dlq.topic";
    pub const PARTITION: &str = "troupe.dlq.partition";
    pub const OFFSET: &str = "troupe.dlq.offset";
}

/// Where a dead letter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The headers of a dead letter, in order.
pub fn dead_letter_headers(
    reason: Reason,
    error: &str,
    processor: &str,
    origin: &Origin,
) -> Vec<(String, String)> {
    // Header values stay small: the error is cut at 1 KiB on a character boundary.
    let mut error = error.to_owned();
    if error.len() > 1024 {
        let mut end = 1024;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
    }
    vec![
        (headers::REASON.into(), reason.code().into()),
        (headers::ERROR.into(), error),
        (headers::PROCESSOR.into(), processor.into()),
        (headers::TOPIC.into(), origin.topic.clone()),
        (headers::PARTITION.into(), origin.partition.to_string()),
        (headers::OFFSET.into(), origin.offset.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_reason_and_origin() {
        let origin = Origin {
            topic: "t".into(),
            partition: 3,
            offset: 42,
        };
        let h = dead_letter_headers(Reason::UnknownSchemaId, &"é".repeat(800), "order", &origin);
        assert_eq!(h[0], (headers::REASON.into(), "unknown_schema_id".into()));
        assert!(h[1].1.len() <= 1024);
        assert_eq!(h[4].1, "3");
        assert_eq!(h[5].1, "42");
    }
}
