//! The servers themselves restarted mid-run: the broker (stopped and started again on its data)
//! and PostgreSQL. Each test runs on a private stack of its own (PostgreSQL, Kafka and the
//! registry on other ports), so the restarts disturb no other test.

use std::sync::Arc;
use std::time::Duration;

use troupe_e2e::{assert_every_outcome, metric_sum, PrivateStack, Saga, SERVICES, TIMERS};
use troupe_testkit::wait_until;

/// Places `orders` (seed `seed`) at `rate`, and restarts `server` while the saga is busy with
/// them; then places 200 more and checks that every order ends once, with every invariant.
async fn restart_mid_run(server: &'static str, seed: u64) {
    let private = PrivateStack::new(Some("postgres kafka registry"));
    let stack = private.up();
    let saga = Arc::new(Saga::start_on(&stack, &TIMERS, &[]).await);
    saga.seed_stock(600, seed).await;
    saga.seed_stock(200, seed + 1).await;
    saga.place(600, seed, 150);

    // The orders are placed; the saga is still working through them.
    let snapshot = saga.snapshot().await;
    let unfinished = snapshot
        .orders
        .values()
        .filter(|o| !o.status.is_terminal())
        .count()
        + 600usize.saturating_sub(snapshot.orders.len());
    println!("{unfinished} of 600 orders unfinished when {server} stopped");
    assert!(unfinished > 0, "the saga finished before the restart");

    private.must(&format!("stop {server}"));
    // Down long enough for every processor to notice: consumers, relays and transactions fail.
    wait_until(
        &format!("a processor to notice that {server} is gone"),
        Duration::from_secs(60),
        || async {
            let mut retries = 0;
            for service in SERVICES {
                retries += metric_sum(&saga.metrics(service, 0).await, "troupe_retries_total");
            }
            (retries > 0).then_some(())
        },
    )
    .await;
    private.must(&format!("start {server}"));

    saga.place(200, seed + 1, 0);
    let snapshot = saga.settle(800, Duration::from_secs(240)).await;
    assert_every_outcome(&snapshot);
    assert_eq!(saga.dead_letters(), 0, "nothing is bad input here");
    // For the reader of a run: how often a consumer stuck after the restart was replaced.
    let mut replaced = Vec::new();
    for service in SERVICES {
        let metrics = saga.metrics(service, 0).await;
        let rejoins: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("troupe_retries_total") && l.contains("stage=\"rejoin\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
        replaced.push(format!("{service} {rejoins}"));
    }
    println!(
        "consumers replaced by the membership watchdog: {}",
        replaced.join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_restarted_mid_run_loses_and_doubles_nothing() {
    restart_mid_run("kafka", 41).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_mid_run_loses_and_doubles_nothing() {
    restart_mid_run("postgres", 43).await;
}
