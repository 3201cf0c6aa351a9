//! The saga end to end: the five processor binaries against the real local stack, each test on
//! topics and databases of its own. Every test ends by asserting the system's invariants once
//! it settles (see `Snapshot::violations`).

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use troupe_e2e::{assert_every_outcome, metric_sum, Saga, TIMERS};
use troupe_events::{samples, topics, EventType};
use troupe_runtime::codec::Codec;
use troupe_runtime::config::{KafkaConfig, RegistryConfig};
use troupe_runtime::publish::Publisher;
use troupe_runtime::topics::Topics;
use troupe_testkit::stack;
use uuid::Uuid;

fn publisher(saga: &Saga) -> Publisher {
    let kafka = KafkaConfig {
        bootstrap: stack().kafka_bootstrap.clone(),
        ..KafkaConfig::from_env()
    };
    let registry = RegistryConfig::at(&stack().schema_registry_url);
    Publisher::new(&kafka, &registry, Topics::with_prefix(saga.prefix.clone())).unwrap()
}

/// A consumer reading `base_topics` of this saga from the beginning, outside any group.
fn reader(saga: &Saga, base_topics: &[&str]) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_bootstrap)
        .set("group.id", format!("{}-reader-{}", saga.id, Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for base in base_topics {
        let topic = format!("{}{base}", saga.prefix);
        let partitions = if *base == topics::DEADLETTER { 1 } else { 6 };
        for partition in 0..partitions {
            assignment
                .add_partition_offset(&topic, partition, Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    consumer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_run_of_2000_orders_keeps_every_invariant() {
    let saga = Saga::start(&TIMERS).await;
    saga.seed_stock(2000, 11).await;
    saga.place(2000, 11, 0);
    let snapshot = saga.settle(2000, Duration::from_secs(240)).await;
    assert_every_outcome(&snapshot);
    println!("outcomes: {:?}", snapshot.outcomes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_change_nothing() {
    let saga = Saga::start(&TIMERS).await;
    saga.seed_stock(400, 12).await;
    saga.place(400, 12, 0);

    // While the saga runs, re-publish every message on every saga topic, byte for byte: each
    // processor receives each event (at least) twice.
    let all = [
        topics::ORDER_COMMANDS,
        topics::ORDER_EVENTS,
        topics::INVENTORY_EVENTS,
        topics::INVENTORY_ADJUSTMENTS,
        topics::PAYMENT_EVENTS,
        topics::SHIPPING_EVENTS,
    ];
    let publisher = publisher(&saga);
    let consumer = reader(&saga, &all);
    let mut republished = 0;
    // Each distinct message once: its copy (same bytes) is read back too, and is not copied again.
    let mut copied = std::collections::HashSet::new();
    // Caught up when nothing new arrives for 3 s (a bounded read, not a wait on the processors).
    while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(3), consumer.recv()).await
    {
        if !copied.insert(message.payload().unwrap_or_default().to_vec()) {
            continue;
        }
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        publisher
            .publish_raw(
                message.topic(),
                key.as_deref(),
                message.payload().unwrap_or_default(),
                &[],
            )
            .await
            .unwrap();
        republished += 1;
    }
    assert!(
        republished > 1000,
        "only {republished} messages re-published"
    );

    let snapshot = saga.settle(400, Duration::from_secs(180)).await;
    assert_every_outcome(&snapshot);
    let mut duplicates = 0u64;
    for service in troupe_e2e::SERVICES {
        duplicates += metric_sum(
            &saga.metrics(service, 0).await,
            "troupe_events_duplicate_total",
        );
    }
    assert!(
        duplicates >= 400,
        "the inboxes skipped only {duplicates} duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_run_loses_and_doubles_nothing() {
    let saga = std::sync::Arc::new(Saga::start(&TIMERS).await);
    saga.seed_stock(1000, 13).await;
    let placing = {
        let saga = saga.clone();
        tokio::task::spawn_blocking(move || saga.place(1000, 13, 100))
    };
    // 12 kills of random processors at random moments while orders flow; each is restarted at
    // once, as a supervisor would.
    let mut rng = 0x5EED_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(300 + next() % 500)).await;
        let service = troupe_e2e::SERVICES[(next() % 5) as usize];
        saga.kill9(service, 0);
        saga.spawn(service, 0);
    }
    placing.await.unwrap();
    let snapshot = saga.settle(1000, Duration::from_secs(240)).await;
    assert_every_outcome(&snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_partitions() {
    let saga = Saga::start(&TIMERS).await;
    for service in troupe_e2e::SERVICES {
        saga.spawn(service, 1);
    }
    for service in troupe_e2e::SERVICES {
        saga.wait_healthy(service, 1).await;
    }
    saga.seed_stock(600, 14).await;
    saga.place(600, 14, 0);
    let snapshot = saga.settle(600, Duration::from_secs(180)).await;
    assert_every_outcome(&snapshot);
    // Both members of each group consumed: the partitions were shared.
    for service in troupe_e2e::SERVICES {
        for number in [0, 1] {
            let consumed = metric_sum(
                &saga.metrics(service, number).await,
                "troupe_messages_consumed_total",
            );
            assert!(consumed > 0, "{service}-{number} consumed nothing");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dead_lettered_while_good_traffic_flows() {
    let saga = Saga::start(&TIMERS).await;
    let publisher = publisher(&saga);
    let topic = format!("{}{}", saga.prefix, topics::ORDER_COMMANDS);
    let codec = Codec::new(
        &stack().schema_registry_url,
        &Topics::with_prefix(saga.prefix.clone()),
    );

    let good = codec
        .encode(&samples::sample(EventType::PlaceOrder, Uuid::now_v7()))
        .await
        .unwrap();
    let mut unknown_id = vec![0u8, 0x00, 0x0F, 0x42, 0x3F];
    unknown_id.extend_from_slice(&good[5..]);
    let truncated = good[..good.len() / 2].to_vec();
    let mut invalid = samples::sample(EventType::PlaceOrder, Uuid::now_v7());
    invalid.meta.producer.clear();
    let invalid = codec.encode(&invalid).await.unwrap();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (
            "no_confluent_framing",
            b"{\"order\": \"not avro\"}".to_vec(),
        ),
        ("unknown_schema_id", unknown_id),
        ("undecodable_avro", truncated),
        ("invalid_event", invalid),
    ];
    let mut positions = Vec::new();
    for (reason, bytes) in &bad {
        let position = publisher
            .publish_raw(&topic, Some("bad-key"), bytes, &[])
            .await
            .unwrap();
        positions.push((*reason, position, bytes.clone()));
    }

    // Good traffic after the bad: it all completes.
    saga.seed_stock(60, 15).await;
    saga.place(60, 15, 0);
    saga.settle(60, Duration::from_secs(120)).await;

    let consumer = reader(&saga, &[topics::DEADLETTER]);
    let mut seen = Vec::new();
    while seen.len() < bad.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a dead letter within 30 s")
            .unwrap();
        let get = |name: &str| troupe_e2e::header(&message, name);
        seen.push((
            get("troupe.dlq.reason"),
            get("troupe.dlq.processor"),
            get("troupe.dlq.topic"),
            get("troupe.dlq.partition"),
            get("troupe.dlq.offset"),
            get("troupe.dlq.error"),
            message.payload().unwrap_or_default().to_vec(),
        ));
    }
    for (reason, position, bytes) in &positions {
        let letter = seen
            .iter()
            .find(|s| s.0 == *reason)
            .unwrap_or_else(|| panic!("no dead letter with reason {reason}: {seen:?}"));
        assert_eq!(letter.1, "order");
        assert_eq!(letter.2, topic);
        assert_eq!(letter.3, position.partition.to_string());
        assert_eq!(letter.4, position.offset.to_string());
        assert!(!letter.5.is_empty(), "an error text for {reason}");
        assert_eq!(
            &letter.6, bytes,
            "the original bytes, unchanged, for {reason}"
        );
    }
    let reasons: BTreeSet<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    let metrics = saga.metrics("order", 0).await;
    assert_eq!(metric_sum(&metrics, "troupe_dead_letters_total"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_connections_killed_mid_run_are_retried_without_loss() {
    let saga = std::sync::Arc::new(Saga::start(&TIMERS).await);
    saga.seed_stock(600, 16).await;
    let placing = {
        let saga = saga.clone();
        tokio::task::spawn_blocking(move || saga.place(600, 16, 100))
    };
    // While orders flow, cut every connection to this saga's five databases, 15 times: open
    // transactions fail mid-batch, and the processors must retry them.
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", stack().postgres_url))
        .await
        .unwrap();
    let databases: Vec<String> = troupe_e2e::SERVICES
        .iter()
        .map(|s| saga.database(s))
        .collect();
    let mut killed = 0i64;
    for _ in 0..15 {
        // Pacing of the fault injection across the run, not a wait for anything.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
        )
        .bind(&databases)
        .fetch_one(&admin)
        .await
        .unwrap();
        killed += n;
    }
    placing.await.unwrap();
    assert!(killed > 15, "only {killed} connections were cut");
    let snapshot = saga.settle(600, Duration::from_secs(240)).await;
    assert_every_outcome(&snapshot);
    let mut retries = 0u64;
    for service in troupe_e2e::SERVICES {
        retries += metric_sum(&saga.metrics(service, 0).await, "troupe_retries_total");
    }
    assert!(retries > 0, "no processor retried anything");
}

/// A request that fails the same way every time it is applied (here a trigger in the order
/// service's database refuses its customer with a check violation, as a handler bug or a
/// constraint would) is parked after bounded retries; the orders published right behind it, on
/// the same partitions, complete, and the processor never restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_parked_and_the_orders_behind_it_complete() {
    let saga = Saga::start(&TIMERS).await;
    let url = troupe_runtime::config::with_database(&stack().postgres_url, &saga.database("order"));
    let orders_db = sqlx::PgPool::connect(&url).await.unwrap();
    for statement in [
        "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN
           IF NEW.customer_id = 'cust-poison' THEN
             RAISE EXCEPTION 'this customer breaks a rule' USING ERRCODE = 'check_violation';
           END IF;
           RETURN NEW;
         END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON orders
         FOR EACH ROW EXECUTE FUNCTION poison()",
    ] {
        sqlx::query(statement).execute(&orders_db).await.unwrap();
    }
    let baseline = metric_sum(&saga.metrics("order", 0).await, "troupe_dead_letters_total");
    assert_eq!(baseline, 0);

    let publisher = publisher(&saga);
    let codec = Codec::new(
        &stack().schema_registry_url,
        &Topics::with_prefix(saga.prefix.clone()),
    );
    let poison_id = Uuid::now_v7();
    let mut poison = samples::sample(EventType::PlaceOrder, poison_id);
    if let troupe_events::Event::PlaceOrder { customer_id, .. } = &mut poison.event {
        *customer_id = "cust-poison".into();
    }
    let topic = format!("{}{}", saga.prefix, topics::ORDER_COMMANDS);
    let position = publisher
        .publish_raw(
            &topic,
            Some(&poison_id.to_string()),
            &codec.encode(&poison).await.unwrap(),
            &[],
        )
        .await
        .unwrap();

    saga.seed_stock(120, 17).await;
    saga.place(120, 17, 0);
    let snapshot = saga.settle(120, Duration::from_secs(120)).await;
    assert_every_outcome(&snapshot);

    let consumer = reader(&saga, &[topics::DEADLETTER]);
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("the poison parked within 30 s")
        .unwrap();
    let get = |name: &str| troupe_e2e::header(&message, name);
    assert_eq!(get("troupe.dlq.reason"), "handler_failed");
    assert_eq!(get("troupe.dlq.processor"), "order");
    assert_eq!(get("troupe.dlq.topic"), topic);
    assert_eq!(get("troupe.dlq.offset"), position.offset.to_string());
    assert!(
        get("troupe.dlq.error").contains("this customer breaks a rule"),
        "{}",
        get("troupe.dlq.error")
    );
    // The same process counted the dead letter and the retries: it did not restart.
    let metrics = saga.metrics("order", 0).await;
    assert_eq!(metric_sum(&metrics, "troupe_dead_letters_total"), 1);
    assert!(
        metric_sum(&metrics, "troupe_retries_total") >= 3,
        "{metrics}"
    );
}
