//! One example of every event, for tests, benchmarks and `troupe produce --raw`.

use uuid::Uuid;

use crate::domain::*;

fn address(country: &str) -> Address {
    Address {
        name: "Ada Lovelace".into(),
        street: "12 St James's Square".into(),
        city: "London".into(),
        postal_code: "SW1Y 4JH".into(),
        country: country.into(),
    }
}

fn lines() -> Vec<OrderLine> {
    vec![
        OrderLine {
            sku: "sku-kettle".into(),
            quantity: 2,
            unit_price: 1999,
        },
        OrderLine {
            sku: "sku-teapot".into(),
            quantity: 1,
            unit_price: 3450,
        },
    ]
}

fn stock_lines() -> Vec<SkuQuantity> {
    vec![SkuQuantity {
        sku: "sku-kettle".into(),
        quantity: 2,
    }]
}

fn money(minor: i64) -> Money {
    Money {
        minor,
        currency: "EUR".into(),
    }
}

/// An example event of the given type, about `order_id`.
pub fn sample(event_type: EventType, order_id: Uuid) -> Envelope {
    let event = match event_type {
        EventType::PlaceOrder => Event::PlaceOrder {
            customer_id: "cust-1".into(),
            lines: lines(),
            currency: "EUR".into(),
            shipping_address: address("GB"),
            promotion_code: Some("SPRING-10".into()),
        },
        EventType::OrderCancellationRequested => Event::OrderCancellationRequested {
            reason: "changed my mind".into(),
        },
        EventType::OrderPlaced => Event::OrderPlaced {
            customer_id: "cust-1".into(),
            lines: lines(),
            currency: "EUR".into(),
            shipping_address: address("GB"),
            total: 7448,
            promotion_code: Some("SPRING-10".into()),
        },
        EventType::OrderRejected => Event::OrderRejected {
            customer_id: "cust-1".into(),
            reason: "order has no lines".into(),
        },
        EventType::OrderConfirmed => Event::OrderConfirmed {
            customer_id: "cust-1".into(),
            shipment_id: "ship-1".into(),
        },
        EventType::OrderCancelled => Event::OrderCancelled {
            customer_id: "cust-1".into(),
            reason: CancellationReason::PaymentDeclined,
            detail: "credit limit exceeded".into(),
        },
        EventType::StockReserved => Event::StockReserved {
            reservation_id: "res-1".into(),
            lines: stock_lines(),
            customer_id: "cust-1".into(),
            total: money(7448),
            expires_at: 1_700_000_030_000,
        },
        EventType::StockRejected => Event::StockRejected {
            shortages: vec![Shortage {
                sku: "sku-kettle".into(),
                requested: 2,
                available: 1,
            }],
        },
        EventType::StockReservationExpired => Event::StockReservationExpired {
            reservation_id: "res-1".into(),
        },
        EventType::StockReleased => Event::StockReleased {
            reservation_id: "res-1".into(),
            lines: stock_lines(),
        },
        EventType::StockCommitted => Event::StockCommitted {
            reservation_id: "res-1".into(),
            lines: stock_lines(),
        },
        EventType::StockAdjusted => Event::StockAdjusted {
            sku: "sku-kettle".into(),
            delta: 10,
            set_to: None,
        },
        EventType::PaymentAuthorized => Event::PaymentAuthorized {
            payment_id: "pay-1".into(),
            customer_id: "cust-1".into(),
            amount: money(7448),
        },
        EventType::PaymentDeclined => Event::PaymentDeclined {
            customer_id: "cust-1".into(),
            reason: "credit limit exceeded".into(),
        },
        EventType::PaymentRefunded => Event::PaymentRefunded {
            payment_id: "pay-1".into(),
            customer_id: "cust-1".into(),
            amount: money(7448),
        },
        EventType::ShipmentScheduled => Event::ShipmentScheduled {
            shipment_id: "ship-1".into(),
            carrier: "troupe-post".into(),
            country: "GB".into(),
        },
        EventType::ShipmentFailed => Event::ShipmentFailed {
            reason: "no carrier serves AQ".into(),
        },
        EventType::ShipmentCancelled => Event::ShipmentCancelled {
            shipment_id: "ship-1".into(),
        },
        EventType::CustomerNotified => Event::CustomerNotified {
            notification_id: "note-1".into(),
            customer_id: "cust-1".into(),
            kind: NotificationKind::Confirmation,
            message: "your order is on its way".into(),
        },
    };
    let order_id = if event_type == EventType::StockAdjusted {
        Uuid::nil()
    } else {
        order_id
    };
    Envelope {
        meta: Metadata {
            event_id: Uuid::now_v7(),
            order_id,
            correlation_id: order_id,
            causation_id: Some(Uuid::now_v7()),
            occurred_at: 1_700_000_000_000,
            producer: "samples".into(),
        },
        event,
    }
}

/// The sample of `event_type` less what version `version` of its schema cannot carry (a
/// promotion code before v2): what a producer pinned to that version sends.
pub fn representable(event_type: EventType, version: u32) -> Envelope {
    let mut envelope = sample(
        event_type,
        Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
    );
    envelope.meta.event_id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
    envelope.meta.causation_id = Some(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003));
    envelope.meta.occurred_at = 1_767_225_600_000;
    if version == 1 {
        if let Event::PlaceOrder { promotion_code, .. }
        | Event::OrderPlaced { promotion_code, .. } = &mut envelope.event
        {
            *promotion_code = None;
        }
    }
    envelope
}

#[cfg(test)]
mod tests {
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::writer::datum::GenericDatumWriter;
    use apache_avro::Schema;
    use rstest::rstest;

    use super::*;
    use crate::{avro, catalog, validate::validate};

    fn all_types() -> Vec<EventType> {
        EventType::ALL.to_vec()
    }

    /// Every event: domain → Avro value → bytes with its current schema → value → domain.
    #[rstest]
    fn every_event_round_trips_through_its_schema(#[values(all_types())] types: Vec<EventType>) {
        for event_type in types {
            let envelope = sample(event_type, Uuid::now_v7());
            validate(&envelope).unwrap_or_else(|e| panic!("{event_type:?}: {e}"));
            let schema = Schema::parse_str(catalog::current(event_type).text).unwrap();
            let value = avro::to_value(&envelope);
            let bytes = GenericDatumWriter::builder(&schema)
                .build()
                .unwrap()
                .write_value_to_vec(value)
                .unwrap_or_else(|e| panic!("{event_type:?} does not fit its schema: {e}"));
            let decoded = GenericDatumReader::builder(&schema)
                .build()
                .unwrap()
                .read_value(&mut bytes.as_slice())
                .unwrap();
            let back = avro::from_value(event_type.record_name(), &decoded).unwrap();
            assert_eq!(back, envelope, "{event_type:?}");
        }
    }

    #[test]
    fn records_of_the_wrong_shape_are_errors_not_panics() {
        let wrong = apache_avro::types::Value::Record(vec![(
            "metadata".into(),
            apache_avro::types::Value::Int(3),
        )]);
        assert!(avro::from_value("troupe.orders.OrderPlaced", &wrong).is_err());
        assert!(avro::from_value("troupe.orders.Nope", &wrong).is_err());
        assert!(avro::from_value(
            "troupe.orders.OrderPlaced",
            &apache_avro::types::Value::Null
        )
        .is_err());
    }

    #[rstest]
    #[case::nil_order(|e: &mut Envelope| e.meta.order_id = Uuid::nil(), "order_id")]
    #[case::no_producer(|e: &mut Envelope| e.meta.producer.clear(), "producer")]
    #[case::bad_currency(|e: &mut Envelope| if let Event::PaymentAuthorized { amount, .. } = &mut e.event { amount.currency = "euro".into() }, "currency")]
    #[case::negative_amount(|e: &mut Envelope| if let Event::PaymentAuthorized { amount, .. } = &mut e.event { amount.minor = -1 }, "negative")]
    fn invalid_events_are_caught(#[case] spoil: fn(&mut Envelope), #[case] expected: &str) {
        let mut envelope = sample(EventType::PaymentAuthorized, Uuid::now_v7());
        spoil(&mut envelope);
        let error = validate(&envelope).unwrap_err();
        assert!(error.contains(expected), "{error}");
    }

    proptest::proptest! {
        /// Money survives the v1 double: any amount up to a billion, to the cent.
        #[test]
        fn money_survives_the_v1_double(minor in 0i64..100_000_000_000) {
            proptest::prop_assert_eq!(crate::domain::to_minor(crate::domain::to_major(minor)), minor);
        }
    }
}
