//! Events to and from the Confluent wire format: magic byte 0, the schema id as a big-endian
//! u32, then the Avro datum. Schema lookups go through `schema_registry_converter` and are
//! cached by it: one registry call per schema, never one per message.

use std::sync::Arc;

use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use troupe_events::{avro, catalog, validate::validate, Envelope, EventType};

use crate::deadletter::Reason;
use crate::topics::Topics;

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The message is bad and always will be: dead-letter it with this reason.
    #[error("{reason}: {detail}")]
    Rejected { reason: Reason, detail: String },
    /// The registry could not be asked (down, overloaded): retry the message later.
    #[error("schema registry unavailable: {0}")]
    Transient(String),
}

/// Why an event could not be encoded. Always transient: the registry must register or return
/// the schema of an event troupe itself produces.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {event_type}: {message}")]
pub struct EncodeError {
    pub event_type: &'static str,
    pub message: String,
}

/// Encoder and decoder over one registry, shared by every task of a process.
#[derive(Clone)]
pub struct Codec {
    inner: Arc<Inner>,
}

struct Inner {
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    /// One subject strategy per event type, built once, indexed by [`EventType::index`].
    strategies: Vec<SubjectNameStrategy>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl Codec {
    /// A codec writing the current schema version of each event type, under the subject
    /// `<topic>-<record>` (TopicRecordNameStrategy).
    pub fn new(registry_url: &str, topics: &Topics) -> Self {
        let settings = SrSettings::new(registry_url.to_owned());
        let strategies = EventType::ALL
            .into_iter()
            .map(|event_type| {
                let schema = catalog::current(event_type);
                let supplied = SuppliedSchema::new(
                    Some(event_type.record_name()),
                    SchemaType::Avro,
                    schema.text.to_owned(),
                );
                SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
                    topics.name(event_type.topic()),
                    supplied,
                )
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                encoder: AvroEncoder::new(settings.clone()),
                decoder: AvroDecoder::new(settings),
                strategies,
            }),
        }
    }

    fn strategy(&self, event_type: EventType) -> &SubjectNameStrategy {
        &self.inner.strategies[event_type.index()]
    }

    /// Encodes an event with its current schema.
    pub async fn encode(&self, envelope: &Envelope) -> Result<Vec<u8>, EncodeError> {
        let event_type = envelope.event_type();
        self.inner
            .encoder
            .encode_value(avro::to_value(envelope), self.strategy(event_type))
            .await
            .map_err(|e| EncodeError {
                event_type: event_type.name(),
                message: e.to_string(),
            })
    }

    /// Decodes and validates one message payload.
    pub async fn decode(&self, payload: Option<&[u8]>) -> Result<Envelope, DecodeError> {
        let bytes = check_framing(payload)?;
        let decoded = match self.inner.decoder.decode(Some(bytes)).await {
            Ok(decoded) => decoded,
            Err(error) => return Err(self.classify(error)),
        };
        let name = decoded.name.map(|n| n.fullname(None)).ok_or_else(|| {
            rejected(
                Reason::InvalidEvent,
                "the writer schema is not a named record",
            )
        })?;
        decode_value(&name, &decoded.value)
    }

    fn classify(&self, error: SRCError) -> DecodeError {
        let text = format!("{}: {}", error.error, error.cause.as_deref().unwrap_or(""));
        if text.contains("status 404") {
            return rejected(Reason::UnknownSchemaId, &text);
        }
        if error.retriable || text.contains("HTTP request to schema registry failed") {
            // Errors other than "not found" are cached by the library; forget them so the
            // retry asks the registry again.
            self.inner.decoder.remove_errors_from_cache();
            return DecodeError::Transient(text);
        }
        rejected(Reason::UndecodableAvro, &text)
    }
}

fn rejected(reason: Reason, detail: &str) -> DecodeError {
    DecodeError::Rejected {
        reason,
        detail: detail.to_owned(),
    }
}

/// Checks the Confluent framing: present, magic byte 0, room for a schema id.
pub fn check_framing(payload: Option<&[u8]>) -> Result<&[u8], DecodeError> {
    match payload {
        None => Err(rejected(
            Reason::NoConfluentFraming,
            "the message has no value",
        )),
        Some(bytes) if bytes.len() < 5 => Err(rejected(
            Reason::NoConfluentFraming,
            &format!(
                "{} bytes is too short for the Confluent framing",
                bytes.len()
            ),
        )),
        Some(bytes) if bytes[0] != 0 => Err(rejected(
            Reason::NoConfluentFraming,
            &format!("magic byte is {:#04x}, not 0x00", bytes[0]),
        )),
        Some(bytes) => Ok(bytes),
    }
}

/// Maps a decoded Avro record to an event and validates it.
pub fn decode_value(record_name: &str, value: &Value) -> Result<Envelope, DecodeError> {
    let envelope = avro::from_value(record_name, value)
        .map_err(|e| rejected(Reason::InvalidEvent, &e.to_string()))?;
    validate(&envelope).map_err(|e| rejected(Reason::InvalidEvent, &e))?;
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_checked_before_any_lookup() {
        for (payload, expected) in [
            (None, "no value"),
            (Some(&[0u8, 0, 0][..]), "too short"),
            (Some(&b"{\"json\": true}"[..]), "magic byte is 0x7b"),
        ] {
            let error = check_framing(payload).unwrap_err();
            let DecodeError::Rejected { reason, detail } = error else {
                panic!("expected a rejection");
            };
            assert_eq!(reason, Reason::NoConfluentFraming);
            assert!(detail.contains(expected), "{detail}");
        }
        assert!(check_framing(Some(&[0, 0, 0, 0, 1, 2])).is_ok());
    }

    #[test]
    fn a_record_that_is_not_an_event_is_invalid() {
        let error = decode_value("t.Other", &Value::Record(vec![])).unwrap_err();
        assert!(matches!(
            error,
            DecodeError::Rejected {
                reason: Reason::InvalidEvent,
                ..
            }
        ));
    }
}
