//! The upcasting steps, one function per change of shape, and [`Fields`], the record access
//! they share.

use apache_avro::types::Value;

use crate::avro::{AvroError, Result};
use crate::domain::to_minor;

/// A record's fields, taken out by name.
pub(super) struct Fields(pub(super) Vec<(String, Value)>);

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

pub(super) fn add_no_promotion_code(fields: Fields) -> Result<Vec<(String, Value)>> {
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

pub(super) fn amount_to_minor(old: Fields) -> Result<Vec<(String, Value)>> {
    double_to_minor(old, "amount", "amount_minor")
}

pub(super) fn total_to_minor(old: Fields) -> Result<Vec<(String, Value)>> {
    double_to_minor(old, "total", "total_minor")
}

pub(super) fn order_placed_v2_to_v3(mut old: Fields) -> Result<Vec<(String, Value)>> {
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
    use rstest::rstest;

    use super::*;
    use crate::avro::to_version_value;
    use crate::catalog;
    use crate::domain::*;
    use crate::upcast::fixtures::{order_placed, payment, place_order, stock_reserved};
    use crate::upcast::upcaster;

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
}
