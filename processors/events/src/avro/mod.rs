//! Mapping between [`Envelope`] and the Avro records of the published schemas
//! (`schemas/**/*.avsc`).
//!
//! Each schema file's wire shape is described once, by a `shape!` block in `shapes.rs`: its
//! fields in schema order, each with its Avro type and the domain field it carries (the
//! machinery is in `shape.rs`). From that one description come both directions over two small
//! traits: a [`Sink`] that is told the fields in schema order, and a [`Source`] asked for them
//! in the same order. Two backends implement them:
//! - [`value`]: `apache_avro::types::Value`, for the registry client, schema resolution and
//!   any writer schema that is not the current one;
//! - [`binary`]: the Avro binary encoding read and written directly, for the hot path when the
//!   writer schema is the current one — no intermediate tree, one allocation per string.
//!
//! Declared rather than derived: the wire and the domain differ (money is a double on some
//! wires and minor units in the domain; OrderPlaced v3 moves the recipient out of the address
//! and nests the total), and a shape says how. Decoding checks every field, so a record that
//! does not match the schema's shape is an [`AvroError`], never a panic.
//!
//! [`write_event`] and [`read_event`] dispatch to each event type's current shape. Older
//! versions: [`write_version`] writes any published version (what a pinned producer sends);
//! [`decode_version`] reads one and upcasts it to the current shape ([`crate::upcast`]).

pub mod binary;
mod shape;
mod shapes;
pub mod value;

use apache_avro::types::Value;
use uuid::Uuid;

use crate::domain::*;
use shape::{Record, Shape, Wire};

/// Why an Avro value is not a valid event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvroError {
    #[error("record {0} is not a troupe event")]
    UnknownRecord(String),
    #[error("expected a record, got {0}")]
    NotARecord(String),
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("field {field} has the wrong type: {found}")]
    WrongType { field: &'static str, found: String },
    #[error("field {field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The bytes are not an Avro datum of the schema (binary decoding only).
    #[error("the datum ends inside field {0}")]
    Truncated(&'static str),
    /// The bytes are not an Avro datum of the schema (binary decoding only).
    #[error("field {field} is malformed: {reason}")]
    Malformed { field: &'static str, reason: String },
}

pub type Result<T> = std::result::Result<T, AvroError>;

impl AvroError {
    /// Whether the bytes were not a datum of the schema at all, as opposed to a datum whose
    /// values are not a valid event.
    pub fn is_malformed(&self) -> bool {
        matches!(self, AvroError::Truncated(_) | AvroError::Malformed { .. })
    }
}

/// Receives a record's fields in schema order. Arrays in troupe's schemas always hold records.
pub trait Sink {
    fn string(&mut self, field: &'static str, value: &str);
    fn uuid(&mut self, field: &'static str, value: Uuid);
    /// A `["null", uuid]` union.
    fn opt_uuid(&mut self, field: &'static str, value: Option<Uuid>);
    fn int(&mut self, field: &'static str, value: i32);
    /// A `["null", "int"]` union.
    fn opt_int(&mut self, field: &'static str, value: Option<i32>);
    /// A `["null", "string"]` union.
    fn opt_string(&mut self, field: &'static str, value: Option<&str>);
    fn long(&mut self, field: &'static str, value: i64);
    /// A `timestamp-millis` long.
    fn timestamp(&mut self, field: &'static str, value: i64);
    fn double(&mut self, field: &'static str, value: f64);
    /// An enum: `index` is the symbol's position in the schema.
    fn symbol(&mut self, field: &'static str, index: usize, symbol: &'static str);
    fn record(&mut self, field: &'static str, write: impl FnOnce(&mut Self));
    fn array<T>(&mut self, field: &'static str, items: &[T], write: impl Fn(&mut Self, &T));
}

/// Yields a record's fields, asked for in schema order.
pub trait Source: Sized {
    fn string(&mut self, field: &'static str) -> Result<String>;
    fn uuid(&mut self, field: &'static str) -> Result<Uuid>;
    fn opt_uuid(&mut self, field: &'static str) -> Result<Option<Uuid>>;
    fn int(&mut self, field: &'static str) -> Result<i32>;
    fn opt_int(&mut self, field: &'static str) -> Result<Option<i32>>;
    fn opt_string(&mut self, field: &'static str) -> Result<Option<String>>;
    fn long(&mut self, field: &'static str) -> Result<i64>;
    fn double(&mut self, field: &'static str) -> Result<f64>;
    /// An enum symbol, one of `symbols` (the schema's, in order).
    fn symbol(
        &mut self,
        field: &'static str,
        symbols: &'static [&'static str],
    ) -> Result<&'static str>;
    fn record<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T>;
    fn array<T>(
        &mut self,
        field: &'static str,
        read: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>>;

    /// A double that must be a finite amount.
    fn amount(&mut self, field: &'static str) -> Result<f64> {
        let value = self.double(field)?;
        if value.is_finite() {
            Ok(value)
        } else {
            Err(AvroError::Invalid {
                field,
                reason: format!("{value} is not a finite amount"),
            })
        }
    }
}

pub const REASONS: [&str; 5] = [
    "OUT_OF_STOCK",
    "PAYMENT_DECLINED",
    "SHIPMENT_FAILED",
    "RESERVATION_EXPIRED",
    "CUSTOMER_REQUEST",
];
pub const KINDS: [&str; 3] = ["CONFIRMATION", "CANCELLATION", "REJECTION"];

/// The metadata record every event starts with.
type Meta = Record<shapes::EventMetadata>;

/// The shape of each event type's current version (the catalog's newest file), and from it
/// [`write_event`] and [`read_event`]. Both matches are exhaustive.
macro_rules! current {
    ($($variant:ident => $shape:ident,)*) => {
        /// Tells `sink` the fields of `envelope`'s record, in schema order.
        pub fn write_event<S: Sink>(envelope: &Envelope, sink: &mut S) {
            Meta::write(sink, "metadata", &envelope.meta);
            let event = &envelope.event;
            match event {
                $(Event::$variant { .. } => shapes::$shape::write(sink, event),)*
            }
        }

        /// Reads a record of `event_type` from `source`, asking for the fields in schema order.
        pub fn read_event<S: Source>(event_type: EventType, source: &mut S) -> Result<Envelope> {
            let meta = Meta::read(source, "metadata")?;
            let event = match event_type {
                $(EventType::$variant => shapes::$shape::read(source)?,)*
            };
            Ok(Envelope { meta, event })
        }
    };
}

current! {
    PlaceOrder => PlaceOrderV2,
    OrderCancellationRequested => OrderCancellationRequestedV1,
    OrderPlaced => OrderPlacedV3,
    OrderRejected => OrderRejectedV1,
    OrderConfirmed => OrderConfirmedV1,
    OrderCancelled => OrderCancelledV1,
    StockReserved => StockReservedV2,
    StockRejected => StockRejectedV1,
    StockReservationExpired => StockReservationExpiredV1,
    StockReleased => StockReleasedV1,
    StockCommitted => StockCommittedV1,
    StockAdjusted => StockAdjustedV1,
    PaymentAuthorized => PaymentAuthorizedV2,
    PaymentDeclined => PaymentDeclinedV1,
    PaymentRefunded => PaymentRefundedV2,
    ShipmentScheduled => ShipmentScheduledV1,
    ShipmentFailed => ShipmentFailedV1,
    ShipmentCancelled => ShipmentCancelledV1,
    CustomerNotified => CustomerNotifiedV1,
}

/// The shapes of versions before the current one, written for producers pinned to them during
/// a rollout (and read in tests only: in production older versions go through the upcasters).
macro_rules! older {
    ($(($variant:ident, $version:literal) => $shape:ident,)*) => {
        fn write_older<S: Sink>(event: &Event, version: u32, sink: &mut S) {
            match (event.event_type(), version) {
                $((EventType::$variant, $version) => shapes::$shape::write(sink, event),)*
                (event_type, _) => panic!("{} has no writer for v{version}", event_type.name()),
            }
        }

        /// Reads a record of an older version with its own shape (no upcasting).
        #[cfg(test)]
        fn read_older<S: Source>(
            event_type: EventType,
            version: u32,
            source: &mut S,
        ) -> Result<Envelope> {
            let meta = Meta::read(source, "metadata")?;
            let event = match (event_type, version) {
                $((EventType::$variant, $version) => shapes::$shape::read(source)?,)*
                (event_type, _) => panic!("{} has no v{version} shape", event_type.name()),
            };
            Ok(Envelope { meta, event })
        }
    };
}

older! {
    (PlaceOrder, 1) => PlaceOrderV1,
    (OrderPlaced, 1) => OrderPlacedV1,
    (OrderPlaced, 2) => OrderPlacedV2,
    (StockReserved, 1) => StockReservedV1,
    (PaymentAuthorized, 1) => PaymentAuthorizedV1,
    (PaymentRefunded, 1) => PaymentRefundedV1,
}

/// Tells `sink` the fields of `envelope` as version `version` of its schema has them: the
/// current writer, or the writer an older release had, kept so that a producer can be pinned to
/// an older version during a rollout. Fields the version lacks are left out (an OrderPlaced v1
/// carries no promotion code).
///
/// # Panics
/// When the catalog has no such version ([`crate::catalog::Pins`] checks this up front).
pub fn write_version<S: Sink>(envelope: &Envelope, version: u32, sink: &mut S) {
    if version == crate::catalog::current(envelope.event_type()).version {
        return write_event(envelope, sink);
    }
    Meta::write(sink, "metadata", &envelope.meta);
    write_older(&envelope.event, version, sink);
}

/// Decodes a binary datum written with `file`'s schema, of any version: read as that schema
/// describes it, upcast step by step to the current version, then mapped to the domain.
/// `reader`, when given, is an older version of the same record to resolve the datum into
/// first (what a release that did not know `file` yet would do).
pub fn decode_version(
    file: &crate::catalog::SchemaFile,
    reader: Option<&crate::catalog::SchemaFile>,
    datum: &[u8],
) -> Result<Envelope> {
    use apache_avro::reader::datum::GenericDatumReader;
    use std::sync::OnceLock;
    if let Some(reader) = reader {
        return decode_resolved(file.schema(), reader, datum);
    }
    // A reader per catalog file, its schema resolved once (resolving it per message costs more
    // than the decoding itself).
    static READERS: OnceLock<Vec<GenericDatumReader<'static>>> = OnceLock::new();
    let readers = READERS.get_or_init(|| {
        crate::catalog::SCHEMAS
            .iter()
            .map(|f| {
                GenericDatumReader::builder(f.schema())
                    .build()
                    .expect("embedded schemas resolve")
            })
            .collect()
    });
    let value = readers[file.index()]
        .read_value(&mut &datum[..])
        .map_err(malformed)?;
    upcast_and_map(file, value)
}

/// Decodes a datum written with a `writer` schema that is not in the catalog but resolves into
/// catalog version `reader` (Avro schema resolution: a compatible producer troupe did not
/// build), then upcasts it from that version.
pub fn decode_resolved(
    writer: &apache_avro::Schema,
    reader: &crate::catalog::SchemaFile,
    datum: &[u8],
) -> Result<Envelope> {
    use apache_avro::reader::datum::GenericDatumReader;
    let value = GenericDatumReader::builder(writer)
        .reader_schema(reader.schema())
        .build()
        .and_then(|r| r.read_value(&mut &datum[..]))
        .map_err(malformed)?;
    upcast_and_map(reader, value)
}

fn malformed(error: apache_avro::Error) -> AvroError {
    AvroError::Malformed {
        field: "datum",
        reason: error.to_string(),
    }
}

/// A record of catalog version `read_as`, upcast to the current version and mapped.
fn upcast_and_map(read_as: &crate::catalog::SchemaFile, value: Value) -> Result<Envelope> {
    let value = crate::upcast::to_current(read_as.event_type, read_as.version, value)?;
    read_event(read_as.event_type, &mut value::Rec::of(&value)?)
}

/// The record's fields, in schema order, ready for the registry client's encoder.
pub fn to_fields(envelope: &Envelope) -> Vec<(String, Value)> {
    let mut sink = value::ValueSink::default();
    write_event(envelope, &mut sink);
    sink.into_fields()
}

/// The fields of `envelope` as version `version` of its schema has them.
pub fn to_version_value(envelope: &Envelope, version: u32) -> Value {
    let mut sink = value::ValueSink::default();
    write_version(envelope, version, &mut sink);
    Value::Record(sink.into_fields())
}

/// The whole record as one Avro value.
pub fn to_value(envelope: &Envelope) -> Value {
    Value::Record(to_fields(envelope))
}

/// Decodes a record value of the given full name (e.g. `troupe.orders.OrderPlaced`).
pub fn from_value(record_name: &str, value: &Value) -> Result<Envelope> {
    let event_type = EventType::from_record_name(record_name)
        .ok_or_else(|| AvroError::UnknownRecord(record_name.to_owned()))?;
    read_event(event_type, &mut value::Rec::of(value)?)
}

/// The Avro binary datum of `envelope` in its current schema (no framing).
pub fn to_binary(envelope: &Envelope) -> Vec<u8> {
    let mut sink = binary::BinarySink::with_capacity(256);
    write_event(envelope, &mut sink);
    sink.into_bytes()
}

/// Decodes a binary datum written with the current schema of `event_type`.
pub fn from_binary(event_type: EventType, datum: &[u8]) -> Result<Envelope> {
    read_event(event_type, &mut binary::BinarySource::new(datum))
}

#[cfg(test)]
mod tests {
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::writer::datum::GenericDatumWriter;
    use apache_avro::Schema;
    use proptest::prelude::*;
    use rstest::rstest;

    use super::shape::Array;
    use super::*;
    use crate::{catalog, samples};

    fn reference_bytes(envelope: &Envelope) -> Vec<u8> {
        let schema = Schema::parse_str(catalog::current(envelope.event_type()).text).unwrap();
        GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(to_value(envelope))
            .unwrap()
    }

    fn reference_decode(event_type: EventType, bytes: &[u8]) -> Envelope {
        let schema = Schema::parse_str(catalog::current(event_type).text).unwrap();
        let value = GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut &bytes[..])
            .unwrap();
        from_value(event_type.record_name(), &value).unwrap()
    }

    /// The direct encoding is byte for byte what apache-avro writes, and reads back.
    #[rstest]
    fn binary_matches_apache_avro_for_every_event(
        #[values(EventType::ALL.to_vec())] types: Vec<EventType>,
    ) {
        for event_type in types {
            let mut envelope = samples::sample(event_type, Uuid::now_v7());
            for causation in [Some(Uuid::now_v7()), None] {
                envelope.meta.causation_id = causation;
                let bytes = to_binary(&envelope);
                assert_eq!(bytes, reference_bytes(&envelope), "{event_type:?}");
                assert_eq!(from_binary(event_type, &bytes).unwrap(), envelope);
                assert_eq!(reference_decode(event_type, &bytes), envelope);
            }
        }
    }

    /// Every published version, written by the direct writer (what a producer pinned to it
    /// sends through `encode_direct`), is byte for byte what apache-avro writes from
    /// [`to_version_value`], which it validates against that version's schema.
    #[test]
    fn every_version_binary_matches_apache_avro() {
        for file in catalog::SCHEMAS {
            let mut envelope = samples::representable(file.event_type, file.version);
            for causation in [envelope.meta.causation_id, None] {
                envelope.meta.causation_id = causation;
                let mut sink = binary::BinarySink::default();
                write_version(&envelope, file.version, &mut sink);
                let reference = GenericDatumWriter::builder(file.schema())
                    .build()
                    .unwrap()
                    .write_value_to_vec(to_version_value(&envelope, file.version))
                    .unwrap_or_else(|e| panic!("{}: {e}", file.path));
                assert_eq!(sink.into_bytes(), reference, "{}", file.path);
            }
        }
    }

    /// Older versions read with their own shapes (what the upcasters stand in for in
    /// production) give what the upcasters give, from both backends.
    #[test]
    fn older_shapes_read_what_the_upcasters_give() {
        for file in catalog::SCHEMAS {
            if file.version == catalog::current(file.event_type).version {
                continue;
            }
            let envelope = samples::representable(file.event_type, file.version);
            let mut sink = binary::BinarySink::default();
            write_version(&envelope, file.version, &mut sink);
            let bytes = sink.into_bytes();
            let upcast = decode_version(file, None, &bytes).unwrap();
            assert_eq!(upcast, envelope, "{}", file.path);
            let mut source = binary::BinarySource::new(&bytes);
            let direct = read_older(file.event_type, file.version, &mut source).unwrap();
            assert!(source.rest().is_empty(), "{}", file.path);
            assert_eq!(direct, upcast, "{}", file.path);
            let value = GenericDatumReader::builder(file.schema())
                .build()
                .unwrap()
                .read_value(&mut &bytes[..])
                .unwrap();
            let by_name = read_older(
                file.event_type,
                file.version,
                &mut value::Rec::of(&value).unwrap(),
            );
            assert_eq!(by_name.unwrap(), upcast, "{}", file.path);
        }
    }

    #[rstest]
    #[case::empty(&[])]
    #[case::cut_in_the_metadata(&[0x48, b'0', b'1'])]
    #[case::overlong_varint(&[0xff; 12])]
    fn bad_bytes_are_errors_not_panics(#[case] bytes: &[u8]) {
        for event_type in EventType::ALL {
            assert!(from_binary(event_type, bytes).is_err(), "{event_type:?}");
        }
    }

    #[test]
    fn every_truncation_of_a_datum_is_an_error() {
        let envelope = samples::sample(EventType::OrderPlaced, Uuid::now_v7());
        let bytes = to_binary(&envelope);
        for cut in 0..bytes.len() {
            assert!(
                from_binary(EventType::OrderPlaced, &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn arrays_in_several_and_sized_blocks_are_read() {
        // apache-avro writes one block; other writers may split arrays and give block sizes.
        let lines = vec![
            SkuQuantity {
                sku: "a".into(),
                quantity: 1,
            },
            SkuQuantity {
                sku: "b".into(),
                quantity: 2,
            },
        ];
        let mut sink = binary::BinarySink::default();
        // Block 1: count -1 with a byte size, one item; block 2: count 1; end.
        sink.int("", -1);
        sink.int("", 3);
        sink.string("", "a");
        sink.int("", 1);
        sink.int("", 1);
        sink.string("", "b");
        sink.int("", 2);
        sink.int("", 0);
        let bytes = sink.into_bytes();
        let read = <Array<shapes::SkuLine> as Wire<_>>::read(
            &mut binary::BinarySource::new(&bytes),
            "lines",
        )
        .unwrap();
        assert_eq!(read, lines);
    }

    fn text() -> impl Strategy<Value = String> {
        "[ -~éß€😀]{0,24}"
    }

    fn envelope() -> impl Strategy<Value = Envelope> {
        let meta = (
            any::<u128>(),
            any::<u128>(),
            proptest::option::of(any::<u128>()),
            any::<i64>(),
            text(),
        );
        let lines =
            proptest::collection::vec((text(), any::<i32>(), -10_000_000i64..10_000_000), 0..5);
        (meta, lines, text(), any::<Option<i32>>(), 0usize..5).prop_map(
            |((id, order, cause, at, producer), lines, word, set_to, pick)| {
                let meta = Metadata {
                    event_id: Uuid::from_u128(id),
                    order_id: Uuid::from_u128(order),
                    correlation_id: Uuid::from_u128(order ^ id),
                    causation_id: cause.map(Uuid::from_u128),
                    occurred_at: at,
                    producer,
                };
                let order_lines: Vec<OrderLine> = lines
                    .iter()
                    .map(|(sku, quantity, price)| OrderLine {
                        sku: sku.clone(),
                        quantity: *quantity,
                        unit_price: *price,
                    })
                    .collect();
                let event = match pick {
                    0 => Event::OrderPlaced {
                        customer_id: word.clone(),
                        lines: order_lines,
                        currency: "EUR".into(),
                        shipping_address: Address {
                            name: word.clone(),
                            street: word.clone(),
                            city: word.clone(),
                            postal_code: word.clone(),
                            country: word,
                        },
                        total: lines.iter().map(|l| l.2).sum(),
                        promotion_code: set_to.map(|n| format!("CODE-{n}")),
                    },
                    1 => Event::StockAdjusted {
                        sku: word,
                        delta: lines.len() as i32 - 2,
                        set_to,
                    },
                    2 => Event::StockCommitted {
                        reservation_id: word,
                        lines: lines
                            .iter()
                            .map(|(sku, quantity, _)| SkuQuantity {
                                sku: sku.clone(),
                                quantity: *quantity,
                            })
                            .collect(),
                    },
                    3 => Event::OrderCancelled {
                        customer_id: word.clone(),
                        reason: CancellationReason::ALL[lines.len() % 5],
                        detail: word,
                    },
                    _ => Event::PaymentAuthorized {
                        payment_id: word.clone(),
                        customer_id: word,
                        amount: Money {
                            minor: lines.first().map_or(0, |l| l.2),
                            currency: "EUR".into(),
                        },
                    },
                };
                Envelope { meta, event }
            },
        )
    }

    proptest! {
        /// Any event of these shapes: the direct encoding equals apache-avro's, and both
        /// decoders give the event back.
        #[test]
        fn binary_and_reference_agree(envelope in envelope()) {
            let bytes = to_binary(&envelope);
            prop_assert_eq!(&bytes, &reference_bytes(&envelope));
            prop_assert_eq!(&from_binary(envelope.event_type(), &bytes).unwrap(), &envelope);
            prop_assert_eq!(&reference_decode(envelope.event_type(), &bytes), &envelope);
        }
    }
}
