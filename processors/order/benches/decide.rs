//! A handler decision: the order service placing an order and confirming one.
//! `cargo bench -p troupe-order`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use troupe_events::{samples, EventType};
use troupe_order::decide::decide;
use uuid::Uuid;

fn decisions(c: &mut Criterion) {
    let place = samples::sample(EventType::PlaceOrder, Uuid::now_v7()).event;
    let placed = decide(None, &place)
        .after
        .expect("a valid sample places an order");
    let scheduled = samples::sample(EventType::ShipmentScheduled, Uuid::now_v7()).event;
    c.bench_function("decide/place_order", |b| {
        b.iter(|| decide(None, black_box(&place)))
    });
    c.bench_function("decide/confirm", |b| {
        b.iter(|| decide(Some(black_box(&placed)), black_box(&scheduled)))
    });
}

criterion_group!(benches, decisions);
criterion_main!(benches);
