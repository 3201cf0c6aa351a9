//! Mapping between [`Envelope`] and the Avro records of the current schemas
//! (`schemas/**/*.avsc`).
//!
//! Each event's wire shape is described once, in [`write_event`] and [`read_event`], over two
//! small traits: a [`Sink`] that is told the fields in schema order, and a [`Source`] asked
//! for them in the same order. Two backends implement them:
//! - [`value`]: `apache_avro::types::Value`, for the registry client, schema resolution and
//!   any writer schema that is not the current one;
//! - [`binary`]: the Avro binary encoding read and written directly, for the hot path when the
//!   writer schema is the current one — no intermediate tree, one allocation per string.
//!
//! Hand-written rather than derived: the wire and the domain differ (money is a double on some
//! wires and minor units in the domain; OrderPlaced v3 moves the recipient out of the address).
//! Decoding checks every field, so a record that does not match the schema's shape is an
//! [`AvroError`], never a panic.
//!
//! Older versions: [`write_version`] writes any published version (what a pinned producer
//! sends); [`decode_version`] reads one and upcasts it to the current shape
//! ([`crate::upcast`]).

pub mod binary;
pub mod value;

use apache_avro::types::Value;
use uuid::Uuid;

use crate::domain::*;

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

fn position(symbols: &[&str], symbol: &str) -> usize {
    symbols.iter().position(|s| *s == symbol).unwrap_or(0)
}

fn write_meta<S: Sink>(sink: &mut S, meta: &Metadata) {
    sink.record("metadata", |m| {
        m.uuid("event_id", meta.event_id);
        m.uuid("order_id", meta.order_id);
        m.uuid("correlation_id", meta.correlation_id);
        m.opt_uuid("causation_id", meta.causation_id);
        m.timestamp("occurred_at", meta.occurred_at);
        m.string("producer", &meta.producer);
    });
}

/// Order lines as PlaceOrder and OrderPlaced up to v2 carry them: prices as major-unit doubles.
fn write_order_lines<S: Sink>(sink: &mut S, lines: &[OrderLine]) {
    sink.array("lines", lines, |r, l| {
        r.string("sku", &l.sku);
        r.int("quantity", l.quantity);
        r.double("unit_price", to_major(l.unit_price));
    });
}

/// Order lines as OrderPlaced v3 carries them: prices in minor units.
fn write_minor_order_lines<S: Sink>(sink: &mut S, lines: &[OrderLine]) {
    sink.array("lines", lines, |r, l| {
        r.string("sku", &l.sku);
        r.int("quantity", l.quantity);
        r.long("unit_price_minor", l.unit_price);
    });
}

fn write_sku_quantities<S: Sink>(sink: &mut S, lines: &[SkuQuantity]) {
    sink.array("lines", lines, |r, l| {
        r.string("sku", &l.sku);
        r.int("quantity", l.quantity);
    });
}

fn write_address<S: Sink>(sink: &mut S, a: &Address) {
    sink.record("shipping_address", |r| {
        r.string("name", &a.name);
        r.string("street", &a.street);
        r.string("city", &a.city);
        r.string("postal_code", &a.postal_code);
        r.string("country", &a.country);
    });
}

/// The fields PlaceOrder (every version) and OrderPlaced up to v2 start with.
fn write_request<S: Sink>(
    sink: &mut S,
    customer_id: &str,
    lines: &[OrderLine],
    currency: &str,
    address: &Address,
) {
    sink.string("customer_id", customer_id);
    write_order_lines(sink, lines);
    sink.string("currency", currency);
    write_address(sink, address);
}

/// PaymentAuthorized and PaymentRefunded: the amount in minor units (v2 on) or as a major-unit
/// double (v1).
fn write_payment<S: Sink>(sink: &mut S, event: &Event, minor_units: bool) {
    let (Event::PaymentAuthorized {
        payment_id,
        customer_id,
        amount,
    }
    | Event::PaymentRefunded {
        payment_id,
        customer_id,
        amount,
    }) = event
    else {
        unreachable!("called for payments only")
    };
    sink.string("payment_id", payment_id);
    sink.string("customer_id", customer_id);
    if minor_units {
        sink.long("amount_minor", amount.minor);
    } else {
        sink.double("amount", to_major(amount.minor));
    }
    sink.string("currency", &amount.currency);
}

/// Tells `sink` the fields of `envelope`'s record, in schema order.
pub fn write_event<S: Sink>(envelope: &Envelope, sink: &mut S) {
    write_meta(sink, &envelope.meta);
    match &envelope.event {
        Event::PlaceOrder {
            customer_id,
            lines,
            currency,
            shipping_address,
            promotion_code,
        } => {
            write_request(sink, customer_id, lines, currency, shipping_address);
            sink.opt_string("promotion_code", promotion_code.as_deref());
        }
        Event::OrderCancellationRequested { reason } => sink.string("reason", reason),
        Event::OrderPlaced {
            customer_id,
            lines,
            currency,
            shipping_address: a,
            total,
            promotion_code,
        } => {
            sink.string("customer_id", customer_id);
            write_minor_order_lines(sink, lines);
            sink.record("total", |m| {
                m.long("amount_minor", *total);
                m.string("currency", currency);
            });
            sink.string("recipient", &a.name);
            sink.record("shipping_address", |r| {
                r.string("street", &a.street);
                r.string("city", &a.city);
                r.string("postal_code", &a.postal_code);
                r.string("country", &a.country);
            });
            sink.opt_string("promotion_code", promotion_code.as_deref());
        }
        Event::OrderRejected {
            customer_id,
            reason,
        }
        | Event::PaymentDeclined {
            customer_id,
            reason,
        } => {
            sink.string("customer_id", customer_id);
            sink.string("reason", reason);
        }
        Event::OrderConfirmed {
            customer_id,
            shipment_id,
        } => {
            sink.string("customer_id", customer_id);
            sink.string("shipment_id", shipment_id);
        }
        Event::OrderCancelled {
            customer_id,
            reason,
            detail,
        } => {
            sink.string("customer_id", customer_id);
            sink.symbol(
                "reason",
                position(&REASONS, reason.symbol()),
                reason.symbol(),
            );
            sink.string("detail", detail);
        }
        Event::StockReserved {
            reservation_id,
            lines,
            customer_id,
            total,
            expires_at,
        } => {
            sink.string("reservation_id", reservation_id);
            write_sku_quantities(sink, lines);
            sink.string("customer_id", customer_id);
            sink.long("total_minor", total.minor);
            sink.string("currency", &total.currency);
            sink.timestamp("expires_at", *expires_at);
        }
        Event::StockRejected { shortages } => {
            sink.array("shortages", shortages, |r, x| {
                r.string("sku", &x.sku);
                r.int("requested", x.requested);
                r.int("available", x.available);
            });
        }
        Event::StockReservationExpired { reservation_id } => {
            sink.string("reservation_id", reservation_id)
        }
        Event::StockReleased {
            reservation_id,
            lines,
        }
        | Event::StockCommitted {
            reservation_id,
            lines,
        } => {
            sink.string("reservation_id", reservation_id);
            write_sku_quantities(sink, lines);
        }
        Event::StockAdjusted { sku, delta, set_to } => {
            sink.string("sku", sku);
            sink.int("delta", *delta);
            sink.opt_int("set_to", *set_to);
        }
        Event::PaymentAuthorized { .. } | Event::PaymentRefunded { .. } => {
            write_payment(sink, &envelope.event, true)
        }
        Event::ShipmentScheduled {
            shipment_id,
            carrier,
            country,
        } => {
            sink.string("shipment_id", shipment_id);
            sink.string("carrier", carrier);
            sink.string("country", country);
        }
        Event::ShipmentFailed { reason } => sink.string("reason", reason),
        Event::ShipmentCancelled { shipment_id } => sink.string("shipment_id", shipment_id),
        Event::CustomerNotified {
            notification_id,
            customer_id,
            kind,
            message,
        } => {
            sink.string("notification_id", notification_id);
            sink.string("customer_id", customer_id);
            sink.symbol("kind", position(&KINDS, kind.symbol()), kind.symbol());
            sink.string("message", message);
        }
    }
}

fn read_order_lines<S: Source>(source: &mut S) -> Result<Vec<OrderLine>> {
    source.array("lines", |r| {
        Ok(OrderLine {
            sku: r.string("sku")?,
            quantity: r.int("quantity")?,
            unit_price: to_minor(r.amount("unit_price")?),
        })
    })
}

fn read_minor_order_lines<S: Source>(source: &mut S) -> Result<Vec<OrderLine>> {
    source.array("lines", |r| {
        Ok(OrderLine {
            sku: r.string("sku")?,
            quantity: r.int("quantity")?,
            unit_price: r.long("unit_price_minor")?,
        })
    })
}

fn read_sku_quantities<S: Source>(source: &mut S) -> Result<Vec<SkuQuantity>> {
    source.array("lines", |r| {
        Ok(SkuQuantity {
            sku: r.string("sku")?,
            quantity: r.int("quantity")?,
        })
    })
}

fn read_address<S: Source>(source: &mut S) -> Result<Address> {
    source.record("shipping_address", |r| {
        Ok(Address {
            name: r.string("name")?,
            street: r.string("street")?,
            city: r.string("city")?,
            postal_code: r.string("postal_code")?,
            country: r.string("country")?,
        })
    })
}

/// An amount in minor units followed by a currency (payments and StockReserved from v2 on).
fn read_minor_money<S: Source>(source: &mut S, amount: &'static str) -> Result<Money> {
    Ok(Money {
        minor: source.long(amount)?,
        currency: source.string("currency")?,
    })
}

/// Reads a record of `event_type` from `source`, asking for the fields in schema order.
pub fn read_event<S: Source>(event_type: EventType, r: &mut S) -> Result<Envelope> {
    let meta = r.record("metadata", |m| {
        Ok(Metadata {
            event_id: m.uuid("event_id")?,
            order_id: m.uuid("order_id")?,
            correlation_id: m.uuid("correlation_id")?,
            causation_id: m.opt_uuid("causation_id")?,
            occurred_at: m.long("occurred_at")?,
            producer: m.string("producer")?,
        })
    })?;
    let event = match event_type {
        EventType::PlaceOrder => Event::PlaceOrder {
            customer_id: r.string("customer_id")?,
            lines: read_order_lines(r)?,
            currency: r.string("currency")?,
            shipping_address: read_address(r)?,
            promotion_code: r.opt_string("promotion_code")?,
        },
        EventType::OrderCancellationRequested => Event::OrderCancellationRequested {
            reason: r.string("reason")?,
        },
        EventType::OrderPlaced => {
            let customer_id = r.string("customer_id")?;
            let lines = read_minor_order_lines(r)?;
            let (total, currency) = r.record("total", |m| {
                Ok((m.long("amount_minor")?, m.string("currency")?))
            })?;
            let name = r.string("recipient")?;
            let shipping_address = r.record("shipping_address", |a| {
                Ok(Address {
                    name,
                    street: a.string("street")?,
                    city: a.string("city")?,
                    postal_code: a.string("postal_code")?,
                    country: a.string("country")?,
                })
            })?;
            Event::OrderPlaced {
                customer_id,
                lines,
                currency,
                shipping_address,
                total,
                promotion_code: r.opt_string("promotion_code")?,
            }
        }
        EventType::OrderRejected => Event::OrderRejected {
            customer_id: r.string("customer_id")?,
            reason: r.string("reason")?,
        },
        EventType::OrderConfirmed => Event::OrderConfirmed {
            customer_id: r.string("customer_id")?,
            shipment_id: r.string("shipment_id")?,
        },
        EventType::OrderCancelled => Event::OrderCancelled {
            customer_id: r.string("customer_id")?,
            reason: CancellationReason::from_symbol(r.symbol("reason", &REASONS)?)
                .expect("every schema symbol is a reason"),
            detail: r.string("detail")?,
        },
        EventType::StockReserved => Event::StockReserved {
            reservation_id: r.string("reservation_id")?,
            lines: read_sku_quantities(r)?,
            customer_id: r.string("customer_id")?,
            total: read_minor_money(r, "total_minor")?,
            expires_at: r.long("expires_at")?,
        },
        EventType::StockRejected => Event::StockRejected {
            shortages: r.array("shortages", |x| {
                Ok(Shortage {
                    sku: x.string("sku")?,
                    requested: x.int("requested")?,
                    available: x.int("available")?,
                })
            })?,
        },
        EventType::StockReservationExpired => Event::StockReservationExpired {
            reservation_id: r.string("reservation_id")?,
        },
        EventType::StockReleased => Event::StockReleased {
            reservation_id: r.string("reservation_id")?,
            lines: read_sku_quantities(r)?,
        },
        EventType::StockCommitted => Event::StockCommitted {
            reservation_id: r.string("reservation_id")?,
            lines: read_sku_quantities(r)?,
        },
        EventType::StockAdjusted => Event::StockAdjusted {
            sku: r.string("sku")?,
            delta: r.int("delta")?,
            set_to: r.opt_int("set_to")?,
        },
        EventType::PaymentAuthorized => Event::PaymentAuthorized {
            payment_id: r.string("payment_id")?,
            customer_id: r.string("customer_id")?,
            amount: read_minor_money(r, "amount_minor")?,
        },
        EventType::PaymentDeclined => Event::PaymentDeclined {
            customer_id: r.string("customer_id")?,
            reason: r.string("reason")?,
        },
        EventType::PaymentRefunded => Event::PaymentRefunded {
            payment_id: r.string("payment_id")?,
            customer_id: r.string("customer_id")?,
            amount: read_minor_money(r, "amount_minor")?,
        },
        EventType::ShipmentScheduled => Event::ShipmentScheduled {
            shipment_id: r.string("shipment_id")?,
            carrier: r.string("carrier")?,
            country: r.string("country")?,
        },
        EventType::ShipmentFailed => Event::ShipmentFailed {
            reason: r.string("reason")?,
        },
        EventType::ShipmentCancelled => Event::ShipmentCancelled {
            shipment_id: r.string("shipment_id")?,
        },
        EventType::CustomerNotified => Event::CustomerNotified {
            notification_id: r.string("notification_id")?,
            customer_id: r.string("customer_id")?,
            kind: NotificationKind::from_symbol(r.symbol("kind", &KINDS)?)
                .expect("every schema symbol is a kind"),
            message: r.string("message")?,
        },
    };
    Ok(Envelope { meta, event })
}

/// Tells `sink` the fields of `envelope` as version `version` of its schema has them: the
/// current writer, or the writer an older release had, kept so that a producer can be pinned to
/// an older version during a rollout. Fields the version lacks are left out (an OrderPlaced v1
/// carries no promotion code).
///
/// # Panics
/// When the catalog has no such version ([`crate::catalog::Pins`] checks this up front).
pub fn write_version<S: Sink>(envelope: &Envelope, version: u32, sink: &mut S) {
    let event_type = envelope.event_type();
    if version == crate::catalog::current(event_type).version {
        return write_event(envelope, sink);
    }
    write_meta(sink, &envelope.meta);
    match (&envelope.event, version) {
        (
            Event::PlaceOrder {
                customer_id,
                lines,
                currency,
                shipping_address,
                ..
            },
            1,
        ) => write_request(sink, customer_id, lines, currency, shipping_address),
        (
            Event::OrderPlaced {
                customer_id,
                lines,
                currency,
                shipping_address,
                total,
                promotion_code,
            },
            1 | 2,
        ) => {
            write_request(sink, customer_id, lines, currency, shipping_address);
            sink.double("total", to_major(*total));
            if version == 2 {
                sink.opt_string("promotion_code", promotion_code.as_deref());
            }
        }
        (Event::PaymentAuthorized { .. } | Event::PaymentRefunded { .. }, 1) => {
            write_payment(sink, &envelope.event, false)
        }
        (
            Event::StockReserved {
                reservation_id,
                lines,
                customer_id,
                total,
                expires_at,
            },
            1,
        ) => {
            sink.string("reservation_id", reservation_id);
            write_sku_quantities(sink, lines);
            sink.string("customer_id", customer_id);
            sink.double("total", to_major(total.minor));
            sink.string("currency", &total.currency);
            sink.timestamp("expires_at", *expires_at);
        }
        _ => panic!("{} has no writer for v{version}", event_type.name()),
    }
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
        let read = read_sku_quantities(&mut binary::BinarySource::new(&bytes)).unwrap();
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
