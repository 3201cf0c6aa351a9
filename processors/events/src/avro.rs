//! Mapping between [`Envelope`] and Avro values of the v1 schemas (`schemas/**/*.v1.avsc`).
//!
//! Hand-written rather than derived: the wire and the domain differ (money is a double on the
//! wire and minor units in the domain), and building `Value`s directly avoids a serde round
//! trip on the hot path. Decoding checks every field, so a record that does not match the
//! schema's shape is an [`AvroError`], never a panic.

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
}

type Result<T> = std::result::Result<T, AvroError>;

/// Fields of a decoded record, looked up by name.
struct Rec<'a>(&'a [(String, Value)]);

fn kind(value: &Value) -> String {
    let text = format!("{value:?}");
    text.chars().take(60).collect()
}

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

impl<'a> Rec<'a> {
    fn of(value: &'a Value) -> Result<Self> {
        match unwrap_union(value) {
            Value::Record(fields) => Ok(Rec(fields)),
            other => Err(AvroError::NotARecord(kind(other))),
        }
    }

    fn get(&self, field: &'static str) -> Result<&'a Value> {
        self.0
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, v)| unwrap_union(v))
            .ok_or(AvroError::Missing(field))
    }

    fn wrong(field: &'static str, value: &Value) -> AvroError {
        AvroError::WrongType {
            field,
            found: kind(value),
        }
    }

    fn string(&self, field: &'static str) -> Result<String> {
        match self.get(field)? {
            Value::String(s) => Ok(s.clone()),
            Value::Uuid(u) => Ok(u.to_string()),
            other => Err(Self::wrong(field, other)),
        }
    }

    fn uuid(&self, field: &'static str) -> Result<Uuid> {
        match self.get(field)? {
            Value::Uuid(u) => Ok(*u),
            Value::String(s) => Uuid::parse_str(s).map_err(|e| AvroError::Invalid {
                field,
                reason: e.to_string(),
            }),
            other => Err(Self::wrong(field, other)),
        }
    }

    fn opt_uuid(&self, field: &'static str) -> Result<Option<Uuid>> {
        match self.get(field)? {
            Value::Null => Ok(None),
            _ => self.uuid(field).map(Some),
        }
    }

    fn int(&self, field: &'static str) -> Result<i32> {
        match self.get(field)? {
            Value::Int(i) => Ok(*i),
            other => Err(Self::wrong(field, other)),
        }
    }

    fn opt_int(&self, field: &'static str) -> Result<Option<i32>> {
        match self.get(field)? {
            Value::Null => Ok(None),
            _ => self.int(field).map(Some),
        }
    }

    fn long(&self, field: &'static str) -> Result<i64> {
        match self.get(field)? {
            Value::Long(i) | Value::TimestampMillis(i) => Ok(*i),
            Value::Int(i) => Ok(i64::from(*i)),
            other => Err(Self::wrong(field, other)),
        }
    }

    fn double(&self, field: &'static str) -> Result<f64> {
        match self.get(field)? {
            Value::Double(d) if d.is_finite() => Ok(*d),
            Value::Double(d) => Err(AvroError::Invalid {
                field,
                reason: format!("{d} is not a finite amount"),
            }),
            Value::Float(f) => Ok(f64::from(*f)),
            other => Err(Self::wrong(field, other)),
        }
    }

    fn symbol(&self, field: &'static str) -> Result<&'a str> {
        match self.get(field)? {
            Value::Enum(_, symbol) => Ok(symbol),
            other => Err(Self::wrong(field, other)),
        }
    }

    fn array<T>(&self, field: &'static str, item: impl Fn(Rec<'a>) -> Result<T>) -> Result<Vec<T>> {
        match self.get(field)? {
            Value::Array(items) => items.iter().map(|v| item(Rec::of(v)?)).collect(),
            other => Err(Self::wrong(field, other)),
        }
    }

    fn record(&self, field: &'static str) -> Result<Rec<'a>> {
        Rec::of(self.get(field)?)
    }
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn meta_value(meta: &Metadata) -> Value {
    Value::Record(vec![
        ("event_id".into(), Value::Uuid(meta.event_id)),
        ("order_id".into(), Value::Uuid(meta.order_id)),
        ("correlation_id".into(), Value::Uuid(meta.correlation_id)),
        (
            "causation_id".into(),
            match meta.causation_id {
                Some(id) => Value::Union(1, Box::new(Value::Uuid(id))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
        (
            "occurred_at".into(),
            Value::TimestampMillis(meta.occurred_at),
        ),
        ("producer".into(), s(&meta.producer)),
    ])
}

fn order_lines(lines: &[OrderLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| {
                Value::Record(vec![
                    ("sku".into(), s(&l.sku)),
                    ("quantity".into(), Value::Int(l.quantity)),
                    ("unit_price".into(), Value::Double(to_major(l.unit_price))),
                ])
            })
            .collect(),
    )
}

fn sku_quantities(lines: &[SkuQuantity]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| {
                Value::Record(vec![
                    ("sku".into(), s(&l.sku)),
                    ("quantity".into(), Value::Int(l.quantity)),
                ])
            })
            .collect(),
    )
}

fn address(a: &Address) -> Value {
    Value::Record(vec![
        ("name".into(), s(&a.name)),
        ("street".into(), s(&a.street)),
        ("city".into(), s(&a.city)),
        ("postal_code".into(), s(&a.postal_code)),
        ("country".into(), s(&a.country)),
    ])
}

fn enum_value(symbols: &[&str], symbol: &str) -> Value {
    let index = symbols.iter().position(|s| *s == symbol).unwrap_or(0) as u32;
    Value::Enum(index, symbol.to_owned())
}

const REASONS: [&str; 5] = [
    "OUT_OF_STOCK",
    "PAYMENT_DECLINED",
    "SHIPMENT_FAILED",
    "RESERVATION_EXPIRED",
    "CUSTOMER_REQUEST",
];
const KINDS: [&str; 3] = ["CONFIRMATION", "CANCELLATION", "REJECTION"];

/// The record's fields, in schema order, ready for the encoder.
pub fn to_fields(envelope: &Envelope) -> Vec<(&'static str, Value)> {
    let mut fields = vec![("metadata", meta_value(&envelope.meta))];
    match &envelope.event {
        Event::PlaceOrder {
            customer_id,
            lines,
            currency,
            shipping_address,
        } => fields.extend([
            ("customer_id", s(customer_id)),
            ("lines", order_lines(lines)),
            ("currency", s(currency)),
            ("shipping_address", address(shipping_address)),
        ]),
        Event::OrderCancellationRequested { reason } => fields.push(("reason", s(reason))),
        Event::OrderPlaced {
            customer_id,
            lines,
            currency,
            shipping_address,
            total,
        } => fields.extend([
            ("customer_id", s(customer_id)),
            ("lines", order_lines(lines)),
            ("currency", s(currency)),
            ("shipping_address", address(shipping_address)),
            ("total", Value::Double(to_major(*total))),
        ]),
        Event::OrderRejected {
            customer_id,
            reason,
        } => fields.extend([("customer_id", s(customer_id)), ("reason", s(reason))]),
        Event::OrderConfirmed {
            customer_id,
            shipment_id,
        } => fields.extend([
            ("customer_id", s(customer_id)),
            ("shipment_id", s(shipment_id)),
        ]),
        Event::OrderCancelled {
            customer_id,
            reason,
            detail,
        } => fields.extend([
            ("customer_id", s(customer_id)),
            ("reason", enum_value(&REASONS, reason.symbol())),
            ("detail", s(detail)),
        ]),
        Event::StockReserved {
            reservation_id,
            lines,
            customer_id,
            total,
            expires_at,
        } => fields.extend([
            ("reservation_id", s(reservation_id)),
            ("lines", sku_quantities(lines)),
            ("customer_id", s(customer_id)),
            ("total", Value::Double(to_major(total.minor))),
            ("currency", s(&total.currency)),
            ("expires_at", Value::TimestampMillis(*expires_at)),
        ]),
        Event::StockRejected { shortages } => fields.push((
            "shortages",
            Value::Array(
                shortages
                    .iter()
                    .map(|x| {
                        Value::Record(vec![
                            ("sku".into(), s(&x.sku)),
                            ("requested".into(), Value::Int(x.requested)),
                            ("available".into(), Value::Int(x.available)),
                        ])
                    })
                    .collect(),
            ),
        )),
        Event::StockReservationExpired { reservation_id } => {
            fields.push(("reservation_id", s(reservation_id)))
        }
        Event::StockReleased {
            reservation_id,
            lines,
        }
        | Event::StockCommitted {
            reservation_id,
            lines,
        } => fields.extend([
            ("reservation_id", s(reservation_id)),
            ("lines", sku_quantities(lines)),
        ]),
        Event::StockAdjusted { sku, delta, set_to } => fields.extend([
            ("sku", s(sku)),
            ("delta", Value::Int(*delta)),
            (
                "set_to",
                match set_to {
                    Some(v) => Value::Union(1, Box::new(Value::Int(*v))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
        ]),
        Event::PaymentAuthorized {
            payment_id,
            customer_id,
            amount,
        }
        | Event::PaymentRefunded {
            payment_id,
            customer_id,
            amount,
        } => fields.extend([
            ("payment_id", s(payment_id)),
            ("customer_id", s(customer_id)),
            ("amount", Value::Double(to_major(amount.minor))),
            ("currency", s(&amount.currency)),
        ]),
        Event::PaymentDeclined {
            customer_id,
            reason,
        } => fields.extend([("customer_id", s(customer_id)), ("reason", s(reason))]),
        Event::ShipmentScheduled {
            shipment_id,
            carrier,
            country,
        } => fields.extend([
            ("shipment_id", s(shipment_id)),
            ("carrier", s(carrier)),
            ("country", s(country)),
        ]),
        Event::ShipmentFailed { reason } => fields.push(("reason", s(reason))),
        Event::ShipmentCancelled { shipment_id } => fields.push(("shipment_id", s(shipment_id))),
        Event::CustomerNotified {
            notification_id,
            customer_id,
            kind,
            message,
        } => fields.extend([
            ("notification_id", s(notification_id)),
            ("customer_id", s(customer_id)),
            ("kind", enum_value(&KINDS, kind.symbol())),
            ("message", s(message)),
        ]),
    }
    fields
}

/// The whole record as one Avro value.
pub fn to_value(envelope: &Envelope) -> Value {
    Value::Record(
        to_fields(envelope)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    )
}

fn order_line(r: Rec<'_>) -> Result<OrderLine> {
    Ok(OrderLine {
        sku: r.string("sku")?,
        quantity: r.int("quantity")?,
        unit_price: to_minor(r.double("unit_price")?),
    })
}

fn sku_quantity(r: Rec<'_>) -> Result<SkuQuantity> {
    Ok(SkuQuantity {
        sku: r.string("sku")?,
        quantity: r.int("quantity")?,
    })
}

fn parse_address(r: Rec<'_>) -> Result<Address> {
    Ok(Address {
        name: r.string("name")?,
        street: r.string("street")?,
        city: r.string("city")?,
        postal_code: r.string("postal_code")?,
        country: r.string("country")?,
    })
}

fn money(r: &Rec<'_>, amount: &'static str) -> Result<Money> {
    Ok(Money {
        minor: to_minor(r.double(amount)?),
        currency: r.string("currency")?,
    })
}

/// Decodes a record of the given full name (e.g. `troupe.orders.OrderPlaced`).
pub fn from_value(record_name: &str, value: &Value) -> Result<Envelope> {
    let event_type = EventType::from_record_name(record_name)
        .ok_or_else(|| AvroError::UnknownRecord(record_name.to_owned()))?;
    let r = Rec::of(value)?;
    let m = r.record("metadata")?;
    let meta = Metadata {
        event_id: m.uuid("event_id")?,
        order_id: m.uuid("order_id")?,
        correlation_id: m.uuid("correlation_id")?,
        causation_id: m.opt_uuid("causation_id")?,
        occurred_at: m.long("occurred_at")?,
        producer: m.string("producer")?,
    };
    let event = match event_type {
        EventType::PlaceOrder => Event::PlaceOrder {
            customer_id: r.string("customer_id")?,
            lines: r.array("lines", order_line)?,
            currency: r.string("currency")?,
            shipping_address: parse_address(r.record("shipping_address")?)?,
        },
        EventType::OrderCancellationRequested => Event::OrderCancellationRequested {
            reason: r.string("reason")?,
        },
        EventType::OrderPlaced => Event::OrderPlaced {
            customer_id: r.string("customer_id")?,
            lines: r.array("lines", order_line)?,
            currency: r.string("currency")?,
            shipping_address: parse_address(r.record("shipping_address")?)?,
            total: to_minor(r.double("total")?),
        },
        EventType::OrderRejected => Event::OrderRejected {
            customer_id: r.string("customer_id")?,
            reason: r.string("reason")?,
        },
        EventType::OrderConfirmed => Event::OrderConfirmed {
            customer_id: r.string("customer_id")?,
            shipment_id: r.string("shipment_id")?,
        },
        EventType::OrderCancelled => {
            let symbol = r.symbol("reason")?;
            Event::OrderCancelled {
                customer_id: r.string("customer_id")?,
                reason: CancellationReason::from_symbol(symbol).ok_or(AvroError::Invalid {
                    field: "reason",
                    reason: format!("unknown symbol {symbol}"),
                })?,
                detail: r.string("detail")?,
            }
        }
        EventType::StockReserved => Event::StockReserved {
            reservation_id: r.string("reservation_id")?,
            lines: r.array("lines", sku_quantity)?,
            customer_id: r.string("customer_id")?,
            total: money(&r, "total")?,
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
            lines: r.array("lines", sku_quantity)?,
        },
        EventType::StockCommitted => Event::StockCommitted {
            reservation_id: r.string("reservation_id")?,
            lines: r.array("lines", sku_quantity)?,
        },
        EventType::StockAdjusted => Event::StockAdjusted {
            sku: r.string("sku")?,
            delta: r.int("delta")?,
            set_to: r.opt_int("set_to")?,
        },
        EventType::PaymentAuthorized => Event::PaymentAuthorized {
            payment_id: r.string("payment_id")?,
            customer_id: r.string("customer_id")?,
            amount: money(&r, "amount")?,
        },
        EventType::PaymentDeclined => Event::PaymentDeclined {
            customer_id: r.string("customer_id")?,
            reason: r.string("reason")?,
        },
        EventType::PaymentRefunded => Event::PaymentRefunded {
            payment_id: r.string("payment_id")?,
            customer_id: r.string("customer_id")?,
            amount: money(&r, "amount")?,
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
        EventType::CustomerNotified => {
            let symbol = r.symbol("kind")?;
            Event::CustomerNotified {
                notification_id: r.string("notification_id")?,
                customer_id: r.string("customer_id")?,
                kind: NotificationKind::from_symbol(symbol).ok_or(AvroError::Invalid {
                    field: "kind",
                    reason: format!("unknown symbol {symbol}"),
                })?,
                message: r.string("message")?,
            }
        }
    };
    Ok(Envelope { meta, event })
}
