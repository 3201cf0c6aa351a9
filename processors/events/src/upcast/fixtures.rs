//! Test fixtures: sample envelopes of the event types that have upcasters, and the bytes an
//! older writer makes of them.

use apache_avro::writer::datum::GenericDatumWriter;
use uuid::Uuid;

use crate::avro::to_version_value;
use crate::catalog::SchemaFile;
use crate::domain::*;

/// The bytes apache-avro writes for `envelope` as version `file` has it.
pub(super) fn written(envelope: &Envelope, file: &SchemaFile) -> Vec<u8> {
    GenericDatumWriter::builder(file.schema())
        .build()
        .unwrap()
        .write_value_to_vec(to_version_value(envelope, file.version))
        .unwrap()
}

pub(super) fn meta() -> Metadata {
    Metadata {
        event_id: Uuid::from_u128(1),
        order_id: Uuid::from_u128(2),
        correlation_id: Uuid::from_u128(2),
        causation_id: Some(Uuid::from_u128(3)),
        occurred_at: 1_700_000_000_000,
        producer: "test".into(),
    }
}

pub(super) fn order_placed(unit_price: i64, promotion_code: Option<&str>) -> Envelope {
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

pub(super) fn payment(authorized: bool, minor: i64) -> Envelope {
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

pub(super) fn stock_reserved(minor: i64) -> Envelope {
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

pub(super) fn place_order(promotion_code: Option<&str>) -> Envelope {
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
