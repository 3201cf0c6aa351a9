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
//!
//! The table and the chain are here; the steps themselves, and the field helpers they share, are
//! in `steps.rs`.

use apache_avro::types::Value;

use crate::avro::{AvroError, Result};
use crate::domain::EventType;

use self::steps::{
    add_no_promotion_code, amount_to_minor, order_placed_v2_to_v3, total_to_minor, Fields,
};

#[cfg(test)]
mod fixtures;
mod steps;

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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rstest::rstest;
    use uuid::Uuid;

    use super::fixtures::{meta, order_placed, written};
    use super::*;
    use crate::avro::decode_version;
    use crate::catalog::{self, SchemaFile, SCHEMAS};
    use crate::domain::*;
    use crate::samples;

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
