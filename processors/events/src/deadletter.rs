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
    /// What every dead-letter header's name starts with; the original message's own headers
    /// follow them, and a redrive sends back only those.
    pub const PREFIX: &str = "troupe.dlq.";
    /// How many times the message was redriven from the dead-letter topic (`troupe
    /// deadletters redrive`); it travels with the message, so a message parked again keeps it.
    pub const REDRIVE_COUNT: &str = "troupe.redrive.count";
    /// On a redrive's audit record in the dead-letter topic: the dead letter it sent back
    /// (`partition/offset`). The record has no value; the headers below say the rest.
    pub const REDRIVEN: &str = "troupe.dlq.redriven";
    /// On an audit record: where the message went (`topic/partition/offset`).
    pub const REDRIVEN_TO: &str = "troupe.dlq.redriven.to";
    /// On an audit record: the run (a UUID), who ran it and when (ms since the epoch).
    pub const REDRIVE_RUN: &str = "troupe.dlq.redrive.run";
    pub const REDRIVE_BY: &str = "troupe.dlq.redrive.by";
    pub const REDRIVE_AT: &str = "troupe.dlq.redrive.at";
}

/// Where a dead letter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The headers of a dead letter, in order: why and where from, then the original message's
/// own headers (event type, event id, trace, redrive count), without any dead-letter headers
/// they carried from an earlier parking.
pub fn dead_letter_headers(
    reason: Reason,
    error: &str,
    processor: &str,
    origin: &Origin,
    original: &[(String, String)],
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
    let mut all = vec![
        (headers::REASON.into(), reason.code().into()),
        (headers::ERROR.into(), error),
        (headers::PROCESSOR.into(), processor.into()),
        (headers::TOPIC.into(), origin.topic.clone()),
        (headers::PARTITION.into(), origin.partition.to_string()),
        (headers::OFFSET.into(), origin.offset.to_string()),
    ];
    all.extend(
        original
            .iter()
            .filter(|(name, _)| !name.starts_with(headers::PREFIX))
            .cloned(),
    );
    all
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
        let original = [
            ("troupe.event_type".to_owned(), "OrderPlaced".to_owned()),
            (headers::REASON.to_owned(), "rejected".to_owned()),
            (headers::REDRIVE_COUNT.to_owned(), "1".to_owned()),
        ];
        let h = dead_letter_headers(
            Reason::UnknownSchemaId,
            &"é".repeat(800),
            "order",
            &origin,
            &original,
        );
        assert_eq!(h[0], (headers::REASON.into(), "unknown_schema_id".into()));
        assert!(h[1].1.len() <= 1024);
        assert_eq!(h[4].1, "3");
        assert_eq!(h[5].1, "42");
        // The original headers follow, without the reason of an earlier parking.
        assert_eq!(&h[6..], &[original[0].clone(), original[2].clone()]);
    }
}
