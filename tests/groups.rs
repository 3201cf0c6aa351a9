//! Consumer groups on Apache Kafka: instances that die and never come back, a processor scaled
//! out and in during a run, and the lag a processor reports checked against the broker's own
//! offsets. No static membership anywhere: plain members, as a Deployment runs them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use troupe_e2e::{assert_every_outcome, metric_sum, Saga, SERVICES, TIMERS};
use troupe_events::topology::Topology;
use troupe_runtime::lag::LagProbe;
use troupe_testkit::{repo_root, wait_until};

/// Waits until instance `number` of `service` has consumed something: it owns partitions.
async fn wait_consuming(saga: &Saga, service: &str, number: usize) {
    wait_until(
        &format!("{service}-{number} to consume"),
        Duration::from_secs(60),
        || async {
            let consumed = metric_sum(
                &saga.metrics(service, number).await,
                "troupe_messages_consumed_total",
            );
            (consumed > 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_killed_and_never_restarted_lose_their_partitions_to_the_survivors() {
    let saga = Arc::new(Saga::start(&TIMERS).await);
    for service in SERVICES {
        saga.spawn(service, 1);
    }
    for service in SERVICES {
        saga.wait_healthy(service, 1).await;
    }
    saga.seed_stock(800, 31).await;
    let placing = {
        let saga = saga.clone();
        tokio::task::spawn_blocking(move || saga.place(800, 31, 100))
    };
    // Once every second instance holds a share of the partitions, kill it for good: no
    // restart, no static identity to come back to. The group must notice the silence (the
    // session timeout) and give its partitions to the survivors, or the orders on them never
    // finish.
    for service in SERVICES {
        wait_consuming(&saga, service, 1).await;
    }
    for service in SERVICES {
        saga.kill9(service, 1);
    }
    placing.await.unwrap();
    let snapshot = saga.settle(800, Duration::from_secs(240)).await;
    assert_every_outcome(&snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_scaled_from_1_to_3_and_back_to_1_mid_run_keeps_every_invariant() {
    // A long session timeout: partitions left behind by a member that did not say goodbye
    // would stall for 60 s, longer than the test gives the orders placed after scaling in.
    let mut settings = TIMERS.to_vec();
    settings.push(("TROUPE_KAFKA_SESSION_TIMEOUT_MS", "60000"));
    let saga = Arc::new(Saga::start(&settings).await);
    saga.seed_stock(1200, 32).await;
    let placing = {
        let saga = saga.clone();
        tokio::task::spawn_blocking(move || saga.place(1000, 32, 100))
    };
    wait_consuming(&saga, "inventory", 0).await;
    for number in [1, 2] {
        saga.spawn("inventory", number);
    }
    for number in [1, 2] {
        saga.wait_healthy("inventory", number).await;
        wait_consuming(&saga, "inventory", number).await;
    }
    // Scaled in with SIGTERM, as Kubernetes does: each finishes its batch, commits and leaves
    // the group, so its partitions move at once (cooperative-sticky: only those move).
    saga.stop("inventory", 2).await;
    saga.stop("inventory", 1).await;
    placing.await.unwrap();
    let scaled_in = Instant::now();
    saga.place(200, 33, 0);
    let snapshot = saga.settle(1200, Duration::from_secs(55)).await;
    assert_every_outcome(&snapshot);
    println!(
        "settled {:.1} s after scaling in",
        scaled_in.elapsed().as_secs_f64()
    );
}

/// `troupe_consumer_lag_messages{processor,topic,partition}` samples from every processor's
/// `/metrics`.
async fn reported_lag(saga: &Saga) -> BTreeMap<(String, String, i32), i64> {
    let mut lag = BTreeMap::new();
    for service in SERVICES {
        let text = saga.metrics(service, 0).await;
        for line in text
            .lines()
            .filter(|l| l.starts_with("troupe_consumer_lag_messages{"))
        {
            let label = |name: &str| {
                let start = line.find(&format!("{name}=\"")).expect("label") + name.len() + 2;
                line[start..][..line[start..].find('"').expect("quote")].to_owned()
            };
            let value: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            lag.insert(
                (
                    format!("{}-{service}", saga.id),
                    format!("{}{}", saga.prefix, label("topic")),
                    label("partition").parse().unwrap(),
                ),
                value,
            );
        }
    }
    lag
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_processors_report_is_the_lag_the_broker_has() {
    let mut settings = TIMERS.to_vec();
    settings.push(("TROUPE_KAFKA_STATS_INTERVAL_MS", "500"));
    let saga = Arc::new(Saga::start(&settings).await);
    let topology = Topology::parse(
        &std::fs::read_to_string(repo_root().join("topics.yaml")).expect("topics.yaml"),
    )
    .expect("topics.yaml")
    .prefixed(&saga.prefix);
    let topics: Vec<String> = topology.topics.iter().map(|t| t.name.clone()).collect();
    let partitions = topology
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions))
        .collect();
    let groups = SERVICES
        .iter()
        .map(|s| (format!("{}-{s}", saga.id), topics.clone()))
        .collect();
    let probe = Arc::new(LagProbe::new(&saga.stack.kafka_bootstrap, groups, partitions).unwrap());
    let broker_lag = || {
        let probe = probe.clone();
        async move {
            let lag = tokio::task::spawn_blocking(move || probe.partition_lag())
                .await
                .unwrap()
                .expect("broker lag");
            (Instant::now(), lag)
        }
    };

    saga.seed_stock(1500, 34).await;
    // A burst: lag builds up in the hundreds, then drains.
    let placing = {
        let saga = saga.clone();
        tokio::task::spawn_blocking(move || saga.place(1500, 34, 0))
    };
    // Sample the broker and the processors together for 20 s. A processor's figure is from
    // its last statistics (every 500 ms) and the fetch before them: it must lie within what
    // the broker said during the 1.5 s before it was read.
    let window = Duration::from_millis(1500);
    let mut broker: Vec<(Instant, BTreeMap<(String, String, i32), i64>)> = Vec::new();
    let mut checked = 0;
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        broker.push(broker_lag().await);
        let reported = reported_lag(&saga).await;
        let now = Instant::now();
        broker.push(broker_lag().await);
        let recent: Vec<&BTreeMap<_, _>> = broker
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= window || *at >= now)
            .map(|(_, lag)| lag)
            .collect();
        if started.elapsed() < window {
            continue;
        }
        for (key, value) in &reported {
            let seen: Vec<i64> = recent.iter().filter_map(|lag| lag.get(key)).copied().collect();
            let (low, high) = (
                seen.iter().copied().min().unwrap(),
                seen.iter().copied().max().unwrap(),
            );
            assert!(
                (low..=high).contains(value),
                "{key:?}: the processor reports {value}, the broker said {low}..={high} meanwhile"
            );
            peak = peak.max(*value);
            checked += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    placing.await.unwrap();
    assert!(checked > 100, "only {checked} samples compared");
    assert!(peak > 50, "the burst built no lag worth checking (peak {peak})");

    // Settled: both say nothing is left, partition by partition.
    saga.settle(1500, Duration::from_secs(180)).await;
    wait_until(
        "every reported lag to be 0",
        Duration::from_secs(30),
        || async {
            let reported = reported_lag(&saga).await;
            (!reported.is_empty() && reported.values().all(|v| *v == 0)).then_some(())
        },
    )
    .await;
    let (_, lag) = broker_lag().await;
    for key in reported_lag(&saga).await.keys() {
        assert_eq!(lag[key], 0, "{key:?}: the broker still has lag");
    }
}
