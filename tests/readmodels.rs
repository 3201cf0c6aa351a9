//! The query side end to end: the saga's five processors, the projector and the query API as
//! binaries against the real local stack. The read models are checked against the services'
//! own state and against the events on the topics.
//!
//! Helpers that read the models back are in `readmodels/reads.rs`; the tests of rebuilding,
//! switching and dropping copies in `readmodels/copies.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use troupe_e2e::Saga;
use troupe_events::{samples, EventType};
use troupe_runtime::config::{KafkaConfig, RegistryConfig};
use troupe_runtime::publish::Publisher;
use troupe_runtime::topics::Topics;
use troupe_testkit::{stack, wait_until};
use uuid::Uuid;

#[path = "readmodels/copies.rs"]
mod copies;
#[path = "readmodels/reads.rs"]
mod reads;

use reads::{
    check_against_services, events_by_order, get, read_models, wait_caught_up, with_read_models,
};

#[tokio::test]
async fn after_a_mixed_run_the_read_models_match_every_order() {
    let saga = Saga::start(&[
        ("TROUPE_RESERVATION_TTL_MS", "15000"),
        ("TROUPE_PAYMENT_REVIEW_MS", "20000"),
        ("TROUPE_TIMER_INTERVAL_MS", "100"),
    ])
    .await;
    let url = with_read_models(&saga, 5000).await;
    // Two projector instances feed this one copy (one group, the partitions shared): the CQL
    // writes are fenced by write time and the stock by compare-and-set, so they cannot undo
    // each other's work.
    saga.spawn_projector(&saga.id, 1, None).await;
    saga.seed_stock(400, 11).await;
    saga.place(400, 11, 0);
    let snapshot = saga.settle(400, Duration::from_secs(150)).await;
    wait_caught_up(&saga, &format!("troupe-projector-{}", saga.id)).await;
    for number in [0, 1] {
        let consumed = troupe_e2e::metric_sum(
            &saga.metrics("projector", number).await,
            "troupe_messages_consumed_total",
        );
        assert!(consumed > 0, "projector {number} consumed nothing");
    }

    let events = events_by_order(&saga).await;
    let models = read_models(&url, snapshot.orders.keys()).await;
    check_against_services(&snapshot, &models, &events);

    // Analytics: revenue and units of every confirmed order, cancellations per reason.
    let (status, stats) = get(&format!("{url}/stats/daily")).await;
    assert_eq!(status, 200);
    let revenue: i64 = stats["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["confirmed_revenue_minor"].as_i64().unwrap())
        .sum();
    let units: i64 = stats["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["units"].as_i64().unwrap())
        .sum();
    let confirmed: Vec<&Uuid> = snapshot
        .orders
        .iter()
        .filter(|(_, o)| o.status.as_str() == "CONFIRMED")
        .map(|(id, _)| id)
        .collect();
    assert!(!confirmed.is_empty());
    assert_eq!(
        revenue,
        confirmed
            .iter()
            .map(|id| snapshot.orders[id].total)
            .sum::<i64>()
    );
    let expected_units: i64 = confirmed
        .iter()
        .flat_map(|id| models[id].0["lines"].as_array().unwrap().clone())
        .map(|l| l["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(units, expected_units);
    let mut cancellations: BTreeMap<String, i64> = BTreeMap::new();
    for c in stats["cancellations"].as_array().unwrap() {
        *cancellations
            .entry(c["reason"].as_str().unwrap().to_owned())
            .or_default() += c["orders"].as_i64().unwrap();
    }
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for order in snapshot
        .orders
        .values()
        .filter(|o| o.status.as_str() == "CANCELLED")
    {
        *expected.entry(order.reason.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(cancellations, expected);

    // Stock as the inventory holds it.
    for (sku, held) in &snapshot.stock {
        let (status, level) = get(&format!("{url}/stock/{sku}")).await;
        assert_eq!(status, 200, "{sku}: {level}");
        assert_eq!(
            (
                level["available"].as_i64(),
                level["reserved"].as_i64(),
                level["sold"].as_i64()
            ),
            (
                Some(i64::from(held.available)),
                Some(i64::from(held.reserved)),
                Some(i64::from(held.shipped))
            ),
            "{sku}"
        );
    }

    // Every customer sees their orders, and the summary in CQL (the listing) is the summary in
    // PostgreSQL (the order endpoint), field for field.
    for (id, row) in &snapshot.orders {
        let (status, page) = get(&format!(
            "{url}/customers/{}/orders?limit=100",
            row.customer_id
        ))
        .await;
        assert_eq!(status, 200);
        let listed = page["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["order_id"].as_str() == Some(id.to_string().as_str()))
            .unwrap_or_else(|| panic!("{id} not listed for {}: {page}", row.customer_id));
        assert_eq!(listed, &models[id].0, "{id}: CQL and PostgreSQL disagree");
    }
}

#[tokio::test]
async fn replaying_every_event_again_changes_nothing() {
    let saga = Saga::start(&[]).await;
    let url = with_read_models(&saga, 5000).await;
    saga.seed_stock(150, 12).await;
    saga.place(150, 12, 0);
    let snapshot = saga.settle(150, Duration::from_secs(120)).await;
    wait_caught_up(&saga, &format!("troupe-projector-{}", saga.id)).await;
    let before = read_models(&url, snapshot.orders.keys()).await;
    let (_, stats_before) = get(&format!("{url}/stats/daily")).await;

    // A second projector on the same copy, in a new group: every event applied again.
    let replay = format!("{}-replay", saga.id);
    saga.spawn_projector(&saga.id, 1, Some(&replay)).await;
    wait_caught_up(&saga, &replay).await;

    assert_eq!(read_models(&url, snapshot.orders.keys()).await, before);
    assert_eq!(get(&format!("{url}/stats/daily")).await.1, stats_before);
}

#[tokio::test]
async fn reads_wait_for_a_position_and_errors_are_json() {
    let saga = Saga::start(&[]).await;
    let url = with_read_models(&saga, 3000).await;
    let kafka = KafkaConfig {
        bootstrap: stack().kafka_bootstrap.clone(),
        ..KafkaConfig::from_env()
    };
    let registry = RegistryConfig::at(&stack().schema_registry_url);
    let publisher =
        Publisher::new(&kafka, &registry, Topics::with_prefix(saga.prefix.clone())).unwrap();

    // The projector has joined its group and reads: a first order shows up.
    let first = Uuid::now_v7();
    publisher
        .publish(&samples::sample(EventType::PlaceOrder, first))
        .await
        .unwrap();
    wait_until(
        "the projector to apply a first order",
        Duration::from_secs(60),
        || {
            let url = format!("{url}/orders/{first}");
            async move { (get(&url).await.0 == 200).then_some(()) }
        },
    )
    .await;

    // Read-your-writes: the read waits until the projector applied what was just published.
    let order_id = Uuid::now_v7();
    let position = publisher
        .publish(&samples::sample(EventType::PlaceOrder, order_id))
        .await
        .unwrap();
    let (status, order) = get(&format!("{url}/orders/{order_id}?min_position={position}")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["order_id"], order_id.to_string());
    assert_eq!(order["customer_id"], "cust-1");
    let (status, timeline) = get(&format!(
        "{url}/orders/{order_id}/timeline?min_position={position}"
    ))
    .await;
    assert_eq!(status, 200, "{timeline}");

    // A position never reached: the wait ends with a 504 and says how far the model got.
    let started = std::time::Instant::now();
    let far = format!(
        "{}/{}@{}",
        position.topic,
        position.partition,
        position.offset + 1_000_000
    );
    let (status, error) = get(&format!("{url}/orders/{order_id}?min_position={far}")).await;
    assert_eq!(status, 504, "{error}");
    assert_eq!(error["code"], "not_applied_yet");
    assert!(started.elapsed() >= Duration::from_millis(3000));

    for (path, expected, code) in [
        ("/orders/not-a-uuid", 400, "bad_request"),
        ("/orders/not-a-uuid/timeline", 400, "bad_request"),
        (&format!("/orders/{}", Uuid::now_v7()), 404, "not_found"),
        (
            &format!("/orders/{}/timeline", Uuid::now_v7()),
            404,
            "not_found",
        ),
        ("/customers/c1/orders?limit=0", 400, "bad_request"),
        ("/customers/c1/orders?limit=abc", 400, "bad_request"),
        ("/customers/c1/orders?page=-1", 400, "bad_request"),
        ("/stock/no-such-sku", 404, "not_found"),
        (
            &format!("/orders/{order_id}?min_position=garbage"),
            400,
            "bad_request",
        ),
        ("/no/such/endpoint", 404, "not_found"),
    ] {
        let (status, body) = get(&format!("{url}{path}")).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert_eq!(body["code"], code, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }

    let (status, page) = get(&format!(
        "{url}/customers/cust-1/orders?limit=5&min_position={position}"
    ))
    .await;
    assert_eq!(status, 200, "{page}");
    let listed: Vec<&str> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&order_id.to_string().as_str()), "{page}");
    let (status, stats) = get(&format!("{url}/stats/daily")).await;
    assert_eq!(status, 200);
    assert!(stats["sales"].is_array() && stats["cancellations"].is_array());

    // The CLI reads through the API.
    let troupe = |args: &[&str], api: &str| {
        std::process::Command::new(troupe_testkit::binary("troupe"))
            .args(args)
            .envs(saga.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TROUPE_QUERY_URL", api)
            .output()
            .expect("run troupe")
    };
    let position_arg = position.to_string();
    let order_arg = order_id.to_string();
    let shown = troupe(
        &[
            "orders",
            "show",
            &order_arg,
            "--min-position",
            &position_arg,
        ],
        &url,
    );
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        text.contains(&order_arg) && text.contains("PlaceOrder") && text.contains("cust-1"),
        "{text}"
    );
    let listed = troupe(&["orders", "list", "--customer", "cust-1", "--json"], &url);
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&order_arg));
    let unknown_arg = Uuid::now_v7().to_string();
    let unknown = troupe(&["orders", "show", &unknown_arg], &url);
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no order") && stderr.contains("404"),
        "{stderr}"
    );
    let unreachable = troupe(&["orders", "show", &order_arg], "http://127.0.0.1:9");
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach the query API"), "{stderr}");

    // The API's own metrics count requests by route template and status.
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"troupe_query_requests_total{route="/orders/{id}",status="404"}"#,
        r#"troupe_query_requests_total{route="/orders/{id}",status="504"}"#,
        r#"troupe_query_requests_total{route="/customers/{id}/orders",status="400"}"#,
        r#"troupe_query_requests_total{route="unmatched",status="404"}"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert!(metrics.contains("troupe_query_request_seconds_bucket"));

    let (status, openapi) = get(&format!("{url}/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.1.0");
    for path in [
        "/orders/{id}",
        "/orders/{id}/timeline",
        "/customers/{id}/orders",
        "/stock/{sku}",
        "/stats/daily",
    ] {
        assert!(
            openapi["paths"][path]["get"].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}
