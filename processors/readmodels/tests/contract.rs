//! The read-model store contract: one scenario suite, run against PostgreSQL and against the
//! CQL server of the local stack (ScyllaDB when `TROUPE_SCYLLA_NODES` points at one). Every
//! scenario gets a fresh database or keyspace.

use troupe_events::domain::CancellationReason;
use troupe_events::{samples, Envelope, Event, EventType};
use troupe_readmodels::cql::CqlStore;
use troupe_readmodels::model::{self, Changes, Status, StockLevel};
use troupe_readmodels::pg::PgStore;
use troupe_readmodels::store::ReadStore;
use troupe_runtime::config::with_database;
use troupe_testkit::{stack, unique};
use uuid::Uuid;

async fn pg_store() -> PgStore {
    pg_store_named(&unique("troupe_contract")).await
}

async fn pg_store_named(database: &str) -> PgStore {
    let url = with_database(&stack().postgres_url, database);
    let store = PgStore::new(
        troupe_runtime::db::connect(&url, 4)
            .await
            .expect("postgres"),
    );
    store.prepare().await.expect("migrations");
    store
}

/// Drops a scenario's keyspaces once it has passed (a failed one keeps them to look at), so
/// that runs of the suite do not pile tables up on the shared node.
async fn drop_keyspaces(keyspaces: &[&str]) {
    for keyspace in keyspaces {
        CqlStore::connect(&stack().scylla_nodes, keyspace)
            .await
            .expect("cql")
            .drop_keyspace()
            .await
            .expect("drop keyspace");
    }
}

async fn cql_store_named(keyspace: &str) -> CqlStore {
    let store = CqlStore::connect(&stack().scylla_nodes, keyspace)
        .await
        .expect("cql");
    store.prepare().await.expect("keyspace");
    store
}

/// The saga's happy path for one order, one event per step, a millisecond apart from `t0`,
/// each with the position it was read at.
fn lifecycle(order_id: Uuid, customer: &str, t0: i64) -> Vec<Changes> {
    let types = [
        EventType::PlaceOrder,
        EventType::OrderPlaced,
        EventType::StockReserved,
        EventType::PaymentAuthorized,
        EventType::ShipmentScheduled,
        EventType::OrderConfirmed,
        EventType::StockCommitted,
        EventType::CustomerNotified,
    ];
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut envelope = samples::sample(*t, order_id);
            envelope.meta.occurred_at = t0 + i as i64;
            set_customer(&mut envelope, customer);
            changes(&envelope, &format!("t/0@{i}"))
        })
        .collect()
}

fn set_customer(envelope: &mut Envelope, customer: &str) {
    match &mut envelope.event {
        Event::PlaceOrder { customer_id, .. }
        | Event::OrderPlaced { customer_id, .. }
        | Event::OrderConfirmed { customer_id, .. }
        | Event::OrderCancelled { customer_id, .. }
        | Event::StockReserved { customer_id, .. }
        | Event::PaymentAuthorized { customer_id, .. }
        | Event::CustomerNotified { customer_id, .. } => *customer_id = customer.to_owned(),
        _ => {}
    }
}

fn changes(envelope: &Envelope, position: &str) -> Changes {
    let mut changes = model::changes(envelope);
    changes.position = position.to_owned();
    changes
}

/// Everything a store answers about one order and its customer.
async fn snapshot<S: ReadStore>(store: &S, order_id: Uuid, customer: &str) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        store.order(order_id).await.unwrap(),
        store.timeline(order_id).await.unwrap(),
        store.customer_orders(customer, 10, 0).await.unwrap(),
        store.stock("sku-kettle").await.unwrap(),
        store.daily_stats().await.unwrap(),
    )
}

async fn a_lifecycle_fills_the_summary_and_the_timeline<S: ReadStore>(store: S) {
    let order_id = Uuid::now_v7();
    let batch = lifecycle(order_id, "cust-a", 1_700_000_000_000);
    store.apply(&batch).await.unwrap();

    let order = store.order(order_id).await.unwrap().expect("summary");
    assert_eq!(order.status, Some(Status::Confirmed));
    assert_eq!(order.customer_id.as_deref(), Some("cust-a"));
    assert_eq!(order.lines.len(), 2);
    assert_eq!(order.total_minor, Some(2 * 1999 + 3450));
    assert_eq!(order.currency.as_deref(), Some("EUR"));
    assert_eq!(order.promotion_code.as_deref(), Some("SPRING-10"));
    for step in [
        "requested_at",
        "placed_at",
        "reserved_at",
        "paid_at",
        "shipped_at",
        "confirmed_at",
        "committed_at",
        "notified_at",
    ] {
        assert!(order.steps.contains_key(step), "{step} missing: {order:?}");
    }
    assert_eq!(order.steps["placed_at"], 1_700_000_000_001);
    assert_eq!(order.last_position.as_deref(), Some("t/0@7"));

    let timeline = store.timeline(order_id).await.unwrap();
    let types: Vec<&str> = timeline.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "PlaceOrder",
            "OrderPlaced",
            "StockReserved",
            "PaymentAuthorized",
            "ShipmentScheduled",
            "OrderConfirmed",
            "StockCommitted",
            "CustomerNotified"
        ]
    );
    assert!(store.order(Uuid::now_v7()).await.unwrap().is_none());
    assert!(store.timeline(Uuid::now_v7()).await.unwrap().is_empty());
}

async fn replaying_everything_twice_changes_nothing<S: ReadStore>(store: S) {
    let order_id = Uuid::now_v7();
    let batch = lifecycle(order_id, "cust-r", 1_700_000_000_000);
    store.apply(&batch).await.unwrap();
    let once = snapshot(&store, order_id, "cust-r").await;
    store.apply(&batch).await.unwrap();
    for changes in &batch {
        store.apply(std::slice::from_ref(changes)).await.unwrap();
    }
    assert_eq!(snapshot(&store, order_id, "cust-r").await, once);
}

async fn an_older_event_never_overwrites_a_newer_one<S: ReadStore>(store: S) {
    // The same order applied newest first must end as it does applied in order.
    let forward_id = Uuid::now_v7();
    let forward = lifecycle(forward_id, "cust-o", 1_700_000_000_000);
    store.apply(&forward).await.unwrap();
    let backward_id = Uuid::now_v7();
    let mut backward = lifecycle(backward_id, "cust-o", 1_700_000_000_000);
    backward.reverse();
    store.apply(&backward).await.unwrap();

    let a = store.order(forward_id).await.unwrap().unwrap();
    let b = store.order(backward_id).await.unwrap().unwrap();
    assert_eq!(b.status, Some(Status::Confirmed), "{b:?}");
    assert_eq!(
        (a.status, &a.customer_id, &a.lines, a.total_minor, &a.steps),
        (b.status, &b.customer_id, &b.lines, b.total_minor, &b.steps)
    );
    assert_eq!(
        a.last_position, b.last_position,
        "the newest event's position wins"
    );
    let types =
        |t: Vec<model::TimelineEntry>| t.into_iter().map(|e| e.event_type).collect::<Vec<_>>();
    assert_eq!(
        types(store.timeline(forward_id).await.unwrap()),
        types(store.timeline(backward_id).await.unwrap())
    );

    // A late PaymentAuthorized after the cancellation leaves it cancelled.
    let cancelled = Uuid::now_v7();
    let mut cancel = samples::sample(EventType::OrderCancelled, cancelled);
    cancel.meta.occurred_at = 2;
    let mut paid = samples::sample(EventType::PaymentAuthorized, cancelled);
    paid.meta.occurred_at = 1;
    store
        .apply(&[changes(&cancel, "t/1@1"), changes(&paid, "t/2@0")])
        .await
        .unwrap();
    let order = store.order(cancelled).await.unwrap().unwrap();
    assert_eq!(order.status, Some(Status::Cancelled));
    assert!(order.reason.is_some());
}

async fn stock_moves_are_applied_once_per_event<S: ReadStore>(store: S) {
    let adjust = |delta, set_to| Envelope {
        meta: troupe_events::Metadata::origin(Uuid::nil(), "test", 0),
        event: Event::StockAdjusted {
            sku: "sku-kettle".into(),
            delta,
            set_to,
        },
    };
    let add = changes(&adjust(10, None), "a/0@0");
    let reserve = changes(
        &samples::sample(EventType::StockReserved, Uuid::now_v7()),
        "i/0@0",
    );
    let commit = changes(
        &samples::sample(EventType::StockCommitted, Uuid::now_v7()),
        "i/0@1",
    );
    for _ in 0..3 {
        store
            .apply(&[add.clone(), reserve.clone(), commit.clone()])
            .await
            .unwrap();
    }
    // +10, reserve 2, commit 2 — each once.
    assert_eq!(
        store.stock("sku-kettle").await.unwrap(),
        Some(StockLevel {
            available: 8,
            reserved: 0,
            sold: 2
        })
    );
    store
        .apply(&[changes(&adjust(0, Some(3)), "a/0@1")])
        .await
        .unwrap();
    assert_eq!(
        store.stock("sku-kettle").await.unwrap().unwrap().available,
        3
    );
    assert_eq!(store.stock("sku-unknown").await.unwrap(), None);
}

async fn a_customers_orders_are_newest_first_and_paged<S: ReadStore>(store: S) {
    let customer = unique("cust");
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = Uuid::now_v7();
        store
            .apply(&lifecycle(id, &customer, 1_700_000_000_000 + i * 1000)[..2])
            .await
            .unwrap();
        ids.push(id);
    }
    ids.reverse();
    let page = |orders: Vec<model::OrderSummary>| {
        orders.into_iter().map(|o| o.order_id).collect::<Vec<_>>()
    };
    assert_eq!(
        page(store.customer_orders(&customer, 2, 0).await.unwrap()),
        ids[0..2]
    );
    assert_eq!(
        page(store.customer_orders(&customer, 2, 1).await.unwrap()),
        ids[2..4]
    );
    assert_eq!(
        page(store.customer_orders(&customer, 2, 2).await.unwrap()),
        ids[4..5]
    );
    assert!(store
        .customer_orders(&customer, 2, 3)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .customer_orders("nobody", 2, 0)
        .await
        .unwrap()
        .is_empty());
}

async fn positions_only_move_forward<S: ReadStore>(store: S) {
    assert_eq!(store.position("t", 0).await.unwrap(), None);
    store
        .record_positions(&[("t".into(), 0, 10), ("t".into(), 1, 3)])
        .await
        .unwrap();
    store.record_positions(&[("t".into(), 0, 5)]).await.unwrap();
    assert_eq!(store.position("t", 0).await.unwrap(), Some(10));
    assert_eq!(store.position("t", 1).await.unwrap(), Some(3));
    assert_eq!(store.position("u", 0).await.unwrap(), None);
}

async fn daily_stats_sum_confirmed_lines_and_count_cancellations<S: ReadStore>(store: S) {
    let confirmed = Uuid::now_v7();
    let mut batch = lifecycle(confirmed, "cust-s", 1_700_000_000_000);
    // A second order line of the same sku counts into the same sku.
    for changes in &mut batch {
        if let Some(lines) = changes.summary.as_mut().and_then(|s| s.lines.as_mut()) {
            lines.push(model::Line {
                sku: "sku-kettle".into(),
                quantity: 1,
                unit_price_minor: 1000,
            });
        }
    }
    let cancelled = Uuid::now_v7();
    let mut cancel = samples::sample(EventType::OrderCancelled, cancelled);
    cancel.meta.occurred_at = 1_700_000_000_000;
    if let Event::OrderCancelled { reason, .. } = &mut cancel.event {
        *reason = CancellationReason::OutOfStock;
    }
    batch.push(changes(&cancel, "o/0@9"));
    for _ in 0..2 {
        store.apply(&batch).await.unwrap();
    }
    let stats = store.daily_stats().await.unwrap();
    let kettle = stats
        .sales
        .iter()
        .find(|s| s.sku == "sku-kettle")
        .expect("kettle");
    assert_eq!(kettle.day, "2023-11-14");
    assert_eq!(
        (kettle.units, kettle.confirmed_revenue_minor),
        (3, 2 * 1999 + 1000)
    );
    let teapot = stats
        .sales
        .iter()
        .find(|s| s.sku == "sku-teapot")
        .expect("teapot");
    assert_eq!((teapot.units, teapot.confirmed_revenue_minor), (1, 3450));
    assert_eq!(stats.cancellations.len(), 1);
    assert_eq!(stats.cancellations[0].reason, "OUT_OF_STOCK");
    assert_eq!(stats.cancellations[0].orders, 1);
}

/// Two writers on one copy (two projector instances of one group, each re-reading what the
/// other had before a rebalance) apply overlapping batches in opposite orders at the same time,
/// and end exactly where one writer applying everything in order ends.
async fn two_writers_on_one_copy_end_as_one_writer<S: ReadStore>(a: S, b: S, reference: S) {
    let customer = unique("cust-w");
    let restock = Envelope {
        meta: troupe_events::Metadata::origin(Uuid::nil(), "test", 0),
        event: Event::StockAdjusted {
            sku: "sku-kettle".into(),
            delta: 1000,
            set_to: None,
        },
    };
    let mut all = vec![changes(&restock, "a/0@0")];
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = Uuid::now_v7();
        ids.push(id);
        let mut order = lifecycle(id, &customer, 1_700_000_000_000 + i * 100);
        if i % 4 == 3 {
            // Every fourth order is cancelled after its payment, racing its confirmation.
            let mut cancel = samples::sample(EventType::OrderCancelled, id);
            cancel.meta.occurred_at = 1_700_000_000_000 + i * 100 + 4;
            set_customer(&mut cancel, &customer);
            order.truncate(4);
            order.push(changes(&cancel, &format!("o/{i}@9")));
        }
        all.extend(order);
    }
    reference.apply(&all).await.unwrap();

    let mut reversed = all.clone();
    reversed.reverse();
    // As the projector does, a batch that fails (a deadlock between the two writers'
    // transactions, on PostgreSQL) is applied again.
    async fn apply_retrying<S: ReadStore>(store: &S, batch: &[Changes]) {
        for attempt in 1.. {
            match store.apply(batch).await {
                Ok(()) => return,
                Err(error) if attempt < 10 => eprintln!("retrying a batch: {error}"),
                Err(error) => panic!("a batch failed 10 times: {error}"),
            }
        }
    }
    let forward = async {
        for chunk in all.chunks(7) {
            apply_retrying(&a, chunk).await;
        }
    };
    let backward = async {
        for chunk in reversed.chunks(5) {
            apply_retrying(&b, chunk).await;
        }
    };
    futures::join!(forward, backward);

    for id in &ids {
        assert_eq!(
            a.order(*id).await.unwrap(),
            reference.order(*id).await.unwrap(),
            "summary of {id}"
        );
        assert_eq!(
            a.timeline(*id).await.unwrap(),
            reference.timeline(*id).await.unwrap()
        );
    }
    assert_eq!(
        a.customer_orders(&customer, 50, 0).await.unwrap(),
        reference.customer_orders(&customer, 50, 0).await.unwrap()
    );
    for sku in ["sku-kettle", "sku-teapot"] {
        assert_eq!(
            a.stock(sku).await.unwrap(),
            reference.stock(sku).await.unwrap(),
            "{sku}"
        );
    }
    assert_eq!(
        a.daily_stats().await.unwrap(),
        reference.daily_stats().await.unwrap()
    );
}

macro_rules! contract {
    ($($scenario:ident),* $(,)?) => {
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(pg_store().await).await;
                }
            )*
        }
        mod cql {
            use super::*;
            $(
                #[tokio::test]
                async fn $scenario() {
                    let keyspace = unique("troupe_contract");
                    super::$scenario(cql_store_named(&keyspace).await).await;
                    drop_keyspaces(&[&keyspace]).await;
                }
            )*
        }
    };
}

contract!(
    a_lifecycle_fills_the_summary_and_the_timeline,
    replaying_everything_twice_changes_nothing,
    an_older_event_never_overwrites_a_newer_one,
    stock_moves_are_applied_once_per_event,
    a_customers_orders_are_newest_first_and_paged,
    positions_only_move_forward,
    daily_stats_sum_confirmed_lines_and_count_cancellations,
);

mod two_writers {
    use super::*;

    #[tokio::test]
    async fn postgres() {
        let shared = unique("troupe_contract");
        two_writers_on_one_copy_end_as_one_writer(
            pg_store_named(&shared).await,
            pg_store_named(&shared).await,
            pg_store().await,
        )
        .await;
    }

    #[tokio::test]
    async fn cql() {
        let (shared, reference) = (unique("troupe_contract"), unique("troupe_contract"));
        two_writers_on_one_copy_end_as_one_writer(
            cql_store_named(&shared).await,
            cql_store_named(&shared).await,
            cql_store_named(&reference).await,
        )
        .await;
        drop_keyspaces(&[&shared, &reference]).await;
    }
}
