//! The latency phases: orders at shares of the sustainable rate, with per-hop stages and the
//! cost of an order.

use anyhow::bail;
use sqlx::PgPool;
use troupe_events::EventType;

use super::cost::{self, PgCounters};
use super::report::{HopReport, LatencyReport, Percentiles};
use super::sample::round2;
use super::{Bench, PhaseRun, SagaArgs};

/// What the latency phases gave.
#[derive(Default)]
pub(super) struct Measured {
    pub(super) reports: Vec<LatencyReport>,
    pub(super) phases: Vec<usize>,
    pub(super) orders: u64,
}

/// (share of the sustainable rate or `None`, orders per second) of each latency phase, lowest
/// first: `--latency-rate` alone when given; otherwise each of `--latency-fractions` of the
/// sustainable rate (of half the first step's rate when none was sustainable).
pub(super) fn rates(
    args: &SagaArgs,
    sustainable: Option<f64>,
    first: f64,
) -> Vec<(Option<f64>, f64)> {
    if let Some(rate) = args.latency_rate {
        return vec![(None, rate)];
    }
    let base = sustainable.unwrap_or(first / 2.0);
    let mut rates: Vec<(Option<f64>, f64)> = args
        .latency_fractions
        .iter()
        .map(|&f| (Some(f), round2(base * f).max(1.0)))
        .collect();
    rates.sort_by(|a, b| a.1.total_cmp(&b.1));
    rates
}

/// Runs one latency phase per rate.
pub(super) async fn measure(
    bench: &mut Bench<'_>,
    rates: &[(Option<f64>, f64)],
    seconds: u64,
    postgres: &PgPool,
    databases: &[String],
) -> anyhow::Result<Measured> {
    let mut measured = Measured::default();
    for &(fraction, rate) in rates {
        eprintln!("bench: latency at {rate} orders/s for {seconds} s");
        let before = PgCounters::read(postgres, databases).await?;
        let PhaseRun {
            phase,
            orders,
            sampler,
            seconds: elapsed,
            drained,
            ..
        } = bench.run_phase(true, rate, seconds).await?;
        let after = PgCounters::read(postgres, databases).await?;
        if drained.is_none() {
            bail!("the latency phase did not drain: the saga does not keep up at {rate} orders/s");
        }
        measured.orders += orders;
        measured.phases.push(phase);
        let processes = sampler.processes(&bench.watched);
        let book = bench.book.lock().expect("book lock");
        let completed = book.phases[phase].completed;
        let hops = book
            .hops
            .iter()
            .filter(|((p, _, _), _)| *p == phase)
            .map(|(&(_, from, to), times)| HopReport {
                from: EventType::ALL[from].name().to_owned(),
                to: EventType::ALL[to].name().to_owned(),
                hop: Percentiles::of(&times.hop),
                fetch: Percentiles::of(&times.fetch),
                linger: Percentiles::of(&times.linger),
                transaction: Percentiles::of(&times.transaction),
                relay_wake: Percentiles::of(&times.relay_wake),
                produce: Percentiles::of(&times.produce),
            })
            .collect();
        measured.reports.push(LatencyReport {
            fraction,
            rate,
            seconds: round2(elapsed),
            orders,
            completed,
            end_to_end: Percentiles::of(&book.phases[phase].latency),
            hops,
            cost: cost::per_order(&processes, completed, before, after),
            machine_busy: sampler.machine_busy(),
            processes,
        });
    }
    Ok(measured)
}
