//! Events to and from the Confluent wire format: magic byte 0, the schema id as a big-endian
//! u32, then the Avro datum. Schema lookups go through `schema_registry_converter` and are
//! cached: one registry call per schema id, never one per message.
//!
//! Each writer schema id is identified once, by comparing the registered schema's Parsing
//! Canonical Form with troupe's catalog (every version ever published). Then:
//! - **current version**: the Avro binary datum is read straight into the domain types
//!   ([`avro::from_binary`]), and written the same way;
//! - **older version**: read with its own schema as the writer wrote it, upcast step by step to
//!   the current version ([`troupe_events::upcast`]), then mapped — handlers only ever see the
//!   current version, and [`Decoded::upcast_from`] says which version it came from;
//! - **a schema troupe did not publish** (a producer it did not build): resolved by Avro rules
//!   into the newest catalog version of the same record that can read it, then upcast; when no
//!   version can, the registry client's generic decoding and the by-name mapping onto the
//!   current shape, which dead-letters what does not fit.
//!
//! What a codec writes is the current version of each event unless [`Pins`] say otherwise.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{get_schema_by_id, SrSettings};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use troupe_events::catalog::{self, Pins, SchemaFile};
use troupe_events::{avro, validate::validate, Envelope, EventType};

use crate::config::RegistryConfig;
use crate::deadletter::Reason;
use crate::security::SecurityError;
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

/// A decoded event and how it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub envelope: Envelope,
    /// The schema version the event was upcast from, when it was not written with the current
    /// one.
    pub upcast_from: Option<u32>,
}

/// What a writer schema id stands for, learned once per id.
#[derive(Debug, Clone)]
enum Writer {
    /// The current version of an event type: the direct path.
    Current(EventType),
    /// A catalog version read with its own schema and upcast. `reader` is set when this
    /// process does not know `file` (its known versions are pinned below it) and resolves the
    /// datum into that older version of the same record first, as an older release would.
    Catalog {
        file: &'static SchemaFile,
        reader: Option<&'static SchemaFile>,
    },
    /// A catalog record this process does not know at all: a record name newer than its
    /// known versions.
    Unknown(&'static SchemaFile),
    /// Not in troupe's catalog, but readable as catalog version `reader` by Avro resolution.
    Resolved {
        writer: Arc<apache_avro::Schema>,
        reader: &'static SchemaFile,
    },
    /// Not in troupe's catalog, and no catalog version of its record can read it.
    Foreign,
}

/// How a process that knows `pins`' versions reads data written with `file`.
fn writer_for(file: &'static SchemaFile, pins: &Pins) -> Writer {
    let known = pins.knows(file.event_type);
    if file.version <= known {
        return if file.is_current() {
            Writer::Current(file.event_type)
        } else {
            Writer::Catalog { file, reader: None }
        };
    }
    match catalog::versions(file.event_type)
        .rev()
        .find(|older| older.version <= known && older.record_name() == file.record_name())
    {
        Some(reader) => Writer::Catalog {
            file,
            reader: Some(reader),
        },
        None => Writer::Unknown(file),
    }
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
    pins: Pins,
    /// The schema each event type is written with, indexed by [`EventType::index`].
    writes: Vec<&'static SchemaFile>,
    /// One subject strategy per event type, for the version it writes, built once, indexed by
    /// [`EventType::index`].
    strategies: Vec<SubjectNameStrategy>,
    /// The registry id of the schema each event type is written with, once known.
    write_ids: Vec<OnceLock<u32>>,
    /// Writer schema ids seen, and what they stand for.
    known_ids: RwLock<HashMap<u32, Writer>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl Codec {
    /// A codec over the registry at `registry_url`, without credentials (tests); see
    /// [`Codec::for_registry`].
    pub fn new(registry_url: &str, topics: &Topics) -> Self {
        Self::for_registry(&RegistryConfig::at(registry_url), topics)
            .expect("an HTTP client without a CA file or credentials")
    }

    /// A codec writing the current schema version of each event type, under the subject
    /// `<topic>-<record>` (TopicRecordNameStrategy).
    pub fn for_registry(registry: &RegistryConfig, topics: &Topics) -> Result<Self, SecurityError> {
        Self::with_pins(registry, topics, Pins::default())
    }

    /// A codec writing, and knowing, the versions `pins` say. Every request carries the
    /// registry's basic auth, over a client trusting its CA ([`crate::security`]).
    pub fn with_pins(
        registry: &RegistryConfig,
        topics: &Topics,
        pins: Pins,
    ) -> Result<Self, SecurityError> {
        let mut settings = SrSettings::new_builder(registry.url.clone());
        if let Some(auth) = &registry.security.basic_auth {
            settings.set_basic_authorization(&auth.username, Some(auth.password.expose()));
        }
        let settings = settings
            .build_with(registry.security.http_client()?)
            .map_err(|e| {
                let message = format!("cannot build the schema registry client: {}", e.error);
                SecurityError::caused_by(message, std::error::Error::source(&e))
            })?;
        let writes: Vec<&'static SchemaFile> =
            EventType::ALL.into_iter().map(|t| pins.writes(t)).collect();
        let strategies = EventType::ALL
            .into_iter()
            .map(|event_type| {
                let schema = writes[event_type.index()];
                let supplied = SuppliedSchema::new(
                    Some(schema.record_name().to_owned()),
                    SchemaType::Avro,
                    schema.text.to_owned(),
                );
                SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
                    topics.name(event_type.topic()),
                    supplied,
                )
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                encoder: AvroEncoder::new(settings.clone()),
                decoder: AvroDecoder::new(settings.clone()),
                settings,
                pins,
                writes,
                strategies,
                write_ids: EventType::ALL.iter().map(|_| OnceLock::new()).collect(),
                known_ids: RwLock::new(HashMap::new()),
            }),
        })
    }

    fn strategy(&self, event_type: EventType) -> &SubjectNameStrategy {
        &self.inner.strategies[event_type.index()]
    }

    /// Encodes an event with the schema version this codec writes (the current one unless
    /// pinned).
    pub async fn encode(&self, envelope: &Envelope) -> Result<Vec<u8>, EncodeError> {
        let event_type = envelope.event_type();
        let file = self.inner.writes[event_type.index()];
        if let Some(id) = self.inner.write_ids[event_type.index()].get() {
            return Ok(encode_direct(*id, file.version, envelope));
        }
        // The first of its type: through the registry client, which registers the schema (or
        // finds it) and tells its id.
        let bytes = self
            .inner
            .encoder
            .encode_value(
                avro::to_version_value(envelope, file.version),
                self.strategy(event_type),
            )
            .await
            .map_err(|e| {
                // The library caches errors too: forget them, or a registry that was down
                // once would fail this event type for the life of the process.
                self.inner.encoder.remove_errors_from_cache();
                EncodeError {
                    event_type: event_type.name(),
                    message: e.to_string(),
                }
            })?;
        if let Some(id) = schema_id(&bytes) {
            let _ = self.inner.write_ids[event_type.index()].set(id);
            self.learn(id, writer_for(file, &self.inner.pins));
        }
        Ok(bytes)
    }

    /// Decodes and validates one message payload.
    pub async fn decode(&self, payload: Option<&[u8]>) -> Result<Envelope, DecodeError> {
        self.decode_message(payload).await.map(|d| d.envelope)
    }

    /// Decodes and validates one message payload, telling which version it was upcast from.
    pub async fn decode_message(&self, payload: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        let bytes = check_framing(payload)?;
        let id = schema_id(bytes).expect("framing checked");
        let writer = match self.known(id) {
            Some(writer) => writer,
            None => self.identify(id).await?,
        };
        let datum = &bytes[5..];
        match writer {
            Writer::Current(event_type) => Ok(Decoded {
                envelope: decode_direct(event_type, datum)?,
                upcast_from: None,
            }),
            Writer::Catalog { file, reader } => Ok(Decoded {
                envelope: decode_older(file, reader, datum)?,
                upcast_from: Some(reader.unwrap_or(file).version),
            }),
            Writer::Resolved { writer, reader } => Ok(Decoded {
                envelope: checked(
                    avro::decode_resolved(&writer, reader, datum),
                    format_args!("{} read as v{}", reader.record_name(), reader.version),
                )?,
                upcast_from: (!reader.is_current()).then_some(reader.version),
            }),
            Writer::Unknown(file) => Err(rejected(
                Reason::InvalidEvent,
                &format!(
                    "record {} (schema id {id}) is newer than this process knows: it reads {} up to v{}",
                    file.record_name(),
                    file.event_type.name(),
                    self.inner.pins.knows(file.event_type)
                ),
            )),
            Writer::Foreign => {
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
                Ok(Decoded {
                    envelope: decode_value(&name, &decoded.value)?,
                    upcast_from: None,
                })
            }
        }
    }

    fn known(&self, id: u32) -> Option<Writer> {
        self.inner
            .known_ids
            .read()
            .expect("schema id cache")
            .get(&id)
            .cloned()
    }

    fn learn(&self, id: u32, writer: Writer) {
        self.inner
            .known_ids
            .write()
            .expect("schema id cache")
            .insert(id, writer);
    }

    /// Asks the registry once for schema `id` and finds it in the catalog. When the registry
    /// cannot be asked, nothing is learned and the next message asks again.
    async fn identify(&self, id: u32) -> Result<Writer, DecodeError> {
        let registered = get_schema_by_id(id, &self.inner.settings)
            .await
            .map_err(|error| self.classify(error))?;
        let writer = match apache_avro::Schema::parse_str(&registered.schema) {
            Err(_) => Writer::Foreign,
            Ok(schema) => match catalog::by_canonical_form(&schema.canonical_form()) {
                Some(file) => writer_for(file, &self.inner.pins),
                None => self.resolvable(schema),
            },
        };
        self.learn(id, writer.clone());
        Ok(writer)
    }

    /// The newest known catalog version of the same record that can read data written with
    /// `schema`, a schema troupe did not publish.
    fn resolvable(&self, schema: apache_avro::Schema) -> Writer {
        use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
        let apache_avro::Schema::Record(record) = &schema else {
            return Writer::Foreign;
        };
        let name = record.name.fullname(None);
        let Some(event_type) = EventType::from_record_name(&name) else {
            return Writer::Foreign;
        };
        let known = self.inner.pins.knows(event_type);
        let reader = catalog::versions(event_type).rev().find(|file| {
            file.version <= known
                && file.record_name() == name
                && matches!(
                    SchemaCompatibility::can_read(&schema, file.schema()),
                    Ok(Compatibility::Full)
                )
        });
        match reader {
            Some(reader) => Writer::Resolved {
                writer: Arc::new(schema),
                reader,
            },
            None => Writer::Foreign,
        }
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

/// Frames and writes `envelope` as version `version` of its schema, registered as `id`.
pub fn encode_direct(id: u32, version: u32, envelope: &Envelope) -> Vec<u8> {
    let mut framing = [0u8; 5];
    framing[1..].copy_from_slice(&id.to_be_bytes());
    let mut sink = avro::binary::BinarySink::after(&framing, 256);
    avro::write_version(envelope, version, &mut sink);
    sink.into_bytes()
}

/// Bytes that are no datum of the schema are undecodable; a datum that is no valid event is
/// invalid.
fn avro_reason(error: &avro::AvroError) -> Reason {
    if error.is_malformed() {
        Reason::UndecodableAvro
    } else {
        Reason::InvalidEvent
    }
}

/// Reads a datum written with the current schema of `event_type`, and validates the event.
pub fn decode_direct(event_type: EventType, datum: &[u8]) -> Result<Envelope, DecodeError> {
    let envelope = avro::from_binary(event_type, datum)
        .map_err(|error| rejected(avro_reason(&error), &error.to_string()))?;
    validate(&envelope).map_err(|e| rejected(Reason::InvalidEvent, &e))?;
    Ok(envelope)
}

/// Reads a datum written with an older version `file` (resolved into `reader` first when
/// given), upcasts it to the current version and validates the event.
pub fn decode_older(
    file: &SchemaFile,
    reader: Option<&SchemaFile>,
    datum: &[u8],
) -> Result<Envelope, DecodeError> {
    checked(
        avro::decode_version(file, reader, datum),
        format_args!("{} v{}", file.event_type.name(), file.version),
    )
}

/// A decoded event, validated; a decoding error says what was being read (`context`).
fn checked(
    decoded: avro::Result<Envelope>,
    context: std::fmt::Arguments<'_>,
) -> Result<Envelope, DecodeError> {
    let envelope =
        decoded.map_err(|error| rejected(avro_reason(&error), &format!("{context}: {error}")))?;
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
    use rstest::rstest;

    /// How a process reads each OrderPlaced version, given what it knows.
    #[rstest]
    #[case::everything_known("", 3, "current")]
    #[case::an_older_version("", 1, "upcast from v1")]
    #[case::the_middle_one("", 2, "upcast from v2")]
    #[case::a_v1_release_reads_v1("OrderPlaced=1", 1, "upcast from v1")]
    #[case::a_v1_release_resolves_v2_into_v1("OrderPlaced=1", 2, "v2 resolved as v1")]
    #[case::a_v1_release_cannot_read_the_new_record("OrderPlaced=1", 3, "unknown")]
    #[case::a_v2_release_cannot_read_the_new_record("OrderPlaced=2", 3, "unknown")]
    fn each_version_is_read_by_what_the_process_knows(
        #[case] known: &str,
        #[case] version: u32,
        #[case] expected: &str,
    ) {
        let pins = Pins::parse(known, known).unwrap();
        let file = catalog::find(EventType::OrderPlaced, version).unwrap();
        let read = match writer_for(file, &pins) {
            Writer::Current(_) => "current".to_owned(),
            Writer::Catalog { file, reader: None } => format!("upcast from v{}", file.version),
            Writer::Catalog {
                file,
                reader: Some(reader),
            } => format!("v{} resolved as v{}", file.version, reader.version),
            Writer::Unknown(_) => "unknown".to_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(read, expected);
    }

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
