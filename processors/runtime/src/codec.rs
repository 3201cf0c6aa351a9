//! Events to and from the Confluent wire format: magic byte 0, the schema id as a big-endian
//! u32, then the Avro datum. Schema lookups go through `schema_registry_converter` and are
//! cached by it: one registry call per schema, never one per message.
//!
//! Two paths:
//! - **direct**, for the current schema of an event type: once the codec knows the registry id
//!   of that schema (learned from the first encode, or by asking the registry once about an
//!   id it reads), it writes and reads the Avro binary datum straight from and into the domain
//!   types ([`avro::to_binary`], [`avro::from_binary`]);
//! - **generic**, for everything else (another version of a schema, a schema troupe does not
//!   know): the registry client's resolution into `apache_avro::types::Value`, then the
//!   by-name mapping. Both paths end in the same domain type and the same validation.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{get_schema_by_id, SrSettings};
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
    settings: SrSettings,
    /// One subject strategy per event type, built once, indexed by [`EventType::index`].
    strategies: Vec<SubjectNameStrategy>,
    /// The registry id of each event type's current schema, once known.
    current_ids: Vec<OnceLock<u32>>,
    /// Writer schema ids seen: the event type whose current schema the id is, or `None` for
    /// any other schema (decoded generically).
    known_ids: RwLock<HashMap<u32, Option<EventType>>>,
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
                decoder: AvroDecoder::new(settings.clone()),
                settings,
                strategies,
                current_ids: EventType::ALL.iter().map(|_| OnceLock::new()).collect(),
                known_ids: RwLock::new(HashMap::new()),
            }),
        }
    }

    fn strategy(&self, event_type: EventType) -> &SubjectNameStrategy {
        &self.inner.strategies[event_type.index()]
    }

    /// Encodes an event with its current schema.
    pub async fn encode(&self, envelope: &Envelope) -> Result<Vec<u8>, EncodeError> {
        let event_type = envelope.event_type();
        if let Some(id) = self.inner.current_ids[event_type.index()].get() {
            return Ok(encode_direct(*id, envelope));
        }
        // The first of its type: through the registry client, which registers the schema (or
        // finds it) and tells its id.
        let bytes = self
            .inner
            .encoder
            .encode_value(avro::to_value(envelope), self.strategy(event_type))
            .await
            .map_err(|e| EncodeError {
                event_type: event_type.name(),
                message: e.to_string(),
            })?;
        if let Some(id) = schema_id(&bytes) {
            let _ = self.inner.current_ids[event_type.index()].set(id);
            self.learn(id, Some(event_type));
        }
        Ok(bytes)
    }

    /// Decodes and validates one message payload.
    pub async fn decode(&self, payload: Option<&[u8]>) -> Result<Envelope, DecodeError> {
        let bytes = check_framing(payload)?;
        let id = schema_id(bytes).expect("framing checked");
        let known = self.known(id);
        if let Some(Some(event_type)) = known {
            return decode_direct(event_type, &bytes[5..]);
        }
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
        if known.is_none() {
            self.identify(id, &name).await;
        }
        decode_value(&name, &decoded.value)
    }

    fn known(&self, id: u32) -> Option<Option<EventType>> {
        self.inner
            .known_ids
            .read()
            .expect("schema id cache")
            .get(&id)
            .copied()
    }

    fn learn(&self, id: u32, current_of: Option<EventType>) {
        self.inner
            .known_ids
            .write()
            .expect("schema id cache")
            .insert(id, current_of);
    }

    /// Asks the registry once whether schema `id` (of record `name`) is the current schema of
    /// its event type, so later messages with this id take the direct path. When the registry
    /// cannot be asked, nothing is learned and the next message asks again.
    async fn identify(&self, id: u32, name: &str) {
        let current_of = match EventType::from_record_name(name) {
            None => None,
            Some(event_type) => match get_schema_by_id(id, &self.inner.settings).await {
                Err(_) => return,
                Ok(registered) => {
                    let current = catalog::current(event_type).canonical_form();
                    let writer = apache_avro::Schema::parse_str(&registered.schema)
                        .map(|schema| schema.canonical_form())
                        .ok();
                    (writer.as_deref() == Some(current)).then_some(event_type)
                }
            },
        };
        self.learn(id, current_of);
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

/// The schema id of a framed message.
fn schema_id(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?))
}

/// Frames and writes `envelope` with the current schema, registered as `id`.
pub fn encode_direct(id: u32, envelope: &Envelope) -> Vec<u8> {
    let mut framing = [0u8; 5];
    framing[1..].copy_from_slice(&id.to_be_bytes());
    let mut sink = avro::binary::BinarySink::after(&framing, 256);
    avro::write_event(envelope, &mut sink);
    sink.into_bytes()
}

/// Reads a datum written with the current schema of `event_type`, and validates the event.
pub fn decode_direct(event_type: EventType, datum: &[u8]) -> Result<Envelope, DecodeError> {
    let envelope = avro::from_binary(event_type, datum).map_err(|e| {
        let reason = if e.is_malformed() {
            Reason::UndecodableAvro
        } else {
            Reason::InvalidEvent
        };
        rejected(reason, &e.to_string())
    })?;
    validate(&envelope).map_err(|e| rejected(Reason::InvalidEvent, &e))?;
    Ok(envelope)
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
