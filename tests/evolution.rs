//! Schema evolution end to end: the processor binaries against the real local stack, with
//! producers pinned to older schema versions (`TROUPE_WRITE_SCHEMA_VERSIONS`) and processes
//! that know only older versions (`TROUPE_KNOWN_SCHEMA_VERSIONS`: an "old release").
//!
//! - the stored corpus decodes through the real registry and codec;
//! - topics holding v1, v2 and v3 at once keep every invariant, and end in the same read models
//!   as an all-current run of the same orders;
//! - a rolling upgrade, consumers first and producers second, dead-letters nothing;
//! - the other order (producers first) does dead-letter: the rehearsal can fail.
//!
//! The helpers are in `evolution/`: payloads and the registry (`registry.rs`), driving and
//! observing a run (`run.rs`), the read models and their comparison (`read_models.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use troupe_e2e::{assert_every_outcome, finish, Saga, Snapshot, SERVICES, TIMERS};
use troupe_events::catalog::{self, SCHEMAS};
use troupe_events::{avro, topics};
use troupe_runtime::codec::Codec;
use troupe_runtime::topics::Topics;
use troupe_testkit::{repo_root, stack, unique, wait_until};
use uuid::Uuid;

#[path = "evolution/read_models.rs"]
mod read_models;

#[path = "evolution/registry.rs"]
mod registry;

#[path = "evolution/run.rs"]
mod run;

use read_models::{
    assert_same, read_models_once_caught_up, rewritten_as_current, with_read_models,
};
use registry::{as_json, framed, unhex};
use run::{assert_versions, counter, dead_letter_headers, versions_on, wait_orders};

const WRITE: &str = "TROUPE_WRITE_SCHEMA_VERSIONS";

const KNOWN: &str = "TROUPE_KNOWN_SCHEMA_VERSIONS";
/// A process of the release before any schema change: writes and knows v1 only.
const OLD_RELEASE: [(&str, &str); 2] = [(WRITE, "*=1"), (KNOWN, "*=1")];
/// The new release with its writes still pinned to v1: consumers upgraded first.
const NEW_WRITING_V1: [(&str, &str); 1] = [(WRITE, "*=1")];
/// A producer of the release in between: OrderPlaced v2.
const WRITING_V2: [(&str, &str); 1] = [(WRITE, "*=2")];

#[tokio::test]
async fn every_corpus_payload_decodes_through_the_registry() {
    let prefix = format!("{}.", unique("corpus"));
    let codec = Codec::new(
        &stack().schema_registry_url,
        &Topics::with_prefix(prefix.clone()),
    );
    for file in SCHEMAS {
        let path = repo_root()
            .join("schemas/corpus")
            .join(file.path.replace(".avsc", ".json"));
        let entry: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // The stored schema, registered as its producer registered it; the registry picks the id.
        let subject = format!("{prefix}{}-{}", file.event_type.topic(), file.record_name());
        let stored = unhex(entry["message_hex"].as_str().unwrap());
        let message = framed(&subject, &entry["schema"], &stored[5..]).await;

        let decoded = codec
            .decode_message(Some(&message))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.path));
        assert_eq!(
            as_json(&decoded.envelope),
            entry["expected"],
            "{}",
            file.path
        );
        let expected_upcast = (!file.is_current()).then_some(file.version);
        assert_eq!(decoded.upcast_from, expected_upcast, "{}", file.path);
    }
}

const ORDERS: u64 = 300;
const SEED: u64 = 31;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_mixing_v1_v2_and_v3_end_like_an_all_current_run() {
    // The mixed run: the order and payment services start on the old release's writers; a
    // third of the way in, a v2 order instance and a current payment instance take over from
    // them, and half way in a current order instance takes over from the v2 one (at 10 orders/s
    // that leaves it 15 s of orders: starting, joining and being assigned partitions took longer
    // than the 5 s that two thirds at 20 orders/s left, and then no v3 was written at all). Each joins,
    // then the one it replaces leaves: the cooperative-sticky assignor balances partition
    // counts, not topics, so a member merely joining may own no partition of the topic whose
    // events make it write. Events of every version still meet on the topics (orders in flight
    // carry the older writers' events). The storefront writes PlaceOrder v1 throughout (it is
    // upgraded last), so both runs get the same requests.
    let saga = Saga::start_with(
        &TIMERS,
        &[("order", &NEW_WRITING_V1), ("payment", &NEW_WRITING_V1)],
    )
    .await;
    let url = with_read_models(&saga).await;
    saga.seed_stock(ORDERS, SEED).await;
    let placing = saga.place_in_background(ORDERS, SEED, 10, &NEW_WRITING_V1);
    wait_orders(&saga, ORDERS as usize / 3).await;
    saga.spawn_with("order", 1, &WRITING_V2);
    saga.spawn("payment", 1);
    saga.wait_healthy("order", 1).await;
    saga.wait_healthy("payment", 1).await;
    saga.stop("order", 0).await;
    saga.stop("payment", 0).await;
    wait_orders(&saga, ORDERS as usize / 2).await;
    saga.spawn("order", 2);
    saga.wait_healthy("order", 2).await;
    saga.stop("order", 1).await;
    finish(placing).await;
    let mixed = saga.settle(ORDERS as usize, Duration::from_secs(180)).await;
    assert_every_outcome(&mixed);
    assert_eq!(saga.dead_letters(), 0, "nothing is dead-lettered");

    let versions = versions_on(&saga, &[topics::ORDER_EVENTS, topics::PAYMENT_EVENTS]).await;
    assert_versions(
        &versions,
        &[
            ("OrderPlaced", 1),
            ("OrderPlaced", 2),
            ("OrderPlaced", 3),
            ("PaymentAuthorized", 1),
            ("PaymentAuthorized", 2),
        ],
    );
    // The consumers counted what they upcast.
    let inventory = saga.metrics("inventory", 0).await;
    for from in ["1", "2"] {
        let upcast = counter(
            &inventory,
            "troupe_events_upcast_total",
            &[
                "event_type=\"OrderPlaced\"",
                &format!("from_version=\"{from}\""),
            ],
        );
        assert!(upcast > 0, "inventory upcast no OrderPlaced v{from}");
    }
    let mixed_models = read_models_once_caught_up(&saga, &url, &mixed, false).await;
    let mixed_history = read_models_once_caught_up(&saga, &url, &mixed, true).await;

    // The same history written with current versions only projects to the same read models,
    // path and all.
    let (copy, copy_url) = rewritten_as_current(&saga).await;
    let rewritten = read_models_once_caught_up(&copy, &copy_url, &mixed, true).await;
    assert_same(
        &mixed_history,
        &rewritten,
        "the history rewritten as current",
    );
    drop(copy);
    drop(saga);

    // The same orders with every process on the current versions.
    let saga = Saga::start(&TIMERS).await;
    let url = with_read_models(&saga).await;
    saga.seed_stock(ORDERS, SEED).await;
    finish(saga.place_in_background(ORDERS, SEED, 0, &NEW_WRITING_V1)).await;
    let current = saga.settle(ORDERS as usize, Duration::from_secs(180)).await;
    let current_versions = versions_on(&saga, &[topics::ORDER_EVENTS]).await;
    assert_eq!(
        current_versions
            .keys()
            .filter(|(t, _)| *t == "OrderPlaced")
            .collect::<Vec<_>>(),
        [&("OrderPlaced", 3)]
    );
    let current_models = read_models_once_caught_up(&saga, &url, &current, false).await;

    let outcome = |s: &Snapshot| -> BTreeMap<Uuid, (String, Option<String>, i64)> {
        s.orders
            .iter()
            .map(|(id, o)| {
                (
                    *id,
                    (o.status.as_str().to_owned(), o.reason.clone(), o.total),
                )
            })
            .collect()
    };
    assert_eq!(
        outcome(&mixed),
        outcome(&current),
        "the services' state differs"
    );
    assert_same(&mixed_models, &current_models, "the all-current run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_consumers_then_producers_dead_letters_nothing() {
    let old: Vec<(&str, &[(&str, &str)])> =
        SERVICES.iter().map(|s| (*s, &OLD_RELEASE[..])).collect();
    let saga = Saga::start_with(&TIMERS, &old).await;
    saga.seed_stock(300, 41).await;
    saga.seed_stock(100, 42).await;
    let placing = saga.place_in_background(300, 41, 10, &OLD_RELEASE);

    // 1. Consumers first: every service restarted, one at a time, as the new release that
    //    reads every version but still writes v1.
    wait_orders(&saga, 40).await;
    for service in SERVICES {
        saga.stop(service, 0).await;
        saga.spawn_with(service, 0, &NEW_WRITING_V1);
        saga.wait_healthy(service, 0).await;
    }
    // 2. Then producers: restarted again, writing the current versions.
    let known = saga.snapshot().await.orders.len();
    wait_orders(&saga, known + 30).await;
    for service in SERVICES {
        saga.stop(service, 0).await;
        saga.spawn(service, 0);
        saga.wait_healthy(service, 0).await;
    }
    finish(placing).await;
    // 3. The storefront last: PlaceOrder v2, some with a promotion code.
    finish(saga.place_in_background(100, 42, 0, &[])).await;

    let snapshot = saga.settle(400, Duration::from_secs(240)).await;
    assert_every_outcome(&snapshot);
    assert_eq!(saga.dead_letters(), 0, "nothing is dead-lettered");
    let versions = versions_on(
        &saga,
        &[
            topics::ORDER_COMMANDS,
            topics::ORDER_EVENTS,
            topics::INVENTORY_EVENTS,
            topics::PAYMENT_EVENTS,
        ],
    )
    .await;
    assert_versions(
        &versions,
        &[
            ("PlaceOrder", 1),
            ("PlaceOrder", 2),
            ("OrderPlaced", 1),
            ("OrderPlaced", 3),
            ("StockReserved", 1),
            ("StockReserved", 2),
            ("PaymentAuthorized", 1),
            ("PaymentAuthorized", 2),
        ],
    );
    // The promotion codes of the last batch made it into the orders placed.
    let promoted = saga
        .read_all(&[topics::ORDER_EVENTS])
        .await
        .into_iter()
        .flatten()
        .filter(|d| {
            matches!(
                &d.envelope.event,
                troupe_events::Event::OrderPlaced { promotion_code: Some(code), .. } if code == "SPRING-10"
            )
        })
        .count();
    assert!(promoted > 0, "no OrderPlaced carries a promotion code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_a_producer_before_its_consumers_dead_letters_what_they_cannot_read() {
    // The order service writes OrderPlaced v3 while its consumers are still the old release:
    // they cannot read the new record, and say so — nothing is lost, it waits in the
    // dead-letter topic for a redrive once they are upgraded.
    let old: Vec<(&str, &[(&str, &str)])> = SERVICES
        .iter()
        .filter(|s| **s != "order")
        .map(|s| (*s, &OLD_RELEASE[..]))
        .collect();
    let saga = Saga::start_with(&TIMERS, &old).await;
    saga.seed_stock(10, 51).await;
    finish(saga.place_in_background(10, 51, 0, &OLD_RELEASE)).await;
    wait_until(
        "the old consumers to dead-letter OrderPlaced v3",
        Duration::from_secs(60),
        || async {
            let processors: BTreeSet<String> = dead_letter_headers(&saga)
                .into_iter()
                .map(|(_, processor, _)| processor)
                .collect();
            (processors.len() == 4).then_some(processors)
        },
    )
    .await;
    for (reason, processor, error) in dead_letter_headers(&saga) {
        assert_eq!(reason, "invalid_event", "{processor}: {error}");
        assert!(
            error.contains("troupe.orders.v3.OrderPlaced")
                && error.contains("newer than this process knows"),
            "{processor}: {error}"
        );
    }

    // The rollout finished: the consumers upgraded, what they parked goes back, and every
    // order ends as if nothing had happened.
    for service in SERVICES.iter().filter(|s| **s != "order") {
        saga.stop(service, 0).await;
        saga.spawn(service, 0);
        saga.wait_healthy(service, 0).await;
    }
    let shown: Value =
        serde_json::from_slice(&saga.troupe(&["deadletters", "show", "0", "--json"]).stdout)
            .unwrap();
    assert_eq!(shown["event_type"], "OrderPlaced", "{shown}");
    assert!(
        shown["payload"]["value"]["metadata"]["order_id"].is_string(),
        "decoded through the registry: {shown}"
    );
    let parked = saga.dead_letters();
    let redrive: Value =
        serde_json::from_slice(&saga.troupe(&["deadletters", "redrive", "--json"]).stdout).unwrap();
    assert_eq!(
        redrive["moved"].as_array().unwrap().len() as i64,
        parked,
        "{redrive}"
    );
    let snapshot = saga.settle(10, Duration::from_secs(120)).await;
    assert_eq!(snapshot.orders.len(), 10);
    let left: Value =
        serde_json::from_slice(&saga.troupe(&["deadletters", "list", "--json"]).stdout).unwrap();
    assert_eq!(left, json!([]), "nothing is parked any more");
}

#[test]
fn a_bad_pin_stops_a_processor_and_the_cli_in_one_line() {
    for (program, args) in [
        ("troupe-order", &[][..]),
        ("troupe", &["schemas", "versions"][..]),
    ] {
        let output = std::process::Command::new(troupe_testkit::binary(program))
            .args(args)
            .env("TROUPE_WRITE_SCHEMA_VERSIONS", "OrderPlaced=7")
            .env("TROUPE_SCHEMA_REGISTRY_URL", &stack().schema_registry_url)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{program}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{program}: {stderr}");
        assert!(
            stderr.contains("OrderPlaced has no version 7 (it has 1 to 3)"),
            "{program}: {stderr}"
        );
    }
}

#[test]
fn schemas_versions_shows_what_a_pinned_process_writes() {
    let output = std::process::Command::new(troupe_testkit::binary("troupe"))
        .args(["schemas", "versions"])
        .env("TROUPE_WRITE_SCHEMA_VERSIONS", "OrderPlaced=2")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    // The row whose version column is `version` and record column `record`.
    let row = |record: &str, version: &str| {
        text.lines()
            .find(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words
                    .iter()
                    .position(|w| *w == version)
                    .is_some_and(|i| words.get(i + 1) == Some(&record))
            })
            .unwrap_or_else(|| panic!("no {record} {version} row:\n{text}"))
            .to_owned()
    };
    assert!(
        row("troupe.orders.OrderPlaced", "v2").contains(" yes "),
        "{text}"
    );
    assert!(
        !row("troupe.orders.v3.OrderPlaced", "v3").contains(" yes "),
        "{text}"
    );
    assert!(row("troupe.orders.v3.OrderPlaced", "v3").contains("(current)"));
    assert!(row("troupe.payment.PaymentAuthorized", "v1").contains("amount_minor"));
}

#[tokio::test]
async fn a_producer_troupe_did_not_build_is_read_by_resolution_or_dead_lettered() {
    use apache_avro::types::Value as Avro;
    let prefix = format!("{}.", unique("foreign"));
    let codec = Codec::new(
        &stack().schema_registry_url,
        &Topics::with_prefix(prefix.clone()),
    );
    let v2 = catalog::find(troupe_events::EventType::OrderPlaced, 2).unwrap();
    let envelope = troupe_events::samples::representable(v2.event_type, 2);

    // Another team's OrderPlaced: v2 plus a field of their own. Avro resolution reads it as v2,
    // and the upcaster takes it on to the current version.
    let mut schema: Value = serde_json::from_str(v2.text).unwrap();
    schema["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "channel", "type": "string", "default": "web"}));
    let parsed = apache_avro::Schema::parse_str(&schema.to_string()).unwrap();
    let Avro::Record(mut fields) = avro::to_version_value(&envelope, 2) else {
        unreachable!()
    };
    fields.push(("channel".into(), Avro::String("app".into())));
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&parsed)
        .build()
        .unwrap()
        .write_value_to_vec(Avro::Record(fields))
        .unwrap();
    let message = framed(
        &format!("{prefix}a-troupe.orders.OrderPlaced"),
        &schema,
        &datum,
    )
    .await;
    let decoded = codec.decode_message(Some(&message)).await.unwrap();
    assert_eq!(decoded.envelope, envelope);
    assert_eq!(decoded.upcast_from, Some(2));

    // One that no version can read (no lines, no total): dead-lettered, saying what is missing.
    let schema = json!({
        "type": "record", "name": "OrderPlaced", "namespace": "troupe.orders",
        "fields": [{"name": "customer_id", "type": "string"}]
    });
    let parsed = apache_avro::Schema::parse_str(&schema.to_string()).unwrap();
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&parsed)
        .build()
        .unwrap()
        .write_value_to_vec(Avro::Record(vec![(
            "customer_id".into(),
            Avro::String("cust-1".into()),
        )]))
        .unwrap();
    let message = framed(
        &format!("{prefix}b-troupe.orders.OrderPlaced"),
        &schema,
        &datum,
    )
    .await;
    match codec.decode_message(Some(&message)).await {
        Err(troupe_runtime::codec::DecodeError::Rejected { reason, detail }) => {
            assert_eq!(reason.code(), "invalid_event");
            assert!(detail.contains("metadata"), "{detail}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}
