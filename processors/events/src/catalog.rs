//! Every schema file troupe has published, embedded at compile time.
//!
//! Each event type has one or more versions, numbered from 1 in the order they were published.
//! Producers write the newest ([`current`]) unless pinned ([`Pins`]); readers accept every
//! version and upcast older ones ([`crate::upcast`]). A version's record name can differ from
//! the one before it when a change was too big for Avro resolution (`OrderPlaced` v3 is
//! `troupe.orders.v3.OrderPlaced`): it then has a subject of its own.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use apache_avro::Schema;

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

impl PartialEq for SchemaFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for SchemaFile {}

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

/// All schema files, in `topics.yaml` order, versions of one event oldest first.
pub const SCHEMAS: &[SchemaFile] = &[
    schema!(PlaceOrder, 1, "orders/PlaceOrder.v1.avsc"),
    schema!(PlaceOrder, 2, "orders/PlaceOrder.v2.avsc"),
    schema!(
        OrderCancellationRequested,
        1,
        "orders/OrderCancellationRequested.v1.avsc"
    ),
    schema!(OrderPlaced, 1, "orders/OrderPlaced.v1.avsc"),
    schema!(OrderPlaced, 2, "orders/OrderPlaced.v2.avsc"),
    schema!(OrderPlaced, 3, "orders/OrderPlaced.v3.avsc"),
    schema!(OrderRejected, 1, "orders/OrderRejected.v1.avsc"),
    schema!(OrderConfirmed, 1, "orders/OrderConfirmed.v1.avsc"),
    schema!(OrderCancelled, 1, "orders/OrderCancelled.v1.avsc"),
    schema!(StockReserved, 1, "inventory/StockReserved.v1.avsc"),
    schema!(StockReserved, 2, "inventory/StockReserved.v2.avsc"),
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
    schema!(PaymentAuthorized, 2, "payment/PaymentAuthorized.v2.avsc"),
    schema!(PaymentDeclined, 1, "payment/PaymentDeclined.v1.avsc"),
    schema!(PaymentRefunded, 1, "payment/PaymentRefunded.v1.avsc"),
    schema!(PaymentRefunded, 2, "payment/PaymentRefunded.v2.avsc"),
    schema!(ShipmentScheduled, 1, "shipping/ShipmentScheduled.v1.avsc"),
    schema!(ShipmentFailed, 1, "shipping/ShipmentFailed.v1.avsc"),
    schema!(ShipmentCancelled, 1, "shipping/ShipmentCancelled.v1.avsc"),
    schema!(CustomerNotified, 1, "notification/CustomerNotified.v1.avsc"),
];

/// What is computed once per file: the parsed schema, its canonical form, its record name.
struct Parsed {
    schema: Schema,
    canonical: String,
    record: String,
}

fn parsed() -> &'static [Parsed] {
    static PARSED: OnceLock<Vec<Parsed>> = OnceLock::new();
    PARSED.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|file| {
                let schema = Schema::parse_str(file.text).expect("embedded schemas parse");
                let record = match &schema {
                    Schema::Record(record) => record.name.fullname(None),
                    _ => panic!("{} is not a record", file.path),
                };
                Parsed {
                    canonical: schema.canonical_form(),
                    schema,
                    record,
                }
            })
            .collect()
    })
}

/// The version producers write for an event type: the newest.
///
/// Looked up in a table built once: every encode asks.
pub fn current(event_type: EventType) -> &'static SchemaFile {
    static CURRENT: OnceLock<Vec<&'static SchemaFile>> = OnceLock::new();
    CURRENT.get_or_init(|| {
        EventType::ALL
            .into_iter()
            .map(|t| versions(t).last().expect("every event type has a schema"))
            .collect()
    })[event_type.index()]
}

/// Every version of an event type, oldest first.
pub fn versions(event_type: EventType) -> impl DoubleEndedIterator<Item = &'static SchemaFile> {
    SCHEMAS.iter().filter(move |s| s.event_type == event_type)
}

/// Version `version` of an event type.
pub fn find(event_type: EventType, version: u32) -> Option<&'static SchemaFile> {
    versions(event_type).find(|s| s.version == version)
}

/// The file whose schema has this Parsing Canonical Form.
pub fn by_canonical_form(form: &str) -> Option<&'static SchemaFile> {
    SCHEMAS.iter().find(|file| file.canonical_form() == form)
}

/// The event type a record full name belongs to, whichever version named it.
pub fn event_type_of(record_name: &str) -> Option<EventType> {
    SCHEMAS
        .iter()
        .find(|file| file.record_name() == record_name)
        .map(|file| file.event_type)
}

impl SchemaFile {
    /// This file's position in [`SCHEMAS`], for tables indexed by catalog file.
    pub fn index(&self) -> usize {
        SCHEMAS
            .iter()
            .position(|file| file.path == self.path)
            .expect("a catalog file")
    }

    fn parsed(&self) -> &'static Parsed {
        &parsed()[self.index()]
    }

    /// The parsed schema.
    pub fn schema(&self) -> &'static Schema {
        &self.parsed().schema
    }

    /// The schema's Parsing Canonical Form: what two schemas must share to be the same schema,
    /// whatever their whitespace, docs or defaults.
    pub fn canonical_form(&self) -> &'static str {
        &self.parsed().canonical
    }

    /// The record's full name, e.g. `troupe.orders.OrderPlaced`.
    pub fn record_name(&self) -> &'static str {
        &self.parsed().record
    }

    /// Whether this is the newest version of its event type.
    pub fn is_current(&self) -> bool {
        current(self.event_type) == self
    }
}

/// Which version of each event type a process writes, and the newest it knows how to read.
///
/// By default both are the newest. Pinning what a producer writes lets a team roll a schema
/// change out consumers first (`TROUPE_WRITE_SCHEMA_VERSIONS`); limiting what a process knows
/// (`TROUPE_KNOWN_SCHEMA_VERSIONS`) makes it behave as a binary built before the newer
/// versions existed, which is how the rolling-upgrade tests run an "old release".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pins {
    write: BTreeMap<EventType, u32>,
    known: BTreeMap<EventType, u32>,
}

impl Pins {
    /// Parses the two settings, each a comma-separated list of `EventType=VERSION`, where
    /// `*=N` stands for every event type at its newest version no later than `N`.
    /// An empty string pins nothing.
    pub fn parse(write: &str, known: &str) -> Result<Pins, String> {
        let pins = Pins {
            write: parse_versions(write).map_err(|e| format!("write versions: {e}"))?,
            known: parse_versions(known).map_err(|e| format!("known versions: {e}"))?,
        };
        for event_type in EventType::ALL {
            if pins.writes(event_type).version > pins.knows(event_type) {
                return Err(format!(
                    "{} is written as v{} but only versions up to v{} are known",
                    event_type.name(),
                    pins.writes(event_type).version,
                    pins.knows(event_type)
                ));
            }
        }
        Ok(pins)
    }

    /// The schema this process writes events of `event_type` with.
    pub fn writes(&self, event_type: EventType) -> &'static SchemaFile {
        match self.write.get(&event_type) {
            Some(version) => find(event_type, *version).expect("checked by parse"),
            None => current(event_type),
        }
    }

    /// The newest version of `event_type` this process knows.
    pub fn knows(&self, event_type: EventType) -> u32 {
        self.known
            .get(&event_type)
            .copied()
            .unwrap_or_else(|| current(event_type).version)
    }

    /// Whether nothing is pinned.
    pub fn is_default(&self) -> bool {
        self.write.is_empty() && self.known.is_empty()
    }
}

fn parse_versions(text: &str) -> Result<BTreeMap<EventType, u32>, String> {
    let mut pinned = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, version) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?} is not EVENT=VERSION"))?;
        let version: u32 = version
            .trim()
            .parse()
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| format!("{entry:?}: the version is not a whole number from 1"))?;
        let name = name.trim();
        if name == "*" {
            for event_type in EventType::ALL {
                let newest = versions(event_type)
                    .rev()
                    .find(|file| file.version <= version)
                    .expect("every event type has a v1");
                pinned.insert(event_type, newest.version);
            }
            continue;
        }
        let event_type = EventType::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| format!("{name:?} is not an event type"))?;
        if find(event_type, version).is_none() {
            return Err(format!(
                "{name} has no version {version} (it has 1 to {})",
                current(event_type).version
            ));
        }
        pinned.insert(event_type, version);
    }
    Ok(pinned)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

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
        // Each file is listed under the record it declares.
        for (_, record) in topology.records() {
            for path in &record.schemas {
                let file = SCHEMAS.iter().find(|s| s.path == path).unwrap();
                assert_eq!(file.record_name(), record.record, "{path}");
            }
        }
    }

    #[test]
    fn versions_are_numbered_from_one_without_gaps_and_named_so() {
        for event_type in EventType::ALL {
            for (i, file) in versions(event_type).enumerate() {
                assert_eq!(file.version as usize, i + 1, "{}", file.path);
                assert!(
                    file.path
                        .ends_with(&format!("/{}.v{}.avsc", event_type.name(), file.version)),
                    "{}",
                    file.path
                );
            }
        }
    }

    #[rstest]
    fn every_schema_parses_and_names_its_event(#[values(SCHEMAS.to_vec())] files: Vec<SchemaFile>) {
        for file in files {
            let schema =
                Schema::parse_str(file.text).unwrap_or_else(|e| panic!("{}: {e}", file.path));
            let Schema::Record(record) = &schema else {
                panic!("{} is not a record", file.path);
            };
            assert_eq!(record.name.name(), file.event_type.name(), "{}", file.path);
            assert_eq!(event_type_of(file.record_name()), Some(file.event_type));
        }
    }

    #[test]
    fn no_two_versions_share_a_canonical_form() {
        for file in SCHEMAS {
            assert_eq!(
                by_canonical_form(file.canonical_form()),
                Some(file),
                "{} is indistinguishable on the wire from an earlier file",
                file.path
            );
        }
    }

    #[rstest]
    #[case::nothing("", "", &[])]
    #[case::one("OrderPlaced=1", "", &[(EventType::OrderPlaced, 1)])]
    #[case::a_release("*=1", "*=1", &[(EventType::OrderPlaced, 1), (EventType::PaymentAuthorized, 1)])]
    #[case::star_takes_the_newest_not_later("*=2", "", &[(EventType::OrderPlaced, 2), (EventType::PaymentAuthorized, 2), (EventType::OrderCancelled, 1)])]
    #[case::later_entries_win("*=1, PaymentRefunded=2", "", &[(EventType::PaymentRefunded, 2), (EventType::OrderPlaced, 1)])]
    fn pins_parse(#[case] write: &str, #[case] known: &str, #[case] expected: &[(EventType, u32)]) {
        let pins = Pins::parse(write, known).unwrap();
        for (event_type, version) in expected {
            assert_eq!(pins.writes(*event_type).version, *version, "{event_type:?}");
        }
        if write.is_empty() {
            for event_type in EventType::ALL {
                assert!(pins.writes(event_type).is_current());
            }
        }
    }

    #[rstest]
    #[case::no_equals("OrderPlaced", "", "is not EVENT=VERSION")]
    #[case::not_a_number("OrderPlaced=x", "", "not a whole number")]
    #[case::zero("OrderPlaced=0", "", "not a whole number")]
    #[case::unknown_type("OrderShipped=1", "", "\"OrderShipped\" is not an event type")]
    #[case::no_such_version("OrderPlaced=9", "", "OrderPlaced has no version 9 (it has 1 to 3)")]
    #[case::writes_what_it_does_not_know(
        "",
        "OrderPlaced=1",
        "written as v3 but only versions up to v1"
    )]
    fn bad_pins_say_why(#[case] write: &str, #[case] known: &str, #[case] expected: &str) {
        let error = Pins::parse(write, known).unwrap_err();
        assert!(error.contains(expected), "{error}");
    }
}
