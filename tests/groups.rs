//! Consumer groups on Apache Kafka: instances that die and never come back, a processor scaled
//! out and in during a run, and the lag a processor reports checked against the broker's own
//! offsets. No static membership anywhere: plain members, as a Deployment runs them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use troupe_e2e::{assert_every_outcome, metric_sum, Saga, SERVICES, TIMERS};
use troupe_events::topology::Topology;
use troupe_runtime::lag::{LagProbe, PerPartition};
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
async fn reported_lag(saga: &Saga) -> PerPartition<i64> {
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
                    saga.group(service),
                    format!("{}{}", saga.prefix, label("topic")),
                    label("partition").parse().unwrap(),
                ),
                value,
            );
        }
    }
    lag
}

/// When the broker was asked (the read started, and ended), and its (log end, committed offset)
/// per partition.
type Sample = (Instant, Instant, PerPartition<(i64, i64)>);

/// The range the lag a processor reported may lie in, from the broker's view: `before`, a
/// sample whose reads ended before the processor's measurement started, and `after`, one whose
/// reads started after the processor's figure was scraped. Log ends and committed offsets only
/// grow, so the processor's end and commit lie between those the two samples show.
fn allowed(before: (i64, i64), after: (i64, i64)) -> std::ops::RangeInclusive<i64> {
    let ((end_before, done_before), (end_after, done_after)) = (before, after);
    (end_before - done_after).max(0)..=(end_after - done_before)
}

#[test]
fn the_allowed_range_is_bounded_by_the_samples_around_the_figure() {
    // Caught up before, 30 written and 10 of them committed after: anything from 0 to 30.
    assert_eq!(allowed((100, 100), (130, 110)), 0..=30);
    // Far behind throughout: at least the 50 written before minus the commits after.
    assert_eq!(allowed((200, 100), (220, 150)), 50..=120);
    assert!(
        !allowed((100, 100), (100, 100)).contains(&16),
        "nothing moved: only 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_processors_report_is_the_lag_the_broker_has() {
    let mut settings = TIMERS.to_vec();
    settings.push(("TROUPE_LAG_INTERVAL_MS", "500"));
    // Small transactions, so that a burst outruns the processors and lag builds up.
    settings.push(("TROUPE_BATCH_MAX", "10"));
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
        .map(|s| (saga.group(s), topics.clone()))
        .collect();
    let probe = LagProbe::new(&saga.stack.kafka_bootstrap, groups, partitions).unwrap();

    // The broker's view (log ends in one ListOffsets, each group's committed offsets), sampled
    // as often as it answers, by a thread of its own.
    let broker: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (broker, sampling) = (broker.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let started = Instant::now();
                match probe.offsets() {
                    Ok(offsets) => broker
                        .lock()
                        .unwrap()
                        .push((started, Instant::now(), offsets)),
                    Err(error) => eprintln!("a broker sample failed: {error}"),
                }
                // Sampling pace, so the sampler leaves the processors some CPU.
                std::thread::sleep(Duration::from_millis(10));
            }
            probe
        })
    };

    saga.seed_stock(1500, 34).await;
    // A burst: lag builds up in the hundreds on some partitions, then drains.
    let placing = {
        let saga = saga.clone();
        tokio::task::spawn_blocking(move || saga.place(1500, 34, 0))
    };
    // Each scrape: when it started and ended, and the figures read.
    let mut reported: Vec<(Instant, Instant, PerPartition<i64>)> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let scraping = Instant::now();
        let figures = reported_lag(&saga).await;
        reported.push((scraping, Instant::now(), figures));
        // The scrape interval, not a wait for anything.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    placing.await.unwrap();
    let last_scrape = reported.last().expect("scrapes").1;
    wait_until(
        "a broker sample started after the last scrape",
        Duration::from_secs(30),
        || async {
            let broker = broker.lock().unwrap();
            broker
                .last()
                .is_some_and(|(t, _, _)| *t >= last_scrape)
                .then_some(())
        },
    )
    .await;
    sampling.store(false, Ordering::Relaxed);
    let probe = sampler.join().unwrap();

    // A processor measures every 500 ms: a figure scraped at t was measured after t - 3 s
    // (the rest is slack for a busy machine), so it must lie in the range the broker allows
    // between its last sample read before then and its first sample begun after the scrape.
    let broker = std::mem::take(&mut *broker.lock().unwrap());
    let fresh = Duration::from_secs(3);
    let (mut compared, mut under_load, mut violations) = (0, 0, Vec::new());
    for (scraping, scraped, figures) in &reported {
        let Some(measured_after) = scraping.checked_sub(fresh) else {
            continue;
        };
        let before = broker
            .iter()
            .rev()
            .find(|(_, end, _)| *end <= measured_after);
        let after = broker.iter().find(|(start, _, _)| start >= scraped);
        let (Some((_, _, before)), Some((_, _, after))) = (before, after) else {
            continue;
        };
        for (key, value) in figures {
            let (Some(b), Some(a)) = (before.get(key), after.get(key)) else {
                continue;
            };
            let range = allowed(*b, *a);
            if !range.contains(value) {
                violations.push(format!(
                    "{key:?}: the processor reports {value}, the broker allows {range:?}"
                ));
            }
            compared += 1;
            if *value >= 20 {
                under_load += 1;
            }
        }
    }
    println!("{compared} figures compared, {under_load} of them a lag of 20 or more");
    assert!(
        violations.is_empty(),
        "{} of {compared} figures disagree with the broker:\n{}",
        violations.len(),
        violations[..violations.len().min(10)].join("\n")
    );
    assert!(
        under_load >= 50,
        "only {under_load} of {compared} figures were a lag of 20 or more: the burst did not test much"
    );

    // Settled: both say nothing is left, partition by partition, exactly.
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
    let lag = tokio::task::spawn_blocking(move || probe.partition_lag())
        .await
        .unwrap()
        .expect("broker lag");
    for key in reported_lag(&saga).await.keys() {
        assert_eq!(lag[key], 0, "{key:?}: the broker still has lag");
    }
}
