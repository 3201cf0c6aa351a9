//! Coverage of the choreography: end-to-end runs exercise every arrow `choreography.yaml`
//! declares (each reaction with each event it may emit, each timer with each), counted by the
//! processors themselves (`troupe_reactions_total`). An arrow no run exercises fails the test:
//! either a scenario is missing or the declaration allows what never happens.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use troupe_e2e::{Saga, TIMERS};
use troupe_events::choreography::{Choreography, TIMER};

/// Every scenario, cancel-race among them, with reviews that outlast reservations.
const MIX: &str = "happy=40,out-of-stock=8,payment-declined=8,unserved=8,cancel=8,expiry=6,invalid=4,cancel-race=30";
/// Reviews that end before reservations do: the review timer authorises and declines.
const REVIEWS: &str = "expiry=1,review-declined=1";

type Reactions = BTreeMap<(String, String, String), u64>;

/// Runs `orders` orders of `mix` on a saga of their own with `settings`; returns the reactions
/// its processors counted.
async fn run(settings: &[(&str, &str)], orders: u64, seed: u64, mix: &str) -> Reactions {
    let saga = Saga::start(settings).await;
    saga.seed_stock_for(orders, seed, &["--mix", mix]).await;
    let out = saga.troupe(&[
        "produce",
        "--orders",
        &orders.to_string(),
        "--seed",
        &seed.to_string(),
        "--mix",
        mix,
        "--rate",
        "100",
        "--no-stock",
    ]);
    println!("{}", String::from_utf8_lossy(&out.stdout));
    saga.settle(orders as usize, Duration::from_secs(240)).await;
    saga.reactions().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arrow_of_the_choreography_is_exercised() {
    let mut reactions = run(&TIMERS, 300, 51, MIX).await;
    let quick_reviews = [
        ("TROUPE_RESERVATION_TTL_MS", "30000"),
        ("TROUPE_PAYMENT_REVIEW_MS", "1000"),
        ("TROUPE_TIMER_INTERVAL_MS", "100"),
    ];
    for (arrow, count) in run(&quick_reviews, 40, 52, REVIEWS).await {
        *reactions.entry(arrow).or_default() += count;
    }

    for ((service, on, emitted), count) in &reactions {
        println!("{service:<13} {on:<27} → {emitted:<24} {count:>5}");
    }
    let exercised: BTreeSet<(String, String, String)> = reactions
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(arrow, _)| arrow.clone())
        .collect();
    let mut missing = Vec::new();
    for arrow in Choreography::current().arrows() {
        let emitted = arrow.emitted.map_or("nothing", |e| e.name());
        let inputs: Vec<&str> = if arrow.on == TIMER {
            vec![TIMER]
        } else {
            arrow.on.split(" + ").collect()
        };
        let covered = inputs.iter().any(|on| {
            exercised.contains(&(arrow.service.clone(), (*on).to_owned(), emitted.to_owned()))
        });
        if !covered {
            missing.push(arrow.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "arrows of choreography.yaml no run exercised:\n{}\nexercised: {exercised:#?}",
        missing.join("\n")
    );
}
