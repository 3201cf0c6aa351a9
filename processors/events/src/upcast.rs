//! Upcasters: each turns a record of one published schema version into a record of the next,
//! so that handlers only ever see the current version.
//!
//! They work on Avro values, before the mapping to domain types (the wire stays apart from the
//! domain), and have the shape cqrs-es gives them: [`Upcaster::can_upcast`] says whether one
//! applies to an (event type, writer version), [`Upcaster::upcast`] applies it. [`to_current`]
//! composes them into the chain from any version to the current one.
//!
//! An upcaster is needed whenever Avro resolution alone would not give the right current value:
//! a changed meaning (money as minor units), a reshape, a new record name. A field added with a
//! default needs none for Avro, but troupe decodes every version with its own writer schema
//! (never resolved into the current one), so each step still has a small upcaster that adds it.

use apache_avro::types::Value;

use crate::avro::{AvroError, Result};
use crate::domain::{to_minor, EventType};

/// A record's fields of one version into those of the next.
type Step = fn(Fields) -> Result<Vec<(String, Value)>>;

/// One step: a record of `event_type` version `from` into version `from + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: EventType,
    /// The version it reads; it writes `from + 1`.
    pub from: u32,
    /// What the step changes, in a few words.
    pub change: &'static str,
    step: Step,
}

impl Upcaster {
    /// Whether this upcaster reads records of `event_type` written with `version`.
    pub fn can_upcast(&self, event_type: EventType, version: u32) -> bool {
        self.event_type == event_type && self.from == version
    }

    /// Turns a record of version `from` into one of version `from + 1`.
    pub fn upcast(&self, value: Value) -> Result<Value> {
        let fields = match value {
            Value::Record(fields) => fields,
            other => return Err(AvroError::NotARecord(format!("{other:?}"))),
        };
        (self.step)(Fields(fields)).map(Value::Record)
    }
}

/// Every upcaster, one per (event type, version) that has a successor.
pub const UPCASTERS: &[Upcaster] = &[
    Upcaster {
        event_type: EventType::PlaceOrder,
        from: 1,
        change: "adds promotion_code, none",
        step: add_no_promotion_code,
    },
    Upcaster {
        event_type: EventType::OrderPlaced,
        from: 1,
        change: "adds promotion_code, none",
        step: add_no_promotion_code,
    },
    Upcaster {
        event_type: EventType::OrderPlaced,
        from: 2,
        change: "money in minor units with its currency, the recipient out of the address, \
                 record troupe.orders.v3.OrderPlaced",
        step: order_placed_v2_to_v3,
    },
    Upcaster {
        event_type: EventType::PaymentAuthorized,
        from: 1,
        change: "amount (a major-unit double) becomes amount_minor",
        step: amount_to_minor,
    },
    Upcaster {
        event_type: EventType::PaymentRefunded,
        from: 1,
        change: "amount (a major-unit double) becomes amount_minor",
        step: amount_to_minor,
    },
    Upcaster {
        event_type: EventType::StockReserved,
        from: 1,
        change: "total (a major-unit double) becomes total_minor",
        step: total_to_minor,
    },
];

/// The upcaster for records of `event_type` written with `version`, if that is not current.
pub fn upcaster(event_type: EventType, version: u32) -> Option<&'static Upcaster> {
    UPCASTERS.iter().find(|u| u.can_upcast(event_type, version))
}

/// Upcasts a record of `event_type` written with `version` to the current version.
pub fn to_current(event_type: EventType, version: u32, mut value: Value) -> Result<Value> {
    let current = crate::catalog::current(event_type).version;
    let mut at = version;
    while at < current {
        let step = upcaster(event_type, at).ok_or(AvroError::Invalid {
            field: "version",
            reason: format!("no upcaster from {} v{at}", event_type.name()),
        })?;
        value = step.upcast(value)?;
        at += 1;
    }
    Ok(value)
}

/// A record's fields, taken out by name.
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn take(&mut self, field: &'static str) -> Result<Value> {
        let index = self
            .0
            .iter()
            .position(|(name, _)| name == field)
            .ok_or(AvroError::Missing(field))?;
        Ok(self.0.remove(index).1)
    }

    fn record(&mut self, field: &'static str) -> Result<Fields> {
        match self.take(field)? {
            Value::Record(fields) => Ok(Fields(fields)),
            other => Err(wrong(field, &other)),
        }
    }

    /// A major-unit double as minor units, rounded to the nearest one.
    fn minor(&mut self, field: &'static str) -> Result<Value> {
        let major = match self.take(field)? {
            Value::Double(d) => d,
            Value::Float(f) => f64::from(f),
            other => return Err(wrong(field, &other)),
        };
        // Beyond 2^53 a double no longer holds every whole number of cents.
        if !major.is_finite() || major.abs() * 100.0 > 9_007_199_254_740_992.0 {
            return Err(AvroError::Invalid {
                field,
                reason: format!("{major} is not an amount in minor units"),
            });
        }
        Ok(Value::Long(to_minor(major)))
    }
}

fn wrong(field: &'static str, value: &Value) -> AvroError {
    AvroError::WrongType {
        field,
        found: format!("{value:?}").chars().take(60).collect(),
    }
}

fn field(name: &str, value: Value) -> (String, Value) {
    (name.to_owned(), value)
}

fn add_no_promotion_code(fields: Fields) -> Result<Vec<(String, Value)>> {
    let mut fields = fields.0;
    fields.push(field(
        "promotion_code",
        Value::Union(0, Box::new(Value::Null)),
    ));
    Ok(fields)
}

/// Replaces the major-unit double `major` by `minor`, in minor units, where it stood.
fn double_to_minor(
    mut old: Fields,
    major: &'static str,
    minor: &'static str,
) -> Result<Vec<(String, Value)>> {
    let at = old
        .0
        .iter()
        .position(|(name, _)| name == major)
        .ok_or(AvroError::Missing(major))?;
    let value = old.minor(major)?;
    old.0.insert(at, field(minor, value));
    Ok(old.0)
}

fn amount_to_minor(old: Fields) -> Result<Vec<(String, Value)>> {
    double_to_minor(old, "amount", "amount_minor")
}

fn total_to_minor(old: Fields) -> Result<Vec<(String, Value)>> {
    double_to_minor(old, "total", "total_minor")
}

fn order_placed_v2_to_v3(mut old: Fields) -> Result<Vec<(String, Value)>> {
    let metadata = old.take("metadata")?;
    let customer_id = old.take("customer_id")?;
    let lines = match old.take("lines")? {
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                let Value::Record(fields) = item else {
                    return Err(wrong("lines", &item));
                };
                let mut line = Fields(fields);
                Ok(Value::Record(vec![
                    field("sku", line.take("sku")?),
                    field("quantity", line.take("quantity")?),
                    field("unit_price_minor", line.minor("unit_price")?),
                ]))
            })
            .collect::<Result<Vec<_>>>()?,
        other => return Err(wrong("lines", &other)),
    };
    let currency = old.take("currency")?;
    let mut address = old.record("shipping_address")?;
    let total = Value::Record(vec![
        field("amount_minor", old.minor("total")?),
        field("currency", currency),
    ]);
    Ok(vec![
        field("metadata", metadata),
        field("customer_id", customer_id),
        field("lines", Value::Array(lines)),
        field("total", total),
        field("recipient", address.take("name")?),
        field(
            "shipping_address",
            Value::Record(vec![
                field("street", address.take("street")?),
                field("city", address.take("city")?),
                field("postal_code", address.take("postal_code")?),
                field("country", address.take("country")?),
            ]),
        ),
        field("promotion_code", old.take("promotion_code")?),
    ])
}

#[cfg(test)]
mod tests {
    use apache_avro::writer::datum::GenericDatumWriter;
    use proptest::prelude::*;
    use rstest::rstest;
    use uuid::Uuid;

    use super::*;
    use crate::avro::{decode_version, to_version_value};
    use crate::catalog::{self, SchemaFile, SCHEMAS};
    use crate::domain::*;
    use crate::samples;

    /// The bytes apache-avro writes for `envelope` as version `file` has it.
    fn written(envelope: &Envelope, file: &SchemaFile) -> Vec<u8> {
        GenericDatumWriter::builder(file.schema())
            .build()
            .unwrap()
            .write_value_to_vec(to_version_value(envelope, file.version))
            .unwrap()
    }

    fn meta() -> Metadata {
        Metadata {
            event_id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            correlation_id: Uuid::from_u128(2),
            causation_id: Some(Uuid::from_u128(3)),
            occurred_at: 1_700_000_000_000,
            producer: "test".into(),
        }
    }

    fn order_placed(unit_price: i64, promotion_code: Option<&str>) -> Envelope {
        Envelope {
            meta: meta(),
            event: Event::OrderPlaced {
                customer_id: "cust-1".into(),
                lines: vec![
                    OrderLine {
                        sku: "sku-01".into(),
                        quantity: 3,
                        unit_price,
                    },
                    OrderLine {
                        sku: "sku-02".into(),
                        quantity: 1,
                        unit_price: 5,
                    },
                ],
                currency: "EUR".into(),
                shipping_address: Address {
                    name: "Ada Lovelace".into(),
                    street: "12 Analytical Row".into(),
                    city: "London".into(),
                    postal_code: "N1 9GU".into(),
                    country: "GB".into(),
                },
                total: 3 * unit_price + 5,
                promotion_code: promotion_code.map(str::to_owned),
            },
        }
    }

    fn payment(authorized: bool, minor: i64) -> Envelope {
        let amount = Money {
            minor,
            currency: "EUR".into(),
        };
        let (payment_id, customer_id) = ("pay-1".to_owned(), "cust-1".to_owned());
        Envelope {
            meta: meta(),
            event: if authorized {
                Event::PaymentAuthorized {
                    payment_id,
                    customer_id,
                    amount,
                }
            } else {
                Event::PaymentRefunded {
                    payment_id,
                    customer_id,
                    amount,
                }
            },
        }
    }

    fn stock_reserved(minor: i64) -> Envelope {
        Envelope {
            meta: meta(),
            event: Event::StockReserved {
                reservation_id: "res-1".into(),
                lines: vec![SkuQuantity {
                    sku: "sku-01".into(),
                    quantity: 2,
                }],
                customer_id: "cust-1".into(),
                total: Money {
                    minor,
                    currency: "EUR".into(),
                },
                expires_at: 1_700_000_030_000,
            },
        }
    }

    fn place_order(promotion_code: Option<&str>) -> Envelope {
        let Event::OrderPlaced {
            customer_id,
            lines,
            currency,
            shipping_address,
            ..
        } = order_placed(1999, None).event
        else {
            unreachable!()
        };
        Envelope {
            meta: meta(),
            event: Event::PlaceOrder {
                customer_id,
                lines,
                currency,
                shipping_address,
                promotion_code: promotion_code.map(str::to_owned),
            },
        }
    }

    /// One case per upcaster: the value an old producer wrote, and the value of the next
    /// version it must become, written by that version's own writer.
    #[rstest]
    #[case::place_order_v1(EventType::PlaceOrder, 1, place_order(None), place_order(None))]
    #[case::order_placed_v1(
        EventType::OrderPlaced,
        1,
        order_placed(1999, None),
        order_placed(1999, None)
    )]
    #[case::order_placed_v2(
        EventType::OrderPlaced,
        2,
        order_placed(1999, Some("SPRING-10")),
        order_placed(1999, Some("SPRING-10"))
    )]
    #[case::order_placed_v2_rounds_to_the_cent(
        EventType::OrderPlaced,
        2,
        order_placed(1, None),
        order_placed(1, None)
    )]
    #[case::payment_authorized_v1(
        EventType::PaymentAuthorized,
        1,
        payment(true, 1999),
        payment(true, 1999)
    )]
    #[case::payment_refunded_v1(
        EventType::PaymentRefunded,
        1,
        payment(false, 10_000_005),
        payment(false, 10_000_005)
    )]
    #[case::stock_reserved_v1(
        EventType::StockReserved,
        1,
        stock_reserved(7448),
        stock_reserved(7448)
    )]
    fn each_step_gives_the_next_version(
        #[case] event_type: EventType,
        #[case] from: u32,
        #[case] written_as_old: Envelope,
        #[case] expected: Envelope,
    ) {
        let step = upcaster(event_type, from).expect("an upcaster");
        let next = catalog::find(event_type, from + 1).unwrap();
        let upcast = step
            .upcast(to_version_value(&written_as_old, from))
            .unwrap();
        assert!(
            upcast.validate(next.schema()),
            "{} v{from} upcast is not a valid v{}: {upcast:?}",
            event_type.name(),
            from + 1
        );
        assert_eq!(upcast, to_version_value(&expected, from + 1));
    }

    #[test]
    fn every_older_version_has_exactly_one_upcaster_and_the_current_none() {
        for file in SCHEMAS {
            let found = UPCASTERS
                .iter()
                .filter(|u| u.can_upcast(file.event_type, file.version))
                .count();
            let expected = usize::from(!file.is_current());
            assert_eq!(found, expected, "{}", file.path);
        }
    }

    /// Every path to the current version: every event type, from every version, through the
    /// bytes apache-avro writes, back to the event.
    #[rstest]
    fn every_version_decodes_to_the_current_event(
        #[values(SCHEMAS.to_vec())] files: Vec<SchemaFile>,
    ) {
        for file in files {
            let envelope = samples::representable(file.event_type, file.version);
            let bytes = written(&envelope, &file);
            let decoded = decode_version(&file, None, &bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", file.path));
            assert_eq!(decoded, envelope, "{}", file.path);
        }
    }

    #[rstest]
    #[case::nan(f64::NAN)]
    #[case::infinite(f64::INFINITY)]
    #[case::beyond_exact_cents(1e14)]
    fn amounts_that_are_no_amount_are_invalid(#[case] amount: f64) {
        let mut value = to_version_value(&payment(true, 100), 1);
        if let Value::Record(fields) = &mut value {
            fields
                .iter_mut()
                .find(|(name, _)| name == "amount")
                .unwrap()
                .1 = Value::Double(amount);
        }
        let error = upcaster(EventType::PaymentAuthorized, 1)
            .unwrap()
            .upcast(value)
            .unwrap_err();
        assert!(
            matches!(
                error,
                AvroError::Invalid {
                    field: "amount",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_record_missing_a_field_is_an_error_naming_it() {
        let mut value = to_version_value(&order_placed(100, None), 2);
        if let Value::Record(fields) = &mut value {
            fields.retain(|(name, _)| name != "shipping_address");
        }
        let error = upcaster(EventType::OrderPlaced, 2)
            .unwrap()
            .upcast(value)
            .unwrap_err();
        assert_eq!(error, AvroError::Missing("shipping_address"));
    }

    #[test]
    fn an_older_reader_resolves_a_newer_writer_then_upcasts() {
        // What a release that knew OrderPlaced v1 only makes of a v2 datum: Avro resolution
        // drops the promotion code, then the upcasters take v1 to the current shape.
        let v1 = catalog::find(EventType::OrderPlaced, 1).unwrap();
        let v2 = catalog::find(EventType::OrderPlaced, 2).unwrap();
        let bytes = written(&order_placed(250, Some("SPRING-10")), v2);
        let decoded = decode_version(v2, Some(v1), &bytes).unwrap();
        assert_eq!(decoded, order_placed(250, None));
    }

    fn text() -> impl Strategy<Value = String> {
        "[ -~éß€]{0,16}"
    }

    fn evolved_event() -> impl Strategy<Value = (Envelope, Option<String>)> {
        let lines = proptest::collection::vec((text(), 1i32..1000, 0i64..100_000_000), 1..4);
        (
            any::<u128>(),
            lines,
            text(),
            proptest::option::of("[A-Z0-9-]{1,12}"),
            0i64..1_000_000_000_000,
            0usize..5,
        )
            .prop_map(|(id, lines, word, promotion_code, minor, pick)| {
                let mut meta = meta();
                meta.event_id = Uuid::from_u128(id | 1);
                let lines: Vec<OrderLine> = lines
                    .into_iter()
                    .map(|(sku, quantity, unit_price)| OrderLine {
                        sku,
                        quantity,
                        unit_price,
                    })
                    .collect();
                let address = Address {
                    name: word.clone(),
                    street: word.clone(),
                    city: word.clone(),
                    postal_code: word.clone(),
                    country: "NL".into(),
                };
                let amount = Money {
                    minor,
                    currency: "EUR".into(),
                };
                let event = match pick {
                    0 => Event::OrderPlaced {
                        customer_id: word,
                        total: lines
                            .iter()
                            .map(|l| i64::from(l.quantity) * l.unit_price)
                            .sum(),
                        lines,
                        currency: "EUR".into(),
                        shipping_address: address,
                        promotion_code: promotion_code.clone(),
                    },
                    1 => Event::PlaceOrder {
                        customer_id: word,
                        lines,
                        currency: "EUR".into(),
                        shipping_address: address,
                        promotion_code: promotion_code.clone(),
                    },
                    2 => Event::PaymentAuthorized {
                        payment_id: word.clone(),
                        customer_id: word,
                        amount,
                    },
                    3 => Event::StockReserved {
                        reservation_id: word.clone(),
                        lines: lines
                            .iter()
                            .map(|l| SkuQuantity {
                                sku: l.sku.clone(),
                                quantity: l.quantity,
                            })
                            .collect(),
                        customer_id: word,
                        total: amount,
                        expires_at: 1_700_000_030_000,
                    },
                    _ => Event::PaymentRefunded {
                        payment_id: word.clone(),
                        customer_id: word,
                        amount,
                    },
                };
                (Envelope { meta, event }, promotion_code)
            })
    }

    proptest! {
        /// Encode as any published version, decode, upcast: the current event, less only what
        /// the old version cannot carry (a promotion code before v2).
        #[test]
        fn old_versions_round_trip_to_the_current_value((envelope, code) in evolved_event()) {
            for file in catalog::versions(envelope.event_type()) {
                let bytes = written(&envelope, file);
                let decoded = decode_version(file, None, &bytes).unwrap();
                let mut expected = envelope.clone();
                if file.version == 1 {
                    match &mut expected.event {
                        Event::OrderPlaced { promotion_code, .. }
                        | Event::PlaceOrder { promotion_code, .. } => *promotion_code = None,
                        _ => {}
                    }
                }
                prop_assert_eq!(&decoded, &expected, "{} (promotion code {:?})", file.path, code);
            }
        }
    }
}
