//! Every schema file troupe has published, embedded at compile time.
//!
//! Producers write the current version of each record; the corpus of older versions is what
//! upcasters (and their tests) start from.

use crate::domain::EventType;

/// One `.avsc` file.
#[derive(Debug, Clone, Copy)]
pub struct SchemaFile {
    pub event_type: EventType,
    pub version: u32,
    /// Relative to `schemas/`.
    pub path: &'static str,
    pub text: &'static str,
}

macro_rules! schema {
    ($event:ident, $version:literal, $path:literal) => {
        SchemaFile {
            event_type: EventType::$event,
            version: $version,
            path: $path,
            text: include_str!(concat!("../../../schemas/", $path)),
        }
    };
}

/// All schema files, in `topics.yaml` order.
pub const SCHEMAS: &[SchemaFile] = &[
    schema!(PlaceOrder, 1, "orders/PlaceOrder.v1.avsc"),
    schema!(
        OrderCancellationRequested,
        1,
        "orders/OrderCancellationRequested.v1.avsc"
    ),
    schema!(OrderPlaced, 1, "orders/OrderPlaced.v1.avsc"),
    schema!(OrderRejected, 1, "orders/OrderRejected.v1.avsc"),
    schema!(OrderConfirmed, 1, "orders/OrderConfirmed.v1.avsc"),
    schema!(OrderCancelled, 1, "orders/OrderCancelled.v1.avsc"),
    schema!(StockReserved, 1, "inventory/StockReserved.v1.avsc"),
    schema!(StockRejected, 1, "inventory/StockRejected.v1.avsc"),
    schema!(
        StockReservationExpired,
        1,
        "inventory/StockReservationExpired.v1.avsc"
    ),
    schema!(StockReleased, 1, "inventory/StockReleased.v1.avsc"),
    schema!(StockCommitted, 1, "inventory/StockCommitted.v1.avsc"),
    schema!(StockAdjusted, 1, "inventory/StockAdjusted.v1.avsc"),
    schema!(PaymentAuthorized, 1, "payment/PaymentAuthorized.v1.avsc"),
    schema!(PaymentDeclined, 1, "payment/PaymentDeclined.v1.avsc"),
    schema!(PaymentRefunded, 1, "payment/PaymentRefunded.v1.avsc"),
    schema!(ShipmentScheduled, 1, "shipping/ShipmentScheduled.v1.avsc"),
    schema!(ShipmentFailed, 1, "shipping/ShipmentFailed.v1.avsc"),
    schema!(ShipmentCancelled, 1, "shipping/ShipmentCancelled.v1.avsc"),
    schema!(CustomerNotified, 1, "notification/CustomerNotified.v1.avsc"),
];

/// The version producers write for an event type: the newest.
pub fn current(event_type: EventType) -> &'static SchemaFile {
    SCHEMAS
        .iter()
        .filter(|s| s.event_type == event_type)
        .max_by_key(|s| s.version)
        .expect("every event type has a schema")
}

impl SchemaFile {
    /// The schema's Parsing Canonical Form, computed once per file: what two schemas must
    /// share to be the same schema, whatever their whitespace, docs or field order of keys.
    pub fn canonical_form(&self) -> &'static str {
        use std::sync::OnceLock;
        static FORMS: OnceLock<Vec<String>> = OnceLock::new();
        let forms = FORMS.get_or_init(|| {
            SCHEMAS
                .iter()
                .map(|file| {
                    apache_avro::Schema::parse_str(file.text)
                        .expect("embedded schemas parse")
                        .canonical_form()
                })
                .collect()
        });
        let index = SCHEMAS
            .iter()
            .position(|file| file.path == self.path)
            .expect("a catalog file");
        &forms[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    #[test]
    fn the_catalog_matches_topics_yaml() {
        let topology = Topology::parse(include_str!("../../../topics.yaml")).unwrap();
        let mut listed: Vec<&str> = topology
            .records()
            .flat_map(|(_, v)| v.schemas.iter().map(String::as_str))
            .collect();
        let mut embedded: Vec<&str> = SCHEMAS.iter().map(|s| s.path).collect();
        listed.sort_unstable();
        embedded.sort_unstable();
        assert_eq!(listed, embedded);
    }

    #[test]
    fn every_schema_parses_and_names_its_event() {
        for file in SCHEMAS {
            let schema = apache_avro::Schema::parse_str(file.text)
                .unwrap_or_else(|e| panic!("{}: {e}", file.path));
            let apache_avro::Schema::Record(record) = &schema else {
                panic!("{} is not a record", file.path);
            };
            assert_eq!(record.name.fullname(None), file.event_type.record_name());
        }
    }
}
