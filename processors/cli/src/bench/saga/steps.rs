//! Stepping: orders at rising rates until one is not sustainable.

use super::report::{Percentiles, StepReport};
use super::sample::round2;
use super::verdict::{verdict, IN_FLIGHT_GROWTH_FLOOR, LAG_GROWTH_FLOOR};
use super::{Bench, PhaseRun, SagaArgs};

/// What the steps gave.
pub(super) struct Stepped {
    pub(super) steps: Vec<StepReport>,
    /// The highest rate found sustainable.
    pub(super) sustainable: Option<f64>,
    /// The steps' phases, and how many orders they offered.
    pub(super) phases: Vec<usize>,
    pub(super) orders: u64,
    /// Distinct events per order over the steps that drained (8 until one has).
    pub(super) messages_per_order: f64,
}

/// Offers each rate of `ladder` in turn; stops after the first that is not sustainable, or
/// that did not drain.
pub(super) async fn step_through(
    bench: &mut Bench<'_>,
    args: &SagaArgs,
    ladder: &[f64],
) -> anyhow::Result<Stepped> {
    let mut stepped = Stepped {
        steps: Vec::new(),
        sustainable: None,
        phases: Vec::new(),
        orders: 0,
        messages_per_order: 8.0,
    };
    for &rate in ladder {
        eprintln!("bench: step {rate} orders/s for {} s", args.step_seconds);
        let offered = rate * stepped.messages_per_order;
        let PhaseRun {
            phase,
            orders,
            sampler,
            seconds,
            drained,
            timeout,
        } = bench.run_phase(false, rate, args.step_seconds).await?;
        let lag_verdict = verdict(&sampler.lag, offered, LAG_GROWTH_FLOOR);
        let in_flight_verdict = verdict(&sampler.in_flight, rate, IN_FLIGHT_GROWTH_FLOOR);
        stepped.orders += orders;
        stepped.phases.push(phase);
        if drained.is_some() && stepped.orders > 0 {
            stepped.messages_per_order =
                bench.distinct(&stepped.phases) as f64 / stepped.orders as f64;
        }
        let (latency, completed) = {
            let book = bench.book.lock().expect("book lock");
            (
                Percentiles::of(&book.phases[phase].latency),
                book.phases[phase].completed,
            )
        };
        let step = StepReport {
            rate,
            seconds: round2(seconds),
            orders,
            completed,
            offered_msgs_per_sec: round2(offered),
            lag_growth_per_sec: round2(lag_verdict.growth_per_sec),
            mean_lag: round2(lag_verdict.mean_lag),
            max_lag: lag_verdict.max_lag,
            in_flight_growth_per_sec: round2(in_flight_verdict.growth_per_sec),
            mean_in_flight: round2(in_flight_verdict.mean_lag),
            sustainable: lag_verdict.sustainable
                && in_flight_verdict.sustainable
                && drained.is_some(),
            drained: drained.is_some(),
            drain_seconds: round2(drained.unwrap_or(timeout.as_secs_f64())),
            latency,
            machine_busy: sampler.machine_busy(),
            processes: sampler.processes(&bench.watched),
        };
        eprintln!(
            "bench:   lag growth {:.0} msgs/s, mean lag {:.0}, in flight {:.0} (growth {:.0}/s), p99 {:.1} ms, {}",
            step.lag_growth_per_sec,
            step.mean_lag,
            step.mean_in_flight,
            step.in_flight_growth_per_sec,
            step.latency.p99_ms,
            if step.sustainable { "sustainable" } else { "NOT sustainable" }
        );
        let (ok, drained) = (step.sustainable, step.drained);
        stepped.steps.push(step);
        if !ok || !drained {
            break;
        }
        stepped.sustainable = Some(rate);
    }
    Ok(stepped)
}
